"""The Xen vif hotplug path against a host's real Open vSwitch.

The xen driver runs unchanged (xl cfg, `xl create`, the OVS transaction) against a
simulated host: a namespace with its own ovsdb-server and ovs-vswitchd. `xl` is
tests/fakes/xl, which does what the backend and Xen 4.17's vif-openvswitch do on
`xl create`: the backend's device for each NIC, named as libxl names it, then the
script's exact `ovs-vsctl` and `ip` calls. labctl's status and ports views must
then show each VM's port, opened by ovs-vswitchd, and nothing else on the bridge. The
lab's controller is `remote`: a real one (ovs-testcontroller) serves at its address in
the host's namespace, so br0 holds its OpenFlow session and status has nothing to name.

This machine has no OVS kernel module, so the host's bridge uses the userspace
datapath (the only change to the driver).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from labctl.drivers import DRIVERS
from labctl.drivers.xen import XenDriver
from labctl.inventory import parse_inventory
from labctl.lab import LabRunner, teardown
from labctl.observe.tables import port_table
from labctl.ovs import Ovs
from labctl.progress import Reporter
from labctl.state import LabState
from labctl.verify import passed, ping_all
from tests import small_guest
from tests.conftest import unique_name
from tests.ovs_namespace import OvsNamespace

FAKES = Path(__file__).resolve().parent.parent / "fakes"
INVENTORY = """\
name: {name}
controller: {{kind: remote, address: 10.250.0.254}}
hosts:
  xen1:
    driver: xen
    address: localhost
    image: {image}
    vms:
      vm1: {{ip: 172.16.0.1/24}}
      vm2: {{ip: 172.16.0.2/24, mac: "52:54:00:aa:bb:02"}}
