"""`labctl plan`: the inventory checked and what `up` would create shown, per host,
with each hypervisor's own calls; nothing runs, nothing is written, no host is contacted."""

from __future__ import annotations

import json
import socket
import subprocess
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from labctl.cli import cli
from labctl.defaults import INVENTORIES
from labctl.inventory import load_inventory
from labctl.lab import LabRunner
from labctl.ovs import render

MIXED = INVENTORIES / "blog-4host-mixed.yaml"


class Touched(AssertionError):
    pass


@pytest.fixture
def untouchable(monkeypatch, tmp_path):
    """No socket connects, no process starts, and the state dir must stay absent."""
    attempts: list[str] = []

    def refuse(what):
        def fail(*args, **kwargs):
            attempts.append(what)
            raise Touched(f"plan tried to {what}")

        return fail

    monkeypatch.setattr(socket.socket, "connect", refuse("connect a socket"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect a socket"))
    monkeypatch.setattr(socket, "create_connection", refuse("open a connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("resolve a name"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("run a command"))
    monkeypatch.setattr("os.geteuid", lambda: 1000)  # as an ordinary user
    state = tmp_path / "state"
    monkeypatch.setenv("LABCTL_STATE_DIR", str(state))
    # the guard itself works: a connection or a command here fails loudly
    with pytest.raises(Touched):
        socket.create_connection(("127.0.0.1", 9))
    with pytest.raises(Touched):
        subprocess.run(["true"])
    attempts.clear()
    yield attempts
    assert not state.exists(), "plan created the state directory"


def plan(*args: str):
    return CliRunner().invoke(cli, ["plan", *args], catch_exceptions=False)


def test_default_lab_plan_shows_the_lab_tunnel_bridges_vms_and_controller(untouchable):
    result = plan()
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("lab blog-2host: ")
    assert "  openflow    1.0 (OpenFlow10), bridge br0 on every host" in out
    assert "  controller  os-ken l2_learning at tcp:10.250.0.254:6633" in out
    mtu = "1462 on every VM NIC: underlay 1500 - 38 for gre (outer IPv4 20, GRE 4, inner Ethernet 14)"
    assert f"  mtu         {mtu}" in out
    assert "labctl runs it in its own namespace lc-blog-2host-controller" in out
    assert "underlay segment 10.250.0.0/24: Linux bridge ul in namespace lc-blog-2host-underlay" in out
    assert "  host1  10.250.0.1  gre-host2  <->  gre-host1  10.250.0.2  host2" in out
    host1 = out[out.index("host host1 (simulated)") : out.index("host host2")]
    for line in (
        "  ovs         bridge br-phy (netdev)",
        "port eth0 on br-phy",
        "bridge br0 (netdev, OpenFlow10): fail mode secure, datapath-id 0000000000000001",
        "port gre-host2 on br0 (gre to 10.250.0.2)",
        "port vm1 on br0",
        "  vm1         172.16.0.1/24 02:00:ac:10:00:01, port vm1",
        "eth0: a veth into the underlay bridge (port host1), MTU 1500",
        "namespace lc-blog-2host-vm1, eth0 02:00:ac:10:00:01 172.16.0.1/24 MTU 1462",
        "  controller  controller of br0 -> tcp:10.250.0.254:6633",
    ):
        assert line in host1, line
    assert not untouchable


def test_mixed_lab_of_unreachable_hosts_plans_each_hypervisors_calls(untouchable):
    result = plan("-i", str(MIXED))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "(real hosts)" in out and "labctl runs it on this machine" in out
    for peer, address in (("xen1", "10.250.0.2"), ("xs1", "10.250.0.3"), ("kvm2", "10.250.0.4")):
        assert f"kvm1  10.250.0.1  gre-{peer:<4}  <->  gre-kvm1  {address}  {peer}" in out
    kvm1 = out[out.index("host kvm1 (kvm)") : out.index("host xen1")]
    assert "  reach       SSH root@192.0.2.11:22" in kvm1
    assert "connect to libvirt qemu:///system on root@192.0.2.11:22, over labctl's SSH connection" in kvm1
    assert "libvirt.open('qemu+unix:///system?socket=<private socket>')" in kvm1
    assert "bridge br0 (system, OpenFlow10)" in kvm1 and "br-phy" not in kvm1
    assert "port vnetN, chosen by libvirt" in kvm1
    assert (
        "$ qemu-img create -q -f qcow2 -b /var/lib/libvirt/images/debian-12.qcow2 -F qcow2 "
        "/var/lib/labctl/blog-4host/vm1.qcow2"
    ) in kvm1
    assert "define domain lc-blog-4host-vm1" in kvm1 and "libvirt virConnect.defineXML" in kvm1
    assert "start domain lc-blog-4host-vm1" in kvm1 and "libvirt virDomain.create()" in kvm1
    xen1 = out[out.index("host xen1 (xen)") : out.index("host xs1")]
    assert "$ xl info" in xen1 and "$ xl create /var/lib/labctl/blog-4host/vm2.cfg" in xen1
    assert "port vif<domid>.0, the domain id Xen gives it" in xen1
    xs1 = out[out.index("host xs1 (xenserver)") : out.index("host kvm2")]
    for line in (
        "log in to XenAPI at https://192.0.2.13 as root (password from $LABCTL_PASSWORD_XS1",
        "network lc-blog-4host-br0 on bridge br0",
        "XenAPI network.create(network record)",
        "VM lc-blog-4host-vm3 cloned from template 'Other install media'",
        "XenAPI VIF.create(VIF record)",
        "remove the NICs lc-blog-4host-vm3 copied from its template",
        "XenAPI VM.start_on(this host,",
    ):
        assert line in xs1, line
    assert "lc-blog-4host-vm1.xml:" not in out  # files only with -v
    assert not untouchable


def test_verbose_plan_shows_the_rendered_files_and_the_ovs_transaction(untouchable):
    result = plan("-i", str(MIXED), "-v")
    assert result.exit_code == 0, result.output
    out = result.output
    shown = [line.strip()[2:].strip() for line in out.splitlines() if line.strip().startswith("| ")]
    assert "<virtualport type='openvswitch'/>" in shown and "<source bridge='br0'/>" in shown  # domain XML
    assert "<mtu size='1462'/>" in shown  # 1500 - 38 for GRE, on the domain's NIC
    assert (  # xl cfg: the PV NIC only, with the lab's MTU
        "vif = ['bridge=br0,type=vif,script=vif-openvswitch,mac=02:00:ac:10:00:02,mtu=1462']" in shown
    )
    assert '"bridge": "br0"' in shown  # the XenAPI network record, with what ovs-xapi-sync reads
    assert shown.count('"MTU": "1462",') == 2  # the XenAPI network and VIF records
    assert '"vswitch-controller-fail-mode": "secure",' in shown
    assert '"vswitch-disable-in-band": "true"' in shown
    assert "$ ovs-vsctl --timeout=30 \\" in out
    assert "-- --may-exist add-port br0 gre-xen1 -- set interface gre-xen1 type=gre" in out
    assert "-- set-controller br0 tcp:10.250.0.254:6633" in out
    assert not untouchable


def test_json_plan_is_the_same_commands_and_files_up_uses(untouchable):
    result = plan("-i", str(MIXED), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {k: data[k] for k in ("lab", "openflow", "protocols", "topology", "hub", "simulated")} == {
        "lab": "blog-4host",
        "openflow": "1.0",
        "protocols": "OpenFlow10",
        "topology": "star",
        "hub": "kvm1",
        "simulated": False,
    }
    assert data["controller"]["target"] == "tcp:10.250.0.254:6633" and data["controller"]["managed"]
    assert (data["underlay_mtu"], data["tunnel_overhead"], data["mtu"]) == (1500, 38, 1462)
    assert data["problems"] == [] and data["lab_steps"] == []
    assert data["tunnels"][0] == {
        "type": "gre",
        "ends": [
            {"host": "kvm1", "underlay_ip": "10.250.0.1", "port": "gre-xen1"},
            {"host": "xen1", "underlay_ip": "10.250.0.2", "port": "gre-kvm1"},
        ],
    }
    runner = LabRunner(load_inventory(MIXED))
    for host in data["hosts"]:
        up_plan = runner.builder.plan(runner.lab.host(host["name"]))
        assert host["ovs_transaction"] == render(up_plan.commands)
        assert [c["argv"] for c in host["ovs"]] == [c.argv() for c in up_plan.commands]
        assert host["controller"]["argv"] == render([up_plan.controller])
        assert host["driver"] == host["flavor"] and host["vms"][0]["plugged_by"] == "the hypervisor"
    kvm1 = data["hosts"][0]
    define = next(s for s in kvm1["vms"][0]["steps"] if "defineXML" in s.get("api", ""))
    [(name, xml)] = define["files"].items()
    assert name == "lc-blog-4host-vm1.xml"
    assert xml == runner.drivers["kvm1"].domain_xml(runner.lab.vm("vm1"))
    iface = ET.fromstring(xml).find("devices/interface")
    assert iface.find("virtualport").get("type") == "openvswitch"
    xen1 = data["hosts"][1]
    create = xen1["vms"][0]["steps"][-1]
    assert create["argv"] == ["xl", "create", "/var/lib/labctl/blog-4host/vm2.cfg"]
    cfg = next(s for s in xen1["vms"][0]["steps"] if "files" in s)["files"]
    assert cfg == {"/var/lib/labctl/blog-4host/vm2.cfg": runner.drivers["xen1"].cfg(runner.lab.vm("vm2"))}
    xs1 = data["hosts"][2]
    assert [s["api"].split("(")[0] for s in xs1["vms"][0]["steps"]] == [
        "XenAPI VM.clone",
        "XenAPI VM.provision",
        "XenAPI VIF.destroy",
        "XenAPI VIF.create",
        "XenAPI VDI.create",
        "XenAPI task.create; HTTP PUT /import_raw_vdi?session_id=…&vdi=<VDI>&format=raw&task_id=<task>",
        "XenAPI VBD.create",
        "XenAPI VM.start_on",
    ]
    # the seed: a VDI on the pool's default SR, marked as labctl's, on a read-only CD drive
    seed_steps = {s["api"].split("(")[0]: s for s in xs1["vms"][0]["steps"]}
    vdi = json.loads(seed_steps["XenAPI VDI.create"]["files"]["VDI record"])
    assert (vdi["name_label"], vdi["SR"]) == ("lc-blog-4host-vm3-seed", "<the pool's default SR>")
    assert vdi["other_config"] == {"labctl-seed": "lc-blog-4host-vm3-seed"}
    vbd = json.loads(seed_steps["XenAPI VBD.create"]["files"]["VBD record"])
    assert (vbd["type"], vbd["mode"], vbd["bootable"], vbd["empty"]) == ("CD", "RO", False, False)
    network = json.loads(xs1["steps"][-1]["files"]["network record"])
    assert network["bridge"] == "br0" and network["name_label"] == "lc-blog-4host-br0"
    assert not untouchable


def test_sim_plans_every_host_simulated_with_its_hypervisors_port_names(untouchable):
    result = plan("-i", str(MIXED), "--sim", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["simulated"] and [h["driver"] for h in data["hosts"]] == ["sim"] * 4
    assert [h["flavor"] for h in data["hosts"]] == ["kvm", "xen", "xenserver", "kvm"]
    assert [h["vms"][0]["port"] for h in data["hosts"]] == ["vnet0", "vif1.0", "vif1.0", "vnet0"]
    assert data["controller"]["runs"] == "labctl runs it in its own namespace lc-blog-4host-controller"
    assert "underlay segment 10.250.0.0/24" in data["lab_steps"][0]["what"]
    text = json.dumps(data)
    assert "XenAPI" not in text and "libvirt" not in text and "xl create" not in text
    for host in data["hosts"]:
        assert host["reach"] == f"namespace lc-blog-4host-{host['name']} on this machine"
        assert host["ovs"][0]["change"] == "bridge br-phy (netdev)"
        assert f"port {host['vms'][0]['port']} on br0" in [c["change"] for c in host["ovs"]]
    assert not untouchable


def test_a_broken_inventory_exits_2_with_file_and_line(untouchable, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nhosts:\n  host1:\n    vms:\n      vm1: {ip: 300.1.2.3/24}\n")
    result = plan("-i", str(broken))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"labctl: error: {broken}:5: hosts.host1.vms.vm1.ip: expected an IPv4")


def test_a_setting_up_would_stop_at_exits_2_with_its_line(untouchable, tmp_path):
    no_image = tmp_path / "no-image.yaml"
    no_image.write_text(MIXED.read_text().replace("    image: /var/lib/xen/images/debian-12.qcow2\n", ""))
    result = plan("-i", str(no_image))
    assert result.exit_code == 2
    assert "! up stops here: set image: to the base qcow2 image the VMs boot from" in result.stdout
    line = next(n for n, text in enumerate(no_image.read_text().splitlines(), 1) if text == "  xen1:")
    expected = "hosts.xen1.image: set image: to the base qcow2 image the VMs boot from"
    assert result.stderr == f"labctl: error: {no_image}:{line}: {expected}\n"


def test_a_controller_up_could_not_start_here_exits_2_at_its_field(untouchable, tmp_path, monkeypatch):
    monkeypatch.delenv("LABCTL_POX_PATH", raising=False)
    inventory = tmp_path / "pox.yaml"
    inventory.write_text(
        "name: pox\ncontroller:\n  kind: pox\nhosts:\n  host1:\n    vms:\n      vm1: {ip: 172.16.0.1/24}\n"
    )
    result = plan("-i", str(inventory))
    assert result.exit_code == 2
    assert "  controller  pox forwarding.l2_learning at tcp:10.250.0.254:6633" in result.stdout
    assert "! up stops here: controller kind pox needs a POX checkout" in result.stdout
    assert result.stderr.startswith(
        f"labctl: error: {inventory}:2: controller.path: controller kind pox needs"
    )


def test_plan_warns_when_mtu_is_more_than_the_tunnel_carries(untouchable, tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(MIXED.read_text() + "mtu: 1500\ntunnel_type: vxlan\n")
    result = plan("-i", str(path), "--sim")
    assert result.exit_code == 0, result.output  # allowed: it is how a black hole is shown on purpose
    assert (
        "  mtu         1500 on every VM NIC, set by mtu:, but a vxlan tunnel over a 1500-byte underlay "
        "carries 1450: packets of 1451 to 1500 bytes will be dropped"
    ) in result.output
    assert not untouchable
