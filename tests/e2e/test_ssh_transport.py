"""The SSH transport against a real sshd (tests/sshd_harness.py): OpenSSH's sshd with a
throwaway host key and client key, in a namespace the test creates."""

from __future__ import annotations

import os
import signal

import pytest

from labctl.drivers.sim import start_ovs_daemons
from labctl.errors import CommandError, ProvisionError
from labctl.ovs import AddBridge, AddPort, Ovs, SetController, pending
from labctl.processes import read_pidfile
from labctl.transport.netns import ovs_env
from labctl.transport.ssh import SshTransport
from tests.sshd_harness import Sshd, sh

pytestmark = pytest.mark.lab


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
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger))
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


def test_a_guest_is_reached_through_its_hosts_ssh_connection_with_its_host_key_pinned(sshd):
    """The way into a real host's guest: a direct-tcpip channel over labctl's connection to
    the hypervisor host (here the "guest" is the host's own sshd, reached from inside it),
    logged into with the lab's key and checked against the one host key the seed gave."""
    from labctl.transport.guest import through_ssh_host

    host = sshd.transport()
    pinned = " ".join(sshd.known_hosts.read_text().split()[1:3])
    guest = through_ssh_host("vm1", host, sshd.address, key=sshd.client_key, host_key=pinned)
    try:
        assert guest.run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout.count(sshd.address) == 1
        assert guest.unreachable() is None
        assert guest.describe().startswith(f"SSH root@{sshd.address}:22 through SSH root@{sshd.address}:22")
        # another host key than the seed's: refused, in one line
        other = sshd.tmp / "other_key"
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other))
        wrong = " ".join(other.with_suffix(".pub").read_text().split()[:2])
        impostor = through_ssh_host("vm1", host, sshd.address, key=sshd.client_key, host_key=wrong)
        why = impostor.unreachable()
        assert why == "its host key is not the one labctl gave it (another machine at that address?)"
    finally:
        guest.close()
        host.close()


def test_a_file_of_half_a_megabyte_is_put_and_read_back_whole(sshd):
    """put_file sends its data on the command's stdin: a seed ISO is a few hundred kB, and
    Fabric used to feed such a stream one byte per 10 ms, so it never arrived in time."""
    data = os.urandom(512 * 1024)
    path = f"{sshd.tmp}/put/seed.iso"
    transport = sshd.transport()
    try:
        transport.put_file(path, data, mode=0o600)
        assert transport.get_file(path) == data
        assert transport.run(["stat", "-c", "%a", path]).stdout.strip() == "600"
    finally:
        transport.close()
