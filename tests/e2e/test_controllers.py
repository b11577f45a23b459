"""Every controller kind drives the classic 2-host lab: POX, Ryu, OVS's test controller,
and a remote controller someone else runs (os-ken is covered by test_lab_lifecycle); and a
controller placed on one of the lab's hosts instead of its own namespace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from labctl.processes import identify, stop
from tests.conftest import netns_with_prefix, two_hosts

pytestmark = pytest.mark.lab


def inventory(controller: str, openflow: str = "1.0") -> str:
    return two_hosts(controller).replace("{openflow}", openflow)


def assert_reactive_flows(lab, host: str = "host1") -> None:
    flows = lab.on_host(host, "ovs-ofctl", "dump-flows", "br0")
    assert "icmp" in flows and "nw_src=172.16.0.1" in flows, flows


def test_pox_l2_learning_pings_through_reactive_flows(make_lab, pox_checkout):
    lab = make_lab(inventory(f"  kind: pox\n  path: {pox_checkout}\n  apps: [forwarding.l2_learning]"))
    lab.run("up")
    assert json.loads(lab.run("verify", "--json").stdout)["ok"] is True
    assert_reactive_flows(lab)
    flows = lab.on_host("host2", "ovs-ofctl", "dump-flows", "br0")
    assert "idle_timeout=10" in flows and "hard_timeout=30" in flows  # POX's l2_learning timeouts
    status = lab.status()
    assert status["controller"]["kind"] == "pox" and status["controller"]["running"] is True


def test_pox_with_openflow13_is_refused_before_anything_is_made(make_lab, pox_checkout):
    lab = make_lab(inventory(f"  kind: pox\n  path: {pox_checkout}", openflow="1.3"))
    result = lab.run("up", check=False)
    assert result.returncode == 2 and "POX speaks OpenFlow 1.0 only" in result.stderr
    assert not netns_with_prefix(lab.prefix)


def test_pox_without_a_checkout_says_how_to_get_one(make_lab, tmp_path):
    lab = make_lab(inventory(f"  kind: pox\n  path: {tmp_path / 'nowhere'}"))
    result = lab.run("up", check=False)
    assert result.returncode == 2 and "no pox.py in" in result.stderr
    assert not netns_with_prefix(lab.prefix)


@pytest.mark.parametrize(
    ("openflow", "app"), [("1.0", "ryu.app.simple_switch"), ("1.3", "ryu.app.simple_switch_13")]
)
def test_ryu_simple_switch_pings_through_reactive_flows(make_lab, openflow, app):
    # Ryu comes from the project's .venv-ryu (scripts/setup.sh --test installs it)
    lab = make_lab(inventory("  kind: ryu", openflow=openflow))
    lab.run("up")
    assert json.loads(lab.run("verify", "--json").stdout)["ok"] is True
    version = {"1.0": "OpenFlow10", "1.3": "OpenFlow13"}[openflow]
    for host, src, dst in [("host1", "01", "02"), ("host2", "02", "01")]:
        flows = lab.on_host(host, "ovs-ofctl", "-O", version, "dump-flows", "br0")
        # simple_switch's flow: in_port + both MACs, installed on a packet-in
        assert f"dl_src=02:00:ac:10:00:{src},dl_dst=02:00:ac:10:00:{dst}" in flows, flows
    # labctl's own flow table speaks the bridge's version too (OpenFlow 1.3 bridges refuse 1.0)
    assert "dl_src=02:00:ac:10:00:01[vm1],dl_dst=02:00:ac:10:00:02[vm2]" in lab.run("flows", "host1").stdout
    log = lab.run("logs", "controller").stdout
    assert f"instantiating app {app}" in log and "packet in" in log, log
    status = lab.status()
    assert status["controller"]["kind"] == "ryu" and status["controller"]["apps"] == [app]
    assert status["controller"]["running"] is True and status["up"] is True


def test_ryu_missing_says_how_to_install_it(make_lab, tmp_path):
    lab = make_lab(inventory(f"  kind: ryu\n  path: {tmp_path / 'nowhere'}"))
    result = lab.run("up", check=False)
    assert result.returncode == 2 and "no Python at" in result.stderr
    assert "scripts/setup.sh --ryu" in result.stderr and "Traceback" not in result.stderr
    assert not netns_with_prefix(lab.prefix)
    lab = make_lab(inventory("  kind: ryu"))
    lab.env = {**lab.env, "LABCTL_RYU_PYTHON": sys.executable}  # a Python without Ryu
    result = lab.run("up", check=False)
    assert result.returncode == 2 and f"Ryu is not installed for {sys.executable}" in result.stderr
    assert not netns_with_prefix(lab.prefix)


def test_controller_on_a_lab_host(make_lab):
    lab = make_lab(inventory("  kind: os-ken\n  host: host1"))
    lab.run("up")
    assert lab.netns("controller") not in netns_with_prefix(lab.prefix)
    assert not [r for r in lab.journal() if r["kind"] == "netns" and r["name"] == lab.netns("controller")]
    assert json.loads(lab.run("verify", "--json").stdout)["ok"] is True
    status = lab.status()
    ctl = status["controller"]
    assert ctl["host"] == "host1" and ctl["where"] == "on host1" and ctl["running"] is True
    assert ctl["target"] == "tcp:10.250.0.1:6633" and status["up"] is True
    assert all(h["controllers"][0]["target"] == "tcp:10.250.0.1:6633" for h in status["hosts"])
    assert "on host1 running pid" in lab.run("status").stdout
    host1 = os.stat(f"/run/netns/{lab.netns('host1')}").st_ino
    assert os.stat(f"/proc/{ctl['pid']}/ns/net").st_ino == host1  # it runs inside host1

    assert "every bridge connected" in lab.run("controller", "restart").stdout
    after = lab.status()["controller"]
    assert after["pid"] != ctl["pid"] and after["running"] is True
    assert os.stat(f"/proc/{after['pid']}/ns/net").st_ino == host1
    assert json.loads(lab.run("verify", "--json").stdout)["ok"] is True
    assert "switch 0000000000000002 connected" in lab.run("logs", "controller").stdout

    lab.remember_processes()
    assert after["pid"] in lab.recorded_pids
    lab.run("down")
    lab.assert_gone()  # the controller with the rest of host1


@pytest.mark.parametrize("openflow", ["1.0", "1.3"])
def test_ovs_testcontroller_pings(make_lab, openflow):
    lab = make_lab(inventory("  kind: ovs-testcontroller", openflow=openflow))
    lab.run("up")
    assert json.loads(lab.run("verify", "--json").stdout)["ok"] is True
    version = {"1.0": "OpenFlow10", "1.3": "OpenFlow13"}[openflow]
    flows = lab.on_host("host1", "ovs-ofctl", "-O", version, "dump-flows", "br0")
    assert "dl_dst=02:00:ac:10:00:02" in flows or "icmp" in flows, flows


def has_address(netns: str, address: str) -> bool:
    found = subprocess.run(["ip", "-n", netns, "-j", "addr"], capture_output=True, text=True, check=False)
    if found.returncode != 0:  # the namespace is not there yet
        return False
    return any(a.get("local") == address for link in json.loads(found.stdout) for a in link["addr_info"])


def test_remote_controller_run_by_someone_else(make_lab):
    lab = make_lab(inventory("  kind: remote\n  address: 10.250.0.200\n  port: 6653"))
    up = subprocess.Popen(
        [sys.executable, "-m", "labctl", "up", "-i", str(lab.inventory), "--timeout", "30"],
        env=lab.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # labctl makes the controller's namespace on the underlay; "someone else" runs a controller
    # in it, once the address it listens on is there (binding earlier fails and it exits)
    deadline = time.monotonic() + 20
    while not has_address(lab.netns("controller"), "10.250.0.200") and time.monotonic() < deadline:
        time.sleep(0.05)
    theirs = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.netns("controller"),
            sys.executable,
            "-m",
            "labctl.controllers.osken_runner",
            "--ofp-listen-host",
            "10.250.0.200",
            "--ofp-tcp-listen-port",
            "6653",
            "l2_learning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=lab.env,
    )
    try:
        _, err = up.communicate(timeout=60)
        assert up.returncode == 0, err
        assert json.loads(lab.run("verify", "--json").stdout)["ok"] is True
        status = lab.status()
        assert status["controller"]["running"] is None and status["up"] is True
        assert "run by someone else" in lab.run("status").stdout
    finally:
        proc = identify(theirs.pid)
        stop([proc] if proc else [])
        theirs.wait()


def test_remote_controller_that_never_answers_names_the_bridges(make_lab):
    lab = make_lab(inventory("  kind: remote\n  address: 10.250.0.200"))
    result = lab.run("up", "--timeout", "3", check=False)
    assert result.returncode == 3
    assert "br0 did not connect within 3s" in result.stderr
    assert "host1" in result.stderr and "host2" in result.stderr and "Traceback" not in result.stderr


def test_remote_controller_off_the_underlay_is_refused_in_a_simulated_lab(make_lab):
    lab = make_lab(inventory("  kind: remote\n  address: 192.0.2.10"))
    result = lab.run("up", check=False)
    assert result.returncode == 2 and "reach a controller only on their underlay" in result.stderr


def test_controller_restart_leaves_the_bridges_alone_and_they_reconnect(two_host_lab):
    lab = two_host_lab
    before = lab.status()
    vswitchd = (lab.state_dir / lab.name / "hosts" / "host1" / "ovs-vswitchd.pid").read_text()
    result = lab.run("controller", "restart")
    assert "restarted" in result.stdout and "every bridge connected" in result.stdout
    after = lab.status()
    assert after["controller"]["pid"] != before["controller"]["pid"] and after["up"] is True
    assert (lab.state_dir / lab.name / "hosts" / "host1" / "ovs-vswitchd.pid").read_text() == vswitchd
    assert [h["ports"] for h in after["hosts"]] == [h["ports"] for h in before["hosts"]]
    assert json.loads(lab.run("verify", "--json").stdout)["ok"] is True


def test_logs_shows_the_controller_and_each_hosts_switch(two_host_lab):
    lab = two_host_lab
    assert "switch 0000000000000001 connected" in lab.run("logs", "controller").stdout
    tail = lab.run("logs", "host1", "-n", "3").stdout.splitlines()
    assert len(tail) == 3 and all("|" in line for line in tail)  # ovs-vswitchd's log format
    missing = lab.run("logs", "nosuchhost", check=False)
    assert missing.returncode == 2 and "no log for 'nosuchhost'" in missing.stderr
