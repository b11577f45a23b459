"""Record the controller channel to a pcap that Wireshark and tshark decode as OpenFlow.

tcpdump runs where the controller runs, so it sees every bridge's session: in
the controller's own namespace on its underlay port, or -- a controller placed
on a lab host -- on every interface of that host (`-i any`, Linux cooked v2
frames), leaving out the interfaces where the same packets pass a second time
(the controller site says which). The process is journalled, so `down` stops it
like everything else the lab started; `capture stop` stops it earlier.

`trace --follow` starts a capture of its own when none runs: journalled the same
way (marked `follow`), stopped and its file removed when the follow ends, and
never taken for the user's capture by `capture stop` or `trace`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from labctl import processes
from labctl.errors import InputError, ProvisionError
from labctl.processes import ProcessId

ROLE = "capture"


def _captures(runner, follow: bool) -> list[dict]:
    return [
        r
        for r in runner.state.records("process")
        if r.get("role") == ROLE and bool(r.get("follow")) == follow
    ]


def running_capture(runner) -> tuple[ProcessId, str] | None:
    """The user's capture (`capture start`), if it still runs: its process and file."""
    for record in reversed(_captures(runner, follow=False)):
        proc = ProcessId(record["pid"], record["start"])
        return (proc, record["file"]) if processes.alive(proc) else None
    return None


def last_capture_file(runner) -> str | None:
    files = [r["file"] for r in _captures(runner, follow=False)]
    return files[-1] if files else None


def check_capturable(runner) -> None:
    if not runner.state.exists():
        raise InputError(f"lab {runner.lab.name} is not up; run `labctl up`")
    if not runner.controller.managed:
        raise InputError("capture runs beside a controller labctl runs; this lab's controller is remote")


def start_capture(runner, path: str | Path, timeout: float = 10.0, *, follow: bool = False) -> str:
    """Start recording; returns once tcpdump is listening. One user capture at a time."""
    check_capturable(runner)
    if not follow and running_capture(runner):
        raise InputError(
            f"a capture is already running ({running_capture(runner)[1]}); `labctl capture stop`"
        )
    return _start(runner, path, timeout, follow)[1]


def start_follow_capture(runner, path: str | Path, timeout: float = 10.0) -> ProcessId:
    """A capture for `trace --follow` alone; the caller stops it (stop_process)."""
    check_capturable(runner)
    return _start(runner, path, timeout, follow=True)[0]


def tcpdump_argv(runner, path: str) -> list[str]:
    """tcpdump where the controller runs: every bridge's session, each packet once."""
    site = runner.control.site
    match = f"tcp port {runner.lab.controller.port}"
    skips = [_ifindex(site.transport, name) for name in site.capture_skips]
    expression = " and ".join([match, *(f"not ifindex {i}" for i in skips if i is not None)])
    # --immediate-mode and -U: each packet is written as it comes, so a capture stopped
    # right after the traffic (or read while running, as trace --follow does) holds all of it
    return ["tcpdump", "-i", site.capture_on, "-U", "--immediate-mode", "-Z", "root", "-w", path, expression]


def _ifindex(transport, interface: str) -> int | None:
    """An interface's index where the controller runs (what `ifindex` filters on)."""
    found = transport.run(["ip", "-o", "link", "show", "dev", interface], check=False)
    number = re.match(r"(\d+):", found.stdout)
    return int(number.group(1)) if found.returncode == 0 and number else None


def _start(runner, path: str | Path, timeout: float, follow: bool) -> tuple[ProcessId, str]:
    path = str(Path(path).resolve())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    log = Path(f"{path}.log") if follow else runner.state.dir / "capture.log"  # a follow's beside its pcap
    log.unlink(missing_ok=True)
    transport = runner.control.transport  # where the controller runs sees every session
    pid = transport.spawn(tcpdump_argv(runner, path), log_path=str(log))
    proc = processes.identify(pid) or ProcessId(pid, -1)
    extra = {"follow": True} if follow else {}
    runner.state.record("process", role=ROLE, pid=proc.pid, start=proc.start, file=path, **extra)
    deadline = time.monotonic() + timeout
    while "listening on" not in (log.read_text(errors="replace") if log.exists() else ""):
        if not processes.alive(proc) or time.monotonic() > deadline:
            processes.stop([proc])
            raise ProvisionError(
                "controller", "start capture", log.read_text(errors="replace").strip() or "no output"
            )
        time.sleep(0.02)
    return proc, path


def stop_capture(runner) -> str | None:
    """Stop the user's running capture (tcpdump flushes its file); returns the file."""
    running = running_capture(runner)
    if running is None:
        return None
    processes.stop([running[0]])
    return running[1]
