"""libvirt on a real KVM host, tunnelled over labctl's own SSH connection to it.

libvirt's `qemu+ssh://` runs the system `ssh`, which knows nothing of the host's access
settings: a `known_hosts:` file is not read, `known_hosts: off` is not passed on, and
it may ask for a password or a host key on a terminal, from a worker thread. So
labctl does what `qemu+ssh` does at the far end over the connection its commands
already use (transport/ssh.py: the key, user, port and host-key policy of the
inventory, no terminal): a channel runs `virt-ssh-helper URI` on the host (libvirt 6.8
and later), else `nc -U` on the system daemon's socket, as libvirt's own client does
(src/rpc/virnetclient.c, virNetClientSSHHelperCommand). Its near end is handed to
libvirt-python as a unix socket: `qemu+unix:///system?socket=PATH`.

The socket lives in a fresh directory only this user can enter (mkdtemp: 0700; the
socket itself 0600), and only until libvirt has connected: the bridge thread accepts
that one connection, removes the socket and its directory at once, then copies bytes
both ways until either side closes. Each libvirt connection gets its own channel;
closing it, a failed open, or the SSH connection going away ends the thread and the
channel, and nothing is left on disk.

The helper runs as the SSH user, never under sudo (as with libvirt's qemu+ssh): a user
other than root needs libvirt's own permission on the system daemon (docs/drivers.md).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import shutil
import socket
import tempfile
import threading
import weakref
from urllib.parse import urlsplit

from labctl.errors import ProvisionError
from labctl.transport.base import Transport
from labctl.transport.ssh import SshTransport

# What libvirt's client connects to for qemu:///system when the host has no
# virt-ssh-helper (libvirt before 6.8: the monolithic libvirtd).
SYSTEM_SOCKET = "/var/run/libvirt/libvirt-sock"
NO_HELPER = "labctl-libvirt-tunnel: neither virt-ssh-helper nor nc is installed"
# Fixed text, run by `sh -c` on the host; the URI ($1) and the fallback socket ($2) come
# in as arguments, never spliced in. `nc -q0` (where nc knows -q) makes it exit when
# its input ends, as libvirt's own probe does.
HELPER_SCRIPT = (
    'if command -v virt-ssh-helper >/dev/null 2>&1; then exec virt-ssh-helper "$1"; fi; '
    'if [ -n "$2" ] && command -v nc >/dev/null 2>&1; then '
    'if nc -q 2>&1 | grep "requires an argument" >/dev/null 2>&1; then exec nc -q0 -U "$2"; fi; '
    'exec nc -U "$2"; fi; '
    f'echo "{NO_HELPER}" >&2; exit 127'
)
ACCEPT_SECONDS = 30  # libvirt connects at once; this only bounds a client that never does
CHUNK = 65536
SETUP_HINT = (
    "sudo does not apply to the libvirt connection: add {user} to the group that owns "
    "libvirt's socket (libvirt on Debian and Ubuntu) or allow org.libvirt.unix.manage "
    "to {user} in polkit (docs/drivers.md)"
)


def is_plain(uri: str) -> bool:
    """A URI that names a libvirt driver on the host itself (`qemu:///system`): no
    server part, no transport. Such a URI is reached through the tunnel; any other
    (`qemu+tls://…`, `qemu+ssh://…`) is libvirt's own business, used as given."""
    parts = urlsplit(uri)
    return "+" not in parts.scheme and not parts.netloc


def tunnel_for(uri: str, transport: Transport) -> SshTransport | None:
    """The SSH connection to tunnel `uri` over: the host's, when it is reached over SSH
    and the URI names the host's own libvirt; None to hand the URI to libvirt as it is."""
    return transport if isinstance(transport, SshTransport) and is_plain(uri) else None


def helper_argv(uri: str) -> list[str]:
    """What the channel runs on the host: the helper for `uri`, or nc on the system socket."""
    fallback = SYSTEM_SOCKET if urlsplit(uri).path == "/system" else ""
    return ["sh", "-c", HELPER_SCRIPT, "labctl-libvirt-tunnel", uri, fallback]


def local_uri(uri: str, socket_path: str) -> str:
    """`qemu:///system` as libvirt-python reaches it through the socket at socket_path."""
    parts = urlsplit(uri)
    query = f"{parts.query}&" if parts.query else ""
    return f"{parts.scheme}+unix://{parts.path}?{query}socket={socket_path}"


def describe(uri: str, transport: SshTransport) -> str:
    """Where the libvirt connection goes, in words (plan, doctor, errors)."""
    return f"{uri} on {transport.user}@{transport.address}:{transport.port}, over labctl's SSH connection"


