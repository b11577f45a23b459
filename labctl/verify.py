"""Ping every ordered pair of VMs in parallel; results as a table or JSON."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from itertools import permutations

from labctl.errors import LabctlError
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


def ping_all(
    lab: Lab, vm_transport, count: int = 3, interval: float = 0.2, wait: float = 1.0
) -> list[PingResult]:
    """`vm_transport(vm)` gives the transport that runs a command inside a VM."""
    pairs = list(permutations(lab.vms, 2))

    def ping(pair) -> PingResult:
        src, dst = pair
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", str(wait), str(dst.ip.ip)]
        try:
            result = vm_transport(src).run(argv, check=False, timeout=count * (interval + wait) + 10)
        except LabctlError as exc:
            return PingResult(src.name, dst.name, str(dst.ip.ip), count, 0, None, None, None, str(exc))
        return parse_ping(src.name, dst.name, str(dst.ip.ip), result.stdout + result.stderr, count)

    outcomes = per_host(ping, pairs, lambda p: f"{p[0].name}->{p[1].name}", workers=64)
    return [
        o.value
        if o.error is None
        else PingResult(*o.name.split("->"), "", count, 0, None, None, None, str(o.error))
        for o in outcomes
    ]


def render_table(results: list[PingResult]) -> str:
    header = ("PAIR", "SENT", "RECEIVED", "LOSS", "RTT min/avg/max ms")
    rows = []
    for r in results:
        rtt = "-" if r.rtt_avg_ms is None else f"{r.rtt_min_ms:.2f}/{r.rtt_avg_ms:.2f}/{r.rtt_max_ms:.2f}"
        if r.error:
            rtt = f"error: {r.error}"
        rows.append(
            (f"{r.src} -> {r.dst} ({r.dst_ip})", str(r.sent), str(r.received), f"{r.loss_pct:g}%", rtt)
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    ok = sum(r.ok for r in results)
    lines.append(f"{ok}/{len(results)} pairs reachable with 0% loss")
    return "\n".join(lines)
