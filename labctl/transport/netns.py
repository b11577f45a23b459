"""Run commands inside a simulated host: its network namespace and its own OVS.

`ip netns exec` enters the network namespace (and gives the command a private
mount namespace with the namespace's own /sys). The host's Open vSwitch lives
in its own run directory; OVS_RUNDIR and friends point plain `ovs-vsctl`,
`ovs-ofctl` and `ovs-appctl` at it, so the same OVS code runs here as on a
real host.
"""

from __future__ import annotations

from collections.abc import Sequence

from labctl.processes import NETNS_DIR
from labctl.transport.local import LocalTransport


def ovs_env(rundir: str) -> dict[str, str]:
    """Environment that makes the OVS tools use a private run/db/log directory."""
    return {"OVS_RUNDIR": rundir, "OVS_DBDIR": rundir, "OVS_LOGDIR": rundir}


class NetnsTransport(LocalTransport):
    def __init__(self, name: str, netns: str, ovs_rundir: str | None = None):
        super().__init__(name, ovs_env(ovs_rundir) if ovs_rundir else None)
        self.netns = netns
        self.ovs_rundir = ovs_rundir

    def describe(self) -> str:
        return f"namespace {self.netns} on this machine"

    def netns_path(self) -> str:
        return f"{NETNS_DIR}/{self.netns}"

    def wrap(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]
