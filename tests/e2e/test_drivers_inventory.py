"""Real-host settings in the inventory: validated before anything is touched (exit 2)."""

from __future__ import annotations

import pytest

from labctl import secrets
from labctl.errors import InputError, InventoryError
from labctl.inventory import parse_inventory

REAL = """\
name: real
controller: {address: 10.250.0.254}
hosts:
  kvm1:
    driver: kvm
    address: admin@10.0.0.5
    key: ~/.ssh/lab
    known_hosts: off
    vms:
      vm1: {ip: 172.16.0.1/24}
  box:
    driver: ovs
    address: 10.0.0.6
    vms:
      vm2: {ip: 172.16.0.2/24}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as failed:
        parse_inventory(text)
    return failed.value.problems


def test_a_real_lab_resolves_with_its_access_settings():
    lab = parse_inventory(REAL)
    kvm1 = lab.host("kvm1")
    assert kvm1.driver == "kvm" and kvm1.access.key == "~/.ssh/lab" and kvm1.access.known_hosts == "off"
    assert lab.host("box").options["datapath"] == "system" and not lab.simulated


def test_real_hosts_need_the_controllers_address():
    found = problems(REAL.replace("controller: {address: 10.250.0.254}\n", ""))
    assert any("controller.address" in p and "on this machine" in p for p in found)


def test_simulated_and_real_hosts_do_not_mix():
    found = problems(REAL.replace("    driver: ovs\n", ""))
    assert any("hosts.box.driver" in p and "either simulated or real" in p for p in found)
    assert parse_inventory(REAL.replace("    driver: ovs\n", ""), simulate=True).simulated


def test_driver_fields_belong_to_their_driver():
    found = problems(
        REAL.replace("    address: 10.0.0.6\n", "    address: 10.0.0.6\n    uri: qemu:///system\n")
    )
    assert any("hosts.box.uri" in p and "for kvm hosts, not ovs" in p for p in found)
    found = problems(REAL.replace("    address: 10.0.0.6\n", "    address: 10.0.0.6\n    datapath: netdev\n"))
    assert any("hosts.box.underlay_dev" in p for p in found)
    found = problems(REAL.replace("key: ~/.ssh/lab", "key: ~/.ssh/lab; rm -rf /"))
    assert any("hosts.kvm1.key" in p for p in found)


def test_passwords_come_from_env_then_file_and_never_show(tmp_path, monkeypatch):
    monkeypatch.delenv("LABCTL_PASSWORD", raising=False)
    monkeypatch.delenv("LABCTL_PASSWORD_XS_1", raising=False)
    pw = tmp_path / "pw"
    pw.write_text("from-file\nignored\n")
    assert secrets.password("xs-1", str(pw)) == "from-file"
    monkeypatch.setenv("LABCTL_PASSWORD", "from-env")
    assert secrets.password("xs-1", str(pw)) == "from-env"
    monkeypatch.setenv("LABCTL_PASSWORD_XS_1", "per-host")
    assert secrets.password("xs-1", str(pw)) == "per-host"
    monkeypatch.delenv("LABCTL_PASSWORD_XS_1")
    monkeypatch.delenv("LABCTL_PASSWORD")
    with pytest.raises(InputError) as missing:
        secrets.password("xs-1", None)
    assert "LABCTL_PASSWORD_XS_1" in str(missing.value)
