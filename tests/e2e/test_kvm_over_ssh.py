"""A real KVM host over SSH: labctl's kvm driver reaches a real libvirtd through its own
SSH connection (drivers/libvirt_tunnel.py), with the host's known_hosts file, with
known_hosts off, with its key, and defines, starts and removes a real QEMU guest there.

The host is the sshd harness (tests/sshd_harness.py) with, in the same private mount
namespace, what a KVM host runs: Open vSwitch at its default paths (userspace datapath:
no kernel module here) and a libvirtd whose /var and /etc/libvirt are the test's
directories, configured as a simulated host's (drivers/libvirtd.py: QEMU as root, TCG).
labctl runs on this machine and reaches the host only over SSH; the libvirt socket is
inside the host's mount namespace, so nothing but the tunnel can reach it.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

from labctl.drivers import DRIVERS, LabSession
from labctl.drivers.kvm import KvmDriver
from labctl.drivers.libvirtd import LIBVIRTD_CONF, QEMU_CONF
from labctl.errors import ProvisionError
from labctl.inventory import parse_inventory
from labctl.progress import Reporter
from labctl.state import LabState
from labctl.verify import FpingProber, _ping
from tests import small_guest
from tests.conftest import REPO
from tests.sshd_harness import READY_SECONDS, Sshd, sh

pytestmark = pytest.mark.lab

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
# Run in the host's mount namespace before sshd; $1 is the test's directory for the host.
HOST_SETUP = (
    'mkdir -m 755 /run/openvswitch /run/libvirt && mount --bind "$1/var" /var && '
    'mount --bind "$1/etc" /etc/libvirt && '
    f"ovsdb-tool create /run/openvswitch/conf.db {SCHEMA} && "
    "ovsdb-server /run/openvswitch/conf.db --remote=punix:/run/openvswitch/db.sock "
    "--pidfile --detach --no-chdir --log-file=/run/openvswitch/ovsdb-server.log -vconsole:off && "
    "ovs-vsctl --no-wait init && "
    "ovs-vswitchd --pidfile --detach --no-chdir -vconsole:off "
    "--log-file=/run/openvswitch/ovs-vswitchd.log && "
    "ovs-vsctl add-br br0 -- set bridge br0 datapath_type=netdev && "
    "libvirtd --daemon --pid-file /run/libvirtd.pid"
)
INVENTORY = """\
name: {name}
controller: {{address: 10.250.0.254}}
hosts:
  kvm1:
    driver: kvm
    address: root@{address}
    key: {key}
    known_hosts: {known_hosts}
    accel: tcg
    image: {image}
    vms:
      vm1: {{ip: 172.16.0.1/24}}
"""


def _missing() -> str | None:
    for tool, package, setup in (
        ("libvirtd", "libvirt-daemon", "scripts/setup.sh --libvirt"),
        ("virt-ssh-helper", "libvirt-daemon", "scripts/setup.sh --libvirt"),
        ("qemu-system-x86_64", "qemu-system-x86", "scripts/setup.sh --libvirt"),
        ("virsh", "libvirt-clients", "scripts/setup.sh"),
        ("sshd", "openssh-server", "scripts/setup.sh"),
    ):
        if shutil.which(tool) is None and not shutil.which(tool, path="/usr/sbin"):
            return f"{tool} not installed ({package}): {setup}"
    return None


class KvmHost(Sshd):
    """The sshd harness with Open vSwitch and a libvirtd of its own."""

    def start(self, setup: str = "") -> None:
        for sub in ("var/lib/libvirt", "var/cache/libvirt", "var/log/libvirt", "var/tmp", "etc"):
            (self.tmp / "host" / sub).mkdir(parents=True, exist_ok=True)
        (self.tmp / "host" / "var" / "run").symlink_to("/run")
        (self.tmp / "host" / "etc" / "libvirtd.conf").write_text(LIBVIRTD_CONF)
        (self.tmp / "host" / "etc" / "qemu.conf").write_text(QEMU_CONF)
        super().start(f"set -- {shlex.quote(str(self.tmp / 'host'))} && {HOST_SETUP}")
        deadline = time.monotonic() + READY_SECONDS * 2  # libvirtd probes QEMU on its first start
        while self.on_host("virsh", "-c", "qemu:///system", "uri", check=False).returncode != 0:
            assert time.monotonic() < deadline, "libvirtd did not answer: " + self.libvirtd_log()
            time.sleep(0.2)

    def libvirtd_log(self) -> str:
        path = self.tmp / "host" / "var" / "log" / "libvirt" / "libvirtd.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "no log"

    def domains(self) -> list[str]:
        out = self.on_host("virsh", "-c", "qemu:///system", "list", "--all", "--name").stdout
        return [line for line in out.split() if line]


@pytest.fixture(scope="module")
def kvm_host(tmp_path_factory):
    missing = _missing()
    if missing:
        pytest.skip(missing)
    host = KvmHost(tmp_path_factory.mktemp("kvmhost"), prefix="lc-tkvm")
    try:
        host.start()
        yield host
    finally:
        host.stop()


@pytest.fixture
def base_image(tmp_path):
    """A blank qcow2: the guest's firmware finds nothing to boot, but QEMU runs it all the same."""
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    return base


