"""The kernel limits a simulated lab needs, read from a fake /proc/sys."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from labctl.drivers import simlimits
from labctl.drivers.simlimits import ARP_TABLE, SOCKET_BUFFER, arp_entries_needed, remedy, shortfalls
from labctl.inventory import parse_inventory
from tests.conftest import n_hosts

DEFAULTS = {ARP_TABLE: 1024, SOCKET_BUFFER: 212992}  # a fresh Debian machine


def lab_of(n: int, driver: str = "sim", topology: str | None = None):
    real = {} if driver == "sim" else {"address": "10.0.0.{i}", "controller": "  address: 10.0.0.100"}
    return parse_inventory(n_hosts(n, name="demo", driver=driver, topology=topology, **real))


def test_every_vm_needs_an_arp_entry_per_peer_plus_the_underlay():
    # Worked by hand for 32 hosts of one VM each, plus 256 entries to spare:
    # star: 32 VMs x 31 peers = 992; 31 tunnels, both ends = 62; each host and the
    #       controller resolve one another, 2 x 32 = 64; 992 + 62 + 64 + 256 = 1374.
    assert arp_entries_needed(lab_of(32)) == 1374
    # mesh: 992 again; 32 x 31 / 2 = 496 tunnels, both ends = 992; 64; 992 + 992 + 64 + 256 = 2304.
    assert arp_entries_needed(lab_of(32, topology="mesh")) == 2304


def test_the_default_limits_fit_sixteen_hosts():
    assert shortfalls(lab_of(16), DEFAULTS.get) == []


def test_thirty_two_hosts_outgrow_the_arp_table_and_the_socket_buffer():
    found = shortfalls(lab_of(32), DEFAULTS.get)
    assert [(s.key, s.current, s.needed) for s in found] == [
        (ARP_TABLE, 1024, 1374),
        (SOCKET_BUFFER, 212992, simlimits.HUB_BUFFER_BYTES),
    ]
    text = remedy(found)
    assert f"sysctl -w {ARP_TABLE}=1374 {SOCKET_BUFFER}={simlimits.HUB_BUFFER_BYTES}" in text
    assert "ARP entries" in str(found[0])


def test_raised_limits_leave_nothing_to_say():
    raised = {ARP_TABLE: 8192, SOCKET_BUFFER: 2 * 1024 * 1024}
    assert shortfalls(lab_of(32), raised.get) == []


def test_unreadable_limits_are_not_guessed():
    assert shortfalls(lab_of(32), lambda key: None) == []


def test_a_lab_of_real_hosts_does_not_use_this_machines_namespaces():
    assert shortfalls(lab_of(32, driver="ovs"), DEFAULTS.get) == []


def test_read_sysctl_reads_proc_sys():
    assert simlimits.read_sysctl("kernel.pid_max") > 0
    assert simlimits.read_sysctl("no.such.key") is None


def test_doctor_reports_the_limits_for_a_simulated_lab(tmp_path):
    inventory = tmp_path / "lab.yaml"
    inventory.write_text("name: demo\nhosts:\n  host1:\n    vms:\n      vm1: {ip: 172.16.0.1/24}\n")
    env = {**os.environ, "LABCTL_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run(
        [sys.executable, "-m", "labctl", "doctor", "--json", "-i", str(inventory)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    checks = json.loads(result.stdout)["checks"]
    assert [(c["host"], c["name"], c["ok"]) for c in checks] == [("this machine", "kernel limits", True)]
    assert result.returncode == 0
