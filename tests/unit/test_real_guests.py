"""Real guests, without root: the kvm hosts' boot:, accel: and guests: fields and their rules,
the KVM probe against a fake host, what `labctl plan` shows for a simulated kvm host with
real guests, and how verify reports the pairs it cannot run (from a real guest)."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

import pytest
from click.testing import CliRunner

from labctl.cli import cli
from labctl.defaults import INVENTORIES
from labctl.drivers import accel
from labctl.drivers.sim_guests import RealGuests
from labctl.errors import InventoryError
from labctl.inventory import parse_inventory
from labctl.transport.base import Completed, Transport
from labctl.verify import PingResult, passed
from labctl.verify_report import render_table, summary, to_json, write_junit

NESTED = INVENTORIES / "blog-4host-nested.yaml"
KVM_HOST = """\
name: demo
hosts:
  kvm1:
    driver: kvm
    address: root@10.0.0.1
{fields}
    vms:
      vm1: {{ip: 172.16.0.1/24}}
  xen1:
    driver: xen
    address: root@10.0.0.2
    image: /srv/base.qcow2
    vms:
      vm2: {{ip: 172.16.0.2/24}}
controller: {{address: 10.250.0.254}}
"""


def problems(fields: str, simulate: bool = False) -> list[str]:
    with pytest.raises(InventoryError) as info:
        parse_inventory(KVM_HOST.format(fields=fields), "lab.yaml", simulate=simulate)
    return info.value.problems


# --- the inventory -------------------------------------------------------------------


def test_boot_accel_and_guests_are_kvm_host_fields_with_defaults():
    lab = parse_inventory(KVM_HOST.format(fields="    image: /srv/base.qcow2"))
    options = lab.host("kvm1").options
    assert (options["accel"], options["guests"], options["boot"]) == ("auto", "namespace", None)
    lab = parse_inventory(
        KVM_HOST.format(fields="    accel: tcg\n    boot: {kernel: /srv/vmlinuz, initrd: /srv/initrd.gz}")
    )
    boot = lab.host("kvm1").options["boot"]
    assert (boot.kernel, boot.initrd, boot.cmdline) == ("/srv/vmlinuz", "/srv/initrd.gz", "")


def test_boot_and_image_together_are_refused():
    found = problems("    image: /srv/base.qcow2\n    boot: {kernel: /srv/vmlinuz}")
    assert found == ["lab.yaml:7: hosts.kvm1.boot: boot: and image: are two ways to boot the guests; set one"]


def test_a_real_hosts_boot_paths_are_its_own_from_the_root():
    [found] = problems("    boot: {kernel: build/vmlinuz}")
    assert "hosts.kvm1.boot.kernel: 'build/vmlinuz': a path on the host, from /" in found
    # simulated, a relative path is from the inventory's directory
    parse_inventory(KVM_HOST.format(fields="    boot: {kernel: build/vmlinuz}"), simulate=True)


def test_real_guests_need_something_to_boot_and_only_kvm_hosts_take_them():
    [found] = problems("    guests: libvirt", simulate=True)
    assert found.startswith("lab.yaml:6: hosts.kvm1.guests: real guests need something to boot")
    bad = KVM_HOST.format(fields="").replace(
        "    image: /srv/base.qcow2\n", "    image: /x\n    guests: libvirt\n"
    )
    with pytest.raises(InventoryError) as info:
        parse_inventory(bad, "lab.yaml", simulate=True)
    assert info.value.problems == ["lab.yaml:13: hosts.xen1.guests: guests is for kvm hosts, not xen"]
    [found] = problems("    accel: fast")
    assert "hosts.kvm1.accel: expected 'auto', 'kvm' or 'tcg', found 'fast'" in found


def test_the_bundled_nested_lab_runs_real_guests_on_its_kvm_hosts_only():
    from labctl.inventory import load_inventory

    lab = load_inventory(NESTED)
    assert lab.simulated
    real = [h.name for h in lab.hosts if RealGuests.wanted(h)]
    assert real == ["kvm1", "kvm2"]
    boot = lab.host("kvm2").options["boot"]  # the YAML merge key gives kvm2 kvm1's settings
    assert boot.kernel == "../../../build/guest/vmlinuz"


# --- the KVM probe -----------------------------------------------------------------


class FakeHost(Transport):
    """Answers the probe's commands as a host would; records them."""

    def __init__(self, *, kvm: bool = True, probe: Completed | None = None, kernel: bool = True):
        self.name, self.kvm, self.probe, self.kernel, self.calls = "kvm1", kvm, probe, kernel, []

    def _run(self, argv: tuple[str, ...], *, input: str | None, timeout: float) -> Completed:
        self.calls.append(argv)
        if argv[:2] == ("test", "-c"):
            return Completed(argv, 0 if self.kvm else 1, "", "")
        if argv[0] == "test":
            return Completed(argv, 0 if (self.kernel or argv[1] != "-r" or "/dev/kvm" in argv) else 1, "", "")
        if argv[0] == "uname":
            return Completed(argv, 0, "6.1.0-26-amd64\n", "")
        if argv[0] == "timeout":
            assert self.probe is not None
            return self.probe
        raise AssertionError(argv)

    def spawn(self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None) -> int:
        raise AssertionError("the probe starts nothing in the background")

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        raise AssertionError

    def get_file(self, path: str) -> bytes:
        raise AssertionError


