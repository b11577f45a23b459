"""Run commands on a real host over SSH (Fabric on Paramiko).

One connection per host, opened on first use and reused for every command of
the labctl run (threads share it: Paramiko multiplexes channels). Host keys
are checked against known_hosts by default; turning that off is an explicit
inventory setting (`known_hosts: off`) and is logged. Authentication is by
key file or by the SSH agent, never by password. When the user is not root,
every command runs under `sudo -n` (the user needs passwordless sudo for the
OVS tools and the hypervisor's CLI).

Failures become one line naming the host, the step and the remote stderr:
unreachable host, refused authentication, unknown host key, a command that is
missing (exit 127) or exits non-zero.
"""

from __future__ import annotations

import base64
import logging
import os
import shlex
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from io import StringIO

from labctl.errors import CommandError, ProvisionError
from labctl.transport.base import Completed, Transport

log = logging.getLogger("labctl.ssh")
CONNECT_TIMEOUT = 10.0


class SshTransport(Transport):
    """Commands on `address` as `user` (root when None: no sudo)."""

    def __init__(
        self,
        name: str,
        address: str,
        *,
        user: str | None = None,
        port: int = 22,
        key: str | None = None,
        known_hosts: str | None = None,
        check_host_key: bool = True,
        env: Mapping[str, str] | None = None,
        host_key: str | None = None,
        open_socket: Callable[[], object] | None = None,
        via: str | None = None,
    ):
        """`host_key`: the one key the host must show (an OpenSSH public key line), instead of
        known_hosts; `open_socket`: makes the connection's socket (a guest's management path,
        reached from its hypervisor host), `via` says where from, in words."""
        self.name, self.address, self.port = name, address, port
        self.host_key, self.open_socket, self.via = host_key, open_socket, via
        self.user = user or "root"
        self.key, self.known_hosts, self.check_host_key = key, known_hosts, check_host_key
        self.env = dict(env or {})
        self.round_trips = 0  # commands sent over this connection (tests and bench count them)
        self._conn = None
        self._lock = threading.Lock()

    # --- connection ---
    def _connection(self):
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            return self._conn

    def _connect(self):
        import paramiko
        from fabric import Connection

        step = f"connect over SSH to {self.user}@{self.address}:{self.port}"
        conn = Connection(
            self.address,
            user=self.user,
            port=self.port,
            connect_timeout=CONNECT_TIMEOUT,
            connect_kwargs={
                "allow_agent": self.key is None,
                "look_for_keys": self.key is None,
                "password": None,
                "banner_timeout": CONNECT_TIMEOUT,
                "auth_timeout": CONNECT_TIMEOUT,
            }
            | ({"key_filename": [os.path.expanduser(self.key)]} if self.key else {}),
        )
        client = conn.client
        if self.host_key:
            kind, blob = self.host_key.split()[:2]
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            client.get_host_keys().add(
                self.address if self.port == 22 else f"[{self.address}]:{self.port}",
                kind,
                paramiko.PKey.from_type_string(kind, base64.b64decode(blob)),
            )
        elif self.check_host_key:
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            if self.known_hosts:
                client.load_host_keys(self.known_hosts)
            else:
                client.load_system_host_keys()
        else:
            log.warning("%s: host key checking is OFF (inventory says known_hosts: off)", self.name)
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            if self.open_socket is not None:
                conn.connect_kwargs["sock"] = self.open_socket()
            conn.open()
        except paramiko.AuthenticationException as exc:
            raise ProvisionError(self.name, step, f"authentication refused ({exc})") from None
        except paramiko.BadHostKeyException:
            raise ProvisionError(
                self.name,
                step,
                "its host key is not the one labctl gave it (another machine at that address?)"
                if self.host_key
                else "the host key differs from known_hosts (a different machine, or it was rebuilt)",
            ) from None
        except paramiko.SSHException as exc:
            text = str(exc)
            if "not found in known_hosts" in text:
                text = (
                    f"host key not in {self.known_hosts or '~/.ssh/known_hosts'}; add it "
                    f"(ssh-keyscan -p {self.port} {self.address}) or set known_hosts: off"
                )
            raise ProvisionError(self.name, step, text) from None
        except OSError as exc:  # refused, no route, timed out
            raise ProvisionError(self.name, step, f"unreachable: {exc.strerror or exc}") from None
        except Exception as exc:  # NoValidConnectionsError and friends: still one line
            raise ProvisionError(self.name, step, str(exc) or type(exc).__name__) from None
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def describe(self) -> str:
        """Says it without connecting: who, where, sudo, and host keys if not checked."""
        out = f"SSH {self.user}@{self.address}:{self.port}"
        if self.via:
            out += f" {self.via}"
        if self.host_key:
            out += ", host key pinned (" + self.host_key.split()[0] + ")"
        if self.user != "root":
            out += ", commands under sudo -n"
        if not self.check_host_key:
            out += ", host key NOT checked (known_hosts: off)"
        return out

    # --- commands ---
    def command_line(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
        """The remote shell line for argv: quoted word by word, with env and sudo as needed."""
        env = {**self.env, **(env or {})}
        words = list(argv)
        if env:
            words = ["env", *(f"{k}={v}" for k, v in env.items()), *words]
        if self.user != "root":
            words = ["sudo", "-n", "--", *words]
        return shlex.join(words)

    def _run(self, argv: tuple[str, ...], *, input: str | None, timeout: float) -> Completed:
        return self._remote(argv, self.command_line(argv), input=input, timeout=timeout)

    def _remote(self, argv: Sequence[str], line: str, *, input: str | None, timeout: float) -> Completed:
        from invoke.exceptions import CommandTimedOut

        conn = self._connection()
        self.round_trips += 1
        try:
            result = conn.run(
                line,
                hide=True,
                warn=True,
                pty=False,
                in_stream=_WholeChunks(input) if input is not None else False,
                timeout=timeout,
            )
        except CommandTimedOut:
            raise CommandError(self.name, argv, -1, f"timed out after {timeout:g}s") from None
        except Exception as exc:  # a dropped connection mid-command
            raise CommandError(self.name, argv, -1, f"SSH failed: {exc}") from None
        stderr = result.stderr
        if result.exited == 127 and not stderr.strip():
            stderr = f"command not found: {argv[0]}"
        if result.exited == 1 and self.user != "root" and "sudo:" in stderr and "password" in stderr:
            stderr = f"{self.user} needs passwordless sudo on {self.address}: {stderr.strip()}"
        return Completed(tuple(argv), result.exited, result.stdout, stderr)

    def interactive(self, argv: Sequence[str]) -> int:
        """argv on the host with this terminal: a pty when stdin is one (labctl shell), else
        stdout and stderr apart and no stdin (labctl exec in a script); its exit code."""
        tty = sys.stdin.isatty()
        conn = self._connection()
        try:
            result = conn.run(
                self.command_line(argv), hide=False, warn=True, pty=tty, in_stream=sys.stdin if tty else False
            )
        except Exception as exc:  # a dropped connection
            raise CommandError(self.name, tuple(argv), -1, f"SSH failed: {exc}") from None
        return result.exited

    def open_stream(self, argv: Sequence[str], step: str):
        """A channel running argv as the SSH user itself (no sudo, no env), its stdin and
        stdout a byte stream: how labctl reaches libvirt on the host
        (drivers/libvirt_tunnel.py). Connection failures are one line naming the host."""
        conn = self._connection()
        self.round_trips += 1
        try:
            channel = conn.client.get_transport().open_session(timeout=CONNECT_TIMEOUT)
            channel.exec_command(shlex.join(argv))
        except Exception as exc:  # the server refused the channel, or the connection dropped
            detail = str(exc) or type(exc).__name__
            raise ProvisionError(self.name, step, f"SSH channel refused: {detail}") from None
        return channel

    def spawn(self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None) -> int:
        inner = self.command_line(argv, env)
        script = (
            f"mkdir -p {shlex.quote(_parent(log_path))} && "
            f"nohup setsid {inner} >>{shlex.quote(log_path)} 2>&1 </dev/null & echo $!"
        )
        result = self._remote(["spawn", *argv], f"sh -c {shlex.quote(script)}", input=None, timeout=30)
        if not result.ok:
            raise CommandError(self.name, argv, result.returncode, result.stderr)
        return int(result.stdout.strip().splitlines()[-1])

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        tmp = f"{path}.tmp"
        script = (
            # umask 077: a private file (a seed with a host key) is never readable by others
            f"mkdir -p {shlex.quote(_parent(path))} && umask 077 && base64 -d > {shlex.quote(tmp)} && "
            f"chmod {mode:o} {shlex.quote(tmp)} && mv {shlex.quote(tmp)} {shlex.quote(path)}"
        )
        self.run(["sh", "-c", script], input=base64.b64encode(data).decode() + "\n")

    def get_file(self, path: str) -> bytes:
        return base64.b64decode(self.run(["base64", path]).stdout)


class _WholeChunks(StringIO):
    """A command's stdin for Fabric in chunks. invoke reads a stream that is not a terminal
    one byte per read and sleeps 10 ms between reads: 100 bytes/s, so a seed of a few
    hundred kB (put_file) never arrived within its timeout."""

    CHUNK = 64 * 1024

    def read(self, size: int | None = -1) -> str:
        return super().read(self.CHUNK if size is not None and size >= 0 else size)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/" if "/" in path else "."
