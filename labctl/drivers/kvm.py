"""KVM hosts through libvirt-python.

Each VM: a qcow2 overlay on the host's base image (`qemu-img create -b`, run on
the host over its transport), a domain defined from
templates/libvirt-domain.xml.j2 (`<interface type='bridge'>` on the lab bridge
with `<virtualport type='openvswitch'/>`: libvirt plugs the tap into OVS
itself), then started. The OVS port is the tap libvirt chose (vnetN), read
back from the running domain's XML (`<target dev=…>`).

The libvirt URI comes from the inventory (`uri:`), else `qemu:///system` for
a local host and `qemu+ssh://user@address/system` for a remote one. `down`
destroys and undefines each domain labctl defined and removes its overlay.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

from labctl.drivers import guests
from labctl.drivers.base import Context
from labctl.drivers.remote import LOCAL_ADDRESSES, RealHostDriver
from labctl.errors import ProvisionError
from labctl.model import VM, Access, Host
from labctl.state import LabState


def default_uri(host: Host) -> str:
    address = host.address or "localhost"
    if address in LOCAL_ADDRESSES:
        return "qemu:///system"
    user, _, hostname = address.rpartition("@")
    user = user or host.access.user or "root"
    port = f":{host.access.port}" if host.access.port != 22 else ""
    query = f"?keyfile={host.access.key}" if host.access.key else ""
    return f"qemu+ssh://{user}@{hostname}{port}/system{query}"


def domain_type(uri: str) -> str:
    return "test" if uri.startswith("test:") else "kvm"


def open_libvirt(uri: str, host: str):
    import libvirt

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


class KvmDriver(RealHostDriver):
    name = "kvm"

    def __init__(self, ctx: Context, host: Host):
        super().__init__(ctx, host)
        self.uri = host.access.uri or default_uri(host)
        self._conn = None
        self._lock = threading.Lock()

    def libvirt(self):
        with self._lock:
            if self._conn is None:
                self._conn = open_libvirt(self.uri, self.host.name)
            return self._conn

    def prepare(self) -> None:
        self.check_ovs()
        self.libvirt()

    def doctor_checks(self):
        def connect():
            conn = self.libvirt()
            return True, f"libvirt {self.uri} answers ({conn.getType()} {conn.getVersion()})"

        def qemu_img():
            result = self._transport.run(["qemu-img", "--version"], check=False)
            return result.ok, result.stdout.splitlines()[
                0
            ] if result.ok else "qemu-img not found: install qemu-utils"

        return [("libvirt connection", connect), ("qemu-img", qemu_img)]

    def domain_xml(self, vm: VM) -> str:
        lab = self.ctx.lab
        return guests.render(
            "libvirt-domain.xml.j2",
            domain_type=domain_type(self.uri),
            lab=lab.name,
            vm=vm.name,
            name=guests.guest_name(lab.name, vm.name),
            disk=guests.overlay_path(lab.name, vm.name),
            bridge=lab.bridge,
            mac=vm.mac,
        )

    def finish(self) -> None:
        for vm in self.host.vms:
            self._ensure_vm(vm)

    def _ensure_vm(self, vm: VM) -> None:
        import libvirt

        conn, name = self.libvirt(), guests.guest_name(self.ctx.lab.name, vm.name)
        step = f"define and start VM {vm.name}"
        try:
            domain = lookup(conn, name)
            if domain is None:
                overlay = guests.overlay_path(self.ctx.lab.name, vm.name)
                self.record("kvm-vm", uri=self.uri, name=name, overlay=overlay)
                guests.create_overlay(self._transport, self.host.access.image, overlay, self.host.name)
                domain = conn.defineXML(self.domain_xml(vm))
                self.ctx.report.changed(self.host.name, f"VM {vm.name} defined ({self.uri})")
            if not domain.isActive():
                domain.create()
                self.ctx.report.changed(self.host.name, f"VM {vm.name} started")
        except libvirt.libvirtError as exc:
            raise ProvisionError(self.host.name, step, exc.get_error_message()) from None

    def vm_port(self, vm: VM) -> str:
        domain = lookup(self.libvirt(), guests.guest_name(self.ctx.lab.name, vm.name))
        tap = tap_of(domain.XMLDesc(), vm.mac) if domain is not None and domain.isActive() else None
        return tap or f"vnet? ({vm.name} not running)"

    @classmethod
    def undo(cls, record: dict, state: LabState) -> None:
        if record["kind"] != "kvm-vm":
            return super().undo(record, state)
        import libvirt

        conn = open_libvirt(record["uri"], record["host"])
        try:
            domain = lookup(conn, record["name"])
            if domain is not None:
                if domain.isActive():
                    domain.destroy()
                domain.undefine()
        except libvirt.libvirtError as exc:
            raise ProvisionError(
                record["host"], f"remove VM {record['name']}", exc.get_error_message()
            ) from None
        finally:
            conn.close()
        access = Access(
            record.get("user"), record.get("port", 22), record.get("key"), record.get("known_hosts")
        )
        transport = cls.connect(record["host"], record.get("address") or "localhost", access)
        try:
            transport.run(["rm", "-f", record["overlay"]])
        finally:
            transport.close()
