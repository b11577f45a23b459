"""Run commands inside a simulated host: its network namespace and its own OVS.

`ip netns exec` enters the network namespace (and gives the command a private
mount namespace with the namespace's own /sys). The host's Open vSwitch lives
in its own run directory; OVS_RUNDIR and friends point plain `ovs-vsctl`,
`ovs-ofctl` and `ovs-appctl` at it, so the same OVS code runs here as on a
real host.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
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


CLONE_NEWNET = 0x40000000


def connect_in_netns(netns: str, address: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP connection made from inside the named network namespace (a simulated
    hypervisor host's), usable from anywhere in this process: a socket belongs to the
    namespace it was created in. A short-lived thread enters the namespace (setns moves
    only the calling thread) and ends with it, so no other thread ever leaves ours."""
    made: dict = {}

    def enter_and_connect() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{netns}", "rb") as handle:
                if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"cannot enter namespace {netns}: {os.strerror(err)}")
            made["socket"] = socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            made["error"] = exc

    worker = threading.Thread(target=enter_and_connect, name=f"connect-in-{netns}")
    worker.start()
    worker.join()
    if "error" in made:
        raise made["error"]
    return made["socket"]
