"""Inventory loading: defaults, and errors that name file, line and field."""

from __future__ import annotations

import ipaddress

import pytest

from labctl.defaults import DEFAULT_INVENTORY, INVENTORIES
from labctl.errors import InventoryError
from labctl.inventory import load_inventory, parse_inventory

GOOD = """\
name: demo
hosts:
  host1:
    vms:
      vm1: {ip: 172.16.0.1/24}
  host2:
    vms:
      vm2: {ip: 172.16.0.2/24}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as info:
        parse_inventory(text, "lab.yaml")
    return info.value.problems


def test_the_bundled_two_host_lab_is_the_classic_lab():
    lab = load_inventory(DEFAULT_INVENTORY)
    assert [h.name for h in lab.hosts] == ["host1", "host2"]
    assert [(vm.name, str(vm.ip)) for vm in lab.vms] == [("vm1", "172.16.0.1/24"), ("vm2", "172.16.0.2/24")]
    assert lab.openflow == "1.0" and lab.bridge == "br0" and lab.controller.kind == "os-ken"
    assert lab.controller.apps == ("l2_learning",)


@pytest.mark.parametrize("path", sorted(INVENTORIES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_inventory_loads(path):
    assert load_inventory(path, simulate=True).hosts


def test_defaults_are_filled_in():
    lab = parse_inventory(GOOD)
    assert [str(h.underlay_ip) for h in lab.hosts] == ["10.250.0.1", "10.250.0.2"]
    assert lab.controller.address == ipaddress.IPv4Address("10.250.0.254")
    assert lab.controller.target == "tcp:10.250.0.254:6633"
    assert lab.vm("vm1").mac == "02:00:ac:10:00:01"
    assert lab.topology == "star" and lab.hub == "host1" and lab.simulated


def test_openflow_version_may_be_written_as_a_number():
    assert parse_inventory(GOOD + "openflow: 1.3\n").protocols == "OpenFlow13"


def test_bad_ip_names_line_field_expected_and_found():
    [problem] = problems(GOOD.replace("172.16.0.2/24", "172.16.0.300/24"))
    assert problem.startswith("lab.yaml:8: hosts.host2.vms.vm2.ip: expected an IPv4 address")
    assert "found '172.16.0.300/24'" in problem


def test_unknown_key_is_an_error_with_a_did_you_mean_hint():
    [problem] = problems(GOOD.replace("    vms:\n      vm1", "    vmz:\n      vm1"))
    assert problem.startswith("lab.yaml:4: hosts.host1.vmz: unknown field 'vmz' (did you mean 'vms'?)")


def test_yaml_syntax_error_names_the_line():
    [problem] = problems("name: demo\nhosts:\n  host1: {vms: [\n")
    assert problem.startswith("lab.yaml:4: YAML syntax error")


def test_duplicate_keys_are_refused():
    [problem] = problems(GOOD + "  host1: {}\n")
    assert problem == "lab.yaml:9: duplicate key 'host1' (first on line 3)"


def test_yaml_tags_that_build_objects_are_refused():
    [problem] = problems("name: !!python/object/apply:os.system ['true']\nhosts: {}\n")
    assert problem == (
        "lab.yaml:1: YAML tag !!python/object/apply:os.system is not allowed: "
        "only plain data (text, numbers, true/false, lists, mappings) is read"
    )


@pytest.mark.parametrize("bad_name", ["Host1", "h;rm -rf /", "a" * 12, "-x", "$(id)"])
def test_names_that_reach_commands_are_validated(bad_name):
    [problem] = problems(f"name: demo\nhosts:\n  '{bad_name}': {{}}\n")
    assert "expected a name" in problem and "lab.yaml:3" in problem


def test_duplicate_vm_address_and_mixed_subnets_are_errors():
    text = (
        GOOD.replace("172.16.0.2/24", "172.16.0.1/24") + "  host3:\n    vms:\n      vm3: {ip: 10.0.0.3/8}\n"
    )
    found = problems(text)
    assert any("address 172.16.0.1 is already used at hosts.host1.vms.vm1.ip" in p for p in found)
    assert any("lab.yaml:11:" in p and "one L2 segment" in p for p in found)


def test_names_are_unique_across_hosts_and_vms():
    found = problems(GOOD.replace("vm2:", "host1:"))
    assert any("name 'host1' is already used at hosts.host1" in p for p in found)


def test_reserved_names_are_refused():
    found = problems(GOOD.replace("host2:", "controller:"))
    assert any("'controller' is reserved" in p for p in found)


def test_real_hosts_need_an_address_unless_simulated():
    text = GOOD.replace("  host1:\n", "  host1:\n    driver: kvm\n")
    assert any("hosts.host1.address" in p for p in problems(text))
    lab = parse_inventory(text, simulate=True)
    assert lab.host("host1").driver == "sim" and lab.host("host1").flavor == "kvm"


def test_counts_are_bounded():
    hosts = "".join(f"  h{i}: {{}}\n" for i in range(65))
    [problem] = problems(f"name: demo\nhosts:\n{hosts}")
    assert "hosts" in problem and "64" in problem


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(InventoryError, match="no such inventory file"):
        load_inventory(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(InventoryError, match="expected a mapping"):
        load_inventory(empty)
