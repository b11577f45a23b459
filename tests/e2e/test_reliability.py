"""A lab tool runs as root on people's machines: it must survive being killed,
refuse to race itself, touch only what it made, and notice and repair drift."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl.drivers.sim import start_ovs_daemons
from labctl.processes import identify, read_pidfile, stop
from labctl.transport.netns import NetnsTransport
from tests.conftest import REPO, labctl, netns_with_prefix

pytestmark = pytest.mark.lab


def start_up(lab) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "labctl", "up", "-q", "-i", str(lab.inventory)],
        env=lab.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def journal_has(lab, kind: str) -> bool:
    return any(r["kind"] == kind for r in lab.journal())


@pytest.mark.parametrize("step", ["namespaces", "ovs-daemons", "controller", "ovs-bridge"])
def test_kill_9_during_up_then_up_resumes_and_down_removes_everything(make_lab, step):
    lab = make_lab()
    up = start_up(lab)
    # Kill the moment the journal shows the step under way (the record comes first).
    deadline = time.monotonic() + 20
    wanted = {"namespaces": "netns", "ovs-daemons": "ovs-daemons", "controller": "process"}.get(step)
    while time.monotonic() < deadline and up.poll() is None:
        if (
            wanted
            and journal_has(lab, wanted)
            or step == "ovs-bridge"
            and (lab.state_dir / lab.name / "hosts" / "host2" / "ovs-vswitchd.pid").exists()
        ):
            break
        time.sleep(0.002)
    up.send_signal(signal.SIGKILL)
    up.wait()
    assert journal_has(lab, "netns")
    # up again picks up where the killed one stopped, and the lab works
    lab.run("up")
    assert json.loads(lab.run("verify", "--json").stdout)["ok"] is True
    lab.remember_processes()
    lab.run("down")
    lab.assert_gone()


@pytest.mark.parametrize("delay", [0.3, 0.5, 0.7])
def test_kill_9_at_any_moment_then_down_leaves_nothing(make_lab, delay):
    lab = make_lab()
    up = start_up(lab)
    time.sleep(delay)
    up.send_signal(signal.SIGKILL)
    up.wait()
    lab.remember_processes()
    lab.run("down")
    lab.assert_gone()


def holds_flock(pid: int, path: Path) -> bool:
    """Whether process `pid` holds an flock on `path`, read from /proc/locks (taking the
    lock to find out would make the labctl that wants it fail)."""
    try:
        inode = path.stat().st_ino
    except FileNotFoundError:
        return False
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()  # "1: FLOCK ADVISORY WRITE 1234 00:2a:5678 0 EOF"
        ours = len(fields) > 5 and fields[1] == "FLOCK" and fields[4] == str(pid)
        if ours and int(fields[5].rsplit(":", 1)[1]) == inode:
            return True
    return False


def stopped_holding_the_lock(lab) -> subprocess.Popen | None:
    """An `up` stopped (SIGSTOP) while it holds the lab's lock, or None if it finished first:
    a 2-host up takes under a second, so on a busy machine it can end before a second
    labctl has even started."""
    lock = lab.state_dir / f".{lab.name}.lock"
    first = start_up(lab)
    deadline = time.monotonic() + 30
    while first.poll() is None and time.monotonic() < deadline:
        if holds_flock(first.pid, lock) and lock.read_text().startswith(f"labctl up (pid {first.pid})"):
            os.kill(first.pid, signal.SIGSTOP)
            if holds_flock(first.pid, lock):
                return first
            os.kill(first.pid, signal.SIGCONT)
            break
        time.sleep(0.005)
    assert first.wait(timeout=60) == 0, first.stderr.read()
    return None


def test_a_second_up_while_one_runs_is_refused(make_lab):
    lab = make_lab()
    for _ in range(5):
        first = stopped_holding_the_lock(lab)
        if first is not None:
            break
        lab.run("down")
    assert first is not None, "the first up never held the lock when stopped"
    try:
        second = lab.run("up", check=False)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 3
    assert f"lab '{lab.name}' is busy: labctl up (pid {first.pid}) is running" in second.stderr
    assert first.wait(timeout=60) == 0, first.stderr


def test_two_labs_run_side_by_side(make_lab):
    one, two = make_lab(), make_lab()
    one.run("up")
    two.run("up")
    assert json.loads(one.run("verify", "--json").stdout)["ok"]
    assert json.loads(two.run("verify", "--json").stdout)["ok"]
    one.remember_processes()
    one.run("down")
    one.assert_gone()
    assert json.loads(two.run("verify", "--json").stdout)["ok"]


@pytest.fixture
def bystanders(tmp_path):
    """A namespace, an OVS bridge (in its own OVS) and a process that are not labctl's."""
    ns = f"bystander{os.getpid()}"
    run = tmp_path / "ovs"
    run.mkdir()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    host = NetnsTransport(ns, ns, str(run))
    start_ovs_daemons(host, str(run))
    host.run(["ovs-vsctl", "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev"])
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        yield {
            "netns": ns,
            "bridges": lambda: host.run(["ovs-vsctl", "list-br"]).stdout,
            "sleeper": sleeper,
        }
    finally:
        sleeper.kill()
        sleeper.wait()
        daemons = [identify(read_pidfile(str(run / f"{d}.pid"))) for d in ("ovs-vswitchd", "ovsdb-server")]
        stop([d for d in daemons if d])  # by PID, waiting until they are gone
        subprocess.run(["ip", "netns", "del", ns], check=True)


