"""The kvm driver on libvirt-python against libvirt's test driver
(test:///default: no daemon), with real qcow2 overlays made by qemu-img and
the rendered domain XML checked by virt-xml-validate against libvirt's schema."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import libvirt
import pytest

from labctl.drivers import DRIVERS, LabSession
from labctl.drivers.kvm import KvmDriver, default_uri
from labctl.inventory import parse_inventory
from labctl.progress import Reporter
from labctl.state import LabState

INVENTORY = """\
name: {name}
controller: {{address: 10.250.0.254}}
hosts:
  kvm1:
    driver: kvm
    address: {address}
    uri: test:///default
    image: {image}
    vms:
      vm1: {{ip: 172.16.0.1/24}}
      vm2: {{ip: 172.16.0.2/24}}
"""


@pytest.fixture
def kvm(tmp_path, monkeypatch, request):
    monkeypatch.setenv("LABCTL_GUEST_DIR", str(tmp_path / "guests"))
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    name = f"k{abs(hash(request.node.name)) % 10**6}"  # test:///default is shared by the process
    lab = parse_inventory(INVENTORY.format(name=name, address="localhost", image=base))
    state = LabState(lab.name, root=tmp_path / "state")
    driver = KvmDriver(LabSession(lab, state, Reporter(quiet=True)), lab.host("kvm1"))
    yield driver
    for record in reversed(state.records()):
        DRIVERS[record["driver"]].undo(record, state)


def test_domain_xml_plugs_the_nic_into_br0_with_openvswitch_and_is_valid(kvm, tmp_path):
    vm = kvm.session.lab.vm("vm1")
    text = kvm.domain_xml(vm)
    root = ET.fromstring(text)
    iface = root.find("devices/interface")
    assert iface.get("type") == "bridge"
    assert iface.find("source").get("bridge") == "br0"
    assert iface.find("virtualport").get("type") == "openvswitch"
    assert iface.find("mac").get("address") == vm.mac
    assert iface.find("mtu").get("size") == "1462"  # 1500 - 38: what a GRE tunnel carries
    disk = root.find("devices/disk")
    assert disk.find("driver").get("type") == "qcow2"
    assert disk.find("source").get("file") == f"{tmp_path}/guests/{kvm.session.lab.name}/vm1.qcow2"
    assert root.findtext("name") == f"lc-{kvm.session.lab.name}-vm1"
    path = tmp_path / "domain.xml"
    path.write_text(text.replace("type='test'", "type='kvm'"))
    checked = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr + checked.stdout


def test_up_defines_and_starts_each_vm_on_a_qcow2_overlay(kvm, tmp_path):
    kvm.finish()
    conn = libvirt.open("test:///default")
    for vm in kvm.session.lab.vms:
        domain = conn.lookupByName(f"lc-{kvm.session.lab.name}-{vm.name}")
        assert domain.isActive()
        overlay = tmp_path / "guests" / kvm.session.lab.name / f"{vm.name}.qcow2"
        info = json.loads(
            subprocess.run(
                ["qemu-img", "info", "--output=json", str(overlay)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert info["format"] == "qcow2" and info["backing-filename"] == str(tmp_path / "base.qcow2")
        # the port is the tap libvirt reports for the VM's MAC (vnetN under qemu; testnetN here)
        dev = ET.fromstring(domain.XMLDesc()).find("devices/interface/target").get("dev")
        assert kvm.vm_port(vm) == dev and dev
    kvm.finish()  # up twice: nothing new
    assert len(kvm.session.state.records()) == 2


def test_down_destroys_undefines_and_removes_the_overlays(kvm, tmp_path):
    kvm.finish()
    state = kvm.session.state
    for record in reversed(state.records()):
        DRIVERS[record["driver"]].undo(record, state)
    conn = libvirt.open("test:///default")
    names = {d.name() for d in conn.listAllDomains()}
    assert not {n for n in names if n.startswith(f"lc-{kvm.session.lab.name}-")}
    assert list((tmp_path / "guests" / kvm.session.lab.name).iterdir()) == []


def test_remote_hosts_get_a_qemu_ssh_uri():
    lab = parse_inventory(
        INVENTORY.format(name="r", address="admin@10.0.0.5", image="/srv/base.qcow2").replace(
            "    uri: test:///default\n", "    key: ~/.ssh/lab\n    port: 2222\n"
        )
    )
    assert default_uri(lab.host("kvm1")) == "qemu+ssh://admin@10.0.0.5:2222/system?keyfile=~/.ssh/lab"


def test_a_kernel_boot_guest_has_no_disk_and_its_domain_is_valid(tmp_path):
    text = INVENTORY.format(name="kb", address="localhost", image="x").replace(
        "    image: x\n",
        "    boot: {kernel: /srv/vmlinuz, initrd: /srv/initrd.gz, cmdline: quiet}\n    accel: tcg\n",
    )
    lab = parse_inventory(text)
    state = LabState(lab.name, root=tmp_path / "state")
    driver = KvmDriver(LabSession(lab, state, Reporter(quiet=True)), lab.host("kvm1"))
    root = ET.fromstring(driver.domain_xml(lab.vm("vm2")))
    assert root.find("devices/disk") is None and root.find("os/boot") is None
    assert (root.findtext("os/kernel"), root.findtext("os/initrd")) == ("/srv/vmlinuz", "/srv/initrd.gz")
    assert root.findtext("os/cmdline") == "console=ttyS0 labctl.ip=172.16.0.2/24 quiet"
    assert root.find("devices/serial").get("type") == "pty"  # a real host's console, as before
    path = tmp_path / "domain.xml"
    path.write_text(driver.guests.domain_xml(lab.vm("vm2"), "qemu"))
    checked = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr + checked.stdout
    # up defines and starts the guests with no overlay; down removes them
    driver.finish()
    records = state.records("kvm-vm")
    assert len(records) == 2 and all(r["overlay"] is None for r in records)
    for record in reversed(state.records()):
        DRIVERS[record["driver"]].undo(record, state)
    conn = libvirt.open("test:///default")
    assert not [d for d in conn.listAllDomains() if d.name().startswith("lc-kb-")]
