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
from labctl.drivers.kvm import KvmDriver
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


def test_a_kernel_boot_guest_has_no_disk_but_its_seed_and_its_domain_is_valid(tmp_path, monkeypatch):
    monkeypatch.setenv("LABCTL_GUEST_DIR", str(tmp_path / "guests"))
    text = INVENTORY.format(name="kb", address="localhost", image="x").replace(
        "    image: x\n",
        "    boot: {kernel: /srv/vmlinuz, initrd: /srv/initrd.gz, cmdline: quiet}\n    accel: tcg\n",
    )
    lab = parse_inventory(text)
    state = LabState(lab.name, root=tmp_path / "state")
    driver = KvmDriver(LabSession(lab, state, Reporter(quiet=True)), lab.host("kvm1"))
    root = ET.fromstring(driver.domain_xml(lab.vm("vm2")))
    [cdrom] = root.findall("devices/disk")
    assert cdrom.get("device") == "cdrom" and root.find("os/boot") is None
    assert cdrom.find("source").get("file") == f"{tmp_path}/guests/kb/vm2.seed.iso"
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
    assert [r["seed"] for r in records] == [f"{tmp_path}/guests/kb/vm{n}.seed.iso" for n in (1, 2)]
    for record in reversed(state.records()):
        DRIVERS[record["driver"]].undo(record, state)
    conn = libvirt.open("test:///default")
    assert not [d for d in conn.listAllDomains() if d.name().startswith("lc-kb-")]
    assert list((tmp_path / "guests" / "kb").iterdir()) == []  # no seed left


def test_up_writes_each_guests_seed_private_with_its_address_mtu_and_the_lab_key(kvm, tmp_path):
    import stat

    import yaml

    from labctl.nocloud import read_iso

    kvm.finish()
    seed = tmp_path / "guests" / kvm.session.lab.name / "vm1.seed.iso"
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600  # it holds the guest's host key
    label, files = read_iso(seed.read_bytes())
    [nic] = yaml.safe_load(files["network-config"])["ethernets"].values()  # no mgmt: no management NIC
    assert label == "cidata" and nic["addresses"] == ["172.16.0.1/24"] and nic["mtu"] == 1462
    key = (kvm.session.state.dir / "guest-keys" / "id_ed25519.pub").read_text().strip()
    assert yaml.safe_load(files["user-data"])["ssh_authorized_keys"] == [key]


# --- the way in on a real host: mgmt: ---------------------------------------------------------

MGMT = "    mgmt: {bridge: labwayin, subnet: 10.99.0.0/24}\n"


def kvm_with(tmp_path, monkeypatch, name: str, extra: str, address: str = "admin@kvm1.example"):
    """A real kvm host on test:///default; `address` is never contacted (libvirt is the test driver)."""
    monkeypatch.setenv("LABCTL_GUEST_DIR", str(tmp_path / "guests"))
    text = INVENTORY.format(name=name, address=address, image="x").replace(
        "    image: x\n", "    boot: {kernel: /srv/vmlinuz, initrd: /srv/initrd.gz}\n    accel: tcg\n" + extra
    )
    lab = parse_inventory(text)
    state = LabState(lab.name, root=tmp_path / "state")
    return KvmDriver(LabSession(lab, state, Reporter(quiet=True)), lab.host("kvm1"))


def test_mgmt_gives_each_guest_a_second_nic_on_the_linux_bridge_and_the_domain_is_valid(
    tmp_path, monkeypatch
):
    driver = kvm_with(tmp_path, monkeypatch, "mg", MGMT, address="localhost")
    lab = driver.session.lab
    root = ET.fromstring(driver.domain_xml(lab.vm("vm2")))
    lab_nic, mgmt_nic = root.findall("devices/interface")
    assert lab_nic.find("source").get("bridge") == "br0" and lab_nic.find("virtualport") is not None
    assert mgmt_nic.get("type") == "bridge" and mgmt_nic.find("source").get("bridge") == "labwayin"
    assert mgmt_nic.find("virtualport") is None  # a Linux bridge: no OVS, no OpenFlow datapath sees it
    assert mgmt_nic.find("mac").get("address") == "06" + lab.vm("vm2").mac[2:]
    path = tmp_path / "domain.xml"
    path.write_text(driver.guests.domain_xml(lab.vm("vm2"), "qemu"))
    checked = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr + checked.stdout
    driver.finish()  # libvirt's test driver takes both NICs
    conn = libvirt.open("test:///default")
    live = ET.fromstring(conn.lookupByName("lc-mg-vm2").XMLDesc())
    assert [i.find("source").get("bridge") for i in live.findall("devices/interface")] == ["br0", "labwayin"]
    for record in reversed(driver.session.state.records()):
        DRIVERS[record["driver"]].undo(record, driver.session.state)