"""

pytestmark = pytest.mark.lab


@pytest.fixture
def xen_host(tmp_path, monkeypatch):
    """A namespace with a private OVS, and the xen kind reaching it there."""
    name = unique_name("xh")
    host = OvsNamespace(f"lc-{name}-xen1")
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_XL_LOG", str(tmp_path / "xl.log"))
    monkeypatch.setenv("FAKE_XL_STATE", str(tmp_path / "xl.state"))
    monkeypatch.setenv("FAKE_XL_HOTPLUG", "1")
    monkeypatch.setenv("LABCTL_GUEST_DIR", str(tmp_path / "guests"))
    try:
        host.start()
        monkeypatch.setitem(DRIVERS, "xen", host.driver_kind(XenDriver))  # also for `down`, from the journal
        yield name, host
    finally:
        host.stop()


def test_vif_openvswitch_plugs_exactly_the_ports_labctl_reports(xen_host, tmp_path):
    name, xen1_ovs = xen_host
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    lab = parse_inventory(INVENTORY.format(name=name, image=base))
    runner = LabRunner(lab, Reporter(quiet=True), LabState(lab.name, root=tmp_path / "state"))
    host = lab.host("xen1")
    xen1_ovs.serve_controller(lab)  # the lab's remote controller, so br0 holds its session
    try:
        runner.builder.build(host)  # the bridge, then `xl create`: the hotplug script plugs each VIF
        runner.builder.point_at_controller(host)
        Ovs(xen1_ovs.transport()).wait_connected(lab.bridge, 30)
        status = runner.status()
        [xen1] = status["hosts"]
        assert xen1["drift"] == [] and xen1["connected"] is True
        ports = {p["name"]: p for p in xen1["ports"]}
        assert set(ports) == {"br0", "vif1.0", "vif2.0"}  # no vif<domid>.0-emu beside them
        for port, vm in (("vif1.0", "vm1"), ("vif2.0", "vm2")):
            assert ports[port]["vm"] == vm and "error" not in ports[port]
            assert (
                isinstance(ports[port]["ofport"], int) and ports[port]["ofport"] > 0
            )  # ovs-vswitchd opened it
        rows = {row.name: row for row in port_table(runner, "xen1")}
        assert rows["vif2.0"].behind == "VM vm2 (172.16.0.2, 52:54:00:aa:bb:02)"
        assert rows["vif1.0"].dp_port is not None
        transport = runner.drivers["xen1"].transport()
        mac = transport.run(["ovs-vsctl", "get", "interface", "vif2.0", "external-ids:attached-mac"])
        assert mac.stdout.strip() == '"52:54:00:aa:bb:02"'  # the script's own external ids
    finally:
        teardown(runner.state, Reporter(quiet=True))
    transport = xen1_ovs.transport()
    assert transport.run(["ovs-vsctl", "list-br"]).stdout == ""
    assert "vif1.0" not in transport.run(["ip", "-o", "link"]).stdout


@pytest.fixture
def mgmt_bridge(xen_host):
    """The host's Linux bridge for the guests' way in, with the host's address on it (the
    namespace takes it with it)."""
    host_ns = xen_host[1].transport()
    for argv in (
        ["ip", "link", "add", "labwayin", "type", "bridge"],
        ["ip", "addr", "add", "10.99.0.1/24", "dev", "labwayin"],
        ["ip", "link", "set", "labwayin", "up"],
    ):
        host_ns.run(argv)
    return "labwayin"


def lab_with_way_in(name: str, tmp_path):
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    text = INVENTORY.format(name=name, image=base).replace(
        "    vms:\n", "    mgmt: {bridge: labwayin, subnet: 10.99.0.0/24}\n    vms:\n"
    )
    return parse_inventory(text)


def test_the_management_vif_goes_on_the_linux_bridge_by_vif_bridge_and_never_on_br0(
    xen_host, mgmt_bridge, tmp_path
):
    """mgmt: each guest's second vif (vif<domid>.1) is plugged by Xen's vif-bridge into the
    host's Linux bridge; br0 and status show the lab's ports only; status names the
    management bridge once it is gone."""
    name, xen1_ovs = xen_host
    host_ns = xen1_ovs.transport()
    lab = lab_with_way_in(name, tmp_path)
    runner = LabRunner(lab, Reporter(quiet=True), LabState(lab.name, root=tmp_path / "state"))
    host = lab.host("xen1")
    xen1_ovs.serve_controller(lab)
    try:
        runner.builder.build(host)
        runner.builder.point_at_controller(host)
        Ovs(xen1_ovs.transport()).wait_connected(lab.bridge, 30)
        on_bridge = host_ns.run(["ip", "-o", "link", "show", "master", "labwayin"]).stdout
        assert sorted(line.split(":")[1].strip().split("@")[0] for line in on_bridge.splitlines()) == [
            "vif1.1",
            "vif2.1",
        ]
        assert host_ns.run(["ovs-vsctl", "list-ports", "br0"]).stdout.split() == ["vif1.0", "vif2.0"]
        [xen1] = runner.status()["hosts"]
        assert xen1["drift"] == [] and {p["name"] for p in xen1["ports"]} == {"br0", "vif1.0", "vif2.0"}
        driver = runner.drivers["xen1"]
        [probe] = [check for label, check in driver.doctor_checks() if label == "management bridge"]
        assert probe() == (True, "labwayin is a Linux bridge; the host is 10.99.0.1/24 there")
        host_ns.run(["ip", "link", "del", "labwayin"])  # someone removes it: the way in is gone
        [xen1] = runner.status()["hosts"]
        assert xen1["drift"] == [
            "management bridge: labwayin is not a Linux bridge on the host (missing, or an OVS bridge): "
            "labctl has no way into the guests"
        ]
    finally:
        teardown(runner.state, Reporter(quiet=True))
    assert "vif1.1" not in host_ns.run(["ip", "-o", "link"]).stdout


def test_vif_bridge_refuses_an_ovs_bridge_and_the_create_fails_whole(xen_host, tmp_path):
    """The fake's vif-bridge does what the script does on an OVS bridge (not a Linux bridge):
    `ip link set master` fails, and libxl takes the domain back."""
    _, xen1_ovs = xen_host
    host_ns = xen1_ovs.transport()
    host_ns.run(["ovs-vsctl", "add-br", "ovsmgmt", "--", "set", "bridge", "ovsmgmt", "datapath_type=netdev"])
    cfg = tmp_path / "x.cfg"
    cfg.write_text(
        'name = "x7-probe"\ntype = "hvm"\n'
        "vif = ['bridge=ovsmgmt,type=vif,script=vif-bridge,mac=06:00:00:00:00:01']\n"
    )
    failed = host_ns.run(["xl", "create", str(cfg)], check=False)
    assert not failed.ok and "libxl: error" in failed.stderr
    assert not host_ns.run(["xl", "domid", "x7-probe"], check=False).ok
    assert "vif1.0" not in host_ns.run(["ip", "-o", "link"]).stdout


BOOT_SECONDS = 240  # readiness of two TCG guests on a loaded 2-core machine, not a timed assertion


@pytest.fixture(scope="module")
def guest() -> tuple[Path, Path]:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 not installed (qemu-system-x86): scripts/setup.sh --libvirt")
    return small_guest.build()


def test_xen_guests_boot_from_their_seeds_and_are_verified_from_inside_over_the_way_in(
    xen_host, mgmt_bridge, guest, tmp_path, monkeypatch
):
    """The fake xl boots each domain for real (QEMU/TCG, the small test guest): it takes its
    addresses from its seed, labctl enters it over SSH on its management vif, from the host,
    and verify pings both ways between the guests through br0 and the lab's controller."""
    name, xen1_ovs = xen_host
    monkeypatch.setenv("FAKE_XL_KERNEL", str(guest[0]))
    monkeypatch.setenv("FAKE_XL_INITRD", str(guest[1]))
    lab = lab_with_way_in(name, tmp_path)
    runner = LabRunner(lab, Reporter(quiet=True), LabState(lab.name, root=tmp_path / "state"))
    host = lab.host("xen1")
    xen1_ovs.serve_controller(lab)
    driver = runner.drivers["xen1"]
    try:
        runner.builder.build(host)
        runner.builder.point_at_controller(host)
        Ovs(xen1_ovs.transport()).wait_connected(lab.bridge, 30)
        deadline = time.monotonic() + BOOT_SECONDS
        for vm in lab.vms:
            while (why := driver.way_in(vm)) is not None:
                console = Path(f"{tmp_path}/xl.state.lc-{name}-{vm.name}.console")
                tail = console.read_text(errors="replace")[-300:] if console.exists() else ""
                assert time.monotonic() < deadline, (
                    f"{vm.name} did not answer over SSH: {why}; console: {tail}"
                )
                time.sleep(1)
        way = driver.vm_transport(lab.vm("vm2"))
        assert way.describe().startswith("SSH root@10.99.0.11:22 (management path) from namespace")
        shown = way.run(["ip", "-o", "-4", "addr"]).stdout
        assert "inet 172.16.0.2/24" in shown and "inet 10.99.0.11/24" in shown, shown
        results = ping_all(lab, driver.vm_transport, count=3, way_in=driver.way_in)
        assert [(r.src, r.dst) for r in results] == [("vm1", "vm2"), ("vm2", "vm1")]
        assert passed(results) and all(r.ok and r.mtu_probe_ok for r in results), results
    finally:
        for vm in lab.vms:
            if driver.no_path(vm) is None:
                driver.vm_transport(vm).close()
        teardown(runner.state, Reporter(quiet=True))
    assert json.loads((tmp_path / "xl.state").read_text())["qemu"] == {}  # xl destroy stopped both QEMUs
