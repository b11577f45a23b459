"""Which ping verify sends when: every ordered VM pair is set up, measured, then sent
one full-size packet.

A pair goes through up to four steps, each a few echo requests (probes):

1. set-up: one probe, sent again every `setup_timeout_s` until one answers or
   `setup_budget_s` has passed. It pays for ARP, packet-ins and flow-mods, so it is timed
   on its own (`setup_ms`: from the first probe to the first answer). Set-ups start only
   as the pacer's window allows (pacing.py), and each answer or loss steers the window.
   The order spreads the work: a -> b for b less than half the ring of VMs ahead of a,
   so each VM starts as many set-ups as any other; b -> a only once a -> b is done,
   since a's ARP request (when verify's announcements did not teach them already,
   announce.py) taught b a's address and every switch a's port, so the reverse needs
   no broadcast and a fraction of the packet-ins.
2. measurement: `count` probes, `period_s` apart, right after the set-up while the
   flows it made are fresh (they expire when idle, and a big lab's set-up lasts longer
   than that). A probe not answered within `timeout_s` is lost.
3. full size: one probe that fills the lab's MTU, with Don't Fragment (mtu.py: OVS drops
   a tunnel packet bigger than the underlay takes, and says nothing), `period_s` after the
   last measurement probe, over the path set up (no OpenFlow match looks at a packet's
   length). A pair whose small probes all came back but whose full-size one did not gets
   one more, so a packet lost in a busy lab is not taken for an MTU black hole (which
   never answers).
4. only for a pair that has answered nothing so far, once every other pair is done: one
   final probe with time for ARP's three tries. An answer there means the path works but
   was set up too slowly (setup "late"), not that packets were lost.

Pairs from a source VM labctl cannot run commands in (`unreachable`, a real guest with no
way in) are left out; the pair the other way round is then the one that sets the path up.

Pure: time comes in as arguments and probes go out as values, so it runs against a
fake clock and fake answers as well as against real sockets (verify.py).
"""

from __future__ import annotations

import enum
import heapq
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from labctl.pacing import Pacer

SETUP_TIMEOUT_S = 2.0  # ARP asks again after 1 s: a set-up probe unanswered after 2 s is sent again
SETUP_BUDGET_S = 6.0  # a pair's set-up probes, for at most this long
FINAL_TIMEOUT_S = 3.5  # ARP gives up after three requests a second apart


class Purpose(enum.Enum):
    SETUP = "set-up"
    MEASURE = "measurement"
    FULL_SIZE = "full-size"
    FINAL = "final"


WINDOWED = (Purpose.SETUP, Purpose.FINAL)  # the probes that make the controller work
FULL_SIZE_TRIES = 2


@dataclass(frozen=True)
class Probe:
    id: int
    src: str
    dst: str
    purpose: Purpose
    timeout_s: float
    index: int = 0  # which of the pair's measurement probes
    answered: bool = False  # the pair's set-up was answered: its path is known to work


@dataclass
class PairOutcome:
    setup: str = "none"  # "answered", "late" (answered only after its set-up time), "none"
    setup_ms: float | None = None  # from the first set-up probe to the first answer
    rtts: list[float | None] = field(default_factory=list)  # the measurement; None: lost
    full_size: bool | None = None  # the full-size probe came back (None: not sent)


class _Step(enum.Enum):
    WAITING = "waiting"  # b -> a, until a -> b is set up
    READY = "ready"  # starts its set-up when the window has room
    SETUP = "set-up"
    MEASURE = "measurement"
    FINAL = "final"  # answered nothing: one more probe once the rest is done
    DONE = "done"


@dataclass
class _Pair:
    src: str
    dst: str
    step: _Step = _Step.READY
    first_sent: float | None = None
    measured: int = 0  # measurement probes sent
    full_sent: int = 0  # full-size probes sent
    full_due: bool = False  # a full-size probe is waiting for its time
    in_flight: int = 0  # its probes not answered and not timed out yet
    outcome: PairOutcome = field(default_factory=PairOutcome)

    def started(self, sent_at: float) -> float:
        """When its first set-up probe went out (this one's time, if it is the first)."""
        return sent_at if self.first_sent is None else self.first_sent


