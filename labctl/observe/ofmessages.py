"""The body of each OpenFlow 1.0 / 1.3 message type, as plain data.

os-ken parses what a controller receives (packet-in, features reply, stats
replies, flow-removed, errors...) and, of what it sends, the flow-mod. For the
other messages a controller sends (packet-out, stats requests, set_config, role
request...), the body is read with os-ken's own layout strings and structure
parsers (matches, actions).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from os_ken.ofproto import nicira_ext, ofproto_common, ofproto_protocol

from labctl.observe import ofvalues as of
from labctl.observe.ofvalues import OFPROTO, V10, V13

HEADER = ofproto_common.OFP_HEADER_SIZE

# os-ken's class that parses each message type (by our type name), where it has one
_PARSED_BY = {
    "hello": "OFPHello",
    "error": "OFPErrorMsg",
    "echo_request": "OFPEchoRequest",
    "echo_reply": "OFPEchoReply",
    "features_reply": "OFPSwitchFeatures",
    "get_config_reply": "OFPGetConfigReply",
    "packet_in": "OFPPacketIn",
    "flow_removed": "OFPFlowRemoved",
    "port_status": "OFPPortStatus",
    "flow_mod": "OFPFlowMod",
    "stats_reply": "OFPStatsReply",
    "multipart_reply": "OFPMultipartReply",
    "role_reply": "OFPRoleReply",
    "queue_get_config_reply": "OFPQueueGetConfigReply",
    "get_async_reply": "OFPGetAsyncReply",
}


def parse(version: int, kind: str, raw: bytes):
    """os-ken's object for the message, or None where it has no parser for this kind."""
    _, parser = OFPROTO[version]
    cls = getattr(parser, _PARSED_BY.get(kind, ""), None)
    if cls is None:
        return None
    msg_type, length, xid = raw[1], int.from_bytes(raw[2:4], "big"), int.from_bytes(raw[4:8], "big")
    return cls.parser(ofproto_protocol.ProtocolDesc(version), version, msg_type, length, xid, raw)


# --- one function per message type: (version, raw bytes, os-ken's object or None) -> fields


def hello(version: int, raw: bytes, msg) -> dict:
    elements = getattr(msg, "elements", None) or []
    return {"elements": [{"type": e.type, "versions": list(e.versions)} for e in elements]}


def features_reply(version: int, raw: bytes, msg) -> dict:
    out = {
        "datapath_id": f"{msg.datapath_id:016x}",
        "n_buffers": msg.n_buffers,
        "n_tables": msg.n_tables,
        "capabilities": msg.capabilities,
    }
    if version >= V13:
        out["auxiliary_id"] = msg.auxiliary_id
    else:
        out["actions_supported"] = msg.actions
        out["ports"] = [of.port_desc(version, p) for p in msg.ports.values()]
    return out


def switch_config(version: int, raw: bytes, msg) -> dict:
    """set_config and get_config_reply: the same body."""
    ofp, _ = OFPROTO[version]
    flags, miss_send_len = struct.unpack_from(ofp.OFP_SWITCH_CONFIG_PACK_STR, raw, HEADER)
    return {
        "flags": flags,
        "fragments": of.name(of.CONFIG_FRAGMENTS[version], flags & ofp.OFPC_FRAG_MASK),
        "miss_send_len": miss_send_len,
    }


def echo(version: int, raw: bytes, msg) -> dict:
    return {"data": bytes(raw[HEADER:]).hex()}


def error(version: int, raw: bytes, msg) -> dict:
    type_name, code_name = of.error_names(version, msg.type, msg.code)
    out = {
        "error_type": type_name,
        "error_type_code": msg.type,
        "error_code": code_name,
        "error_code_value": msg.code,
    }
    if getattr(msg, "experimenter", None) is not None:  # OpenFlow 1.3 experimenter error
        out.update(experimenter=msg.experimenter, exp_type=msg.exp_type)
    data = bytes(msg.data)
    out["data"] = data.hex()
    if len(data) >= HEADER and data[0] in OFPROTO and type_name != "hello_failed":
        out["failed"] = decode_body(data)  # the request that failed (OVS sends its first 64 bytes)
    return out


def port_status(version: int, raw: bytes, msg) -> dict:
    return {
        "reason": of.name(of.PORT_REASONS[version], msg.reason),
        "reason_code": msg.reason,
        "port": of.port_desc(version, msg.desc),
    }


def flow_removed(version: int, raw: bytes, msg) -> dict:
    out = {
        "reason": of.name(of.FLOW_REMOVED_REASONS[version], msg.reason),
        "reason_code": msg.reason,
        "match": of.match(version, msg.match),
        "cookie": msg.cookie,
        "priority": msg.priority,
        "duration_sec": msg.duration_sec,
        "duration_nsec": msg.duration_nsec,
        "idle_timeout": msg.idle_timeout,
        "packet_count": msg.packet_count,
        "byte_count": msg.byte_count,
    }
    if version >= V13:
        out.update(table_id=msg.table_id, hard_timeout=msg.hard_timeout)
    else:
        out["wildcards"] = msg.match.wildcards
    return out


