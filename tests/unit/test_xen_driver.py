"""The xen driver against a fake `xl` on PATH (tests/fakes/xl), which records
its argv and answers like xl; disks are real qcow2 overlays made by qemu-img."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from labctl.drivers import DRIVERS, LabSession
from labctl.drivers.xen import XenDriver
from labctl.inventory import parse_inventory
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
    assert cfg["disk"] == f"['format=qcow2,vdev=xvda,access=rw,target={tmp_path}/guests/xl/vm2.qcow2']"
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