def setup_order(vms: Sequence[str]) -> list[tuple[str, str]]:
    """Each unordered pair once, as a -> b with b less than half the ring ahead of a,
    one ring offset after another: every VM starts one set-up per offset."""
    n, order = len(vms), []
    for ahead in range(1, n // 2 + 1):
        for i in range(n):
            if ahead * 2 == n and i >= ahead:  # half way round: each pair once, not twice
                break
            order.append((vms[i], vms[(i + ahead) % n]))
    return order


class Sweep:
    def __init__(
        self,
        vms: Sequence[str],
        pacer: Pacer,
        count: int = 3,
        period_s: float = 0.2,
        timeout_s: float = 2.0,
        setup_timeout_s: float = SETUP_TIMEOUT_S,
        setup_budget_s: float = SETUP_BUDGET_S,
        final_timeout_s: float = FINAL_TIMEOUT_S,
        full_size: bool = True,
        unreachable: Collection[str] = (),
    ):
        self.pacer, self.count, self.period_s, self.timeout_s = pacer, count, period_s, timeout_s
        self.setup_timeout_s, self.setup_budget_s = setup_timeout_s, setup_budget_s
        self.final_timeout_s, self.full_size = final_timeout_s, full_size
        self.pairs: dict[tuple[str, str], _Pair] = {}
        self.ready: deque[_Pair] = deque()
        for src, dst in setup_order(list(vms)):
            if src in unreachable:
                src, dst = dst, src  # the other way round sets the path up
            if src in unreachable:
                continue
            self.pairs[(src, dst)] = forward = _Pair(src, dst)
            if dst not in unreachable:
                self.pairs[(dst, src)] = _Pair(dst, src, step=_Step.WAITING)
            self.ready.append(forward)
        self.finals: deque[_Pair] = deque()
        self.unfinished = len(self.pairs)  # pairs before their final or done step
        self.in_flight: dict[int, tuple[Probe, float]] = {}  # id -> (probe, sent at)
        self.windowed = 0  # set-up and final probes in flight: what the window counts
        self._timeouts: list[tuple[float, int]] = []  # (when, probe id), a heap
        self._measure_at: list[tuple[float, str, str]] = []  # (when, src, dst): its next probe, a heap
        self._ids = 0

    # --- what to send ---
    def due(self, now: float) -> list[Probe]:
        """What to send now: measurement and full-size probes whose time has come, set-ups
        as the window allows, and once nothing else is left, the final probes."""
        out = []
        while self._measure_at and self._measure_at[0][0] <= now:
            _, src, dst = heapq.heappop(self._measure_at)
            pair = self.pairs[(src, dst)]
            if pair.full_due:
                pair.full_due, pair.full_sent = False, pair.full_sent + 1
                out.append(self._send(pair, Purpose.FULL_SIZE, self.timeout_s, now))
            else:
                out.append(self._measure(pair, now))
        room = self.pacer.room(self.windowed)
        while room and self.ready:
            pair = self.ready.popleft()
            pair.step = _Step.SETUP
            pair.first_sent = now if pair.first_sent is None else pair.first_sent
            out.append(self._send(pair, Purpose.SETUP, self.setup_timeout_s, now))
            room -= 1
        if not self.unfinished:
            while room and self.finals:
                out.append(self._send(self.finals.popleft(), Purpose.FINAL, self.final_timeout_s, now))
                room -= 1
        return out

    def _measure(self, pair: _Pair, now: float) -> Probe:
        probe = self._send(pair, Purpose.MEASURE, self.timeout_s, now, index=pair.measured)
        pair.measured += 1
        pair.outcome.rtts.append(None)  # lost, unless it answers
        if pair.measured < self.count or self.full_size:
            pair.full_due = pair.measured == self.count
            heapq.heappush(self._measure_at, (now + self.period_s, pair.src, pair.dst))
        return probe

    def _send(self, pair: _Pair, purpose: Purpose, timeout_s: float, now: float, index: int = 0) -> Probe:
        self._ids += 1
        answered = purpose in (Purpose.MEASURE, Purpose.FULL_SIZE) and pair.outcome.setup == "answered"
        probe = Probe(self._ids, pair.src, pair.dst, purpose, timeout_s, index, answered)
        self.in_flight[probe.id] = (probe, now)
        heapq.heappush(self._timeouts, (now + timeout_s, probe.id))
        pair.in_flight += 1
        if purpose in WINDOWED:
            self.windowed += 1
        return probe

    # --- what came back, what did not ---
    def answered(self, probe_id: int, rtt_ms: float, now: float) -> None:
        """The echo reply to probe `probe_id`, `rtt_ms` after it was sent."""
        entry = self.in_flight.pop(probe_id, None)
        if entry is None:
            return  # a duplicate, or too late: it timed out already
        probe, sent_at = entry
        pair = self._resolved(probe)
        if probe.purpose in (Purpose.MEASURE, Purpose.FULL_SIZE):
            if probe.purpose is Purpose.MEASURE:
                pair.outcome.rtts[probe.index] = rtt_ms
            else:
                pair.outcome.full_size = True
            if pair.outcome.setup == "none":
                pair.outcome.setup = "late"  # it answered, but only after its set-up time
        elif probe.purpose is Purpose.FINAL:
            pair.outcome.setup = "late"
        else:
            self.pacer.answered(rtt_ms, sent_at, now)
            if pair.step is _Step.SETUP and pair.outcome.setup == "none":
                pair.outcome.setup = "answered"
                pair.outcome.setup_ms = round((now - pair.started(sent_at)) * 1000, 3)
                self._set_up(pair, now)
        self._maybe_finished(pair)

    def expire(self, now: float) -> list[Probe]:
        """Probes past their timeout are lost (returned). A lost set-up is sent again while
        the pair's budget lasts; after that the pair is measured anyway."""
        lost = []
        while self._timeouts and self._timeouts[0][0] <= now:
            _, probe_id = heapq.heappop(self._timeouts)
            entry = self.in_flight.pop(probe_id, None)
            if entry is None:
                continue  # answered in time
            probe, sent_at = entry
            lost.append(probe)
            pair = self._resolved(probe)
            if probe.purpose is Purpose.SETUP:
                self.pacer.lost(sent_at, now)
                if pair.step is _Step.SETUP and pair.in_flight == 0:
                    if now - pair.started(sent_at) + self.setup_timeout_s <= self.setup_budget_s:
                        pair.step = _Step.READY
                        self.ready.appendleft(pair)  # a retry goes first: its pair has waited longest
                    else:
                        self._set_up(pair, now)
            elif probe.purpose is Purpose.FULL_SIZE and not pair.outcome.full_size:
                pair.outcome.full_size = False
                small_passed = None not in pair.outcome.rtts
                if small_passed and pair.full_sent < FULL_SIZE_TRIES:  # once more before a black hole
                    pair.full_due = True
                    heapq.heappush(self._measure_at, (now, pair.src, pair.dst))
            self._maybe_finished(pair)
        return lost

    def _resolved(self, probe: Probe) -> _Pair:
        pair = self.pairs[(probe.src, probe.dst)]
        pair.in_flight -= 1
        if probe.purpose in WINDOWED:
            self.windowed -= 1
        return pair

    def _set_up(self, pair: _Pair, now: float) -> None:
        """Its set-up is over (answered or out of time): measure it; the reverse may start."""
        pair.step = _Step.MEASURE
        heapq.heappush(self._measure_at, (now, pair.src, pair.dst))
        reverse = self.pairs.get((pair.dst, pair.src))
        if reverse is not None and reverse.step is _Step.WAITING:
            reverse.step = _Step.READY
            self.ready.appendleft(reverse)  # it completes a pair, and costs the controller little

    def _maybe_finished(self, pair: _Pair) -> None:
        if pair.step is not _Step.MEASURE or pair.measured < self.count or pair.in_flight:
            return
        if self.full_size and (pair.full_due or not pair.full_sent):
            return
        self.unfinished -= 1
        if pair.outcome.setup == "none":  # nothing answered at all: one more try at the end
            pair.step = _Step.FINAL
            self.finals.append(pair)
        else:
            pair.step = _Step.DONE

    # --- the clock ---
    def next_event(self) -> float | None:
        """When something is due next (a timeout, a measurement probe); None: nothing is."""
        times = [t for t in (self._timeouts[:1] + self._measure_at[:1])]
        return min(t[0] for t in times) if times else None

    @property
    def done(self) -> bool:
        return not self.unfinished and not self.finals and not self.in_flight

    def outcomes(self) -> dict[tuple[str, str], PairOutcome]:
        return {key: pair.outcome for key, pair in self.pairs.items()}
