"""The VMs' MTU: what each tunnel type leaves of the underlay's, the inventory's say on
it, and the rule that keeps it sane."""

from __future__ import annotations

import pytest

from labctl.errors import InventoryError
from labctl.inventory import parse_inventory
from labctl.mtu import black_hole_cause, explain, guest_mtu, icmp_payload, tunnel_overhead
from tests.conftest import n_hosts

LAB = n_hosts(2, name="demo")


def lab_with(extra: str):
    return parse_inventory(LAB + extra, "lab.yaml")


def problems(extra: str) -> list[str]:
    with pytest.raises(InventoryError) as info:
        lab_with(extra)
    return info.value.problems


def test_each_tunnel_adds_its_headers_and_the_inner_ethernet_header():
    # Worked by hand: outer IPv4 20 + GRE 4 (no key, checksum or sequence) + inner Ethernet 14,
    # and outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
    assert tunnel_overhead("gre") == 38
    assert tunnel_overhead("vxlan") == 50


def test_the_vm_mtu_is_the_underlays_less_the_tunnels_overhead():
    assert guest_mtu(1500, "gre") == 1462
    assert guest_mtu(1500, "vxlan") == 1450
    assert guest_mtu(9000, "gre") == 8962


def test_the_full_size_icmp_probe_fills_the_mtu_exactly():
    # 20 bytes of IPv4 header, 8 of ICMP header: ping -s 1472 is the classic 1500-byte probe
    assert icmp_payload(1500) == 1472
    assert icmp_payload(1462) == 1434


def test_a_lab_gets_the_computed_mtu_by_default():
    lab = parse_inventory(LAB)
    assert (lab.underlay_mtu, lab.mtu) == (1500, 1462)
    assert parse_inventory(LAB + "tunnel_type: vxlan\n").mtu == 1450
    jumbo = lab_with("underlay: {mtu: 9000}\n")
    assert (jumbo.underlay_mtu, jumbo.mtu) == (9000, 8962)


def test_mtu_in_the_inventory_is_taken_as_it_is():
    assert lab_with("mtu: 1400\n").mtu == 1400
    # more than the tunnel carries is allowed: verify then shows the black hole it makes
    assert lab_with("mtu: 1500\n").mtu == 1500


def test_an_mtu_out_of_the_sane_range_names_its_line():
    assert problems("mtu: 100\n") == ["lab.yaml:11: mtu: expected an MTU from 576 to 9216 bytes, found 100"]
    assert problems("mtu: 65000\n") == [
        "lab.yaml:11: mtu: expected an MTU from 576 to 9216 bytes, found 65000"
    ]
    assert problems("underlay:\n  mtu: 20000\n") == [
        "lab.yaml:12: underlay.mtu: expected an MTU from 576 to 9216 bytes, found 20000"
    ]


def test_an_underlay_too_small_for_the_tunnel_is_refused_unless_mtu_says_what_vms_get():
    assert problems("underlay: {mtu: 600}\n") == [
        "lab.yaml:11: underlay.mtu: 600 leaves the VMs 562 bytes inside a gre tunnel "
        "(38 bytes of headers); expected at least 614"
    ]
    assert lab_with("underlay: {mtu: 600}\nmtu: 576\n").mtu == 576


def test_an_mtu_must_be_a_number_not_text():
    [problem] = problems('mtu: "1400"\n')
    assert problem.startswith("lab.yaml:11: mtu: input should be a valid integer")


def test_explain_shows_where_the_mtu_comes_from():
    assert explain(1462, 1500, "gre") == (
        "1462 on every VM NIC: underlay 1500 - 38 for gre (outer IPv4 20, GRE 4, inner Ethernet 14)"
    )
    assert explain(1400, 1500, "gre") == (
        "1400 on every VM NIC, set by mtu: (a gre tunnel over a 1500-byte underlay carries 1462)"
    )
    assert explain(1500, 1500, "gre").endswith("carries 1462: packets of 1463 to 1500 bytes will be dropped")


def test_a_black_hole_is_blamed_on_mtu_when_it_is_too_big_and_on_the_underlay_otherwise():
    assert black_hole_cause(1500, 1500, "gre").startswith(
        "the VMs' MTU (1500, set by mtu:) is more than a gre tunnel carries over a 1500-byte underlay (1462)"
    )
    assert "the underlay takes less than underlay.mtu says" in black_hole_cause(1462, 1500, "gre")
