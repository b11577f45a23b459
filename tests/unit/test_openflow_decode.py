"""The OpenFlow decoder on captures built here, byte by byte: TCP streams put back
together whatever the capture did to them (split, repeated, reordered, cut short,
seen twice on `-i any`), a pcap read while it grows, and the messages a controller
sends, which os-ken only builds (decoded here and compared with what was built)."""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from os_ken.ofproto import nicira_ext, ofproto_protocol, ofproto_v1_0, ofproto_v1_3
from os_ken.ofproto import ofproto_v1_0_parser as p10
from os_ken.ofproto import ofproto_v1_3_parser as p13

from labctl.observe.decode import messages
from labctl.observe.ofmessages import decode_body
from labctl.observe.pcapread import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2, PcapError, PcapTail
from labctl.observe.trace import Names, Wanted, annotate, follow, render_line

SWITCH, CONTROLLER = ("10.250.0.1", 40000), ("10.250.0.254", 6633)


def built(msg) -> bytes:
    msg.set_xid(0x1234)
    msg.serialize()
    return bytes(msg.buf)


def dp(version):
    return ofproto_protocol.ProtocolDesc(version)


def ip_tcp(src, dst, seq: int, payload: bytes, syn: bool = False, ack: int | None = None) -> bytes:
    flags = 0x002 if syn else 0x008 | (0x010 if ack is not None else 0)
    tcp = struct.pack("!HHIIHHHH", src[1], dst[1], seq, ack or 0, (5 << 12) | flags, 65535, 0, 0)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(tcp) + len(payload),
        0,
        0x4000,
        64,
        6,
        0,
        socket.inet_aton(src[0]),
        socket.inet_aton(dst[0]),
    )
    return header + tcp + payload


def ethernet(packet: bytes) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + packet


def sll2(packet: bytes, ifindex: int, hatype: int = 1, pkttype: int = 0) -> bytes:
    return struct.pack("!HHIHBB8s", 0x0800, 0, ifindex, hatype, pkttype, 6, b"\0" * 8) + packet


def pcap(frames, linktype: int = LINKTYPE_ETHERNET) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    for i, frame in enumerate(frames):
        out += struct.pack("<IIII", 1000 + i, 0, len(frame), len(frame)) + frame
    return out


def decoded(tmp_path, frames, linktype=LINKTYPE_ETHERNET) -> list[dict]:
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap(frames, linktype))
    return list(messages(str(path), 6633))


def to_controller(seq: int, payload: bytes, syn: bool = False) -> bytes:
    return ethernet(ip_tcp(SWITCH, CONTROLLER, seq, payload, syn))


ECHO = built(p10.OFPEchoRequest(dp(1), data=b"hello"))
HELLO = struct.pack("!BBHI", 1, 0, 8, 7)


def test_a_message_split_over_segments_and_two_in_one_segment_are_read_whole(tmp_path):
    first, second = ECHO[:5], ECHO[5:] + HELLO
    found = decoded(
        tmp_path, [to_controller(100, b"", syn=True), to_controller(101, first), to_controller(106, second)]
    )
    assert [(m["type"], m.get("data")) for m in found] == [("echo_request", b"hello".hex()), ("hello", None)]
    assert found[0]["direction"] == "switch->controller" and found[0]["switch"] == SWITCH[0]


def test_a_segment_seen_twice_is_read_once_and_one_that_comes_early_waits(tmp_path):
    frames = [
        to_controller(1, ECHO),
        to_controller(1, ECHO),  # a retransmission
        to_controller(1 + len(ECHO) + 8, HELLO),  # early: the hello before it is still missing
        to_controller(1 + len(ECHO), HELLO),
    ]
    assert [m["type"] for m in decoded(tmp_path, frames)] == ["echo_request", "hello", "hello"]


def test_a_capture_that_begins_mid_message_starts_at_the_next_message(tmp_path):
    frames = [to_controller(50, ECHO[3:]), to_controller(50 + len(ECHO) - 3, HELLO)]
    assert [m["type"] for m in decoded(tmp_path, frames)] == ["hello"]


