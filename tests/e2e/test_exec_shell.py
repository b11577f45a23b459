"""`labctl shell`: a workshop participant's shell inside a VM or a host of the lab."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.lab


def shell(lab, name: str, typed: str) -> subprocess.CompletedProcess:
    """What the user types into `labctl shell NAME`, fed on stdin."""
    return subprocess.run(
        [sys.executable, "-m", "labctl", "shell", name, "-i", str(lab.inventory)],
        input=typed,
        capture_output=True,
        text=True,
        env={**lab.env, "SHELL": "/bin/sh"},
        timeout=60,
    )


def test_shell_in_a_host_reaches_its_own_ovs_and_in_a_vm_sees_its_address(two_host_lab):
    on_host = shell(two_host_lab, "host1", "ovs-vsctl list-br\nexit 4\n")
    assert on_host.stdout.split() == ["br-phy", "br0"], on_host.stderr
    assert on_host.returncode == 4  # the shell's exit status is labctl's
    in_vm = shell(two_host_lab, "vm2", "ip -4 -o addr show eth0\n")
    assert in_vm.returncode == 0 and "172.16.0.2/24" in in_vm.stdout