PANICKED = Completed((), 0, "[    0.9] Kernel panic - not syncing: VFS: Unable to mount root fs\n", "")


def test_auto_takes_kvm_when_a_guest_kernel_boots_under_it():
    host = FakeHost(probe=PANICKED)
    chosen = accel.choose("auto", accel.KvmProbe(host), "/srv/vmlinuz")
    assert chosen.domain_type == "kvm" and str(chosen).startswith("KVM: a guest kernel booted under KVM in")
    [probe] = [c for c in host.calls if c[0] == "timeout"]
    assert probe[:4] == ("timeout", "-s", "KILL", "5") and "accel=kvm" in probe
    assert probe[probe.index("-kernel") + 1] == "/srv/vmlinuz"


def test_auto_falls_back_to_tcg_when_kvm_hangs_the_guest_or_is_missing():
    hung = FakeHost(probe=Completed((), 137, "SeaBIOS\n", ""))
    chosen = accel.choose("auto", accel.KvmProbe(hung), "/srv/vmlinuz")
    assert chosen.domain_type == "qemu"
    assert chosen.why == (
        "/dev/kvm is there, but a guest kernel did not boot under it within 5 s (nested virtualisation off?)"
    )
    crashed = FakeHost(probe=Completed((), 134, "", "kvm_buf_set_msrs: Assertion failed.\n"))
    assert accel.choose("auto", accel.KvmProbe(crashed), "/k").why.endswith(
        "QEMU could not run a guest with it: kvm_buf_set_msrs: Assertion failed."
    )
    missing = FakeHost(kvm=False)
    assert accel.choose("auto", accel.KvmProbe(missing), "/k") == accel.Accel("qemu", "no /dev/kvm")
    assert not any(c[0] == "timeout" for c in missing.calls)


def test_auto_probes_with_the_hosts_own_kernel_once_and_kvm_or_tcg_ask_nothing():
    host = FakeHost(probe=PANICKED)
    probe = accel.KvmProbe(host)
    for _ in range(3):  # hosts build in parallel and share the answer
        accel.choose("auto", probe, None)
    [run] = [c for c in host.calls if c[0] == "timeout"]
    assert run[run.index("-kernel") + 1] == "/boot/vmlinuz-6.1.0-26-amd64"
    no_kernel = FakeHost(kernel=False)
    assert accel.choose("auto", accel.KvmProbe(no_kernel), None).why.startswith(
        "/dev/kvm is usable; not probed"
    )
    untouched = FakeHost()
    assert accel.choose("tcg", accel.KvmProbe(untouched), None) == accel.Accel("qemu", "accel: tcg")
    assert accel.choose("kvm", accel.KvmProbe(untouched), None) == accel.Accel("kvm", "accel: kvm")
    assert untouched.calls == []


