"""A playbook can record and read the controller channel, as the part-2 walk-through does."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.lab

OBSERVE = """\
name: observe
steps:
  - up
  - capture: {{action: start, file: {pcap}}}
  - ping: {{from: vm1, to: vm2, count: 1}}
  - capture: {{action: stop}}
  - trace: {{name: the controller answered with flows, contains: [PACKET_IN, FLOW_MOD]}}
  - ports: {{host: host1}}
  - flows: {{host: host1}}
  - down
"""


def test_capture_trace_ports_and_flows_steps_show_the_openflow_exchange_of_one_ping(make_lab, tmp_path):
    lab = make_lab()
    pcap = tmp_path / "of.pcap"
    book = tmp_path / "observe.yaml"
    book.write_text(OBSERVE.format(pcap=pcap))
    result = lab.run("run", str(book), "--json")
    steps = {s["kind"] + str(i): s for i, s in enumerate(json.loads(result.stdout)["steps"])}
    assert [s["status"] for s in steps.values()] == ["passed"] * 8, result.stdout
    assert steps["capture3"]["message"] == f"saved {pcap}" and pcap.stat().st_size > 0
    assert "[trace]" in result.stderr and "FLOW_MOD" in result.stderr  # the decoded messages, shown
    assert steps["ports5"]["message"] == "3 ports"  # br0 on host1: LOCAL, vm1, gre-host2
    assert "[host1] host=host1 ofport=1 name=vm1" in result.stderr
