"""Xen hosts driven with `xl` in dom0, over SSH.

Each VM: a qcow2 overlay on the host's base image, an xl.cfg rendered from
templates/xl.cfg.j2 (`vif = ['bridge=br0,script=vif-openvswitch,mac=…']`),
then `xl create`. Xen's vif-openvswitch hotplug script adds the guest's NIC to
the lab bridge as vif<domid>.0; the domain id comes from `xl domid`.
`down` runs `xl destroy` and removes the cfg and the overlay, from the journal.
"""

from __future__ import annotations

from labctl.drivers import guests
from labctl.drivers.remote import RealHostDriver
from labctl.errors import ProvisionError
from labctl.model import VM, Access
from labctl.state import LabState


class XenDriver(RealHostDriver):
    name = "xen"

    def prepare(self) -> None:
        self.check_ovs()
        result = self._transport.run(["xl", "info"], check=False)
        if result.returncode == 127:
            raise ProvisionError(self.host.name, "check Xen", "xl not found: is this a Xen dom0?")

    def doctor_checks(self):
        def xl():
            result = self._transport.run(["xl", "info"], check=False)
            if result.returncode == 127:
                return False, "xl not found: is this a Xen dom0?"
            return result.ok, "xl info answers" if result.ok else result.stderr.strip()[-200:]

        def hotplug():
            found = self._transport.run(["test", "-x", "/etc/xen/scripts/vif-openvswitch"], check=False).ok
            return found, "/etc/xen/scripts/vif-openvswitch" + ("" if found else " missing")

        return [("xl toolstack", xl), ("vif-openvswitch hotplug script", hotplug)]

    def finish(self) -> None:
        for vm in self.host.vms:
            self._ensure_vm(vm)

    def cfg(self, vm: VM) -> str:
        lab = self.ctx.lab
        return guests.render(
            "xl.cfg.j2",
            lab=lab.name,
            vm=vm.name,
            name=guests.guest_name(lab.name, vm.name),
            disk=guests.overlay_path(lab.name, vm.name),
            bridge=lab.bridge,
            mac=vm.mac,
        )

    def _ensure_vm(self, vm: VM) -> None:
        lab, transport = self.ctx.lab, self._transport
        name = guests.guest_name(lab.name, vm.name)
        if self.domid(name) is not None:
            return
        cfg_path = f"{guests.lab_dir(lab.name)}/{vm.name}.cfg"
        overlay = guests.overlay_path(lab.name, vm.name)
        self.record("xen-vm", name=name, cfg=cfg_path, overlay=overlay)
        guests.create_overlay(transport, self.host.access.image, overlay, self.host.name)
        transport.put_file(cfg_path, self.cfg(vm).encode())
        transport.run(["xl", "create", cfg_path])
        self.ctx.report.changed(self.host.name, f"VM {vm.name} (xl create {cfg_path})")

    def domid(self, name: str) -> int | None:
        result = self._transport.run(["xl", "domid", name], check=False)
        return int(result.stdout.strip()) if result.ok and result.stdout.strip().isdigit() else None

    def vm_port(self, vm: VM) -> str:
        domid = self.domid(guests.guest_name(self.ctx.lab.name, vm.name))
        return f"vif{domid}.0" if domid is not None else f"vif?.0 ({vm.name} not running)"

    @classmethod
    def undo(cls, record: dict, state: LabState) -> None:
        if record["kind"] != "xen-vm":
            return super().undo(record, state)
        access = Access(
            record.get("user"), record.get("port", 22), record.get("key"), record.get("known_hosts")
        )
        transport = cls.connect(record["host"], record.get("address") or "localhost", access)
        try:
            if transport.run(["xl", "domid", record["name"]], check=False).ok:
                transport.run(["xl", "destroy", record["name"]])
            transport.run(["rm", "-f", record["cfg"], record["overlay"]])
        finally:
            transport.close()
