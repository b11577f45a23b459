"""Ping every ordered pair of VMs in parallel; results as a table or JSON."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from itertools import combinations, permutations

from labctl.model import Lab
from labctl.parallel import per_host

_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")
_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/")


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

    @property
    def loss_pct(self) -> float:
        return 100.0 if self.sent == 0 else round(100.0 * (self.sent - self.received) / self.sent, 1)

    @property
    def ok(self) -> bool:
        return self.error is None and self.sent > 0 and self.received == self.sent

    def to_json(self) -> dict:
        return {**asdict(self), "loss_pct": self.loss_pct, "ok": self.ok}


def parse_ping(src: str, dst: str, dst_ip: str, output: str, count: int) -> PingResult:
    summary, rtt = _SUMMARY.search(output), _RTT.search(output)
    if summary is None:
        last = output.strip().splitlines()[-1] if output.strip() else "no output"
        return PingResult(src, dst, dst_ip, count, 0, None, None, None, error=last)
    rtts = [float(x) for x in rtt.groups()] if rtt else [None, None, None]
    return PingResult(src, dst, dst_ip, int(summary.group(1)), int(summary.group(2)), *rtts)


def _run_ping(transport, target: str, count: int, interval: float, wait: float) -> str:
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", str(wait), target]
    result = transport.run(argv, check=False, timeout=count * (interval + wait) + 10)
    return result.stdout + result.stderr


def ping_waves(vms) -> list[list[tuple]]:
    """Every ordered pair, in two waves: one direction of each pair, then the other.

    In the first wave each ARP request also teaches the target the sender's
    address, and every switch learns every MAC from the floods; so the second
    wave needs no broadcast at all. With a reactive controller that halves the
    packet-ins a full matrix costs (a 32-host star floods each ARP request to
    every bridge).
    """
    forward = list(combinations(vms, 2))
    return [forward, [(b, a) for a, b in forward]]


def ping_all(
    lab: Lab, vm_transport, count: int = 3, interval: float = 0.2, wait: float = 2.0, workers: int = 64
) -> list[PingResult]:
    """`vm_transport(vm)` gives the transport that runs a command inside a VM.

    First every pair's first packet, in two waves (it sets the path up: ARP,
    packet-ins, flow-mods, and may take longer than ping's patience, so it is
    timed on its own as first_rtt_ms); then the measured pings of all pairs at
    once, over paths that are set up.
    """

    def run(argv_count: int, patience: float, pair) -> str:
        src, dst = pair
        return _run_ping(vm_transport(src), str(dst.ip.ip), argv_count, interval, patience)

    def first(pair) -> float | None:
        return parse_ping(pair[0].name, pair[1].name, "", run(1, 3.0, pair), 1).rtt_avg_ms

    def measured(pair) -> PingResult:
        src, dst = pair
        return parse_ping(src.name, dst.name, str(dst.ip.ip), run(count, wait, pair), count)

    def name(pair) -> str:
        return f"{pair[0].name}->{pair[1].name}"

    setup: dict[str, float | None] = {}
    for wave in ping_waves(lab.vms):
        setup.update({o.name: o.value for o in per_host(first, wave, name, workers=workers)})
    results = []
    for outcome in per_host(measured, list(permutations(lab.vms, 2)), name, workers=workers):
        src, dst = outcome.name.split("->")
        result = outcome.value or PingResult(
            src, dst, str(lab.vm(dst).ip.ip), count, 0, None, None, None, str(outcome.error)
        )
        results.append(replace(result, first_rtt_ms=setup.get(outcome.name)))
    return results


def render_table(results: list[PingResult]) -> str:
    header = ("PAIR", "FIRST ms", "SENT", "RECEIVED", "LOSS", "RTT min/avg/max ms")
    rows = []
    for r in results:
        rtt = "-" if r.rtt_avg_ms is None else f"{r.rtt_min_ms:.2f}/{r.rtt_avg_ms:.2f}/{r.rtt_max_ms:.2f}"
        if r.error:
            rtt = f"error: {r.error}"
        rows.append(
            (
                f"{r.src} -> {r.dst} ({r.dst_ip})",
                "-" if r.first_rtt_ms is None else f"{r.first_rtt_ms:.2f}",
                str(r.sent),
                str(r.received),
                f"{r.loss_pct:g}%",
                rtt,
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    ok = sum(r.ok for r in results)
    lines.append(f"{ok}/{len(results)} pairs reachable with 0% loss")
    return "\n".join(lines)
