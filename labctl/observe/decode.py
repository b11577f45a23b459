"""Decode the OpenFlow messages in a pcap of the controller channel, with os-ken's parsers.

TCP streams are reassembled per direction (a message may span segments, a
segment may carry several messages); each message goes through os-ken's
OpenFlow 1.0 / 1.3 parsers. os-ken parses what a controller receives; for the
packet-out, which it only ever builds, the body is read with os-ken's own
layout string and action parsers. The result is plain data (one dict a
message), annotated later with the lab's names (trace.py).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from os_ken.lib import pcaplib
from os_ken.lib.packet import arp, ethernet, icmp, ipv4, packet, tcp
from os_ken.ofproto import ofproto_common, ofproto_parser, ofproto_protocol, ofproto_v1_0, ofproto_v1_3
from os_ken.ofproto import ofproto_v1_0_parser as parser_v10
from os_ken.ofproto import ofproto_v1_3_parser as parser_v13

VERSIONS = {ofproto_v1_0.OFP_VERSION: "1.0", ofproto_v1_3.OFP_VERSION: "1.3"}
_OFPROTO = {
    ofproto_v1_0.OFP_VERSION: (ofproto_v1_0, parser_v10),
    ofproto_v1_3.OFP_VERSION: (ofproto_v1_3, parser_v13),
}


def _names(module, prefix: str) -> dict[int, str]:
    return {getattr(module, n): n[len(prefix) :].lower() for n in dir(module) if n.startswith(prefix)}


_TYPES = {v: _names(m, "OFPT_") for v, (m, _) in _OFPROTO.items()}
_REASONS = {v: _names(m, "OFPR_") for v, (m, _) in _OFPROTO.items()}
_COMMANDS = {v: _names(m, "OFPFC_") for v, (m, _) in _OFPROTO.items()}
_SPECIAL_PORTS = {
    v: {
        getattr(m, n): n[5:]
        for n in (
            "OFPP_IN_PORT",
            "OFPP_TABLE",
            "OFPP_NORMAL",
            "OFPP_FLOOD",
            "OFPP_ALL",
            "OFPP_CONTROLLER",
            "OFPP_LOCAL",
            "OFPP_NONE",
            "OFPP_ANY",
        )
        if hasattr(m, n)
    }
    for v, (m, _) in _OFPROTO.items()
}
NO_BUFFER = 0xFFFFFFFF


@dataclass
class Segment:
    time: float
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


def segments(path: str) -> Iterator[Segment]:
    """TCP payloads of an Ethernet pcap (what tcpdump writes on the underlay)."""
    with open(path, "rb") as fh:
        for ts, frame in pcaplib.Reader(fh):
            pkt = packet.Packet(frame)
            ip, seg = pkt.get_protocol(ipv4.ipv4), pkt.get_protocol(tcp.tcp)
            if ip is None or seg is None:
                continue
            start = ethernet.ethernet._MIN_LEN + ip.header_length * 4 + seg.offset * 4
            payload = bytes(frame[start : ethernet.ethernet._MIN_LEN + ip.total_length])
            if payload:
                yield Segment(ts, ip.src, seg.src_port, ip.dst, seg.dst_port, payload)


@dataclass
class _Stream:
    data: bytes = b""
    synced: bool = True
    pending: list = field(default_factory=list)


def messages(path: str, controller_port: int | None = None) -> Iterator[dict]:
    """Every OpenFlow message in the capture, in capture order."""
    streams: dict[tuple, _Stream] = {}
    for seg in segments(path):
        if controller_port is not None and controller_port not in (seg.sport, seg.dport):
            continue
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        stream = streams.setdefault(key, _Stream())
        stream.data += seg.payload
        while len(stream.data) >= ofproto_common.OFP_HEADER_SIZE:
            version, msg_type, length, xid = ofproto_parser.header(stream.data)
            if version not in _OFPROTO or length < ofproto_common.OFP_HEADER_SIZE:
                stream.data = b""  # not at a message boundary (capture began mid-message): resync
                break
            if len(stream.data) < length:
                break
            raw, stream.data = stream.data[:length], stream.data[length:]
            toward_controller = controller_port is not None and seg.dport == controller_port
            yield decode(raw, seg, toward_controller)


def decode(raw: bytes, seg: Segment, toward_controller: bool) -> dict:
    version, msg_type, length, xid = ofproto_parser.header(raw)
    ofp, _ = _OFPROTO[version]
    out = {
        "time": seg.time,
        "src": seg.src,
        "dst": seg.dst,
        "switch": seg.src if toward_controller else seg.dst,
        "direction": "switch->controller" if toward_controller else "controller->switch",
        "version": VERSIONS[version],
        "type": _TYPES[version].get(msg_type, str(msg_type)),
        "type_code": msg_type,
        "xid": xid,
        "length": length,
    }
    if msg_type == ofp.OFPT_PACKET_OUT:
        out.update(_packet_out(version, raw))
        return out
    msg = ofproto_parser.msg(ofproto_protocol.ProtocolDesc(version), version, msg_type, length, xid, raw)
    if msg_type == ofp.OFPT_PACKET_IN:
        in_port = msg.match["in_port"] if version >= ofproto_v1_3.OFP_VERSION else msg.in_port
        out.update(
            buffer_id=msg.buffer_id,
            in_port=in_port,
            reason=_REASONS[version].get(msg.reason, str(msg.reason)),
            reason_code=msg.reason,
            total_len=msg.total_len,
            frame=frame_fields(msg.data),
        )
    elif msg_type == ofp.OFPT_FLOW_MOD:
        out.update(
            command=_COMMANDS[version].get(msg.command, str(msg.command)),
            command_code=msg.command,
            match=_match(version, msg.match),
            idle_timeout=msg.idle_timeout,
            hard_timeout=msg.hard_timeout,
            priority=msg.priority,
            buffer_id=msg.buffer_id,
            actions=_flow_actions(version, msg),
        )
    elif msg_type == ofp.OFPT_FEATURES_REPLY:
        out.update(datapath_id=f"{msg.datapath_id:016x}")
    return out


def _port(version: int, number: int) -> int | str:
    return _SPECIAL_PORTS[version].get(number, number)


def _actions(version: int, actions) -> list[dict]:
    out = []
    for action in actions:
        if hasattr(action, "port"):
            out.append({"type": "output", "port": _port(version, action.port), "port_no": action.port})
        else:
            out.append({"type": type(action).__name__})
    return out


def _flow_actions(version: int, msg) -> list[dict]:
    if version >= ofproto_v1_3.OFP_VERSION:
        return [a for inst in msg.instructions for a in _actions(version, getattr(inst, "actions", []))]
    return _actions(version, msg.actions)


def _packet_out(version: int, raw: bytes) -> dict:
    """The packet-out body, by os-ken's layout string and action parsers."""
    ofp, parser = _OFPROTO[version]
    offset = ofproto_common.OFP_HEADER_SIZE
    buffer_id, in_port, actions_len = struct.unpack_from(ofp.OFP_PACKET_OUT_PACK_STR, raw, offset)
    offset = ofp.OFP_PACKET_OUT_SIZE
    end, actions = offset + actions_len, []
    while offset < end:
        action = parser.OFPAction.parser(raw, offset)
        actions.append(action)
        offset += action.len
    data = raw[end:]
    return {
        "buffer_id": buffer_id,
        "in_port": _port(version, in_port),
        "actions": _actions(version, actions),
        "frame": frame_fields(data) if data else None,
    }


