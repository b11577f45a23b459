"""Every OpenFlow message the lab sees, decoded and checked field by field against
tshark -- for OpenFlow 1.0 and 1.3 -- and the places where tshark stops and labctl
goes on (OVS's Nicira tunnel fields in an OpenFlow 1.3 match).

A test app beside l2_learning (tests/e2e/of_probe.py) asks each switch every
question the trace decodes when it connects; a controller restart makes both
switches connect while the capture runs, a ping makes packet-ins, packet-outs
and flow-mods, a VM's link going down and up makes port-status messages.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import two_hosts
from tests.e2e.openflow_fields import compare
from tests.e2e.test_trace import tshark_messages

pytestmark = pytest.mark.lab

LINK_DOWN = 1  # OFPPS_LINK_DOWN, in OpenFlow 1.0 and 1.3 alike
PROBED = two_hosts("  kind: os-ken\n  apps: [l2_learning, tests.e2e.of_probe]")
COMMON = {
    "hello",
    "features_request",
    "features_reply",
    "set_config",
    "get_config_request",
    "get_config_reply",
    "echo_request",
    "echo_reply",
    "flow_mod",
    "error",
    "barrier_request",
    "barrier_reply",
    "flow_removed",
    "packet_in",
    "packet_out",
    "port_status",
}
EVERY_TYPE = {
    "1.0": COMMON | {"stats_request", "stats_reply", "vendor"},
    "1.3": COMMON | {"multipart_request", "multipart_reply", "role_request", "role_reply"},
}


def tshark_openflow(pcap) -> list[dict[str, list]]:
    """tshark's OpenFlow messages in capture order (either version's dissector: a 1.0 lab
    still sees the controller's 1.3 hello)."""
    return tshark_messages(pcap, "openflow_v1", "openflow_v4")


def everything_seen(rows: list[dict]) -> bool:
    """Both switches answered the probe (its barrier comes last) and removed a flow
    for each reason; the VM's port went down and up again."""
    barriers = {r["host"] for r in rows if r["type"] == "barrier_reply"}
    reasons = {(r["host"], r["reason"]) for r in rows if r["type"] == "flow_removed"}
    expected = {(h, why) for h in ("host1", "host2") for why in ("idle_timeout", "hard_timeout", "delete")}
    return barriers == {"host1", "host2"} and reasons >= expected and port_went_down(rows) == "and up"


def port_went_down(rows: list[dict]) -> str | None:
    """'down' once host2 said its VM's link went down, 'and up' once it also said it
    came back."""
    states = [r["port"]["state"] & LINK_DOWN for r in rows if r["type"] == "port_status"]
    if LINK_DOWN not in states:
        return None
    return "and up" if 0 in states[states.index(LINK_DOWN) :] else "down"


def read_until(lab, pcap, done) -> list[dict]:
    """The capture's messages so far, read again until done(rows) holds (or two minutes
    went by: the caller's assertion then shows what came)."""
    deadline = time.monotonic() + 120
    while True:
        rows = json.loads(lab.run("trace", "--all", "--json", "--pcap", str(pcap)).stdout)
        if done(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def capture_every_message(lab, tmp_path):
    pcap = tmp_path / "every.pcap"
    lab.run("up")
    lab.run("capture", "start", "-o", str(pcap))
    lab.run("controller", "restart")  # both switches connect again, in the capture
    lab.run("exec", "vm1", "--", "ping", "-c1", "-W2", "172.16.0.2")
    # down, and up only once the switch told it: a busy vswitchd that sees both changes
    # in one turn of its loop sends a single port-status
    lab.on_host("host2", "ip", "link", "set", "vm2", "down")
    assert port_went_down(read_until(lab, pcap, port_went_down)) == "down"
    lab.on_host("host2", "ip", "link", "set", "vm2", "up")
    read_until(lab, pcap, everything_seen)  # the idle/hard timeouts of 1 s expire in OVS's own time
    stopped = lab.run("capture", "stop")
    assert str(pcap) in stopped.stdout  # the controller restart did not stop the capture
    assert "dropped" not in stopped.stderr  # tcpdump kept up: what the switches sent is all there
    return pcap


@pytest.mark.parametrize("openflow", ["1.0", "1.3"])
def test_every_message_type_agrees_with_tshark_on_every_field_it_shows(make_lab, tmp_path, openflow):
    lab = make_lab(PROBED, openflow=openflow)
    pcap = capture_every_message(lab, tmp_path)
    ours = json.loads(lab.run("trace", "--all", "--json", "--pcap", str(pcap)).stdout)
    theirs = tshark_openflow(pcap)
    assert everything_seen(ours)
    assert {m["type"] for m in ours} >= EVERY_TYPE[openflow]
    assert not [m for m in ours if "undecoded" in m]
    assert len(ours) == len(theirs)
    problems = [p for mine, tshark in zip(ours, theirs, strict=True) for p in compare(mine, tshark)]
    assert not problems, "\n".join(problems[:30])
    if openflow == "1.0":  # controller roles are a Nicira extension in 1.0; tshark does not decode it
        roles = {(m["subtype"], m["role"]) for m in ours if m["type"] == "vendor"}
        assert roles == {("role_request", "other"), ("role_reply", "other")}


def test_where_tshark_stops_at_the_nicira_tunnel_fields_the_trace_names_both_ends(make_lab, tmp_path):
    lab = make_lab(openflow="1.3")
    pcap = tmp_path / "tunnel.pcap"
    lab.run("up")
    lab.run("capture", "start", "-o", str(pcap))
    lab.run("exec", "vm1", "--", "ping", "-c1", "-W2", "172.16.0.2")
    lab.run("capture", "stop")
    ours = json.loads(lab.run("trace", "--json", "--pcap", str(pcap), "--type", "packet_in").stdout)
    tunnelled = [m for m in ours if m["host"] == "host2" and "tun_ipv4_src" in m["match"]]
    assert tunnelled, "no packet-in came through the tunnel"
    first = tunnelled[0]
    assert first["match_named"]["tun_ipv4_src"] == "10.250.0.1[host1]"
    assert first["match_named"]["tun_ipv4_dst"] == "10.250.0.2[host2]"
    theirs = [t for t in tshark_openflow(pcap) if t.get("openflow_v4.type") == ["10"]]
    tshark = theirs[ours.index(first)]  # the same packet-ins, in the same order
    assert "openflow_v4.oxm.undecoded" in tshark and "0x0001" in tshark["openflow_v4.oxm.class"]
    assert not compare(first, tshark)  # and where it does decode, it agrees
    line = lab.run("trace", "--pcap", str(pcap), "--host", "host2", "--type", "packet_in").stdout
    assert "in_port=2[gre-host1] tun_ipv4_src=10.250.0.1[host1] tun_ipv4_dst=10.250.0.2[host2]" in line
