"""What tshark calls each field labctl decodes, for the parity tests.

`expected(message)` turns one message of `trace --json` into the fields tshark's
OpenFlow dissector (Wireshark 4.0) shows for it: {tshark field name: [values in
the order tshark lists them]}. `compare(ours, theirs)` then checks every OpenFlow
field tshark shows against it: a field tshark shows that is not mapped here fails
the test, so nothing tshark decodes goes unchecked. Only framing is left out --
pads, reserved words and the lengths of the nested structures, which tshark shows
on their own and labctl's decode folds into the structures' contents.

The expected values come from labctl's decode; the bit masks and OXM headers
from os-ken's constants, the same spec tshark's dissector implements.
"""

from __future__ import annotations

import re

from os_ken.ofproto import ofproto_v1_0 as of10
from os_ken.ofproto import ofproto_v1_3 as of13

WILDCARD = object()  # an OpenFlow 1.0 match field the wildcards say is ignored: any value
P4, P1 = "openflow_v4.", "openflow."


class Raw(str):
    """Bytes as hex (with or without colons): compared digit by digit."""


class RawStart(Raw):
    """Bytes of which tshark shows the start (it dissects the rest on its own)."""


def _bits(prefix: str, value: int, masks: dict[str, int]) -> dict[str, list]:
    return {f"{prefix}.{name}": [int(bool(value & mask))] for name, mask in masks.items()}


def _bits10(value: int, masks: dict[str, int]) -> dict[str, list]:
    """OpenFlow 1.0's bits, which tshark names without their parent's prefix."""
    return {P1 + name: [int(bool(value & mask))] for name, mask in masks.items()}


def _names_to_masks(module, constant_prefix: str, names, rename=None) -> dict[str, int]:
    rename = rename or {}
    return {n: getattr(module, constant_prefix + rename.get(n, n).upper()) for n in names}


PORT_FEATURES = [
    "10mb_hd",
    "10mb_fd",
    "100mb_hd",
    "100mb_fd",
    "1gb_hd",
    "1gb_fd",
    "10gb_fd",
    "40gb_fd",
    "100gb_fd",
    "1tb_fd",
    "other",
    "copper",
    "fiber",
    "autoneg",
    "pause",
    "pause_asym",
]


class Fields(dict):
    def add(self, name: str, *values) -> None:
        self.setdefault(name, []).extend(values)

    def merge(self, other: dict) -> None:
        for name, values in other.items():
            self.add(name, *values)


# --- OpenFlow 1.3 (openflow_v4) ------------------------------------------------------------


def _oxm(name: str, value) -> tuple[int, bytes]:
    num, raw, mask = of13.oxm_from_user(name, value)
    assert mask is None, f"{name}: masked OXMs are not in the lab's messages"
    return num, raw


_OXM_VALUE_NAMES = {  # how tshark names each OXM's value; absent: it cannot decode the value
    "in_port": "value_uint32",
    "eth_dst": "value_etheraddr",
    "eth_src": "value_etheraddr",
    "arp_sha": "value_etheraddr",
    "arp_tha": "value_etheraddr",
    "eth_type": "value_ethertype",
    "ip_proto": "value_ipproto",
    "ipv4_src": "value_ipv4addr",
    "ipv4_dst": "value_ipv4addr",
    "arp_spa": "value_ipv4addr",
    "arp_tpa": "value_ipv4addr",
    "ip_dscp": "value",
    "icmpv4_type": "value",
    "icmpv4_code": "value",
    "arp_op": "value",
}


def match_length(match: dict) -> int:
    return 4 + sum(4 + len(_oxm(k, v)[1]) for k, v in match.items())


