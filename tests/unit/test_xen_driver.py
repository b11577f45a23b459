"""The xen driver against a fake `xl` on PATH (tests/fakes/xl), which records
its argv and answers like xl; disks are real qcow2 overlays made by qemu-img."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from labctl.drivers import DRIVERS, LabSession
from labctl.drivers.xen import XenDriver
from labctl.inventory import parse_inventory
from labctl.nocloud import read_iso
from labctl.progress import Reporter
from labctl.state import LabState

FAKES = Path(__file__).resolve().parent.parent / "fakes"
INVENTORY = """\
name: xl
controller: {{address: 10.250.0.254}}
hosts:
  xen1:
    driver: xen
    address: localhost
    image: {image}
    vms:
      vm1: {{ip: 172.16.0.1/24}}
      vm2: {{ip: 172.16.0.2/24, mac: "52:54:00:aa:bb:02"}}
"""


@pytest.fixture
def xen(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_XL_LOG", str(tmp_path / "xl.log"))
    monkeypatch.setenv("FAKE_XL_STATE", str(tmp_path / "xl.state"))
    monkeypatch.setenv("LABCTL_GUEST_DIR", str(tmp_path / "guests"))
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    lab = parse_inventory(INVENTORY.format(image=base))
    state = LabState(lab.name, root=tmp_path / "state")
    return XenDriver(LabSession(lab, state, Reporter(quiet=True)), lab.host("xen1"))


def xl_calls(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "xl.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def parse_cfg(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+) = (.+)$", text, re.M))


def test_cfg_has_each_field_for_the_vm(xen, tmp_path):
    vm2 = xen.session.lab.vm("vm2")
    cfg = parse_cfg(xen.cfg(vm2))
    assert cfg["name"] == '"lc-xl-vm2"'
    assert cfg["type"] == '"hvm"'
    assert cfg["memory"] == "256" and cfg["vcpus"] == "1"
    assert (
        cfg["vif"] == "['bridge=br0,type=vif,script=vif-openvswitch,mac=52:54:00:aa:bb:02,mtu=1462']"
    )  # no -emu port
    assert cfg["disk"] == (
        f"['format=qcow2,vdev=xvda,access=rw,target={tmp_path}/guests/xl/vm2.qcow2', "
        f"'format=raw,vdev=hdc,access=ro,devtype=cdrom,target={tmp_path}/guests/xl/vm2.seed.iso']"
    )
    assert cfg["on_crash"] == '"destroy"'


def test_up_creates_each_vm_with_xl_and_names_its_port_from_the_domid(xen, tmp_path):
    xen.finish()
    creates = [c for c in xl_calls(tmp_path) if c[0] == "create"]
    assert creates == [
        ["create", f"{tmp_path}/guests/xl/vm1.cfg"],
        ["create", f"{tmp_path}/guests/xl/vm2.cfg"],
    ]
    assert [xen.vm_port(vm) for vm in xen.session.lab.vms] == ["vif1.0", "vif2.0"]
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", f"{tmp_path}/guests/xl/vm1.qcow2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(info.stdout)["backing-filename"] == str(tmp_path / "base.qcow2")
    # each guest's seed, next to its overlay, private, with its address and the lab's MTU
    seed = tmp_path / "guests" / "xl" / "vm1.seed.iso"
    assert oct(seed.stat().st_mode & 0o777) == "0o600"
    label, files = read_iso(seed.read_bytes())
    [nic] = yaml.safe_load(files["network-config"])["ethernets"].values()
    assert label == "cidata" and (nic["addresses"], nic["mtu"]) == (["172.16.0.1/24"], 1462)
    xen.finish()  # up twice: nothing created again
    assert len([c for c in xl_calls(tmp_path) if c[0] == "create"]) == 2


def test_down_destroys_the_domains_and_removes_cfg_and_overlays(xen, tmp_path):
    xen.finish()
    records = xen.session.state.records()
    assert [(r["kind"], r["name"]) for r in records] == [("xen-vm", "lc-xl-vm1"), ("xen-vm", "lc-xl-vm2")]
    for record in reversed([r for r in records if "driver" in r]):
        DRIVERS[record["driver"]].undo(record, xen.session.state)
    destroys = [c for c in xl_calls(tmp_path) if c[0] == "destroy"]
    assert destroys == [["destroy", "lc-xl-vm2"], ["destroy", "lc-xl-vm1"]]
    assert list((tmp_path / "guests" / "xl").iterdir()) == []
    for record in records:  # down again: gone already, nothing fails
        DRIVERS[record["driver"]].undo(record, xen.session.state)


def test_a_host_with_seed_none_gives_its_guests_no_cd_and_leaves_their_address_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("LABCTL_GUEST_DIR", str(tmp_path / "guests"))
    lab = parse_inventory(
        INVENTORY.format(image="/srv/base.qcow2").replace("    image:", "    seed: none\n    image:")
    )
    driver = XenDriver(
        LabSession(lab, LabState(lab.name, root=tmp_path / "state"), Reporter(quiet=True)), lab.host("xen1")
    )
    vm1 = lab.vm("vm1")
    assert (
        parse_cfg(driver.cfg(vm1))["disk"]
        == f"['format=qcow2,vdev=xvda,access=rw,target={tmp_path}/guests/xl/vm1.qcow2']"
    )
    assert driver.address_managed(vm1) is False


# --- the way in: mgmt: a second vif on a Linux bridge of the host -----------------------------

MGMT = "    mgmt: {bridge: x7wayin, subnet: 10.99.0.0/24, first: 10.99.0.200}\n"


def xen_with(
    tmp_path, monkeypatch, extra: str, address: str = "admin@xen1.example", image: str = "/srv/base.qcow2"
) -> XenDriver:
    """A xen host whose `address` is never contacted (what these tests ask runs nothing there)."""
    monkeypatch.setenv("LABCTL_GUEST_DIR", str(tmp_path / "guests"))
    text = INVENTORY.format(image=image).replace("    vms:\n", extra + "    vms:\n")
    lab = parse_inventory(text.replace("address: localhost", f"address: {address}"))
    state = LabState(lab.name, root=tmp_path / "state")
    return XenDriver(LabSession(lab, state, Reporter(quiet=True)), lab.host("xen1"))


def test_mgmt_gives_each_guest_a_second_vif_on_the_linux_bridge_with_vif_bridge(tmp_path, monkeypatch):
    driver = xen_with(tmp_path, monkeypatch, MGMT)
    vm2 = driver.session.lab.vm("vm2")
    assert parse_cfg(driver.cfg(vm2))["vif"] == (
        "['bridge=br0,type=vif,script=vif-openvswitch,mac=52:54:00:aa:bb:02,mtu=1462', "
        "'bridge=x7wayin,type=vif,script=vif-bridge,mac=06:54:00:aa:bb:02']"
    )  # the lab NIC on OVS; the way in on the Linux bridge, by Xen's own script, never OVS
    plain = xen_with(tmp_path, monkeypatch, "")
    assert parse_cfg(plain.cfg(vm2))["vif"].count("bridge=") == 1  # no mgmt: the lab NIC only


def test_mgmt_puts_the_management_nic_and_its_address_in_each_seed(xen, tmp_path, monkeypatch):
    # the xen fixture's fake xl and base image
    driver = xen_with(tmp_path, monkeypatch, MGMT, address="localhost", image=str(tmp_path / "base.qcow2"))
    driver.finish()
    for n, vm in enumerate(driver.session.lab.vms):
        _, files = read_iso((tmp_path / "guests" / "xl" / f"{vm.name}.seed.iso").read_bytes())
        nics = yaml.safe_load(files["network-config"])["ethernets"]
        assert nics["lab"]["addresses"] == [str(vm.ip)] and nics["lab"]["match"]["macaddress"] == vm.mac
        assert nics["mgmt"] == {
            "match": {"macaddress": "06" + vm.mac[2:]},
            "addresses": [f"10.99.0.{200 + n}/24"],
            "dhcp4": False,
        }


def test_with_mgmt_a_xen_guest_is_reached_over_ssh_through_dom0(tmp_path, monkeypatch):
    from labctl.errors import ProvisionError
    from labctl.transport.guest import GuestSsh

    driver = xen_with(tmp_path, monkeypatch, MGMT)
    vm = driver.session.lab.vm("vm2")
    assert driver.no_path(vm) is None and driver.address_managed(vm)
    way = driver.vm_transport(vm)
    assert isinstance(way, GuestSsh) and way is driver.vm_transport(vm)  # one connection per guest
    assert way.describe().startswith("SSH root@10.99.0.201:22 through SSH admin@xen1.example:22")
    assert way.host_key == (driver.session.state.dir / "guest-keys" / "host-vm2.pub").read_text().strip()
    without = xen_with(tmp_path, monkeypatch, "")
    assert without.way_in(vm) == (
        "real guest, no way in (set mgmt: {bridge: BRIDGE, subnet: CIDR} (a Linux bridge of the host "
        "with an address there) on host xen1)"
    )
    with pytest.raises(ProvisionError, match="no way into vm2: real guest, no way in"):
        without.vm_transport(vm)
    unseeded = xen_with(tmp_path, monkeypatch, "    seed: none\n")
    assert unseeded.way_in(vm) == "address not managed (seed: none): labctl has no way in"


def test_plan_shows_the_management_vif_its_address_and_the_bridge_check(tmp_path, monkeypatch):
    driver = xen_with(tmp_path, monkeypatch, MGMT)
    vm = driver.session.lab.vm("vm1")
    steps = driver.planned_vm_steps(vm)
    [cfg] = [s for s in steps if s.what.startswith("write ")]
    assert (
        "; management vif 06:00:ac:10:00:01 on x7wayin (a Linux bridge) via vif-bridge, 10.99.0.200/24"
        in (cfg.what)
    )
    assert "script=vif-bridge" in dict(cfg.files)[driver.cfg_path(vm)]
    assert any("NoCloud seed" in s.what and "management 10.99.0.200/24" in s.what for s in steps)
    [check] = [s for s in driver.planned_host_steps() if "management bridge" in s.what]
    assert check.argv == ("test", "-d", "/sys/class/net/x7wayin/bridge")
    assert "10.99.0.200..10.99.0.201 of 10.99.0.0/24" in check.what


def mgmt_problems(extra: str, simulate: bool = False) -> list[str]:
    from labctl.errors import InventoryError

    text = INVENTORY.format(image="/srv/base.qcow2").replace("address: localhost", "address: xen1.example")
    text = ("simulate: true\n" if simulate else "") + text.replace("    vms:\n", extra + "    vms:\n", 1)
    with pytest.raises(InventoryError) as info:
        parse_inventory(text)
    return info.value.problems


def test_mgmt_inventory_rules_on_a_xen_host():
    [said] = mgmt_problems("    mgmt: {bridge: x7wayin, subnet: 10.99.0.0/24, first: 10.99.0.255}\n")
    assert "10.99.0.255 is not a guest address of 10.99.0.0/24" in said
    [said] = mgmt_problems("    mgmt: {bridge: x7wayin, subnet: 10.99.0.0/31}\n")
    assert "has no room for guests" in said
    [said] = mgmt_problems(MGMT + "    seed: none\n")
    assert "the way in needs the seed" in said and "hosts.xen1.mgmt" in said
    [said] = mgmt_problems(MGMT, simulate=True)
    assert "mgmt: is for real hosts" in said


def test_status_and_doctor_name_a_management_bridge_that_is_gone(tmp_path, monkeypatch):
    """`localhost`: this machine, where no bridge x7wayin exists (a `test -d` in /sys runs)."""
    driver = xen_with(tmp_path, monkeypatch, MGMT, address="localhost")
    from labctl.drivers.remote import RealHostDriver

    monkeypatch.setattr(RealHostDriver, "faults", lambda self: [])  # not this machine's OVS
    [fault] = driver.faults()
    assert fault.what == (
        "management bridge: x7wayin is not a Linux bridge on the host (missing, or an OVS bridge): "
        "labctl has no way into the guests"
    )
    assert fault.repair.startswith("up cannot repair this: make x7wayin a Linux bridge again")
    [(name, probe)] = [c for c in driver.doctor_checks() if c[0] == "management bridge"]
    ok, said = probe()
    assert not ok and said.startswith("x7wayin is not a Linux bridge on the host")
    assert "vif-bridge hotplug script" in [c[0] for c in driver.doctor_checks()]
    assert xen_with(tmp_path, monkeypatch, "", address="localhost").mgmt_faults() == []


def test_the_labs_bridge_is_refused_as_the_management_bridge():
    [said] = mgmt_problems("    mgmt: {bridge: br0, subnet: 10.99.0.0/24}\n")
    assert (
        "hosts.xen1.mgmt.bridge" in said and "br0 is the lab's bridge: the way in goes on another one" in said
    )
