"""The nested-VM smoke test, through the product: simulated kvm hosts with `guests: libvirt`
run a real libvirtd each, which boots a real Linux guest under QEMU (TCG here: /dev/kvm
exists but hangs guests, and CI runners have none) and plugs its vnetN into the host's
br0 itself. Namespace VMs on the other hosts ping the guests across GRE, through the
controller.

The guest is Debian 12's kernel and a busybox-static initramfs that takes its address
from the kernel command line, built by scripts/build-guest.sh (cached under build/guest/,
never committed). Every lab is taken down and checked gone: no namespace, no process
(libvirtd and QEMU live in the hosts' namespaces), no mount, no state file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.lab

PLAYBOOK = REPO / "playbooks" / "ci-nested.yaml"
NESTED = REPO / "inventories" / "blog-4host-nested.yaml"
BOOT_SECONDS = 180  # a TCG boot on a loaded 2-core machine: readiness, not an assertion
TWO_HOSTS = """\
name: {name}
simulate: true
hosts:
  kvm1:
    driver: kvm
    guests: libvirt
    accel: tcg
    boot:
      kernel: {kernel}
      initrd: {initrd}
    vms:
      vm1:
        ip: 172.16.0.1/24
  host2:
    vms:
      vm2:
        ip: 172.16.0.2/24
"""


def _missing() -> str | None:
    for tool, package in (("libvirtd", "libvirt-daemon"), ("qemu-system-x86_64", "qemu-system-x86")):
        if shutil.which(tool) is None:
            return f"{tool} not installed ({package}): scripts/setup.sh --libvirt"
    return None


@pytest.fixture(scope="session")
def guest() -> tuple[Path, Path]:
    """(kernel, initrd) of the test guest, built once (and cached) by scripts/build-guest.sh."""
    missing = _missing()
    if missing:
        pytest.skip(missing)
    built = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-guest.sh")], capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stderr
    directory = REPO / built.stdout.strip()
    return directory / "vmlinuz", directory / "initrd.gz"


@pytest.fixture
def lab_env(lab_env):
    """A short state directory: the libvirtd socket inside it must fit a unix socket path
    (107 bytes), and pytest's own temporary paths are long."""
    short = tempfile.mkdtemp(prefix="lcn", dir="/tmp")
    yield {**lab_env, "LABCTL_STATE_DIR": short}
    if os.path.isdir(short):  # down removes it with the last lab; anything left fails here
        os.rmdir(short)


def nested_inventory(guest) -> str:
    """The bundled nested lab, under the test's own name, booting the guest just built."""
    kernel, initrd = guest
    text = NESTED.read_text()
    boot = "{kernel: ../../../build/guest/vmlinuz, initrd: ../../../build/guest/initrd.gz}"
    assert boot in text and "name: blog-4host-nested\n" in text
    text = text.replace(boot, f"{{kernel: {kernel}, initrd: {initrd}}}")
    # a template for make_lab: its braces doubled, the name left to fill in
    return text.replace("{", "{{").replace("}", "}}").replace("name: blog-4host-nested\n", "name: {name}\n")


def mounts_of(path: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(path) in line]


