"""What `verify` reports, in every format: the table, JSON and JUnit.

The CLI's `verify` and the playbooks' verify step both render from here, so a
pair that fails reads the same wherever it is reported.
"""

from __future__ import annotations

from pathlib import Path

from labctl import junit
from labctl.verify import PingResult


def render_table(results: list[PingResult], controller: list[str] | None = None) -> str:
    header = ("PAIR", "FIRST ms", "SENT", "RECEIVED", "LOSS", "RTT min/avg/max ms")
    rows = []
    for r in results:
        rtt = "-" if r.rtt_avg_ms is None else f"{r.rtt_min_ms:.2f}/{r.rtt_avg_ms:.2f}/{r.rtt_max_ms:.2f}"
        if r.error:
            rtt = f"error: {r.error}"
        if r.failed_in == "set-up":  # its losses are not the path's: it was not set up yet
            rtt = SETUP_FAILURES[r.setup]
        rows.append(
            (
                f"{r.src} -> {r.dst} ({r.dst_ip})",
                "-" if r.first_rtt_ms is None else f"{r.first_rtt_ms:.2f}",
                str(r.sent),
                str(r.received),
                "-" if r.failed_in == "set-up" else f"{r.loss_pct:g}%",
                rtt,
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.append(summary(results, controller))
    return "\n".join(lines)


# Why a pair's set-up failed, by its setup outcome.
SETUP_FAILURES = {
    "late": "slow set-up: answered only after its set-up time",
    "none": "set-up failed: never answered",
}


def _pairs(n: int) -> str:
    return f"{n} {'pair' if n == 1 else 'pairs'}"


def summary(results: list[PingResult], controller: list[str] | None = None) -> str:
    """One line: how many pairs answered, and if anything failed, which part: the set-up
    (pairs slow to set up, or never answering), the measurement (pairs that were set up
    and then lost packets), or the controller (`controller`: what was wrong with it)."""
    answered = sum(r.setup != "none" for r in results)
    late = sum(r.setup == "late" for r in results)
    silent = sum(r.setup == "none" for r in results)
    lossy = sum(r.failed_in == "measurement" for r in results)
    head = f"{answered}/{len(results)} pairs answered"
    if not (late or silent or lossy or controller):
        return f"{head}, no packet lost"
    parts = [f"the controller ({'; '.join(controller)})"] if controller else []
    setup = [f"{_pairs(late)} slow: answered only after their set-up time"] if late else []
    setup += [f"{_pairs(silent)} never answered"] if silent else []
    parts += [f"set-up ({', '.join(setup)})"] if setup else []
    parts += [f"measurement ({_pairs(lossy)} lost packets)"] if lossy else []
    return f"{head}; failed: {', '.join(parts)}"


def failure(result: PingResult) -> str | None:
    """Why a pair failed, in one phrase (None when it passed)."""
    if result.ok:
        return None
    if result.failed_in == "set-up":
        return f"{SETUP_FAILURES[result.setup]} ({result.dst_ip})"
    return f"{result.loss_pct:g}% loss to {result.dst_ip}" + (f": {result.error}" if result.error else "")


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
    found = {"lab": lab, "ok": all(r.ok for r in results) and not controller}
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
                detail=f"sent {r.sent}, received {r.received}",
            )
            for r in results
        ]
        if controller:
            cases.append(junit.Case("controller", classname, failure="; ".join(controller)))
    junit.write(path, f"labctl verify {lab}", cases)
