"""Looking inside a running lab: the controller channel, port maps, flow tables
and counters, named by the lab. The playbook runner (labctl run) calls this API:

    start_capture(runner, path) -> Capture    # .path, .stop() -> path
    stop_capture(runner) -> str | None        # stop the lab's capture found in the journal
    decode_pcap(path, runner=None) -> list[dict]   # one dict per OpenFlow message
    port_table(runner, host=None, stats=False) -> list[PortRow]
    flow_table(runner, host=None, datapath=False) -> list[dict]
    render_line(msg) / render_full(msg) -> str     # text output of a decoded message

`labctl trace --follow` is trace.follow() over the capture observe.follow picks
(the running one, or one it starts and stops again).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labctl.observe import capture as _capture
from labctl.observe.tables import flow_table, port_table
from labctl.observe.trace import Names, render_full, render_line, trace

__all__ = [
    "Capture",
    "decode_pcap",
    "flow_table",
    "port_table",
    "render_full",
    "render_line",
    "start_capture",
    "stop_capture",
]

DEFAULT_PORT = 6633


@dataclass
class Capture:
    """A running capture of the lab's controller channel, journalled so `down` stops it."""

    runner: object
    path: str

    def stop(self) -> str:
        """Stop recording (tcpdump flushes the file); returns the pcap's path."""
        return _capture.stop_capture(self.runner) or self.path


def start_capture(runner, path: str | Path) -> Capture:
    """Record every bridge's OpenFlow session to `path` (pcap); returns once tcpdump listens."""
    return Capture(runner, _capture.start_capture(runner, path))


def stop_capture(runner) -> str | None:
    """Stop the lab's running capture (found via the journal); its file, or None if none ran."""
    return _capture.stop_capture(runner)


def decode_pcap(path: str | Path, runner=None) -> list[dict]:
    """One dict per OpenFlow message (echo/hello/barrier left out), times relative to the
    first; with a runner, ports, MACs, IPs and switches carry the lab's names."""
    port = runner.lab.controller.port if runner is not None else DEFAULT_PORT
    return trace(str(path), Names(runner), port)
