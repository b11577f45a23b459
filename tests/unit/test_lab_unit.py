"""up, status, down and drift for a lab of real `ovs` hosts, against fake hosts.

No root, no namespaces, no Open vSwitch: each host is a fake that records every
argv labctl runs and answers as the real commands do (tests/fakes/). labctl
reaches it through the driver registry (the `ovs` kind, whose `connect` gives
a fake host, also when `down` works from the journal alone, and whose
`controller_site` is this machine, faked, where the controller runs). The controller is
a stand-in process, so its PID and liveness are real.
"""

from __future__ import annotations

import sys

import pytest

from labctl import processes
from labctl.drivers import DRIVERS
from labctl.errors import ProvisionError
from labctl.inventory import parse_inventory
from labctl.lab import LabRunner, teardown
from labctl.progress import Reporter
from labctl.state import LabState
from tests.conftest import n_hosts
from tests.fakes.ovsdb import SCHEMAS
from tests.fakes.recording_transport import FakeWorld

CONTROLLER = "10.250.0.254"
TARGET = f"tcp:{CONTROLLER}:6633"
# Loopback addresses: were a command ever to miss the fakes, it would not leave this machine.
INVENTORY = n_hosts(2, name="ut", driver="ovs", address="127.0.0.1{i}", controller=f"  address: {CONTROLLER}")


def build(host: int, peer: int) -> list[str]:
    """The one transaction that makes a fresh host's bridge, tunnel and VM port."""
    return [
        "ovs-vsctl", "--timeout=30",
        "--", "--may-exist", "add-br", "br0",
        "--", "set", "bridge", "br0", "datapath_type=system", "rstp_enable=false", "fail_mode=secure",
        "protocols=OpenFlow10", f"other_config:datapath-id=000000000000000{host}",
        "other_config:disable-in-band=true",
        "--", "--may-exist", "add-port", "br0", f"gre-host{peer}",
        "--", "set", "interface", f"gre-host{peer}", "type=gre", f"options:remote_ip=10.250.0.{peer}",
        "ofport_request=2",
        "--", "--may-exist", "add-port", "br0", f"vm{host}",
        "--", "set", "interface", f"vm{host}", "ofport_request=1",
    ]  # fmt: skip


POINT_AT_CONTROLLER = [
    "ovs-vsctl", "--timeout=30",
    "--", "set-controller", "br0", TARGET,
    "--", "set", "controller", "br0",
    "max_backoff=1000", "inactivity_probe=5000", "controller_queue_size=512",
]  # fmt: skip
OS_KEN = [
    sys.executable, "-m", "labctl.controllers.osken_runner",
    "--ofp-listen-host", CONTROLLER, "--ofp-tcp-listen-port", "6633", "l2_learning",
]  # fmt: skip
OVS_READS = ("--version", "show", "list", "wait-until")


@pytest.fixture
def world(monkeypatch):
    world = FakeWorld(controller_address=CONTROLLER)
    for i in (1, 2):
        world.add_host(f"host{i}", f"127.0.0.1{i}", f"10.250.0.{i}")
    monkeypatch.setitem(DRIVERS, "ovs", world.ovs_host_kind())
    yield world
    world.close()


