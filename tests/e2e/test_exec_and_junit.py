"""Scripting a lab from CI: run commands inside VMs and hosts, and read verify as JUnit."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.lab

THREE_VMS = """\
name: {name}
hosts:
  host1:
    vms:
      vm1: {{ip: 172.16.0.1/24}}
      vm3: {{ip: 172.16.0.3/24}}
  host2:
    vms:
      vm2: {{ip: 172.16.0.2/24}}
"""


def test_exec_runs_in_a_vm_or_a_host_and_passes_the_exit_code_through(two_host_lab):
    lab = two_host_lab
    ping = lab.run("exec", "vm1", "--", "ping", "-c1", "-W2", "172.16.0.2")
    assert "1 received" in ping.stdout
    assert lab.run("exec", "host1", "--", "ovs-vsctl", "list-br").stdout.split() == ["br-phy", "br0"]
    assert lab.run("exec", "vm2", "--", "sh", "-c", "exit 7", check=False).returncode == 7
    unknown = lab.run("exec", "vm9", "--", "true", check=False)
    assert unknown.returncode == 2 and "no VM or host named 'vm9'" in unknown.stderr


def test_verify_junit_has_a_case_per_pair_and_marks_exactly_the_failing_ones(make_lab, tmp_path):
    lab = make_lab(THREE_VMS)
    lab.run("up")
    report = tmp_path / "verify.xml"
    lab.run("verify", "--junit", str(report))
    suite = ET.parse(report).getroot()
    assert suite.get("tests") == "6" and suite.get("failures") == "0"

    lab.in_vm("vm2", "ip", "link", "set", "eth0", "down")  # vm2 drops off the network
    assert lab.run("verify", "--junit", str(report), check=False).returncode == 1
    suite = ET.parse(report).getroot()
    failed = {case.get("name") for case in suite.iter("testcase") if case.find("failure") is not None}
    assert failed == {"vm1 -> vm2", "vm2 -> vm1", "vm3 -> vm2", "vm2 -> vm3"}
    assert suite.get("failures") == "4" and suite.get("tests") == "6"
