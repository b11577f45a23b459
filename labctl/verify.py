"""Ping every ordered pair of VMs; results as a table or JSON.

Each VM pings all its targets from ONE fping process, so a 32-VM lab runs 32
processes per phase instead of 992 ping processes. Phases:

1. set-up, in two waves: one packet from each VM to the half of the VMs ahead of
   it on a ring (so every VM starts as many set-ups), paced so the controller
   keeps up with the floods (first_wave_spacing_ms), then to the other half.
   The first packet of a pair pays for ARP, packet-ins and flow-mods and may
   take longer than a ping's patience, so it is timed on its own (first_rtt_ms).
   In the first wave each ARP request also teaches the target the sender's
   address and every switch learns every MAC from the floods, so the second wave
   needs no broadcast: half the packet-ins of a full matrix.
2. settle: pairs whose set-up packet got no answer are probed again (a few
   rounds) until they answer, so the controller's queue has drained.
3. measurement: COUNT pings from every VM to every other VM, over set-up paths.
4. full size: one ping per pair that fills the lab's MTU, with Don't Fragment
   (mtu.py: OVS drops a tunnel packet bigger than the underlay takes, and says
   nothing). A pair whose small pings pass but whose full-size probe is lost,
   twice, is an MTU black hole, not loss.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from itertools import permutations

from labctl.errors import LabctlError
from labctl.model import VM, Lab
from labctl.mtu import icmp_payload
from labctl.parallel import in_parallel

_FPING_LINE = re.compile(r"^(\d+\.\d+\.\d+\.\d+)\s+:\s+(.*)$")


@dataclass(frozen=True)
class PingResult:
    src: str
    dst: str
    dst_ip: str
    sent: int
    received: int
    rtt_min_ms: float | None
    rtt_avg_ms: float | None
    rtt_max_ms: float | None
    error: str | None = None
    first_rtt_ms: float | None = None  # the packet that made the controller set the path up
    mtu_probe_bytes: int | None = None  # the full-size probe: an IPv4 packet of the lab's MTU, DF set
    mtu_probe_ok: bool | None = None  # it was answered (None: not sent)
    # why labctl cannot ping from the source VM (a real guest it has no way into): the pair
    # is reported, never passed, and leaves the verdict to the pairs that could be run
    unverifiable: str | None = None

    @property
    def loss_pct(self) -> float:
        return 100.0 if self.sent == 0 else round(100.0 * (self.sent - self.received) / self.sent, 1)

    @property
    def answered_all(self) -> bool:
        """Every small ping came back."""
        return self.error is None and self.sent > 0 and self.received == self.sent

    @property
    def mtu_black_hole(self) -> bool:
        """Small pings pass, full-size packets vanish."""
        return self.answered_all and self.mtu_probe_ok is False

    @property
    def ok(self) -> bool:
        return self.answered_all and self.mtu_probe_ok is not False

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "loss_pct": self.loss_pct,
            "mtu_black_hole": self.mtu_black_hole,
            "ok": self.ok,
        }


def passed(results: list[PingResult]) -> bool:
    """The verdict: every pair that could be run answered with no loss -- and where the lab
    has pairs, some could be run (pairs that were not are never a pass)."""
    run = [r for r in results if r.unverifiable is None]
    return all(r.ok for r in run) and (bool(run) or not results)


def parse_fping(output: str) -> dict[str, list[float | None]]:
    """`fping -C N -q` output -> RTTs per target, None for a lost probe."""
    found: dict[str, list[float | None]] = {}
    for line in output.splitlines():
        match = _FPING_LINE.match(line.strip())
        if match:
            found[match.group(1)] = [None if v == "-" else float(v) for v in match.group(2).split()]
    return found


def result_of(src: VM, dst: VM, rtts: list[float | None] | None, count: int, error: str | None) -> PingResult:
    if rtts is None:
        return PingResult(
            src.name, dst.name, str(dst.ip.ip), count, 0, None, None, None, error or "no answer"
        )
    got = [r for r in rtts if r is not None]
    stats = (min(got), round(sum(got) / len(got), 3), max(got)) if got else (None, None, None)
    return PingResult(src.name, dst.name, str(dst.ip.ip), len(rtts), len(got), *stats)


def _fping(
    transport,
    targets: list[VM],
    count: int,
    period_ms: int,
    timeout_ms: int,
    spacing_ms: int = 10,
    payload: int | None = None,
):
    """`payload`: ICMP data bytes, sent with Don't Fragment (the full-size probe)."""
    argv = [
        "fping",
        "-q",
        "-C",
        str(count),
        "-p",
        str(period_ms),
        "-t",
        str(timeout_ms),
        "-i",
        str(spacing_ms),
    ]
    if payload is not None:
        argv += ["-b", str(payload), "-M"]
    argv += [str(vm.ip.ip) for vm in targets]
    seconds = len(targets) * spacing_ms / 1000 + count * (period_ms + timeout_ms) / 1000 + 10
    result = transport.run(argv, check=False, timeout=seconds)
    rtts = parse_fping(result.stderr + result.stdout)
    # exit 1 only means some target did not answer; more is an error of fping itself
    error = (
        None
        if result.returncode in (0, 1)
        else (result.stderr.strip() or f"fping exited {result.returncode}")
    )
    return rtts, error


