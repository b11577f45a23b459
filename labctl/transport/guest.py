"""Run commands inside a real guest: SSH on its management path, from its hypervisor host.

The guest's second NIC sits on a management network of its hypervisor host (never the
lab's br0), with the address its NoCloud seed gave it; its SSH server listens there
only. labctl logs in as root with the lab's key (guest_keys.py) and expects the host
key the seed gave the guest: no known_hosts, no trust on first use. The TCP connection
is made from the hypervisor host, by `open_socket`:

- a simulated host: from inside its network namespace (netns.connect_in_netns);
- a real host: a direct-tcpip channel over labctl's SSH connection to it (as
  `ssh -J host`), `through_ssh_host` below;
- a real host at `localhost` (this machine is the hypervisor host): a plain TCP
  connection, `direct`.

exec, verify and shell use it as any other SSH transport.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from labctl.errors import CommandError, ProvisionError
from labctl.transport.base import Completed
from labctl.transport.netns import connect_in_netns
from labctl.transport.ssh import SshTransport

SSH_PORT = 22
UNREACHABLE = 255  # as ssh(1) says it could not get there


class GuestSsh(SshTransport):
    def __init__(self, name: str, address: str, *, key: Path, host_key: str, open_socket: Callable, via: str):
        super().__init__(
            name, address, user="root", key=str(key), host_key=host_key, open_socket=open_socket, via=via
        )

    def _run(self, argv: tuple[str, ...], *, input: str | None, timeout: float) -> Completed:
        """A guest not answering (yet: it may still be booting) is an exit code, 255 as
        ssh(1) gives it, not an error: wait-for and verify ask again or report it."""
        try:
            return super()._run(argv, input=input, timeout=timeout)
        except ProvisionError as exc:
            return Completed(argv, UNREACHABLE, "", exc.detail)

    def shell_argv(self) -> list[str]:
        return ["/bin/sh"]  # a guest has its own shells, not necessarily this machine's $SHELL

    def unreachable(self) -> str | None:
        """None when the guest answers over SSH; else why not, in a few words."""
        try:
            result = self.run(["true"], check=False, timeout=10)
        except CommandError as exc:  # the connection dropped, or the command timed out
            return str(exc)
        return None if result.ok else result.stderr.strip() or f"exit {result.returncode}"


def from_netns(name: str, netns: str, address: str, *, key: Path, host_key: str) -> GuestSsh:
    return GuestSsh(
        name,
        address,
        key=key,
        host_key=host_key,
        open_socket=lambda: connect_in_netns(netns, address, SSH_PORT),
        via=f"(management path) from namespace {netns}",
    )


def through_ssh_host(name: str, host: SshTransport, address: str, *, key: Path, host_key: str) -> GuestSsh:
    """A guest of a real hypervisor host, reached through labctl's SSH connection to it."""

    def open_channel():
        transport = host._connection().client.get_transport()
        return transport.open_channel("direct-tcpip", (address, SSH_PORT), ("127.0.0.1", 0))

    return GuestSsh(
        name, address, key=key, host_key=host_key, open_socket=open_channel, via=f"through {host.describe()}"
    )


def direct(name: str, address: str, *, key: Path, host_key: str) -> GuestSsh:
    """A guest of this machine's own hypervisor (a kvm host at `localhost`)."""
    return GuestSsh(
        name,
        address,
        key=key,
        host_key=host_key,
        open_socket=lambda: socket.create_connection((address, SSH_PORT), timeout=10),
        via="(management path) from this machine",
    )
