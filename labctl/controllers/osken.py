"""os-ken (OpenStack's Ryu fork): bundled apps (l2_learning) or any os-ken app module."""

from __future__ import annotations

import sys

from labctl.controllers.base import ControllerKind


class OsKenController(ControllerKind):
    kind = "os-ken"
    label = "os-ken"

    @classmethod
    def default_apps(cls, openflow: str) -> tuple[str, ...]:
        return ("l2_learning",)  # labctl's own, behaving like POX's forwarding.l2_learning

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "labctl.controllers.osken_runner",
            "--ofp-listen-host",
            str(self.spec.address),
            "--ofp-tcp-listen-port",
            str(self.spec.port),
            *self.spec.apps,
        ]
