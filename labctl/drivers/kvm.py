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
connection to the host (way_in.py): verify, exec, shell. Without it, a real guest has no
way in and its pairs are not verifiable; `status` names the bridge when it is gone.

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
from labctl.drivers.way_in import LinuxBridgeWayIn
from labctl.faults import Fault
from labctl.fieldtypes import HostField
from labctl.model import VM, Host
from labctl.transport.base import Transport
from labctl.versions import dotted

DEFAULT_URI = "qemu:///system"  # on the host itself: tunnelled when the host is reached over SSH


class KvmDriver(LinuxBridgeWayIn, RealHostDriver):
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
        self.init_way_in(host)
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

    def libvirt_target(self) -> str:
        """Where the libvirt connection goes, in words."""
        return libvirt_tunnel.describe(self.uri, self.tunnel) if self.tunnel else self.uri

    @classmethod
    def inventory_problems(cls, name, host, simulate: bool) -> list[Problem]:
        problems = super().inventory_problems(name, host, simulate)
        return problems + boot_problems(name, host, simulate) + mgmt.field_problems(name, host, simulate)

    def prepare(self) -> None:
        self.check_ovs()
        self.libvirt()
        self.check_mgmt_bridge()

    def faults(self) -> list[Fault]:
        return super().faults() + self.mgmt_faults()

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

        boot = self.host.options["boot"]
        return [
            ("libvirt connection", connect),
            ("qemu-img", qemu_img),
            accel.doctor_check(self.host.options["accel"], self.kvm_probe, boot.kernel if boot else None),
            *self.mgmt_doctor_checks(),
        ]

    def domain_xml(self, vm: VM) -> str:
        """The domain as `labctl plan` shows it (accel: auto as kvm: accel.planned_domain_type)."""
        return self.guests.domain_xml(vm, accel.planned_domain_type(self.uri, self.host.options["accel"]))

    def finish(self) -> None:
        for vm in self.host.vms:
            self.guests.ensure(vm)

    # --- plan: what prepare() and finish() do, described ---
    def planned_host_steps(self) -> list[PlannedStep]:
        return [
            *self.planned_reach_steps(),
            self.planned_connect_step(),
            PlannedStep(accel.describe(self.host.options["accel"])),
            *self.planned_mgmt_steps(),
        ]

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
