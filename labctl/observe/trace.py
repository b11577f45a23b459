"""Decoded OpenFlow messages in the lab's own names, one line each (or in full).

Switches are named by host (from the session's address), port numbers get
their port name (vm1, gre-host2), MAC and IP addresses the VM they belong to,
tunnel endpoints the host they belong to. `trace` reads a finished capture;
`follow` reads one that tcpdump is still writing, as its messages arrive.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from labctl.observe.decode import NO_BUFFER, Decoder, messages
from labctl.observe.ofvalues import TYPES, V10, V13, flag_names, port
from labctl.observe.pcapread import PcapTail
from labctl.observe.tables import names_of

QUIET_TYPES = {"echo_request", "echo_reply", "hello", "barrier_request", "barrier_reply"}
# OpenFlow 1.0 and 1.3 name the same messages differently; either name selects both
ALIASES = {
    "stats_request": "multipart_request",
    "multipart_request": "stats_request",
    "stats_reply": "multipart_reply",
    "multipart_reply": "stats_reply",
    "vendor": "experimenter",
    "experimenter": "vendor",
}


def known_types() -> set[str]:
    return {name for table in TYPES.values() for name in table.values()} | set(ALIASES)


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
        self.hosts.setdefault(str(lab.controller.address), "controller")
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

    def endpoint(self, ip: str) -> str:
        """A tunnel endpoint: a host's underlay address."""
        return f"{ip}[{self.hosts[ip]}]" if ip in self.hosts else ip


@dataclass(frozen=True)
class Wanted:
    """Which messages to show: of these hosts, of these types (else all but the quiet ones)."""

    hosts: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    everything: bool = False

    def __call__(self, msg: dict) -> bool:
        if self.hosts and msg["host"] not in self.hosts:
            return False
        kinds = {msg["type"], ALIASES.get(msg["type"]), msg.get("subtype")}
        if self.types:
            return bool(kinds & set(self.types))
        return self.everything or msg["type"] not in QUIET_TYPES


def annotate(msg: dict, names: Names) -> dict:
    host = names.hosts.get(msg["switch"], msg["switch"])
    out = {**msg, "host": host}
    if "in_port" in msg:
        out["in_port_name"] = names.port(host, msg["in_port"])
    if msg.get("actions"):
        out["actions_named"] = [_action(a, host, names) for a in msg["actions"]]
    if msg.get("frame"):
        out["summary"] = frame_summary(msg["frame"], names)
    if msg.get("match"):
        out["match_named"] = {k: _named(k, v, host, names) for k, v in msg["match"].items()}
    if "port" in msg and isinstance(msg["port"], dict):  # port_status: the port as the switch names it
        out["port_named"] = _port_named(msg["port"])
    ports = msg.get("ports") or (msg.get("body") if msg.get("stats_type") == "port_desc" else None)
    if ports:
        out["ports_named"] = [_port_named(p) for p in ports]
    return out


def _port_named(desc: dict) -> str:
    return f"{desc['port']}[{desc['name']}]"


def _action(action: dict, host: str, names: Names) -> str:
    if action["type"] == "output":
        return f"output:{names.port(host, action['port'])}"
    if action["type"] == "set_field":
        return f"set_field:{action['field']}={_named(action['field'], action['value'], host, names)}"
    return action["type"]


def _named(field: str, value, host: str, names: Names) -> str:
    if field == "in_port":
        return names.port(host, value)
    if field in ("dl_src", "dl_dst", "eth_src", "eth_dst", "arp_sha", "arp_tha"):
        return names.mac(str(value))
    if field in ("nw_src", "nw_dst", "ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"):
        return names.ip(str(value))
    if field in ("tun_ipv4_src", "tun_ipv4_dst"):
        return names.endpoint(str(value))
    if field == "eth_type" and isinstance(value, int):  # as OpenFlow 1.0's dl_type reads
        return f"0x{value:04x}"
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
    """Every wanted message of a finished capture, times relative to its first message."""
    wanted = Wanted(tuple(hosts), tuple(types), everything)
    out, start = [], None
    for msg in messages(path, port):
        start = msg["time"] if start is None else start
        msg = annotate({**msg, "time": round(msg["time"] - start, 6)}, names)
        if wanted(msg):
            out.append(msg)
    return out