SETUP_TIMEOUT_MS = 1500  # a set-up probe later than this is retried, not waited for
# The first wave's ARP requests are flooded to every switch, each flood a packet-in
# per switch. Offered faster than the controller answers, they queue; past a second
# the VMs resend their ARP requests, which floods again and makes the queue longer.
# So the first wave is paced to about this many flood packet-ins per second: what the
# default controller keeps up with on a 2-core machine that also runs the lab.
FLOOD_PACKET_INS_PER_S = 4000
MIN_SPACING_MS = 10
SETTLE_ROUNDS = 4  # retries of the pairs whose set-up probe got no answer yet
SETTLE_TIMEOUT_MS = 2000


def in_first_half(vms: list[VM]) -> Callable[[VM, VM], bool]:
    """A predicate that splits the ordered pairs so each VM starts about as many set-ups
    as any other: a -> b is in the first half when b is less than half the ring ahead of a."""
    index, n = {vm.name: i for i, vm in enumerate(vms)}, len(vms)

    def pick(a: VM, b: VM) -> bool:
        ahead = (index[b.name] - index[a.name]) % n
        return 0 < ahead < n / 2 or (ahead == n / 2 and index[a.name] < index[b.name])

    return pick


def first_wave_spacing_ms(lab: Lab) -> int:
    """Milliseconds between a VM's set-up probes in the first wave: every VM sends one
    each spacing, and each one's ARP request floods to every switch."""
    floods_per_probe = len(lab.hosts)
    return max(MIN_SPACING_MS, round(1000 * len(lab.vms) * floods_per_probe / FLOOD_PACKET_INS_PER_S))