def test_a_segment_the_capture_missed_costs_only_its_own_messages(tmp_path):
    lost = 100  # bytes the switch sent, the controller acknowledged, the capture never saw
    after = 1 + len(ECHO) + lost
    frames = [
        to_controller(1, ECHO),
        to_controller(after, HELLO),
        ethernet(ip_tcp(CONTROLLER, SWITCH, 7, b"", ack=after + len(HELLO))),
        to_controller(after + len(HELLO), HELLO),
    ]
    assert [m["type"] for m in decoded(tmp_path, frames)] == ["echo_request", "hello", "hello"]
    # without the acknowledgement, the end of the capture gives the gap up too
    assert [m["type"] for m in decoded(tmp_path, frames[:2])] == ["echo_request", "hello"]


def test_any_interface_capture_reads_each_packet_once(tmp_path):
    packet = ip_tcp(SWITCH, CONTROLLER, 1, ECHO)
    frames = [
        sll2(packet, ifindex=1, hatype=772, pkttype=4),  # loopback, outgoing copy
        sll2(packet, ifindex=1, hatype=772, pkttype=0),  # loopback, incoming copy
        sll2(packet, ifindex=6, pkttype=0),  # the same packet on another interface
    ]
    assert [m["type"] for m in decoded(tmp_path, frames, LINKTYPE_LINUX_SLL2)] == ["echo_request"]


def test_a_growing_pcap_returns_only_whole_records(tmp_path):
    data = pcap([to_controller(1, ECHO)])
    path = tmp_path / "growing.pcap"
    path.write_bytes(data[:-7])  # tcpdump is still writing the record
    with open(path, "rb") as fh:
        reader = PcapTail(fh)
        assert reader.read() == []
        with open(path, "ab") as out:
            out.write(data[-7:])
        assert [payload[-len(ECHO) :] for _, payload in reader.read()] == [ECHO]


def test_follow_decodes_what_is_written_after_it_started_and_stops_with_the_capture(tmp_path):
    path = tmp_path / "live.pcap"
    data = pcap([to_controller(1, ECHO), to_controller(1 + len(ECHO), HELLO)])
    cut = len(pcap([to_controller(1, ECHO)]))
    path.write_bytes(data[: cut + 5])  # the first record, and a few bytes of the second
    writing = threading.Event()
    writing.set()

    def finish():
        with open(path, "ab") as out:
            out.write(data[cut + 5 :])
        writing.clear()

    timer = threading.Timer(0.3, finish)
    timer.start()
    try:
        found = list(follow(str(path), Names(), 6633, Wanted(everything=True), 1000.5, writing.is_set, 0.05))
    finally:
        timer.join()
    # the echo was captured (at 1000 s) before the follow began (1000.5 s): not shown
    assert [(m["type"], m["time"]) for m in found] == [("hello", 0.5)]


def test_a_file_that_is_not_a_pcap_is_refused_in_one_line(tmp_path):
    path = tmp_path / "x.pcapng"
    path.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\0" * 40)
    with pytest.raises(PcapError, match="not a pcap file"):
        list(messages(str(path), 6633))


