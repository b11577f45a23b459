"""Ping every ordered pair of VMs; a result per pair (verify_report.py renders them).

Every pair is set up, measured, then sent one full-size packet (sweep.py says which probe
goes when): the first packet of a pair pays for ARP, packet-ins and flow-mods and is
timed on its own; then `count` pings over the path it set up; then one ping that fills
the lab's MTU with Don't Fragment (mtu.py), so that a tunnel which drops big packets is
reported as an MTU black hole, not as loss. Set-ups are paced by a window that follows
the controller (pacing.py): the set-up probes' round trips say when it falls behind.

Before the set-ups, each VM that is a namespace here announces itself with one gratuitous
ARP, paced the same way (announce.py, garp.py): every switch and every other VM learns
where it is, so the set-ups that follow are unicast packet-ins along their paths, not an
ARP broadcast per pair flooded to every switch. A VM that missed an announcement asks
with ARP when its pair is set up, as it would without; the pair's result is the same.

How the echo requests leave the VMs:
- VMs that are namespaces on this machine (simulated hosts): raw ICMP sockets opened
  inside each VM's namespace, all driven by this process (icmp.py). Each probe is sent
  when the sweep says and timed as it comes back.
- VMs reached another way (a real host over SSH, a real guest over its management
  path): `fping` inside the VM, one process per source VM for each batch of probes that
  are due together; in a VM without fping (asked once per VM), `ping -c1` per target,
  side by side, with the same results (round trips, loss, the full-size probe with
  `-M do`; a ping that cannot set Don't Fragment, as busybox's, is an error, not a pass).
- VMs labctl has no way into (`way_in`): not pinged from; their pairs are reported as
  not verifiable, never as passed.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Protocol

from labctl.announce import Announcements
from labctl.errors import LabctlError
from labctl.model import VM, Lab
from labctl.mtu import icmp_payload
from labctl.pacing import Pacer
from labctl.parallel import in_parallel
from labctl.sweep import PairOutcome, Probe, Purpose, Sweep

_FPING_LINE = re.compile(r"^(\d+\.\d+\.\d+\.\d+)\s+:\s+(.*)$")
_PING_REPLY = re.compile(r"bytes from [^:]+: .*time[=<]\s*([\d.]+) ?ms")
# which of the two the VM has: fping first (one process probes many targets)
FIND_TOOL = "command -v fping || command -v ping"
LONGEST_WAIT_S = 0.2  # the loop looks at the clock at least this often


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
    first_rtt_ms: float | None = None  # how long the set-up took: first packet to first answer
    setup: str = "answered"  # "answered", "late" (only after its set-up time: slow set-up), "none"
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
    def failed_in(self) -> str | None:
        """Which part failed: "set-up" (never answered, or only after its set-up time),
        "measurement" (set up, then lost small packets), "MTU" (small pings pass, the
        full-size probe is lost: a black hole), or None (passed, or not run)."""
        if self.unverifiable is not None:
            return None
        if self.setup != "answered":
            return "set-up"
        if not self.answered_all:
            return "measurement"
        if self.mtu_probe_ok is False:
            return "MTU"
        return None

    @property
    def mtu_black_hole(self) -> bool:
        """Small pings pass, full-size packets vanish."""
        return self.failed_in == "MTU"

    @property
    def ok(self) -> bool:
        return self.unverifiable is None and self.failed_in is None

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "loss_pct": self.loss_pct,
            "mtu_black_hole": self.mtu_black_hole,
            "ok": self.ok,
            "failed": self.failed_in,
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


def result_of(
    src: VM,
    dst: VM,
    outcome: PairOutcome,
    count: int,
    error: str | None = None,
    mtu: int | None = None,
    full_size_error: str | None = None,
) -> PingResult:
    """A pair's result from its outcome. `error`: why the source's probes could not be sent
    (kept when nothing came back); `full_size_error`: why its full-size probe could not be
    (then a lost full-size probe says nothing of the MTU: an error, not a black hole)."""
    got = [r for r in outcome.rtts if r is not None]
    stats = (min(got), round(sum(got) / len(got), 3), max(got)) if got else (None, None, None)
    error = None if got else error
    if outcome.full_size is False and full_size_error and error is None:
        error = f"full-size probe: {full_size_error}"
    return PingResult(
        src.name,
        dst.name,
        str(dst.ip.ip),
        len(outcome.rtts) or count,
        len(got),
        *stats,
        error=error,
        first_rtt_ms=outcome.setup_ms,
        setup=outcome.setup,
        mtu_probe_bytes=None if outcome.full_size is None else mtu,
        mtu_probe_ok=outcome.full_size,
    )


def not_verifiable(src: VM, dst: VM, why: str) -> PingResult:
    return PingResult(src.name, dst.name, str(dst.ip.ip), 0, 0, None, None, None, unverifiable=why)


# --- how probes leave the VMs ---


class Prober(Protocol):
    errors: dict[str, str]  # source VM -> why its probes could not be sent
    full_size_errors: dict[str, str]  # source VM -> why its full-size probes could not be

    def send(self, probe: Probe) -> None: ...
    def replies(self, wait_s: float) -> Iterable[tuple[int, float]]:
        """(probe id, round trip ms) of the replies that come within `wait_s`."""
        ...

    def forget(self, probe: Probe) -> None: ...
    def close(self) -> None: ...


class SocketProber:
    """Raw ICMP sockets inside the VMs' namespaces (icmp.py)."""

    def __init__(self, namespaces: dict[str, str], addresses: dict[str, str], full_payload: int):
        from labctl import icmp

        self.pinger = icmp.Pinger(icmp.sockets_in(namespaces))
        self.addresses, self.full_payload = addresses, full_payload
        self.small_payload = len(icmp.PAYLOAD)
        self.errors: dict[str, str] = {}
        self.full_size_errors: dict[str, str] = {}

    def send(self, probe: Probe) -> None:
        size = self.full_payload if probe.purpose is Purpose.FULL_SIZE else self.small_payload
        self.pinger.send(probe.src, self.addresses[probe.dst], probe.id, size, answered=probe.answered)

    def replies(self, wait_s: float) -> Iterable[tuple[int, float]]:
        return self.pinger.replies(wait_s)  # type: ignore[return-value]

    def forget(self, probe: Probe) -> None:
        self.pinger.forget(probe.id)

    def close(self) -> None:
        self.pinger.close()


