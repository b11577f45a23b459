"""Faults injected into a lab that is up: `status` names each one (exit 0, one drift line
that says what `up` will do, the same as structured data with --json), `up` repairs it
and checks its own work, and `verify` passes again. docs/reliability.md lists them.

One simulated lab serves every case (building one per case would be most of the run):
before each case `up` repairs whatever an earlier one left, and the case starts only
from a lab whose status finds nothing wrong, so no case depends on another or on order.
Processes are killed only by the PID the lab's own pidfiles or journal hold.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from labctl.processes import identify, read_pidfile
from tests.conftest import REPO, TWO_HOST, Lab, labctl, unique_name

pytestmark = pytest.mark.lab


# --- the lab every case shares -------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    name = unique_name("ft")
    inventory = tmp / f"{name}.yaml"
    inventory.write_text(TWO_HOST.format(name=name, openflow="1.0"))
    env = {**os.environ, "LABCTL_STATE_DIR": str(tmp / "state"), "PYTHONPATH": str(REPO)}
    lab = Lab(name, inventory, tmp / "state", env)
    try:
        lab.run("up")
        yield lab
    finally:
        lab.remember_processes()
        labctl("down", "--lab", lab.name, env=lab.env, check=False)
        lab.assert_gone()


@pytest.fixture
def lab(shared_lab) -> Lab:
    """The shared lab, repaired by `up` and found healthy by `status` before the case starts."""
    shared_lab.run("up", "-q")
    status = shared_lab.status()
    assert status["up"] and status["drift"] == [], status["drift"]
    return shared_lab


# --- how faults are made -------------------------------------------------------------------


def pidfile(lab: Lab, host: str, daemon: str) -> Path:
    return lab.state_dir / lab.name / "hosts" / host / f"{daemon}.pid"


def kill_9(pid: int | None) -> None:
    """SIGKILL one of the lab's processes, by the PID its pidfile or the journal holds; back
    once it has gone (a readiness wait, not a timing assertion)."""
    assert pid is not None
    proc = identify(pid)
    assert proc is not None, f"pid {pid} does not run"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while identify(pid) == proc:
        assert time.monotonic() < deadline, f"pid {pid} outlived SIGKILL"
        time.sleep(0.01)


def kill_daemon(host: str, daemon: str) -> Callable[[Lab], None]:
    return lambda lab: kill_9(read_pidfile(str(pidfile(lab, host, daemon))))


def kill_controller(lab: Lab) -> None:
    [record] = [r for r in lab.journal() if r["kind"] == "process" and r.get("role") == "controller"]
    kill_9(record["pid"])


def ip(netns_of: str, *args: str) -> Callable[[Lab], None]:
    """An `ip` command inside one of the lab's namespaces (a host, a VM, the underlay)."""
    return lambda lab: subprocess.run(["ip", "-n", lab.netns(netns_of), *args], check=True)


def on_host(host: str, *argv: str) -> Callable[[Lab], None]:
    return lambda lab: lab.on_host(host, *argv)


def cut_the_journals_last_line(lab: Lab) -> None:
    """As a crash while writing it would leave it: half a line, no newline."""
    path = lab.state_dir / lab.name / "journal.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])


def garble_lab_json(lab: Lab) -> None:
    (lab.state_dir / lab.name / "lab.json").write_text('{"lab": "half of it')


# --- the faults ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    inject: Callable[[Lab], None]
    host: str | None  # where status must name it (None: the lab's own)
    names: str  # how its drift line starts (after the host)
    says: str  # how up's progress line for the repair starts: "[where] what" ({lab}: the lab's name)


def delete_netns(name: str) -> Callable[[Lab], None]:
    return lambda lab: subprocess.run(["ip", "netns", "del", lab.netns(name)], check=True)