def match13(match: dict) -> Fields:
    out = Fields()
    out.add(P4 + "match.type", of13.OFPMT_OXM)
    out.add(P4 + "match.length", match_length(match))
    for name, value in match.items():
        num, raw = _oxm(name, value)
        out.add(P4 + "oxm.class", num >> 7)
        out.add(P4 + "oxm.field", num & 0x7F)
        out.add(P4 + "oxm.hm", 0)
        out.add(P4 + "oxm.length", len(raw))
        kind = _OXM_VALUE_NAMES.get(name)
        if kind == "value":
            out.add(P4 + "oxm.value", Raw(raw.hex()))
        elif kind is not None:
            out.add(P4 + "oxm." + kind, value)
    return out


def actions13(actions: list[dict]) -> Fields:
    out = Fields()
    for action in actions:
        out.add(P4 + "action.type", action["type_code"])
        out.add(P4 + "action.length", action["len"])
        if action["type"] == "output":
            out.add(P4 + "action.output.port", action["port_no"])
            out.add(P4 + "action.output.max_len", action["max_len"])
    return out


def instructions13(instructions: list[dict]) -> Fields:
    out = Fields()
    for inst in instructions:
        out.add(P4 + "instruction.type", inst["type_code"])
        out.add(P4 + "instruction.length", 8 + sum(a["len"] for a in inst.get("actions", [])))
        out.merge(actions13(inst.get("actions", [])))
    return out


def port13(desc: dict) -> Fields:
    out = Fields()
    out.add(P4 + "port.port_no", desc["port_no"])
    out.add(P4 + "port.hw_addr", desc["hw_addr"])
    out.add(P4 + "port.name", desc["name"])
    out.add(P4 + "port.config", desc["config"])
    out.merge(
        _bits(
            P4 + "port.config",
            desc["config"],
            _names_to_masks(of13, "OFPPC_", ["port_down", "no_recv", "no_fwd", "no_packet_in"]),
        )
    )
    out.add(P4 + "port.sate", desc["state"])  # sic: tshark's name for the state word
    out.merge(
        _bits(
            P4 + "port.state",
            desc["state"],
            _names_to_masks(of13, "OFPPS_", ["link_down", "blocked", "live"]),
        )
    )
    for field, tshark in (
        ("curr", "current"),
        ("advertised", "advertised"),
        ("supported", "supported"),
        ("peer", "peer"),
    ):
        out.add(P4 + f"port.{tshark}", desc[field])
        masks = _names_to_masks(of13, "OFPPF_", PORT_FEATURES)
        if tshark == "current":  # sic: tshark spells this one bit 100_gb_fd
            masks["100_gb_fd"] = masks.pop("100gb_fd")
        out.merge(_bits(P4 + f"port.{tshark}", desc[field], masks))
    out.add(P4 + "port.curr_speed", desc["curr_speed"])
    out.add(P4 + "port.max_speed", desc["max_speed"])
    return out


_FLOW_MOD_FLAGS = {
    "send_flow_rem": of13.OFPFF_SEND_FLOW_REM,
    "check_overlap": of13.OFPFF_CHECK_OVERLAP,
    "reset_counts": of13.OFPFF_RESET_COUNTS,
    "no_packet_counts": of13.OFPFF_NO_PKT_COUNTS,
    "no_byte_counts": of13.OFPFF_NO_BYT_COUNTS,
}


