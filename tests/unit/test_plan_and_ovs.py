"""Planning is pure: the same inventory always gives the same OVS commands and argv."""

from __future__ import annotations

from pathlib import Path

from labctl.inventory import parse_inventory
from labctl.ovs import AddBridge, AddPort, SetController, parse_snapshot, pending, render, rstp_unsettled
from labctl.plan import plan_host, tunnel_port, tunnels
from tests.conftest import n_hosts

DATA = Path(__file__).parent / "data"


def lab_of(n: int, topology: str = "star"):
    return parse_inventory(n_hosts(n, name="demo", topology=topology))


def test_star_joins_every_host_to_the_hub_only():
    assert [(t.a, t.b) for t in tunnels(lab_of(4))] == [
        ("host1", "host2"),
        ("host1", "host3"),
        ("host1", "host4"),
    ]


def test_mesh_joins_every_pair_and_turns_on_rstp_with_vm_edge_ports():
    lab = lab_of(4, "mesh")
    assert len(tunnels(lab)) == 6
    plan = plan_host(lab, lab.hosts[0], datapath_type="netdev", vm_ports=["vm1"])
    bridge = next(c for c in plan.commands if isinstance(c, AddBridge))
    assert bridge.rstp is True
    vm_port = next(c for c in plan.commands if isinstance(c, AddPort) and c.name == "vm1")
    assert vm_port.port_config == (("rstp-port-admin-edge", "true"),)


def test_host_plan_has_bridge_tunnels_vm_ports_and_controller():
    lab = lab_of(2)
    plan = plan_host(lab, lab.hosts[0], datapath_type="netdev", vm_ports=["vm1"])
    assert plan.commands == (
        AddBridge(
            "br0",
            "netdev",
            fail_mode="secure",
            protocols="OpenFlow10",
            other_config=(("datapath-id", "0000000000000001"), ("disable-in-band", "true")),
        ),
        AddPort("br0", "gre-host2", "gre", (("remote_ip", "10.250.0.2"),), ofport=2),
        AddPort("br0", "vm1", ofport=1),
    )
    assert plan.controller == SetController("br0", ("tcp:10.250.0.254:6633",))
    assert tunnel_port(lab, "host2") == "gre-host2"


def test_every_port_asks_for_its_own_openflow_number_vms_first_then_tunnels():
    """A port made again (a tunnel someone deleted, a VM rebuilt) gets its old number back:
    the flows a controller installed toward it stay true."""
    lab = lab_of(4)
    hub = plan_host(lab, lab.hosts[0], datapath_type="netdev", vm_ports=["vm1", "vm5"])
    numbers = {c.name: c.ofport for c in hub.commands if isinstance(c, AddPort)}
    assert numbers == {"vm1": 1, "vm5": 2, "gre-host2": 3, "gre-host3": 4, "gre-host4": 5}
    port = AddPort("br0", "vm1", ofport=1)
    assert port.argv() == [
        "--may-exist",
        "add-port",
        "br0",
        "vm1",
        "--",
        "set",
        "interface",
        "vm1",
        "ofport_request=1",
    ]


def test_render_is_one_ovs_vsctl_transaction_with_may_exist():
    argv = render(
        [
            AddBridge("br0", "netdev", fail_mode="secure"),
            AddPort("br0", "gre-h2", "gre", (("remote_ip", "10.0.0.2"),)),
        ]
    )
    assert argv[0] == "ovs-vsctl" and argv.count("ovs-vsctl") == 1
    assert argv[2:] == [
        "--",
        "--may-exist",
        "add-br",
        "br0",
        "--",
        "set",
        "bridge",
        "br0",
        "datapath_type=netdev",
        "rstp_enable=false",
        "fail_mode=secure",
        "--",
        "--may-exist",
        "add-port",
        "br0",
        "gre-h2",
        "--",
        "set",
        "interface",
        "gre-h2",
        "type=gre",
        "options:remote_ip=10.0.0.2",
    ]


