"""The values inside OpenFlow messages as plain data: names of codes, ports, matches,
actions, instructions, port descriptions, the frame a packet-in carries.

Every name comes from os-ken's own constants (ofproto_v1_0, ofproto_v1_3), so it
is the specification's name in lower case without its prefix: OFPRR_IDLE_TIMEOUT
is `idle_timeout`, OFPP_FLOOD is `FLOOD` (ports keep their upper case).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable

from os_ken.lib.packet import arp, ethernet, icmp, ipv4, packet
from os_ken.ofproto import nicira_ext, ofproto_v1_0, ofproto_v1_3
from os_ken.ofproto import ofproto_v1_0_parser as parser_v10
from os_ken.ofproto import ofproto_v1_3_parser as parser_v13

V10, V13 = ofproto_v1_0.OFP_VERSION, ofproto_v1_3.OFP_VERSION
VERSIONS = {V10: "1.0", V13: "1.3"}
OFPROTO = {V10: (ofproto_v1_0, parser_v10), V13: (ofproto_v1_3, parser_v13)}
NO_BUFFER = 0xFFFFFFFF


def _names(module, prefix: str, exclude: Iterable[str] = ()) -> dict[int, str]:
    skip = set(exclude)
    return {
        getattr(module, n): n[len(prefix) :].lower()
        for n in dir(module)
        if n.startswith(prefix) and n not in skip and isinstance(getattr(module, n), int)
    }


def _per_version(prefix: str, exclude: Iterable[str] = ()) -> dict[int, dict[int, str]]:
    return {v: _names(m, prefix, exclude) for v, (m, _) in OFPROTO.items()}


TYPES = _per_version("OFPT_")
PACKET_IN_REASONS = _per_version("OFPR_")
COMMANDS = _per_version("OFPFC_")
FLOW_REMOVED_REASONS = _per_version("OFPRR_")
PORT_REASONS = _per_version("OFPPR_")
STATS_TYPES = {V10: _names(ofproto_v1_0, "OFPST_"), V13: _names(ofproto_v1_3, "OFPMP_")}
CONFIG_FRAGMENTS = _per_version("OFPC_FRAG_", exclude=("OFPC_FRAG_MASK",))
ROLES = {V10: _names(nicira_ext, "NX_ROLE_"), V13: _names(ofproto_v1_3, "OFPCR_ROLE_")}
NX_SUBTYPES = _names(nicira_ext, "NXT_")
INSTRUCTIONS = _names(ofproto_v1_3, "OFPIT_")
ACTIONS = _per_version("OFPAT_")
SPECIAL_PORTS = {
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
    for v, (m, _) in OFPROTO.items()
}


def name(table: dict[int, str], code: int) -> str:
    return table.get(code, str(code))


def port(version: int, number: int) -> int | str:
    """A port number, or the reserved port's name (FLOOD, CONTROLLER, LOCAL, ANY...)."""
    return SPECIAL_PORTS[version].get(number, number)


def error_names(version: int, err_type: int, code: int) -> tuple[str, str]:
    """os-ken's names for an error's type and code: ('flow_mod_failed', 'bad_table_id')."""
    ofp, _ = OFPROTO[version]

    def short(text: str, fallback: int) -> str:
        bare = re.sub(r"\(\d+\)$", "", text)
        return str(fallback) if bare == "Unknown" else bare.split("_", 1)[1].lower()

    return (
        short(ofp.ofp_error_type_to_str(err_type), err_type),
        short(ofp.ofp_error_code_to_str(err_type, code), code),
    )


def mac(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.hex(":")


def text(raw: bytes | str) -> str:
    """A fixed-size NUL-padded string field (port names, switch descriptions)."""
    if isinstance(raw, str):
        return raw.rstrip("\0")
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def match(version: int, found) -> dict:
    """The fields a match sets, in wire order; OpenFlow 1.3 includes the Nicira
    extension fields OVS adds (tun_ipv4_src, tun_ipv4_dst, tunnel_id...)."""
    if version >= V13:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in found.items()}
    fields = {}
    for field in ("in_port", "dl_src", "dl_dst", "dl_vlan", "dl_vlan_pcp", "dl_type", "nw_tos", "nw_proto"):
        wildcard = getattr(ofproto_v1_0, f"OFPFW_{field.upper()}")
        if not found.wildcards & wildcard:
            value = getattr(found, field)
            fields[field] = mac(value) if field in ("dl_src", "dl_dst") else value
    if "dl_type" in fields:
        fields["dl_type"] = f"0x{fields['dl_type']:04x}"
    for field in ("nw_src", "nw_dst"):  # wildcarded by a count of low bits
        shift = (found.wildcards >> getattr(ofproto_v1_0, f"OFPFW_{field.upper()}_SHIFT")) & 0x3F
        if shift < 32:
            fields[field] = ".".join(str(b) for b in struct.pack("!I", getattr(found, field)))
            if shift:
                fields[field] += f"/{32 - shift}"
    for field in ("tp_src", "tp_dst"):
        if not found.wildcards & getattr(ofproto_v1_0, f"OFPFW_{field.upper()}"):
            fields[field] = getattr(found, field)
    return fields


