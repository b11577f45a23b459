"""What `labctl plan` says of a xenserver host's seeds, and the records it would send: no
XenAPI call, no connection (the calls themselves: tests/e2e/test_xenserver_driver.py)."""

from __future__ import annotations

import json

import pytest

from labctl.drivers import LabSession
from labctl.drivers.xenserver import XenServerDriver, seed_vbd_record, seed_vdi_record
from labctl.errors import InventoryError
from labctl.inventory import parse_inventory
from labctl.progress import Reporter
from labctl.state import LabState

INVENTORY = """\
name: xsp
controller: {{address: 10.250.0.254}}
hosts:
  xs1:
    driver: xenserver
    address: xs1.example
{extra}    vms:
      vm1: {{ip: 172.16.0.1/24}}
"""


def driver_for(tmp_path, extra: str = "") -> XenServerDriver:
    lab = parse_inventory(INVENTORY.format(extra=extra))
    session = LabSession(lab, LabState(lab.name, root=tmp_path / "state"), Reporter(quiet=True))
    return XenServerDriver(session, lab.host("xs1"))


def steps(driver: XenServerDriver) -> dict[str, dict]:
    return {s.api.split("(")[0]: s.to_json() for s in driver.planned_vm_steps(driver.session.lab.vm("vm1"))}


def test_the_plan_puts_the_seed_on_a_named_sr_before_the_vm_starts(tmp_path):
    driver = driver_for(tmp_path, "    seed_sr: Fast NFS\n")
    planned = steps(driver)
    apis = list(planned)
    assert (
        apis.index("XenAPI VDI.create") < apis.index("XenAPI VBD.create") < apis.index("XenAPI VM.start_on")
    )
    vdi = json.loads(planned["XenAPI VDI.create"]["files"]["VDI record"])
    assert vdi["SR"] == "<SR 'Fast NFS'>" and vdi["virtual_size"] == "<the ISO's size>"
    assert "172.16.0.1/24, MTU 1462, the lab's SSH key" in planned["XenAPI VDI.create"]["what"]
    upload = next(a for a in apis if "import_raw_vdi" in a)
    assert "format=raw" in upload and "task_id=<task>" in upload and "session_id=…" in upload


def test_the_plan_says_the_seed_drive_is_a_cd_or_on_an_older_xapi_a_read_only_disk(tmp_path):
    planned = steps(driver_for(tmp_path))["XenAPI VBD.create"]
    assert planned["what"] == (
        "read-only CD drive of lc-xsp-vm1 holding the seed, attached when it starts; where xapi takes a CD "
        "only from an ISO SR (VDI_IS_NOT_ISO, xapi before 1.9.60), a read-only disk instead"
    )
    cd = json.loads(planned["files"]["VBD record"])
    disk = json.loads(planned["files"]["VBD record if VDI_IS_NOT_ISO"])
    assert (cd["type"], disk["type"]) == ("CD", "Disk")
    assert {k: v for k, v in disk.items() if k != "type"} == {k: v for k, v in cd.items() if k != "type"}
    assert (disk["mode"], disk["bootable"], disk["empty"]) == ("RO", False, False)
    upload = next(s for a, s in steps(driver_for(tmp_path)).items() if "import_raw_vdi" in a)
    assert "(following a redirect to the pool member that reaches the SR)" in upload["what"]


def test_seed_none_plans_no_seed_and_manages_no_address(tmp_path):
    driver = driver_for(tmp_path, "    seed: none\n")
    vm1 = driver.session.lab.vm("vm1")
    assert not {"XenAPI VDI.create", "XenAPI VBD.create"} & set(steps(driver))
    assert driver.address_managed(vm1) is False
    assert driver.way_in(vm1) == "address not managed (seed: none): labctl has no way in"


