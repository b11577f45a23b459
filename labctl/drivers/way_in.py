"""The way into real guests, shared by the kvm, xen and xenserver drivers: SSH to each
guest's management address (mgmt.py), which its NoCloud seed gave it, through labctl's
SSH connection to the hypervisor host (or dom0), or straight from this machine when the
host is `localhost`, or from inside the network namespace the host's commands run in
(transport/guest.py). verify, exec and shell use it.

Mixed into a driver before RealHostDriver: `SshWayIn` for the way in itself,
`LinuxBridgeWayIn` for kvm and xen, whose management NIC goes on a Linux bridge of the
host (its checks for up, doctor, status and plan). A simulated host's real guests
(sim_guests.RealGuests) use `SshWayIn` too, on the host's own `labmgmt` bridge.
"""

from __future__ import annotations

from typing import ClassVar

from labctl.drivers import mgmt, seed
from labctl.drivers.base import DoctorCheck, PlannedStep, Problem
from labctl.errors import ProvisionError
from labctl.faults import Fault
from labctl.model import VM, Host
from labctl.transport import guest as guest_ssh
from labctl.transport.base import Transport
from labctl.transport.netns import NetnsTransport
from labctl.transport.ssh import SshTransport


class SshWayIn:
    """A driver whose guests are reached over SSH on their management NIC. The driver
    calls init_way_in(host) in its __init__; `mgmt_hint` says how to give it one."""

    name: ClassVar[str]
    mgmt_hint: ClassVar[str] = mgmt.HINT
    # what the driver itself has (RealHostDriver)
    session: object
    host: Host
    _transport: Transport

    def init_way_in(self, host: Host, spec: mgmt.MgmtSpec | None = None) -> None:
        """`spec`: the management path when the kind fixes it itself (a simulated host's
        labmgmt), else the inventory's `mgmt:`."""
        self.seeded = host.options["seed"] != "none"
        # the way in needs the seed: it gives the guest its management address and keys
        self.mgmt: mgmt.MgmtSpec | None = (spec or host.options["mgmt"]) if self.seeded else None
        self._ways_in: dict[str, guest_ssh.GuestSsh] = {}

    def address_managed(self, vm: VM) -> bool:
        return self.seeded

    def mgmt_nic(self, vm: VM) -> tuple[str, str] | None:
        """The guest's management NIC for its seed: (MAC, address/prefix), None without mgmt."""
        return (mgmt.mgmt_mac(vm), self.mgmt.address(self.host, vm)) if self.mgmt else None

    def no_path(self, vm: VM) -> str | None:
        """Why labctl has no management path into the guest at all (None: it has one,
        answering or not)."""
        if not self.seeded:
            return f"{seed.NOT_MANAGED}: labctl has no way in"
        if self.mgmt is None:
            return f"real guest, no way in ({self.mgmt_hint} on host {self.host.name})"
        return None

    def way_in(self, vm: VM) -> str | None:
        """None when the guest answers over SSH on its management NIC; else why not (no
        path, or SSH not answering: still booting, no SSH server, another host key)."""
        return self.no_path(vm) or self.guest_transport(vm).unreachable()

    def vm_transport(self, vm: VM) -> Transport:
        why = self.no_path(vm)  # not way_in(): a guest still booting is waited for
        if why is not None:
            raise ProvisionError(vm.name, "run a command in the VM", f"no way into {vm.name}: {why}")
        return self.guest_transport(vm)

    def guest_transport(self, vm: VM) -> guest_ssh.GuestSsh:
        """One SSH connection per guest for the whole labctl run, through the host."""
        assert self.mgmt is not None
        if vm.name not in self._ways_in:
            keys = seed.keys(self.session)
            address = self.mgmt.address(self.host, vm).split("/")[0]
            how = dict(key=keys.client().private_path, host_key=keys.host(vm.name).public)
            if isinstance(self._transport, SshTransport):
                way = guest_ssh.through_ssh_host(vm.name, self._transport, address, **how)
            elif isinstance(self._transport, NetnsTransport):  # the host's commands run in a namespace
                way = guest_ssh.from_netns(vm.name, self._transport.netns, address, **how)
            else:  # a host at `localhost`: this machine is the hypervisor host
                way = guest_ssh.direct(vm.name, address, **how)
            self._ways_in[vm.name] = way
        return self._ways_in[vm.name]


class LinuxBridgeWayIn(SshWayIn):
    """kvm and xen: the management NIC goes on `mgmt.bridge`, a Linux bridge of the host."""

    @classmethod
    def lab_problems(cls, spec, simulate: bool) -> list[Problem]:
        """The management bridge is never the lab's (whose name the lab sets, not the host)."""
        return [
            (
                ("hosts", name, "mgmt", "bridge"),
                f"{spec.bridge} is the lab's bridge: the way in goes on another one",
            )
            for name, host in spec.hosts.items()
            if host.driver == cls.name and not simulate and host.mgmt and host.mgmt.bridge == spec.bridge
        ]

    def check_mgmt_bridge(self) -> None:
        """Before up makes guests: the bridge must take their second NIC."""
        if self.mgmt is not None and self.host.vms:
            why = mgmt.check_bridge(self._transport, self.mgmt, self.session.lab.bridge)
            if why:
                raise ProvisionError(self.host.name, "check the guests' management bridge", why)

    def mgmt_doctor_checks(self) -> list[DoctorCheck]:
        spec = self.mgmt
        if spec is None:
            return []
        lab_bridge = self.session.lab.bridge
        return [("management bridge", lambda: mgmt.doctor_bridge(self._transport, spec, lab_bridge))]

    def mgmt_faults(self) -> list[Fault]:
        """Drift: the management bridge gone, or no longer a Linux bridge (the guests' NICs
        were on it: re-making it does not put them back)."""
        spec = self.mgmt
        if spec is None or not self.host.vms:
            return []
        why = mgmt.check_bridge(self._transport, spec, self.session.lab.bridge)
        if why is None:
            return []
        return [
            Fault(
                f"management bridge: {why.split(':')[0]}: labctl has no way into the guests",
                f"up cannot repair this: make {spec.bridge} a Linux bridge again with the host's address "
                f"in {spec.subnet}, then down and up (the guests' NICs are not put back on it)",
            )
        ]

    def planned_mgmt_steps(self) -> list[PlannedStep]:
        if self.mgmt is None or not self.host.vms:
            return []
        return [mgmt.planned_step(self.mgmt, len(self.host.vms))]
