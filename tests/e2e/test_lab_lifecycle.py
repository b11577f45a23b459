"""The foundation story: up, verify, look at what the controller did, down -- for real."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import labctl, netns_with_prefix

pytestmark = pytest.mark.lab


def test_up_then_verify_pings_all_pairs_with_no_loss(two_host_lab):
    result = two_host_lab.run("verify", "--json")
    report = json.loads(result.stdout)
    assert report["ok"] is True
    pairs = {(p["src"], p["dst"]): p for p in report["pairs"]}
    assert set(pairs) == {("vm1", "vm2"), ("vm2", "vm1")}
    for pair in pairs.values():
        assert pair["sent"] == 3 and pair["received"] == 3 and pair["loss_pct"] == 0
        assert pair["first_rtt_ms"] > 0  # the packet that made the controller set the path up


def test_verify_prints_a_ping_table(two_host_lab):
    out = two_host_lab.run("verify").stdout
    assert re.search(r"vm1 -> vm2 \(172\.16\.0\.2\)\s+[\d.]+\s+3\s+3\s+0%", out)
    assert "2/2 pairs answered, no packet lost" in out


def test_controller_installs_reactive_flows_on_both_bridges(two_host_lab):
    lab = two_host_lab
    for host in ("host1", "host2"):  # before any traffic: fail-secure bridges with no flows
        assert "actions=" not in lab.on_host(host, "ovs-ofctl", "dump-flows", "br0")
    lab.run("verify")
    for host in ("host1", "host2"):
        flows = lab.on_host(host, "ovs-ofctl", "dump-flows", "br0")
        icmp = [line for line in flows.splitlines() if "icmp" in line]
        assert icmp, f"no ICMP flow on {host}:\n{flows}"
        assert all("idle_timeout=10" in f and "hard_timeout=30" in f for f in icmp)
        assert any("nw_src=172.16.0.1,nw_dst=172.16.0.2" in f for f in icmp)
    log = (lab.state_dir / lab.name / "controller" / "controller.log").read_text()
    assert log.count("installing flow") >= 4  # each one answers a packet-in


def test_traffic_crosses_the_gre_tunnel(two_host_lab):
    lab = two_host_lab
    lab.run("verify")
    # live OpenFlow port counters (OVSDB's statistics column lags by seconds)
    stats = lab.on_host("host1", "ovs-ofctl", "dump-ports", "br0", "gre-host2")
    rx, tx = (int(n) for n in re.findall(r"[rt]x pkts=(\d+)", stats))
    assert rx >= 3 and tx >= 3, stats
    assert lab.on_host("host1", "ovs-vsctl", "get", "interface", "gre-host2", "type").strip() == "gre"
    # Userspace tunnelling resolved the peer on the underlay through br-phy.
    assert "10.250.0.2" in lab.on_host("host1", "ovs-appctl", "tnl/arp/show")


def test_status_shows_hosts_ports_tunnels_and_connected_bridges(two_host_lab):
    status = two_host_lab.status()
    assert status["up"] is True and status["controller"]["running"] is True
    hosts = {h["name"]: h for h in status["hosts"]}
    assert set(hosts) == {"host1", "host2"}
    host1 = hosts["host1"]
    assert host1["protocols"] == ["OpenFlow10"] and host1["datapath_type"] == "netdev"
    ports = {p["name"]: p for p in host1["ports"]}
    assert ports["vm1"]["vm"] == "vm1" and ports["vm1"]["ofport"] == 1
    assert ports["gre-host2"]["type"] == "gre" and ports["gre-host2"]["remote_ip"] == "10.250.0.2"
    text = two_host_lab.run("status").stdout
    assert "connected" in text and "VM vm1" in text


def test_every_command_up_ran_is_in_the_labs_command_log(two_host_lab):
    log = (two_host_lab.state_dir / two_host_lab.name / "commands.log").read_text()
    assert "host1: ovs-vsctl --timeout=30 -- --may-exist add-br br-phy" in log
    assert "host2: ovs-vswitchd --pidfile" in log


def test_second_up_changes_nothing_and_says_so(two_host_lab):
    result = two_host_lab.run("up")
    assert "nothing to change" in result.stdout


def test_down_leaves_no_namespace_process_or_file(two_host_lab):
    lab = two_host_lab
    lab.remember_processes()
    assert len(lab.recorded_pids) == 5  # 2 x (ovsdb-server, ovs-vswitchd) + controller
    lab.run("down")
    lab.assert_gone()


def test_down_when_nothing_is_up_is_a_no_op(make_lab):
    lab = make_lab()
    result = lab.run("down")
    assert "nothing to remove" in result.stdout
    lab.assert_gone()


def test_openflow13_lab_pings_through_the_same_app(make_lab):
    lab = make_lab(openflow="1.3")
    lab.run("up")
    assert lab.status()["hosts"][0]["protocols"] == ["OpenFlow13"]
    assert json.loads(lab.run("verify", "--json").stdout)["ok"] is True
    flows = lab.on_host("host1", "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br0")
    assert "priority=0 actions=CONTROLLER:65535" in flows  # the table-miss entry
    assert "icmp" in flows


def test_controller_that_cannot_start_gives_exit_3_with_its_log(make_lab):
    text = """\
name: {name}
controller:
  apps: [no_such_app_module]
hosts:
  host1:
    vms:
      vm1: {{ip: 172.16.0.1/24}}
"""
    lab = make_lab(text)
    result = lab.run("up", "--timeout", "20", check=False)
    assert result.returncode == 3, result.stderr
    assert "controller" in result.stderr and "no_such_app_module" in result.stderr
    assert "Traceback" not in result.stderr.split("\n")[0]
    # the failed up left a lab that down removes completely (the fixture checks)
    assert netns_with_prefix(lab.prefix)


def test_bad_inventory_exits_2_and_creates_nothing(make_lab, lab_env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: broken\nhosts:\n  host1:\n    vms:\n      vm1: {ip: 300.1.2.3/24}\n")
    result = labctl("up", "-i", str(bad), env=lab_env, check=False)
    assert result.returncode == 2
    assert f"{bad}:5: hosts.host1.vms.vm1.ip" in result.stderr
    assert "300.1.2.3/24" in result.stderr and "Traceback" not in result.stderr
    assert not netns_with_prefix("lc-broken-")
    assert not (tmp_path / "state").exists()
