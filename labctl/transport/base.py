"""The transport interface: run an argv, start a background process, put/get a file."""

from __future__ import annotations

import logging
import shlex
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from labctl.errors import CommandError

log = logging.getLogger("labctl.commands")


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Transport(ABC):
    """A way to run commands on one host. `name` appears in every error."""

    name: str

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> Completed:
        """Run argv to completion; raise CommandError on non-zero exit when `check`."""
        argv = tuple(str(a) for a in argv)
        result = self._run(argv, input=input, timeout=timeout)
        log.debug("%s: %s -> %d", self.name, shlex.join(argv), result.returncode)
        if check and result.returncode != 0:
            raise CommandError(self.name, argv, result.returncode, result.stderr or result.stdout)
        return result

    @abstractmethod
    def _run(self, argv: tuple[str, ...], *, input: str | None, timeout: float) -> Completed: ...

    @abstractmethod
    def spawn(self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None) -> int:
        """Start a long-running process detached from us, output to log_path; return its PID."""

    @abstractmethod
    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None: ...

    @abstractmethod
    def get_file(self, path: str) -> bytes: ...

    def interactive(self, argv: Sequence[str]) -> int:
        """Run argv attached to this terminal (labctl exec/shell); return its exit code."""
        raise NotImplementedError(f"{type(self).__name__} cannot run commands interactively")

    def shell_argv(self) -> list[str]:
        """The shell `labctl shell` starts here; empty: this machine's $SHELL."""
        return []

    def describe(self) -> str:
        """How commands reach the host, in words (`labctl plan`)."""
        return self.name

    def netns_path(self) -> str | None:
        """The network namespace of this machine the commands run in, if they run in one
        here: verify opens its sockets there instead of starting a ping program."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (SSH); nothing to do for local transports."""
