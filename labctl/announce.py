"""Which VM announces itself when, before verify sets up its pairs: one gratuitous ARP
per VM, paced like the set-ups.

Without it, every unordered pair's set-up starts with an ARP request, a broadcast, and a
learning switch floods a broadcast to every switch of the lab: each one is a packet-in at
every switch, and the controller answers them one after another. In a 64-host star that
is 2016 floods of 64 packet-ins each, which the 64 switches and the controller share two
cores to handle, while the pairs' own packet-ins number a few per switch on their path.

One gratuitous ARP per VM teaches the same things once: every switch learns the VM's
port (the controller's flood reaches them all), and every other VM learns the VM's
address (garp.py lets the VMs take unsolicited ARP while verify runs). After that a
set-up is unicast: its echo request and reply are packet-ins and flow-mods along the
path only, so each pair still shows that it answers through the controller's reactive
flows. The window counts the announcements that have not reached half the other VMs
yet: that time is the controller's queue (a VM whose switch is slow to deliver, or
that misses one, says nothing of it). One that half the VMs have not heard in time
steers the window down. Each goes once more, after all the others, to the VMs that
missed it (a VM now and then hears nothing in its first seconds, and then hears); a VM
that still missed one asks with an ordinary ARP request when its pair is set up, as
without announcements.

Pure: time comes in as arguments and announcements go out as names, so it runs against
a fake clock as well as against real sockets (verify.py).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from labctl.pacing import Pacer

ANNOUNCE_TIMEOUT_S = 2.0  # as a set-up probe's: longer than that is a queue, or a loss
ANNOUNCE_TRIES = 2


@dataclass
class _Sent:
    at: float
    waiting: set[str]  # the VMs that have not heard it yet
    half: int  # heard by this many more, it has reached half the others


@dataclass
class Announcements:
    vms: Sequence[str]
    pacer: Pacer
    timeout_s: float = ANNOUNCE_TIMEOUT_S
    tries: int = ANNOUNCE_TRIES
    ready: deque[str] = field(init=False)
    in_flight: dict[str, _Sent] = field(init=False, default_factory=dict)
    arriving: int = field(init=False, default=0)  # in flight, not heard by half the others yet
    heard_by_all: list[str] = field(init=False, default_factory=list)
    not_heard: dict[str, set[str]] = field(init=False, default_factory=dict)  # VM -> who missed it
    _timeouts: list[tuple[float, str]] = field(init=False, default_factory=list)
    _missed: dict[str, set[str]] = field(init=False, default_factory=dict)  # VM -> who missed it so far
    _sent: dict[str, int] = field(init=False, default_factory=dict)  # VM -> how often it announced

    def __post_init__(self) -> None:
        self.ready = deque(self.vms)

    def due(self, now: float) -> list[str]:
        """The VMs that send their gratuitous ARP now, as the window allows."""
        out = []
        for _ in range(self.pacer.room(self.arriving)):
            if not self.ready:
                break
            vm = self.ready.popleft()
            others = self._missed.pop(vm, None) or {other for other in self.vms if other != vm}
            self.in_flight[vm] = _Sent(now, others, (len(others) + 1) // 2)
            self._sent[vm] = self._sent.get(vm, 0) + 1
            self.arriving += 1
            heapq.heappush(self._timeouts, (now + self.timeout_s, vm))
            out.append(vm)
        return out

    def heard(self, vm: str, listener: str, now: float) -> None:
        """`listener` received `vm`'s gratuitous ARP."""
        sent = self.in_flight.get(vm)
        if sent is None or listener not in sent.waiting:
            return  # heard again, or after its time
        sent.waiting.discard(listener)
        sent.half -= 1
        if sent.half == 0:
            self.arriving -= 1
            self.pacer.answered((now - sent.at) * 1000, sent.at, now)
        if not sent.waiting:
            del self.in_flight[vm]
            self.heard_by_all.append(vm)

    def expire(self, now: float) -> None:
        """Announcements not heard by every VM within the timeout: one that half of them did
        not hear shrinks the window; each goes once more, after the others, to the VMs that
        missed it (a VM sometimes hears nothing for its first seconds of verify), then
        is over."""
        while self._timeouts and self._timeouts[0][0] <= now:
            _, vm = heapq.heappop(self._timeouts)
            sent = self.in_flight.pop(vm, None)
            if sent is None:
                continue
            if sent.half > 0:
                self.arriving -= 1
                self.pacer.lost(sent.at, now)
            if self._sent[vm] < self.tries:
                self._missed[vm] = sent.waiting
                self.ready.append(vm)
            else:
                self.not_heard[vm] = sent.waiting

    def next_event(self) -> float | None:
        return self._timeouts[0][0] if self._timeouts else None

    @property
    def done(self) -> bool:
        return not self.ready and not self.in_flight