def processes_in_mount_ns(inode: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/mnt").st_ino == inode:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def wait_until(what: str, holds, seconds: float = BOOT_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not holds():
        assert time.monotonic() < deadline, f"{what}: not within {seconds:g} s"
        time.sleep(0.5)


def test_the_nested_playbook_passes_with_real_guests_across_gre(make_lab, guest, tmp_path):
    lab = make_lab(nested_inventory(guest))
    report = tmp_path / "nested.xml"
    result = lab.run("run", str(PLAYBOOK), "--junit", str(report), timeout=900)
    assert "ci-nested: 10 passed, 0 failed, 0 skipped" in result.stdout, result.stdout + result.stderr
    # every ordered pair, the real guests' own included: pinged from inside them
    assert "12 pairs, 0% loss, 1462-byte packets pass" in result.stdout, result.stdout
    cases = {c.get("name"): c for c in ET.parse(report).getroot().iter("testcase")}
    assert len(cases) == 10 and not any(c.find("failure") is not None for c in cases.values())
    # accel is left at auto: the KVM probe decided, and up said what and why
    assert "VM vm1 defined under TCG: " in result.stderr or "VM vm1 defined under KVM: " in result.stderr


def test_a_real_guest_is_a_vm_like_any_other_and_down_leaves_nothing(make_lab, guest):
    kernel, initrd = guest
    lab = make_lab(TWO_HOSTS.format(kernel=kernel, initrd=initrd, name="{name}"))
    up = lab.run("up", timeout=300)
    assert "VM vm1 defined under TCG: accel: tcg" in up.stderr and "libvirtd started" in up.stderr
    kinds = [r["kind"] for r in lab.journal()]
    assert kinds.index("libvirtd") < kinds.index("libvirt-guest")  # each journalled before it is made
    state = lab.state_dir / lab.name / "hosts" / "kvm1" / "libvirt"
    libvirtd = int((state / "run" / "libvirtd.pid").read_text())
    mount_ns = os.stat(f"/proc/{libvirtd}/ns/mnt").st_ino
    assert mount_ns != os.stat("/proc/self/ns/mnt").st_ino and not mounts_of(state)  # private mounts only

    # status and ports name libvirt's tap after the VM; up again changes nothing
    status = lab.status()
    [kvm1] = [h for h in status["hosts"] if h["name"] == "kvm1"]
    assert {p["name"]: p.get("vm") for p in kvm1["ports"]}["vnet0"] == "vm1"
    assert status["up"] and status["drift"] == []
    assert "VM vm1 (172.16.0.1, 02:00:ac:10:00:01)" in lab.run("ports", "kvm1").stdout
    assert "nothing to change" in lab.run("up").stdout

    # the guest boots (its console says so) and answers; verify runs the pairs it can
    console = state / "var" / "lib" / "libvirt" / "labctl" / "vm1.console"
    wait_until("the guest's ready line", lambda: "LABCTL-GUEST-READY" in console.read_text(errors="replace"))
    assert "172.16.0.1/24" in console.read_text(errors="replace")  # its address, from labctl.ip=
    wait_until(
        "vm2 reaches the guest",
        lambda: lab.in_vm("vm2", "ping", "-c1", "-W1", "172.16.0.1", check=False).returncode == 0,
    )
    # the way in: the guest's second NIC, on a Linux bridge in kvm1's namespace, not br0
    netns = f"lc-{lab.name}-kvm1"
    on_mgmt = subprocess.run(
        ["ip", "netns", "exec", netns, "ip", "-br", "link", "show", "master", "labmgmt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert on_mgmt[0] == "vnet1" and "vnet1" not in {p["name"] for p in kvm1["ports"]}
    inside = lab.run("exec", "vm1", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    assert "inet 172.16.0.1/24" in inside.stdout
    failed = lab.run("exec", "vm1", "--", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert (failed.returncode, failed.stdout, failed.stderr) == (7, "out\n", "err\n")
    # nothing answers on the guest's lab address: the runner listens on the management one only
    probe = lab.in_vm("vm2", "curl", "-sS", "--max-time", "5", "http://172.16.0.1:8080/", check=False)
    assert probe.returncode == 7, probe.stderr  # curl: could not connect
    verify = json.loads(lab.run("verify", "--json").stdout)
    pairs = {(p["src"], p["dst"]): p for p in verify["pairs"]}
    assert verify["ok"] is True
    assert pairs[("vm2", "vm1")]["ok"] and pairs[("vm2", "vm1")]["received"] == 3
    assert pairs[("vm1", "vm2")]["ok"] and pairs[("vm1", "vm2")]["received"] == 3  # from inside the guest
    assert not any(p.get("unverifiable") for p in verify["pairs"])
    assert "2/2 pairs answered, no packet lost" in lab.run("verify").stdout

    # doctor says what runs the guests, and why
    doctor = lab.run("doctor", check=False).stdout
    assert "kvm1: ok   accel: guests will run under TCG (accel: tcg)" in doctor
    assert "kvm1: ok   libvirtd: libvirtd (libvirt)" in doctor

    # the live domain: TCG, as accel: tcg says; a guest whose QEMU died is drift, and up starts it again
    conn = libvirt.open(f"qemu+unix:///system?socket={state}/run/libvirt/libvirt-sock")
    try:
        assert ET.fromstring(conn.lookupByName(f"lc-{lab.name}-vm1").XMLDesc()).get("type") == "qemu"
    finally:
        conn.close()
    qemu = int((state / "run" / "libvirt" / "qemu" / f"lc-{lab.name}-vm1.pid").read_text())
    os.kill(qemu, signal.SIGKILL)  # started by the lab's libvirtd, in the lab's namespace
    wait_until("libvirt notices", lambda: lab.status()["drift"] != [], 30)
    assert "kvm1: VM vm1 is not running" in lab.status()["drift"][0]
    assert "VM vm1 started" in lab.run("up", timeout=300).stderr
    assert lab.status()["drift"] == []
    # its way in comes back with it: verify runs from inside it again
    wait_until(
        "the restarted guest answers on its way in",
        lambda: lab.run("exec", "vm1", "--", "true", check=False).returncode == 0,
    )
    lab.remember_processes()
    lab.run("down")
    lab.assert_gone()
    assert processes_in_mount_ns(mount_ns) == [] and not mounts_of(state)


def test_down_after_up_and_libvirtd_were_killed_leaves_no_qemu_mount_or_file(make_lab, guest):
    kernel, initrd = guest
    lab = make_lab(TWO_HOSTS.format(kernel=kernel, initrd=initrd, name="{name}"))
    console = (
        lab.state_dir
        / lab.name
        / "hosts"
        / "kvm1"
        / "libvirt"
        / "var"
        / "lib"
        / "libvirt"
        / "labctl"
        / "vm1.console"
    )
    up = subprocess.Popen(
        [sys.executable, "-m", "labctl", "up", "-i", str(lab.inventory)],
        env=lab.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until("QEMU has started", lambda: console.exists() or up.poll() is not None, 300)
    finally:
        up.send_signal(signal.SIGKILL)
        up.wait()
    assert console.exists(), "up ended before QEMU started"
    run = console.parents[4] / "run"
    libvirtd = int((run / "libvirtd.pid").read_text())
    mount_ns = os.stat(f"/proc/{libvirtd}/ns/mnt").st_ino
    wait_until(
        "libvirt wrote QEMU's pidfile", (run / "libvirt" / "qemu" / f"lc-{lab.name}-vm1.pid").exists, 30
    )
    qemu = int((run / "libvirt" / "qemu" / f"lc-{lab.name}-vm1.pid").read_text())
    # and libvirtd dies too: nothing is left to ask about the guest, whose QEMU lives on in
    # kvm1's namespace, where down finds it
    os.kill(libvirtd, signal.SIGKILL)
    lab.remember_processes()
    assert qemu in lab.recorded_pids and len(lab.recorded_pids) >= 3  # QEMU, the host's OVS daemons
    lab.run("down", "--lab", lab.name, timeout=120)
    lab.assert_gone()
    assert processes_in_mount_ns(mount_ns) == []


def test_a_real_guest_from_a_disk_image_runs_on_an_overlay_the_daemon_sees(make_lab, guest, tmp_path):
    """image: instead of boot: the overlay is made where the host's libvirtd sees it, backed
    by the image where it is; the guest (a blank disk: the firmware finds nothing to boot)
    runs and its port is on br0, and down removes it all."""
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    text = TWO_HOSTS.format(kernel="x", initrd="x", name="{name}")
    text = text.replace("    boot:\n      kernel: x\n      initrd: x\n", f"    image: {base}\n")
    lab = make_lab(text)
    lab.run("up", timeout=300)
    state = lab.state_dir / lab.name / "hosts" / "kvm1" / "libvirt"
    overlay = state / "var" / "lib" / "libvirt" / "labctl" / "vm1.qcow2"
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "-U", "--output=json", str(overlay)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert info["backing-filename"] == str(base)
    [kvm1] = [h for h in lab.status()["hosts"] if h["name"] == "kvm1"]
    assert {p["name"]: p.get("vm") for p in kvm1["ports"]}["vnet0"] == "vm1"
    lab.remember_processes()
    lab.run("down")
    lab.assert_gone()
    assert base.exists()  # the base image is never written or removed
