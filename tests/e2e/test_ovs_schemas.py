"""The OVS transactions labctl sends, against a real ovsdb-server loaded with the schema of
each supported hypervisor's OVS (tests/data/ovs-schemas/: XCP-ng / Citrix Hypervisor 8.2's
2.5.3, XCP-ng 8.3 / XenServer 8 / Ubuntu 22.04's 2.17, Debian 12's 3.1).

labctl's own code does the work (labctl.ovs.Ovs: read the schema, apply the plan, read
back a snapshot) over a transport that reaches the private server as it reaches a host's
OVS. The client is this machine's ovs-vsctl; the database answers with the host's schema,
which is where a column the host's OVS lacks is refused.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from labctl.drivers.base import LabSession
from labctl.drivers.checks import host_checks
from labctl.drivers.ovs_host import OvsHostDriver
from labctl.inventory import parse_inventory
from labctl.ovs import DelPort, Ovs, OvsSchema, pending, render
from labctl.plan import plan_host
from labctl.progress import Reporter
from labctl.state import LabState
from tests.conftest import n_hosts
from tests.fakes.ovsdb import OVS_3_1, SCHEMAS, FakeOvsdb
from tests.private_ovsdb import PrivateOvsdb, have_ovsdb_server

pytestmark = pytest.mark.skipif(not have_ovsdb_server(), reason="needs Open vSwitch's ovsdb-server")

SCHEMA_FILES = sorted(SCHEMAS.glob("*.ovsschema"))
LAB = parse_inventory(n_hosts(3, name="schemas", topology="mesh", vms_per_host=2))
# A full plan: bridge with RSTP and its settings, two tunnels, two VM ports (RSTP edge
# ports) named as a Xen or XenServer host names them, and the controller target.
PLAN = plan_host(LAB, LAB.hosts[0], datapath_type="system", vm_ports=["vif1.0", "vif2.0"])


@pytest.fixture(params=SCHEMA_FILES, ids=[p.name for p in SCHEMA_FILES])
def host_db(request):
    server = PrivateOvsdb(request.param).start()
    yield server
    server.stop()


def test_every_supported_schema_is_here():
    versions = {json.loads(p.read_text())["version"] for p in SCHEMA_FILES}
    assert versions == {"7.12.2", "8.3.0", "8.3.1"}


def test_labctl_reads_the_host_schema_and_what_it_lacks(host_db):
    schema = Ovs(host_db.transport()).schema()
    assert schema.version == json.loads(host_db.schema.read_text())["version"]
    if schema.version.startswith("7."):  # OVS 2.5
        assert schema.lacks() == ["Controller.controller_queue_size (OVS 2.13+)"]
    else:
        assert schema.lacks() == []


def test_a_full_plan_applies_and_reads_back_without_drift(host_db):
    ovs = Ovs(host_db.transport())
    assert ovs.ensure(PLAN.commands) == list(PLAN.commands)
    assert ovs.ensure([PLAN.controller]) == [PLAN.controller]
    snap = ovs.snapshot()
    assert pending([*PLAN.commands, PLAN.controller], snap) == []
    bridge = snap.bridges["br0"]
    assert (bridge.fail_mode, bridge.rstp, bridge.other_config["disable-in-band"]) == ("secure", True, "true")
    assert bridge.ports == ["br0", "gre-host2", "gre-host3", "vif1.0", "vif2.0"]
    assert snap.port_config["vif1.0"] == {"rstp-port-admin-edge": "true"}
    # a VM rebuilt after drift: its port is unplugged, then plugged again
    ovs.apply([DelPort("br0", "vif1.0")])
    assert ovs.ensure(PLAN.commands) == [PLAN.commands[-2]]
    # up twice: nothing to do
    assert ovs.ensure([*PLAN.commands, PLAN.controller]) == []


def test_the_controller_settings_match_what_the_host_has(host_db):
    ovs = Ovs(host_db.transport())
    ovs.ensure([*PLAN.commands, PLAN.controller])
    code, out, err = host_db.vsctl(["ovs-vsctl", "--format=json", "--data=json", "list", "Controller"])
    assert code == 0, err
    table = json.loads(out)
    [row] = [dict(zip(table["headings"], r)) for r in table["data"]]
    assert (row["target"], row["max_backoff"], row["inactivity_probe"]) == (
        "tcp:10.250.0.254:6633",
        1000,
        5000,
    )
    if ovs.schema().has("Controller", "controller_queue_size"):
        assert row["controller_queue_size"] == 512
    else:  # this machine's ovs-vsctl knows the column, and shows it unset
        assert row["controller_queue_size"] == ["set", []]


def test_without_reading_the_schema_ovs_2_5_refuses_the_whole_transaction():
    """What `up` did before it read the schema: OVS 2.5 (XCP-ng 8.2) refuses the controller."""
    server = PrivateOvsdb(SCHEMAS / "ovs-2.5.3-xs8.2.ovsschema").start()
    try:
        assert server.vsctl(render(PLAN.commands))[0] == 0
        code, _, err = server.vsctl(render([PLAN.controller]))  # every column, as `labctl plan` shows
        assert code == 1 and "No column controller_queue_size in table Controller" in err
    finally:
        server.stop()


def test_doctor_says_what_the_host_s_ovs_lacks(host_db, tmp_path):
    text = n_hosts(1, name="doc", driver="ovs", address="127.0.0.1", controller="  address: 10.250.0.254")
    lab = parse_inventory(text)

    class OnPrivateDb(OvsHostDriver):
        @classmethod
        def connect(cls, name, address, access):
            return host_db.transport(name)

    driver = OnPrivateDb(LabSession(lab, LabState("doc", root=tmp_path), Reporter(quiet=True)), lab.hosts[0])
    checks = {c.name: c for c in host_checks(lab, driver)}
    schema = checks["OVS database schema"]
    version = json.loads(host_db.schema.read_text())["version"]
    assert schema.ok
    if version.startswith("7."):
        assert (
            schema.detail
            == f"schema {version}: labctl leaves out Controller.controller_queue_size (OVS 2.13+)"
        )
    else:
        assert schema.detail == f"schema {version}: has every column labctl sets"


def test_the_fake_ovsdb_serves_the_schema_ovsdb_server_serves():
    """tests/fakes/ovsdb.py answers `ovsdb-client get-schema` for the unit tests' hosts."""
    server = PrivateOvsdb(OVS_3_1).start()
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
