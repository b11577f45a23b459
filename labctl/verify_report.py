"""What `verify` reports, in every format: the table, JSON and JUnit.

The CLI's `verify` and the playbooks' verify step both render from here, so a
pair that fails reads the same wherever it is reported.
"""

from __future__ import annotations

from pathlib import Path

from labctl import junit
from labctl.verify import PingResult, passed


def full_size(result: PingResult) -> str:
    """The full-size probe in the table: its size and whether it came back."""
    if result.mtu_probe_ok is None or result.mtu_probe_bytes is None:
        return "-"
    if result.mtu_black_hole:
        return f"{result.mtu_probe_bytes} BLACK HOLE"
    return f"{result.mtu_probe_bytes} {'ok' if result.mtu_probe_ok else 'lost'}"


def render_table(results: list[PingResult]) -> str:
    header = ("PAIR", "FIRST ms", "SENT", "RECEIVED", "LOSS", "MTU", "RTT min/avg/max ms")
    rows = []
    for r in results:
        rtt = "-" if r.rtt_avg_ms is None else f"{r.rtt_min_ms:.2f}/{r.rtt_avg_ms:.2f}/{r.rtt_max_ms:.2f}"
        if r.error:
            rtt = f"error: {r.error}"
        if r.unverifiable:
            rows.append((f"{r.src} -> {r.dst} ({r.dst_ip})", "-", "-", "-", "-", "-", unverifiable(r)))
            continue
        rows.append(
            (
                f"{r.src} -> {r.dst} ({r.dst_ip})",
                "-" if r.first_rtt_ms is None else f"{r.first_rtt_ms:.2f}",
                str(r.sent),
                str(r.received),
                f"{r.loss_pct:g}%",
                full_size(r),
                rtt,
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.append(summary(results))
    return "\n".join(lines)


def unverifiable(result: PingResult) -> str:
    return f"not verifiable: {result.unverifiable}"


def summary(results: list[PingResult]) -> str:
    """One line: how many pairs answered, and of the others how many lost packets, never
    answered, or lost only their full-size packets (`0/N ... with 0% loss` read as if
    nothing had been lost when nothing answered); the pairs that could not be run (from a
    real guest) are counted apart, never as answered."""
    skipped = [r for r in results if r.unverifiable]
    run = [r for r in results if not r.unverifiable]
    answered = sum(r.received > 0 for r in run)
    holes = [r for r in run if r.mtu_black_hole]
    lossy = sum(r.received > 0 and not r.ok and not r.mtu_black_hole for r in run)
    silent = len(run) - answered
    head = f"{answered}/{len(run)} pairs answered"
    if skipped:
        sources = ", ".join(dict.fromkeys(r.src for r in skipped))
        head = f"{head}, {len(skipped)} not verifiable (from {sources}: {skipped[0].unverifiable})"
    if not lossy and not silent and not holes:
        return f"{head}, no packet lost" if run else f"{head}; nothing could be verified"
    problems = [
        f"{n} {'pair' if n == 1 else 'pairs'} {what}"
        for n, what in ((lossy, "lost packets"), (silent, "did not answer"))
        if n
    ]
    if holes:
        sizes = "/".join(str(size) for size in sorted({r.mtu_probe_bytes or 0 for r in holes}))
        what = "pair is an MTU black hole" if len(holes) == 1 else "pairs are MTU black holes"
        problems.append(f"{len(holes)} {what} ({sizes}-byte packets dropped, small pings pass)")
    return f"{head}; {', '.join(problems)}"


def failure(result: PingResult) -> str | None:
    """Why a pair failed, in one phrase (None when it passed or could not be run)."""
    if result.ok or result.unverifiable:
        return None
    if result.mtu_black_hole:
        return (
            f"MTU black hole to {result.dst_ip} ({result.mtu_probe_bytes}-byte packets dropped, "
            f"with Don't Fragment; small pings pass)"
        )
    return f"{result.loss_pct:g}% loss to {result.dst_ip}" + (f": {result.error}" if result.error else "")


def detail(result: PingResult) -> str:
    """What was sent and what came back, for a JUnit case."""
    text = f"sent {result.sent}, received {result.received}"
    if result.mtu_probe_ok is not None:
        answer = "answered" if result.mtu_probe_ok else "lost"
        text += f"; full-size probe ({result.mtu_probe_bytes} bytes, Don't Fragment) {answer}"
    return text


def to_json(lab: str, results: list[PingResult], problems: list[str] | None = None) -> dict:
    """`verify --json`: every pair, or why the lab could not be verified at all."""
    if problems:
        return {"lab": lab, "ok": False, "problems": problems, "pairs": []}
    return {"lab": lab, "ok": passed(results), "pairs": [r.to_json() for r in results]}


def write_junit(
    path: str | Path, lab: str, results: list[PingResult], problems: list[str] | None = None
) -> None:
    """`verify --junit`: a test case per pair, or one failed case saying why nothing ran."""
    classname = f"labctl.verify.{lab}"
    if problems:
        cases = [junit.Case("lab ready", classname, failure="; ".join(problems))]
    else:
        cases = [
            junit.Case(
                name=f"{r.src} -> {r.dst}",
                classname=classname,
                seconds=(r.rtt_avg_ms or 0) / 1000,
                failure=failure(r),
                detail=detail(r),
                skipped=unverifiable(r) if r.unverifiable else None,
            )
            for r in results
        ]
    junit.write(path, f"labctl verify {lab}", cases)