# --- what a controller sends: os-ken builds it, labctl decodes it back


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (
            p10.OFPSetConfig(dp(1), ofproto_v1_0.OFPC_FRAG_DROP, 128),
            {"fragments": "drop", "miss_send_len": 128},
        ),
        (p13.OFPSetConfig(dp(4), 0, 0xFFFF), {"fragments": "normal", "miss_send_len": 0xFFFF}),
        (
            p13.OFPRoleRequest(dp(4), ofproto_v1_3.OFPCR_ROLE_MASTER, 9),
            {"role": "master", "generation_id": 9},
        ),
        (p10.NXTRoleRequest(dp(1), nicira_ext.NX_ROLE_SLAVE), {"subtype": "role_request", "role": "slave"}),
        (p10.OFPFeaturesRequest(dp(1)), {"type": "features_request"}),
        (p13.OFPBarrierRequest(dp(4)), {"type": "barrier_request"}),
        (
            p10.OFPFlowStatsRequest(
                dp(1), 0, p10.OFPMatch(in_port=3, dl_type=0x0800), 0xFF, ofproto_v1_0.OFPP_NONE
            ),
            {
                "stats_type": "flow",
                "match": {"in_port": 3, "dl_type": "0x0800"},
                "out_port": ofproto_v1_0.OFPP_NONE,
            },
        ),
        (
            p13.OFPFlowStatsRequest(
                dp(4), 0, 1, 7, ofproto_v1_3.OFPG_ANY, 5, 0xFF, p13.OFPMatch(eth_type=0x0806)
            ),
            {"stats_type": "flow", "table_id": 1, "out_port": 7, "cookie": 5, "match": {"eth_type": 0x0806}},
        ),
        (p13.OFPPortStatsRequest(dp(4), 0, 2), {"stats_type": "port_stats", "port_no": 2}),
        (p10.OFPQueueStatsRequest(dp(1), 0, 1, 4), {"stats_type": "queue", "port_no": 1, "queue_id": 4}),
        (
            p13.OFPPacketOut(
                dp(4), ofproto_v1_3.OFP_NO_BUFFER, 1, [p13.OFPActionOutput(ofproto_v1_3.OFPP_FLOOD)], b""
            ),
            {
                "in_port": 1,
                "actions": [
                    {
                        "type": "output",
                        "type_code": 0,
                        "len": 16,
                        "port": "FLOOD",
                        "port_no": ofproto_v1_3.OFPP_FLOOD,
                        "max_len": 0xFFE5,
                    }
                ],
            },
        ),
    ],
)
def test_messages_a_controller_sends_decode_to_what_was_built(msg, expected):
    found = decode_body(built(msg))
    assert "undecoded" not in found, found
    assert {k: found.get(k) for k in expected} == expected and found["xid"] == 0x1234


def test_an_error_names_its_type_and_code_and_decodes_the_request_that_failed():
    failed = built(p13.OFPFlowMod(dp(4), table_id=0xFF, match=p13.OFPMatch(), instructions=[]))
    error = built(p13.OFPErrorMsg(dp(4), type_=5, code=2, data=failed))
    found = decode_body(error)
    assert (found["error_type"], found["error_code"]) == ("flow_mod_failed", "bad_table_id")
    assert (found["failed"]["type"], found["failed"]["table_id"]) == ("flow_mod", 0xFF)


def test_a_message_cut_short_says_so_instead_of_failing():
    found = decode_body(built(p13.OFPRoleRequest(dp(4), 1, 0))[:12])
    assert found["type"] == "role_request" and found["truncated"] is True


def test_flow_removed_says_why_the_flow_left_in_the_labs_names():
    raw = struct.pack("!BBHI", 1, 11, 88, 0) + p10_flow_removed_body()
    names = Names()
    names.ports = {"host1": {1: "vm1"}}
    names.macs = {"02:00:ac:10:00:01": "vm1"}
    names.hosts = {"10.250.0.1": "host1"}
    msg = {
        "time": 0.0,
        "src": "10.250.0.1",
        "dst": "10.250.0.254",
        "switch": "10.250.0.1",
        "direction": "switch->controller",
        **decode_body(raw),
    }
    line = render_line(annotate(msg, names))
    assert "FLOW_REMOVED" in line and "reason=idle_timeout" in line
    assert "match(in_port=1[vm1],dl_src=02:00:ac:10:00:01[vm1])" in line and "after=10.500s" in line


def p10_flow_removed_body() -> bytes:
    match = p10.OFPMatch(in_port=1, dl_src=b"\x02\x00\xac\x10\x00\x01")
    buf = bytearray(40)
    match.serialize(buf, 0)
    return bytes(buf) + struct.pack(
        ofproto_v1_0.OFP_FLOW_REMOVED_PACK_STR0,
        0,
        32768,
        ofproto_v1_0.OFPRR_IDLE_TIMEOUT,
        10,
        500_000_000,
        10,
        3,
        294,
    )


def test_either_name_of_the_stats_messages_selects_both_versions():
    wanted = Wanted(types=("stats_reply",))
    assert wanted({"host": "h", "type": "multipart_reply"}) and wanted({"host": "h", "type": "stats_reply"})
    assert Wanted(types=("role_request",))({"host": "h", "type": "vendor", "subtype": "role_request"})
    assert not Wanted()({"host": "h", "type": "echo_request"}) and Wanted()({"host": "h", "type": "error"})
