"""KVM hosts through libvirt-python.

Each VM is a libvirt guest (libvirt_guests.py: the domain, its boot source, its
port), on the host's libvirtd at the inventory's `uri:`, else `qemu:///system`. On a
host reached over SSH, a URI with no server part (`qemu:///system`) is the host's own
libvirt, tunnelled over labctl's SSH connection to it (libvirt_tunnel.py), so the
host's access settings hold for libvirt too; any other URI is libvirt's to reach.
The guests run
under KVM or, where KVM is missing or unusable, under TCG (`accel:`, accel.py).
`down` destroys and undefines each domain labctl defined and removes its overlay.

With `mgmt:` (mgmt.py), each guest also gets a second NIC on a Linux bridge of the host
and a management address in its seed; labctl reaches it over SSH through its SSH
connection to the host (transport/guest.py): verify, exec, shell. Without it, a real
guest has no way in and its pairs are not verifiable.

A simulated kvm host with `guests: libvirt` runs the same guest code against a
libvirtd inside the simulated host (sim.py, libvirtd.py); it has its own management
bridge (sim_guests.py) and takes no `mgmt:`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from labctl.drivers import accel, guests, libvirt_tunnel, mgmt, seed
from labctl.drivers.base import DoctorCheck, LabSession, PlannedStep, Problem
from labctl.drivers.libvirt_guests import (
    PORT_CHOSEN_BY_LIBVIRT,
    BootSpec,
    GuestFiles,
    LibvirtGuests,
    Management,
    remove_domain,
)
from labctl.drivers.remote import RealHostDriver
from labctl.errors import ProvisionError
from labctl.fieldtypes import HostField
from labctl.model import VM, Host
from labctl.transport import guest as guest_ssh
from labctl.transport.base import Transport
from labctl.transport.ssh import SshTransport
from labctl.versions import dotted

DEFAULT_URI = "qemu:///system"  # on the host itself: tunnelled when the host is reached over SSH


class KvmDriver(RealHostDriver):
    name = "kvm"
    host_fields = {
        # the libvirt URI (default qemu:///system, over labctl's SSH connection on a remote host)
        "uri": HostField(
            str | None, Field(default=None, pattern=r"^[a-z0-9+]+://[A-Za-z0-9_.@:\[\]/?=&%-]*$")
        ),
        "image": guests.IMAGE,
        # the guests boot this kernel and initrd instead of a disk image
        "boot": HostField(BootSpec | None, Field(default=None)),
        # KVM, QEMU's TCG emulation, or KVM when a short probe boots under it (accel.py)
        "accel": HostField(Literal[accel.ACCELS], Field(default="auto")),  # type: ignore[valid-type]
        # simulated: the host's VMs are namespaces, or real QEMU guests of a libvirtd in the host
        "guests": HostField(Literal["namespace", "libvirt"], Field(default="namespace")),
        # each guest's NoCloud seed (address, MTU, the lab's key); none: an image without cloud-init
        "seed": seed.FIELD,
        # the guests' way in: a second NIC on this Linux bridge of the host, an address of subnet
        "mgmt": mgmt.FIELD,
    }

    def __init__(self, session: LabSession, host: Host):
        super().__init__(session, host)
        self.uri = host.options["uri"] or DEFAULT_URI
        self.tunnel = libvirt_tunnel.tunnel_for(self.uri, self._transport)
        self.kvm_probe = accel.KvmProbe(self._transport)
        self.seeded = host.options["seed"] != "none"
        # the way in needs the seed: it gives the guest its management address and keys
        self.mgmt: mgmt.MgmtSpec | None = host.options["mgmt"] if self.seeded else None
        self._ways_in: dict[str, guest_ssh.GuestSsh] = {}
        lab_dir = guests.lab_dir(session.lab.name)
        self.guests = LibvirtGuests(
            session,
            host,
            uri=self.uri,
            transport=self._transport,
            files=GuestFiles(lab_dir, lab_dir),
            boot=host.options["boot"],
            image=host.options["image"],
            accel=self.accel,
            journal=lambda vm, name, overlay, seed_file: self.record(
                "kvm-vm", uri=self.uri, name=name, overlay=overlay, seed=seed_file
            ),
            seeds=self.seeded,
            tunnel=self.tunnel,
            mgmt=Management(self.mgmt.bridge, lambda vm: self.mgmt.address(host, vm)) if self.mgmt else None,
        )

    def accel(self) -> accel.Accel:
        boot = self.host.options["boot"]
        return accel.choose(self.host.options["accel"], self.kvm_probe, boot.kernel if boot else None)

    def libvirt(self):
        return self.guests.libvirt()

    def address_managed(self, vm: VM) -> bool:
        return self.seeded

    # --- the way in ---
    def no_path(self, vm: VM) -> str | None:
        """Why labctl has no management path into the guest at all (None: it has one,
        answering or not)."""
        if not self.seeded:
            return f"{seed.NOT_MANAGED}: labctl has no way in"
        if self.mgmt is None:
            return f"real guest, no way in ({mgmt.HINT} on host {self.host.name})"
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
            else:  # a host at `localhost`: this machine is the hypervisor host
                way = guest_ssh.direct(vm.name, address, **how)
            self._ways_in[vm.name] = way
        return self._ways_in[vm.name]

    def libvirt_target(self) -> str:
        """Where the libvirt connection goes, in words."""
        return libvirt_tunnel.describe(self.uri, self.tunnel) if self.tunnel else self.uri

    @classmethod
    def inventory_problems(cls, name, host, simulate: bool) -> list[Problem]:
        problems = super().inventory_problems(name, host, simulate)
        problems += boot_problems(name, host, simulate)
        if simulate and host.mgmt is not None:
            problems.append(
                (
                    ("hosts", name, "mgmt"),
                    "a simulated host has its own management bridge (labmgmt): mgmt: is for real hosts",
                )
            )
        elif host.mgmt is not None and host.seed == "none":
            problems.append(
                (
                    ("hosts", name, "mgmt"),
                    "the way in needs the seed (it gives the guests their management address and "
                    "the lab's key): not with seed: none",
                )
            )
        problems += mgmt.problems(name, host.mgmt, len(host.vms or {}))
        return problems

    def prepare(self) -> None:
        self.check_ovs()
        self.libvirt()
        if self.mgmt is not None and self.host.vms:
            why = mgmt.check_bridge(self._transport, self.mgmt, self.session.lab.bridge)
            if why:
                raise ProvisionError(self.host.name, "check the guests' management bridge", why)

    def doctor_checks(self) -> list[DoctorCheck]:
        def connect():
            conn = self.libvirt()
            return True, (
                f"libvirt {self.libvirt_target()} answers (libvirt {dotted(conn.getLibVersion())}, "
                f"{conn.getType()} {dotted(conn.getVersion())})"
            )

        def qemu_img():
            result = self._transport.run(["qemu-img", "--version"], check=False)
            return result.ok, result.stdout.splitlines()[
                0
            ] if result.ok else "qemu-img not found: install qemu-utils"

        def mgmt_bridge():
            spec = self.mgmt
            assert spec is not None
            why = mgmt.check_bridge(self._transport, spec, self.session.lab.bridge)
            if why:
                return False, why
            own = mgmt.host_address(self._transport, spec)
            if own is None:
                return False, (
                    f"the host has no address in {spec.subnet} on {spec.bridge}: labctl's connections "
                    "to the guests start from the host (ip addr add ADDRESS dev "
                    f"{spec.bridge})"
                )
            return True, f"{spec.bridge} is a Linux bridge; the host is {own} there"

        boot = self.host.options["boot"]
        checks = [
            ("libvirt connection", connect),
            ("qemu-img", qemu_img),
            accel.doctor_check(self.host.options["accel"], self.kvm_probe, boot.kernel if boot else None),
        ]
        if self.mgmt is not None:
            checks.append(("management bridge", mgmt_bridge))
        return checks

    def domain_xml(self, vm: VM) -> str:
        """The domain as `labctl plan` shows it (accel: auto as kvm: accel.planned_domain_type)."""
        return self.guests.domain_xml(vm, accel.planned_domain_type(self.uri, self.host.options["accel"]))

    def finish(self) -> None:
        for vm in self.host.vms:
            self.guests.ensure(vm)

    # --- plan: what prepare() and finish() do, described ---
    def planned_host_steps(self) -> list[PlannedStep]:
        steps = [
            *self.planned_reach_steps(),
            self.planned_connect_step(),
            PlannedStep(accel.describe(self.host.options["accel"])),
        ]
        if self.mgmt is not None and self.host.vms:
            steps.append(mgmt.planned_step(self.mgmt, len(self.host.vms)))
        return steps

    def planned_connect_step(self) -> PlannedStep:
        if self.tunnel is None:
            return PlannedStep("connect to libvirt", api=f"libvirt.open({self.uri!r})")
        return PlannedStep(
            f"connect to libvirt {self.libvirt_target()}: a channel runs "
            f"`virt-ssh-helper {self.uri}` (else nc on {libvirt_tunnel.SYSTEM_SOCKET}) as "
            f"{self.tunnel.user}, no sudo",
            api=f"libvirt.open({libvirt_tunnel.local_uri(self.uri, '<private socket>')!r})",
        )

    def planned_vm_steps(self, vm: VM) -> list[PlannedStep]:
        return self.guests.planned_vm_steps(
            vm, accel.planned_domain_type(self.uri, self.host.options["accel"])
        )

    def planned_vm_port(self, vm: VM) -> str:
        return PORT_CHOSEN_BY_LIBVIRT

    def vm_port(self, vm: VM) -> str:
        return self.guests.vm_port(vm)

    @classmethod
    def remove(cls, record: dict, transport: Transport) -> None:
        if record["kind"] != "kvm-vm":
            return super().remove(record, transport)
        uri = record["uri"]
        remove_domain(uri, record["name"], record["host"], libvirt_tunnel.tunnel_for(uri, transport))
        for path in (record.get("overlay"), record.get("seed")):
            if path:
                transport.run(["rm", "-f", path])


def boot_problems(name: str, host, simulate: bool) -> list[Problem]:
    """boot: or image:, not both; on a real host, paths are the host's own (absolute);
    simulated with guests: libvirt, one of them is needed."""
    problems: list[Problem] = []
    if host.boot is not None and host.image is not None:
        problems.append(
            (("hosts", name, "boot"), "boot: and image: are two ways to boot the guests; set one")
        )
    if host.boot is not None and not simulate:
        for field in ("kernel", "initrd"):
            path = getattr(host.boot, field)
            if path is not None and not Path(path).is_absolute():
                problems.append(
                    (
                        ("hosts", name, "boot", field),
                        f"{path!r}: a path on the host, from / (a real host has no inventory directory)",
                    )
                )
    if simulate and host.guests == "libvirt" and host.vms and host.boot is None and host.image is None:
        problems.append(
            (
                ("hosts", name, "guests"),
                "real guests need something to boot: boot: {kernel: ..., initrd: ...} or image:",
            )
        )
    return problems