def _match(version: int, match) -> dict:
    if version >= ofproto_v1_3.OFP_VERSION:
        return {k: v for k, v in match.items()}
    fields = {}
    for name in (
        "in_port",
        "dl_src",
        "dl_dst",
        "dl_vlan",
        "dl_type",
        "nw_proto",
        "nw_src",
        "nw_dst",
        "tp_src",
        "tp_dst",
    ):
        wildcard = getattr(ofproto_v1_0, f"OFPFW_{name.upper()}", None)
        if wildcard is not None and match.wildcards & wildcard:
            continue
        value = getattr(match, name)
        if name in ("dl_src", "dl_dst"):
            value = ":".join(f"{b:02x}" for b in value)
        elif name == "dl_type":
            value = f"0x{value:04x}"
        elif name in ("nw_src", "nw_dst"):
            value = ".".join(str(b) for b in struct.pack("!I", value))
        fields[name] = value
    return fields


def frame_fields(data: bytes) -> dict:
    """What the frame is: addresses, and ARP or ICMP details."""
    pkt = packet.Packet(data)
    eth = pkt.get_protocol(ethernet.ethernet)
    out: dict = {"eth_src": eth.src, "eth_dst": eth.dst, "eth_type": f"0x{eth.ethertype:04x}"} if eth else {}
    arp_, ip, icmp_ = pkt.get_protocol(arp.arp), pkt.get_protocol(ipv4.ipv4), pkt.get_protocol(icmp.icmp)
    if arp_ is not None:
        out.update(
            arp_op="request" if arp_.opcode == arp.ARP_REQUEST else "reply",
            arp_spa=arp_.src_ip,
            arp_tpa=arp_.dst_ip,
            arp_sha=arp_.src_mac,
        )
    elif ip is not None:
        out.update(ip_src=ip.src, ip_dst=ip.dst, ip_proto=ip.proto)
        if icmp_ is not None:
            out.update(icmp_type=icmp_.type, icmp_code=icmp_.code)
    return out
