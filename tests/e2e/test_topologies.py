"""Labs of 4 hosts: the mixed-hypervisor classic lab, and star and mesh tunnel
topologies with a reactive controller -- all pairs reachable, and no broadcast
storm (a learning switch floods forever around a loop unless something breaks it)."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest

from labctl.defaults import INVENTORIES
from tests.conftest import n_hosts

pytestmark = pytest.mark.lab

HOSTS = ("host1", "host2", "host3", "host4")


def packets(lab, host: str) -> int:
    """Every packet every port of br0 has sent or received (live OpenFlow counters)."""
    stats = lab.on_host(host, "ovs-ofctl", "dump-ports", "br0")
    return sum(int(n) for n in re.findall(r"[rt]x pkts=(\d+)", stats))


def assert_no_storm(lab, seconds: float = 3.0) -> None:
    """Traffic after the pings stays at a trickle (neighbour re-validation, RSTP
    BPDUs). A broadcast looping through the tunnels runs at thousands per second."""
    before = {h: packets(lab, h) for h in HOSTS}
    time.sleep(seconds)
    rate = {h: (packets(lab, h) - before[h]) / seconds for h in HOSTS}
    assert all(r < 100 for r in rate.values()), rate


def test_mixed_hypervisor_lab_runs_simulated_with_their_port_names(make_lab, tmp_path):
    text = (INVENTORIES / "blog-4host-mixed.yaml").read_text().replace("name: blog-4host", "name: {name}")
    lab = make_lab(text.replace("{", "{{").replace("}", "}}").replace("{{name}}", "{name}"))
    lab.run("up", "--sim")
    status = json.loads(lab.run("status", "--json", "--sim").stdout)
    ports = {h["name"]: {p["name"]: p.get("vm") for p in h["ports"]} for h in status["hosts"]}
    assert ports["kvm1"]["vnet0"] == "vm1" and ports["kvm2"]["vnet0"] == "vm4"
    assert ports["xen1"]["vif1.0"] == "vm2" and ports["xs1"]["vif1.0"] == "vm3"
    assert {h["flavor"] for h in status["hosts"]} == {"kvm", "xen", "xenserver"}
    report = json.loads(lab.run("verify", "--json", "--sim").stdout)
    assert report["ok"] and len(report["pairs"]) == 12


@pytest.mark.parametrize("topology", ["star", "mesh"])
def test_os_ken_four_hosts_reach_every_pair_without_a_storm(make_lab, topology):
    lab = make_lab(n_hosts(4, topology=topology, controller="  kind: os-ken"))
    result = lab.run("up")
    if topology == "mesh":
        assert "the tunnel mesh is loop-free" in result.stderr
        # 6 tunnels, a tree needs 3: RSTP blocks the other 3 at one end each (which end
        # depends on the root election, i.e. on random bridge IDs)
        alternates = sum(lab.on_host(h, "ovs-appctl", "rstp/show", "br0").count("Alternate") for h in HOSTS)
        assert alternates >= 3
    report = json.loads(lab.run("verify", "--json").stdout)
    assert report["ok"] and len(report["pairs"]) == 12
    assert_no_storm(lab)


@pytest.mark.parametrize("topology", ["star", "mesh"])
def test_pox_four_hosts_reach_every_pair_without_a_storm(make_lab, pox_checkout, topology):
    lab = make_lab(n_hosts(4, topology=topology, controller=f"  kind: pox\n  path: {pox_checkout}"))
    lab.run("up")
    report = json.loads(lab.run("verify", "--json").stdout)
    assert report["ok"] and len(report["pairs"]) == 12
    assert_no_storm(lab)


def test_four_host_lab_graphviz_free_names(make_lab):
    """The mesh plan names one tunnel per pair, each end named after its peer."""
    lab = make_lab(n_hosts(4, topology="mesh", controller="  kind: os-ken"))
    lab.run("up")
    status = lab.status()
    tunnels = {(h["name"], p["name"]) for h in status["hosts"] for p in h["ports"] if p["type"] == "gre"}
    assert len(tunnels) == 12  # 6 tunnels, two ends each
    assert ("host1", "gre-host4") in tunnels and ("host4", "gre-host1") in tunnels
    assert shutil.which("ovs-vsctl")
