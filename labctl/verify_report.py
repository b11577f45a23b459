"""What `verify` reports, in every format: the table, JSON and JUnit.

The CLI's `verify` and the playbooks' verify step both render from here, so a
pair that fails reads the same wherever it is reported.
"""

from __future__ import annotations

from pathlib import Path

from labctl import junit
from labctl.verify import PingResult, passed

# Why a pair's set-up failed, by its setup outcome.
SETUP_FAILURES = {
    "late": "slow set-up: answered only after its set-up time",
    "none": "set-up failed: never answered",
}


def full_size(result: PingResult) -> str:
    """The full-size probe in the table: its size and whether it came back."""
    if result.mtu_probe_ok is None or result.mtu_probe_bytes is None:
        return "-"
    if result.mtu_black_hole:
        return f"{result.mtu_probe_bytes} BLACK HOLE"
    return f"{result.mtu_probe_bytes} {'ok' if result.mtu_probe_ok else 'lost'}"


def render_table(results: list[PingResult], controller: list[str] | None = None) -> str:
    header = ("PAIR", "FIRST ms", "SENT", "RECEIVED", "LOSS", "MTU", "RTT min/avg/max ms")
    rows = []
    for r in results:
        pair = f"{r.src} -> {r.dst} ({r.dst_ip})"
        if r.unverifiable:
            rows.append((pair, "-", "-", "-", "-", "-", unverifiable(r)))
            continue
        rtt = "-" if r.rtt_avg_ms is None else f"{r.rtt_min_ms:.2f}/{r.rtt_avg_ms:.2f}/{r.rtt_max_ms:.2f}"
        if r.error:
            rtt = f"error: {r.error}"
        if r.failed_in == "set-up":  # its losses are not the path's: it was not set up yet
            rtt = SETUP_FAILURES[r.setup]
        rows.append(
            (
                pair,
                "-" if r.first_rtt_ms is None else f"{r.first_rtt_ms:.2f}",
                str(r.sent),
                str(r.received),
                "-" if r.failed_in == "set-up" else f"{r.loss_pct:g}%",
                full_size(r),
                rtt,
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.append(summary(results, controller))
    return "\n".join(lines)


def unverifiable(result: PingResult) -> str:
    return f"not verifiable: {result.unverifiable}"


def _pairs(n: int) -> str:
    return f"{n} {'pair' if n == 1 else 'pairs'}"


def summary(results: list[PingResult], controller: list[str] | None = None) -> str:
    """One line: how many pairs answered, and if anything failed, which part: the controller
    (`controller`: what was wrong with it once the pings were done), the set-up (pairs slow
    to set up, or never answering), the measurement (pairs that were set up and then lost
    packets) or the MTU (pairs whose small pings pass and full-size packets vanish). The
    pairs that could not be run (from a real guest) are counted apart, never as answered."""
    skipped = [r for r in results if r.unverifiable]
    run = [r for r in results if not r.unverifiable]
    answered = sum(r.setup != "none" for r in run)
    late = sum(r.setup == "late" for r in run)
    silent = sum(r.setup == "none" for r in run)
    lossy = sum(r.failed_in == "measurement" for r in run)
    holes = [r for r in run if r.failed_in == "MTU"]
    head = f"{answered}/{len(run)} pairs answered"
    if skipped:
        sources = ", ".join(dict.fromkeys(r.src for r in skipped))
        head = f"{head}, {len(skipped)} not verifiable (from {sources}: {skipped[0].unverifiable})"
    if not (late or silent or lossy or holes or controller):
        return f"{head}, no packet lost" if run else f"{head}; nothing could be verified"
    parts = [f"the controller ({'; '.join(controller)})"] if controller else []
    setup = [f"{_pairs(late)} slow: answered only after their set-up time"] if late else []
    setup += [f"{_pairs(silent)} never answered"] if silent else []
    parts += [f"set-up ({', '.join(setup)})"] if setup else []
    parts += [f"measurement ({_pairs(lossy)} lost packets)"] if lossy else []
    if holes:
        sizes = "/".join(str(size) for size in sorted({r.mtu_probe_bytes or 0 for r in holes}))
        what = "is an MTU black hole" if len(holes) == 1 else "are MTU black holes"
        parts.append(f"MTU ({_pairs(len(holes))} {what}: {sizes}-byte packets dropped, small pings pass)")
    return f"{head}; failed: {', '.join(parts)}"


def failure(result: PingResult) -> str | None:
    """Why a pair failed, in one phrase (None when it passed or could not be run)."""
    if result.ok or result.unverifiable:
        return None
    if result.failed_in == "set-up":
        return f"{SETUP_FAILURES[result.setup]} ({result.dst_ip})"
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


def to_json(
    lab: str,
    results: list[PingResult],
    problems: list[str] | None = None,
    controller: list[str] | None = None,
) -> dict:
    """`verify --json`: every pair, or why the lab could not be verified at all; `controller`:
    what was wrong with the controller once the pings were done."""
    if problems:
        return {"lab": lab, "ok": False, "problems": problems, "pairs": []}
    found = {"lab": lab, "ok": passed(results) and not controller}
    if controller:
        found["controller_problems"] = controller
    return {**found, "pairs": [r.to_json() for r in results]}


def write_junit(
    path: str | Path,
    lab: str,
    results: list[PingResult],
    problems: list[str] | None = None,
    controller: list[str] | None = None,
) -> None:
    """`verify --junit`: a test case per pair (and a failed one for the controller when it
    failed meanwhile), or one failed case saying why nothing ran."""
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
        if controller:
            cases.append(junit.Case("controller", classname, failure="; ".join(controller)))
    junit.write(path, f"labctl verify {lab}", cases)
