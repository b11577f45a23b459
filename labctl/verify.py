"""Ping every ordered pair of VMs; a result per pair (verify_report.py renders them).

Every pair is set up, then measured (sweep.py says which probe goes when): the first
packet of a pair pays for ARP, packet-ins and flow-mods and is timed on its own; then
`count` pings over the path it set up. Set-ups are paced by a window that follows the
controller (pacing.py): the set-up probes' round trips say when it falls behind.

How the echo requests leave the VMs:
- VMs that are namespaces on this machine (simulated hosts): raw ICMP sockets opened
  inside each VM's namespace, all driven by this process (icmp.py). Each probe is sent
  when the sweep says and timed as it comes back.
- VMs reached another way (a real host over SSH): `fping` inside the VM, one process per
  source VM for each batch of probes that are due together.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Protocol

from labctl.errors import LabctlError
from labctl.model import VM, Lab
from labctl.pacing import Pacer
from labctl.parallel import in_parallel
from labctl.sweep import PairOutcome, Probe, Sweep

_FPING_LINE = re.compile(r"^(\d+\.\d+\.\d+\.\d+)\s+:\s+(.*)$")
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

    @property
    def loss_pct(self) -> float:
        return 100.0 if self.sent == 0 else round(100.0 * (self.sent - self.received) / self.sent, 1)

    @property
    def ok(self) -> bool:
        return self.failed_in is None

    @property
    def failed_in(self) -> str | None:
        """Which part failed: "set-up" (never answered, or only after its set-up time),
        "measurement" (set up, then lost packets), or None."""
        if self.setup != "answered":
            return "set-up"
        if self.error is not None or self.sent == 0 or self.received < self.sent:
            return "measurement"
        return None

    def to_json(self) -> dict:
        return {**asdict(self), "loss_pct": self.loss_pct, "ok": self.ok, "failed": self.failed_in}


def parse_fping(output: str) -> dict[str, list[float | None]]:
    """`fping -C N -q` output -> RTTs per target, None for a lost probe."""
    found: dict[str, list[float | None]] = {}
    for line in output.splitlines():
        match = _FPING_LINE.match(line.strip())
        if match:
            found[match.group(1)] = [None if v == "-" else float(v) for v in match.group(2).split()]
    return found


def result_of(src: VM, dst: VM, outcome: PairOutcome, count: int, error: str | None = None) -> PingResult:
    got = [r for r in outcome.rtts if r is not None]
    stats = (min(got), round(sum(got) / len(got), 3), max(got)) if got else (None, None, None)
    return PingResult(
        src.name,
        dst.name,
        str(dst.ip.ip),
        len(outcome.rtts) or count,
        len(got),
        *stats,
        error=None if got else error,
        first_rtt_ms=outcome.setup_ms,
        setup=outcome.setup,
    )


# --- how probes leave the VMs ---


class Prober(Protocol):
    errors: dict[str, str]  # source VM -> why its probes could not be sent

    def send(self, probe: Probe) -> None: ...
    def replies(self, wait_s: float) -> Iterable[tuple[int, float]]:
        """(probe id, round trip ms) of the replies that come within `wait_s`."""
        ...

    def forget(self, probe: Probe) -> None: ...
    def close(self) -> None: ...


class SocketProber:
    """Raw ICMP sockets inside the VMs' namespaces (icmp.py)."""

    def __init__(self, namespaces: dict[str, str], addresses: dict[str, str]):
        from labctl import icmp

        self.pinger = icmp.Pinger(icmp.sockets_in(namespaces))
        self.addresses = addresses
        self.errors: dict[str, str] = {}

    def send(self, probe: Probe) -> None:
        self.pinger.send(probe.src, self.addresses[probe.dst], probe.id)

    def replies(self, wait_s: float) -> Iterable[tuple[int, float]]:
        return self.pinger.replies(wait_s)  # type: ignore[return-value]

    def forget(self, probe: Probe) -> None:
        self.pinger.forget(probe.id)

    def close(self) -> None:
        self.pinger.close()


class FpingProber:
    """`fping` inside each source VM, through its transport: the probes due together go
    out as one fping per source VM (a target once per batch; a second probe to it waits
    for the next batch)."""

    def __init__(self, vms: dict[str, VM], vm_transport: Callable[[VM], object]):
        self.vms, self.vm_transport = vms, vm_transport
        self.batch: list[Probe] = []
        self.errors: dict[str, str] = {}

    def send(self, probe: Probe) -> None:
        self.batch.append(probe)

    def replies(self, wait_s: float) -> Iterable[tuple[int, float]]:
        if not self.batch:
            time.sleep(wait_s)
            return []
        now, later, seen = [], [], set()
        for probe in self.batch:
            (later if (probe.src, probe.dst) in seen else now).append(probe)
            seen.add((probe.src, probe.dst))
        self.batch = later
        by_src: dict[str, list[Probe]] = {}
        for probe in now:
            by_src.setdefault(probe.src, []).append(probe)
        answers: list[tuple[int, float]] = []
        for outcome in in_parallel(self._run, list(by_src.items()), lambda job: job[0], workers=64):
            if outcome.error is None:
                answers += outcome.value
        return answers

    def _run(self, job: tuple[str, list[Probe]]) -> list[tuple[int, float]]:
        src, probes = job
        targets = [self.vms[p.dst] for p in probes]
        timeout_ms = round(1000 * max(p.timeout_s for p in probes))
        try:
            rtts, error = _fping(self.vm_transport(self.vms[src]), targets, 1, 1000, timeout_ms)
        except LabctlError as exc:
            rtts, error = {}, str(exc)
        if error:
            self.errors[src] = error
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


def _fping(transport, targets: list[VM], count: int, period_ms: int, timeout_ms: int, spacing_ms: int = 10):
    argv = ["fping", "-q", "-C", str(count), "-p", str(period_ms), "-t", str(timeout_ms)]
    argv += ["-i", str(spacing_ms), *(str(vm.ip.ip) for vm in targets)]
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


def ping_all(
    lab: Lab,
    vm_transport,
    count: int = 3,
    period_ms: int = 200,
    timeout_ms: int = 2000,
    pacer: Pacer | None = None,
) -> list[PingResult]:
    """`vm_transport(vm)` gives the transport that runs a command inside a VM."""
    vms = list(lab.vms)
    by_name = {vm.name: vm for vm in vms}
    namespaces = {vm.name: vm_transport(vm).netns_path() for vm in vms}
    prober: Prober
    if all(namespaces.values()):
        prober = SocketProber(namespaces, {vm.name: str(vm.ip.ip) for vm in vms})  # type: ignore[arg-type]
    else:
        prober = FpingProber(by_name, vm_transport)
    sweep = Sweep([vm.name for vm in vms], pacer or Pacer(), count, period_ms / 1000, timeout_ms / 1000)
    try:
        run_sweep(sweep, prober)
    finally:
        prober.close()
    outcomes = sweep.outcomes()
    return [
        result_of(src, dst, outcomes[(src.name, dst.name)], count, prober.errors.get(src.name))
        for src in vms
        for dst in vms
        if src is not dst
    ]
