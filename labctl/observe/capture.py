"""Record the controller channel to a pcap that Wireshark and tshark decode as OpenFlow.

tcpdump runs where it sees every bridge's session: in the controller's
namespace (simulated labs). The process is journalled, so `down` stops it
like everything else the lab started; `capture stop` stops it earlier.
"""

from __future__ import annotations

import time
from pathlib import Path

from labctl import processes
from labctl.errors import InputError, ProvisionError
from labctl.processes import ProcessId

ROLE = "capture"


def running_capture(runner) -> tuple[ProcessId, str] | None:
    for record in reversed(runner.state.records("process")):
        if record.get("role") == ROLE:
            proc = ProcessId(record["pid"], record["start"])
            return (proc, record["file"]) if processes.alive(proc) else None
    return None


def last_capture_file(runner) -> str | None:
    files = [r["file"] for r in runner.state.records("process") if r.get("role") == ROLE]
    return files[-1] if files else None


def start_capture(runner, path: str | Path, timeout: float = 10.0) -> str:
    """Start recording; returns once tcpdump is listening. One capture at a time."""
    if not runner.state.exists():
        raise InputError(f"lab {runner.lab.name} is not up; run `labctl up`")
    if not runner.controller.managed:
        raise InputError("capture runs beside a controller labctl runs; this lab's controller is remote")
    if runner.lab.controller.host is not None:
        raise InputError(
            f"capture records the controller's own namespace; this lab runs its controller on "
            f"{runner.lab.controller.host} (controller.host), where capture is not supported yet"
        )
    if running_capture(runner):
        raise InputError(
            f"a capture is already running ({running_capture(runner)[1]}); `labctl capture stop`"
        )
    path = str(Path(path).resolve())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    log = runner.state.dir / "capture.log"
    log.unlink(missing_ok=True)
    port = runner.lab.controller.port
    transport = runner.control.transport  # where the controller runs sees every session
    # --immediate-mode and -U: each packet is written as it comes, so a capture stopped
    # right after the traffic (or read while running) holds all of it
    pid = transport.spawn(
        [
            "tcpdump",
            "-i",
            "eth0",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-w",
            path,
            "tcp",
            "port",
            str(port),
        ],
        log_path=str(log),
    )
    proc = processes.identify(pid) or ProcessId(pid, -1)
    runner.state.record("process", role=ROLE, pid=proc.pid, start=proc.start, file=path)
    deadline = time.monotonic() + timeout
    while "listening on" not in (log.read_text(errors="replace") if log.exists() else ""):
        if not processes.alive(proc) or time.monotonic() > deadline:
            processes.stop([proc])
            raise ProvisionError(
                "controller", "start capture", log.read_text(errors="replace").strip() or "no output"
            )
        time.sleep(0.02)
    return path


def stop_capture(runner) -> str | None:
    """Stop the running capture (tcpdump flushes its file); returns the file."""
    running = running_capture(runner)
    if running is None:
        return None
    processes.stop([running[0]])
    return running[1]