def follow(
    path: str,
    names: Names,
    port: int,
    wanted: Wanted,
    since: float,
    running: Callable[[], bool],
    poll: float = 0.1,
) -> Iterator[dict]:
    """The wanted messages of a capture still being written, as they arrive, times
    relative to `since` (a wall-clock time): those captured before it only keep the
    TCP streams in step. Ends once `running()` says the capture stopped and all it
    wrote is read."""
    while True:
        try:
            fh = open(path, "rb")  # noqa: SIM115 - held for the whole follow
            break
        except FileNotFoundError:  # tcpdump creates it when it starts listening
            if not running():
                return
            time.sleep(poll)
    with fh:
        reader, decoder = PcapTail(fh), Decoder(port)

        def shown(found: Iterable[dict]) -> Iterator[dict]:
            for msg in found:
                if msg["time"] >= since:
                    msg = annotate({**msg, "time": round(msg["time"] - since, 6)}, names)
                    if wanted(msg):
                        yield msg

        while True:
            alive = running()  # asked before reading: whatever it wrote by then is read below
            segments = reader.segments()
            yield from shown(decoder.feed(segments))
            if not alive:
                yield from shown(decoder.end())
                return
            if not segments:
                time.sleep(poll)


def _buffer(value) -> str:
    return "none" if value == NO_BUFFER else str(value)


def _match_text(msg: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in msg.get("match_named", msg.get("match", {})).items())


def _version(msg: dict) -> int:
    return V13 if msg["version"] == "1.3" else V10


def _flags(msg: dict, prefix: str, value: int) -> str:
    return ",".join(flag_names(_version(msg), prefix, value)) or "0"


def _extra_match(msg: dict) -> str:
    """Besides in_port, what an OpenFlow 1.3 packet-in's match says (the tunnel it came from)."""
    extra = {k: v for k, v in msg.get("match_named", {}).items() if k != "in_port"}
    return "".join(f" {k}={v}" for k, v in extra.items())


def _packet_in(msg):
    return (
        f"in_port={msg['in_port_name']}{_extra_match(msg)} reason={msg['reason']} "
        f"buffer={_buffer(msg['buffer_id'])} len={msg['total_len']}"
    )


def _packet_out(msg):
    actions = ",".join(msg.get("actions_named") or ["drop"])
    return f"in_port={msg['in_port_name']} buffer={_buffer(msg['buffer_id'])} {actions}"


def _flow_mod(msg):
    text = (
        f"{msg['command']} match({_match_text(msg)}) idle={msg['idle_timeout']} hard={msg['hard_timeout']} "
        f"prio={msg['priority']} buffer={_buffer(msg['buffer_id'])} "
        f"{','.join(msg.get('actions_named') or ['drop'])}"
    )
    if msg.get("flags"):
        text += f" flags={_flags(msg, 'OFPFF_', msg['flags'])}"
    return text + (f" cookie={msg['cookie']:#x}" if msg.get("cookie") else "")


def _flow_removed(msg):
    hard = f" hard={msg['hard_timeout']}" if "hard_timeout" in msg else ""
    seconds = msg["duration_sec"] + msg["duration_nsec"] / 1e9
    text = (
        f"reason={msg['reason']} match({_match_text(msg)}) idle={msg['idle_timeout']}{hard} "
        f"prio={msg['priority']} after={seconds:.3f}s packets={msg['packet_count']} bytes={msg['byte_count']}"
    )
    return text + (f" cookie={msg['cookie']:#x}" if msg.get("cookie") else "")


def _port_status(msg):
    port = msg["port"]
    text = f"{msg['reason']} port={msg['port_named']} state={_flags(msg, 'OFPPS_', port['state'])}"
    return text + (f" config={_flags(msg, 'OFPPC_', port['config'])}" if port["config"] else "")


def _features_reply(msg):
    text = f"dpid={msg['datapath_id']} tables={msg['n_tables']} buffers={msg['n_buffers']}"
    return text + (f" ports={','.join(msg['ports_named'])}" if msg.get("ports_named") else "")


def _config(msg):
    return f"frag={msg['fragments']} miss_send_len={msg['miss_send_len']}"


