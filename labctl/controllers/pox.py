"""POX (https://github.com/noxrepo/pox): `pox.py openflow.of_01 --address=A --port=P APPS...`.

POX is not on PyPI or in Debian: the inventory's `controller.path` or the
environment variable LABCTL_POX_PATH names a checkout (`git clone
https://github.com/noxrepo/pox`). Apps and their options are given as a list,
e.g. [forwarding.l2_learning] or [openflow.discovery, openflow.spanning_tree,
--no-flood, --hold-down, forwarding.l2_learning]. POX speaks OpenFlow 1.0 only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from labctl.controllers.base import ControllerKind
from labctl.errors import InputError

POX_PATH_ENV = "LABCTL_POX_PATH"


def pox_checkout(configured: str | None) -> Path:
    path = configured or os.environ.get(POX_PATH_ENV)
    if not path:
        raise InputError(
            "controller kind pox needs a POX checkout: set controller.path in the inventory or "
            f"{POX_PATH_ENV} (get it with `git clone https://github.com/noxrepo/pox`)"
        )
    checkout = Path(path).expanduser().resolve()
    if not (checkout / "pox.py").is_file():
        raise InputError(f"no pox.py in {checkout} (controller.path or {POX_PATH_ENV})")
    return checkout


class PoxController(ControllerKind):
    kind = "pox"
    label = "POX"
    takes_app_options = True
    openflow_versions = ("1.0",)

    @classmethod
    def default_apps(cls, openflow: str) -> tuple[str, ...]:
        return ("forwarding.l2_learning",)

    def check(self) -> None:
        pox_checkout(self.spec.path)

    def argv(self) -> list[str]:
        checkout = pox_checkout(self.spec.path)
        return [
            sys.executable,
            str(checkout / "pox.py"),
            "openflow.of_01",
            f"--address={self.spec.address}",
            f"--port={self.spec.port}",
            *self.spec.apps,
        ]
