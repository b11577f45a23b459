"""Port and flow tables of each host, annotated with the lab's names.

OpenFlow port numbers come with their port name and what is behind the port (a
VM, a tunnel to a peer host); datapath port numbers beside them; MAC addresses
with the VM that owns them. Counters are read live (`ovs-ofctl dump-ports`), not
from OVSDB's statistics column, which lags by seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labctl.ovs import Ovs, ofctl

_DP_PORT = re.compile(r"^\s*port (\d+): (\S+)")
_OF_STATS = re.compile(
    r"port\s+(\w+): rx pkts=(\d+), bytes=(\d+), drop=(\S+?),.*?tx pkts=(\d+), bytes=(\d+), drop=(\S+?),", re.S
)
_TUNNEL_VPORT = {"gre": "gre_sys", "vxlan": "vxlan_sys_4789", "geneve": "genev_sys_6081"}


@dataclass(frozen=True)
class PortRow:
    host: str
    ofport: int | None
    name: str
    dp_port: int | None
    behind: str
    stats: dict | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None or k == "ofport"}


def _dp_ports(text: str) -> dict[str, int]:
    return {m.group(2): int(m.group(1)) for m in map(_DP_PORT.match, text.splitlines()) if m}


def _of_stats(text: str) -> dict[str, dict]:
    stats = {}
    for m in _OF_STATS.finditer(text):
        port, rxp, rxb, rxd, txp, txb, txd = m.groups()
        stats[port] = {
            "rx_packets": int(rxp),
            "rx_bytes": int(rxb),
            "rx_dropped": rxd,
            "tx_packets": int(txp),
            "tx_bytes": int(txb),
            "tx_dropped": txd,
        }
    return stats


def names_of(runner, host) -> tuple[dict[int, str], dict[str, str]]:
    """OpenFlow port number -> label, and MAC -> VM name, for one host.

    A VM's port is labelled with the VM when its name does not say it already:
    vm1, but vnet0:vm1 on a KVM host and vif1.0:vm2 on a Xen host."""
    driver = runner.drivers[host.name]
    snap = Ovs(driver.transport()).snapshot()
    bridge = snap.bridges[runner.lab.bridge]
    vm_of = {driver.vm_port(vm): vm.name for vm in host.vms}

    def label(port: str) -> str:
        vm = vm_of.get(port)
        return port if vm in (None, port) else f"{port}:{vm}"

    ports = {
        snap.interfaces[p].ofport: label(p) for p in bridge.ports if snap.interfaces[p].ofport is not None
    }
    macs = {vm.mac: vm.name for vm in runner.lab.vms}
    return ports, macs


def port_table(runner, host: str | None = None, stats: bool = False) -> list[PortRow]:
    rows = []
    for h in runner.lab.hosts:
        if host and h.name != host:
            continue
        driver = runner.drivers[h.name]
        transport = driver.transport()
        snap = Ovs(transport).snapshot()
        bridge = snap.bridges.get(runner.lab.bridge)
        if bridge is None:
            continue
        dp = _dp_ports(transport.run(["ovs-appctl", "dpctl/show"]).stdout)
        live = (
            _of_stats(transport.run(ofctl(runner.lab.protocols, "dump-ports", runner.lab.bridge)).stdout)
            if stats
            else {}
        )
        vms = {driver.vm_port(vm): vm for vm in h.vms}
        for name in bridge.ports:
            iface = snap.interfaces[name]
            if name in vms:
                behind = f"VM {vms[name].name} ({vms[name].ip.ip}, {vms[name].mac})"
            elif iface.options.get("remote_ip"):
                peer = next(
                    (o.name for o in runner.lab.hosts if str(o.underlay_ip) == iface.options["remote_ip"]),
                    "?",
                )
                behind = f"{iface.type} tunnel to {peer} ({iface.options['remote_ip']})"
            elif iface.type == "internal":
                behind = "the bridge's own port (LOCAL)"
            else:
                behind = iface.type or "system"
            dp_name = _TUNNEL_VPORT.get(iface.type, name)
            key = "LOCAL" if iface.type == "internal" else str(iface.ofport)
            rows.append(
                PortRow(h.name, iface.ofport, name, dp.get(dp_name), behind, live.get(key) if stats else None)
            )
    return rows


def _name_ports(text: str, pattern: str, names: dict[int, str]) -> str:
    """After each port number the pattern's group 1 finds, its name: output:2[gre-host2]."""
    return re.sub(pattern, lambda m: f"{m.group(0)}[{names.get(int(m.group(1)), '?')}]", text)


def _name_macs(text: str, macs: dict[str, str]) -> str:
    return re.sub(
        r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b",
        lambda m: f"{m.group(0)}[{macs[m.group(0)]}]" if m.group(0) in macs else m.group(0),
        text,
    )


def flow_table(runner, host: str | None = None, datapath: bool = False) -> list[dict]:
    """Each host's OpenFlow flows (or datapath flows), raw and with ports and MACs named."""
    rows = []
    for h in runner.lab.hosts:
        if host and h.name != host:
            continue
        transport = runner.drivers[h.name].transport()
        ports, macs = names_of(runner, h)
        if datapath:
            dp = {
                n: name for name, n in _dp_ports(transport.run(["ovs-appctl", "dpctl/show"]).stdout).items()
            }
            lines = transport.run(["ovs-appctl", "dpctl/dump-flows"]).stdout.splitlines()
            for flow in (line.strip() for line in lines if "in_port(" in line):
                match, _, actions = flow.partition("actions:")
                match = _name_ports(match, r"in_port\((\d+)\)", dp)
                actions = _name_ports(actions, r"(?:^|(?<=,))(\d+)(?=,|$)", dp)  # plain output actions
                rows.append(
                    {"host": h.name, "flow": flow, "named": _name_macs(f"{match}actions:{actions}", macs)}
                )
        else:
            lines = transport.run(
                ofctl(runner.lab.protocols, "dump-flows", runner.lab.bridge)
            ).stdout.splitlines()[1:]
            for flow in (line.strip() for line in lines):
                named = _name_ports(flow, r"(?:in_port=|output:)(\d+)", ports)
                rows.append({"host": h.name, "flow": flow, "named": _name_macs(named, macs)})
    return rows
