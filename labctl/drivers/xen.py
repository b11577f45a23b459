"""Xen hosts driven with `xl` in dom0, over SSH.

Each VM: a qcow2 overlay on the host's base image, an xl.cfg rendered from
templates/xl.cfg.j2 (`vif = ['bridge=br0,type=vif,script=vif-openvswitch,mac=…']`),
then `xl create`. Xen's vif-openvswitch hotplug script adds the guest's NIC to
the lab bridge as vif<domid>.0; the domain id comes from `xl domid`. `type=vif`:
the PV NIC only, so an HVM guest gets no emulated twin (vif<domid>.0-emu) on the
bridge beside the port labctl reports; the guest needs PV network drivers
(Linux's xen-netfront).
`down` runs `xl destroy` and removes the cfg and the overlay, from the journal.
"""

from __future__ import annotations

from labctl.drivers import guests
from labctl.drivers.base import DoctorCheck, PlannedStep
from labctl.drivers.remote import RealHostDriver
from labctl.errors import ProvisionError
from labctl.model import VM
from labctl.transport.base import Transport

XL_INFO = ["xl", "info"]  # answers only in a Xen dom0


def xl_create(cfg_path: str) -> list[str]:
    return ["xl", "create", cfg_path]


class XenDriver(RealHostDriver):
    name = "xen"
    host_fields = {"image": guests.IMAGE}

    def prepare(self) -> None:
        self.check_ovs()
        result = self._transport.run(XL_INFO, check=False)
        if result.returncode == 127:
            raise ProvisionError(self.host.name, "check Xen", "xl not found: is this a Xen dom0?")

    def doctor_checks(self) -> list[DoctorCheck]:
        def xl():
            result = self._transport.run(XL_INFO, check=False)
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
        return guests.render_guest("xl.cfg.j2", self.session.lab, vm)

    def cfg_path(self, vm: VM) -> str:
        return f"{guests.lab_dir(self.session.lab.name)}/{vm.name}.cfg"

    def _ensure_vm(self, vm: VM) -> None:
        lab, transport = self.session.lab, self._transport
        name = guests.guest_name(lab.name, vm.name)
        if self.domid(name) is not None:
            return
        cfg_path = self.cfg_path(vm)
        overlay = guests.overlay_path(lab.name, vm.name)
        self.record("xen-vm", name=name, cfg=cfg_path, overlay=overlay)
        guests.create_overlay(transport, self.host.options["image"], overlay, self.host.name)
        transport.put_file(cfg_path, self.cfg(vm).encode())
        transport.run(xl_create(cfg_path))
        self.session.report.changed(self.host.name, f"VM {vm.name} (xl create {cfg_path})")

    # --- plan: what prepare() and _ensure_vm() do, described ---
    def planned_host_steps(self) -> list[PlannedStep]:
        return [*self.planned_reach_steps(), PlannedStep("check this is a Xen dom0", argv=tuple(XL_INFO))]

    def planned_vm_steps(self, vm: VM) -> list[PlannedStep]:
        cfg_path = self.cfg_path(vm)
        overlay = guests.overlay_path(self.session.lab.name, vm.name)
        return [
            *guests.planned_overlay(self.host.options["image"], overlay),
            PlannedStep(
                f"write {cfg_path}: vif on {self.session.lab.bridge} via vif-openvswitch, MAC {vm.mac}, "
                f"MTU {self.session.lab.mtu}",
                files=((cfg_path, self.cfg(vm)),),
            ),
            PlannedStep(
                f"create domain {guests.guest_name(self.session.lab.name, vm.name)}",
                argv=tuple(xl_create(cfg_path)),
            ),
        ]

    def planned_vm_port(self, vm: VM) -> str:
        return "vif<domid>.0, the domain id Xen gives it; vif-openvswitch plugs it into the bridge"

    def domid(self, name: str) -> int | None:
        result = self._transport.run(["xl", "domid", name], check=False)
        return int(result.stdout.strip()) if result.ok and result.stdout.strip().isdigit() else None

    def vm_port(self, vm: VM) -> str:
        domid = self.domid(guests.guest_name(self.session.lab.name, vm.name))
        return f"vif{domid}.0" if domid is not None else f"vif?.0 ({vm.name} not running)"

    @classmethod
    def remove(cls, record: dict, transport: Transport) -> None:
        if record["kind"] != "xen-vm":
            return super().remove(record, transport)
        if transport.run(["xl", "domid", record["name"]], check=False).ok:
            transport.run(["xl", "destroy", record["name"]])
        transport.run(["rm", "-f", record["cfg"], record["overlay"]])
