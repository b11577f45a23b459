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


def test_a_seed_kind_other_than_nocloud_or_none_is_an_inventory_error():
    with pytest.raises(InventoryError, match="seed"):
        parse_inventory(INVENTORY.format(extra="    seed: configdrive\n"))
