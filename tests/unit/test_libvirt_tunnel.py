"""How labctl reaches libvirt on a real KVM host over its own SSH connection
(drivers/libvirt_tunnel.py): which URIs go through the tunnel, what the channel runs on
the host (run here with `sh`, against stand-in helpers that print what they were given),
the URI libvirt-python opens, and the one line a failure becomes. The tunnel itself, over
a real sshd to a real libvirtd, is tests/e2e/test_kvm_over_ssh.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from labctl.drivers.base import LabSession
from labctl.drivers.kvm import KvmDriver
from labctl.drivers.libvirt_tunnel import (
    NO_HELPER,
    SYSTEM_SOCKET,
    explain,
    helper_argv,
    is_plain,
    local_uri,
    tunnel_for,
)
from labctl.inventory import parse_inventory
from labctl.progress import Reporter
from labctl.state import LabState
from labctl.transport.local import LocalTransport
from labctl.transport.ssh import SshTransport

INVENTORY = """\
name: t
controller: {{address: 10.250.0.254}}
hosts:
  kvm1:
    driver: kvm
    address: {address}
    image: /srv/base.qcow2
{extra}    vms:
      vm1: {{ip: 172.16.0.1/24}}
"""


def driver(tmp_path, address: str, extra: str = "") -> KvmDriver:
    lab = parse_inventory(INVENTORY.format(address=address, extra=extra))
    return KvmDriver(
        LabSession(lab, LabState(lab.name, root=tmp_path), Reporter(quiet=True)), lab.host("kvm1")
    )


def test_the_hosts_own_libvirt_goes_through_the_tunnel_any_other_uri_as_given():
    ssh = SshTransport("kvm1", "10.0.0.5", user="admin")
    assert tunnel_for("qemu:///system", ssh) is ssh
    assert tunnel_for("qemu:///session", ssh) is ssh
    assert tunnel_for("qemu+ssh://root@10.0.0.5/system", ssh) is None  # the inventory chose libvirt's ssh
    assert tunnel_for("qemu+tls://10.0.0.5/system", ssh) is None
    assert tunnel_for("qemu:///system", LocalTransport("kvm1")) is None  # this machine: libvirt's own socket
    assert is_plain("test:///default") and not is_plain("qemu+unix:///system?socket=/x")


def test_libvirt_python_opens_the_same_driver_through_the_private_socket():
    assert local_uri("qemu:///system", "/tmp/d/sock") == "qemu+unix:///system?socket=/tmp/d/sock"
    assert local_uri("qemu:///session", "/s") == "qemu+unix:///session?socket=/s"
    assert local_uri("qemu:///system?mode=legacy", "/s") == "qemu+unix:///system?mode=legacy&socket=/s"


def test_a_remote_kvm_host_reaches_qemu_system_over_its_ssh_connection(tmp_path):
    remote = driver(tmp_path, "admin@10.0.0.5", "    key: ~/.ssh/lab\n    port: 2222\n    known_hosts: off\n")
    assert remote.uri == "qemu:///system" and remote.tunnel is remote.transport()
    assert remote.guests.tunnel is remote.tunnel
    tunnel = remote.tunnel
    assert (tunnel.user, tunnel.port, tunnel.key, tunnel.check_host_key) == (
        "admin",
        2222,
        "~/.ssh/lab",
        False,
    )
    assert remote.libvirt_target() == "qemu:///system on admin@10.0.0.5:2222, over labctl's SSH connection"
    [step] = [s for s in remote.planned_host_steps() if "libvirt" in s.what]
    assert (
        "`virt-ssh-helper qemu:///system` (else nc on /var/run/libvirt/libvirt-sock) as admin, no sudo"
        in (step.what)
    )
    assert step.api == "libvirt.open('qemu+unix:///system?socket=<private socket>')"
    # a URI the inventory gives with a server part is libvirt's to reach, as written
    given = driver(tmp_path, "admin@10.0.0.5", "    uri: qemu+tls://10.0.0.5/system\n")
    assert given.tunnel is None and given.libvirt_target() == "qemu+tls://10.0.0.5/system"
    local = driver(tmp_path, "localhost")
    assert local.tunnel is None and local.uri == "qemu:///system"


def run_helper(tmp_path: Path, uri: str, tools: dict[str, str]) -> subprocess.CompletedProcess:
    """The channel's command, run here by sh with only `tools` (and grep) on the PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("grep"), bin_dir / "grep")
    for name, body in tools.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return subprocess.run(
        ["/bin/sh", *helper_argv(uri)[1:]],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir)},
        stdin=subprocess.DEVNULL,
    )


