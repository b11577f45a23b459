"""The Xen vif hotplug path against a host's real Open vSwitch.

The xen driver runs unchanged (xl cfg, `xl create`, the OVS transaction) against a
simulated host: a namespace with its own ovsdb-server and ovs-vswitchd. `xl` is
tests/fakes/xl, which does what the backend and Xen 4.17's vif-openvswitch do on
`xl create`: the backend's device for each NIC, named as libxl names it, then the
script's exact `ovs-vsctl` and `ip` calls. labctl's status and ports views must
then show each VM's port, opened by ovs-vswitchd, and nothing else on the bridge.

This machine has no OVS kernel module, so the host's bridge uses the userspace
datapath (the only change to the driver).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from labctl import processes
from labctl.drivers import DRIVERS
from labctl.drivers.sim import OVS_DAEMONS, start_ovs_daemons
from labctl.drivers.xen import XenDriver
from labctl.inventory import parse_inventory
from labctl.lab import LabRunner, teardown
from labctl.observe.tables import port_table
from labctl.progress import Reporter
from labctl.state import LabState
from labctl.transport.netns import NetnsTransport
from tests.conftest import unique_name

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
    netns = f"lc-{name}-xen1"
    rundir = tempfile.mkdtemp(prefix="xh-")  # short: the db socket's path has 108 bytes at most
    subprocess.run(["ip", "netns", "add", netns], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_XL_LOG", str(tmp_path / "xl.log"))
    monkeypatch.setenv("FAKE_XL_STATE", str(tmp_path / "xl.state"))
    monkeypatch.setenv("FAKE_XL_HOTPLUG", "1")
    monkeypatch.setenv("LABCTL_GUEST_DIR", str(tmp_path / "guests"))
    try:
        start_ovs_daemons(NetnsTransport("xen1", netns, rundir), rundir)

        class XenOnSimulatedHost(XenDriver):
            datapath_type = "netdev"  # no OVS kernel module here

            @classmethod
            def connect(cls, name, address, access):
                return NetnsTransport(name, netns, rundir)

        monkeypatch.setitem(DRIVERS, "xen", XenOnSimulatedHost)  # also for `down`, from the journal
        yield name, netns, rundir
    finally:
        daemons = [processes.read_pidfile(f"{rundir}/{d}.pid") for d in OVS_DAEMONS]
        processes.stop([p for p in map(processes.identify, filter(None, daemons)) if p])
        subprocess.run(["ip", "netns", "del", netns], check=False)
        shutil.rmtree(rundir, ignore_errors=True)


def test_vif_openvswitch_plugs_exactly_the_ports_labctl_reports(xen_host, tmp_path):
    name, netns, rundir = xen_host
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    lab = parse_inventory(INVENTORY.format(name=name, image=base))
    runner = LabRunner(lab, Reporter(quiet=True), LabState(lab.name, root=tmp_path / "state"))
    host = lab.host("xen1")
    try:
        runner.builder.build(host)  # the bridge, then `xl create`: the hotplug script plugs each VIF
        runner.builder.point_at_controller(host)
        status = runner.status()
        [xen1] = status["hosts"]
        assert xen1["drift"] == []
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
    transport = NetnsTransport("xen1", netns, rundir)
    assert transport.run(["ovs-vsctl", "list-br"]).stdout == ""
    assert "vif1.0" not in transport.run(["ip", "-o", "link"]).stdout
