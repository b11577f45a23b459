"""Processes labctl started: identified by PID *and* start time, stopped only by PID.

A PID alone can be reused by an unrelated process after ours died; the start
time (field 22 of /proc/PID/stat) makes the identity exact. Nothing here ever
looks processes up by name.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

NETNS_DIR = "/run/netns"  # where `ip netns add` pins a namespace by its name


@dataclass(frozen=True)
class ProcessId:
    pid: int
    start: int  # clock ticks after boot, from /proc/PID/stat

    def to_json(self) -> dict:
        return asdict(self)


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited already
        return None
    return comm, int(fields[19])


def identify(pid: int) -> ProcessId | None:
    stat = _stat(pid)
    return ProcessId(pid, stat[1]) if stat else None


def identify_as(pid: int, program: str) -> ProcessId | None:
    """The process with this PID if it runs `program` (its name as the kernel keeps it,
    15 characters at most): a PID read from a pidfile, checked to be the daemon it names."""
    stat = _stat(pid)
    return ProcessId(pid, stat[1]) if stat and stat[0] == program[:15] else None


def alive(proc: ProcessId) -> bool:
    stat = _stat(proc.pid)
    return stat is not None and stat[1] == proc.start


def netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def read_pidfile(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop(procs: Iterable[ProcessId], timeout: float = 5.0) -> None:
    """SIGTERM each live process, wait for all of them, SIGKILL what is left."""
    procs = [p for p in procs if alive(p)]
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while procs and time.monotonic() < deadline:
        time.sleep(0.02)
        _reap(procs)
        procs = [p for p in procs if alive(p)]
    for proc in procs:
        _signal(proc, signal.SIGKILL)
    deadline = time.monotonic() + 2
    while procs and time.monotonic() < deadline:
        time.sleep(0.02)
        _reap(procs)
        procs = [p for p in procs if alive(p)]


def _signal(proc: ProcessId, sig: int) -> None:
    if alive(proc):  # re-check right before signalling
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass


def _reap(procs: list[ProcessId]) -> None:
    """Collect our own children (a controller started by this labctl) so they do not linger."""
    for proc in procs:
        try:
            os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:
            pass


def named_netns_inode(name: str) -> int | None:
    """A named namespace's inode (`ip netns add` pins it in /run/netns): what
    /proc/PID/ns/net of every process inside it points at."""
    try:
        return os.stat(f"{NETNS_DIR}/{name}").st_ino
    except OSError:
        return None


def in_unnamed_netns(pid: int) -> bool:
    """Whether the process lives in a network namespace no name pins any more (nor this
    machine's own): where a namespace whose name was deleted lives on while processes
    hold it."""
    inode = netns_inode(pid)
    try:
        named = {os.stat(f"{NETNS_DIR}/{name}").st_ino for name in os.listdir(NETNS_DIR)}
    except OSError:
        named = set()
    return inode is not None and inode not in named and inode != netns_inode(os.getpid())


def in_named_netns(names: Iterable[str]) -> list[ProcessId]:
    """Processes living in the named network namespaces (which labctl created)."""
    inodes = {inode for inode in map(named_netns_inode, names) if inode is not None}
    return in_netns(inodes) if inodes else []


def in_netns(inodes: set[int]) -> list[ProcessId]:
    """Processes living in the given network namespaces (which labctl created)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and netns_inode(int(entry)) in inodes:
            proc = identify(int(entry))
            if proc:
                found.append(proc)
    return found
