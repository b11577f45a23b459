"""The part-2 walk-through as a playbook: one ping, its OpenFlow exchange, ports and flows."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.lab

WALKTHROUGH = REPO / "playbooks" / "part2-walkthrough.yaml"


def test_the_part2_walkthrough_playbook_runs_end_to_end(make_lab, tmp_path):
    lab = make_lab()  # the playbook's steps on a lab of the test's own
    result = subprocess.run(
        [sys.executable, "-m", "labctl", "run", str(WALKTHROUGH), "-i", str(lab.inventory), "--json"],
        capture_output=True,
        text=True,
        env=lab.env,
        cwd=tmp_path,  # the playbook writes part2.pcap where it is run
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    report = json.loads(result.stdout)
    assert report["ok"] is True, result.stdout + result.stderr
    kinds = [s["kind"] for s in report["steps"]]
    assert kinds == [
        *("up", "capture", "ping", "flows-contain", "wait-for", "capture", "trace"),
        *("ports", "ports", "flows", "flows", "down"),
    ]
    assert {s["status"] for s in report["steps"]} == {"passed"}
    assert (tmp_path / "part2.pcap").stat().st_size > 0
    log = result.stderr
    assert "PACKET_IN" in log and "FLOW_MOD" in log
    assert "FLOW_REMOVED" in log and "reason=idle_timeout" in log  # the flow left after its idle 10 s
    assert "name=gre-host2" in log and "name=vm1" in log  # the port map, named
    assert "[host1] host=host1 flow=" in log  # the datapath flows


def test_the_observe_api_the_playbook_runner_calls_records_and_reads_one_ping(
    make_lab, tmp_path, monkeypatch
):
    from labctl import observe
    from labctl.inventory import load_inventory
    from labctl.lab import LabRunner
    from labctl.progress import Reporter

    lab = make_lab()
    lab.run("up")
    monkeypatch.setenv("LABCTL_STATE_DIR", lab.env["LABCTL_STATE_DIR"])
    runner = LabRunner(load_inventory(lab.inventory, simulate=False), Reporter(quiet=True))
    capture = observe.start_capture(runner, tmp_path / "api.pcap")
    assert capture.path == str(tmp_path / "api.pcap")
    lab.in_vm("vm1", "ping", "-c1", "-W2", "172.16.0.2")
    assert capture.stop() == capture.path
    assert observe.stop_capture(runner) is None  # nothing left running
    messages = observe.decode_pcap(capture.path, runner)
    first = messages[0]
    assert (first["host"], first["type"]) == ("host1", "packet_in")
    assert "PACKET_IN" in observe.render_line(first) and "[vm2]" in observe.render_line(first)
    assert {m["type"] for m in messages} >= {"packet_in", "packet_out", "flow_mod"}
    ports = observe.port_table(runner, host="host1", stats=True)
    assert {"vm1", "gre-host2", "br0"} <= {p.name for p in ports}
    assert observe.flow_table(runner, host="host1")
