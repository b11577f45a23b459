"""KVM guests through libvirt-python: what the kvm driver does on a real KVM host, and
what a simulated kvm host with `guests: libvirt` does with the libvirtd running inside it.

A guest boots from a qcow2 overlay on a base image (`image:`; `qemu-img create -b`,
run over the host's transport, so the base is never written) or straight from a
kernel and an initrd (`boot:`). Its domain comes from templates/libvirt-domain.xml.j2:
one NIC, `<interface type='bridge'>` on the lab bridge with
`<virtualport type='openvswitch'/>`, so libvirt makes the tap (vnetN) and adds it to
OVS itself; with a `Management` path, a second NIC on a plain Linux bridge (labctl's
way in, never the lab bridge). The OVS port is read back from the running domain's
XML (`<target dev=…>`).
The domain type (kvm, or qemu for TCG) is decided when a guest is first defined
(accel.py).
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from labctl.drivers import guests
from labctl.drivers.accel import Accel
from labctl.drivers.base import LabSession, PlannedStep
from labctl.errors import InputError, ProvisionError
from labctl.fieldtypes import PATH_PATTERN
from labctl.model import VM, Host
from labctl.transport.base import Transport

PORT_CHOSEN_BY_LIBVIRT = "vnetN, chosen by libvirt, which plugs it into the bridge"
NO_BOOT = "set image: (the base qcow2 image the VMs boot from) or boot: (a kernel and an initrd)"


class BootSpec(BaseModel):
    """`boot:` of a kvm host: the guests boot this kernel and initrd directly (no disk)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kernel: str = Field(pattern=PATH_PATTERN)
    initrd: str | None = Field(default=None, pattern=PATH_PATTERN)
    # added to the kernel command line labctl writes (console=ttyS0 labctl.ip=ADDRESS)
    cmdline: str = Field(default="", pattern=r"^[A-Za-z0-9_.,:=/+@ -]{0,400}$")


def kernel_cmdline(vm: VM, boot: BootSpec, mgmt: str | None = None) -> str:
    """The serial console (the domain's log), and the VM's inventory address for an
    initramfs that sets it (labctl.ip=172.16.0.1/24; the kernel itself ignores it), and
    its management address when it has a way in (labctl.mgmt=169.254.100.10/24)."""
    parts = ("console=ttyS0", f"labctl.ip={vm.ip}", f"labctl.mgmt={mgmt}" if mgmt else "", boot.cmdline)
    return " ".join(part for part in parts if part)


@dataclass(frozen=True)
class Management:
    """The way in: a second NIC on `bridge`, a plain Linux bridge of the hypervisor host
    that is not the lab's br0; `address(vm)` is the guest's address there (with prefix)."""

    bridge: str
    address: Callable[[VM], str]


def mgmt_mac(vm: VM) -> str:
    """The second NIC's MAC: the lab MAC with its first octet 02 -> 06 (still local)."""
    return "06" + vm.mac[2:]


@dataclass(frozen=True)
class GuestFiles:
    """Where one host's guests keep their files (overlays, console logs): `inside` as
    libvirt and QEMU see the directory, `outside` as labctl reaches it over the host's
    transport. The same directory on a real host; a simulated host's libvirtd has
    private /var and /run (libvirtd.py). `console_log`: the serial console goes to a
    file labctl can read (else a pty, as usual on a real host)."""

    inside: str
    outside: str
    console_log: bool = False

    def of(self, name: str) -> tuple[str, str]:
        return f"{self.inside}/{name}", f"{self.outside}/{name}"


def open_libvirt(uri: str, host: str):
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors are raised, not printed
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise ProvisionError(host, f"connect to libvirt at {uri}", exc.get_error_message()) from None


def lookup(conn, name: str):
    import libvirt

    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def tap_of(domain_xml: str, mac: str) -> str | None:
    """The device libvirt gave the NIC with this MAC (vnetN), from the live domain XML."""
    for iface in ET.fromstring(domain_xml).iterfind("devices/interface"):
        mac_el, target = iface.find("mac"), iface.find("target")
        if mac_el is not None and mac_el.get("address", "").lower() == mac.lower() and target is not None:
            return target.get("dev")
    return None


def remove_domain(uri: str, name: str, host: str) -> None:
    """Destroy and undefine a domain labctl defined; gone already is fine."""
    import libvirt

    conn = open_libvirt(uri, host)
    try:
        domain = lookup(conn, name)
        if domain is not None:
            if domain.isActive():
                domain.destroy()
            domain.undefine()
    except libvirt.libvirtError as exc:
        raise ProvisionError(host, f"remove VM {name}", exc.get_error_message()) from None
    finally:
        conn.close()


# journal(vm, domain name, overlay path outside or None): the owner records the guest
# before it is made, in its own record kind, so its own undo() removes it.
Journal = Callable[[VM, str, str | None], None]


