"""Progress per host on stderr: `  0.21s [host1] bridge br0 created`.

Not a terminal (CI logs, pipes): plain lines only. On a terminal the same lines
scroll by and one status line below them shows, per host, how many changes it
has made and what it did last; it is redrawn with a carriage return and erased
before anything else is printed. `-q` keeps only errors.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import threading
import time

CLEAR_LINE = "\r\x1b[K"


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM", "dumb") != "dumb"


class Reporter:
    def __init__(self, quiet: bool = False, stream=None, live: bool | None = None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.live = (not quiet) and (_is_terminal(self.stream) if live is None else live)
        self.start = time.monotonic()
        self.changes = 0
        self._lock = threading.RLock()
        self._hosts: dict[str, tuple[int, str]] = {}  # where -> (changes, last thing done)
        self._status_shown = False
        self._stdout_guarded = False

    # --- the interface lab.py and the commands use ---------------------------

    def changed(self, where: str, what: str) -> None:
        """Something was created, started or repaired."""
        with self._lock:
            self.changes += 1
            count, _ = self._hosts.get(where, (0, ""))
            self._hosts[where] = (count + 1, what)
            self._emit(f"[{where}] {what}")

    def info(self, where: str, what: str) -> None:
        with self._lock:
            count, _ = self._hosts.get(where, (0, ""))
            self._hosts[where] = (count, what)
            self._emit(f"[{where}] {what}")

    def warn(self, what: str) -> None:
        """Something the user must know even with -q: always printed."""
        with self._lock:
            self.settle()
            print(f"labctl: warning: {what}", file=self.stream, flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def settle(self) -> None:
        """Erase the status line so other output starts on a clean line."""
        with self._lock:
            if self._status_shown:
                self.stream.write(CLEAR_LINE)
                self.stream.flush()
                self._status_shown = False

    # --- drawing ------------------------------------------------------------------

    def _emit(self, text: str) -> None:
        if self.quiet:
            return
        line = f"{self.elapsed():6.2f}s {text}"
        if self.live and logging.getLogger().isEnabledFor(logging.DEBUG):
            self.live = False  # -v prints every command on stderr: plain lines only
        if not self.live:
            print(line, file=self.stream, flush=True)
            return
        self._guard_stdout()
        self.stream.write(CLEAR_LINE + line + "\n" + self._status_line())
        self.stream.flush()
        self._status_shown = True

    def _status_line(self) -> str:
        """`  0.37s host1 9: bridge br0… | host2 8: port vm2…`, one share of the width per host."""
        width = shutil.get_terminal_size((100, 24)).columns - 1
        share = max((width - 8) // max(len(self._hosts), 1) - 3, 8)
        parts = []
        for where, (count, last) in self._hosts.items():
            part = f"{where} {count}: {last}"
            parts.append(part if len(part) <= share else part[: share - 1] + "…")
        text = f"{self.elapsed():6.2f}s " + " | ".join(parts)
        return text[:width]

    def _guard_stdout(self) -> None:
        """Results and errors printed on the same terminal must not land on the status line."""
        if self._stdout_guarded or self.stream is not sys.stderr:
            return
        self._stdout_guarded = True
        sys.stdout = _SettleFirst(sys.stdout, self)
        sys.stderr = _SettleFirst(sys.stderr, self)  # self.stream keeps the real one
        atexit.register(self.settle)


class _SettleFirst:
    """A stdout that erases the reporter's status line before each write."""

    def __init__(self, inner, reporter: Reporter):
        self._inner, self._reporter = inner, reporter

    def write(self, text: str) -> int:
        self._reporter.settle()
        return self._inner.write(text)

    def __getattr__(self, name):
        return getattr(self._inner, name)