class FpingProber:
    """Probes that leave a VM by a command through its transport: `fping` where the VM has
    it, else `ping` (asked once per VM: `command -v`). The probes due together go out as
    one fping per source VM and size (a target once per batch; a second probe to it waits
    for the next batch), or one `ping -c1` per target, side by side. Full-size probes:
    `fping -b PAYLOAD -M`, `ping -s PAYLOAD -M do` (Don't Fragment)."""

    def __init__(self, vms: dict[str, VM], vm_transport: Callable[[VM], object], full_payload: int):
        self.vms, self.vm_transport, self.full_payload = vms, vm_transport, full_payload
        self.batch: list[Probe] = []
        self.errors: dict[str, str] = {}
        self.full_size_errors: dict[str, str] = {}
        self.tools: dict[str, str] = {}  # source VM -> "fping" or "ping", once found

    def send(self, probe: Probe) -> None:
        self.batch.append(probe)

    def pending(self) -> bool:
        """Probes are waiting for replies() to run them (fping goes a batch at a time)."""
        return bool(self.batch)

    def replies(self, wait_s: float) -> Iterable[tuple[int, float]]:
        if not self.batch:
            time.sleep(wait_s)
            return []
        now, later, seen = [], [], set()
        for probe in self.batch:
            (later if (probe.src, probe.dst) in seen else now).append(probe)
            seen.add((probe.src, probe.dst))
        self.batch = later
        jobs: dict[tuple[str, bool], list[Probe]] = {}
        for probe in now:
            jobs.setdefault((probe.src, probe.purpose is Purpose.FULL_SIZE), []).append(probe)
        answers: list[tuple[int, float]] = []
        for outcome in in_parallel(self._run, list(jobs.items()), lambda job: job[0][0], workers=64):
            if outcome.error is None:
                answers += outcome.value
        return answers

    def tool(self, src: str, transport) -> str:
        """fping or ping: what the VM has (fping first: one process for many targets)."""
        if src not in self.tools:
            found = transport.run(["sh", "-c", FIND_TOOL], check=False, timeout=30)
            name = found.stdout.strip().rsplit("/", 1)[-1] if found.ok else ""
            if name not in ("fping", "ping"):
                raise LabctlError(found.stderr.strip() or f"neither fping nor ping in {src}")
            self.tools[src] = name  # a VM that did not answer is asked again next batch
        return self.tools[src]

    def _run(self, job: tuple[tuple[str, bool], list[Probe]]) -> list[tuple[int, float]]:
        (src, full), probes = job
        targets = [self.vms[p.dst] for p in probes]
        timeout_ms = round(1000 * max(p.timeout_s for p in probes))
        payload = self.full_payload if full else None
        try:
            transport = self.vm_transport(self.vms[src])
            if self.tool(src, transport) == "fping":
                rtts, error = _fping(transport, targets, 1, 1000, timeout_ms, payload=payload)
            else:
                rtts, error = _ping(transport, targets, timeout_ms, payload=payload)
        except LabctlError as exc:
            rtts, error = {}, str(exc)
        if error:
            (self.full_size_errors if full else self.errors)[src] = error
        answers = []
        for probe, vm in zip(probes, targets, strict=True):
            got = rtts.get(str(vm.ip.ip))
            if got and got[0] is not None:
                answers.append((probe.id, got[0]))
        return answers

    def forget(self, probe: Probe) -> None:
        pass

    def close(self) -> None:
        pass


