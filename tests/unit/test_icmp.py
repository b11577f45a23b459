"""Echo requests as verify builds them, and the replies it accepts."""

from __future__ import annotations

import socket
import struct

from labctl.icmp import ECHO_REPLY, checksum, echo_request, parse_reply


def test_an_echo_request_carries_its_identifier_sequence_and_a_valid_checksum():
    packet = echo_request(0x1234, 7)
    kind, code, _, ident, seq = struct.unpack("!BBHHH", packet[:8])
    assert (kind, code, ident, seq, len(packet)) == (8, 0, 0x1234, 7, 64)  # 8 + 56 bytes, like ping
    assert checksum(packet) == 0  # a packet with its checksum in place sums to zero


def test_checksum_of_the_rfc_1071_example():
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def reply(source: str, ident: int, seq: int, kind: int = ECHO_REPLY) -> bytes:
    ip = (
        bytes([0x45, 0, 0, 84, 0, 0, 0, 0, 64, 1, 0, 0])
        + socket.inet_aton(source)
        + socket.inet_aton("172.16.0.1")
    )
    return ip + struct.pack("!BBHHH", kind, 0, 0, ident, seq) + bytes(56)


def test_a_reply_is_known_by_its_source_identifier_and_sequence():
    assert parse_reply(reply("172.16.0.2", 0x1234, 7)) == ("172.16.0.2", 0x1234, 7)


def test_requests_and_short_packets_are_not_replies():
    assert parse_reply(reply("172.16.0.2", 1, 1, kind=8)) is None  # another VM pinging this one
    assert parse_reply(reply("172.16.0.2", 1, 1)[:24]) is None


def test_a_full_size_request_carries_the_data_bytes_asked_for():
    packet = echo_request(0x1234, 8, size=1434)  # a 1462-byte IPv4 packet: 20 + 8 + 1434
    assert len(packet) == 8 + 1434 and checksum(packet) == 0
    assert packet[8:64] == echo_request(0x1234, 8)[8:]  # ping's 56 bytes first, then again