def test_snapshot_of_a_real_host_parses_and_nothing_is_pending():
    snap = parse_snapshot((DATA / "ovs_snapshot_host1.json").read_text())
    assert set(snap.bridges) == {"br0", "br-phy"}
    br0 = snap.bridges["br0"]
    assert br0.ports == ["br0", "gre-host2", "vm1"]
    # captured right after `up`: OVSDB refreshes is_connected only every few seconds
    assert br0.connected == {"tcp:10.250.0.254:6633": False}
    assert snap.interfaces["gre-host2"].options == {"remote_ip": "10.250.0.2"}
    assert snap.interfaces["vm1"].ofport == 1
    lab = lab_of(2)
    plan = plan_host(lab, lab.hosts[0], datapath_type="netdev", vm_ports=["vm1"])
    assert pending([*plan.commands, plan.controller], snap) == []


def test_drift_shows_as_pending_commands():
    snap = parse_snapshot((DATA / "ovs_snapshot_host1.json").read_text())
    wanted = [
        AddPort("br0", "gre-host3", "gre", (("remote_ip", "10.250.0.3"),)),
        SetController("br0", ("tcp:10.250.0.253:6633",)),
    ]
    assert pending(wanted, snap) == wanted


RSTP_SHOW = """
  Interface  Role       State      Cost     Pri.Nbr
  ---------- ---------- ---------- -------- -------
  vif1.0     Designated Forwarding 2000     128.4
  gre-xs1    Root       Forwarding 2000     128.1
  gre-kvm1   Alternate  Discarding 2000     128.2
  gre-kvm2   Designated Discarding 2000     128.3
"""


def test_rstp_is_settled_when_only_alternates_discard():
    assert rstp_unsettled(RSTP_SHOW) == ["gre-kvm2 (designated, discarding)"]
    assert rstp_unsettled(RSTP_SHOW.replace("Designated Discarding", "Designated Forwarding")) == []


def test_render_leaves_out_the_optional_columns_the_host_schema_lacks():
    from labctl.ovs import OvsSchema

    controller = SetController("br0", ("tcp:10.250.0.254:6633",))
    old = OvsSchema.parse('{"version": "7.12.2", "tables": {"Controller": {"columns": {"target": {}}}}}')
    new = OvsSchema.parse(
        '{"version": "8.3.1", "tables": {"Controller": {"columns": {"controller_queue_size": {}}}}}'
    )
    assert render([controller]).count("controller_queue_size=512") == 1  # `labctl plan`: every column
    assert render([controller], schema=new).count("controller_queue_size=512") == 1
    assert not any(a.startswith("controller_queue_size") for a in render([controller], schema=old))
    unread = OvsSchema.unreadable()  # ovsdb-client missing or failing: none of the optional columns
    assert not any(a.startswith("controller_queue_size") for a in render([controller], schema=unread))
    assert old.lacks() == unread.lacks() == ["Controller.controller_queue_size (OVS 2.13+)"]
    assert new.lacks() == []


def test_the_schema_is_read_once_per_host_and_again_after_an_unreadable_answer():
    from labctl.ovs import SCHEMA_READ, Ovs
    from labctl.transport.base import Completed, Transport

    class Host(Transport):
        name = "host1"

        def __init__(self, answers):
            self.answers, self.reads = list(answers), 0

        def _run(self, argv, *, input, timeout):
            assert list(argv) == SCHEMA_READ
            self.reads += 1
            return self.answers.pop(0)

        spawn = put_file = get_file = None

    schema = '{"version": "8.3.1", "tables": {"Controller": {"columns": {"controller_queue_size": {}}}}}'
    read = tuple(SCHEMA_READ)
    host = Host([Completed(read, 1, "", "ovsdb-client: failed to connect"), Completed(read, 0, schema, "")])
    assert Ovs(host).schema().version == "unknown"  # the daemon not answering yet: not kept
    assert Ovs(host).schema().version == "8.3.1"
    assert Ovs(host).schema().version == "8.3.1"  # another phase of the same run: no second read
    assert host.reads == 2