def test_mgmt_puts_a_static_management_address_in_each_seeds_network_config(tmp_path, monkeypatch):
    import yaml

    from labctl.nocloud import read_iso

    driver = kvm_with(tmp_path, monkeypatch, "ms", MGMT.replace("}", ", first: 10.99.0.200}"))
    lab = driver.session.lab
    for n, vm in enumerate(lab.vms):
        _, files = read_iso(driver.guests.seed_image(vm))
        nics = yaml.safe_load(files["network-config"])["ethernets"]
        assert nics["lab"]["addresses"] == [str(vm.ip)] and nics["lab"]["match"]["macaddress"] == vm.mac
        assert nics["mgmt"] == {
            "match": {"macaddress": "06" + vm.mac[2:]},
            "addresses": [f"10.99.0.{200 + n}/24"],
            "dhcp4": False,  # and no gateway: labctl comes from the hypervisor host itself
        }


def test_without_mgmt_a_real_guest_has_no_way_in_and_the_reason_names_the_field(tmp_path, monkeypatch):
    from labctl.errors import ProvisionError

    driver = kvm_with(tmp_path, monkeypatch, "nw", "")
    vm = driver.session.lab.vm("vm1")
    why = driver.way_in(vm)
    assert why == (
        "real guest, no way in (set mgmt: {bridge: BRIDGE, subnet: CIDR} (a Linux bridge of the host "
        "with an address there) on host kvm1)"
    )
    with pytest.raises(ProvisionError, match="no way into vm1: real guest, no way in"):
        driver.vm_transport(vm)
    root = ET.fromstring(driver.domain_xml(vm))
    assert len(root.findall("devices/interface")) == 1  # the lab NIC only
    unseeded = kvm_with(tmp_path, monkeypatch, "nx", "    seed: none\n")
    assert unseeded.way_in(vm) == "address not managed (seed: none): labctl has no way in"


def test_with_mgmt_a_guest_is_reached_over_ssh_through_the_host_with_the_lab_key(tmp_path, monkeypatch):
    from labctl.transport.guest import GuestSsh

    driver = kvm_with(tmp_path, monkeypatch, "th", MGMT)
    vm = driver.session.lab.vm("vm2")
    assert driver.no_path(vm) is None
    way = driver.vm_transport(vm)
    keys = driver.session.state.dir / "guest-keys"
    assert isinstance(way, GuestSsh) and way is driver.vm_transport(vm)  # one connection per guest
    assert way.describe().startswith("SSH root@10.99.0.11:22 through SSH admin@kvm1.example:22")
    assert way.key == str(keys / "id_ed25519")
    assert way.host_key == (keys / "host-vm2.pub").read_text().strip()
    local = kvm_with(tmp_path, monkeypatch, "tl", MGMT, address="localhost")
    assert (
        local.vm_transport(local.session.lab.vm("vm1"))
        .describe()
        .startswith("SSH root@10.99.0.10:22 (management path) from this machine")
    )


def test_plan_shows_the_management_nic_its_address_and_the_bridge_check(tmp_path, monkeypatch):
    driver = kvm_with(tmp_path, monkeypatch, "pl", MGMT)
    vm = driver.session.lab.vm("vm1")
    steps = [step.what for step in driver.planned_vm_steps(vm)]
    assert any(
        f"management NIC 06{vm.mac[2:]} on labwayin (a Linux bridge), 10.99.0.10/24" in what for what in steps
    )
    assert any("NoCloud seed" in what and "management 10.99.0.10/24" in what for what in steps)
    [check] = [s for s in driver.planned_host_steps() if "management bridge" in s.what]
    assert check.argv == ("test", "-d", "/sys/class/net/labwayin/bridge")
    assert "10.99.0.10..10.99.0.11 of 10.99.0.0/24" in check.what


