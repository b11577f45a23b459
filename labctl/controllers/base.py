"""The controller interface: the command that runs it, how to tell it is ready.

labctl starts the controller first, waits until it listens, points every
bridge at it and stops it by PID on `down`. Its output goes to a log file
(`labctl logs controller`... prints it).
"""

from __future__ import annotations

import shutil
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from labctl.errors import CommandError, ProvisionError
from labctl.model import Lab
from labctl.processes import ProcessId, alive
from labctl.transport.base import Transport

if TYPE_CHECKING:
    from labctl.inventory import InventorySpec

LOG_TAIL_LINES = 15
# An inventory problem: where (a path of keys) and what is wrong.
Problem = tuple[tuple, str]


def log_tail(path: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class ControllerKind(ABC):
    kind: ClassVar[str]  # the inventory's controller.kind
    label: ClassVar[str]  # its name in messages
    managed: ClassVar[bool] = True  # False: someone else runs it (remote)
    takes_apps: ClassVar[bool] = True
    takes_app_options: ClassVar[bool] = False  # apps: may hold --options (POX's command line)
    openflow_versions: ClassVar[tuple[str, ...]] = ("1.0", "1.3")
    # The most switches (one bridge per host) one controller process serves, and where
    # that number comes from; None: no fixed limit. rules.py refuses a bigger lab.
    max_switches: ClassVar[int | None] = None
    max_switches_source: ClassVar[str] = ""

    def __init__(self, lab: Lab, log_path: Path):
        self.lab, self.log_path = lab, log_path
        self.spec = lab.controller

    # --- what the inventory may say (validation and defaults) ---
    @classmethod
    def default_apps(cls, openflow: str) -> tuple[str, ...]:
        """The apps it runs when the inventory names none."""
        return ()

    @classmethod
    def inventory_problems(cls, spec: InventorySpec, simulate: bool) -> list[Problem]:
        """Rules of this kind the schema cannot say. `simulate`: every host runs simulated."""
        return []

    # --- start, check, stop ---

    @abstractmethod
    def argv(self) -> list[str]:
        """The command line that runs the controller in the foreground."""

    def check(self) -> None:
        """Refuse early, before anything is created, what cannot work (a missing checkout)."""
        program = self.argv()[0] if self.managed else None
        if program and not shutil.which(program):
            raise ProvisionError("controller", f"start {self.kind}", f"{program} is not installed")

    def env(self) -> dict[str, str]:
        return {}

    def wait_listening(self, transport: Transport, proc: ProcessId | None, timeout: float) -> None:
        """Poll until the controller accepts connections on its port (or has died)."""
        deadline = time.monotonic() + timeout
        while True:
            if proc is not None and not alive(proc):
                raise ProvisionError(
                    "controller",
                    f"start {self.kind}",
                    f"it exited; last lines of {self.log_path}:\n{log_tail(self.log_path)}",
                )
            if self.listening(transport):
                return
            if time.monotonic() > deadline:
                raise ProvisionError(
                    "controller",
                    f"start {self.kind}",
                    f"not listening on port {self.spec.port} after {timeout:g}s; "
                    f"last lines of {self.log_path}:\n{log_tail(self.log_path)}",
                )
            time.sleep(0.05)

    def listening(self, transport: Transport) -> bool:
        try:
            out = transport.run(["ss", "-Hltn", f"sport = :{self.spec.port}"], timeout=5).stdout
        except CommandError:
            return False
        return bool(out.strip())

    def connected_peers(self, transport: Transport) -> set[str]:
        """Addresses with an established connection to the controller's port."""
        out = transport.run(
            ["ss", "-Htn", "state", "established", f"( sport = :{self.spec.port} )"], timeout=5
        ).stdout
        peers = set()
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 4:
                peers.add(fields[-1].rsplit(":", 1)[0].strip("[]"))
        return peers

    def wait_connected(
        self, transport: Transport, proc: ProcessId | None, expected: dict[str, str], timeout: float
    ) -> None:
        """Wait until every bridge (by underlay address -> host name) holds a session."""
        deadline = time.monotonic() + timeout
        while True:
            missing = set(expected) - self.connected_peers(transport)
            if not missing:
                return
            if proc is not None and not alive(proc):
                raise ProvisionError(
                    "controller",
                    f"run {self.kind}",
                    f"it exited; last lines of {self.log_path}:\n{log_tail(self.log_path)}",
                )
            if time.monotonic() > deadline:
                names = ", ".join(sorted(f"{expected[a]} ({a})" for a in missing))
                raise ProvisionError(
                    "controller",
                    "connect bridges",
                    f"{self.lab.bridge} on {names} did not connect to {self.spec.target} within "
                    f"{timeout:g}s; last lines of {self.log_path}:\n{log_tail(self.log_path)}",
                )
            time.sleep(0.03)