def _stats_body13(kind: str, body) -> Fields:
    out = Fields()
    if kind == "desc":
        for field in ("mfr_desc", "hw_desc", "sw_desc", "serial_num", "dp_desc"):
            out.add(P4 + f"switch_description.{field}", body[field])
    elif kind == "flow":
        for flow in body:
            instructions = instructions13(flow["instructions"])
            padded_match = (match_length(flow["match"]) + 7) // 8 * 8
            out.add(
                P4 + "flow_stats.length", 48 + padded_match + sum(instructions[P4 + "instruction.length"])
            )
            for field in (
                "table_id",
                "duration_sec",
                "duration_nsec",
                "priority",
                "idle_timeout",
                "hard_timeout",
            ):
                out.add(P4 + f"flow_stats.{field}", flow[field])
            out.add(P4 + "flow_stats.flags", flow["flags"])
            out.merge(_bits(P4 + "flow_stats.flags", flow["flags"], _FLOW_MOD_FLAGS))
            for field in ("cookie", "packet_count", "byte_count"):
                out.add(P4 + f"flow_stats.{field}", flow[field])
            out.merge(match13(flow["match"]))
            out.merge(instructions)
    elif kind == "aggregate":
        for field in ("packet_count", "byte_count", "flow_count"):
            out.add(P4 + f"aggregate_stats.{field}", body[field])
    elif kind == "table":
        for table in body:
            for field, tshark in (
                ("table_id", "table_id"),
                ("active_count", "active_count"),
                ("lookup_count", "lookup_count"),
                ("matched_count", "match_count"),
            ):
                out.add(P4 + f"table_stats.{tshark}", table[field])
    elif kind == "port_stats":
        for port in body:
            for field in (
                "port_no",
                "rx_packets",
                "tx_packets",
                "rx_bytes",
                "tx_bytes",
                "rx_dropped",
                "tx_dropped",
                "rx_errors",
                "tx_errors",
                "rx_frame_err",
                "rx_over_err",
                "rx_crc_err",
                "collisions",
                "duration_sec",
                "duration_nsec",
            ):
                tshark = field[:-4] + "_error" if field.endswith("_err") else field
                out.add(P4 + f"port_stats.{tshark}", port[field])
    elif kind == "port_desc":
        for port in body:
            out.merge(port13(port))
    elif kind == "group_features":
        group_types = ["all", "select", "indirect", "ff"]
        out.add(P4 + "group_features.types", body["types"])
        out.merge(
            _bits(
                P4 + "group_features.types",
                body["types"],
                {t: 1 << getattr(of13, f"OFPGT_{t.upper()}") for t in group_types},
            )
        )
        out.add(P4 + "group_features.capabilities", body["capabilities"])
        capabilities = _names_to_masks(
            of13, "OFPGFC_", ["select_weight", "select_liveness", "chaining", "chaining_checks"]
        )
        out.merge(_bits(P4 + "group_features.capabilities", body["capabilities"], capabilities))
        action_bits = {
            n: 1 << getattr(of13, f"OFPAT_{n.upper()}")
            for n in (
                "output",
                "copy_ttl_out",
                "copy_ttl_in",
                "set_mpls_ttl",
                "dec_mpls_ttl",
                "push_vlan",
                "pop_vlan",
                "push_mpls",
                "pop_mpls",
                "set_queue",
                "group",
                "set_nw_ttl",
                "dec_nw_ttl",
                "set_field",
                "push_pbb",
                "pop_pbb",
            )
        }
        for i, group_type in enumerate(group_types):
            out.add(P4 + f"group_stats.max_groups.{group_type}", body["max_groups"][i])
            out.add(P4 + f"group_features.actions.{group_type}", body["actions"][i])
            out.merge(_bits(P4 + f"group_features.actions.{group_type}", body["actions"][i], action_bits))
    elif kind == "meter_features":
        for meter in body:
            out.add(P4 + "meter_features.max_meter", meter["max_meter"])
            out.add(P4 + "features.band_types", meter["band_types"])  # sic
            bands = {"drop": 1 << of13.OFPMBT_DROP, "dscp_remark": 1 << of13.OFPMBT_DSCP_REMARK}
            out.merge(_bits(P4 + "meter_features.band_types", meter["band_types"], bands))
            out.add(P4 + "meter_features.capabilities", meter["capabilities"])
            flags = _names_to_masks(of13, "OFPMF_", ["kbps", "ptkps", "burst", "stats"], {"ptkps": "pktps"})
            out.merge(_bits(P4 + "meter_features.capabilities", meter["capabilities"], flags))
            out.add(P4 + "meter_features.max_bands", meter["max_bands"])
            out.add(P4 + "meter_features.max_color", meter["max_color"])
    return out