def packet_in(version: int, raw: bytes, msg) -> dict:
    in_port = msg.match["in_port"] if version >= V13 else msg.in_port
    out = {
        "buffer_id": msg.buffer_id,
        "in_port": in_port,
        "reason": of.name(of.PACKET_IN_REASONS[version], msg.reason),
        "reason_code": msg.reason,
        "total_len": msg.total_len,
    }
    if version >= V13:
        out.update(table_id=msg.table_id, cookie=msg.cookie, match=of.match(version, msg.match))
    out["frame"] = of.frame_fields(msg.data) if msg.data else None
    return out


def packet_out(version: int, raw: bytes, msg) -> dict:
    """os-ken only builds packet-outs: the body by its layout string and action parser."""
    ofp, parser = OFPROTO[version]
    buffer_id, in_port, actions_len = struct.unpack_from(ofp.OFP_PACKET_OUT_PACK_STR, raw, HEADER)
    offset = ofp.OFP_PACKET_OUT_SIZE
    end, actions = offset + actions_len, []
    while offset < end:
        action = parser.OFPAction.parser(raw, offset)
        actions.append(action)
        offset += action.len
    data = raw[end:]
    return {
        "buffer_id": buffer_id,
        "in_port": of.port(version, in_port),
        "in_port_no": in_port,
        "actions": of.actions(version, actions),
        "frame": of.frame_fields(data) if data else None,
    }


def flow_mod(version: int, raw: bytes, msg) -> dict:
    out = {
        "command": of.name(of.COMMANDS[version], msg.command),
        "command_code": msg.command,
        "match": of.match(version, msg.match),
        "cookie": msg.cookie,
        "idle_timeout": msg.idle_timeout,
        "hard_timeout": msg.hard_timeout,
        "priority": msg.priority,
        "buffer_id": msg.buffer_id,
        "out_port": msg.out_port,
        "flags": msg.flags,
    }
    if version >= V13:
        out.update(
            cookie_mask=msg.cookie_mask,
            table_id=msg.table_id,
            out_group=msg.out_group,
            instructions=of.instructions(msg.instructions),
            actions=of.flat_actions(version, found_instructions=msg.instructions),
        )
    else:
        out.update(wildcards=msg.match.wildcards, actions=of.flat_actions(version, msg.actions))
    return out


def stats_request(version: int, raw: bytes, msg) -> dict:
    ofp, parser = OFPROTO[version]
    size = ofp.OFP_MULTIPART_REQUEST_SIZE if version >= V13 else ofp.OFP_STATS_MSG_SIZE
    pack = ofp.OFP_MULTIPART_REQUEST_PACK_STR if version >= V13 else ofp.OFP_STATS_MSG_PACK_STR
    stats_type, flags = struct.unpack_from(pack, raw, HEADER)
    kind = of.name(of.STATS_TYPES[version], stats_type)
    out = {"stats_type": kind, "stats_type_code": stats_type, "flags": flags}
    if kind in ("flow", "aggregate"):
        if version >= V13:
            table_id, out_port, out_group, cookie, cookie_mask = struct.unpack_from(
                ofp.OFP_FLOW_STATS_REQUEST_0_PACK_STR, raw, size
            )
            found = parser.OFPMatch.parser(raw, size + ofp.OFP_FLOW_STATS_REQUEST_0_SIZE)
            out.update(
                table_id=table_id,
                out_port=out_port,
                out_group=out_group,
                cookie=cookie,
                cookie_mask=cookie_mask,
                match=of.match(version, found),
            )
        else:
            found = parser.OFPMatch.parse(raw, size)
            table_id, out_port = struct.unpack_from(
                ofp.OFP_FLOW_STATS_REQUEST_ID_PORT_STR, raw, size + ofp.OFP_MATCH_SIZE
            )
            out.update(
                match=of.match(version, found),
                wildcards=found.wildcards,
                table_id=table_id,
                out_port=out_port,
            )
    elif kind in ("port", "port_stats"):
        (port_no,) = struct.unpack_from(ofp.OFP_PORT_STATS_REQUEST_PACK_STR, raw, size)
        out["port_no"] = port_no
    elif kind == "queue":
        port_no, queue_id = struct.unpack_from(ofp.OFP_QUEUE_STATS_REQUEST_PACK_STR, raw, size)
        out.update(port_no=port_no, queue_id=queue_id)
    elif kind == "group":
        (out["group_id"],) = struct.unpack_from(ofp.OFP_GROUP_STATS_REQUEST_PACK_STR, raw, size)
    elif kind in ("meter", "meter_config"):
        (out["meter_id"],) = struct.unpack_from(ofp.OFP_METER_MULTIPART_REQUEST_PACK_STR, raw, size)
    out["more"] = bool(flags & 1)
    return out


