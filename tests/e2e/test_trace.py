"""The classic part-2 exercise: capture the controller channel while VM1 pings VM2
once, then read the OpenFlow messages -- checked message by message against tshark."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, netns_with_prefix

pytestmark = pytest.mark.lab


def capture_one_ping(lab, tmp_path):
    pcap = tmp_path / "openflow.pcap"
    lab.run("up")
    lab.run("capture", "start", "-o", str(pcap))
    lab.run("exec", "vm1", "--", "ping", "-c1", "-W2", "172.16.0.2")
    assert str(pcap) in lab.run("capture", "stop").stdout
    return pcap


def flat(obj, out=None) -> dict[str, list]:
    """tshark's nested JSON (as lists of pairs) -> every field's values, in order.

    tshark repeats a key for a repeated field (one per OXM, per action), which a
    plain dict would collapse to the last one."""
    out = {} if out is None else out
    if isinstance(obj, list) and all(isinstance(p, tuple) and len(p) == 2 for p in obj):
        for key, value in obj:
            if isinstance(value, list):
                flat(value, out)
            else:
                out.setdefault(key, []).append(value)
    elif isinstance(obj, list):
        for item in obj:
            flat(item, out)
    return out


def tshark_messages(pcap, *layers: str) -> list[dict]:
    """tshark's messages of the given dissector layers, in capture order, each as its
    fields' values."""
    text = subprocess.run(
        ["tshark", "-r", str(pcap), "-d", "tcp.port==6633,openflow", "-T", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = []
    for frame in json.loads(text, object_pairs_hook=list):
        frame_layers = dict(dict(frame)["_source"])["layers"]
        found += [flat(value) for key, value in frame_layers if key in layers]
    return found


def number(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(text)


FIELDS = {  # our field -> tshark's, per OpenFlow version
    "1.0": {
        "type": "openflow_1_0.type",
        "xid": "openflow.xid",
        "buffer_id": "openflow.buffer_id",
        "in_port": "openflow.in_port",
        "total_len": "openflow.total_len",
        "reason": "openflow.reason",
        "output": "openflow.output_port",
        "command": "openflow.command",
        "idle": "openflow.idle_timeout",
        "hard": "openflow.hard_timeout",
        "priority": "openflow.priority",
    },
    "1.3": {
        "type": "openflow_v4.type",
        "xid": "openflow_v4.xid",
        "pi_buffer": "openflow_v4.packet_in.buffer_id",
        "total_len": "openflow_v4.packet_in.total_len",
        "reason": "openflow_v4.packet_in.reason",
        "po_buffer": "openflow_v4.packet_out.buffer_id",
        "po_in_port": "openflow_v4.packet_out.in_port",
        "output": "openflow_v4.action.output.port",
        "command": "openflow_v4.flowmod.command",
        "idle": "openflow_v4.flowmod.idle_timeout",
        "hard": "openflow_v4.flowmod.hard_timeout",
        "priority": "openflow_v4.flowmod.priority",
        "fm_buffer": "openflow_v4.flowmod.buffer_id",
    },
}


def compare(ours: dict, theirs: dict, version: str) -> None:
    f = FIELDS[version]

    def one(key):
        return number(theirs[f[key]][0])

    assert ours["type_code"] == one("type") and ours["xid"] == one("xid")
    version_field = "openflow.version" if version == "1.0" else "openflow_v4.version"
    assert {"1.0": 1, "1.3": 4}[ours["version"]] == number(theirs[version_field][0])
    outputs = [a["port_no"] for a in ours.get("actions", []) if a["type"] == "output"]
    if ours["type"] == "packet_in":
        buffer_key = "buffer_id" if version == "1.0" else "pi_buffer"
        assert (ours["buffer_id"], ours["total_len"], ours["reason_code"]) == (
            one(buffer_key),
            one("total_len"),
            one("reason"),
        )
        if version == "1.0":
            assert ours["in_port"] == one("in_port")
        elif "openflow_v4.oxm.value_uint32" in theirs:  # the in_port OXM
            assert ours["in_port"] == number(theirs["openflow_v4.oxm.value_uint32"][0])
        else:  # from a tunnel: OVS adds a Nicira tunnel OXM first, which tshark cannot decode
            assert theirs["openflow_v4.oxm.class"][0] == "0x0001" and "openflow_v4.oxm.undecoded" in theirs
    elif ours["type"] == "packet_out":
        if version == "1.0":
            assert (ours["buffer_id"], ours["in_port"] if isinstance(ours["in_port"], int) else None) == (
                one("buffer_id"),
                one("in_port"),
            )
        else:
            assert (ours["buffer_id"], ours["in_port"]) == (one("po_buffer"), one("po_in_port"))
        assert outputs == [number(v) for v in theirs[f["output"]]]
    elif ours["type"] == "flow_mod":
        buffer_key = "buffer_id" if version == "1.0" else "fm_buffer"
        assert (ours["idle_timeout"], ours["hard_timeout"], ours["priority"], ours["buffer_id"]) == (
            one("idle"),
            one("hard"),
            one("priority"),
            one(buffer_key),
        )
        assert outputs == [number(v) for v in theirs.get(f["output"], [])]
        assert ours["command_code"] == one("command")
        match = ours["match"]
        if version == "1.0":  # the exact 12-tuple match, field by field
            pairs = {
                "in_port": "openflow.in_port",
                "dl_src": "openflow.eth_src",
                "dl_dst": "openflow.eth_dst",
                "dl_type": "openflow.ofp_match.dl_type",
                "nw_proto": "openflow.ofp_match.nw_proto",
                "nw_src": "openflow.ofp_match.source_addr",
                "nw_dst": "openflow.ofp_match.dest_addr",
                "tp_src": "openflow.ofp_match.source_port",
                "tp_dst": "openflow.ofp_match.dest_port",
            }
            for field, key in pairs.items():
                if field in match:
                    mine, tsharks = match[field], theirs[key][0]
                    assert (
                        number(mine) if isinstance(mine, str) and mine.startswith("0x") else str(mine)
                    ) == (number(tsharks) if field == "dl_type" else tsharks), field
        else:  # the OXM match: every field there, and the same values by kind
            assert len(theirs["openflow_v4.oxm.field"]) == len(match)
            macs = [
                v for k, v in match.items() if k.endswith(("_src", "_dst", "_sha", "_tha")) and ":" in str(v)
            ]
            ips = [v for k, v in match.items() if "." in str(v)]
            assert macs == theirs.get("openflow_v4.oxm.value_etheraddr", [])
            assert ips == theirs.get("openflow_v4.oxm.value_ipv4addr", [])
            assert [f"0x{match['eth_type']:04x}"] == theirs["openflow_v4.oxm.value_ethertype"]
            assert [str(match["in_port"])] == theirs["openflow_v4.oxm.value_uint32"]


@pytest.mark.parametrize("openflow", ["1.0", "1.3"])
def test_trace_agrees_with_tshark_on_every_message(make_lab, tmp_path, openflow):
    lab = make_lab(openflow=openflow)
    pcap = capture_one_ping(lab, tmp_path)
    ours = json.loads(lab.run("trace", "--all", "--json", "--pcap", str(pcap)).stdout)
    theirs = tshark_messages(pcap, "openflow_v1" if openflow == "1.0" else "openflow_v4")
    assert len(ours) == len(theirs) >= 12
    for mine, tshark in zip(ours, theirs, strict=True):
        compare(mine, tshark, openflow)


def test_the_part2_sequence_reads_in_the_labs_names(make_lab, tmp_path):
    lab = make_lab()
    capture_one_ping(lab, tmp_path)
    rows = json.loads(lab.run("trace", "--json").stdout)
    steps = [(r["host"], r["type"], r.get("summary", "")) for r in rows]
    # ARP request packet-in -> flood packet-out
    assert steps[0] == ("host1", "packet_in", "ARP who-has 172.16.0.2[vm2] tell 172.16.0.1[vm1]")
    assert steps[1][:2] == ("host1", "packet_out") and rows[1]["actions_named"] == ["output:FLOOD"]
    assert rows[0]["in_port_name"] == "1[vm1]" and rows[0]["buffer_id"] == 0xFFFFFFFF  # full frame
    # ARP reply packet-in -> flow-mod; ICMP echo request packet-in -> flow-mod
    reply = next(i for i, s in enumerate(steps) if s[1] == "packet_in" and " is-at " in s[2])
    assert steps[reply + 1][1] == "flow_mod" and rows[reply + 1]["idle_timeout"] == 10
    echo = next(i for i, s in enumerate(steps) if s[1] == "packet_in" and "echo request" in s[2])
    assert steps[echo + 1][1] == "flow_mod"
    assert rows[echo + 1]["match_named"]["in_port"] in ("1[vm1]", "2[gre-host1]")
    text = lab.run("trace", "--type", "flow_mod", "--host", "host1").stdout.splitlines()
    assert text and all("FLOW_MOD" in line and "ctl -> host1" in line for line in text)


def test_the_part2_walkthrough_runs_end_to_end(make_lab, tmp_path):
    lab = make_lab()
    result = subprocess.run(
        ["bash", str(REPO / "playbooks" / "part2-walkthrough.sh"), "-i", str(lab.inventory)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**lab.env, "LABCTL": f"{sys.executable} -m labctl", "PCAP": str(tmp_path / "p.pcap")},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "PACKET_IN",
        "output:FLOOD",
        "FLOW_MOD",
        "ARP who-has 172.16.0.2[vm2]",
        "ICMP echo request 172.16.0.1[vm1] > 172.16.0.2[vm2]",
        "gre tunnel to host2",
        "in_port=1[vm1]",
        "host1  datapath",
        "FLOW_REMOVED",  # step 6: trace --follow saw the flows leave
        "reason=idle_timeout",
    ):
        assert expected in out, expected
    assert not netns_with_prefix(lab.prefix)  # the walk-through removed its lab
