"""Progress lines per host on stderr: `[host1] bridge br0 created (0.21s)`.

Plain lines work in CI logs and terminals alike; `-q` keeps only errors.
"""

from __future__ import annotations

import sys
import threading
import time


class Reporter:
    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.changes = 0
        self._lock = threading.Lock()

    def _emit(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            print(f"{time.monotonic() - self.start:6.2f}s {text}", file=self.stream, flush=True)

    def changed(self, where: str, what: str) -> None:
        """Something was created, started or repaired."""
        with self._lock:
            self.changes += 1
        self._emit(f"[{where}] {what}")

    def info(self, where: str, what: str) -> None:
        self._emit(f"[{where}] {what}")

    def elapsed(self) -> float:
        return time.monotonic() - self.start