def ping_all(
    lab: Lab,
    vm_transport,
    count: int = 3,
    period_ms: int = 200,
    timeout_ms: int = 2000,
    way_in: Callable[[VM], str | None] = lambda vm: None,
) -> list[PingResult]:
    """`vm_transport(vm)` gives the transport that runs a command inside a VM; `way_in(vm)`
    says why there is none (the pairs from that VM are reported as not verifiable)."""
    vms = list(lab.vms)
    no_way_in = {vm.name: why for vm in vms if (why := way_in(vm)) is not None}

    def from_each(
        pick,
        probes: int,
        period: int,
        timeout: int,
        spacing: int = MIN_SPACING_MS,
        payload: int | None = None,
    ) -> dict:
        jobs = [(src, [dst for dst in vms if pick(src, dst)]) for src in vms if src.name not in no_way_in]
        jobs = [job for job in jobs if job[1]]

        def run(job):
            src, targets = job
            try:
                rtts, error = _fping(vm_transport(src), targets, probes, period, timeout, spacing, payload)
            except LabctlError as exc:
                rtts, error = {}, str(exc)
            return {(src.name, dst.name): (rtts.get(str(dst.ip.ip)), error) for dst in targets}

        out: dict[tuple[str, str], tuple] = {}
        for outcome in in_parallel(run, jobs, lambda job: job[0].name, workers=64):
            if outcome.error is None:
                out.update(outcome.value)
        return out

    ahead = in_first_half(vms)
    first = from_each(ahead, 1, 1000, SETUP_TIMEOUT_MS, first_wave_spacing_ms(lab))
    first |= from_each(lambda a, b: a is not b and not ahead(a, b), 1, 1000, SETUP_TIMEOUT_MS)
    # Settle: in a big lab some set-up probes come back late, behind the controller's
    # queue. Measuring before it drains would count the queue as loss, so the pairs not
    # answered yet are probed again, while each round gets answers (a broken path never
    # answers: one round, then the measurement reports it).
    waiting = {
        pair
        for pair in permutations((vm.name for vm in vms), 2)
        if pair[0] not in no_way_in and not _answered(first.get(pair))
    }
    for _ in range(SETTLE_ROUNDS):
        if not waiting:
            break
        again = from_each(lambda a, b, todo=waiting: (a.name, b.name) in todo, 1, 1000, SETTLE_TIMEOUT_MS)
        still = {pair for pair in waiting if not _answered(again.get(pair))}
        if still == waiting:
            break
        waiting = still
    measured = from_each(lambda a, b: a is not b, count, period_ms, timeout_ms)
    # Full size: one probe per pair that fills the lab's MTU, Don't Fragment set. Its
    # paths are set up (no OpenFlow match looks at a packet's length), so it costs one
    # round. A pair whose small pings all came back but whose full-size probe did not
    # gets one more, so a packet lost in a busy lab is not taken for a black hole (which
    # never answers).
    payload = icmp_payload(lab.mtu)
    full = from_each(lambda a, b: a is not b, 1, 1000, timeout_ms, payload=payload)

    def lost_only_full_size(a: VM, b: VM) -> bool:
        pair = (a.name, b.name)
        small = measured.get(pair, (None, None))[0]
        return a is not b and not _answered(full.get(pair)) and bool(small) and None not in small

    again = from_each(lost_only_full_size, 1, 1000, timeout_ms, payload=payload)
    full |= {pair: probe for pair, probe in again.items() if _answered(probe)}
    results = []
    for src, dst in permutations(vms, 2):
        if src.name in no_way_in:
            results.append(
                PingResult(
                    src.name,
                    dst.name,
                    str(dst.ip.ip),
                    0,
                    0,
                    None,
                    None,
                    None,
                    unverifiable=no_way_in[src.name],
                )
            )
            continue
        pair = (src.name, dst.name)
        rtts, error = measured.get(pair, (None, "not run"))
        setup = first.get(pair, (None, None))[0]
        big = full.get(pair, (None, "not run"))
        result = result_of(src, dst, rtts, count, error)
        failed = {}
        if big[1] and not _answered(big):  # fping itself failed: that says nothing of the MTU
            failed["error"] = result.error or f"full-size probe: {big[1]}"
        results.append(
            PingResult(
                **{
                    **asdict(result),
                    "first_rtt_ms": setup[0] if setup else None,
                    "mtu_probe_bytes": lab.mtu,
                    "mtu_probe_ok": _answered(big),
                    **failed,
                }
            )
        )
    return results


def _answered(probe: tuple | None) -> bool:
    """A (rtts, error) probe result whose first packet came back."""
    return bool(probe and probe[0] and probe[0][0] is not None)
