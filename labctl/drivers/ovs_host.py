"""A plain Linux host running Open vSwitch, reached over SSH: `driver: ovs`.

No hypervisor: its "VMs" are network namespaces labctl makes on that host
(over the transport), each with a veth into the lab bridge, as on a simulated
host. It is the smallest real host: everything labctl does to it goes over
SSH, to the host's own OVS at its default paths.

datapath: system (default) uses the kernel module and kernel GRE. With
datapath: netdev (userspace OVS, e.g. no kernel module) GRE is OVS's userspace
tunnelling: the underlay NIC (`underlay_dev`) goes into `br-phy` and the
host's underlay address moves onto br-phy. Do not name the NIC you reach the
host by: its address moves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from labctl.drivers.base import Context
from labctl.drivers.remote import RealHostDriver
from labctl.drivers.simnet import NO_IPV6
from labctl.model import VM, Access, Host
from labctl.ovs import AddBridge, AddPort, OvsCommand
from labctl.state import LabState
from labctl.transport.base import Completed, Transport

PHYS_BRIDGE = "br-phy"
VM_NIC = "eth0"


class InNetns(Transport):
    """Commands inside a network namespace on another host, over that host's transport."""

    def __init__(self, name: str, host: Transport, netns: str):
        self.name, self.host, self.netns = name, host, netns

    def wrap(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def _run(self, argv: tuple[str, ...], *, input: str | None, timeout: float) -> Completed:
        result = self.host.run(self.wrap(argv), input=input, check=False, timeout=timeout)
        return Completed(argv, result.returncode, result.stdout, result.stderr)

    def spawn(self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None) -> int:
        return self.host.spawn(self.wrap(argv), log_path=log_path, env=env)

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.host.put_file(path, data, mode)

    def get_file(self, path: str) -> bytes:
        return self.host.get_file(path)


class OvsHostDriver(RealHostDriver):
    name = "ovs"
    adds_vm_ports = True

    def __init__(self, ctx: Context, host: Host):
        super().__init__(ctx, host)
        self.datapath_type = host.access.datapath  # type: ignore[misc] - per host, not per kind

    def vm_port(self, vm: VM) -> str:
        return vm.name

    def vm_netns(self, vm: VM) -> str:
        return f"lc-{self.ctx.lab.name}-{vm.name}"

    def vm_transport(self, vm: VM) -> Transport:
        return InNetns(vm.name, self._transport, self.vm_netns(vm))

    # --- up ---
    def prepare(self) -> None:
        self.check_ovs()
        out = self._transport.run(["ip", "-j", "netns", "list"]).stdout.strip()
        present = {entry["name"] for entry in json.loads(out or "[]")}
        for vm in self.host.vms:
            if self.vm_netns(vm) not in present:
                self._make_vm(vm)

    def _make_vm(self, vm: VM) -> None:
        ns, port, run = self.vm_netns(vm), self.vm_port(vm), self._transport.run
        self.record("ovs-host-vm", netns=ns, vm_port=port)
        run(["ip", "netns", "add", ns])
        run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *NO_IPV6])
        run(["ip", "link", "add", port, "type", "veth", "peer", "name", VM_NIC, "netns", ns])
        lines = [
            f"link set {VM_NIC} address {vm.mac}",
            f"addr replace {vm.ip} dev {VM_NIC}",
            f"link set {VM_NIC} up",
            "link set lo up",
        ]
        run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n")
        run(["ip", "link", "set", port, "up"])
        if self.datapath_type == "netdev":  # userspace OVS never fills in offloaded checksums
            run(["ethtool", "-K", port, "tx", "off"])
            run(["ip", "netns", "exec", ns, "ethtool", "-K", VM_NIC, "tx", "off"])
        self.replugged_ports.add(port)
        self.ctx.report.changed(self.host.name, f"VM {vm.name} {vm.ip} (namespace {ns}) on port {port}")

    def ovs_commands(self) -> list[OvsCommand]:
        if self.datapath_type != "netdev":
            return []
        return [AddBridge(PHYS_BRIDGE, "netdev"), AddPort(PHYS_BRIDGE, str(self.host.access.underlay_dev))]

    def finish(self) -> None:
        """netdev: the underlay address goes on br-phy, where userspace tunnelling looks for it."""
        if self.datapath_type != "netdev":
            return
        address = f"{self.host.underlay_ip}/{self.ctx.lab.underlay.prefixlen}"
        links = json.loads(self._transport.run(["ip", "-j", "addr", "show"]).stdout)
        has = {
            link["ifname"]
            for link in links
            for a in link.get("addr_info", [])
            if a.get("local") == str(self.host.underlay_ip)
        }
        if PHYS_BRIDGE in has:
            return
        dev = str(self.host.access.underlay_dev)
        lines = [f"addr del {address} dev {dev}"] if dev in has else []
        lines += [
            f"addr replace {address} dev {PHYS_BRIDGE}",
            f"link set {PHYS_BRIDGE} up",
            f"link set {dev} up",
        ]
        self._transport.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n")
        self._transport.run(["ethtool", "-K", PHYS_BRIDGE, "tx", "off"])
        self.ctx.report.changed(self.host.name, f"underlay address {address} on {PHYS_BRIDGE}")

    # --- down ---
    @classmethod
    def undo(cls, record: dict, state: LabState) -> None:
        if record["kind"] != "ovs-host-vm":
            return super().undo(record, state)
        access = Access(
            record.get("user"), record.get("port", 22), record.get("key"), record.get("known_hosts")
        )
        transport = cls.connect(record["host"], record.get("address") or "localhost", access)
        try:
            transport.run(["ip", "netns", "del", record["netns"]], check=False)  # gone already is fine
            transport.run(["ip", "link", "del", record["vm_port"]], check=False)
        finally:
            transport.close()