def test_the_seed_records_are_what_xapi_needs_for_a_read_only_cd():
    vdi = seed_vdi_record("lab", "vm1", "OpaqueRef:sr", 69632)
    assert vdi["virtual_size"] == "69632"  # int64 as a string, as XML-RPC carries it
    assert vdi["other_config"] == {"labctl-seed": "lc-lab-vm1-seed"} == {"labctl-seed": vdi["name_label"]}
    vbd = seed_vbd_record("OpaqueRef:vm", "OpaqueRef:vdi", "4")
    assert (vbd["type"], vbd["mode"], vbd["bootable"], vbd["empty"], vbd["userdevice"]) == (
        "CD",
        "RO",
        False,
        False,
        "4",
    )
    disk = seed_vbd_record("OpaqueRef:vm", "OpaqueRef:vdi", "4", kind="Disk")
    assert disk == {**vbd, "type": "Disk"}  # xapi before 1.9.60: the same drive, a read-only disk


def test_a_seed_kind_other_than_nocloud_or_none_is_an_inventory_error():
    with pytest.raises(InventoryError, match="seed"):
        parse_inventory(INVENTORY.format(extra="    seed: configdrive\n"))


# --- the way in: mgmt: {network: ...} ---------------------------------------------------------

MGMT = "    mgmt: {network: Lab management, subnet: 10.99.0.0/24}\n"


def test_the_plan_gives_each_vm_a_second_vif_on_the_management_network_and_its_address(tmp_path):
    driver = driver_for(tmp_path, MGMT)
    vm1 = driver.session.lab.vm("vm1")
    planned = [s.to_json() for s in driver.planned_vm_steps(vm1)]
    [lab_vif, mgmt_vif] = [s for s in planned if s.get("api") == "XenAPI VIF.create(VIF record)"]
    assert json.loads(lab_vif["files"]["VIF record"])["device"] == "0"
    record = json.loads(mgmt_vif["files"]["management VIF record"])
    assert (record["device"], record["network"], record["MAC"]) == (
        "1",
        "<network Lab management>",
        "06:00:ac:10:00:01",
    )
    assert "10.99.0.10/24 in its seed" in mgmt_vif["what"]
    [seeded] = [s for s in planned if s.get("api") == "XenAPI VDI.create(VDI record)"]
    assert "management 10.99.0.10/24" in seeded["what"]
    [find] = [s for s in driver.planned_host_steps() if "management network" in s.what]
    assert "'Lab management' (exactly one of that name, not the lab's)" in find.what
    assert "10.99.0.10 of 10.99.0.0/24" in find.what
    assert driver.no_path(vm1) is None
    assert (
        driver.vm_transport(vm1)
        .describe()
        .startswith("SSH root@10.99.0.10:22 through SSH root@xs1.example:22")
    )


def test_without_mgmt_the_reason_names_the_network_form(tmp_path):
    driver = driver_for(tmp_path)
    assert driver.way_in(driver.session.lab.vm("vm1")) == (
        "real guest, no way in (set mgmt: {network: NAME, subnet: CIDR} (a xapi network other than the "
        "lab's, whose bridge dom0 has an address on) on host xs1)"
    )
    assert not [s for s in driver.planned_host_steps() if "management network" in s.what]


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (
            "    mgmt: {bridge: xenbr1, subnet: 10.99.0.0/24}\n",
            "the guests of a xenserver host go on a xapi network (its name label): "
            "mgmt: {network: NAME, subnet: CIDR}, not bridge:",
        ),
        ("    mgmt: {network: lc-xsp-br0, subnet: 10.99.0.0/24}\n", "lc-xsp-br0 is the lab's network"),
        (MGMT + "    seed: none\n", "the way in needs the seed"),
        ("    mgmt: {network: m, subnet: 10.99.0.0/24, first: 10.98.0.1}\n", "not a guest address of"),
    ],
)
def test_mgmt_inventory_rules_on_a_xenserver_host(extra, said):
    with pytest.raises(InventoryError) as info:
        parse_inventory(INVENTORY.format(extra=extra))
    [problem] = info.value.problems
    assert "hosts.xs1.mgmt" in problem and said in problem


def test_a_kvm_or_xen_host_names_a_bridge_not_a_network():
    text = INVENTORY.format(
        extra="    image: /srv/base.qcow2\n    mgmt: {network: m, subnet: 10.99.0.0/24}\n"
    )
    with pytest.raises(InventoryError) as info:
        parse_inventory(text.replace("driver: xenserver", "driver: xen"))
    [problem] = info.value.problems
    assert "the guests of a xen host go on a Linux bridge of the host: mgmt: {bridge: NAME" in problem
