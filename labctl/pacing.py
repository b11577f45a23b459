"""How many path set-ups verify keeps in flight: additive increase, multiplicative decrease.

The first packet between two VMs makes the controller work: an ARP request flooded to
every switch (a packet-in at each), then packet-ins and flow-mods along the path. Offered
faster than the controller answers, they queue, and once a VM has waited a second for its
ARP reply it asks again, which floods again and lengthens the queue further. How fast a
controller keeps up depends on the controller, the machine and the lab, so verify does
not guess a rate: it keeps a window of set-ups in flight and steers it by what it
measures, the round-trip time of each set-up probe (the queue shows up there first).

- A probe that comes back within `queue_ms` of the fastest one seen says there is no
  queue to speak of: the window grows, by one per answer while starting (it doubles per
  round trip, like TCP's slow start), then by one per window of answers.
- A slower probe, or one that never came back, says a queue is building: the window
  halves. Probes sent before the last decrease cannot decrease it again, so one queue
  halves it once, not once per probe caught in it.

The controller stays busy, since the queue never empties at half the window, while no
set-up waits anywhere near ARP's one-second retry. Pure: the caller passes the time in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

QUEUE_MS = 200.0  # how much slower than the fastest set-up a probe may come back: a queue
INITIAL_WINDOW = 4.0
MAX_WINDOW = 1024.0


@dataclass
class Pacer:
    window: float = INITIAL_WINDOW
    minimum: float = 1.0
    maximum: float = MAX_WINDOW
    queue_ms: float = QUEUE_MS
    starting: bool = True  # slow start: doubling per round trip until the first queue
    base_rtt_ms: float | None = None  # the fastest set-up seen
    decreased_at: float = float("-inf")  # when the window last halved
    decreases: int = 0
    largest: float = field(init=False)

    def __post_init__(self) -> None:
        self.largest = self.window

    def room(self, in_flight: int) -> int:
        """How many more set-ups may start now."""
        return max(0, int(self.window) - in_flight)

    def answered(self, rtt_ms: float, sent_at: float, now: float) -> None:
        """A set-up probe sent at `sent_at` came back after `rtt_ms`."""
        self.base_rtt_ms = rtt_ms if self.base_rtt_ms is None else min(self.base_rtt_ms, rtt_ms)
        if rtt_ms > self.base_rtt_ms + self.queue_ms:
            self._decrease(sent_at, now)
        elif self.starting:
            self._grow(1.0)
        else:
            self._grow(1.0 / self.window)

    def lost(self, sent_at: float, now: float) -> None:
        """A set-up probe sent at `sent_at` got no answer in time."""
        self._decrease(sent_at, now)

    def _grow(self, by: float) -> None:
        self.window = min(self.maximum, self.window + by)
        self.largest = max(self.largest, self.window)

    def _decrease(self, sent_at: float, now: float) -> None:
        if sent_at < self.decreased_at:  # it saw the queue this decrease already answered
            return
        self.starting = False
        self.window = max(self.minimum, self.window / 2)
        self.decreased_at = now
        self.decreases += 1
