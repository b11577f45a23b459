"""Run commands inside a real guest over its management path, from its hypervisor host.

The guest's second NIC sits on a management bridge of the hypervisor host (never the
lab's br0), and the guest runs a one-command-per-request runner bound to that address
only (scripts/build-guest.sh: busybox httpd, cgi-bin/run). labctl posts the
shell-quoted argv with curl from inside the hypervisor host's namespace; the answer is
"RC STDOUT_BYTES", a newline, stdout, then stderr. The exit code is passed through.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence

from labctl.errors import ProvisionError
from labctl.transport.base import Completed, Transport

PORT = 8080
UNREACHABLE = 255  # as ssh says it could not get there


def parse_answer(raw: bytes) -> tuple[int, str, str] | None:
    """(exit code, stdout, stderr) from the runner's answer; None when it is not one."""
    head, newline, rest = raw.partition(b"\n")
    fields = head.split()
    if not newline or len(fields) != 2 or not all(f.isdigit() for f in fields):
        return None
    code, size = int(fields[0]), int(fields[1])
    return code, rest[:size].decode(errors="replace"), rest[size:].decode(errors="replace")


class GuestTransport(Transport):
    def __init__(self, name: str, netns: str, address: str):
        self.name, self.netns, self.address = name, netns, address

    def describe(self) -> str:
        return f"{self.address}:{PORT} (management path) from namespace {self.netns}"

    def unreachable(self) -> str | None:
        """None when the guest's runner answers; else why not, in a few words."""
        result = self.run(["true"], check=False, timeout=10)
        return None if result.ok else result.stderr.strip() or f"exit {result.returncode}"

    def _client(self, timeout: float) -> list[str]:
        return [
            "ip", "netns", "exec", self.netns, "curl", "-sS", "--noproxy", "*",
            "--connect-timeout", "3", "--max-time", f"{timeout:g}",
            "--data-binary", "@-", f"http://{self.address}:{PORT}/cgi-bin/run",
        ]  # fmt: skip

    def _run(self, argv: tuple[str, ...], *, input: str | None, timeout: float) -> Completed:
        if input is not None:
            argv = ("sh", "-c", f"printf %s {shlex.quote(input)} | {shlex.join(argv)}")
        try:
            done = subprocess.run(
                self._client(timeout),
                input=shlex.join(argv).encode(),
                capture_output=True,
                timeout=timeout + 5,
            )
        except subprocess.TimeoutExpired:
            return Completed(argv, UNREACHABLE, "", f"no answer from {self.describe()} in {timeout:g} s")
        answer = parse_answer(done.stdout) if done.returncode == 0 else None
        if answer is None:
            why = done.stderr.decode(errors="replace").strip() or "not the guest's runner answering"
            return Completed(argv, UNREACHABLE, "", f"real guest, unreachable at {self.describe()}: {why}")
        return Completed(argv, *answer)

    def spawn(self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None) -> int:
        raise ProvisionError(
            self.name, "start a process", "the guest's runner runs commands to completion only"
        )

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        text = data.decode()
        self.run(["sh", "-c", f"cat > {shlex.quote(path)} && chmod {mode:o} {shlex.quote(path)}"], input=text)

    def get_file(self, path: str) -> bytes:
        return self.run(["cat", path]).stdout.encode()

    def interactive(self, argv: Sequence[str]) -> int:
        """Not a terminal: the command runs to completion, its output is printed after."""
        import sys

        result = self.run(argv, check=False, timeout=600)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        return result.returncode
