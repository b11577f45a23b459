"""KVM hosts through libvirt-python.

Each VM is a libvirt guest (libvirt_guests.py: the domain, its boot source, its
port), on the host's libvirtd at the inventory's `uri:`, else `qemu:///system` for
a local host and `qemu+ssh://user@address/system` for a remote one. The guests run
under KVM or, where KVM is missing or unusable, under TCG (`accel:`, accel.py).
`down` destroys and undefines each domain labctl defined and removes its overlay.

A simulated kvm host with `guests: libvirt` runs the same guest code against a
libvirtd inside the simulated host (sim.py, libvirtd.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from labctl.drivers import accel, guests
from labctl.drivers.base import DoctorCheck, LabSession, PlannedStep, Problem
from labctl.drivers.libvirt_guests import (
    PORT_CHOSEN_BY_LIBVIRT,
    BootSpec,
    GuestFiles,
    LibvirtGuests,
    remove_domain,
)
from labctl.drivers.remote import LOCAL_ADDRESSES, RealHostDriver
from labctl.fieldtypes import HostField
from labctl.model import VM, Host
from labctl.transport.base import Transport
from labctl.versions import dotted


def default_uri(host: Host) -> str:
    address = host.address or "localhost"
    if address in LOCAL_ADDRESSES:
        return "qemu:///system"
    user, _, hostname = address.rpartition("@")
    user = user or host.access.user or "root"
    port = f":{host.access.port}" if host.access.port != 22 else ""
    query = f"?keyfile={host.access.key}" if host.access.key else ""
    return f"qemu+ssh://{user}@{hostname}{port}/system{query}"


class KvmDriver(RealHostDriver):
    name = "kvm"
    host_fields = {
        # the libvirt URI (default: qemu:///system here, qemu+ssh://user@address/system elsewhere)
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
    }

    def __init__(self, session: LabSession, host: Host):
        super().__init__(session, host)
        self.uri = host.options["uri"] or default_uri(host)
        self.kvm_probe = accel.KvmProbe(self._transport)
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
            journal=lambda vm, name, overlay: self.record("kvm-vm", uri=self.uri, name=name, overlay=overlay),
        )

    def accel(self) -> accel.Accel:
        boot = self.host.options["boot"]
        return accel.choose(self.host.options["accel"], self.kvm_probe, boot.kernel if boot else None)

    def libvirt(self):
        return self.guests.libvirt()

    @classmethod
    def inventory_problems(cls, name, host, simulate: bool) -> list[Problem]:
        problems = super().inventory_problems(name, host, simulate)
        problems += boot_problems(name, host, simulate)
        return problems

    def prepare(self) -> None:
        self.check_ovs()
        self.libvirt()

    def doctor_checks(self) -> list[DoctorCheck]:
        def connect():
            conn = self.libvirt()
            return True, (
                f"libvirt {self.uri} answers (libvirt {dotted(conn.getLibVersion())}, "
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
            PlannedStep("connect to libvirt", api=f"libvirt.open({self.uri!r})"),
            PlannedStep(accel.describe(self.host.options["accel"])),
        ]

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
        remove_domain(record["uri"], record["name"], record["host"])
        if record.get("overlay"):
            transport.run(["rm", "-f", record["overlay"]])


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
