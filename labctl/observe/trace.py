"""Decoded OpenFlow messages in the lab's own names, one line each (or in full).

Switches are named by host (from the session's address), port numbers get
their port name (vm1, gre-host2), MAC and IP addresses the VM they belong to.
"""

from __future__ import annotations

import json

from labctl.observe.decode import NO_BUFFER, messages
from labctl.observe.tables import names_of

QUIET_TYPES = {"echo_request", "echo_reply", "hello", "barrier_request", "barrier_reply"}


class Names:
    """What the lab calls things; empty when the lab is not up (numbers stay numbers)."""

    def __init__(self, runner=None):
        self.hosts: dict[str, str] = {}
        self.ports: dict[str, dict[int, str]] = {}
        self.macs: dict[str, str] = {}
        self.ips: dict[str, str] = {}
        if runner is None:
            return
        lab = runner.lab
        self.hosts = {str(h.underlay_ip): h.name for h in lab.hosts}
        self.hosts[str(lab.controller.address)] = "controller"
        self.macs = {vm.mac: vm.name for vm in lab.vms}
        self.ips = {str(vm.ip.ip): vm.name for vm in lab.vms}
        if runner.state.exists():
            for host in lab.hosts:
                try:
                    self.ports[host.name] = names_of(runner, host)[0]
                except Exception:  # a host that is not reachable keeps its numbers
                    continue

    def port(self, host: str, number) -> str:
        name = self.ports.get(host, {}).get(number) if isinstance(number, int) else None
        return f"{number}[{name}]" if name else str(number)

    def mac(self, mac: str) -> str:
        return f"{mac}[{self.macs[mac]}]" if mac in self.macs else mac

    def ip(self, ip: str) -> str:
        return f"{ip}[{self.ips[ip]}]" if ip in self.ips else ip


def annotate(msg: dict, names: Names) -> dict:
    host = names.hosts.get(msg["switch"], msg["switch"])
    out = {**msg, "host": host}
    if "in_port" in msg:
        out["in_port_name"] = names.port(host, msg["in_port"])
    if msg.get("actions"):
        out["actions_named"] = [
            f"output:{names.port(host, a['port'])}" if a["type"] == "output" else a["type"]
            for a in msg["actions"]
        ]
    if msg.get("frame"):
        out["summary"] = frame_summary(msg["frame"], names)
    if msg.get("match"):
        out["match_named"] = {k: _named(k, v, host, names) for k, v in msg["match"].items()}
    return out


def _named(field: str, value, host: str, names: Names) -> str:
    if field == "in_port":
        return names.port(host, value)
    if field in ("dl_src", "dl_dst", "eth_src", "eth_dst"):
        return names.mac(str(value))
    if field in ("nw_src", "nw_dst", "ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"):
        return names.ip(str(value))
    return str(value)


def frame_summary(frame: dict, names: Names) -> str:
    if "arp_op" in frame:
        if frame["arp_op"] == "request":
            return f"ARP who-has {names.ip(frame['arp_tpa'])} tell {names.ip(frame['arp_spa'])}"
        return f"ARP {names.ip(frame['arp_spa'])} is-at {names.mac(frame['arp_sha'])}"
    if frame.get("icmp_type") in (0, 8):
        kind = "echo request" if frame["icmp_type"] == 8 else "echo reply"
        return f"ICMP {kind} {names.ip(frame['ip_src'])} > {names.ip(frame['ip_dst'])}"
    if "ip_src" in frame:
        return f"IPv4 proto {frame['ip_proto']} {names.ip(frame['ip_src'])} > {names.ip(frame['ip_dst'])}"
    src, dst = names.mac(frame.get("eth_src", "?")), names.mac(frame.get("eth_dst", "?"))
    return f"{src} > {dst} type {frame.get('eth_type')}"


def trace(path: str, names: Names, port: int, hosts=(), types=(), everything: bool = False) -> list[dict]:
    out, start = [], None
    for msg in messages(path, port):
        start = msg["time"] if start is None else start
        msg = annotate({**msg, "time": round(msg["time"] - start, 6)}, names)
        if hosts and msg["host"] not in hosts:
            continue
        if types and msg["type"] not in types:
            continue
        if not everything and not types and msg["type"] in QUIET_TYPES:
            continue
        out.append(msg)
    return out


def _buffer(value) -> str:
    return "none" if value == NO_BUFFER else str(value)


def render_line(msg: dict) -> str:
    arrow = f"{msg['host']} -> ctl" if msg["direction"] == "switch->controller" else f"ctl -> {msg['host']}"
    head = f"{msg['time']:9.6f}  {arrow:<15} OF{msg['version']} {msg['type'].upper():<14} xid={msg['xid']}"
    kind = msg["type"]
    if kind == "packet_in":
        body = (
            f"in_port={msg['in_port_name']} reason={msg['reason']} buffer={_buffer(msg['buffer_id'])} "
            f"len={msg['total_len']}"
        )
    elif kind == "packet_out":
        actions = ",".join(msg["actions_named"])
        body = f"in_port={msg['in_port_name']} buffer={_buffer(msg['buffer_id'])} {actions}"
    elif kind == "flow_mod":
        match = ",".join(f"{k}={v}" for k, v in msg.get("match_named", msg["match"]).items())
        body = (
            f"{msg['command']} match({match}) idle={msg['idle_timeout']} hard={msg['hard_timeout']} "
            f"prio={msg['priority']} buffer={_buffer(msg['buffer_id'])} "
            f"{','.join(msg.get('actions_named') or ['drop'])}"
        )
    else:
        body = ""
    summary = f"  | {msg['summary']}" if msg.get("summary") else ""
    return f"{head}  {body}{summary}".rstrip()


def render_full(msg: dict) -> str:
    return json.dumps(msg, indent=2, default=str)
