"""Commands to an OVS daemon over its control socket, without starting `ovs-appctl`.

`ovs-appctl CMD ARGS` sends one JSON-RPC request over the daemon's unix socket and
prints the result. A simulated host's socket is a file on this machine, so labctl can
talk to it directly, and send many commands over one connection: a mesh of 64 hosts
seeds 4032 tunnel neighbours, which as ovs-appctl runs cost a process each.
"""

from __future__ import annotations

import codecs
import json
import os
import socket
from collections.abc import Sequence

from labctl.errors import CommandError

TIMEOUT_S = 10.0


SUN_PATH_MAX = 107  # sockaddr_un's sun_path holds 108 bytes, the last a NUL


def _connect(sock: socket.socket, path: str) -> None:
    """Connect to the socket at `path`, however long the path: a path sockaddr_un cannot
    hold (a lab's state directory deep in a temporary directory) is reached through the
    directory's file descriptor, /proc/self/fd/N/NAME, as OVS's own tools do."""
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        sock.connect(path)
        return
    directory, name = os.path.split(path)
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        sock.connect(f"/proc/self/fd/{fd}/{name}")
    finally:
        os.close(fd)


class Unixctl:
    """One connection to a daemon's control socket; `call` as often as needed."""

    def __init__(self, path: str, name: str = "ovs", timeout: float = TIMEOUT_S):
        self.path, self.name = path, name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            _connect(self.sock, path)
        except OSError as exc:
            self.sock.close()
            raise CommandError(name, ["unixctl", path], 1, f"cannot connect: {exc.strerror or exc}") from None
        self.buffer, self.ids = "", 0
        self.decoder = json.JSONDecoder()
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def call(self, method: str, *params: str) -> str:
        """The daemon's answer (what ovs-appctl would print); CommandError when it says no."""
        self.ids += 1
        request = {"id": self.ids, "method": method, "params": list(params)}
        argv = ["ovs-appctl", method, *params]
        try:
            self.sock.sendall(json.dumps(request).encode())
            reply = self._reply()
        except OSError as exc:
            raise CommandError(self.name, argv, 1, f"control socket: {exc.strerror or exc}") from None
        if reply.get("error") is not None:
            raise CommandError(self.name, argv, 2, str(reply["error"]))
        return str(reply.get("result") or "")

    def _reply(self) -> dict:
        while True:
            text = self.buffer.lstrip()
            if text:
                try:
                    message, end = self.decoder.raw_decode(text)
                except json.JSONDecodeError:
                    message = None  # not all of it has arrived yet
                if message is not None:
                    self.buffer = text[end:]
                    if message.get("id") == self.ids:
                        return message
                    continue  # a notification, or an answer we no longer wait for
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("the daemon closed the connection")
            self.buffer += self.utf8.decode(chunk)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Unixctl:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def call_all(path: str, commands: Sequence[Sequence[str]], name: str = "ovs") -> list[str]:
    """Several commands over one connection, in order."""
    with Unixctl(path, name) as ctl:
        return [ctl.call(command[0], *command[1:]) for command in commands]
