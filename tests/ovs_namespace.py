"""A hypervisor host's own Open vSwitch for the tests: ovsdb-server and ovs-vswitchd in a
network namespace of their own, their files in a short temporary directory.

It stands in for a real host's OVS (a Xen dom0, a XenServer dom0), where both daemons
run and labctl checks that the switch answers before it changes anything. This machine
has no OVS kernel module, so a driver reaching it makes its bridges with the userspace
datapath (`datapath_type = "netdev"`), the only change to the driver.

`serve_controller()` runs a real controller (ovs-testcontroller) inside the namespace at
the lab's controller address, for a lab whose controller is `remote`: a bridge pointed at
it completes the OpenFlow handshake, as it would with the remote controller running.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile

from labctl import processes
from labctl.drivers.base import Driver
from labctl.drivers.sim import OVS_DAEMONS, start_ovs_daemons
from labctl.model import OPENFLOW_PROTOCOLS, Lab
from labctl.transport.netns import NetnsTransport

CONTROLLER_PIDFILE = "ovs-testcontroller.pid"


class OvsNamespace:
    def __init__(self, netns: str):
        self.netns = netns
        self.rundir = tempfile.mkdtemp(prefix="ovsns-")  # short: the db socket's path has 108 bytes at most

    def start(self) -> OvsNamespace:
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        start_ovs_daemons(self.transport(), self.rundir)
        return self

    def transport(self, name: str = "host") -> NetnsTransport:
        return NetnsTransport(name, self.netns, self.rundir)

    def driver_kind(self, kind: type[Driver]) -> type[Driver]:
        """`kind` with its hosts reached in this namespace, making its bridges with the
        userspace datapath (no OVS kernel module here); register it in DRIVERS for `down`."""
        namespace = self

        class InNamespace(kind):  # type: ignore[valid-type,misc]
            datapath_type = "netdev"

            @classmethod
            def connect(cls, name, address, access):
                return namespace.transport(name)

        InNamespace.__name__ = f"{kind.__name__}InNamespace"
        return InNamespace

    def vsctl(self, argv: list[str]) -> tuple[int, str, str]:
        """An ovs-vsctl argv, run against this OVS -> (exit code, stdout, stderr)."""
        done = self.transport().run(argv, check=False)
        return done.returncode, done.stdout, done.stderr

    def serve_controller(self, lab: Lab) -> None:
        """ovs-testcontroller listening at the lab's controller address (on the namespace's
        loopback), speaking the lab's OpenFlow version."""
        spec = lab.controller
        subprocess.run(["ip", "-n", self.netns, "addr", "add", f"{spec.address}/32", "dev", "lo"], check=True)
        self.transport().run(
            [
                "ovs-testcontroller",
                f"ptcp:{spec.port}:{spec.address}",
                "-O",
                OPENFLOW_PROTOCOLS[lab.openflow],
                f"--pidfile={self.rundir}/{CONTROLLER_PIDFILE}",
                "--detach",
                "--no-chdir",
                f"--log-file={self.rundir}/ovs-testcontroller.log",
                "-vconsole:off",
            ]
        )

    def stop(self) -> None:
        """Every daemon this OVS started, by its pidfile; then the namespace and the files."""
        names = [f"{d}.pid" for d in OVS_DAEMONS] + [CONTROLLER_PIDFILE]
        pids = [processes.read_pidfile(f"{self.rundir}/{name}") for name in names]
        processes.stop([p for p in map(processes.identify, filter(None, pids)) if p])
        subprocess.run(["ip", "netns", "del", self.netns], check=False)
        shutil.rmtree(self.rundir, ignore_errors=True)