class MixedProber:
    """Sockets for the source VMs that are namespaces here, fping for the others (a lab of
    namespace VMs and real guests)."""

    def __init__(self, sockets: SocketProber, fping: FpingProber):
        self.sockets, self.fping = sockets, fping
        self.errors, self.full_size_errors = fping.errors, fping.full_size_errors

    def send(self, probe: Probe) -> None:
        (self.sockets if probe.src in self.sockets.pinger.sockets else self.fping).send(probe)

    def replies(self, wait_s: float) -> Iterable[tuple[int, float]]:
        # fping's batch first (it blocks while it runs); the sockets' replies meanwhile are
        # timed by the kernel, so reading them afterwards does not lengthen their round trips
        answers = list(self.fping.replies(0.0)) if self.fping.pending() else []
        return answers + list(self.sockets.replies(0.0 if answers else wait_s))

    def forget(self, probe: Probe) -> None:
        self.sockets.forget(probe)

    def close(self) -> None:
        self.sockets.close()


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
    argv = ["fping", "-q", "-C", str(count), "-p", str(period_ms), "-t", str(timeout_ms)]
    argv += ["-i", str(spacing_ms)]
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


def ping_argv(target: str, timeout_ms: int, payload: int | None = None) -> list[str]:
    """One echo request; -W in whole seconds (busybox's ping takes no fraction)."""
    argv = ["ping", "-c", "1", "-W", str(max(1, math.ceil(timeout_ms / 1000)))]
    if payload is not None:
        argv += ["-s", str(payload), "-M", "do"]
    return [*argv, target]


def parse_ping(output: str) -> float | None:
    """The round trip of `ping -c1`'s reply (iputils and busybox), None when none came."""
    match = _PING_REPLY.search(output)
    return float(match.group(1)) if match else None


def _ping(transport, targets: list[VM], timeout_ms: int, payload: int | None = None):
    """`ping -c1` to each target, side by side; rtts and the first error, as _fping gives
    them. A reply later than `timeout_ms` is lost, as fping -t has it (-W is whole seconds)."""

    def one(vm: VM):
        argv = ping_argv(str(vm.ip.ip), timeout_ms, payload)
        return transport.run(argv, check=False, timeout=timeout_ms / 1000 + 10)

    rtts: dict[str, list[float | None]] = {}
    errors = []
    outcomes = in_parallel(one, targets, lambda vm: vm.name, workers=64)
    for vm, outcome in zip(targets, outcomes, strict=True):
        if outcome.error is not None:
            errors.append(str(outcome.error))
            continue
        result = outcome.value
        rtt = parse_ping(result.stdout) if result.returncode == 0 else None
        rtts[str(vm.ip.ip)] = [rtt if rtt is not None and rtt <= timeout_ms else None]
        # exit 1: no reply; anything else, or words on stderr without a reply, is ping's own error
        said = result.stderr.strip()
        if result.returncode not in (0, 1) or (result.returncode == 1 and said):
            errors.append(said.splitlines()[0] if said else f"ping exited {result.returncode}")
    return rtts, (errors[0] if errors else None)


