"""The fake OVS database the unit tests use answers as a real ovsdb-server does.

The same ovs-vsctl argv go to a real ovsdb-server (in a temporary directory,
no root, no ovs-vswitchd: `--no-wait`) and to tests/fakes/ovsdb.py; exit
codes, error lines and the JSON of every table must be the same, save the
UUIDs and the row order (OVSDB's is a hash's) and the columns ovs-vswitchd
fills in, which a database without it leaves empty. When labctl starts using
ovs-vsctl differently, the fake must follow, and this test says where not.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from labctl.inventory import parse_inventory
from labctl.ovs import _QUERIES, OvsSchema, SetController, render
from labctl.plan import plan_host
from tests.conftest import n_hosts
from tests.fakes.ovsdb import OVS_3_1, FakeOvsdb
from tests.private_ovsdb import PrivateOvsdb, have_ovsdb_server

SCHEMA = OVS_3_1  # the fake answers as OVS 3.1 does
VSWITCHD_COLUMNS = {"ofport", "error", "statistics", "mac_in_use", "is_connected"}

pytestmark = pytest.mark.skipif(not have_ovsdb_server(), reason="needs Open vSwitch's ovsdb-server")


@pytest.fixture
def real_db():
    """ovs-vsctl argv -> (exit code, stdout, stderr), against a private ovsdb-server."""
    server = PrivateOvsdb(SCHEMA).start()
    yield server.vsctl
    server.stop()


def snapshot_argv() -> list[str]:
    argv = ["ovs-vsctl", "--timeout=10", "--format=json", "--data=json"]
    for table, columns in _QUERIES:
        argv += ["--", f"--columns={columns}", "list", table]
    return argv


def comparable(text: str) -> list:
    """Each table of a snapshot with UUIDs replaced by what they name, rows sorted, and the
    columns ovs-vswitchd fills in blanked."""
    decoder, pos, tables = json.JSONDecoder(), 0, []
    while pos < len(text.strip()):
        obj, pos = decoder.raw_decode(text, pos)
        while pos < len(text) and text[pos].isspace():
            pos += 1
        tables.append(obj)
    names = {}
    for table in tables:
        for row in table["data"]:
            named = dict(zip(table["headings"], row))
            if "_uuid" in named:
                names[named["_uuid"][1]] = named.get("name") or named.get("target")

    def plain(value):
        if isinstance(value, list) and len(value) == 2 and value[0] == "uuid":
            return ["uuid", names.get(value[1], "?")]
        if isinstance(value, list) and len(value) == 2 and value[0] == "set":
            return ["set", sorted((plain(v) for v in value[1]), key=json.dumps)]
        return value

    out = []
    for table in tables:
        rows = [
            [None if h in VSWITCHD_COLUMNS else plain(v) for h, v in zip(table["headings"], row)]
            for row in table["data"]
        ]
        out.append({"headings": table["headings"], "data": sorted(rows, key=json.dumps)})
    return out


LAB = parse_inventory(n_hosts(3, name="contract", topology="mesh"))
PLAN = plan_host(LAB, LAB.hosts[0], datapath_type="system", vm_ports=["vm1"])

STEPS = [
    render(PLAN.commands),  # what `up` sends a fresh host
    render(PLAN.commands),  # and again: --may-exist makes it a no-op
    render([PLAN.controller]),
    render([SetController("br0", ("tcp:10.250.0.254:6633", "tcp:10.250.0.253:6633"))]),
    render([PLAN.controller]),
    ["ovs-vsctl", "--", "add-port", "br9", "p1"],
    ["ovs-vsctl", "--", "add-port", "br0", "vm1"],
    ["ovs-vsctl", "--", "add-br", "br0"],
    ["ovs-vsctl", "--", "add-br", "vm1"],
    ["ovs-vsctl", "--", "add-br", "br1", "--", "add-port", "br1", "vm1"],
    ["ovs-vsctl", "--", "add-br", "br1", "--", "--may-exist", "add-port", "br1", "vm1"],
    ["ovs-vsctl", "--", "set", "bridge", "br0", "foo=bar"],
    ["ovs-vsctl", "--", "set", "bridge", "br0", "datapath=netdev"],
    ["ovs-vsctl", "--", "set", "bridge", "br0", "fail_mode=insecure"],
    ["ovs-vsctl", "--", "set", "bridge", "br0", "rstp_enable=maybe"],
    ["ovs-vsctl", "--", "set", "bridge", "br0", "protocols=OpenFlow99"],
    ["ovs-vsctl", "--", "set", "bridge", "br0", "name:x=y"],
    ["ovs-vsctl", "--", "set", "interface", "nosuch", "type=gre"],
    ["ovs-vsctl", "--", "set", "controller", "br0", "max_backoff=abc"],
    ["ovs-vsctl", "--", "--columns=_uuid,nope", "list", "Bridge"],
    ["ovs-vsctl", "--", "list", "Nope"],
    ["ovs-vsctl", "--", "list", "f"],
    ["ovs-vsctl", "--", "del-br", "br7"],
    ["ovs-vsctl", "--", "--if-exists", "del-br", "br7"],
    ["ovs-vsctl", "--", "del-port", "br0", "nope"],
    ["ovs-vsctl", "--", "--if-exists", "del-port", "br0", "nope"],
    ["ovs-vsctl", "--", "frobnicate"],
    ["ovs-vsctl", "--", "--if-exists", "add-br", "br3"],
    ["ovs-vsctl", "--", "set-controller", "br7", "tcp:10.250.0.254:6633"],
    # one transaction: the valid first half must not stay
    ["ovs-vsctl", "--", "set", "bridge", "br0", "datapath_type=netdev", "--", "add-port", "br0", "gre-host2"],
    ["ovs-vsctl", "--", "--if-exists", "del-port", "br0", "gre-host3"],
    ["ovs-vsctl", "--", "add-br", "br-ext", "--", "add-port", "br-ext", "eth1"],
    ["ovs-vsctl", "--format=json", "--data=json", "--", "--columns=NAME,dataPATH_t", "list", "bri"],
    ["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", "br7"],  # as `down` does on a real host
    ["ovs-vsctl", "--may-exist", "add-br", "br0", "--", "--may-exist", "add-port", "br0", "p1"],
    ["ovs-vsctl", "--frob", "add-br", "br0"],
    ["ovs-vsctl", "--if-exists", "add-br", "br5"],
    ["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", "br0"],
]


def test_the_fake_answers_every_step_as_ovsdb_server_does(real_db):
    fake = FakeOvsdb()
    for argv in STEPS:
        want, got = real_db(argv), fake.vsctl(argv)
        assert got[0] == want[0], f"{argv}: exit {got[0]}, ovs-vsctl exits {want[0]}: {want[2]}"
        assert got[2] == want[2], argv
        assert comparable(got[1]) == comparable(want[1]), argv
        want_tables, got_tables = real_db(snapshot_argv())[1], fake.vsctl(snapshot_argv())[1]
        assert comparable(got_tables) == comparable(want_tables), f"after {argv}"


def test_the_fake_serves_the_schema_ovsdb_server_serves():
    server = PrivateOvsdb(SCHEMA).start()
    try:
        real = subprocess.run(
            ["ovsdb-client", "get-schema", server.remote, "Open_vSwitch"], capture_output=True, text=True
        )
    finally:
        server.stop()
    code, out, err = FakeOvsdb().client(["ovsdb-client", "get-schema", "Open_vSwitch"])
    assert (code, err) == (real.returncode, real.stderr)
    # ovsdb-server normalizes the JSON (defaults spelled out); what labctl reads of it is the same
    assert OvsSchema.parse(out) == OvsSchema.parse(real.stdout)