def kvm_driver(host: KvmHost, tmp_path, image, known_hosts) -> KvmDriver:
    name = f"k4{uuid.uuid4().hex[:6]}"
    text = INVENTORY.format(
        name=name, address=host.address, key=host.client_key, known_hosts=known_hosts, image=image
    )
    lab = parse_inventory(text)
    state = LabState(lab.name, root=tmp_path / "state")
    return KvmDriver(LabSession(lab, state, Reporter(quiet=True)), lab.host("kvm1"))


def tunnel_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("labctl-libvirt-tunnel")]


def wait_for(what: str, holds) -> None:
    deadline = time.monotonic() + 30
    while not holds():
        assert time.monotonic() < deadline, f"{what}: not within 30 s"
        time.sleep(0.05)


def test_a_real_guest_is_defined_started_and_removed_over_labctls_ssh_connection(
    kvm_host, tmp_path, base_image
):
    sockets_before = set(glob.glob(f"{tempfile.gettempdir()}/labctl-libvirt-*"))
    driver = kvm_driver(kvm_host, tmp_path, base_image, kvm_host.known_hosts)
    vm = driver.session.lab.vm("vm1")
    name = f"lc-{driver.session.lab.name}-vm1"
    port = None
    try:
        driver.prepare()  # OVS answers over SSH; libvirt answers through the tunnel
        conn = driver.libvirt()
        assert conn.getType() == "QEMU" and conn.getURI().startswith("qemu+unix:///system?socket=")
        # the socket libvirt connected to is gone already; the connection lives on
        assert set(glob.glob(f"{tempfile.gettempdir()}/labctl-libvirt-*")) == sockets_before
        driver.finish()
        assert name in kvm_host.domains()
        assert kvm_host.on_host("virsh", "-c", "qemu:///system", "domstate", name).stdout.strip() == "running"
        # libvirt plugged the guest's tap into the host's br0 itself, and labctl reads it back
        port = driver.vm_port(vm)
        assert port.startswith("vnet")
        assert port in driver.transport().run(["ovs-vsctl", "list-ports", "br0"]).stdout.split()
        dumpxml = kvm_host.on_host("virsh", "-c", "qemu:///system", "dumpxml", name).stdout
        assert "type='qemu'" in dumpxml  # accel: tcg
        # doctor says where the connection goes
        checks = {name: probe() for name, probe in driver.doctor_checks()}
        ok, detail = checks["libvirt connection"]
        assert ok and f"qemu:///system on root@{kvm_host.address}:22, over labctl's SSH connection" in detail
        driver.finish()  # up twice: nothing new
        assert len(driver.session.state.records("kvm-vm")) == 1
    finally:
        # down: each record reaches the host again from the journal alone, over a new connection
        state = driver.session.state
        for record in reversed(state.records()):
            DRIVERS[record["driver"]].undo(record, state)
        driver.guests.close()
        driver.transport().close()
    assert name not in kvm_host.domains()
    assert port not in kvm_host.on_host("ovs-vsctl", "list-ports", "br0").stdout.split()
    overlay = f"/var/lib/labctl/{driver.session.lab.name}/vm1.qcow2"
    assert kvm_host.on_host("test", "-e", overlay, check=False).returncode == 1
    wait_for("every tunnel thread has ended", lambda: tunnel_threads() == [])
    assert set(glob.glob(f"{tempfile.gettempdir()}/labctl-libvirt-*")) == sockets_before


