"""Set-up pacing and the sweep of pairs, against a fake clock and a fake controller.

The fake lab (FakeLab) answers probes the way a reactive controller does, in time: a
pair's first packet costs an ARP flood to every switch and a few packet-ins, served one
after another at the controller's rate; a VM that waited a second for its ARP reply asks
again, which floods again; after three tries ARP gives up and the packet is dropped.
Once a pair is set up its pings cost the controller nothing.
"""

from __future__ import annotations

import heapq
from collections import Counter

import pytest

from labctl.pacing import Pacer
from labctl.sweep import Probe, Purpose, Sweep, setup_order
from labctl.verify import run_sweep

# --- the pacer on its own ---


def test_the_window_doubles_per_round_trip_while_no_queue_shows():
    pacer = Pacer(window=4)
    for _ in range(4):  # a round trip's worth of answers, all fast
        pacer.answered(5.0, sent_at=0.0, now=0.005)
    assert pacer.window == 8 and pacer.room(in_flight=3) == 5


def test_a_queue_halves_the_window_once_per_round_trip_then_it_grows_by_one_per_window():
    pacer = Pacer(window=32)
    pacer.answered(5.0, sent_at=0.0, now=0.005)  # the fastest set-up: 5 ms
    pacer.answered(400.0, sent_at=0.1, now=0.5)  # 395 ms slower: a queue
    assert pacer.window == 16.5
    pacer.answered(450.0, sent_at=0.2, now=0.65)  # sent before the decrease: same queue
    pacer.lost(sent_at=0.3, now=2.3)  # so is a loss of a probe sent then
    assert (pacer.window, pacer.decreases) == (16.5, 1)
    for _ in range(33):  # two windows of fast answers after it: +1 each window
        pacer.answered(6.0, sent_at=1.0, now=1.006)
    assert 18 <= pacer.window < 19
    pacer.lost(sent_at=2.0, now=4.0)  # sent after the decrease: a new queue
    assert pacer.decreases == 2 and 9 <= pacer.window < 9.5


def test_the_window_stays_between_its_bounds():
    pacer = Pacer(window=2, minimum=1, maximum=5)
    for i in range(5):
        pacer.lost(sent_at=float(i), now=float(i) + 0.5)
    assert pacer.window == 1 and pacer.room(in_flight=1) == 0
    for _ in range(100):
        pacer.answered(1.0, sent_at=10.0, now=10.001)
    assert pacer.window == 5 and pacer.largest == 5


# --- the order of the pairs ---


def test_the_first_set_ups_give_every_vm_as_many_and_cover_each_pair_once():
    for n in (2, 5, 32, 64):
        vms = [f"vm{i}" for i in range(n)]
        order = setup_order(vms)
        # each unordered pair once; its reverse is set up afterwards
        assert len(order) == n * (n - 1) // 2 and len(set(map(frozenset, order))) == len(order)
        per_vm = Counter(src for src, _ in order)
        assert max(per_vm.values()) - min(per_vm.values()) <= 1


# --- a fake lab that answers probes as a reactive controller would ---


class FakeLab:
    """Time, and a controller that serves set-ups one after another at `rate` packet-ins a
    second. The prober side of verify.run_sweep: send() and replies()."""

    ARP_RETRY_S, ARP_TRIES = 1.0, 3

    PERIOD_S = 0.1  # a CPU quota is given per period (cgroup cpu.max, cfs_period_us)

    def __init__(
        self, vms: int, rate: float, base_ms: float = 2.0, dead: set | None = None, share: float = 1.0
    ):
        self.now, self.rate, self.base, self.share = 0.0, rate, base_ms / 1000, share
        self.switches = vms  # one VM per host: every ARP flood reaches every switch
        self.busy_until = 0.0  # when the controller's queue is empty
        self.known: set[tuple[str, str]] = set()  # a learned b's MAC (a's ARP entry)
        self.flows: set[tuple[str, str]] = set()  # a -> b set up
        self.dead = dead or set()  # VMs that never answer
        self.late: set[tuple[str, str]] = set()  # pairs that answer only once the lab is quiet
        self.answers: list[tuple[float, int, float]] = []  # (when, probe id, rtt ms)
        self.arp_floods = 0
        self.sent: list[Probe] = []
        self.errors: dict[str, str] = {}

    def clock(self) -> float:
        return self.now

    def _work(self, packet_ins: float) -> float:
        """Queue work at the controller; when it is done. On a `share` of a core it runs
        only at the start of each period, and waits for the next one when its share is used."""
        start, need = max(self.now, self.busy_until), packet_ins / self.rate
        while need > 1e-12:
            period = int(start / self.PERIOD_S + 1e-9) * self.PERIOD_S
            runs_until = period + self.share * self.PERIOD_S
            if start >= runs_until:
                start = period + self.PERIOD_S
                continue
            step = min(need, runs_until - start)
            start, need = start + step, need - step
        self.busy_until = start
        return start

    def send(self, probe: Probe) -> None:
        self.sent.append(probe)
        pair, reverse = (probe.src, probe.dst), (probe.dst, probe.src)
        if probe.dst in self.dead or (pair in self.late and probe.purpose is not Purpose.FINAL):
            return
        if pair in self.flows:
            self._answer(probe, self.now + self.base)
            return
        done = self.now
        if pair not in self.known:  # ARP: a flood, asked again every second until answered
            for attempt in range(self.ARP_TRIES):
                self.arp_floods += 1
                done = self._work(self.switches + 3)
                if done - (self.now + attempt * self.ARP_RETRY_S) <= self.ARP_RETRY_S:
                    break
            else:
                return  # ARP gave up: the packet is dropped
            self.known |= {pair, reverse}
        done = self._work(6)  # echo request and reply, at three switches each
        self.flows |= {pair}
        self._answer(probe, done + self.base)

    def _answer(self, probe: Probe, when: float) -> None:
        heapq.heappush(self.answers, (when, probe.id, (when - self.now) * 1000))

    def replies(self, wait_s: float):
        until = self.now + wait_s
        if self.answers and self.answers[0][0] < until:
            until = self.answers[0][0]
        self.now = max(self.now, until)
        out = []
        while self.answers and self.answers[0][0] <= self.now:
            _, probe_id, rtt = heapq.heappop(self.answers)
            out.append((probe_id, rtt))
        return out

    def forget(self, probe: Probe) -> None:
        pass

    def close(self) -> None:
        pass


