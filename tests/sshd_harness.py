"""A real OpenSSH sshd playing a remote host, for the SSH tests.

sshd runs in a network namespace the test creates, reached over a veth pair the test
creates (198.18.x.y, the benchmarking range: never a real network), with a throwaway
host key and a throwaway client key. It gets a private mount namespace with a tmpfs on
/run (its privilege separation directory must exist), so the machine's /run is
untouched; `setup` is more shell run there first (a host's own daemons: OVS, libvirtd).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from labctl.transport.ssh import SshTransport
from tests.conftest import processes_in

READY_SECONDS = 30  # a loaded 2-core machine: readiness, not a timed assertion


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


class Sshd:
    """sshd in namespace `netns`, listening on `address`:22."""

    def __init__(self, tmp: Path, prefix: str = "lc-tssh"):
        tag = uuid.uuid4().hex[:6]
        self.netns = f"{prefix}{tag}"
        self.tmp = tmp
        self.subnet = int(tag[:2], 16)  # 198.18.<subnet>.0/30
        self.address = f"198.18.{self.subnet}.2"
        self.local_address = f"198.18.{self.subnet}.1"
        self.veth = f"lcs{tag}"
        self.proc: subprocess.Popen | None = None
        self.client_key = tmp / "id_ed25519"
        self.host_key = tmp / "ssh_host_ed25519_key"
        self.known_hosts = tmp / "known_hosts"

    def start(self, setup: str = "") -> None:
        sh("ip", "netns", "add", self.netns)
        sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        sh("ip", "addr", "add", f"{self.local_address}/30", "dev", self.veth)
        sh("ip", "link", "set", self.veth, "up")
        sh("ip", "-n", self.netns, "addr", "add", f"{self.address}/30", "dev", "eth0")
        sh("ip", "-n", self.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key))
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.client_key))
        (self.tmp / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        public = Path(f"{self.host_key}.pub").read_text().split()
        self.known_hosts.write_text(f"{self.address} {public[0]} {public[1]}\n")
        config = self.tmp / "sshd_config"
        config.write_text(
            f"ListenAddress {self.address}\nPort 22\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.tmp}/authorized_keys\nStrictModes no\nUsePAM no\n"
            f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nPidFile none\n"
            "LogLevel ERROR\nMaxSessions 64\n"
        )
        script = (
            "mount -t tmpfs lc-sshd-run /run && mkdir -m 755 /run/sshd && "
            + (f"{setup} && " if setup else "")
            + f"exec /usr/sbin/sshd -D -e -f {config}"
        )
        self.log = open(self.tmp / "sshd.log", "wb")  # noqa: SIM115 - open while sshd runs
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation", "private"]
            + ["sh", "-c", script],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_until_it_answers()

    def wait_until_it_answers(self) -> None:
        """Until a TCP connection to port 22 gets sshd's banner: listening is not enough
        under load (the first connection could still time out in its banner)."""
        deadline = time.monotonic() + READY_SECONDS
        while True:
            assert self.proc is not None and self.proc.poll() is None, self.last_words()
            try:
                with socket.create_connection((self.address, 22), timeout=2) as probe:
                    if probe.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"sshd did not answer on {self.address}:22: {self.last_words()}")
            time.sleep(0.05)

    def last_words(self) -> str:
        path = self.tmp / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else "no log"

    def on_host(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """A command on the host as its own console would run it (its mount and network namespace)."""
        assert self.proc is not None
        return subprocess.run(
            ["nsenter", "-t", str(self.proc.pid), "-m", "-n", *argv],
            capture_output=True,
            text=True,
            check=check,
        )

    def stop(self) -> None:
        """sshd and everything else that runs in the namespace (the setup's daemons), by PID."""
        try:
            inode = os.stat(f"/run/netns/{self.netns}").st_ino
        except OSError:
            inode = None
        if inode is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in processes_in({inode}):  # only processes in the test's own namespace
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + 10
                while processes_in({inode}) and time.monotonic() < deadline:
                    time.sleep(0.05)
        if self.proc is not None:
            self.proc.wait(timeout=10)
            self.log.close()
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)  # takes the veth along

    def transport(self, **kwargs) -> SshTransport:
        options = {"key": str(self.client_key), "known_hosts": str(self.known_hosts)} | kwargs
        return SshTransport("hostA", self.address, **options)
