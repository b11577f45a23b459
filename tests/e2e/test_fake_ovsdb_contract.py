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
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from labctl.inventory import parse_inventory
from labctl.ovs import _QUERIES, AddBridge, SetController, render, undo_argv
from labctl.plan import plan_host
from tests.conftest import n_hosts
from tests.fakes.ovsdb import FakeOvsdb

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
VSWITCHD_COLUMNS = {"ofport", "error", "statistics", "mac_in_use", "mtu", "is_connected"}

pytestmark = pytest.mark.skipif(
    not (shutil.which("ovsdb-server") and SCHEMA.exists()), reason="needs Open vSwitch's ovsdb-server"
)


@pytest.fixture
def real_db():
    """ovs-vsctl argv -> (exit code, stdout, stderr), against a private ovsdb-server."""
    rundir = Path(tempfile.mkdtemp(prefix="ut-ovsdb-"))  # short: a unix socket path has 108 bytes
    subprocess.run(["ovsdb-tool", "create", str(rundir / "conf.db"), str(SCHEMA)], check=True)
    pidfile = rundir / "ovsdb-server.pid"
    subprocess.run(
        [
            "ovsdb-server",
            str(rundir / "conf.db"),
            f"--remote=punix:{rundir}/db.sock",
            f"--pidfile={pidfile}",
            f"--unixctl={rundir}/ovsdb-server.ctl",
            f"--log-file={rundir}/ovsdb-server.log",
            "--detach",
            "--no-chdir",
        ],
        check=True,
    )
    pid = int(pidfile.read_text().split()[0])

    def vsctl(argv: list[str]) -> tuple[int, str, str]:
        real = [argv[0], f"--db=unix:{rundir}/db.sock", "--no-wait", *argv[1:]]
        done = subprocess.run(real, capture_output=True, text=True, timeout=30)
        return done.returncode, done.stdout, done.stderr

    assert vsctl(["ovs-vsctl", "init"])[0] == 0
    yield vsctl
    os.kill(pid, signal.SIGTERM)  # our own ovsdb-server, by the PID it wrote
    for _ in range(200):
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.01)
    shutil.rmtree(rundir, ignore_errors=True)


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


def undo(kind: str, bridge: str, **fields) -> list[str]:
    """What `down` sends a real host to undo one journalled change (drivers/remote.py)."""
    return ["ovs-vsctl", "--timeout=10", *undo_argv({"kind": kind, "bridge": bridge, **fields})]


SETTINGS_BEFORE = {  # br-ext as the host had it, before a lab bridge of that name was set up on it
    "datapath_type": "",
    "fail_mode": "standalone",
    "protocols": ["OpenFlow10", "OpenFlow13"],
    "rstp": False,
    "other_config": {"datapath-id": None, "disable-in-band": "false"},
}


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
    ["ovs-vsctl", "--", "set", "bridge", "br0", "datapath_type="],
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
    # a bridge that was there before the lab: up changes it, down puts it back
    ["ovs-vsctl", "--", "set", "bridge", "br-ext", "fail_mode=standalone", "protocols=OpenFlow10,OpenFlow13"],
    ["ovs-vsctl", "--", "set", "bridge", "br-ext", "other_config:disable-in-band=false"],
    render(
        [
            AddBridge(
                "br-ext",
                "system",
                fail_mode="secure",
                protocols="OpenFlow13",
                other_config=(("datapath-id", "0000000000000009"), ("disable-in-band", "true")),
            ),
            SetController("br-ext", ("tcp:10.250.0.254:6633",)),
        ]
    ),
    ["ovs-vsctl", "--timeout=10", "br-exists", "br-ext"],
    ["ovs-vsctl", "--timeout=10", "br-exists", "br7"],
    undo("ovs-controller", "br-ext", before=[]),
    undo("ovs-controller", "br0", before=["tcp:10.0.0.1:6633", "tcp:10.0.0.2:6653"]),
    undo("ovs-port", "br-ext", port="eth1"),
    undo("ovs-port", "br-ext", port="eth1"),  # gone already: no error
    undo("ovs-bridge-settings", "br-ext", before=SETTINGS_BEFORE),
    undo("ovs-bridge-settings", "br-ext", before={**SETTINGS_BEFORE, "fail_mode": "", "protocols": []}),
    undo("ovs-bridge", "br-ext"),
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