class BridgeProbe:
    """A host's transport that answers the Linux-bridge test and `ip addr` only."""

    def __init__(self, linux_bridge: bool, addr: str = ""):
        self.linux_bridge, self.addr = linux_bridge, addr

    def run(self, argv, check=True, timeout=60):
        from labctl.transport.base import Completed

        if argv[0] == "test":
            return Completed(tuple(argv), 0 if self.linux_bridge else 1, "", "")
        assert argv[:3] == ["ip", "-o", "-4"], argv
        return Completed(tuple(argv), 0, self.addr, "")


def test_the_management_bridge_must_be_a_linux_bridge_other_than_the_labs():
    from labctl.drivers import mgmt

    spec = mgmt.MgmtSpec(bridge="labwayin", subnet="10.99.0.0/24")
    assert mgmt.check_bridge(BridgeProbe(True), spec, "br0") is None
    assert "is not a Linux bridge on the host (missing, or an OVS bridge)" in mgmt.check_bridge(
        BridgeProbe(False), spec, "br0"
    )
    on_br0 = mgmt.MgmtSpec(bridge="br0", subnet="10.99.0.0/24")
    assert mgmt.check_bridge(BridgeProbe(True), on_br0, "br0").startswith("br0 is the lab's bridge")
    shown = "7: labwayin    inet 10.99.0.1/24 brd 10.99.0.255 scope global labwayin\n"
    assert mgmt.host_address(BridgeProbe(True, shown), "labwayin", spec) == "10.99.0.1/24"
    assert mgmt.host_address(BridgeProbe(True, shown.replace("10.99.0", "10.98.0")), "labwayin", spec) is None


def mgmt_problems(extra: str, simulate: bool = False) -> list[str]:
    from labctl.errors import InventoryError

    text = INVENTORY.format(name="iv", address="admin@kvm1.example", image="/srv/base.qcow2")
    text = ("simulate: true\n" if simulate else "") + text.replace("    vms:\n", extra + "    vms:\n", 1)
    with pytest.raises(InventoryError) as info:
        parse_inventory(text)
    return info.value.problems


def test_mgmt_inventory_rules():
    text = INVENTORY.format(name="iv", address="admin@kvm1.example", image="/srv/base.qcow2")
    spec = parse_inventory(text.replace("    vms:\n", MGMT + "    vms:\n")).host("kvm1").options["mgmt"]
    assert (spec.bridge, str(spec.subnet), spec.first) == ("labwayin", "10.99.0.0/24", None)
    [said] = mgmt_problems("    mgmt: {bridge: labwayin, subnet: 10.99.0.0/24, first: 10.99.0.254}\n")
    assert "2 guests from 10.99.0.254 run past 10.99.0.0/24 (the last one would be 10.99.0.255)" in said
    [said] = mgmt_problems("    mgmt: {bridge: labwayin, subnet: 10.99.0.0/24, first: 10.98.0.5}\n")
    assert "10.98.0.5 is not a guest address of 10.99.0.0/24" in said
    [said] = mgmt_problems(MGMT + "    seed: none\n")
    assert "the way in needs the seed" in said
    [said] = mgmt_problems(MGMT, simulate=True)
    assert "mgmt: is for real hosts" in said
    [said] = mgmt_problems("    mgmt: {bridge: 'a b', subnet: 10.99.0.0/24}\n")
    assert "mgmt.bridge" in said


def test_status_names_a_kvm_hosts_management_bridge_that_is_gone(tmp_path, monkeypatch):
    """`localhost`: this machine, where no bridge labwayin exists (a `test -d` in /sys runs)."""
    from labctl.drivers.remote import RealHostDriver

    monkeypatch.setattr(RealHostDriver, "faults", lambda self: [])  # not this machine's OVS
    driver = kvm_with(tmp_path, monkeypatch, "gb", MGMT, address="localhost")
    [fault] = driver.faults()
    assert fault.what.startswith("management bridge: labwayin is not a Linux bridge on the host")
    assert "down and up" in fault.repair
    assert kvm_with(tmp_path, monkeypatch, "gn", "", address="localhost").faults() == []