CASES = {
    "kill -9 ovs-vswitchd": Case(
        kill_daemon("host1", "ovs-vswitchd"),
        "host1",
        "ovs-vswitchd is not running",
        "[host1] started ovs-vswitchd (userspace datapath)",
    ),
    "kill -9 ovsdb-server": Case(
        kill_daemon("host2", "ovsdb-server"),
        "host2",
        "ovsdb-server is not running",
        "[host2] started ovsdb-server and ovs-vswitchd (userspace datapath)",
    ),
    "GRE port deleted": Case(
        on_host("host1", "ovs-vsctl", "del-port", "br0", "gre-host2"),
        "host1",
        "missing port gre-host2 on br0 (gre to 10.250.0.2)",
        "[host1] port gre-host2 on br0 (gre to 10.250.0.2)",
    ),
    "VM port deleted from br0": Case(
        on_host("host2", "ovs-vsctl", "del-port", "br0", "vm2"),
        "host2",
        "missing port vm2 on br0",
        "[host2] port vm2 on br0",
    ),
    "host underlay link down": Case(
        ip("host2", "link", "set", "eth0", "down"),
        "host2",
        "underlay link eth0 is down",
        "[host2] repaired: underlay link eth0 is down",
    ),
    "underlay's end of a host's link down": Case(
        ip("underlay", "link", "set", "host1", "down"),
        "host1",
        "the underlay's end of eth0",
        "[host1] repaired: the underlay's end of eth0",
    ),
    "host underlay link deleted": Case(
        ip("host2", "link", "del", "eth0"), "host2", "underlay link eth0 is missing", "[host2] underlay link"
    ),
    "underlay bridge down": Case(
        ip("underlay", "link", "set", "ul", "down"),
        None,
        "the underlay bridge ul is down",
        "[underlay] bridge ul set up again",
    ),
    "underlay namespace deleted": Case(
        delete_netns("underlay"), None, "the underlay namespace lc-", "[underlay] segment 10.250.0.0/24"
    ),
    "controller's underlay link down": Case(
        ip("controller", "link", "set", "eth0", "down"),
        None,
        "the controller's underlay link eth0 is down",
        "[controller] repaired: the controller's underlay link eth0 is down",
    ),
    "VM's link down (inside the VM)": Case(
        ip("vm1", "link", "set", "eth0", "down"),
        "host1",
        "VM vm1's eth0 is down",
        "[host1] repaired: VM vm1's eth0 is down",
    ),
    "VM's link down (on the host)": Case(
        ip("host1", "link", "set", "vm1", "down"),
        "host1",
        "port vm1 (VM vm1's link) is down",
        "[host1] repaired: port vm1 (VM vm1's link) is down",
    ),
    "br-phy's underlay address removed": Case(
        ip("host1", "addr", "flush", "dev", "br-phy"),
        "host1",
        "br-phy has lost the underlay address 10.250.0.1/24",
        "[host1] underlay address 10.250.0.1/24 on br-phy",
    ),
    "br-phy down": Case(
        ip("host2", "link", "set", "br-phy", "down"),
        "host2",
        "br-phy is down",
        "[host2] underlay address 10.250.0.2/24 on br-phy",
    ),
    "VM namespace deleted": Case(
        delete_netns("vm2"), "host2", "VM vm2 is missing", "[host2] VM vm2 172.16.0.2"
    ),
    "controller killed": Case(
        kill_controller, None, "controller os-ken is not running", "[controller] os-ken started (pid "
    ),
    "journal's last line cut short": Case(
        cut_the_journals_last_line, None, "line ", "[{lab}] journal written again without 1 broken line"
    ),
    "lab.json garbled": Case(
        garble_lab_json, None, "lab.json is garbled: not what up wrote", "[{lab}] lab.json written again (it "
    ),
}


def progress(output: str) -> list[str]:
    """up's progress lines without their elapsed time: "[host1] started ovs-vswitchd ..."."""
    return [line.split("s ", 1)[1] for line in output.splitlines() if re.match(r"\s*\d+\.\d+s \[", line)]


@pytest.mark.parametrize("fault", list(CASES))
def test_status_names_the_fault_up_repairs_it_and_verify_passes(lab, fault):
    case = CASES[fault]
    case.inject(lab)

    status = lab.run("status", "--json")  # a report: exit 0 whatever it finds
    data = json.loads(status.stdout)
    prefix = f"{case.host}: {case.names}" if case.host else case.names
    assert data["up"] is False
    named = [line for line in data["drift"] if line.startswith(prefix)]
    assert len(named) == 1, f"{prefix!r} not named once in {data['drift']}"
    [entry] = [f for f in data["faults"] if f["host"] == case.host and f["what"].startswith(case.names)]
    assert entry["repair"].startswith("up ") and "cannot" not in entry["repair"]
    text = lab.run("status").stdout
    assert f"  drift: {named[0]}: {entry['repair']}" in text.splitlines()

    up = lab.run("up")
    assert "nothing to change" not in up.stdout, up.stderr
    says = case.says.format(lab=lab.name)
    assert any(line.startswith(says) for line in progress(up.stderr)), up.stderr  # it said what it repaired

    after = lab.status()
    assert after["drift"] == [] and after["up"] is True
    assert json.loads(lab.run("verify", "--json").stdout)["ok"] is True