def actions(version: int, found) -> list[dict]:
    out = []
    for action in found:
        kind = name(ACTIONS[version], action.type)
        entry: dict = {"type": kind, "type_code": action.type, "len": action.len}
        if hasattr(action, "port"):
            entry.update(port=port(version, action.port), port_no=action.port)
        for key, value in action.stringify_attrs():
            if key not in ("type", "len", "port", "key", "value") and not key.startswith("_"):
                entry[key] = plain(value)
        if kind == "set_field":  # OpenFlow 1.3: one OXM field and its value
            entry["field"], entry["value"] = action.key, plain(action.value)
        out.append(entry)
    return out


def instructions(found) -> list[dict]:
    out = []
    for inst in found:
        entry: dict = {"type": name(INSTRUCTIONS, inst.type), "type_code": inst.type}
        if hasattr(inst, "actions"):
            entry["actions"] = actions(V13, inst.actions)
        for key in ("table_id", "metadata", "metadata_mask", "meter_id"):
            if hasattr(inst, key):
                entry[key] = getattr(inst, key)
        out.append(entry)
    return out


def flat_actions(version: int, found_actions=None, found_instructions=None) -> list[dict]:
    """Every action a flow applies, also those inside OpenFlow 1.3 instructions."""
    if found_instructions is None:
        return actions(version, found_actions or [])
    return [a for inst in found_instructions for a in actions(version, getattr(inst, "actions", []))]


def port_desc(version: int, desc) -> dict:
    """An ofp_phy_port (1.0) or ofp_port (1.3): the switch's description of one port."""
    out = {
        "port_no": desc.port_no,
        "port": port(version, desc.port_no),
        "name": text(desc.name),
        "hw_addr": mac(desc.hw_addr),
        "config": desc.config,
        "state": desc.state,
        "curr": desc.curr,
        "advertised": desc.advertised,
        "supported": desc.supported,
        "peer": desc.peer,
    }
    if version >= V13:
        out.update(curr_speed=desc.curr_speed, max_speed=desc.max_speed)
    return out


def flag_names(version: int, prefix: str, value: int) -> list[str]:
    """The names of the bits set in a flags word: flag_names(v, 'OFPPS_', 1) -> ['link_down']."""
    ofp, _ = OFPROTO[version]
    bits = {b: n for b, n in _names(ofp, prefix).items() if b and not b & (b - 1)}
    return [n for b, n in sorted(bits.items()) if value & b]


def plain(value):
    """An os-ken object (a stats entry, a description) as plain JSON-ready data."""
    if isinstance(value, bytes):
        printable = value.rstrip(b"\0")
        if all(32 <= c < 127 for c in printable):
            return printable.decode()
        return value.hex()
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return [plain(v) for v in value]
    if isinstance(value, (parser_v13.OFPMatch,)):
        return match(V13, value)
    if isinstance(value, (parser_v10.OFPMatch,)):
        return match(V10, value)
    if hasattr(value, "_fields"):  # os-ken's namedtuple-based entries
        return {k: plain(getattr(value, k)) for k in value._fields}
    if hasattr(value, "stringify_attrs"):
        return {k: plain(v) for k, v in value.stringify_attrs() if not k.startswith("_")}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def frame_fields(data: bytes) -> dict:
    """What a frame is: addresses, and ARP or ICMP details."""
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
            arp_tha=arp_.dst_mac,
        )
    elif ip is not None:
        out.update(ip_src=ip.src, ip_dst=ip.dst, ip_proto=ip.proto)
        if icmp_ is not None:
            out.update(icmp_type=icmp_.type, icmp_code=icmp_.code)
    return out
