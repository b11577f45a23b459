"""Watching the controller live: `trace --follow` prints each message as it arrives,
Ctrl-C ends it with nothing left behind, and a capture works with a controller
placed on a lab host (tcpdump -i any, each packet once)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time

import pytest

from labctl import processes
from labctl.processes import ProcessId
from tests.conftest import two_hosts
from tests.e2e.openflow_fields import compare
from tests.e2e.test_trace_every_message import tshark_openflow

pytestmark = pytest.mark.lab


class Follow:
    """`labctl trace --follow` running in the background, read line by line."""

    def __init__(self, lab, *args: str, sigint=signal.SIG_DFL):
        """`sigint`: how it inherits SIGINT -- SIG_IGN as a script's background job does,
        SIG_DFL from a terminal -- whatever ran the tests."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "labctl", "trace", "--follow", "-i", str(lab.inventory), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=lab.env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
        )
        self.lines: list[str] = []

    def started(self) -> str:
        """The notice it prints once it reads the capture (stderr)."""
        notice = self.proc.stderr.readline()
        assert notice, f"trace --follow ended at once: {self.proc.stderr.read()}"
        return notice

    def read_until(self, done, timeout: float = 60) -> list[str]:
        """Lines as they come, until done(lines) holds (or the time is up: the caller's
        assertion then shows what came)."""
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while not done(self.lines) and time.monotonic() < deadline:
            if selector.select(timeout=0.5):
                line = self.proc.stdout.readline()
                if not line:
                    break
                self.lines.append(line.rstrip("\n"))
        selector.close()
        return self.lines

    def stop(self, sig=signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        self.proc.stdout.read()
        self.proc.stderr.read()
        return self.proc.wait(timeout=30)


def follow_captures(lab) -> list[dict]:
    return [r for r in lab.journal() if r.get("role") == "capture" and r.get("follow")]


def test_follow_prints_the_ping_as_it_happens_and_ctrl_c_leaves_nothing(two_host_lab):
    lab = two_host_lab
    follow = Follow(lab, "--json", sigint=signal.SIG_IGN)  # `kill -INT` ends it even so
    assert "following the controller channel" in follow.started()
    [record] = follow_captures(lab)
    tcpdump = ProcessId(record["pid"], record["start"])
    assert processes.alive(tcpdump) and os.path.exists(record["file"])
    lab.run("exec", "vm1", "--", "ping", "-c1", "-W2", "172.16.0.2")

    def echo_answered(lines):
        return any("ICMP echo reply" in line and '"packet_out"' in line for line in lines)

    rows = [json.loads(line) for line in follow.read_until(echo_answered)]  # one JSON object a line
    assert follow.proc.poll() is None  # the lines came while it runs
    steps = [(r["host"], r["type"], r.get("summary", "")) for r in rows]
    assert steps[0] == ("host1", "packet_in", "ARP who-has 172.16.0.2[vm2] tell 172.16.0.1[vm1]")
    assert any(t == "flow_mod" for _, t, _ in steps) and echo_answered([json.dumps(r) for r in rows])
    assert 0 <= rows[0]["time"] < 120  # seconds since the follow began

    assert follow.stop(signal.SIGINT) == 0
    assert not processes.alive(tcpdump)
    assert not os.path.exists(record["file"]) and not os.path.exists(record["file"] + ".log")


def test_follow_reads_a_running_capture_and_leaves_it_running(two_host_lab, tmp_path):
    lab = two_host_lab
    pcap = tmp_path / "mine.pcap"
    lab.run("capture", "start", "-o", str(pcap))
    follow = Follow(lab, "--type", "flow_mod")
    assert f"following the running capture {pcap}" in follow.started()
    lab.run("exec", "vm1", "--", "ping", "-c1", "-W2", "172.16.0.2")
    lines = follow.read_until(lambda lines: len(lines) >= 2)
    assert len(lines) >= 2 and all("FLOW_MOD" in line for line in lines)
    assert "in_port=" in lines[0] and "idle=10 hard=30" in lines[0] and "flags=send_flow_rem" in lines[0]
    assert follow.stop(signal.SIGTERM) == 0  # SIGTERM ends it as Ctrl-C does
    assert not follow_captures(lab)  # it started nothing
    assert f"capture saved in {pcap}" in lab.run("capture", "stop").stdout  # still running until now
    assert "FLOW_MOD" in lab.run("trace", "--pcap", str(pcap)).stdout


def test_a_follow_killed_outright_is_cleaned_up_by_the_next_follow_or_by_down(make_lab):
    lab = make_lab()
    lab.run("up")

    def follow_killed_outright():
        follow = Follow(lab)
        follow.started()
        record = follow_captures(lab)[-1]
        follow.proc.kill()  # no cleanup runs
        follow.proc.wait(timeout=30)
        return ProcessId(record["pid"], record["start"]), record["file"]

    first, first_file = follow_killed_outright()
    assert processes.alive(first) and os.path.exists(first_file)  # what it left
    second, second_file = follow_killed_outright()  # the next follow found it abandoned
    assert not processes.alive(first)
    assert not os.path.exists(first_file) and not os.path.exists(first_file + ".log")
    assert processes.alive(second)
    lab.run("down")  # stops everything the lab started, a follow's capture too
    assert not processes.alive(second) and not os.path.exists(second_file)


def test_the_flows_leaving_after_their_idle_timeout_are_seen_live_with_the_reason(two_host_lab):
    lab = two_host_lab
    follow = Follow(lab, "--type", "flow_removed", "--host", "host1")
    follow.started()
    lab.run("exec", "vm1", "--", "ping", "-c1", "-W2", "172.16.0.2")

    def icmp_flows_gone(lines):
        return sum("dl_type=0x0800" in line for line in lines) >= 2

    lines = follow.read_until(icmp_flows_gone, timeout=60)  # the bundled app's flows: idle 10 s
    assert follow.stop() == 0
    icmp = [line for line in lines if "dl_type=0x0800" in line]
    assert len(icmp) == 2, lines
    for line in icmp:
        assert "host1 -> ctl" in line and "FLOW_REMOVED" in line and "reason=idle_timeout" in line
        # one ping: its one packet each way went out in a packet-out, none through the flow
        assert "idle=10" in line and "packets=0" in line
    assert any("match(in_port=1[vm1],dl_src=02:00:ac:10:00:01[vm1]" in line for line in icmp)
    assert any("match(in_port=2[gre-host2],dl_src=02:00:ac:10:00:02[vm2]" in line for line in icmp)


PLACED = two_hosts("  kind: os-ken\n  host: host1")


@pytest.mark.parametrize("openflow", ["1.0", "1.3"])
def test_a_controller_on_a_lab_host_is_captured_each_packet_once(make_lab, tmp_path, openflow):
    lab = make_lab(PLACED, openflow=openflow)
    pcap = tmp_path / "placed.pcap"
    lab.run("up")
    lab.run("capture", "start", "-o", str(pcap))
    lab.run("exec", "vm1", "--", "ping", "-c1", "-W2", "172.16.0.2")
    lab.run("capture", "stop")
    assert pcap.read_bytes()[20:24] == (276).to_bytes(4, "little")  # Linux cooked v2: -i any
    rows = json.loads(lab.run("trace", "--json", "--pcap", str(pcap)).stdout)
    steps = [(r["host"], r["type"], r.get("summary", "")) for r in rows]
    assert steps[0] == ("host1", "packet_in", "ARP who-has 172.16.0.2[vm2] tell 172.16.0.1[vm1]")
    assert {h for h, t, _ in steps if t == "flow_mod"} == {"host1", "host2"}  # both sessions: lo and br-phy
    # each message once: the controller numbers its messages per session, a switch its packet-ins' frames
    sent = [(r["host"], r["xid"]) for r in rows if r["direction"] == "controller->switch"]
    heard = [(r["host"], r["summary"]) for r in rows if r["type"] == "packet_in"]
    assert len(sent) == len(set(sent)) and len(heard) == len(set(heard))
    theirs = tshark_openflow(pcap)
    ours = json.loads(lab.run("trace", "--all", "--json", "--pcap", str(pcap)).stdout)
    assert len(ours) == len(theirs)
    assert not [p for mine, tshark in zip(ours, theirs, strict=True) for p in compare(mine, tshark)]
    follow = Follow(lab, "--type", "packet_in")  # the follow's own capture works there too
    assert "following the controller channel" in follow.started()
    lab.run("exec", "vm2", "--", "ping", "-c1", "-W2", "172.16.0.1")
    assert follow.read_until(lambda lines: any("ICMP echo request" in line for line in lines))
    assert follow.stop() == 0