@pytest.fixture
def state_root(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def labctl(world, state_root):
    """labctl() -> a LabRunner for the lab, new for each command as the CLI makes one."""
    lab = parse_inventory(INVENTORY)

    def runner(text: str | None = None) -> LabRunner:
        this = parse_inventory(text) if text else lab
        state = LabState(this.name, root=state_root)
        return LabRunner(this, Reporter(quiet=True), state)

    yield runner
    teardown(LabState(lab.name, root=state_root), Reporter(quiet=True))


def transactions(world: FakeWorld, host: str) -> list[list[str]]:
    """The ovs-vsctl runs on a host that change something."""
    return [
        list(argv)
        for argv in world.argv_on(host)
        if argv[0] == "ovs-vsctl" and not any(word in argv for word in OVS_READS)
    ]


def changes_on(world: FakeWorld, where: str) -> list[tuple[str, ...]]:
    """Every command run there that changes something: OVS transactions, ip and ethtool
    that are not a listing, started processes."""
    found = []
    for call in world.calls:
        if call.where != where:
            continue
        argv = call.argv
        transaction = argv[0] == "ovs-vsctl" and not any(word in argv for word in OVS_READS)
        if call.spawned or transaction or argv[0] == "ethtool" or (argv[0] == "ip" and "-j" not in argv):
            found.append(argv)
    return found


def journal(state_root) -> set[tuple]:
    return {
        (r["kind"], r.get("host"), r.get("bridge") or r.get("netns") or r.get("role"))
        for r in LabState("ut", root=state_root).records()
    }


# --- up ----------------------------------------------------------------------------------


def test_up_builds_each_fresh_host_in_one_transaction_then_points_it_at_the_controller(world, labctl):
    labctl().up()

    # The bridge, its tunnel and its VM port in one ovs-vsctl; the controller target once
    # the controller listens and the tunnel peer answers.
    assert transactions(world, "host1") == [build(1, peer=2), POINT_AT_CONTROLLER]
    assert transactions(world, "host2") == [build(2, peer=1), POINT_AT_CONTROLLER]
    assert world.hosts["host1"].ovs.bridges() == {"br0": ["br0", "gre-host2", "vm1"]}
    assert world.hosts["host2"].ovs.controllers() == {"br0": [TARGET]}
    assert [c.argv for c in world.calls if c.spawned] == [tuple(OS_KEN)]
    # each tunnel peer was pinged over the underlay before the bridge was pointed at the controller
    assert ("ping", "-n", "-q", "-c", "1", "-W", "2", "10.250.0.2") in world.argv_on("host1")


def test_up_sets_only_the_columns_each_host_s_ovs_has(world, labctl, monkeypatch):
    """XCP-ng 8.2's OVS 2.5 has no Controller.controller_queue_size (OVS 2.13): a transaction
    naming it fails whole there. labctl reads each host's schema and leaves it out."""
    old = world.add_host("host1", "127.0.0.11", "10.250.0.1", schema=SCHEMAS / "ovs-2.5.3-xs8.2.ovsschema")
    labctl().up()
    without_queue = [a for a in POINT_AT_CONTROLLER if not a.startswith("controller_queue_size")]
    assert transactions(world, "host1") == [build(1, peer=2), without_queue]
    assert transactions(world, "host2") == [build(2, peer=1), POINT_AT_CONTROLLER]
    assert ("ovsdb-client", "get-schema", "Open_vSwitch") in world.argv_on("host1")
    assert old.ovs.controllers() == {"br0": [TARGET]}
    assert labctl().status()["drift"] == []


def test_up_makes_each_vm_a_namespace_with_its_address_on_a_veth_into_br0(world, labctl):
    labctl().up()
    linux = world.hosts["host2"].linux
    assert linux.namespaces == {"lc-ut-vm2"}
    nic = linux.links[("lc-ut-vm2", "eth0")]
    assert (nic.mac, nic.addrs, nic.up) == ("02:00:ac:10:00:02", ["172.16.0.2/24"], True)
    assert nic.peer == (None, "vm2") and linux.links[(None, "vm2")].up
    # both ends of the VM's veth take what a GRE tunnel leaves of a 1500-byte underlay
    assert (nic.mtu, linux.links[(None, "vm2")].mtu) == (1462, 1462)
    assert linux.sysctls[("lc-ut-vm2", "net.ipv6.conf.all.disable_ipv6")] == "1"


def test_up_journals_what_it_made_before_down_needs_it(world, labctl, state_root):
    labctl().up()
    assert journal(state_root) == {
        ("process", None, "controller"),
        ("ovs-host-vm", "host1", "lc-ut-vm1"),
        ("ovs-host-vm", "host2", "lc-ut-vm2"),
        ("ovs-bridge", "host1", "br0"),
        ("ovs-bridge", "host2", "br0"),
    }
    bridge = next(r for r in LabState("ut", root=state_root).records("ovs-bridge") if r["host"] == "host1")
    assert bridge["address"] == "127.0.0.11" and bridge["driver"] == "ovs"  # enough to find it again


def test_a_second_up_changes_nothing(world, labctl):
    labctl().up()
    world.calls.clear()
    assert labctl().up() == 0
    for where in ("host1", "host2", "controller"):
        assert changes_on(world, where) == [], where


def test_an_unreachable_tunnel_peer_stops_up_before_the_bridge_is_pointed_at_the_controller(world, labctl):
    world.cut.add(("host1", "10.250.0.2"))
    with pytest.raises(ProvisionError) as failed:
        labctl().up()
    assert str(failed.value) == "host1: reach tunnel peers failed: host2 (10.250.0.2) does not answer"
    assert transactions(world, "host1") == [build(1, peer=2)]


def test_a_host_without_open_vswitch_is_refused_before_anything_is_made_on_it(world, labctl):
    world.hosts["host2"].has_ovs = False
    with pytest.raises(ProvisionError) as failed:
        labctl().up()
    assert str(failed.value) == "host2: check Open vSwitch failed: ovs-vsctl not found: install openvswitch"
    assert changes_on(world, "host2") == []


def test_a_remote_controller_is_waited_for_on_each_bridge(world, labctl, tmp_path):
    remote = INVENTORY.replace(f"  address: {CONTROLLER}", f"  kind: remote\n  address: {CONTROLLER}")
    # someone else's controller, already listening
    theirs = ["their-controller", "--ofp-listen-host", CONTROLLER, "--ofp-tcp-listen-port", "6633"]
    world.machine.spawn(theirs, str(tmp_path / "their-controller.log"))
    labctl(remote).up()
    assert not [c for c in world.calls if c.spawned]
    wait = ("ovs-vsctl", "--timeout=30", "wait-until", "Controller", "br0", "is_connected=true")
    assert wait in world.argv_on("host1") and wait in world.argv_on("host2")
    status = labctl(remote).status()
    assert status["up"] is True and status["controller"]["running"] is None


# --- status and drift ----------------------------------------------------------------------


def test_status_of_a_lab_just_up_shows_it_up_without_drift(world, labctl):
    labctl().up()
    status = labctl().status()
    assert status["up"] is True and status["drift"] == []
    host1 = next(h for h in status["hosts"] if h["name"] == "host1")
    assert host1["ports"] == [
        {"name": "br0", "ofport": 65534, "type": "internal"},
        {"name": "gre-host2", "ofport": 2, "type": "gre", "remote_ip": "10.250.0.2"},
        {"name": "vm1", "ofport": 1, "type": "system", "vm": "vm1"},
    ]
    assert host1["controllers"] == [{"target": TARGET, "connected": True}]
    assert (host1["fail_mode"], host1["protocols"], host1["datapath_type"]) == (
        "secure",
        ["OpenFlow10"],
        "system",
    )
    assert status["controller"]["running"] is True and status["controller"]["where"] == "on this machine"


def test_a_deleted_tunnel_port_is_drift_and_up_puts_it_back(world, labctl):
    labctl().up()
    world.hosts["host1"].admin("ovs-vsctl", "del-port", "br0", "gre-host2")

    status = labctl().status()
    assert status["drift"] == ["host1: missing port gre-host2 on br0 (gre to 10.250.0.2)"]
    assert status["up"] is False

    world.calls.clear()
    assert labctl().up() == 1
    assert transactions(world, "host1") == [
        ["ovs-vsctl", "--timeout=30", "--", "--may-exist", "add-port", "br0", "gre-host2",
         "--", "set", "interface", "gre-host2", "type=gre", "options:remote_ip=10.250.0.2",
         "ofport_request=2"],
    ]  # fmt: skip
    assert transactions(world, "host2") == []
    assert labctl().status()["drift"] == []


def test_a_stopped_controller_is_drift_and_up_starts_it_again(world, labctl):
    labctl().up()
    world.machine.stop_controllers()

    status = labctl().status()
    assert status["drift"] == ["controller os-ken is not running"]
    assert status["up"] is False and status["controller"]["running"] is False
    assert [h["connected"] for h in status["hosts"]] == [False, False]

    world.calls.clear()
    assert labctl().up() == 1
    assert [c.argv for c in world.calls if c.spawned] == [tuple(OS_KEN)]
    assert transactions(world, "host1") == [] and transactions(world, "host2") == []
    assert labctl().status()["drift"] == []


PURGE = ("ovs-appctl", "revalidator/purge")


def test_bridges_whose_session_is_new_forget_the_misses_their_datapath_cached_without_one(world, labctl):
    """A table miss while a bridge has no controller is cached as a drop; once its session
    is back, up empties that cache, or a VM retrying ARP stays cut off (issue 19's
    `controller killed` case)."""
    labctl().up()
    assert all(PURGE in world.argv_on(h) for h in ("host1", "host2"))

    world.calls.clear()
    labctl().up()  # the same sessions: nothing to forget
    assert all(PURGE not in world.argv_on(h) for h in ("host1", "host2"))

    world.machine.stop_controllers()
    world.calls.clear()
    labctl().up()
    assert all(PURGE in world.argv_on(h) for h in ("host1", "host2"))


def test_a_vm_whose_namespace_went_is_rebuilt_and_its_port_plugged_again(world, labctl):
    labctl().up()
    host1 = world.hosts["host1"]
    host1.admin("ip", "netns", "del", "lc-ut-vm1")  # its veth goes with it
    ports = {p["name"]: p for h in labctl().status()["hosts"] for p in h["ports"] if h["name"] == "host1"}
    assert ports["vm1"]["error"] == "could not open network device vm1 (No such device)"

    world.calls.clear()
    labctl().up()
    # OVS would keep a socket on the old device: unplugged and plugged again, in two transactions
    assert transactions(world, "host1") == [
        ["ovs-vsctl", "--timeout=30", "--", "--if-exists", "del-port", "br0", "vm1"],
        ["ovs-vsctl", "--timeout=30", "--", "--may-exist", "add-port", "br0", "vm1",
         "--", "set", "interface", "vm1", "ofport_request=1"],
    ]  # fmt: skip
    assert host1.linux.namespaces == {"lc-ut-vm1"} and host1.linux.device_exists("vm1")
    ports = {p["name"]: p for h in labctl().status()["hosts"] for p in h["ports"] if h["name"] == "host1"}
    assert "error" not in ports["vm1"]


def test_a_vm_gone_from_a_real_host_is_drift(world, labctl):
    labctl().up()
    world.hosts["host1"].admin("ip", "netns", "del", "lc-ut-vm1")
    assert "host1: VM vm1 is missing" in labctl().status()["drift"]


# --- down ------------------------------------------------------------------------------------


def test_down_from_the_journal_alone_removes_what_up_made_and_nothing_else(world, labctl, state_root):
    host1, host2 = world.hosts["host1"], world.hosts["host2"]
    host1.admin("ovs-vsctl", "add-br", "br-ext")  # the host's own bridge
    # The lab's bridge was there before the lab, with a port and settings of its own.
    host2.admin("ovs-vsctl", "add-br", "br0", "--", "add-port", "br0", "eth9")
    host2.admin(
        "ovs-vsctl", "set", "bridge", "br0", "fail_mode=standalone", "other_config:disable-in-band=false"
    )
    before = host2.ovs.bridge_settings("br0")
    labctl().up()
    assert host2.ovs.bridge_settings("br0") != before and host2.ovs.controllers()["br0"]
    [controller] = LabState("ut", root=state_root).records("process")
    world.calls.clear()

    assert teardown(LabState("ut", root=state_root), Reporter(quiet=True)) is True

    assert transactions(world, "host1") == [
        ["ovs-vsctl", "--timeout=10", "--no-wait", "--if-exists", "del-br", "br0"]
    ]
    assert host1.ovs.bridges() == {"br-ext": ["br-ext"]}
    # host2's br0 is as the host had it: its own port, its settings, no controller
    assert host2.ovs.bridges() == {"br0": ["br0", "eth9"]}
    assert host2.ovs.bridge_settings("br0") == before
    assert host2.ovs.controllers() == {"br0": []}
    for host in (host1, host2):
        assert host.linux.namespaces == set()
        assert not any(host.linux.device_exists(vm) for vm in ("vm1", "vm2"))
    assert not processes.alive(processes.ProcessId(controller["pid"], controller["start"]))
    assert not (state_root / "ut").exists()
    assert teardown(LabState("ut", root=state_root), Reporter(quiet=True)) is False  # nothing left to do


def test_a_second_up_does_not_overwrite_what_a_bridge_had_before_the_lab(world, labctl, state_root):
    host2 = world.hosts["host2"]
    host2.admin("ovs-vsctl", "add-br", "br0", "--", "set", "bridge", "br0", "fail_mode=standalone")
    before = host2.ovs.bridge_settings("br0")
    labctl().up()
    host2.admin("ovs-vsctl", "set", "bridge", "br0", "fail_mode=standalone")  # drift, repaired by up
    labctl().up()
    assert len(LabState("ut", root=state_root).records("ovs-bridge-settings")) == 1
    teardown(LabState("ut", root=state_root), Reporter(quiet=True))
    assert host2.ovs.bridge_settings("br0") == before


def test_down_after_an_up_that_failed_half_way_removes_what_was_made(world, labctl, state_root):
    world.hosts["host2"].has_ovs = False
    with pytest.raises(ProvisionError):
        labctl().up()
    assert teardown(LabState("ut", root=state_root), Reporter(quiet=True)) is True
    assert world.hosts["host1"].ovs.bridges() == {}
    assert world.hosts["host1"].linux.namespaces == set()


# --- faults: status names each one, up repairs it or says it cannot ----------------------------

VSWITCHD_GONE = 'ovs-appctl: cannot read pidfile "/var/run/openvswitch/ovs-vswitchd.pid" (No such process)'
START_IT = "start it on the host (systemctl start openvswitch-switch); labctl does not run a real host's OVS"


def test_a_dead_ovs_vswitchd_is_drift_and_its_bridge_is_not_connected_whatever_ovsdb_says(world, labctl):
    labctl().up()
    world.hosts["host1"].stop_daemon("ovs-vswitchd")
    # Its database still says connected, and so does the controller: the dead daemon's word.
    assert "is_connected            : true" not in world.hosts["host1"].admin("ovs-vsctl", "show")
    assert world.hosts["host1"].ovs.connected(TARGET)

    status = labctl().status()
    assert status["drift"] == [f"host1: ovs-vswitchd does not answer ({VSWITCHD_GONE})"]
    assert status["faults"] == [
        {
            "host": "host1",
            "what": f"ovs-vswitchd does not answer ({VSWITCHD_GONE})",
            "repair": f"up cannot repair this: {START_IT}",
        }
    ]
    hosts = {h["name"]: h for h in status["hosts"]}
    assert hosts["host1"]["connected"] is False
    assert hosts["host1"]["controllers"] == [{"target": TARGET, "connected": False}]
    assert hosts["host2"]["connected"] is True and status["up"] is False

    world.hosts["host1"].start_daemon("ovs-vswitchd")  # its admin starts it again
    assert labctl().status()["up"] is True


def test_down_removes_the_bridges_of_a_host_whose_ovs_vswitchd_is_dead(world, labctl, state_root):
    labctl().up()
    world.hosts["host1"].stop_daemon("ovs-vswitchd")
    assert teardown(LabState("ut", root=state_root), Reporter(quiet=True)) is True
    assert world.hosts["host1"].ovs.bridges() == {}  # from its database: applied when it runs again


def test_up_on_a_host_whose_ovs_vswitchd_is_dead_stops_before_changing_it(world, labctl):
    labctl().up()
    world.hosts["host1"].stop_daemon("ovs-vswitchd")
    world.calls.clear()
    with pytest.raises(ProvisionError) as failed:
        labctl().up()
    assert str(failed.value) == (
        f"host1: check Open vSwitch failed: ovs-vswitchd does not answer ({VSWITCHD_GONE}): {START_IT}"
    )
    assert changes_on(world, "host1") == []
    world.hosts["host1"].start_daemon("ovs-vswitchd")


def test_a_dead_ovsdb_server_is_drift_and_its_host_cannot_be_read(world, labctl):
    labctl().up()
    world.hosts["host2"].stop_daemon("ovsdb-server")
    status = labctl().status()
    gone = 'ovs-appctl: cannot read pidfile "/var/run/openvswitch/ovsdb-server.pid" (No such process)'
    assert status["drift"] == [f"host2: ovsdb-server does not answer ({gone})"]
    host2 = next(h for h in status["hosts"] if h["name"] == "host2")
    assert host2 == {
        "name": "host2",
        "driver": "ovs",
        "flavor": "ovs",
        "underlay_ip": "10.250.0.2",
        "error": f"ovsdb-server does not answer ({gone})",
        "connected": False,
        "drift": [f"ovsdb-server does not answer ({gone})"],
    }
    world.hosts["host2"].start_daemon("ovsdb-server")
    assert labctl().status()["up"] is True


def test_a_cut_journal_line_and_a_garbled_lab_json_are_drift_and_up_repairs_both(world, labctl, state_root):
    labctl().up()
    state = LabState("ut", root=state_root)
    lines = state.journal_path.read_text().splitlines(keepends=True)
    state.journal_path.write_text("".join(lines) + lines[0][:20])  # a crash while writing a record
    state.info_path.write_text("{garbled")

    assert labctl().status()["drift"] == [
        f"line {len(lines) + 1} of the journal is cut short or garbled ({state.journal_path})",
        f"lab.json is garbled: not what up wrote ({state.info_path})",
    ]
    assert labctl().up() == 2  # nothing else was wrong
    assert state.journal_path.read_text() == "".join(lines)
    assert state.recorded_simulated() is False
    assert labctl().status()["drift"] == []


def test_a_record_after_a_cut_line_starts_a_line_of_its_own(state_root):
    state = LabState("ut", root=state_root)
    state.record("netns", name="lc-ut-a")
    with open(state.journal_path, "a") as journal:
        journal.write('{"kind": "netns", "na')  # killed while writing it
    state.record("netns", name="lc-ut-b")
    assert [r["name"] for r in state.records("netns")] == ["lc-ut-a", "lc-ut-b"]
    assert state.broken_lines() == [2]


def test_up_fails_when_its_own_check_still_finds_a_fault(world, labctl, monkeypatch):
    """A VM's link deleted on an ovs host whose namespace stays: up plugs the port again, OVS
    still cannot open it, and up says so instead of claiming the lab is up."""
    monkeypatch.setattr("labctl.lab.SETTLE_SECONDS", 0)
    labctl().up()
    world.hosts["host1"].admin("ip", "link", "del", "vm1")  # and its peer, eth0 inside the VM
    with pytest.raises(ProvisionError) as failed:
        labctl().up()
    assert str(failed.value) == (
        "lab ut: the check after up failed: still wrong: "
        "host1: port vm1: could not open network device vm1 (No such device)"
    )
    assert failed.value.exit_code == 3