def doctor(inventory, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "labctl", "doctor", "-i", str(inventory)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "LABCTL_STATE_DIR": str(tmp_path / "state")},
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_known_hosts_off_reaches_libvirt_without_any_known_host(kvm_host, tmp_path, base_image):
    """No known_hosts file would have this host: with checking off, libvirt is reached all the same
    (the system ssh behind qemu+ssh would have refused or asked)."""
    inventory = tmp_path / "lab.yaml"
    inventory.write_text(
        INVENTORY.format(
            name="k4off",
            address=kvm_host.address,
            key=kvm_host.client_key,
            known_hosts="off",
            image=base_image,
        )
    )
    checked = doctor(inventory, tmp_path)
    assert "Traceback" not in checked.stderr
    assert (
        f"kvm1: ok   libvirt connection: libvirt qemu:///system on root@{kvm_host.address}:22, over "
        "labctl's SSH connection answers (libvirt "
    ) in checked.stdout, checked.stdout + checked.stderr
    driver = kvm_driver(kvm_host, tmp_path, base_image, "off")
    try:
        conn = driver.libvirt()
        assert conn.getType() == "QEMU"
        assert sorted(d.name() for d in conn.listAllDomains()) == sorted(kvm_host.domains())  # the host's
        assert conn.getLibVersion() >= 6_008_000  # virt-ssh-helper's first release: it was used
        driver.guests.close()
        wait_for("the tunnel ended with its libvirt connection", lambda: tunnel_threads() == [])
        conn = driver.libvirt()  # a new one, over a new channel of the same SSH connection
        assert conn.getType() == "QEMU"
    finally:
        driver.transport().close()
    wait_for("the tunnel ended with the SSH connection", lambda: tunnel_threads() == [])


def test_a_wrong_host_key_stops_the_libvirt_connection_in_one_line(kvm_host, tmp_path, base_image):
    impostor = tmp_path / "impostor"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor))
    kind, blob = (tmp_path / "impostor.pub").read_text().split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{kvm_host.address} {kind} {blob}\n")
    driver = kvm_driver(kvm_host, tmp_path, base_image, wrong)
    with pytest.raises(ProvisionError) as refused:
        driver.libvirt()
    message = str(refused.value)
    assert message.startswith("kvm1: connect over SSH to root@") and "\n" not in message
    assert "the host key differs from known_hosts" in message
    assert tunnel_threads() == []
    # and from the command line: exit 3, one line, no traceback
    inventory = tmp_path / "lab.yaml"
    inventory.write_text(
        INVENTORY.format(
            name="k4wrongkey",
            address=kvm_host.address,
            key=kvm_host.client_key,
            known_hosts=wrong,
            image=base_image,
        )
    )
    refused = doctor(inventory, tmp_path)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    [line] = [line for line in refused.stdout.splitlines() if line.startswith("kvm1: ")]
    assert line.startswith("kvm1: FAIL") and "the host key differs from known_hosts" in line, line


@pytest.fixture
def bare_host(tmp_path):
    """A host with sshd and nothing else: no libvirtd runs there."""
    missing = _missing()
    if missing:
        pytest.skip(missing)
    host = Sshd(tmp_path / "bare", prefix="lc-tkvm")
    host.tmp.mkdir()
    try:
        host.start()
        yield host
    finally:
        host.stop()


def test_a_host_whose_libvirtd_does_not_answer_fails_in_one_line_with_the_helpers_words(
    bare_host, tmp_path, base_image
):
    driver = kvm_driver(bare_host, tmp_path, base_image, bare_host.known_hosts)
    try:
        with pytest.raises(ProvisionError) as failed:
            driver.libvirt()
    finally:
        driver.transport().close()
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith(
        f"kvm1: connect to libvirt qemu:///system on root@{bare_host.address}:22, over labctl's SSH "
        "connection failed: virt-ssh-helper: cannot connect to '/var/run/libvirt/libvirt-sock'"
    ), message
    assert message.endswith("No such file or directory (is libvirtd running on the host?)"), message
    wait_for("the tunnel ended", lambda: tunnel_threads() == [])


# --- the way in: a management NIC on a Linux bridge of the host ----------------------------

MGMT_BRIDGE = "labwayin"
MGMT_HOST = "10.99.0.1/24"  # the host's own address there: inside the harness host's namespace only
WAY_IN = "    mgmt: {bridge: labwayin, subnet: 10.99.0.0/24}\n"
BOOT_SECONDS = 240  # readiness under TCG on a loaded 2-core machine, not a timed assertion