def explain(libvirt_message: str, far_end: str, user: str) -> str:
    """One line for a failed open: what the helper on the host said, and what to do."""
    lines = [line.strip() for line in far_end.splitlines() if line.strip()]
    said = lines[-1] if lines else ""
    if NO_HELPER in far_end:
        return (
            "neither virt-ssh-helper (libvirt 6.8 or later, package libvirt-daemon) nor nc is "
            "installed on the host: labctl needs one of them to reach libvirt over SSH"
        )
    denied = "Permission denied" in far_end or "Permission denied" in libvirt_message
    if denied or "org.libvirt.unix.manage" in libvirt_message or "polkit" in libvirt_message:
        return f"{user} may not manage the system libvirtd ({said or libvirt_message}); " + SETUP_HINT.format(
            user=user
        )
    if said and "No such file or directory" in said:
        return f"{said} (is libvirtd running on the host?)"
    return said or libvirt_message


# Every connection opened here, to close before the interpreter exits: left to the garbage
# collector during finalization, libvirt's close of a connection whose tunnel is gone
# already (the SSH connection was closed first) never returns.
_connections: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_connections() -> None:
    for conn in list(_connections):
        with contextlib.suppress(Exception):
            conn.close()


def open_over_ssh(transport: SshTransport, uri: str, host: str):
    """A libvirt connection to `uri` on the host, over the host's SSH connection.
    Raises ProvisionError, one line naming the host and what failed."""
    import libvirt

    step = f"connect to libvirt {describe(uri, transport)}"
    # SSH first, in this thread: a refused key or an unknown host key is its own line
    channel = transport.open_stream(helper_argv(uri), step)
    try:
        bridge = Bridge(channel, host)
    except OSError as exc:
        raise ProvisionError(host, step, f"cannot make the local socket: {exc}") from None
    try:
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors are raised, not printed
        try:
            conn = libvirt.open(local_uri(uri, bridge.socket_path))
            _connections.add(conn)
            return conn
        except libvirt.libvirtError as exc:
            bridge.connected_or_abandoned()
            bridge.finished.wait(5)  # the helper's last words, when it was the far end that quit
            raise ProvisionError(
                host, step, explain(exc.get_error_message(), bridge.far_end(), transport.user)
            ) from None
    finally:
        bridge.connected_or_abandoned()


class Bridge:
    """One libvirt connection: a listening socket libvirt connects to once, and a thread
    that copies between that connection and the SSH channel until either ends."""

    def __init__(self, channel, host: str):
        self.channel, self.host = channel, host
        self.finished = threading.Event()
        self._stderr = bytearray()
        self._lock = threading.Lock()
        try:
            self.directory = tempfile.mkdtemp(prefix="labctl-libvirt-")
        except OSError:
            channel.close()
            raise
        self.socket_path = os.path.join(self.directory, "sock")
        self._listener: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._listener.bind(self.socket_path)
            os.chmod(self.socket_path, 0o600)
            self._listener.listen(1)
            self._listener.settimeout(ACCEPT_SECONDS)
        except OSError:
            self._close_listener()
            channel.close()
            raise
        self.thread = threading.Thread(target=self._run, name=f"labctl-libvirt-tunnel-{host}", daemon=True)
        self.thread.start()

    def far_end(self) -> str:
        """What the helper wrote to its stderr."""
        with self._lock:
            return self._stderr.decode(errors="replace")

    def _close_listener(self) -> None:
        """The socket file and its directory go as soon as libvirt is connected (or gave up)."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes an accept() waiting in the bridge thread
            listener.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    def connected_or_abandoned(self) -> None:
        """Called once libvirt.open has returned or failed: no further client will come."""
        self._close_listener()

    def _run(self) -> None:
        conn = None
        try:
            listener = self._listener
            if listener is not None:
                with contextlib.suppress(OSError):  # closed, or timed out: nobody connected
                    conn, _ = listener.accept()
            self._close_listener()
            if conn is not None:
                self._pump(conn)
        except Exception:  # noqa: BLE001 - a dropped SSH connection or a closed socket ends the bridge,
            pass  # and libvirt sees its end of file; a worker thread never prints a traceback
        finally:
            # also after the SSH connection went away under us: paramiko may raise on a
            # channel whose transport is gone, and a worker thread must not print a traceback
            with contextlib.suppress(Exception):
                self._drain_stderr()
            with contextlib.suppress(Exception):
                self.channel.close()
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self.finished.set()

    def _pump(self, conn: socket.socket) -> None:
        channel = self.channel
        while True:
            readable, _, _ = select.select([conn, channel], [], [])
            if channel in readable:
                self._drain_stderr()
                while channel.recv_ready():
                    data = channel.recv(CHUNK)
                    if not data:
                        break
                    conn.sendall(data)
                if channel.closed or (channel.eof_received and not channel.recv_ready()):
                    return  # the helper ended: libvirt sees its end of file once we close
            if conn in readable:
                try:
                    data = conn.recv(CHUNK)
                except OSError:
                    data = b""
                if not data:
                    return  # libvirt closed the connection
                channel.sendall(data)

    def _drain_stderr(self) -> None:
        while self.channel.recv_stderr_ready():
            data = self.channel.recv_stderr(CHUNK)
            if not data:
                break
            with self._lock:  # its last words are what matter: keep the last 4 KiB
                self._stderr = (self._stderr + data)[-4096:]
