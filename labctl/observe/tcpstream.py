"""TCP streams put back together, per connection and direction, into OpenFlow messages.

A message may span segments and a segment may carry several messages. Segments
are placed by sequence number, so a copy of a segment seen twice (a retransmission,
or the same packet captured on two interfaces) is read once, and one that comes
early waits for the gap before it. A gap the capture will never fill -- the other
side acknowledged data the capture did not see, the capture ended, or too many
segments wait -- is given up: the stream starts again at the next segment that
begins with a plausible OpenFlow header, as it does when the capture starts in
the middle of a message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from labctl.observe.pcapread import Segment

OFP_HEADER_SIZE = 8
MAX_WAITING = 64  # segments held for a gap before the gap is given up as lost
_HALF = 1 << 31


def _after(a: int, b: int) -> int:
    """How far sequence number a lies after b (negative: before), modulo 2**32."""
    d = (a - b) & 0xFFFFFFFF
    return d - (1 << 32) if d >= _HALF else d


@dataclass
class _Direction:
    next_seq: int | None = None  # the sequence number of the next byte expected
    data: bytes = b""  # in order, not yet a whole message
    synced: bool = False  # data starts at a message boundary
    waiting: dict[int, Segment] = field(default_factory=dict)  # early segments by seq


class Reassembler:
    """Feed segments in capture order; get (segment, message bytes) back in stream order.

    `plausible(header)` says whether 8 bytes look like the start of an OpenFlow
    message (a version labctl decodes, a sane length)."""

    def __init__(self, plausible: Callable[[bytes], bool]):
        self.plausible = plausible
        self.directions: dict[tuple, _Direction] = {}

    def feed(self, seg: Segment) -> Iterator[tuple[Segment, bytes]]:
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        if seg.ack is not None:  # the other side got all before seg.ack: a gap there is lost
            back = self.directions.get((seg.dst, seg.dport, seg.src, seg.sport))
            if back is not None and back.waiting and _after(seg.ack, back.next_seq) > 0:
                yield from self._skip_gap(back)
        d = self.directions.get(key)
        if seg.syn:  # a new connection on this address pair: start afresh
            self.directions[key] = _Direction(next_seq=(seg.seq + 1) & 0xFFFFFFFF, synced=True)
            return
        if not seg.payload:
            return
        if d is None:  # first sight of a connection already open: the data starts here
            d = self.directions[key] = _Direction(next_seq=seg.seq)
        yield from self._place(d, seg)

    def flush(self) -> Iterator[tuple[Segment, bytes]]:
        """The capture has ended: what still waits behind a gap is read after it."""
        for d in self.directions.values():
            while d.waiting:
                yield from self._skip_gap(d)

    def _skip_gap(self, d: _Direction) -> Iterator[tuple[Segment, bytes]]:
        first = min(d.waiting, key=lambda s: _after(s, d.next_seq))
        d.next_seq, d.data, d.synced = first, b"", False
        yield from self._drain(d)

    def _place(self, d: _Direction, seg: Segment) -> Iterator[tuple[Segment, bytes]]:
        ahead = _after(seg.seq, d.next_seq)
        if ahead > 0:  # a segment before this one is missing so far
            d.waiting[seg.seq] = seg
            if len(d.waiting) > MAX_WAITING:  # it is not coming: skip the gap
                yield from self._skip_gap(d)
            return
        payload = seg.payload[-ahead:] if ahead < 0 else seg.payload  # drop what was read already
        if not payload or -ahead >= len(seg.payload):
            return
        yield from self._append(d, seg, payload)
        yield from self._drain(d)

    def _drain(self, d: _Direction) -> Iterator[tuple[Segment, bytes]]:
        """Segments that waited for the gap now filled, in order."""
        while d.waiting:
            ready = [s for s in d.waiting if _after(s, d.next_seq) <= 0]
            if not ready:
                return
            seg = d.waiting.pop(ready[0])
            ahead = _after(seg.seq, d.next_seq)
            if -ahead < len(seg.payload):
                yield from self._append(d, seg, seg.payload[-ahead:] if ahead < 0 else seg.payload)

    def _append(self, d: _Direction, seg: Segment, payload: bytes) -> Iterator[tuple[Segment, bytes]]:
        if not d.synced:
            if not self.plausible(payload[:OFP_HEADER_SIZE]):
                d.next_seq = (d.next_seq + len(payload)) & 0xFFFFFFFF  # mid-message: skip it
                return
            d.synced = True
        d.data += payload
        d.next_seq = (d.next_seq + len(payload)) & 0xFFFFFFFF
        while len(d.data) >= OFP_HEADER_SIZE:
            if not self.plausible(d.data[:OFP_HEADER_SIZE]):
                d.data, d.synced = b"", False  # lost the boundaries: wait for a segment that starts one
                return
            length = int.from_bytes(d.data[2:4], "big")
            if len(d.data) < length:
                return
            message, d.data = d.data[:length], d.data[length:]
            yield seg, message
