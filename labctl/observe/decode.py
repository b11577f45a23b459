"""Decode the OpenFlow messages of a capture of the controller channel, with os-ken's parsers.

pcapread.py reads the pcap (also while tcpdump still writes it) down to TCP
segments, tcpstream.py puts each connection's two directions back together,
ofmessages.py decodes each message (every OpenFlow 1.0 and 1.3 type the lab
sees). The result is plain data, one dict a message, annotated later with the
lab's names (trace.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from labctl.observe.ofmessages import decode_body
from labctl.observe.ofvalues import NO_BUFFER, OFPROTO, TYPES
from labctl.observe.pcapread import PcapTail, Segment
from labctl.observe.tcpstream import OFP_HEADER_SIZE, Reassembler

__all__ = ["NO_BUFFER", "Decoder", "decode", "messages"]


def plausible_header(header: bytes) -> bool:
    """Whether 8 bytes may start an OpenFlow message labctl decodes: a known version
    and type, a length no shorter than the header."""
    if len(header) < OFP_HEADER_SIZE:
        return True  # too short to tell yet
    version, msg_type, length = header[0], header[1], int.from_bytes(header[2:4], "big")
    return version in OFPROTO and msg_type in TYPES[version] and length >= OFP_HEADER_SIZE


def decode(raw: bytes, seg: Segment, toward_controller: bool) -> dict:
    """One message, with where and when it was seen."""
    body = decode_body(raw)
    return {
        "time": seg.time,
        "src": seg.src,
        "dst": seg.dst,
        "switch": seg.src if toward_controller else seg.dst,
        "direction": "switch->controller" if toward_controller else "controller->switch",
        **body,
    }


class Decoder:
    """Segments in, decoded OpenFlow messages of the controller's port out, in order."""

    def __init__(self, controller_port: int | None):
        self.port = controller_port
        self.streams = Reassembler(plausible_header)

    def feed(self, segments: Iterable[Segment]) -> Iterator[dict]:
        for seg in segments:
            if self.port is not None and self.port not in (seg.sport, seg.dport):
                continue
            yield from self._decoded(self.streams.feed(seg))

    def end(self) -> Iterator[dict]:
        """The capture is over: messages that waited behind a segment it never saw."""
        yield from self._decoded(self.streams.flush())

    def _decoded(self, found) -> Iterator[dict]:
        for last, raw in found:
            yield decode(raw, last, self.port is not None and last.dport == self.port)


def messages(path: str, controller_port: int | None = None) -> Iterator[dict]:
    """Every OpenFlow message in a finished capture, in capture order."""
    decoder = Decoder(controller_port)
    with open(path, "rb") as fh:
        yield from decoder.feed(PcapTail(fh).segments())
    yield from decoder.end()