def test_the_channel_runs_virt_ssh_helper_on_the_uri(tmp_path):
    both = {"virt-ssh-helper": 'echo "helper $*"', "nc": 'echo "nc $*"'}
    ran = run_helper(tmp_path, "qemu:///system", both)
    assert ran.returncode == 0 and ran.stdout == "helper qemu:///system\n"
    assert helper_argv("qemu:///system")[:2] == ["sh", "-c"]  # the URI is an argument, never spliced in
    assert "qemu:///system" not in helper_argv("qemu:///system")[2]


def test_without_virt_ssh_helper_nc_reaches_the_system_socket_as_libvirt_does(tmp_path):
    # OpenBSD's and the traditional nc know -q: it makes them exit when their input ends
    knows_q = (
        'if [ "$1" = -q ]; then echo "nc: option requires an argument -- q" >&2; exit 1; fi; echo "nc $*"'
    )
    ran = run_helper(tmp_path, "qemu:///system", {"nc": knows_q})
    assert ran.stdout == f"nc -q0 -U {SYSTEM_SOCKET}\n"
    shutil.rmtree(tmp_path / "bin")
    ran = run_helper(tmp_path, "qemu:///system", {"nc": 'echo "nc $*"'})
    assert ran.stdout.splitlines()[-1] == f"nc -U {SYSTEM_SOCKET}"


def test_with_neither_helper_the_far_end_says_so_and_labctl_says_what_to_install(tmp_path):
    ran = run_helper(tmp_path, "qemu:///system", {})
    assert ran.returncode == 127 and NO_HELPER in ran.stderr
    shutil.rmtree(tmp_path / "bin")
    ran = run_helper(tmp_path, "qemu:///session", {"nc": 'echo "nc $*"'})  # nc knows no session socket
    assert ran.returncode == 127 and ran.stdout == ""
    line = explain("End of file while reading data: Input/output error", ran.stderr, "root")
    assert line.startswith("neither virt-ssh-helper (libvirt 6.8 or later, package libvirt-daemon) nor nc")


def test_a_user_libvirt_refuses_is_told_what_sudo_cannot_do_for_it():
    helper = (
        "virt-ssh-helper: cannot connect to '/var/run/libvirt/libvirt-sock': Failed to connect socket to "
        "'/var/run/libvirt/libvirt-sock': Permission denied\n"
    )
    line = explain("End of file while reading data: Input/output error", helper, "admin")
    assert line.startswith("admin may not manage the system libvirtd (virt-ssh-helper: cannot connect")
    assert "sudo does not apply to the libvirt connection: add admin to the group" in line
    assert "org.libvirt.unix.manage" in line and "\n" not in line
    polkit = (
        "authentication unavailable: no polkit agent available to authenticate action "
        "'org.libvirt.unix.manage'"
    )
    line = explain(polkit, "", "admin")
    assert line.startswith(f"admin may not manage the system libvirtd ({polkit})")


def test_other_failures_say_what_the_helper_said_or_what_libvirt_said():
    gone = "virt-ssh-helper: cannot connect to '/run/libvirt/libvirt-sock': No such file or directory\n"
    assert explain("End of file", gone, "root") == gone.strip() + " (is libvirtd running on the host?)"
    assert explain("internal error: something", "", "root") == "internal error: something"


class VanishedChannel:
    """A paramiko channel whose SSH connection went away: select sees it readable (EOF),
    and every further call raises, as paramiko does on a dead transport."""

    def __init__(self):
        import socket

        self._ours, self._theirs = socket.socketpair()
        self._theirs.close()  # readable at once: end of file

    def fileno(self):
        return self._ours.fileno()

    def __getattr__(self, name):
        def dead(*args, **kwargs):
            raise EOFError("SSH session not active")

        return dead


def test_the_bridge_ends_quietly_when_the_ssh_connection_is_gone(monkeypatch):
    import socket
    import threading

    from labctl.drivers.libvirt_tunnel import Bridge

    raised = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    channel = VanishedChannel()
    bridge = Bridge(channel, "kvm1")
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(bridge.socket_path)
    bridge.connected_or_abandoned()
    assert bridge.finished.wait(10)
    bridge.thread.join(10)
    client.close()
    channel._ours.close()
    assert raised == []
    assert not os.path.exists(bridge.directory)