@pytest.fixture(scope="module")
def guest() -> tuple[str, str]:
    """(kernel, initrd) of the small test guest, built once (and cached) by scripts/build-guest.sh:
    it reads its NoCloud seed and runs dropbear on its management address."""
    kernel, initrd = small_guest.build()
    return str(kernel), str(initrd)


@pytest.fixture
def mgmt_bridge(kvm_host):
    """A plain Linux bridge in the harness host's namespace, with the host's address on it."""
    kvm_host.on_host("ip", "link", "add", MGMT_BRIDGE, "type", "bridge")
    try:
        kvm_host.on_host("ip", "addr", "add", MGMT_HOST, "dev", MGMT_BRIDGE)
        kvm_host.on_host("ip", "link", "set", MGMT_BRIDGE, "up")
        yield MGMT_BRIDGE
    finally:
        kvm_host.on_host("ip", "link", "del", MGMT_BRIDGE)


def test_a_real_hosts_guest_boots_from_its_seed_and_is_entered_through_the_host(
    kvm_host, tmp_path, guest, mgmt_bridge
):
    kernel, initrd = guest
    name = f"k4{uuid.uuid4().hex[:6]}"
    text = INVENTORY.format(
        name=name,
        address=kvm_host.address,
        key=kvm_host.client_key,
        known_hosts=kvm_host.known_hosts,
        image="x",
    ).replace("    image: x\n", f"    boot: {{kernel: {kernel}, initrd: {initrd}}}\n" + WAY_IN)
    lab = parse_inventory(text)
    state = LabState(lab.name, root=tmp_path / "state")
    driver = KvmDriver(LabSession(lab, state, Reporter(quiet=True)), lab.host("kvm1"))
    vm = lab.vm("vm1")
    domain = f"lc-{name}-vm1"
    try:
        driver.prepare()  # the bridge check passes: a Linux bridge, not the lab's
        checks = {check: probe() for check, probe in driver.doctor_checks()}
        assert checks["management bridge"] == (
            True,
            f"{MGMT_BRIDGE} is a Linux bridge; the host is {MGMT_HOST} there",
        )
        driver.finish()
        # the second NIC's tap is on the Linux bridge, the lab NIC's on br0 only
        taps = kvm_host.on_host("ls", f"/sys/class/net/{MGMT_BRIDGE}/brif").stdout.split()
        assert (
            len(taps) == 1
            and taps[0] not in kvm_host.on_host("ovs-vsctl", "list-ports", "br0").stdout.split()
        )
        deadline = time.monotonic() + BOOT_SECONDS
        while (why := driver.way_in(vm)) is not None:
            state_now = kvm_host.on_host("virsh", "-c", "qemu:///system", "domstate", domain).stdout.strip()
            assert time.monotonic() < deadline, f"the guest ({state_now}) did not answer over SSH: {why}"
            time.sleep(1)
        way = driver.vm_transport(vm)
        assert way.describe().startswith(f"SSH root@10.99.0.10:22 through SSH root@{kvm_host.address}:22")
        shown = way.run(["ip", "-o", "-4", "addr"]).stdout
        assert "inet 172.16.0.1/24" in shown and "inet 10.99.0.10/24" in shown, shown
        links = way.run(["ip", "-o", "link"]).stdout
        assert "mtu 1462" in links, links  # the seed's lab MTU
        result = way.run(["sh", "-c", "exit 3"], check=False)
        assert result.returncode == 3  # exec's exit code comes back through both SSH hops
        # verify's probes from inside: the guest has fping; busybox's ping, the fallback, reads
        # the same (its own lab address: the only one there is) and cannot set Don't Fragment
        assert FpingProber({vm.name: vm}, driver.vm_transport, 1434).tool(vm.name, way) == "fping"
        rtts, error = _ping(way, [vm], timeout_ms=2000)
        assert error is None and rtts["172.16.0.1"][0] is not None, rtts
        _, error = _ping(way, [vm], timeout_ms=2000, payload=1434)
        assert error == "ping: invalid option -- 'M'"
    finally:
        if driver.no_path(vm) is None:
            driver.vm_transport(vm).close()  # the guest's SSH connection, if it was opened
        for record in reversed(state.records()):
            DRIVERS[record["driver"]].undo(record, state)
        driver.guests.close()
        driver.transport().close()
    assert domain not in kvm_host.domains()
    assert kvm_host.on_host("test", "-e", f"/var/lib/labctl/{name}/vm1.seed.iso", check=False).returncode == 1
    wait_for("every tunnel thread has ended", lambda: tunnel_threads() == [])