class LibvirtGuests:
    """One host's guests, over one libvirt connection (opened on first use)."""

    def __init__(
        self,
        session: LabSession,
        host: Host,
        *,
        uri: str,
        transport: Transport,
        files: GuestFiles,
        boot: BootSpec | None,
        image: str | None,
        accel: Callable[[], Accel],
        journal: Journal,
        mgmt: Management | None = None,
    ):
        self.session, self.host, self.uri, self.transport = session, host, uri, transport
        self.files, self.boot, self.image = files, boot, image
        self.accel, self.journal, self.mgmt = accel, journal, mgmt
        self._conn = None
        self._lock = threading.Lock()

    def libvirt(self):
        with self._lock:
            if self._conn is None:
                self._conn = open_libvirt(self.uri, self.host.name)
            return self._conn

    def name(self, vm: VM) -> str:
        return guests.guest_name(self.session.lab.name, vm.name)

    def domain_xml(self, vm: VM, domain_type: str) -> str:
        overlay_inside, _ = self.files.of(f"{vm.name}.qcow2")
        console, _ = self.files.of(f"{vm.name}.console")
        boot = self.boot
        return guests.render_guest(
            "libvirt-domain.xml.j2",
            self.session.lab,
            vm,
            domain_type=domain_type,
            disk=None if boot else overlay_inside,
            kernel=boot.kernel if boot else None,
            initrd=boot.initrd if boot else None,
            cmdline=kernel_cmdline(vm, boot, self.mgmt.address(vm) if self.mgmt else None) if boot else None,
            console_log=console if self.files.console_log else None,
            mgmt_bridge=self.mgmt.bridge if self.mgmt else None,
            mgmt_mac=mgmt_mac(vm),
        )

    def console_log(self, vm: VM) -> str | None:
        """Where labctl can read the guest's serial console (None: a pty)."""
        return self.files.of(f"{vm.name}.console")[1] if self.files.console_log else None

    # --- up ---
    def ensure(self, vm: VM) -> None:
        """Define the guest unless it is, start it unless it runs."""
        import libvirt

        conn, name = self.libvirt(), self.name(vm)
        try:
            domain = lookup(conn, name)
            if domain is None:
                if not (self.boot or self.image):
                    raise InputError(f"host {self.host.name}: {NO_BOOT}")
                accel = self.accel() if not self.uri.startswith("test:") else None
                overlay = None if self.boot else self.files.of(f"{vm.name}.qcow2")[1]
                self.journal(vm, name, overlay)
                if self.files.console_log:  # QEMU writes the console there
                    self.transport.run(["mkdir", "-p", self.files.outside])
                if overlay is not None:
                    guests.create_overlay(self.transport, self.image, overlay, self.host.name)
                domain = conn.defineXML(self.domain_xml(vm, accel.domain_type if accel else "test"))
                how = f" under {accel}" if accel else ""
                self.session.report.changed(self.host.name, f"VM {vm.name} defined{how}")
            if not domain.isActive():
                domain.create()
                console = self.console_log(vm)
                self.session.report.changed(
                    self.host.name,
                    f"VM {vm.name} started, booting" + (f" (console: {console})" if console else ""),
                )
        except libvirt.libvirtError as exc:
            raise ProvisionError(
                self.host.name, f"define and start VM {vm.name}", exc.get_error_message()
            ) from None

    # --- status ---
    def vm_port(self, vm: VM) -> str:
        """vnetN from the running domain; a placeholder when it is not running or libvirt
        cannot be asked (status shows the host all the same)."""
        import libvirt

        try:
            domain = lookup(self.libvirt(), self.name(vm))
            tap = tap_of(domain.XMLDesc(), vm.mac) if domain is not None and domain.isActive() else None
        except (libvirt.libvirtError, ProvisionError):
            tap = None
        return tap or f"vnet? ({vm.name} not running)"

    def not_running(self) -> list[str]:
        """Drift: each guest that is not running."""
        import libvirt

        out = []
        for vm in self.host.vms:
            try:
                domain = lookup(self.libvirt(), self.name(vm))
                running = domain is not None and domain.isActive()
            except libvirt.libvirtError:
                running = False
            if not running:
                out.append(f"VM {vm.name} is not running (libvirt domain {self.name(vm)})")
        return out

    # --- plan: what ensure() does, described ---
    def planned_vm_steps(self, vm: VM, domain_type: str) -> list[PlannedStep]:
        name = self.name(vm)
        if self.boot:
            made = [
                PlannedStep(
                    f"boot kernel {self.boot.kernel}"
                    + (f", initrd {self.boot.initrd}" if self.boot.initrd else "")
                )
            ]
        elif self.image:
            made = guests.planned_overlay(self.image, self.files.of(f"{vm.name}.qcow2")[1])
        else:
            made = [
                PlannedStep(
                    f"qcow2 overlay {self.files.of(f'{vm.name}.qcow2')[1]}", problem=NO_BOOT, field="image"
                )
            ]
        return [
            *made,
            PlannedStep(
                f"define domain {name}: NIC {vm.mac} on {self.session.lab.bridge}, virtualport openvswitch",
                api="libvirt virConnect.defineXML(domain XML)",
                files=((f"{name}.xml", self.domain_xml(vm, domain_type)),),
            ),
            PlannedStep(f"start domain {name}", api="libvirt virDomain.create()"),
        ]
