"""Record the controller channel to a pcap that Wireshark and tshark decode as OpenFlow.

tcpdump runs where the controller runs, so it sees every bridge's session: in
the controller's own namespace on its underlay port, or -- a controller placed
on a lab host -- on every interface of that host (`-i any`, Linux cooked v2
frames), leaving out the interfaces where the same packets pass a second time
(the controller site says which). The process is journalled, so `down` stops it
like everything else the lab started; `capture stop` stops it earlier.

`trace --follow` starts a capture of its own when none runs: journalled the same
way (marked `follow`, with the follow's own process), stopped and its file removed
when the follow ends, and never taken for the user's capture by `capture stop` or
`trace`. A follow killed outright (kill -9) cannot clean up: the next capture or
follow of the lab stops what it left running, and `down` does in any case.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from labctl import processes
from labctl.errors import InputError, ProvisionError
from labctl.processes import ProcessId

ROLE = "capture"
SNAPLEN = 65600  # an IPv4 packet's 65535 bytes and its link header (Ethernet, Linux cooked v2)
BUFFER_KIB = 16384
PACKET_OTHERHOST = 3  # linux/if_packet.h


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


def start_capture(runner, path: str | Path, timeout: float = 10.0) -> str:
    """Start recording; returns once tcpdump is listening. One user capture at a time."""
    check_capturable(runner)
    stop_abandoned_follows(runner)
    if running_capture(runner):
        raise InputError(
            f"a capture is already running ({running_capture(runner)[1]}); `labctl capture stop`"
        )
    return _start(runner, path, timeout, follow=False)[1]


def start_follow_capture(runner, path: str | Path, owner: ProcessId, timeout: float = 10.0) -> ProcessId:
    """A capture for `trace --follow` alone, run by `owner`; the caller stops it
    (processes.stop), or, should the owner die first, the next capture or follow does."""
    check_capturable(runner)
    stop_abandoned_follows(runner)
    return _start(runner, path, timeout, follow=True, owner=owner)[0]


def stop_abandoned_follows(runner) -> list[str]:
    """Stop the follow captures whose follow died without cleaning up (kill -9), and
    remove their files; returns those files."""
    abandoned = []
    for record in _captures(runner, follow=True):
        if "owner_pid" not in record:
            continue
        if processes.alive(ProcessId(record["owner_pid"], record["owner_start"])):
            continue
        tcpdump = ProcessId(record["pid"], record["start"])
        if not processes.alive(tcpdump) and not Path(record["file"]).exists():
            continue  # stopped and removed long ago
        processes.stop([tcpdump])
        for leftover in follow_files(record["file"]):
            leftover.unlink(missing_ok=True)
        abandoned.append(record["file"])
    return abandoned


def follow_files(path: str | Path) -> tuple[Path, Path]:
    """What a follow's capture writes: its pcap and tcpdump's log beside it."""
    return Path(path), Path(f"{path}.log")


def tcpdump_argv(runner, path: str) -> list[str]:
    """tcpdump where the controller runs: every bridge's session, each packet once."""
    site = runner.control.site
    return [*_tcpdump_options(site.capture_on, path), _filter(runner, site)]


def _filter(runner, site) -> str:
    """The controller's port; on every interface, each packet as the host's own stack
    took it in or sent it: not a copy that reached an interface while addressed to
    another one's MAC (byte 10 of a Linux cooked v2 header, the packet type, is
    PACKET_OTHERHOST), nor what the skipped interfaces send again (a userspace
    datapath's port, passing on what the host sent through its bridge)."""
    parts = [f"tcp port {runner.lab.controller.port}"]
    if site.capture_on == "any":
        parts.append(f"link[10] != {PACKET_OTHERHOST}")
    for name in site.capture_skips:
        index = _ifindex(site.transport, name)
        if index is not None:
            parts.append(f"not (ifindex {index} and outbound)")
    return " and ".join(parts)


def _tcpdump_options(interface: str, path: str) -> list[str]:
    # --immediate-mode and -U: each packet is written as it comes, so a capture stopped
    # right after the traffic (or read while running, as trace --follow does) holds all of it.
    # Immediate mode gives each packet a ring slot as large as the snap length: the default
    # (256 KiB a slot in a 2 MiB ring) holds a burst of only 8 packets, and the rest of a
    # switch's connection burst is dropped. 65600 bytes hold any IPv4 packet with its link
    # header; 16 MiB give a burst of about 250.
    return [
        "tcpdump",
        "-i",
        interface,
        "-s",
        str(SNAPLEN),
        "-B",
        str(BUFFER_KIB),
        "-U",
        "--immediate-mode",
        "-Z",
        "root",
        "-w",
        path,
    ]


def _ifindex(transport, interface: str) -> int | None:
    """An interface's index where the controller runs (what `ifindex` filters on)."""
    found = transport.run(["ip", "-o", "link", "show", "dev", interface], check=False)
    number = re.match(r"(\d+):", found.stdout)
    return int(number.group(1)) if found.returncode == 0 and number else None


def _start(
    runner, path: str | Path, timeout: float, follow: bool, owner: ProcessId | None = None
) -> tuple[ProcessId, str]:
    path = str(Path(path).resolve())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    log = follow_files(path)[1] if follow else _log(runner)  # a follow's beside its pcap
    log.unlink(missing_ok=True)
    transport = runner.control.transport  # where the controller runs sees every session
    pid = transport.spawn(tcpdump_argv(runner, path), log_path=str(log))
    proc = processes.identify(pid) or ProcessId(pid, -1)
    extra = {"follow": True, "owner_pid": owner.pid, "owner_start": owner.start} if follow else {}
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


def _log(runner) -> Path:
    return runner.state.dir / "capture.log"


def stop_capture(runner) -> str | None:
    """Stop the user's running capture (tcpdump flushes its file); returns the file."""
    stop_abandoned_follows(runner)
    running = running_capture(runner)
    if running is None:
        return None
    processes.stop([running[0]])
    return running[1]


def dropped_packets(runner) -> int:
    """How many packets the last user capture lost because tcpdump did not keep up
    (what tcpdump says when it stops): its trace then misses what they carried."""
    log = _log(runner)
    said = re.search(
        r"(\d+) packets? dropped by kernel", log.read_text(errors="replace") if log.exists() else ""
    )
    return int(said.group(1)) if said else 0
