"""The SSH transport against a real sshd.

Each test starts OpenSSH's sshd with a throwaway host key and a throwaway
client key, inside a namespace the test creates and reaches over a veth pair
the test creates (198.18.x.y, the benchmarking range: never a real network).
sshd gets a private /run (its privilege separation directory must exist) in
its own mount namespace, so the machine's /run is untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from labctl.drivers.sim import start_ovs_daemons
from labctl.errors import CommandError, ProvisionError
from labctl.ovs import AddBridge, AddPort, Ovs, SetController, pending
from labctl.processes import read_pidfile
from labctl.transport.netns import ovs_env
from labctl.transport.ssh import SshTransport

pytestmark = pytest.mark.lab


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


class Sshd:
    """sshd in namespace `netns`, listening on `address`:22."""

    def __init__(self, tmp: Path):
        tag = uuid.uuid4().hex[:6]
        self.netns = f"lc-tssh{tag}"
        self.tmp = tmp
        self.subnet = int(tag[:2], 16)  # 198.18.<subnet>.0/30
        self.address = f"198.18.{self.subnet}.2"
        self.local_address = f"198.18.{self.subnet}.1"
        self.veth = f"lcs{tag}"
        self.proc: subprocess.Popen | None = None
        self.client_key = tmp / "id_ed25519"
        self.known_hosts = tmp / "known_hosts"

    def start(self) -> None:
        _sh("ip", "netns", "add", self.netns)
        _sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        _sh("ip", "addr", "add", f"{self.local_address}/30", "dev", self.veth)
        _sh("ip", "link", "set", self.veth, "up")
        _sh("ip", "-n", self.netns, "addr", "add", f"{self.address}/30", "dev", "eth0")
        _sh("ip", "-n", self.netns, "link", "set", "eth0", "up")
        _sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        host_key = self.tmp / "ssh_host_ed25519_key"
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.client_key))
        (self.tmp / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        public = Path(f"{host_key}.pub").read_text().split()
        self.known_hosts.write_text(f"{self.address} {public[0]} {public[1]}\n")
        config = self.tmp / "sshd_config"
        config.write_text(
            f"ListenAddress {self.address}\nPort 22\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {self.tmp}/authorized_keys\nStrictModes no\nUsePAM no\n"
            f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nPidFile none\n"
            "LogLevel ERROR\n"
        )
        script = (
            "mount -t tmpfs lc-sshd-run /run && mkdir -m 755 /run/sshd && "
            f"exec /usr/sbin/sshd -D -e -f {config}"
        )
        self.log = open(self.tmp / "sshd.log", "wb")  # noqa: SIM115 - open while sshd runs
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.netns,
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # readiness, not a timed assertion
            probe = subprocess.run(
                ["ip", "netns", "exec", self.netns, "ss", "-Hltn", "sport = :22"],
                capture_output=True,
                text=True,
            )
            if probe.stdout.strip():
                return
            assert self.proc.poll() is None, (self.tmp / "sshd.log").read_text()
            time.sleep(0.05)
        raise AssertionError("sshd did not listen")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # ip netns exec execs: this PID is the chain we started
            self.proc.wait(timeout=10)
        if self.proc is not None:
            self.log.close()
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)  # takes the veth along

    def transport(self, **kwargs) -> SshTransport:
        options = {"key": str(self.client_key), "known_hosts": str(self.known_hosts)} | kwargs
        return SshTransport("hostA", self.address, **options)


@pytest.fixture
def sshd(tmp_path):
    server = Sshd(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_commands_run_over_one_reused_connection(sshd):
    transport = sshd.transport()
    try:
        first = transport.run(["ip", "-o", "addr", "show", "dev", "eth0"])
        assert sshd.address in first.stdout  # it ran inside the "host"
        echoed = transport.run(["cat"], input="hello over ssh\n")
        assert echoed.stdout == "hello over ssh\n"
        assert transport.run(["echo", "a b", "$HOME;x"]).stdout == "a b $HOME;x\n"  # argv, not a shell
        connection = transport._conn
        transport.run(["true"])
        assert transport._conn is connection and transport.round_trips == 4
    finally:
        transport.close()


def test_files_go_there_and_back(sshd):
    transport = sshd.transport()
    target = sshd.tmp / "remote" / "cfg.txt"
    try:
        transport.put_file(str(target), b"\x00binary\xffdata\n", mode=0o600)
        assert target.read_bytes() == b"\x00binary\xffdata\n"
        assert oct(target.stat().st_mode & 0o777) == "0o600"
        assert transport.get_file(str(target)) == b"\x00binary\xffdata\n"
    finally:
        transport.close()


def test_a_failing_command_names_host_command_and_stderr(sshd):
    transport = sshd.transport()
    try:
        with pytest.raises(CommandError) as failed:
            transport.run(["ls", "/no/such/dir"])
        assert failed.value.host == "hostA" and failed.value.returncode != 0
        assert "No such file" in str(failed.value) and "ls /no/such/dir" in str(failed.value)
        with pytest.raises(CommandError) as missing:
            transport.run(["ovs-vsctl-not-installed", "show"])
        assert missing.value.returncode == 127 and "not found" in str(missing.value)
    finally:
        transport.close()


def test_unknown_host_key_is_refused_by_default(sshd, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(ProvisionError) as refused:
        sshd.transport(known_hosts=str(empty)).run(["true"])
    assert "host key not in" in str(refused.value) and "hostA" in str(refused.value)
    opted_out = sshd.transport(known_hosts=str(empty), check_host_key=False)
    try:
        assert opted_out.run(["true"]).ok
    finally:
        opted_out.close()


def test_refused_authentication_and_unreachable_host_are_one_line(sshd, tmp_path):
    stranger = tmp_path / "stranger"
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger))
    with pytest.raises(ProvisionError) as refused:
        sshd.transport(key=str(stranger)).run(["true"])
    assert "authentication refused" in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(ProvisionError) as unreachable:
        sshd.transport(port=2).run(["true"])  # nothing listens there
    assert "unreachable" in str(unreachable.value) and "hostA" in str(unreachable.value)


def test_a_hosts_ovs_is_configured_in_one_round_trip(sshd):
    """The host's own OVS daemons (userspace datapath), started and configured over SSH."""
    rundir = sshd.tmp / "ovs"
    transport = sshd.transport(env=ovs_env(str(rundir)))
    try:
        start_ovs_daemons(transport, str(rundir))
        ovs = Ovs(transport)
        plan = [
            AddBridge("br0", "netdev", fail_mode="secure", protocols="OpenFlow10"),
            AddPort("br0", "gre1", "gre", (("remote_ip", "10.250.0.2"),)),
            AddPort("br0", "vnet0", "internal"),
            SetController("br0", ("tcp:10.250.0.254:6633",)),
        ]
        assert ovs.schema().lacks() == []  # the host's schema: read once, up front
        before = transport.round_trips
        snap = ovs.snapshot()
        ovs.apply(pending(plan, snap))
        assert transport.round_trips - before == 2  # one read, one batched transaction
        assert pending(plan, ovs.snapshot()) == []
        assert ovs.ensure(plan) == []  # up twice changes nothing
    finally:
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            pid = read_pidfile(f"{rundir}/{daemon}.pid")
            if pid:
                os.kill(pid, signal.SIGTERM)
        transport.close()


def test_a_user_who_is_not_root_runs_everything_under_sudo():
    admin = SshTransport("h", "192.0.2.1", user="admin", env={"OVS_RUNDIR": "/x y"})
    assert admin.command_line(["ovs-vsctl", "show"]) == "sudo -n -- env 'OVS_RUNDIR=/x y' ovs-vsctl show"
    root = SshTransport("h", "192.0.2.1")
    assert root.command_line(["echo", "a;b"]) == "echo 'a;b'"
