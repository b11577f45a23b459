"""Run commands on this machine."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from labctl.errors import CommandError
from labctl.transport.base import Completed, Transport


class LocalTransport(Transport):
    def __init__(self, name: str = "local", env: Mapping[str, str] | None = None):
        self.name = name
        self.env = {**os.environ, **(env or {})}

    def describe(self) -> str:
        return "this machine, no SSH"

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """The argv that actually runs; subclasses enter namespaces here."""
        return list(argv)

    def _run(self, argv: tuple[str, ...], *, input: str | None, timeout: float) -> Completed:
        try:
            proc = subprocess.run(
                self.wrap(argv),
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.env,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
        except FileNotFoundError as exc:
            raise CommandError(self.name, argv, 127, f"command not found: {exc.filename}") from None
        except subprocess.TimeoutExpired:
            raise CommandError(self.name, argv, -1, f"timed out after {timeout:g}s") from None
        return Completed(argv, proc.returncode, proc.stdout, proc.stderr)

    def spawn(self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None) -> int:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            try:
                proc = subprocess.Popen(
                    self.wrap([str(a) for a in argv]),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**self.env, **(env or {})},
                    start_new_session=True,
                )
            except FileNotFoundError as exc:
                raise CommandError(self.name, list(argv), 127, f"command not found: {exc.filename}") from None
        return proc.pid

    def interactive(self, argv: Sequence[str]) -> int:
        try:
            return subprocess.run(self.wrap([str(a) for a in argv]), env=self.env).returncode
        except FileNotFoundError as exc:
            raise CommandError(self.name, list(argv), 127, f"command not found: {exc.filename}") from None

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.unlink(missing_ok=True)
        # made with its mode (less the umask), never readable by others for an instant
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as fh:
            fh.write(data)
        tmp.chmod(mode)
        tmp.replace(target)

    def get_file(self, path: str) -> bytes:
        return Path(path).read_bytes()
