"""Ryu 4.34: `ryu-manager` with Ryu's apps, run from Ryu's own Python environment.

Ryu's dependencies clash with os-ken's, so Ryu lives in a venv of its own
(`scripts/setup.sh --ryu` makes `.venv-ryu` in a clone). labctl runs
`ryu_runner.py` (beside this file) with that venv's Python: it applies the one
shim Ryu needs on Python 3.11 and calls Ryu's own manager. The Python is found
through the inventory's `controller.path` (a venv or its python), else
LABCTL_RYU_PYTHON, else the clone's `.venv-ryu` (a wheel has no clone around it).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from labctl.controllers.base import ControllerKind, Problem
from labctl.defaults import checkout
from labctl.errors import InputError

# Ryu's learning switch: one module per OpenFlow version, each speaking only its own.
SWITCH_FOR = {"1.0": "ryu.app.simple_switch", "1.3": "ryu.app.simple_switch_13"}
VERSION_OF_SWITCH = {app: version for version, app in SWITCH_FOR.items()}

RYU_PYTHON_ENV = "LABCTL_RYU_PYTHON"
RUNNER = Path(__file__).resolve().with_name("ryu_runner.py")


def project_venv() -> Path | None:
    """The clone's .venv-ryu (made by `scripts/setup.sh --ryu`); None when labctl is a wheel."""
    root = checkout()
    return root / ".venv-ryu" if root else None


def how_to_install() -> str:
    if checkout():
        return "`bash scripts/setup.sh --ryu` installs it in .venv-ryu (see docs/controllers.md)"
    return "make a venv with Ryu 4.34 as labctl's docs/controllers.md (section Ryu) shows"


def ryu_python(configured: str | None) -> Path:
    """The Python that has Ryu: controller.path, LABCTL_RYU_PYTHON or the clone's .venv-ryu."""
    venv = project_venv()
    if configured:
        path, source = configured, "controller.path"
    elif os.environ.get(RYU_PYTHON_ENV):
        path, source = os.environ[RYU_PYTHON_ENV], RYU_PYTHON_ENV
    # os.path, not Path: a venv under a directory this user may not enter (root's, for an
    # ordinary user) is "not there", where Path.exists() raises PermissionError.
    elif venv and os.path.exists(venv / "bin" / "python"):
        path, source = str(venv), "the clone's .venv-ryu"
    else:
        raise InputError(
            "controller kind ryu needs Ryu in its own Python environment: set controller.path to a "
            f"Ryu venv (or its python), or {RYU_PYTHON_ENV}; {how_to_install()}"
        )
    python = Path(path).expanduser().absolute()
    if os.path.isdir(python):
        python = python / "bin" / "python"
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise InputError(f"no Python at {python} ({source}); {how_to_install()}")
    return python


class RyuController(ControllerKind):
    kind = "ryu"
    label = "Ryu"

    @classmethod
    def default_apps(cls, openflow: str) -> tuple[str, ...]:
        return (SWITCH_FOR[openflow],)

    @classmethod
    def inventory_problems(cls, spec, simulate: bool) -> list[Problem]:
        problems = []
        for index, app in enumerate(spec.controller.apps or []):
            speaks = VERSION_OF_SWITCH.get(app, spec.openflow)
            if speaks != spec.openflow:
                problems.append(
                    (
                        ("controller", "apps", index),
                        f'{app} speaks OpenFlow {speaks} only; with openflow: "{spec.openflow}" use '
                        f"{SWITCH_FOR[spec.openflow]}",
                    )
                )
        return problems

    def check(self) -> None:
        python = ryu_python(self.spec.path)
        found = subprocess.run(
            [str(python), "-c", "import ryu.cmd"], capture_output=True, stdin=subprocess.DEVNULL, check=False
        )
        if found.returncode != 0:
            raise InputError(f"Ryu is not installed for {python}; {how_to_install()}")

    def argv(self) -> list[str]:
        return [
            str(ryu_python(self.spec.path)),
            str(RUNNER),
            "--ofp-listen-host",
            str(self.spec.address),
            "--ofp-tcp-listen-port",
            str(self.spec.port),
            *self.spec.apps,
        ]