def expected13(msg: dict) -> Fields:
    out = Fields()
    out.add(P4 + "version", of13.OFP_VERSION)
    out.add(P4 + "type", msg["type_code"])
    out.add(P4 + "length", msg["length"])
    out.add(P4 + "xid", msg["xid"])
    kind = msg["type"]
    if kind == "hello":
        for element in msg["elements"]:
            bitmaps = [0] * (max(element["versions"]) // 32 + 1)
            for v in element["versions"]:
                bitmaps[v // 32] |= 1 << (v % 32)
            out.add(P4 + "hello_element.type", element["type"])
            out.add(P4 + "hello_element.length", 4 + 4 * len(bitmaps))
            out.add(P4 + "hello_element.version.bitmap", Raw("".join(f"{b:08x}" for b in bitmaps)))
    elif kind == "features_reply":
        out.add(P4 + "switch_features.datapath_id", int(msg["datapath_id"], 16))
        for field in ("n_buffers", "n_tables", "auxiliary_id", "capabilities"):
            out.add(P4 + f"switch_features.{field}", msg[field])
        capabilities = [
            "flow_stats",
            "table_stats",
            "port_stats",
            "group_stats",
            "ip_reasm",
            "queue_stats",
            "port_blocked",
        ]
        out.merge(
            _bits(
                P4 + "switch_features.capabilities",
                msg["capabilities"],
                _names_to_masks(of13, "OFPC_", capabilities),
            )
        )
    elif kind in ("set_config", "get_config_reply"):
        out.add(P4 + "switch_config.flags", msg["flags"])
        out.add(P4 + "switch_config.flags.fragments", msg["flags"] & of13.OFPC_FRAG_MASK)
        out.add(P4 + "switch_config.miss_send_len", msg["miss_send_len"])
    elif kind in ("echo_request", "echo_reply"):
        if msg["data"]:
            out.add(P4 + "echo.data", Raw(msg["data"]))
    elif kind in ("role_request", "role_reply"):
        out.add(P4 + f"{kind}.role", msg["role_code"])
        out.add(P4 + f"{kind}.generation_id", msg["generation_id"])
    elif kind == "error":
        out.add(P4 + "error.type", msg["error_type_code"])
        out.add(P4 + "error.code", msg["error_code_value"])
        out.add(P4 + "error.data.body", RawStart(msg["data"]))
        if msg.get("failed"):  # tshark dissects the failed request inside the error
            out.merge(expected13(msg["failed"]))
    elif kind == "port_status":
        out.add(P4 + "port_status.reason", msg["reason_code"])
        out.merge(port13(msg["port"]))
    elif kind == "flow_removed":
        for field in ("cookie", "priority"):
            out.add(P4 + f"flow_removed.{field}", msg[field])
        out.add(P4 + "flow_removed.reason", msg["reason_code"])
        for field in (
            "table_id",
            "duration_sec",
            "duration_nsec",
            "idle_timeout",
            "hard_timeout",
            "packet_count",
            "byte_count",
        ):
            out.add(P4 + f"flow_removed.{field}", msg[field])
        out.merge(match13(msg["match"]))
    elif kind == "packet_in":
        out.add(P4 + "packet_in.buffer_id", msg["buffer_id"])
        out.add(P4 + "packet_in.total_len", msg["total_len"])
        out.add(P4 + "packet_in.reason", msg["reason_code"])
        out.add(P4 + "packet_in.table_id", msg["table_id"])
        out.add(P4 + "packet_in.cookie", msg["cookie"])
        out.merge(match13(msg["match"]))
    elif kind == "packet_out":
        out.add(P4 + "packet_out.buffer_id", msg["buffer_id"])
        out.add(P4 + "packet_out.in_port", msg["in_port_no"])
        out.add(P4 + "packet_out.acts_len", sum(a["len"] for a in msg["actions"]))
        out.merge(actions13(msg["actions"]))
    elif kind == "flow_mod":
        for field in ("cookie", "cookie_mask", "table_id"):
            out.add(P4 + f"flowmod.{field}", msg[field])
        out.add(P4 + "flowmod.command", msg["command_code"])
        for field in (
            "idle_timeout",
            "hard_timeout",
            "priority",
            "buffer_id",
            "out_port",
            "out_group",
            "flags",
        ):
            out.add(P4 + f"flowmod.{field}", msg[field])
        out.merge(_bits(P4 + "flowmod.flags", msg["flags"], _FLOW_MOD_FLAGS))
        out.merge(match13(msg["match"]))
        out.merge(instructions13(msg["instructions"]))
    elif kind in ("multipart_request", "multipart_reply"):
        out.add(P4 + f"{kind}.type", msg["stats_type_code"])
        out.add(P4 + f"{kind}.flags", msg["flags"])
        out.add(P4 + f"{kind}.flags.more", msg["flags"] & of13.OFPMPF_REQ_MORE)
        if kind == "multipart_reply":
            out.merge(_stats_body13(msg["stats_type"], msg["body"]))
        elif msg["stats_type"] in ("flow", "aggregate"):
            prefix = P4 + f"{msg['stats_type']}_stats_request."
            for field in ("table_id", "out_port", "out_group", "cookie", "cookie_mask"):
                out.add(prefix + field, msg[field])
            out.merge(match13(msg["match"]))
        elif msg["stats_type"] == "port_stats":
            out.add(P4 + "port_stats_request.port_no", msg["port_no"])
        elif msg["stats_type"] == "queue":
            out.add(P4 + "queue_stats_request.port_no", msg["port_no"])
            out.add(P4 + "queue_stats_request.queue_id", msg["queue_id"])
    return out


# --- OpenFlow 1.0 (openflow_v1) ------------------------------------------------------------

_MATCH10 = [  # tshark's name, our field, its wildcard bit (nw_src/nw_dst: a bit count)
    ("openflow.in_port", "in_port", of10.OFPFW_IN_PORT),
    ("openflow.eth_src", "dl_src", of10.OFPFW_DL_SRC),
    ("openflow.eth_dst", "dl_dst", of10.OFPFW_DL_DST),
    ("openflow.dl_vlan", "dl_vlan", of10.OFPFW_DL_VLAN),
    ("openflow.dl_vlan_pcp", "dl_vlan_pcp", of10.OFPFW_DL_VLAN_PCP),
    ("openflow.ofp_match.dl_type", "dl_type", of10.OFPFW_DL_TYPE),
    ("openflow.ofp_match.tos", "nw_tos", of10.OFPFW_NW_TOS),
    ("openflow.ofp_match.nw_proto", "nw_proto", of10.OFPFW_NW_PROTO),
    ("openflow.ofp_match.source_addr", "nw_src", None),
    ("openflow.ofp_match.dest_addr", "nw_dst", None),
    ("openflow.ofp_match.source_port", "tp_src", of10.OFPFW_TP_SRC),
    ("openflow.ofp_match.dest_port", "tp_dst", of10.OFPFW_TP_DST),
]


def match10(match: dict, wildcards: int) -> Fields:
    out = Fields()
    out.add(P1 + "wildcards", wildcards)
    for tshark, field, bit in _MATCH10:
        if field in match:
            value = match[field]
            out.add(tshark, int(value, 16) if field == "dl_type" else value)
        else:  # the wildcards must say the field is ignored, whatever value it carries
            shift = getattr(of10, f"OFPFW_{field.upper()}_SHIFT", None)
            ignored = (wildcards >> shift) & 0x3F >= 32 if bit is None else wildcards & bit
            assert ignored, f"{field} missing from the decoded match but not wildcarded"
            out.add(tshark, WILDCARD)
    return out


def actions10(actions: list[dict]) -> Fields:
    out = Fields()
    for action in actions:
        out.add(P1 + "action_typ", action["type_code"])  # sic
        out.add(P1 + "action_len", action["len"])
        if action["type"] == "output":
            out.add(P1 + "output_port", action["port_no"])
            out.add(P1 + "max_len", action["max_len"])
    return out


def port10(desc: dict) -> Fields:
    out = Fields()
    out.add(P1 + "port_no", desc["port_no"])
    out.add(P1 + "hw_add", desc["hw_addr"])  # sic
    out.add(P1 + "port_name", desc["name"])
    out.add(P1 + "port_config", desc["config"])
    config = ["port_down", "no_stp", "no_recv", "no_recv_stp", "no_flood", "no_fwd", "no_packet_in"]
    out.merge(_bits10(desc["config"], _names_to_masks(of10, "OFPPC_", config)))
    out.add(P1 + "port_state", desc["state"])
    out.add(P1 + "link_down", int(bool(desc["state"] & of10.OFPPS_LINK_DOWN)))
    out.add(P1 + "port_curr", desc["curr"])
    features = ["10mb_hd", "10mb_fd", "100mb_hd", "100mb_fd", "1gb_hd", "1gb_fd", "10gb_fd"]
    features += ["copper", "fiber", "autoneg", "pause", "pause_asym"]
    masks = _names_to_masks(of10, "OFPPF_", features)
    masks["100mb_0fd"] = masks.pop("100mb_fd")  # sic
    out.merge(_bits10(desc["curr"], masks))
    for field in ("advertised", "supported", "peer"):
        out.add(P1 + f"port_{field}", desc[field])
    return out


def expected10(msg: dict) -> Fields:
    out = Fields()
    out.add(P1 + "version", of10.OFP_VERSION)
    out.add("openflow_1_0.type", msg["type_code"])
    out.add(P1 + "length", msg["length"])
    out.add(P1 + "xid", msg["xid"])
    kind = msg["type"]
    if kind == "features_reply":
        dpid = int(msg["datapath_id"], 16)
        out.add(P1 + "datapath_id", dpid)
        out.add(P1 + "datapath_imp", dpid >> 48)
        out.add(P1 + "datapath_mac", (dpid & (1 << 48) - 1).to_bytes(6, "big").hex(":"))
        out.add(P1 + "n_buffers", msg["n_buffers"])
        out.add(P1 + "n_tables", msg["n_tables"])
        out.add(P1 + "capabilities", msg["capabilities"])
        # tshark 4.0 shows OpenFlow 1.0's capability bits with 1.3's names for bits 3 and 8
        caps = _names_to_masks(
            of10, "OFPC_", ["flow_stats", "table_stats", "port_stats", "ip_reasm", "queue_stats"]
        )
        caps.update(group_stats=of10.OFPC_STP, port_blocked=1 << 8)
        out.merge(_bits10(msg["capabilities"], caps))
        out.add(P1 + "actions", msg["actions_supported"])
        action_names = ["output", "set_vlan_vid", "set_vlan_pcp", "strip_vlan", "set_dl_src", "set_dl_dst"]
        action_names += ["set_nw_src", "set_nw_dst", "set_nw_tos", "set_tp_src", "set_tp_dst", "enqueue"]
        bits = {n: 1 << getattr(of10, f"OFPAT_{n.upper()}") for n in action_names}
        bits["set_dl_ds"], bits["set_nw_ds"] = bits.pop("set_dl_dst"), bits.pop("set_nw_dst")  # sic
        out.merge(_bits10(msg["actions_supported"], bits))
        for port in msg["ports"]:
            out.merge(port10(port))
    elif kind in ("set_config", "get_config_reply"):
        out.add(P1 + "config_flags", msg["flags"])
        out.add(P1 + "miss_send_len", msg["miss_send_len"])
    elif kind in ("stats_request", "stats_reply"):
        out.add(P1 + "stats.type", msg["stats_type_code"])
        out.add(P1 + "flags", msg["flags"])
        if kind == "stats_request" and msg["stats_type"] in ("flow", "aggregate"):
            out.merge(match10(msg["match"], msg["wildcards"]))
            out.add(P1 + "table_id", msg["table_id"])
            out.add(P1 + "out_port", msg["out_port"])
    elif kind == "packet_in":
        out.add(P1 + "buffer_id", msg["buffer_id"])
        out.add(P1 + "total_len", msg["total_len"])
        out.add(P1 + "in_port", msg["in_port"])
        out.add(P1 + "reason", msg["reason_code"])
    elif kind == "packet_out":
        out.add(P1 + "buffer_id", msg["buffer_id"])
        out.add(P1 + "in_port", msg["in_port_no"])
        out.add(P1 + "actions_len", sum(a["len"] for a in msg["actions"]))
        out.merge(actions10(msg["actions"]))
    elif kind == "flow_mod":
        out.merge(match10(msg["match"], msg["wildcards"]))
        out.add(P1 + "cookie", msg["cookie"])
        out.add(P1 + "command", msg["command_code"])
        for field in ("idle_timeout", "hard_timeout", "priority", "buffer_id", "out_port", "flags"):
            out.add(P1 + field, msg[field])
        out.merge(actions10(msg["actions"]))
    return out


# --- the comparison ------------------------------------------------------------------------

FRAMING = re.compile(
    r"\.pad\d?$|_pad$|\.request_pad$|switch_features_reserved$|\.undecoded$"
    r"|^openflow_v4\.(flow_stats|instruction)\.length$"  # checked through their contents
)
FRAME = {  # the frame a packet-in / packet-out carries: tshark's Ethernet/ARP/IP/ICMP fields
    "eth.src": "eth_src",
    "eth.dst": "eth_dst",
    "eth.type": "eth_type",
    "arp.src.hw_mac": "arp_sha",
    "arp.dst.hw_mac": "arp_tha",
    "arp.src.proto_ipv4": "arp_spa",
    "arp.dst.proto_ipv4": "arp_tpa",
    "ip.src": "ip_src",
    "ip.dst": "ip_dst",
    "ip.proto": "ip_proto",
    "icmp.type": "icmp_type",
    "icmp.code": "icmp_code",
}


def normal(value):
    if isinstance(value, Raw):
        return value.replace(":", "").lower()
    if isinstance(value, str) and re.fullmatch(r"0x[0-9a-fA-F]+", value):
        return int(value, 16)
    if isinstance(value, str) and re.fullmatch(r"\d+", value):
        return int(value)
    return value


def expected(msg: dict) -> Fields:
    return expected13(msg) if msg["version"] == "1.3" else expected10(msg)


def compare(ours: dict, theirs: dict[str, list]) -> list[str]:
    """Every disagreement between our decode and tshark's, one line each (empty: they agree)."""
    want = expected(ours)
    problems = []
    for name, values in theirs.items():
        if not name.startswith("openflow") or FRAMING.search(name):
            continue
        if name not in want:
            problems.append(f"{ours['type']}: tshark shows {name}={values[:3]}, not compared")
            continue
        mine = want[name]
        if len(mine) != len(values):
            problems.append(f"{ours['type']}: {name}: tshark {values[:4]}, ours {mine[:4]}")
            continue
        for m, t in zip(mine, values, strict=True):
            if m is WILDCARD:
                continue
            t = Raw(t) if isinstance(m, Raw) else t
            if isinstance(m, RawStart) and normal(m).startswith(normal(t)):
                continue
            if normal(m) != normal(t):
                problems.append(f"{ours['type']}: {name}: tshark {t!r}, ours {m!r}")
    frame = ours.get("frame") or {}
    for name, field in FRAME.items():
        if name in theirs and field in frame and normal(theirs[name][0]) != normal(frame[field]):
            problems.append(
                f"{ours['type']}: frame {name}: tshark {theirs[name][0]!r}, ours {frame[field]!r}"
            )
    return problems