# --- the loop ---


def run_sweep(sweep: Sweep, prober: Prober, clock: Callable[[], float] = time.monotonic) -> None:
    """Send what the sweep says is due, feed it what comes back and what times out, until
    every pair is done. The I/O is the prober's; what to send when is the sweep's."""
    while not sweep.done:
        for probe in sweep.due(clock()):
            prober.send(probe)
        wake = sweep.next_event()
        wait = LONGEST_WAIT_S if wake is None else min(LONGEST_WAIT_S, max(0.0, wake - clock()))
        for probe_id, rtt_ms in prober.replies(wait):
            sweep.answered(probe_id, rtt_ms, clock())
        for probe in sweep.expire(clock()):
            prober.forget(probe)


def run_announcements(
    announcements: Announcements, announcers, clock: Callable[[], float] = time.monotonic
) -> None:
    """Send the gratuitous ARPs announce.py says are due, tell it who heard which, until
    every VM has announced itself (heard by all, or out of time)."""
    while not announcements.done:
        for vm in announcements.due(clock()):
            announcers.announce(vm)
        wake = announcements.next_event()
        wait = LONGEST_WAIT_S if wake is None else min(LONGEST_WAIT_S, max(0.0, wake - clock()))
        for speaker, listener in announcers.heard(wait):
            announcements.heard(speaker, listener, clock())
        announcements.expire(clock())


def announce_all(namespaces: dict[str, str], addresses: dict[str, str]) -> Announcements | None:
    """Each namespace VM announces itself (announce.py: once, and once more to the VMs that
    missed it), so the set-ups that follow are unicast; None when the VMs' packet sockets
    cannot be opened (then each pair's set-up asks with ARP requests, as it would anyway:
    slower, never wrong)."""
    from labctl.garp import Announcers

    try:
        announcers = Announcers(namespaces, addresses)
    except LabctlError:
        return None
    try:
        announcements = Announcements(list(announcers.vms), Pacer())
        run_announcements(announcements, announcers)
    finally:
        announcers.close()
    return announcements


def ping_all(
    lab: Lab,
    vm_transport,
    count: int = 3,
    period_ms: int = 200,
    timeout_ms: int = 2000,
    way_in: Callable[[VM], str | None] = lambda vm: None,
    pacer: Pacer | None = None,
) -> list[PingResult]:
    """`vm_transport(vm)` gives the transport that runs a command inside a VM; `way_in(vm)`
    says why there is none (the pairs from that VM are reported as not verifiable)."""
    vms = list(lab.vms)
    by_name = {vm.name: vm for vm in vms}
    no_way_in = {vm.name: why for vm in vms if (why := way_in(vm)) is not None}
    reachable = [vm for vm in vms if vm.name not in no_way_in]
    namespaces = {vm.name: path for vm in reachable if (path := vm_transport(vm).netns_path())}
    payload = icmp_payload(lab.mtu)
    fping = FpingProber(by_name, vm_transport, payload)
    prober: Prober = fping
    if namespaces:
        addresses = {vm.name: str(vm.ip.ip) for vm in vms}
        if len(namespaces) > 1:
            announce_all(namespaces, addresses)
        sockets = SocketProber(namespaces, addresses, payload)
        prober = sockets if len(namespaces) == len(reachable) else MixedProber(sockets, fping)
    sweep = Sweep(
        [vm.name for vm in vms],
        pacer or Pacer(),
        count,
        period_ms / 1000,
        timeout_ms / 1000,
        unreachable=set(no_way_in),
    )
    try:
        run_sweep(sweep, prober)
    finally:
        prober.close()
    outcomes = sweep.outcomes()
    results = []
    for src in vms:
        for dst in vms:
            if src is dst:
                continue
            if src.name in no_way_in:
                results.append(not_verifiable(src, dst, no_way_in[src.name]))
                continue
            results.append(
                result_of(
                    src,
                    dst,
                    outcomes[(src.name, dst.name)],
                    count,
                    prober.errors.get(src.name),
                    lab.mtu,
                    prober.full_size_errors.get(src.name),
                )
            )
    return results
