"""A real libvirtd inside a simulated host: in the host's network namespace, with a
private mount namespace of its own.

libvirt's QEMU driver keeps its state in fixed places (/run/libvirt, /var/lib/libvirt,
/var/log/libvirt, /etc/libvirt), and for `<virtualport type='openvswitch'/>` it runs
plain `ovs-vsctl`, which talks to /run/openvswitch/db.sock (libvirt does not pass
OVS_RUNDIR on). So the daemon is started under `unshare --mount`, where those places
are directories of the host in the lab's state (DIR = <state>/<lab>/hosts/<host>/libvirt):

    DIR/run  on /run           with the host's OVS run directory on /run/openvswitch
    DIR/var  on /var           (/var/lib/libvirt, /var/log/libvirt, ...; /var/run -> /run)
    DIR/etc  on /etc/libvirt   libvirtd.conf and qemu.conf, written by labctl

Nothing is mounted in this machine's own mount namespace, and the mounts go away
with the last process of the daemon's. qemu.conf runs QEMU as root with no security
driver, no cgroups and no virtlogd (the console goes to a file), so nothing outside
DIR is needed. Clients connect from outside through DIR/run/libvirt/libvirt-sock.

The daemon is journalled before it starts and stopped by its PID; the QEMU processes
it starts live in the host's network namespace, so `down` stops them with the host's
other processes even when nothing else is left to ask.
"""

from __future__ import annotations

import time
from pathlib import Path

from labctl.drivers.libvirt_guests import open_libvirt
from labctl.errors import ProvisionError
from labctl.processes import ProcessId, alive, identify, named_netns_inode, netns_inode, read_pidfile
from labctl.transport.netns import NetnsTransport

START_SECONDS = 60  # libvirtd probes QEMU's capabilities on its first start: a few seconds
SOCKET_PATH_MAX = 107  # sun_path, less its terminating NUL

LIBVIRTD_CONF = """\
# written by labctl: this libvirtd serves one simulated host of one lab, over its unix socket
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""
QEMU_CONF = """\
# written by labctl: QEMU as root, no security driver, no cgroups, no virtlogd
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
"""
# Run in the new mount namespace, before libvirtd: the bind sources are read before
# /run is covered (the lab's state may live under /run). $1 the host's OVS run
# directory, $2 DIR. Fixed text; the paths come in as arguments, never spliced in.
MOUNTS = (
    'mount --bind "$1" "$2/run/openvswitch" && '
    'mount --bind "$2/var" /var && '
    'mount --bind "$2/etc" /etc/libvirt && '
    'mount --rbind "$2/run" /run && '
    "exec libvirtd --pid-file /run/libvirtd.pid"
)


class Libvirtd:
    """One simulated host's libvirtd: where its files are, whether it runs, how to start it."""

    def __init__(self, host: str, netns: str, host_dir: str):
        self.host, self.netns = host, netns
        self.dir = f"{host_dir}/libvirt"
        self.ovs_rundir = host_dir
        self.socket = f"{self.dir}/run/libvirt/libvirt-sock"
        self.pidfile = f"{self.dir}/run/libvirtd.pid"
        self.log = f"{self.dir}/libvirtd.out"
        self.uri = f"qemu+unix:///system?socket={self.socket}"

    def process(self) -> ProcessId | None:
        return running(self.pidfile, self.netns)

    def argv(self) -> list[str]:
        """What runs inside the host's network namespace (NetnsTransport adds `ip netns exec`)."""
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            MOUNTS,
            "libvirtd",
            self.ovs_rundir,
            self.dir,
        ]

    def write_files(self) -> None:
        """The directories the mounts need, and the configuration."""
        if len(self.socket.encode()) > SOCKET_PATH_MAX:
            raise ProvisionError(
                self.host,
                "start libvirtd",
                f"its socket path would be {len(self.socket.encode())} bytes, more than a unix socket "
                f"takes ({SOCKET_PATH_MAX}): use a shorter LABCTL_STATE_DIR",
            )
        base = Path(self.dir)
        for sub in (
            "run/openvswitch",
            "run/libvirt",
            "var/lib/libvirt",
            "var/cache/libvirt",
            "var/log/libvirt",
            "var/tmp",
            "etc",
        ):
            (base / sub).mkdir(parents=True, exist_ok=True)
        if not (base / "var/run").is_symlink():
            (base / "var/run").symlink_to("/run")
        (base / "etc/libvirtd.conf").write_text(LIBVIRTD_CONF)
        (base / "etc/qemu.conf").write_text(QEMU_CONF)

    def start(self, transport: NetnsTransport) -> ProcessId:
        """Start it (the caller has journalled it) and wait until its socket answers."""
        self.write_files()  # a stale pidfile stays: libvirtd takes it over by its lock
        pid = transport.spawn(self.argv(), log_path=self.log)
        proc = identify(pid) or ProcessId(pid, -1)
        self.wait_ready(proc)
        return proc

    def wait_ready(self, proc: ProcessId) -> None:
        """Until a client gets an answer over the socket (readiness, bounded)."""
        deadline = time.monotonic() + START_SECONDS
        while True:
            if not alive(proc):
                raise ProvisionError(self.host, "start libvirtd", f"it exited: {self.last_words()}")
            if Path(self.socket).exists():
                try:
                    open_libvirt(self.uri, self.host).close()
                    return
                except ProvisionError:
                    pass
            if time.monotonic() > deadline:
                raise ProvisionError(
                    self.host,
                    "start libvirtd",
                    f"no answer on {self.socket} after {START_SECONDS} s: {self.last_words()}",
                )
            time.sleep(0.1)

    def last_words(self) -> str:
        """The last line libvirtd wrote, for an error message."""
        for path in (self.log, f"{self.dir}/var/log/libvirt/libvirtd.log"):
            try:
                lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
            except OSError:
                continue
            if lines:
                return f"{lines[-1].strip()} (see {path})"
        return f"no output (see {self.log})"


def running(pidfile: str, netns: str) -> ProcessId | None:
    """The libvirtd of a host: its pidfile's PID, alive and inside the host's namespace."""
    pid = read_pidfile(pidfile)
    proc = identify(pid) if pid else None
    inode = named_netns_inode(netns)
    if proc is None or inode is None or netns_inode(proc.pid) != inode:
        return None
    return proc