def stats_reply(version: int, raw: bytes, msg) -> dict:
    kind = of.name(of.STATS_TYPES[version], msg.type)
    body = msg.body
    if kind == "port_desc":
        entries = [of.port_desc(version, p) for p in body]
    elif kind == "flow":
        entries = [_flow_stats(version, f) for f in body]
    else:
        entries = of.plain(body)
    return {
        "stats_type": kind,
        "stats_type_code": msg.type,
        "flags": msg.flags,
        "more": bool(msg.flags & 1),
        "body": entries,
    }


def _flow_stats(version: int, flow) -> dict:
    out = {
        "table_id": flow.table_id,
        "match": of.match(version, flow.match),
        "duration_sec": flow.duration_sec,
        "duration_nsec": flow.duration_nsec,
        "priority": flow.priority,
        "idle_timeout": flow.idle_timeout,
        "hard_timeout": flow.hard_timeout,
        "cookie": flow.cookie,
        "packet_count": flow.packet_count,
        "byte_count": flow.byte_count,
    }
    if version >= V13:
        out.update(flags=flow.flags, instructions=of.instructions(flow.instructions))
    else:
        out["actions"] = of.actions(version, flow.actions)
    return out


def role(version: int, raw: bytes, msg) -> dict:
    """OpenFlow 1.3 role_request and role_reply: the same body."""
    ofp, _ = OFPROTO[version]
    role_code, generation_id = struct.unpack_from(ofp.OFP_ROLE_REQUEST_PACK_STR, raw, HEADER)
    return {
        "role": of.name(of.ROLES[version], role_code),
        "role_code": role_code,
        "generation_id": generation_id,
    }


def vendor(version: int, raw: bytes, msg) -> dict:
    """OpenFlow 1.0 vendor / 1.3 experimenter messages; Nicira's (OVS) are named by subtype,
    and its role request / reply (1.0's controller roles) decoded."""
    (vendor_id,) = struct.unpack_from("!I", raw, HEADER)
    out: dict = {"vendor": vendor_id}
    if len(raw) < HEADER + 8:
        out["data"] = bytes(raw[HEADER + 4 :]).hex()
        return out
    (subtype,) = struct.unpack_from("!I", raw, HEADER + 4)
    if vendor_id == ofproto_common.NX_EXPERIMENTER_ID:
        out.update(vendor_name="nicira", subtype=of.name(of.NX_SUBTYPES, subtype), subtype_code=subtype)
        if subtype in (nicira_ext.NXT_ROLE_REQUEST, nicira_ext.NXT_ROLE_REPLY) and version == V10:
            (role_code,) = struct.unpack_from(nicira_ext.NX_ROLE_PACK_STR, raw, nicira_ext.NICIRA_HEADER_SIZE)
            out.update(role=of.name(of.ROLES[V10], role_code), role_code=role_code)
            return out
    else:
        out["subtype_code"] = subtype  # 1.3: exp_type
    out["data"] = bytes(raw[HEADER + 8 :]).hex()
    return out


def empty(version: int, raw: bytes, msg) -> dict:
    return {}


def generic(version: int, raw: bytes, msg) -> dict:
    """A message type the lab does not send: os-ken's fields where it parses it."""
    if msg is None:
        return {"body": bytes(raw[HEADER:]).hex()} if len(raw) > HEADER else {}
    skip = {"version", "msg_type", "msg_len", "xid", "buf", "datapath"}
    return {k: of.plain(v) for k, v in msg.stringify_attrs() if k not in skip}


BODIES: dict[str, Callable[[int, bytes, object], dict]] = {
    "hello": hello,
    "error": error,
    "echo_request": echo,
    "echo_reply": echo,
    "vendor": vendor,
    "experimenter": vendor,
    "features_request": empty,
    "features_reply": features_reply,
    "get_config_request": empty,
    "get_config_reply": switch_config,
    "set_config": switch_config,
    "packet_in": packet_in,
    "flow_removed": flow_removed,
    "port_status": port_status,
    "packet_out": packet_out,
    "flow_mod": flow_mod,
    "stats_request": stats_request,
    "multipart_request": stats_request,
    "stats_reply": stats_reply,
    "multipart_reply": stats_reply,
    "barrier_request": empty,
    "barrier_reply": empty,
    "role_request": role,
    "role_reply": role,
}


def type_name(version: int, msg_type: int) -> str:
    return of.name(of.TYPES[version], msg_type)


class Undecodable(Exception):
    """A message os-ken's structures cannot read (cut short, or not what its type says)."""


def decode_body(raw: bytes) -> dict:
    """Header and body of one whole OpenFlow message (of a version labctl decodes)."""
    version, msg_type, length, xid = struct.unpack_from("!BBHI", raw)
    kind = type_name(version, msg_type)
    out = {"version": of.VERSIONS[version], "type": kind, "type_code": msg_type, "xid": xid, "length": length}
    if len(raw) < length:  # only the start of it (the failed request inside an error)
        return {**out, "truncated": True}
    try:
        out.update(BODIES.get(kind, generic)(version, raw, parse(version, kind, raw)))
    except (struct.error, KeyError, IndexError, AttributeError, TypeError, ValueError, AssertionError) as exc:
        out["undecoded"] = f"{type(exc).__name__}: {exc}"
    return out