def _echo(msg):
    return f"data={len(msg['data']) // 2} bytes" if msg.get("data") else ""


def _hello(msg):
    versions = sorted({v for e in msg.get("elements", []) for v in e["versions"]})
    names = {V10: "1.0", V13: "1.3"}
    return f"versions={','.join(names.get(v, hex(v)) for v in versions)}" if versions else ""


def _error(msg):
    text = f"{msg['error_type']}/{msg['error_code']}"
    failed = msg.get("failed")
    return text + (f" for {failed['type'].upper()} xid={failed['xid']}" if failed else "")


def _stats_request(msg):
    kind, version = msg["stats_type"], _version(msg)
    if kind in ("flow", "aggregate"):
        table = "all" if msg["table_id"] == 0xFF else msg["table_id"]
        return f"{kind} table={table} out_port={port(version, msg['out_port'])} match({_match_text(msg)})"
    if "queue_id" in msg:
        queue = "ALL" if msg["queue_id"] == 0xFFFFFFFF else msg["queue_id"]
        return f"{kind} port={port(version, msg['port_no'])} queue={queue}"
    if "port_no" in msg:
        return f"{kind} port={port(version, msg['port_no'])}"
    return kind


_NOUNS = {"flow": "flows", "port": "ports", "port_stats": "ports", "queue": "queues"}


def _stats_reply(msg):
    kind, body = msg["stats_type"], msg.get("body")
    if kind == "desc":
        text = f"desc {body['hw_desc']} {body['sw_desc']} ({body['mfr_desc']})"
    elif kind == "aggregate":
        agg = body[0] if isinstance(body, list) else body
        text = f"aggregate flows={agg['flow_count']} packets={agg['packet_count']} bytes={agg['byte_count']}"
    elif kind == "port_desc":
        text = f"port_desc ports={','.join(msg.get('ports_named', []))}"
    elif kind == "table":
        text = f"table {len(body)} tables, {sum(t['active_count'] for t in body)} flows"
    elif isinstance(body, list):
        text = f"{kind} {len(body)} {_NOUNS.get(kind, 'entries')}"
    else:
        text = kind
    return text + (" more" if msg.get("more") else "")


def _role(msg):
    generation = f" generation_id={msg['generation_id']}" if "generation_id" in msg else ""
    return f"role={msg['role']}{generation}"


def _vendor(msg):
    who = msg.get("vendor_name") or f"vendor={msg['vendor']:#010x}"
    subtype = msg.get("subtype", msg.get("subtype_code", ""))
    role = f" role={msg['role']}" if "role" in msg else ""
    return f"{who} {subtype}{role}".rstrip()


_BODIES: dict[str, Callable[[dict], str]] = {
    "packet_in": _packet_in,
    "packet_out": _packet_out,
    "flow_mod": _flow_mod,
    "flow_removed": _flow_removed,
    "port_status": _port_status,
    "features_reply": _features_reply,
    "set_config": _config,
    "get_config_reply": _config,
    "echo_request": _echo,
    "echo_reply": _echo,
    "hello": _hello,
    "error": _error,
    "stats_request": _stats_request,
    "multipart_request": _stats_request,
    "stats_reply": _stats_reply,
    "multipart_reply": _stats_reply,
    "role_request": _role,
    "role_reply": _role,
    "vendor": _vendor,
    "experimenter": _vendor,
}


def render_line(msg: dict) -> str:
    arrow = f"{msg['host']} -> ctl" if msg["direction"] == "switch->controller" else f"ctl -> {msg['host']}"
    head = f"{msg['time']:9.6f}  {arrow:<15} OF{msg['version']} {msg['type'].upper():<14} xid={msg['xid']}"
    if "undecoded" in msg:
        body = f"(not decoded: {msg['undecoded']})"
    elif msg.get("truncated"):
        body = "(cut short)"
    else:
        body = _BODIES.get(msg["type"], lambda m: "")(msg)
    summary = f"  | {msg['summary']}" if msg.get("summary") else ""
    return f"{head}  {body}{summary}".rstrip()


def render_full(msg: dict) -> str:
    return json.dumps(msg, indent=2, default=str)


def render_json_line(msg: dict) -> str:
    return json.dumps(msg, default=str)