def test_down_touches_only_what_the_lab_made(two_host_lab, bystanders):
    lab = two_host_lab
    lab.remember_processes()
    lab.run("down")
    lab.assert_gone()
    assert bystanders["netns"] in netns_with_prefix("bystander")
    assert bystanders["bridges"]().split() == ["br0"]
    assert bystanders["sleeper"].poll() is None


def test_a_namespace_with_the_labs_name_that_is_not_ours_is_refused_and_kept(make_lab):
    lab = make_lab()
    foreign = lab.netns("host1")
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        result = lab.run("up", check=False)
        assert result.returncode == 3
        assert f"network namespace {foreign} already exists" in result.stderr
        lab.run("down")
        assert netns_with_prefix(lab.prefix) == {foreign}
    finally:
        subprocess.run(["ip", "netns", "del", foreign], check=True)


def test_dead_controller_is_reported_fails_verify_and_up_restarts_it(two_host_lab):
    lab = two_host_lab
    pid = lab.status()["controller"]["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    status = lab.status()
    assert status["up"] is False and status["controller"]["running"] is False
    assert "controller os-ken is not running" in status["drift"]
    verify = lab.run("verify", check=False)
    assert verify.returncode == 1
    assert "controller os-ken is not running" in verify.stderr
    assert "started" in lab.run("up").stderr
    assert json.loads(lab.run("verify", "--json").stdout)["ok"] is True


def test_drift_behind_labctls_back_is_reported_and_up_repairs_it(two_host_lab):
    lab = two_host_lab
    subprocess.run(["ip", "netns", "del", lab.netns("vm2")], check=True)
    lab.on_host("host1", "ovs-vsctl", "del-port", "br0", "gre-host2")
    drift = lab.status()["drift"]
    assert "host2: VM vm2 is missing" in drift
    assert any(d.startswith("host1: missing port gre-host2 on br0") for d in drift)
    assert "drift:" in lab.run("status").stdout
    lab.run("up")
    assert lab.status()["drift"] == []
    assert json.loads(lab.run("verify", "--json").stdout)["ok"] is True


def test_labctl_never_runs_shell_strings():
    """Every command is an argv list: no shell=True and no os.system anywhere."""
    sources = "\n".join(p.read_text() for p in (REPO / "labctl").rglob("*.py"))
    assert "shell=True" not in sources and "os.system(" not in sources and "os.popen(" not in sources


def test_state_and_json_output_carry_no_inventory_secrets(two_host_lab):
    status = two_host_lab.run("status", "--json").stdout
    journal = (two_host_lab.state_dir / two_host_lab.name / "journal.jsonl").read_text()
    for text in (status, journal):
        assert "password" not in text.lower()
    assert labctl  # the helper stays importable for other tests
