"""Open vSwitch's own test controller (Debian package openvswitch-testcontroller).

A plain L2 learning switch (`-H` would make it a hub); it takes no apps.
"""

from __future__ import annotations

from labctl.controllers.base import ControllerKind
from labctl.model import OPENFLOW_PROTOCOLS


class OvsTestController(ControllerKind):
    kind = "ovs-testcontroller"
    label = "ovs-testcontroller"
    takes_apps = False

    def argv(self) -> list[str]:
        return [
            "ovs-testcontroller",
            f"ptcp:{self.spec.port}:{self.spec.address}",
            "-O",
            OPENFLOW_PROTOCOLS[self.lab.openflow],
            "-vconsole:info",
        ]

    def env(self) -> dict[str, str]:
        # its control socket goes to OVS_RUNDIR: keep it beside its log, not in the system's
        return {"OVS_RUNDIR": str(self.log_path.parent)}
