"""Read a pcap file, also while tcpdump is still writing it, down to TCP segments.

`PcapTail` returns the records complete so far and keeps a record cut off at the
end of a growing file for the next read. Link layers: Ethernet (tcpdump on one
interface) and Linux cooked v2 (`tcpdump -i any`), where the loopback's outgoing
copy of a packet -- the same packet as its incoming copy -- is left out.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from labctl.errors import InputError

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL2 = 276
_MAGIC = {  # the file's first four bytes -> (byte order, timestamp divisor)
    b"\xd4\xc3\xb2\xa1": ("<", 1e6),
    b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9),  # nanosecond timestamps
    b"\xa1\xb2\x3c\x4d": (">", 1e9),
}
_FILE_HEADER = 24
_RECORD_HEADER = 16
_SLL2_HEADER = 20  # protocol, reserved, ifindex, ARPHRD type, packet type, address length, address
_ARPHRD_LOOPBACK = 772
_PACKET_OUTGOING = 4
_ETH_P_IP = 0x0800
_ETHERNET_HEADER = 14
_IPPROTO_TCP = 6
_TCP_SYN = 0x002
_TCP_ACK = 0x010


class PcapError(InputError):
    """Not a pcap file labctl reads (pcapng, another link type)."""


@dataclass(frozen=True)
class Segment:
    """One TCP segment of the capture."""

    time: float
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int | None  # the acknowledgement number, when the ACK flag is set
    syn: bool
    payload: bytes


class PcapTail:
    """A pcap file read in steps: each read() returns the records complete by now."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.buffer = b""
        self.linktype: int | None = None
        self._order = "<"
        self._divisor = 1e6

    def read(self) -> list[tuple[float, bytes]]:
        self.buffer += self.fh.read()
        if self.linktype is None:
            if len(self.buffer) < _FILE_HEADER:
                return []
            self._header(self.buffer[:_FILE_HEADER])
            self.buffer = self.buffer[_FILE_HEADER:]
        records, offset = [], 0
        while len(self.buffer) - offset >= _RECORD_HEADER:
            sec, frac, caplen, _ = struct.unpack_from(f"{self._order}IIII", self.buffer, offset)
            end = offset + _RECORD_HEADER + caplen
            if end > len(self.buffer):
                break  # tcpdump has not written all of this record yet
            records.append((sec + frac / self._divisor, self.buffer[offset + _RECORD_HEADER : end]))
            offset = end
        self.buffer = self.buffer[offset:]
        return records

    def _header(self, header: bytes) -> None:
        if header[:4] not in _MAGIC:
            raise PcapError(
                "not a pcap file (pcapng? tcpdump -w writes pcap; editcap -F pcap converts a pcapng)"
            )
        self._order, self._divisor = _MAGIC[header[:4]]
        self.linktype = struct.unpack_from(f"{self._order}I", header, 20)[0] & 0x0FFFFFFF
        if self.linktype not in (LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2):
            raise PcapError(f"link type {self.linktype} is neither Ethernet nor Linux cooked v2")

    def segments(self) -> list[Segment]:
        found = []
        for time, frame in self.read():
            segment = tcp_segment(time, frame, self.linktype)
            if segment is not None:
                found.append(segment)
        return found


def tcp_segment(time: float, frame: bytes, linktype: int | None) -> Segment | None:
    """The TCP segment an IPv4 frame carries; None for anything else, and for the
    loopback's outgoing copy of a packet in a `-i any` capture."""
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < _SLL2_HEADER:
            return None
        protocol, _, _, hatype, pkttype = struct.unpack_from("!HHIHB", frame)
        if protocol != _ETH_P_IP or (hatype == _ARPHRD_LOOPBACK and pkttype == _PACKET_OUTGOING):
            return None
        start = _SLL2_HEADER
    else:
        if len(frame) < _ETHERNET_HEADER or struct.unpack_from("!H", frame, 12)[0] != _ETH_P_IP:
            return None
        start = _ETHERNET_HEADER
    if len(frame) < start + 20:
        return None
    ver_ihl, _, total_length, _, fragment, _, proto = struct.unpack_from("!BBHHHBB", frame, start)
    ip_header = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or proto != _IPPROTO_TCP or fragment & 0x1FFF:
        return None  # TCP in IPv4, and only a first fragment (the channel is never fragmented)
    end = min(start + total_length, len(frame))  # Ethernet may pad a short frame
    tcp_at = start + ip_header
    if end < tcp_at + 20:
        return None
    sport, dport, seq, ack, offset_flags = struct.unpack_from("!HHIIH", frame, tcp_at)
    src, dst = (socket.inet_ntoa(frame[start + at : start + at + 4]) for at in (12, 16))
    payload = bytes(frame[tcp_at + (offset_flags >> 12) * 4 : end])
    acked = ack if offset_flags & _TCP_ACK else None
    return Segment(time, src, sport, dst, dport, seq, acked, bool(offset_flags & _TCP_SYN), payload)


def read_segments(path: str) -> Iterator[Segment]:
    """Every TCP segment of a finished capture."""
    with open(path, "rb") as fh:
        yield from PcapTail(fh).segments()