def sweep_of(n: int, pacer: Pacer | None = None, **kwargs) -> Sweep:
    return Sweep([f"vm{i}" for i in range(n)], pacer or Pacer(), **kwargs)


@pytest.mark.parametrize("rate", [5000, 300], ids=["fast controller", "controller 16x slower"])
def test_every_pair_is_set_up_and_measured_whatever_the_controllers_speed(rate):
    lab, sweep = FakeLab(24, rate), sweep_of(24)
    run_sweep(sweep, lab, lab.clock)
    outcomes = sweep.outcomes()
    assert len(outcomes) == 24 * 23
    assert all(o.setup == "answered" and None not in o.rtts and len(o.rtts) == 3 for o in outcomes.values())
    # the pacing kept every set-up short of ARP's one-second retry: one flood per pair
    assert lab.arp_floods == 24 * 23 // 2


def test_without_pacing_the_same_slow_controller_drowns_in_arp_retries():
    lab = FakeLab(24, 300)
    unpaced = Pacer(window=10_000, minimum=10_000, maximum=10_000)
    sweep = sweep_of(24, unpaced)
    run_sweep(sweep, lab, lab.clock)
    assert lab.arp_floods > 24 * 23  # a second and third flood for most pairs
    assert any(o.setup != "answered" for o in sweep.outcomes().values())


def test_set_ups_in_flight_never_exceed_the_window():
    lab, pacer = FakeLab(16, 800), Pacer()
    sweep = sweep_of(16, pacer)
    most = 0
    while not sweep.done:
        before = sweep.windowed
        for probe in sweep.due(lab.now):
            lab.send(probe)
        most = max(most, sweep.windowed)
        # a halved window may have more in flight than it holds now, but none is added
        assert sweep.windowed <= max(before, int(pacer.window))
        wake = sweep.next_event()
        for probe_id, rtt in lab.replies(0.2 if wake is None else min(0.2, max(0.0, wake - lab.now))):
            sweep.answered(probe_id, rtt, lab.now)
        sweep.expire(lab.now)
    assert most > 4  # it did grow past where it started


def test_a_reverse_set_up_starts_only_once_its_forward_one_answered():
    lab, sweep = FakeLab(6, 5000), sweep_of(6)
    run_sweep(sweep, lab, lab.clock)
    setups = [(p.src, p.dst) for p in lab.sent if p.purpose is Purpose.SETUP]
    first = {pair: i for i, pair in reversed(list(enumerate(setups)))}
    forward = set(setup_order([f"vm{i}" for i in range(6)]))
    for src, dst in forward:
        assert first[(src, dst)] < first[(dst, src)]


def test_measurement_pings_follow_the_set_up_count_of_them_period_apart():
    lab, sweep = FakeLab(2, 5000), sweep_of(2, count=3, period_s=0.2)
    run_sweep(sweep, lab, lab.clock)
    times = {}
    for probe in lab.sent:
        times.setdefault((probe.src, probe.dst, probe.purpose), []).append(probe.id)
    assert [len(times[("vm0", "vm1", p)]) for p in (Purpose.SETUP, Purpose.MEASURE)] == [1, 3]
    assert sweep.outcomes()[("vm0", "vm1")].setup_ms is not None


