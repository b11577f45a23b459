"""Xen hosts driven with `xl` in dom0, over SSH.

Each VM: a qcow2 overlay on the host's base image, an xl.cfg rendered from
templates/xl.cfg.j2 (`vif = ['bridge=br0,type=vif,script=vif-openvswitch,mac=…']`),
then `xl create`. Xen's vif-openvswitch hotplug script adds the guest's NIC to
the lab bridge as vif<domid>.0; the domain id comes from `xl domid`. `type=vif`:
the PV NIC only, so an HVM guest gets no emulated twin (vif<domid>.0-emu) on the
bridge beside the port labctl reports; the guest needs PV network drivers
(Linux's xen-netfront). Each VM also gets its NoCloud seed (seed.py: its address, the
lab's MTU and SSH key) as a read-only CD, `devtype=cdrom` in the cfg's disk list, unless
`seed: none`.

With `mgmt:` (mgmt.py, as on kvm), each guest gets a second vif on a Linux bridge of the
host, `script=vif-bridge` (Xen's own, never vif-openvswitch, never the lab's bridge), whose
MAC and static address its seed carries; labctl reaches it over SSH through its SSH
connection to dom0 (way_in.py): verify, exec, shell. Without it, a real guest has no way
in and its pairs are not verifiable.
`down` runs `xl destroy` and removes the cfg, the overlay and the seed, from the journal.
"""

from __future__ import annotations

from labctl.drivers import guests, mgmt, seed
from labctl.drivers.base import DoctorCheck, LabSession, PlannedStep, Problem
from labctl.drivers.remote import RealHostDriver
from labctl.drivers.way_in import LinuxBridgeWayIn
from labctl.errors import ProvisionError
from labctl.faults import Fault
from labctl.model import VM, Host
from labctl.transport.base import Transport

XL_INFO = ["xl", "info"]  # answers only in a Xen dom0
SCRIPTS = "/etc/xen/scripts"


def xl_create(cfg_path: str) -> list[str]:
    return ["xl", "create", cfg_path]


class XenDriver(LinuxBridgeWayIn, RealHostDriver):
    name = "xen"
    host_fields = {
        "image": guests.IMAGE,
        # each guest's NoCloud seed (address, MTU, the lab's key); none: an image without cloud-init
        "seed": seed.FIELD,
        # the guests' way in: a second vif on this Linux bridge of the host, an address of subnet
        "mgmt": mgmt.FIELD,
    }

    def __init__(self, session: LabSession, host: Host):
        super().__init__(session, host)
        self.init_way_in(host)

    @classmethod
    def inventory_problems(cls, name, host, simulate: bool) -> list[Problem]:
        return super().inventory_problems(name, host, simulate) + mgmt.field_problems(name, host, simulate)

    def prepare(self) -> None:
        self.check_ovs()
        result = self._transport.run(XL_INFO, check=False)
        if result.returncode == 127:
            raise ProvisionError(self.host.name, "check Xen", "xl not found: is this a Xen dom0?")
        self.check_mgmt_bridge()

    def faults(self) -> list[Fault]:
        return super().faults() + self.mgmt_faults()

    def doctor_checks(self) -> list[DoctorCheck]:
        def xl():
            result = self._transport.run(XL_INFO, check=False)
            if result.returncode == 127:
                return False, "xl not found: is this a Xen dom0?"
            return result.ok, "xl info answers" if result.ok else result.stderr.strip()[-200:]

        def hotplug(script: str):
            found = self._transport.run(["test", "-x", f"{SCRIPTS}/{script}"], check=False).ok
            return found, f"{SCRIPTS}/{script}" + ("" if found else " missing")

        checks = [
            ("xl toolstack", xl),
            ("vif-openvswitch hotplug script", lambda: hotplug("vif-openvswitch")),
        ]
        if self.mgmt is not None:
            checks.append(("vif-bridge hotplug script", lambda: hotplug("vif-bridge")))
        return checks + self.mgmt_doctor_checks()

    def finish(self) -> None:
        for vm in self.host.vms:
            self._ensure_vm(vm)

    def cfg(self, vm: VM) -> str:
        return guests.render_guest(
            "xl.cfg.j2",
            self.session.lab,
            vm,
            seed=self.seed_path(vm),
            mgmt_bridge=self.mgmt.bridge if self.mgmt else None,
            mgmt_mac=mgmt.mgmt_mac(vm),
        )

    def seed_path(self, vm: VM) -> str | None:
        if self.host.options["seed"] == "none":
            return None
        return f"{guests.lab_dir(self.session.lab.name)}/{seed.FILE.format(vm=vm.name)}"

    def cfg_path(self, vm: VM) -> str:
        return f"{guests.lab_dir(self.session.lab.name)}/{vm.name}.cfg"

    def _ensure_vm(self, vm: VM) -> None:
        lab, transport = self.session.lab, self._transport
        name = guests.guest_name(lab.name, vm.name)
        if self.domid(name) is not None:
            return
        cfg_path = self.cfg_path(vm)
        overlay = guests.overlay_path(lab.name, vm.name)
        seed_path = self.seed_path(vm)
        self.record("xen-vm", name=name, cfg=cfg_path, overlay=overlay, seed=seed_path)
        guests.create_overlay(transport, self.host.options["image"], overlay, self.host.name)
        if seed_path is not None:  # private: it holds the guest's host key
            transport.put_file(seed_path, seed.build(self.session, vm, name, self.mgmt_nic(vm)), mode=0o600)
        transport.put_file(cfg_path, self.cfg(vm).encode())
        transport.run(xl_create(cfg_path))
        self.session.report.changed(self.host.name, f"VM {vm.name} (xl create {cfg_path})")

    # --- plan: what prepare() and _ensure_vm() do, described ---
    def planned_host_steps(self) -> list[PlannedStep]:
        return [
            *self.planned_reach_steps(),
            PlannedStep("check this is a Xen dom0", argv=tuple(XL_INFO)),
            *self.planned_mgmt_steps(),
        ]

    def planned_vm_steps(self, vm: VM) -> list[PlannedStep]:
        cfg_path = self.cfg_path(vm)
        overlay = guests.overlay_path(self.session.lab.name, vm.name)
        seed_path = self.seed_path(vm)
        nic = self.mgmt_nic(vm)
        seeded = (
            [
                PlannedStep(
                    f"NoCloud seed {seed_path} ({vm.ip}, MTU {self.session.lab.mtu}"
                    + (f", management {nic[1]}" if nic else "")
                    + ", the lab's SSH key)"
                )
            ]
            if seed_path
            else []
        )
        second = (
            f"; management vif {nic[0]} on {self.mgmt.bridge} (a Linux bridge) via vif-bridge, {nic[1]}"
            if self.mgmt and nic
            else ""
        )
        return [
            *guests.planned_overlay(self.host.options["image"], overlay),
            *seeded,
            PlannedStep(
                f"write {cfg_path}: vif on {self.session.lab.bridge} via vif-openvswitch, MAC {vm.mac}, "
                f"MTU {self.session.lab.mtu}{second}",
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
        transport.run(["rm", "-f", record["cfg"], record["overlay"], *filter(None, [record.get("seed")])])
