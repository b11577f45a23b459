"""Where `trace --follow` reads from, and what it cleans up when it ends.

It reads the lab's running capture when there is one (and leaves it running), a
file it is given, or else a capture of its own: tcpdump journalled like any
capture (so `down` stops it even after a kill -9 of trace), its pcap in the
lab's state directory; stopped and removed when the follow ends (Ctrl-C,
SIGTERM, a closed pipe).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from labctl import processes
from labctl.observe import capture
from labctl.processes import ProcessId


@dataclass
class Source:
    path: str
    running: Callable[[], bool]  # False once the capture has stopped writing
    what: str  # for the first line: where the messages come from


@contextmanager
def follow_source(runner, pcap: str | None):
    """The capture to follow; what it started is stopped and removed on the way out."""
    if pcap:
        yield Source(pcap, lambda: True, f"following {pcap}")
        return
    running = capture.running_capture(runner) if runner.state.exists() else None
    if running is not None:
        proc, path = running
        yield Source(path, lambda: processes.alive(proc), f"following the running capture {path}")
        return
    path = runner.state.dir / f"follow-{os.getpid()}.pcap"
    proc: ProcessId | None = None
    try:
        proc = capture.start_follow_capture(runner, path)
        yield Source(str(path), lambda: processes.alive(proc), "following the controller channel")
    finally:
        with _shielded():  # a second Ctrl-C must not cut the cleanup short
            if proc is not None:
                processes.stop([proc])
            for leftover in (path, Path(f"{path}.log")):
                leftover.unlink(missing_ok=True)


_ENDING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _shielded():
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _ENDING}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def interrupted_by_signals():
    """SIGTERM and SIGHUP end a follow the way Ctrl-C does, so its cleanup runs."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
