"""KVM guests through libvirt-python: what the kvm driver does on a real KVM host, and
what a simulated kvm host with `guests: libvirt` does with the libvirtd running inside it.

A guest boots from a qcow2 overlay on a base image (`image:`; `qemu-img create -b`,
run over the host's transport, so the base is never written) or straight from a
kernel and an initrd (`boot:`). Its domain comes from templates/libvirt-domain.xml.j2:
one NIC, `<interface type='bridge'>` on the lab bridge with
`<virtualport type='openvswitch'/>`, so libvirt makes the tap (vnetN) and adds it to
OVS itself; with a `Management` path, a second NIC on a plain Linux bridge (labctl's
way in, never the lab bridge). With `seeds`, each guest gets its NoCloud seed (seed.py:
its address and MTU, its management address, the lab's key) as a SATA CD, written next
to its overlay before the domain is defined. The OVS port is read back from the running
domain's XML (`<target dev=…>`).
The domain type (kvm, or qemu for TCG) is decided when a guest is first defined
(accel.py).
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from labctl.drivers import guests, libvirt_tunnel, seed
from labctl.drivers.accel import Accel
from labctl.drivers.base import LabSession, PlannedStep
from labctl.drivers.mgmt import mgmt_mac
from labctl.errors import InputError, ProvisionError
from labctl.fieldtypes import PATH_PATTERN
from labctl.model import VM, Host
from labctl.transport.base import Transport
from labctl.transport.ssh import SshTransport

PORT_CHOSEN_BY_LIBVIRT = "vnetN, chosen by libvirt, which plugs it into the bridge"
NO_BOOT = "set image: (the base qcow2 image the VMs boot from) or boot: (a kernel and an initrd)"


class BootSpec(BaseModel):
    """`boot:` of a kvm host: the guests boot this kernel and initrd directly (no disk)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kernel: str = Field(pattern=PATH_PATTERN)
    initrd: str | None = Field(default=None, pattern=PATH_PATTERN)
    # added to the kernel command line labctl writes (console=ttyS0 labctl.ip=ADDRESS)
    cmdline: str = Field(default="", pattern=r"^[A-Za-z0-9_.,:=/+@ -]{0,400}$")


def kernel_cmdline(vm: VM, boot: BootSpec) -> str:
    """The serial console (the domain's log), and the VM's inventory address for an
    initramfs of the user's that sets it without a seed (labctl.ip=172.16.0.1/24; the
    kernel itself ignores it)."""
    parts = ("console=ttyS0", f"labctl.ip={vm.ip}", boot.cmdline)
    return " ".join(part for part in parts if part)


@dataclass(frozen=True)
class Management:
    """The way in: a second NIC on `bridge`, a plain Linux bridge of the hypervisor host
    that is not the lab's br0; `address(vm)` is the guest's address there (with prefix)."""

    bridge: str
    address: Callable[[VM], str]


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


def open_libvirt(uri: str, host: str, tunnel: SshTransport | None = None):
    """A libvirt connection: to `uri` on the host over its SSH connection when `tunnel`
    is given (libvirt_tunnel.py), else to `uri` as libvirt itself reaches it."""
    import libvirt

    if tunnel is not None:
        return libvirt_tunnel.open_over_ssh(tunnel, uri, host)
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


def remove_domain(uri: str, name: str, host: str, tunnel: SshTransport | None = None) -> None:
    """Destroy and undefine a domain labctl defined; gone already is fine."""
    import libvirt

    conn = open_libvirt(uri, host, tunnel)
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


# journal(vm, domain name, overlay path outside or None, seed path outside or None): the
# owner records the guest before it is made, in its own record kind, so its own undo()
# removes it.
Journal = Callable[[VM, str, str | None, str | None], None]


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
        seeds: bool = False,
        tunnel: SshTransport | None = None,
    ):
        self.session, self.host, self.uri, self.transport = session, host, uri, transport
        self.tunnel = tunnel  # the SSH connection libvirt is reached over, if any
        self.files, self.boot, self.image = files, boot, image
        self.accel, self.journal, self.mgmt, self.seeds = accel, journal, mgmt, seeds
        self._conn = None
        self._lock = threading.Lock()

    def libvirt(self):
        with self._lock:
            if self._conn is None:
                self._conn = open_libvirt(self.uri, self.host.name, self.tunnel)
            return self._conn

    def close(self) -> None:
        """Close the connection (the next call to libvirt() opens a new one)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def name(self, vm: VM) -> str:
        return guests.guest_name(self.session.lab.name, vm.name)

    def seed_path(self, vm: VM) -> tuple[str, str] | None:
        """The guest's seed (inside, outside), when it gets one."""
        return self.files.of(seed.FILE.format(vm=vm.name)) if self.seeds else None

    def seed_image(self, vm: VM) -> bytes:
        mgmt = (mgmt_mac(vm), self.mgmt.address(vm)) if self.mgmt else None
        return seed.build(self.session, vm, self.name(vm), mgmt)

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
            cmdline=kernel_cmdline(vm, boot) if boot else None,
            seed=seed_file[0] if (seed_file := self.seed_path(vm)) else None,
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
                seed_file = self.seed_path(vm)
                self.journal(vm, name, overlay, seed_file[1] if seed_file else None)
                if self.files.console_log:  # QEMU writes the console there
                    self.transport.run(["mkdir", "-p", self.files.outside])
                if overlay is not None:
                    guests.create_overlay(self.transport, self.image, overlay, self.host.name)
                if seed_file is not None:  # private: it holds the guest's host key
                    self.transport.put_file(seed_file[1], self.seed_image(vm), mode=0o600)
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
        seed_file = self.seed_path(vm)
        if seed_file is not None:
            made.append(
                PlannedStep(
                    f"NoCloud seed {seed_file[1]} (ISO9660 cidata: {vm.ip}, MTU {self.session.lab.mtu}"
                    + (f", management {self.mgmt.address(vm)}" if self.mgmt else "")
                    + ", the lab's SSH key), attached as a CD"
                )
            )
        return [
            *made,
            PlannedStep(
                f"define domain {name}: NIC {vm.mac} on {self.session.lab.bridge}, virtualport openvswitch"
                + (
                    f"; management NIC {mgmt_mac(vm)} on {self.mgmt.bridge} (a Linux bridge), "
                    f"{self.mgmt.address(vm)}"
                    if self.mgmt
                    else ""
                ),
                api="libvirt virConnect.defineXML(domain XML)",
                files=((f"{name}.xml", self.domain_xml(vm, domain_type)),),
            ),
            PlannedStep(f"start domain {name}", api="libvirt virDomain.create()"),
        ]