def test_the_cut_journal_line_is_named_by_its_number_and_up_writes_the_journal_whole(lab):
    cut_the_journals_last_line(lab)
    path = lab.state_dir / lab.name / "journal.jsonl"
    number = len(path.read_text().splitlines())
    # (what the line recorded is lost with it: the controller's record, after another case)
    assert f"line {number} of the journal is cut short or garbled ({path})" in lab.status()["drift"]
    kill_daemon("host1", "ovs-vswitchd")(lab)
    assert "journal written again without 1 broken line" in lab.run("up").stderr
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_deleted_flows_are_no_fault_the_controller_puts_them_back(lab):
    """Flows are the controller's: reactive ones come back with the next packet-in."""
    lab.run("verify")
    lab.on_host("host1", "ovs-ofctl", "-O", "OpenFlow10", "del-flows", "br0")
    assert "actions=" not in lab.on_host("host1", "ovs-ofctl", "-O", "OpenFlow10", "dump-flows", "br0")
    status = lab.status()
    assert status["up"] is True and status["drift"] == []
    assert json.loads(lab.run("verify", "--json").stdout)["ok"] is True
    assert "actions=" in lab.on_host("host1", "ovs-ofctl", "-O", "OpenFlow10", "dump-flows", "br0")
    assert "nothing to change" in lab.run("up").stdout


def test_a_restarted_switch_comes_back_with_what_the_userspace_datapath_needs(lab):
    """After ovs-vswitchd is killed and `up` starts it again: br-phy carries the underlay
    address, the tunnel neighbour is seeded, the ports are back, and the controller holds
    a new session from it, not the dead daemon's."""
    [before] = [
        line.split()[-1] for line in _sessions(lab).splitlines() if line.split()[-1].startswith("10.250.0.1:")
    ]
    kill_daemon("host1", "ovs-vswitchd")(lab)
    lab.run("up")
    assert "10.250.0.1/24" in lab.on_host("host1", "ip", "-br", "addr", "show", "dev", "br-phy")
    assert "10.250.0.2" in lab.on_host("host1", "ovs-appctl", "tnl/neigh/show")
    ports = lab.on_host("host1", "ovs-ofctl", "-O", "OpenFlow10", "show", "br0")
    assert "(gre-host2)" in ports and "(vm1)" in ports
    now = [line.split()[-1] for line in _sessions(lab).splitlines()]
    assert any(peer.startswith("10.250.0.1:") and peer != before for peer in now), now


def _sessions(lab: Lab) -> str:
    """The controller's established OpenFlow sessions, as `ss` lists them."""
    ss = ["ss", "-Htn", "state", "established", "( sport = :6633 )"]
    return subprocess.run(
        ["ip", "netns", "exec", lab.netns("controller"), *ss], capture_output=True, text=True, check=True
    ).stdout


def test_a_fault_up_cannot_repair_fails_up_with_exit_3_naming_it(make_lab):
    """A host's namespace deleted under its running daemons: status names it, up stops
    with exit 3 and says so, and down still removes everything, the daemons too."""
    lab = make_lab()
    lab.run("up")
    daemons = [read_pidfile(str(pidfile(lab, "host1", d))) for d in ("ovsdb-server", "ovs-vswitchd")]
    subprocess.run(["ip", "netns", "del", lab.netns("host1")], check=True)
    status = lab.status()
    assert f"host1: namespace {lab.netns('host1')} is missing" in status["drift"]
    up = lab.run("up", check=False)
    assert up.returncode == 3 and "Traceback" not in up.stderr
    assert f"namespace {lab.netns('host1')}" in up.stderr
    lab.run("down")
    lab.assert_gone()
    assert all(identify(pid) is None for pid in daemons)


def test_after_a_cut_journal_line_and_a_garbled_lab_json_down_leaves_nothing(make_lab):
    lab = make_lab()
    lab.run("up")
    cut_the_journals_last_line(lab)
    garble_lab_json(lab)
    assert lab.run("status").returncode == 0
    lab.remember_processes()
    lab.run("down")
    lab.assert_gone()
