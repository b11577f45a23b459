"""The nested-VM smoke test: a real guest kernel under QEMU/TCG on a lab host's br0.

The guest is Debian 12's kernel (downloaded with `apt-get download` and
unpacked with `dpkg-deb -x`: no install scripts run) and a busybox-static
initramfs that loads the virtio-net modules, sets its address and prints a
ready marker. QEMU runs inside host1's namespace with a tap that goes into
host1's br0; the VM on host2 pings the guest across the GRE tunnel, through
the controller, like any other VM of the lab. The kernel and initramfs are
cached under build/ (gitignored), never committed; QEMU is stopped by its PID.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.lab

CACHE = REPO / "build" / "test-cache" / "qemu-guest"
MODULES = [  # load order: each needs the ones before it (modinfo -F depends)
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
]
GUEST_IP = "172.16.0.9/24"
GUEST_MAC = "02:00:ac:10:00:09"
READY = "LABCTL-GUEST-READY"
INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in {" ".join(Path(m).name for m in MODULES)}; do insmod /lib/modules/$m; done
ip link set lo up
ip link set eth0 up
ip addr add {GUEST_IP} dev eth0
echo {READY}
while true; do sleep 3600; done
"""


def kernel_package() -> str:
    out = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True, check=True
    ).stdout
    return next(line.split()[-1] for line in out.splitlines() if "Depends: linux-image-" in line)


def pack_initramfs(root: Path, target: Path) -> None:
    """`find . | busybox cpio -o -H newc | gzip`, without a shell."""
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    cpio = subprocess.run(
        ["busybox", "cpio", "-o", "-H", "newc"],
        input=("\n".join(["."] + names) + "\n").encode(),
        capture_output=True,
        cwd=root,
        check=True,
    )
    target.write_bytes(gzip.compress(cpio.stdout))


@pytest.fixture(scope="session")
def guest(tmp_path_factory) -> tuple[Path, Path]:
    """(kernel, initramfs), built once and cached per kernel package."""
    package = kernel_package()
    recipe = hashlib.sha256((INIT + " ".join(MODULES)).encode()).hexdigest()[:10]
    cached = CACHE / f"{package}-{recipe}"
    kernel, initrd = cached / "vmlinuz", cached / "initrd.gz"
    if kernel.exists() and initrd.exists():
        return kernel, initrd
    work = tmp_path_factory.mktemp("guest")
    subprocess.run(["apt-get", "download", package], cwd=work, check=True, capture_output=True)
    [deb] = work.glob("*.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x")], check=True)
    [vmlinuz] = (work / "x" / "boot").glob("vmlinuz-*")
    [moddir] = (work / "x" / "lib" / "modules").iterdir()
    root = work / "initramfs"
    for sub in ("bin", "proc", "sys", "dev", "lib/modules"):
        (root / sub).mkdir(parents=True)
    shutil.copy(shutil.which("busybox") or "/bin/busybox", root / "bin" / "busybox")
    for module in MODULES:
        shutil.copy(moddir / "kernel" / module, root / "lib" / "modules")
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)
    cached.mkdir(parents=True, exist_ok=True)
    pack_initramfs(root, work / "initrd.gz")
    shutil.copy(vmlinuz, work / "vmlinuz")
    os.replace(work / "initrd.gz", initrd)
    os.replace(work / "vmlinuz", kernel)
    shutil.rmtree(work)
    return kernel, initrd


def test_a_qemu_guest_on_br0_answers_the_other_hosts_vm(two_host_lab, guest, tmp_path):
    lab = two_host_lab
    kernel, initrd = guest
    tap = "tapq0"
    console = tmp_path / "console.log"
    with open(console, "wb") as out:
        qemu = subprocess.Popen(
            ["ip", "netns", "exec", lab.netns("host1"), "qemu-system-x86_64",
             "-machine", "q35,accel=tcg", "-cpu", "max", "-m", "256", "-nographic", "-no-reboot",
             "-kernel", str(kernel), "-initrd", str(initrd), "-append", "console=ttyS0 panic=-1 quiet",
             "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
             "-device", f"virtio-net-pci,netdev=n0,mac={GUEST_MAC},romfile="],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180  # readiness of a TCG boot, not a timed assertion
        while READY not in console.read_text(errors="replace"):
            assert qemu.poll() is None, console.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, console.read_text(errors="replace")[-2000:]
            time.sleep(0.2)
        lab.on_host("host1", "ethtool", "-K", tap, "tx", "off")
        lab.on_host("host1", "ip", "link", "set", tap, "up")
        lab.on_host("host1", "ovs-vsctl", "add-port", "br0", tap)
        ping = lab.in_vm("vm2", "ping", "-n", "-c", "5", "-i", "0.3", "-W", "2", "172.16.0.9", check=False)
        assert ping.returncode == 0 and " 0 received" not in ping.stdout, ping.stdout + ping.stderr
        learned = lab.on_host("host1", "ovs-appctl", "fdb/show", "br0")
        assert GUEST_MAC in learned or "02:00:ac:10:00:09" in lab.on_host(
            "host1", "ovs-ofctl", "dump-flows", "br0"
        )
    finally:
        os.kill(qemu.pid, signal.SIGTERM)  # ip netns exec execs qemu: this PID is qemu
        qemu.wait(timeout=20)