def test_a_vm_that_never_answers_fails_its_pairs_set_up_after_its_budget_and_a_final_try():
    lab = FakeLab(4, 5000, dead={"vm2"})
    sweep = sweep_of(4, setup_timeout_s=1.0, setup_budget_s=3.0)
    run_sweep(sweep, lab, lab.clock)
    outcomes = sweep.outcomes()
    to_dead = [pair for pair in outcomes if pair[1] == "vm2"]
    assert all(outcomes[p].setup == "none" and outcomes[p].rtts == [None] * 3 for p in to_dead)
    tries = Counter((p.src, p.dst, p.purpose) for p in lab.sent if p.dst == "vm2")
    assert tries[("vm0", "vm2", Purpose.SETUP)] == 3 and tries[("vm0", "vm2", Purpose.FINAL)] == 1
    others = [o for pair, o in outcomes.items() if "vm2" not in pair]
    assert all(o.setup == "answered" and None not in o.rtts for o in others)


def test_a_pair_that_answers_only_once_the_lab_is_quiet_was_slow_to_set_up_not_lossy():
    lab = FakeLab(3, 5000)
    lab.late = {("vm0", "vm1")}
    sweep = sweep_of(3, setup_timeout_s=1.0, setup_budget_s=2.0)
    run_sweep(sweep, lab, lab.clock)
    outcome = sweep.outcomes()[("vm0", "vm1")]
    assert outcome.setup == "late" and outcome.setup_ms is None
    final = [p for p in lab.sent if p.purpose is Purpose.FINAL]
    assert [(p.src, p.dst) for p in final] == [("vm0", "vm1")]
    assert max(p.id for p in lab.sent if p.purpose is not Purpose.FINAL) < final[0].id  # sent last


# --- the full-size probe ---


class NarrowTunnels(FakeLab):
    """A lab whose tunnels drop full-size packets between the pairs in `black_holes`, and
    lose the first full-size probe of the pairs in `lose_once`."""

    def __init__(self, vms: int, black_holes: set = frozenset(), lose_once: set = frozenset()):
        super().__init__(vms, 5000)
        self.black_holes, self.lose_once = set(black_holes), set(lose_once)

    def send(self, probe: Probe) -> None:
        pair = (probe.src, probe.dst)
        if probe.purpose is Purpose.FULL_SIZE and (pair in self.black_holes or pair in self.lose_once):
            self.lose_once.discard(pair)
            self.sent.append(probe)
            return
        super().send(probe)


def full_size_probes(lab: FakeLab) -> Counter:
    return Counter((p.src, p.dst) for p in lab.sent if p.purpose is Purpose.FULL_SIZE)


def test_every_pair_gets_one_full_size_probe_after_its_measurement():
    lab, sweep = NarrowTunnels(4), sweep_of(4, count=3, period_s=0.2)
    run_sweep(sweep, lab, lab.clock)
    assert set(full_size_probes(lab).values()) == {1} and len(full_size_probes(lab)) == 4 * 3
    assert all(o.full_size is True for o in sweep.outcomes().values())
    for src, dst in full_size_probes(lab):
        ids = [p.id for p in lab.sent if (p.src, p.dst) == (src, dst)]
        full = next(p.id for p in lab.sent if (p.src, p.dst, p.purpose) == (src, dst, Purpose.FULL_SIZE))
        assert full == max(ids)  # the pair's last probe


def test_a_black_hole_is_probed_twice_and_a_full_size_probe_lost_once_is_not_one():
    hole, unlucky = ("vm0", "vm1"), ("vm2", "vm3")
    lab = NarrowTunnels(4, black_holes={hole}, lose_once={unlucky})
    sweep = sweep_of(4)
    run_sweep(sweep, lab, lab.clock)
    outcomes, probes = sweep.outcomes(), full_size_probes(lab)
    assert (outcomes[hole].full_size, probes[hole], None in outcomes[hole].rtts) == (False, 2, False)
    assert (outcomes[unlucky].full_size, probes[unlucky]) == (True, 2)
    assert all(o.full_size for pair, o in outcomes.items() if pair != hole)


def test_a_pair_that_loses_small_probes_gets_no_second_full_size_probe():
    lab = FakeLab(3, 5000, dead={"vm2"})
    sweep = sweep_of(3, setup_timeout_s=1.0, setup_budget_s=2.0)
    run_sweep(sweep, lab, lab.clock)
    assert full_size_probes(lab)[("vm0", "vm2")] == 1
    assert sweep.outcomes()[("vm0", "vm2")].full_size is False


def test_no_probe_leaves_a_vm_with_no_way_in_and_its_pairs_are_set_up_the_other_way():
    lab = FakeLab(4, 5000)
    sweep = Sweep([f"vm{i}" for i in range(4)], Pacer(), unreachable={"vm0"})
    run_sweep(sweep, lab, lab.clock)
    assert not [p for p in lab.sent if p.src == "vm0"]
    outcomes = sweep.outcomes()
    assert len(outcomes) == 4 * 3 - 3 and all(src != "vm0" for src, _ in outcomes)
    assert all(outcomes[(f"vm{i}", "vm0")].setup == "answered" for i in (1, 2, 3))
    assert lab.arp_floods == 4 * 3 // 2  # still one ARP flood per pair of VMs
