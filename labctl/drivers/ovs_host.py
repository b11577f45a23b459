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
from typing import Literal

from pydantic import Field

from labctl.drivers.base import LabSession, PlannedStep, Problem
from labctl.drivers.remote import RealHostDriver
from labctl.drivers.simnet import NO_IPV6
from labctl.fieldtypes import HostField, Name
from labctl.model import VM, Host
from labctl.ovs import AddBridge, AddPort, OvsCommand
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
    host_fields = {
        # the datapath, and for netdev the NIC that joins br-phy (it carries the underlay IP)
        "datapath": HostField(
            Literal["system", "netdev"],
            Field(default="system"),
            misplaced="datapath: {value} is for ovs hosts",
        ),
        "underlay_dev": HostField(Name | None, Field(default=None)),
    }

    def __init__(self, session: LabSession, host: Host):
        super().__init__(session, host)
        self.datapath_type = host.options["datapath"]  # type: ignore[misc] - per host, not per kind

    @classmethod
    def inventory_problems(cls, name, host, simulate: bool) -> list[Problem]:
        problems = super().inventory_problems(name, host, simulate)
        if host.datapath == "netdev" and not host.underlay_dev and not simulate:
            problems.append(
                (("hosts", name, "underlay_dev"), "datapath: netdev needs the underlay NIC to put in br-phy")
            )
        return problems

    def vm_port(self, vm: VM) -> str:
        return vm.name

    def vm_netns(self, vm: VM) -> str:
        return f"lc-{self.session.lab.name}-{vm.name}"

    def way_in(self, vm: VM) -> str | None:
        return None  # its VMs are namespaces on the host, entered over SSH

    def vm_transport(self, vm: VM) -> Transport:
        return InNetns(vm.name, self._transport, self.vm_netns(vm))

    # --- up ---
    def _present_netns(self) -> set[str]:
        out = self._transport.run(["ip", "-j", "netns", "list"]).stdout.strip()
        return {entry["name"] for entry in json.loads(out or "[]")}

    def prepare(self) -> None:
        self.check_ovs()
        present = self._present_netns()
        for vm in self.host.vms:
            if self.vm_netns(vm) not in present:
                self._make_vm(vm)

    def missing(self) -> tuple[str | None, list[str]]:
        present = self._present_netns()
        return None, [f"VM {vm.name} is missing" for vm in self.host.vms if self.vm_netns(vm) not in present]

    def vm_commands(self, vm: VM) -> list[tuple[str, list[str], str | None]]:
        """The commands that make the VM, a namespace with a veth into the bridge: (what, argv, stdin)."""
        ns, port, mtu = self.vm_netns(vm), self.vm_port(vm), self.session.lab.mtu
        lines = [
            f"link set {VM_NIC} address {vm.mac} mtu {mtu}",
            f"addr replace {vm.ip} dev {VM_NIC}",
            f"link set {VM_NIC} up",
            "link set lo up",
        ]
        commands: list[tuple[str, list[str], str | None]] = [
            (f"namespace {ns}", ["ip", "netns", "add", ns], None),
            ("no IPv6 in it", ["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *NO_IPV6], None),
            (
                f"veth {port} to {VM_NIC} in {ns}",
                ["ip", "link", "add", port, "type", "veth", "peer", "name", VM_NIC, "netns", ns],
                None,
            ),
            (
                f"{VM_NIC}: {vm.mac} {vm.ip} MTU {mtu}",
                ["ip", "-n", ns, "-batch", "-"],
                "\n".join(lines) + "\n",
            ),
            (f"{port} MTU {mtu}, up", ["ip", "link", "set", port, "mtu", str(mtu), "up"], None),
        ]
        if self.datapath_type == "netdev":  # userspace OVS never fills in offloaded checksums
            commands += [
                (f"TX checksum offload off on {port}", ["ethtool", "-K", port, "tx", "off"], None),
                (
                    f"and on {VM_NIC} in {ns}",
                    ["ip", "netns", "exec", ns, "ethtool", "-K", VM_NIC, "tx", "off"],
                    None,
                ),
            ]
        return commands

    def _make_vm(self, vm: VM) -> None:
        ns, port = self.vm_netns(vm), self.vm_port(vm)
        self.record("ovs-host-vm", netns=ns, vm_port=port)
        for _, argv, stdin in self.vm_commands(vm):
            self._transport.run(argv, input=stdin)
        self.replugged_ports.add(port)
        self.session.report.changed(self.host.name, f"VM {vm.name} {vm.ip} (namespace {ns}) on port {port}")

    # --- plan: what prepare(), _make_vm() and finish() do, described ---
    def planned_host_steps(self) -> list[PlannedStep]:
        steps = self.planned_reach_steps()
        if self.datapath_type == "netdev":
            address = f"{self.host.underlay_ip}/{self.session.lab.underlay.prefixlen}"
            dev = self.host.options["underlay_dev"]
            steps.append(
                PlannedStep(
                    f"underlay address {address} moves from {dev} to {PHYS_BRIDGE}, "
                    "where userspace tunnelling looks for it"
                )
            )
        return steps

    def planned_vm_steps(self, vm: VM) -> list[PlannedStep]:
        return [
            PlannedStep(what, argv=tuple(argv), files=(("input", stdin),) if stdin is not None else ())
            for what, argv, stdin in self.vm_commands(vm)
        ]

    def planned_vm_port(self, vm: VM) -> str:
        return self.vm_port(vm)

    def ovs_commands(self) -> list[OvsCommand]:
        if self.datapath_type != "netdev":
            return []
        return [
            AddBridge(PHYS_BRIDGE, "netdev"),
            AddPort(PHYS_BRIDGE, str(self.host.options["underlay_dev"])),
        ]

    def finish(self) -> None:
        """netdev: the underlay address goes on br-phy, where userspace tunnelling looks for it."""
        if self.datapath_type != "netdev":
            return
        address = f"{self.host.underlay_ip}/{self.session.lab.underlay.prefixlen}"
        links = json.loads(self._transport.run(["ip", "-j", "addr", "show"]).stdout)
        has = {
            link["ifname"]
            for link in links
            for a in link.get("addr_info", [])
            if a.get("local") == str(self.host.underlay_ip)
        }
        if PHYS_BRIDGE in has:
            return
        dev = str(self.host.options["underlay_dev"])
        lines = [f"addr del {address} dev {dev}"] if dev in has else []
        lines += [
            f"addr replace {address} dev {PHYS_BRIDGE}",
            f"link set {PHYS_BRIDGE} up",
            f"link set {dev} up",
        ]
        self._transport.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n")
        self._transport.run(["ethtool", "-K", PHYS_BRIDGE, "tx", "off"])
        self.session.report.changed(self.host.name, f"underlay address {address} on {PHYS_BRIDGE}")

    # --- down ---
    @classmethod
    def remove(cls, record: dict, transport: Transport) -> None:
        if record["kind"] != "ovs-host-vm":
            return super().remove(record, transport)
        transport.run(["ip", "netns", "del", record["netns"]], check=False)  # gone already is fine
        transport.run(["ip", "link", "del", record["vm_port"]], check=False)
