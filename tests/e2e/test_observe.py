"""Looking inside: which port is which, and the flows the controller installed, by name."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.lab


def test_ports_map_numbers_to_names_vms_and_tunnels_with_live_counters(two_host_lab):
    lab = two_host_lab
    lab.run("verify")
    rows = {(r["host"], r["name"]): r for r in json.loads(lab.run("ports", "--stats", "--json").stdout)}
    vm1 = rows[("host1", "vm1")]
    assert vm1["ofport"] == 1 and vm1["behind"].startswith("VM vm1 (172.16.0.1")
    gre = rows[("host1", "gre-host2")]
    assert gre["behind"] == "gre tunnel to host2 (10.250.0.2)" and gre["dp_port"] is not None
    assert gre["stats"]["tx_packets"] >= 3 and gre["stats"]["rx_packets"] >= 3
    assert "VM vm2" in lab.run("ports", "host2").stdout


def test_flows_name_ports_and_macs(two_host_lab):
    lab = two_host_lab
    lab.run("verify")
    text = lab.run("flows", "host1").stdout
    assert "in_port=1[vm1]" in text and "output:2[gre-host2]" in text
    assert "dl_src=02:00:ac:10:00:01[vm1]" in text
    assert "[vm1]" not in lab.run("flows", "host1", "--raw").stdout
    datapath = json.loads(lab.run("flows", "host1", "--datapath", "--json").stdout)
    assert any("[gre_sys]" in row["named"] for row in datapath)


def test_ports_of_an_unknown_host_is_bad_input(two_host_lab):
    result = two_host_lab.run("ports", "host9", check=False)
    assert result.returncode == 2 and "no host named 'host9'" in result.stderr


def test_a_hypervisor_named_port_also_shows_its_vm(make_lab):
    text = """\
name: {name}
hosts:
  kvm1:
    driver: kvm
    vms:
      vm1: {{ip: 172.16.0.1/24}}
  xen1:
    driver: xen
    vms:
      vm2: {{ip: 172.16.0.2/24}}
"""
    lab = make_lab(text)
    lab.run("up", "--sim")
    lab.run("verify", "--sim")
    assert "in_port=1[vnet0:vm1]" in lab.run("flows", "kvm1", "--sim").stdout
    assert "[vif1.0:vm2]" in lab.run("flows", "xen1", "--sim").stdout
