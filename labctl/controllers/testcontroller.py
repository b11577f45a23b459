"""Open vSwitch's own test controller (Debian package openvswitch-testcontroller).

A plain L2 learning switch (`-H` would make it a hub); it takes no apps, and
serves at most 16 switches.
"""

from __future__ import annotations

from labctl.controllers.base import ControllerKind
from labctl.model import OPENFLOW_PROTOCOLS


class OvsTestController(ControllerKind):
    kind = "ovs-testcontroller"
    label = "ovs-testcontroller"
    takes_apps = False
    # It keeps its switches in a fixed array: `#define MAX_SWITCHES 16`, and stops
    # accepting connections once 16 are connected, so a 17th bridge waits forever.
    max_switches = 16
    max_switches_source = "MAX_SWITCHES in Open vSwitch's utilities/ovs-testcontroller.c"

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