def test_doctor_fails_accel_kvm_only_where_kvm_does_not_run_guests():
    hung = accel.KvmProbe(FakeHost(probe=Completed((), 137, "", "")))
    ok, detail = accel.doctor("kvm", hung, "/k")
    assert not ok and detail.startswith("guests will run under KVM (accel: kvm), but /dev/kvm is there")
    assert accel.doctor("auto", hung, "/k") == (
        True,
        "guests will run under TCG: /dev/kvm is there, but a guest kernel did not boot under it "
        "within 5 s (nested virtualisation off?)",
    )


# --- labctl plan ---------------------------------------------------------------------


def test_plan_shows_the_libvirtd_and_real_guests_of_a_simulated_kvm_host(monkeypatch, tmp_path):
    monkeypatch.setattr(subprocess.Popen, "__init__", lambda *a, **k: pytest.fail("plan ran a command"))
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(cli, ["plan", "-i", str(NESTED), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    kvm1, xen1 = data["hosts"][0], data["hosts"][1]
    socket = f"{tmp_path}/state/blog-4host-nested/hosts/kvm1/libvirt/run/libvirt/libvirt-sock"
    libvirtd = next(s for s in kvm1["steps"] if s["what"].startswith("libvirtd in the host's namespace"))
    assert libvirtd["what"].endswith(f"clients use qemu+unix:///system?socket={socket}")
    assert libvirtd["argv"][:5] == ["ip", "netns", "exec", "lc-blog-4host-nested-kvm1", "unshare"]
    assert any(
        s["what"].startswith("accel: auto: KVM (domain type kvm) if a guest kernel") for s in kvm1["steps"]
    )
    [vm1] = kvm1["vms"]
    assert vm1["port"] == "vnetN, chosen by libvirt, which plugs it into the bridge"
    assert vm1["plugged_by"] == "the hypervisor"
    assert not any(c["change"].startswith("port vnet") for c in kvm1["ovs"])  # libvirt adds it, not labctl
    [(name, xml)] = next(s for s in vm1["steps"] if "files" in s)["files"].items()
    domain = ET.fromstring(xml)
    assert name == "lc-blog-4host-nested-vm1.xml"
    assert domain.findtext("os/kernel") == "/var/lib/libvirt/labctl/vmlinuz"
    assert domain.findtext("os/initrd") == "/var/lib/libvirt/labctl/initrd"
    assert domain.findtext("os/cmdline") == "console=ttyS0 labctl.ip=172.16.0.1/24"
    # the NoCloud seed: a read-only SATA CD where the host's libvirtd sees it
    [seed] = domain.findall("devices/disk")
    assert (seed.get("device"), seed.find("target").get("bus")) == ("cdrom", "sata")
    assert seed.find("source").get("file") == "/var/lib/libvirt/labctl/vm1.seed.iso"
    assert seed.find("readonly") is not None
    [seed_step] = [s for s in vm1["steps"] if s["what"].startswith("NoCloud seed")]
    assert "172.16.0.1/24, MTU 1462, management 169.254.100.10/24, the lab's SSH key" in seed_step["what"]
    assert not (tmp_path / "state").exists()  # plan made no key and no seed
    assert domain.find("devices/serial").get("type") == "file"
    lab_nic, mgmt_nic = domain.findall("devices/interface")
    assert lab_nic.find("virtualport").get("type") == "openvswitch"
    assert lab_nic.find("source").get("bridge") == "br0"
    # the way in: a second NIC on a plain Linux bridge (no virtualport), never the lab's br0
    assert mgmt_nic.find("source").get("bridge") == "labmgmt" and mgmt_nic.find("virtualport") is None
    assert mgmt_nic.find("mac").get("address") == "06:00:ac:10:00:01"
    assert any(s["what"].startswith("management bridge labmgmt (169.254.100.1/24)") for s in kvm1["steps"])
    # the Xen host keeps its namespace VM, named as Xen names its port
    assert xen1["vms"][0]["port"] == "vif1.0" and xen1["vms"][0]["plugged_by"].startswith("labctl")
    assert data["problems"] == []


# --- verify: pairs from a guest labctl cannot enter ------------------------------------


def pairs() -> list[PingResult]:
    return [
        PingResult(
            "vm1", "vm2", "172.16.0.2", 0, 0, None, None, None, unverifiable="real guest, no way in yet"
        ),
        PingResult("vm2", "vm1", "172.16.0.1", 3, 3, 0.5, 0.6, 0.7, first_rtt_ms=9.0),
    ]


def test_pairs_from_a_real_guest_are_not_verifiable_and_never_a_pass(tmp_path):
    results = pairs()
    assert passed(results) and not results[0].ok
    table = render_table(results)
    assert "vm1 -> vm2 (172.16.0.2)  -         -     -         -     -    not verifiable: real guest" in table
    assert summary(results) == (
        "1/1 pairs answered, 1 not verifiable (from vm1: real guest, no way in yet), no packet lost"
    )
    data = to_json("demo", results)
    assert data["ok"] is True and data["pairs"][0]["unverifiable"] == "real guest, no way in yet"
    assert data["pairs"][0]["ok"] is False
    write_junit(tmp_path / "v.xml", "demo", results)
    [skipped] = ET.parse(tmp_path / "v.xml").getroot().iter("skipped")
    assert skipped.get("message") == "not verifiable: real guest, no way in yet"


def test_a_lab_where_nothing_could_be_verified_does_not_pass():
    only = pairs()[:1]
    assert not passed(only)
    assert summary(only).endswith("; nothing could be verified")
    failing = [*pairs(), PingResult("vm2", "vm3", "172.16.0.3", 3, 0, None, None, None)]
    assert not passed(failing)
    assert passed([])  # a lab of one VM has no pair to fail


def test_a_guest_with_seed_none_gets_no_seed_no_way_in_and_its_address_is_not_managed(monkeypatch, tmp_path):
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    text = NESTED.read_text().replace("    guests: libvirt\n", "    guests: libvirt\n    seed: none\n", 1)
    inventory = tmp_path / "lab.yaml"
    inventory.write_text(text)
    result = CliRunner().invoke(cli, ["plan", "-i", str(inventory), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [vm1] = json.loads(result.output)["hosts"][0]["vms"]
    [(_, xml)] = next(s for s in vm1["steps"] if "files" in s)["files"].items()
    domain = ET.fromstring(xml)
    assert domain.find("devices/disk") is None and len(domain.findall("devices/interface")) == 1
    assert not any(s["what"].startswith("NoCloud seed") for s in vm1["steps"])
    from labctl.drivers.base import LabSession
    from labctl.drivers.sim import SimDriver
    from labctl.inventory import load_inventory
    from labctl.progress import Reporter
    from labctl.state import LabState

    lab = load_inventory(inventory, simulate=True)
    session = LabSession(lab, LabState(lab.name, tmp_path / "state"), Reporter())
    driver = SimDriver(session, lab.host("kvm1"))
    vm = lab.vm("vm1")
    assert driver.way_in(vm) == "address not managed (seed: none): labctl has no way in"
    assert driver.address_managed(vm) is False


def guest_from(tmp_path, netns: str):
    """vm1 of lab demo, reached over SSH from `netns` with the lab's key and its host key."""
    from labctl.guest_keys import LabKeys
    from labctl.transport import guest

    keys = LabKeys(tmp_path, "demo")
    return guest.from_netns(
        "vm1", netns, "169.254.100.10", key=keys.client().private_path, host_key=keys.host("vm1").public
    )


def test_a_guest_is_reached_over_ssh_as_root_with_the_lab_key_and_its_own_host_key(tmp_path):
    ssh = guest_from(tmp_path, "lc-demo-kvm1")
    assert ssh.describe() == (
        "SSH root@169.254.100.10:22 (management path) from namespace lc-demo-kvm1, "
        "host key pinned (ssh-ed25519)"
    )
    assert ssh.key == str(tmp_path / "guest-keys" / "id_ed25519")


def test_a_guest_that_does_not_answer_is_exit_255_and_a_reason_not_an_error(tmp_path):
    """As ssh(1) says it: wait-for asks again, verify reports the guest's pairs as not verifiable."""
    ssh = guest_from(tmp_path, "lc-no-such-namespace")
    result = ssh.run(["true"], check=False)
    assert result.returncode == 255 and result.stderr == "unreachable: No such file or directory"
    assert ssh.unreachable() == "unreachable: No such file or directory"
