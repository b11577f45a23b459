"""The VMs' MTU on real userspace OVS: what the tunnel leaves of the underlay's crosses,
one byte more does not, and a lab whose VMs send more than that is an MTU black hole."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import TWO_HOST

pytestmark = pytest.mark.lab


def link_mtu(lab, netns: str, dev: str) -> int:
    return int(lab.in_vm(netns, "cat", f"/sys/class/net/{dev}/mtu").stdout)


def pings(lab, src: str, dst_ip: str, packet: int, dont_fragment: bool = True) -> bool:
    """One ping of an IPv4 packet of `packet` bytes from `src`: answered?"""
    df = ["-M", "do"] if dont_fragment else ["-M", "dont"]
    argv = ["ping", *df, "-s", str(packet - 28), "-c", "1", "-W", "2", dst_ip]
    return lab.in_vm(src, *argv, check=False).returncode == 0


def set_mtu(lab, mtu: int) -> None:
    """Both VMs' NICs and their ports in br0, by hand."""
    for host, vm in (("host1", "vm1"), ("host2", "vm2")):
        lab.in_vm(vm, "ip", "link", "set", "eth0", "mtu", str(mtu))
        lab.in_vm(host, "ip", "link", "set", vm, "mtu", str(mtu))


@pytest.mark.parametrize(("tunnel_type", "mtu"), [("gre", 1462), ("vxlan", 1450)])
def test_the_computed_mtu_is_the_largest_that_crosses_the_tunnel(make_lab, tunnel_type, mtu):
    lab = make_lab(TWO_HOST + f"tunnel_type: {tunnel_type}\n")
    lab.run("up")
    # both ends of each VM's veth, and the underlay at its default
    assert (link_mtu(lab, "vm1", "eth0"), link_mtu(lab, "host1", "vm1")) == (mtu, mtu)
    assert link_mtu(lab, "host1", "eth0") == 1500
    ports = {p["name"]: p for p in lab.status()["hosts"][0]["ports"]}
    assert ports["vm1"]["mtu"] == mtu and f"vm1          VM vm1, MTU {mtu}" in lab.run("status").stdout
    report = json.loads(lab.run("verify", "--json").stdout)
    assert report["ok"] is True
    for pair in report["pairs"]:
        assert (pair["mtu_probe_bytes"], pair["mtu_probe_ok"], pair["mtu_black_hole"]) == (mtu, True, False)
    # Not too cautious either: with every VM link one byte bigger by hand, a packet one byte
    # over the computed MTU is lost, one of exactly the MTU still crosses.
    set_mtu(lab, mtu + 1)
    assert pings(lab, "vm1", "172.16.0.2", mtu)
    assert not pings(lab, "vm1", "172.16.0.2", mtu + 1)


def test_vms_with_more_mtu_than_the_tunnel_carries_are_an_mtu_black_hole_not_loss(make_lab, tmp_path):
    lab = make_lab(TWO_HOST + "mtu: 1500\n")
    lab.run("up")
    assert link_mtu(lab, "vm1", "eth0") == 1500
    junit = tmp_path / "verify.xml"
    result = lab.run("verify", "--junit", str(junit), check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "2/2 pairs answered; failed: MTU (2 pairs are MTU black holes: 1500-byte packets dropped"
        in result.stdout
    )
    assert "1500 BLACK HOLE" in result.stdout
    assert "labctl: verify: MTU black hole: the VMs' MTU (1500, set by mtu:) is more than a gre tunnel" in (
        result.stderr
    )
    failures = [case.find("failure") for case in ET.parse(junit).getroot().iter("testcase")]
    assert [f.get("message")[:40] for f in failures] == [
        "MTU black hole to 172.16.0.2 (1500-byte ",
        "MTU black hole to 172.16.0.1 (1500-byte ",
    ]
    report = json.loads(lab.run("verify", "--json", check=False).stdout)
    for pair in report["pairs"]:
        assert pair["loss_pct"] == 0 and pair["received"] == pair["sent"] == 3
        assert pair["mtu_black_hole"] is True and pair["ok"] is False and pair["failed"] == "MTU"
    # Where it goes: userspace OVS puts the 1538-byte GRE packet on the 1500-byte underlay
    # port, which refuses it. OVS never fragments a tunnel packet, so turning its Don't
    # Fragment off (df_default=false) changes nothing.
    log = (lab.state_dir / lab.name / "hosts" / "host1" / "ovs-vswitchd.log").read_text()
    assert "error sending Ethernet packet on eth0: Message too long" in log
    lab.on_host("host1", "ovs-vsctl", "set", "interface", "gre-host2", "options:df_default=false")
    lab.on_host("host2", "ovs-vsctl", "set", "interface", "gre-host1", "options:df_default=false")
    assert pings(lab, "vm1", "172.16.0.2", 1462)
    assert not pings(lab, "vm1", "172.16.0.2", 1500, dont_fragment=False)
