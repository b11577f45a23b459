"""Which accelerator a host's KVM guests run on: KVM, or QEMU's TCG emulation.

`accel: kvm` and `accel: tcg` decide it outright. `accel: auto` (the default)
uses KVM only when a short probe boots a guest kernel under it: `/dev/kvm` can
exist and still hang every guest (nested virtualisation switched off), and most
CI runners have no `/dev/kvm` at all. The probe boots a kernel with no root
file system under `-machine accel=kvm`; it has run when it panics looking for
one ("Kernel panic - not syncing"), which takes about a second under KVM. A probe
that has not got there within PROBE_SECONDS is killed, and the guests run
under TCG (libvirt domain type `qemu`), about ten times slower but everywhere.

The kernel is the host's `boot:` kernel, else the host's own
(/boot/vmlinuz-$(uname -r)). Without either, `/dev/kvm` being usable decides.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal

from labctl.drivers.base import DoctorCheck
from labctl.transport.base import Transport

ACCELS = ("auto", "kvm", "tcg")
Setting = Literal["auto", "kvm", "tcg"]
PROBE_SECONDS = 5
PANIC = "Kernel panic - not syncing"
QEMU = "qemu-system-x86_64"


@dataclass(frozen=True)
class Accel:
    domain_type: str  # libvirt's <domain type=...>: "kvm" or "qemu" (TCG)
    why: str

    @property
    def label(self) -> str:
        return "KVM" if self.domain_type == "kvm" else "TCG"

    def __str__(self) -> str:
        return f"{self.label}: {self.why}"


def probe_argv(kernel: str, seconds: int = PROBE_SECONDS) -> list[str]:
    """Boot `kernel` under KVM with no root file system; killed after `seconds`.

    No -cpu: the probe runs the CPU model a domain without <cpu> gets, which is
    the one the guests will run."""
    return [
        "timeout", "-s", "KILL", str(seconds),
        QEMU, "-machine", "accel=kvm", "-m", "128", "-nodefaults", "-no-user-config",
        "-display", "none", "-serial", "stdio", "-no-reboot",
        "-kernel", kernel, "-append", "console=ttyS0 panic=-1",
    ]  # fmt: skip


def _host_kernel(transport: Transport) -> str | None:
    release = transport.run(["uname", "-r"], check=False)
    kernel = f"/boot/vmlinuz-{release.stdout.strip()}"
    return kernel if release.ok and transport.run(["test", "-r", kernel], check=False).ok else None


def probe(transport: Transport, kernel: str | None) -> tuple[bool, str]:
    """(KVM runs guests on this host, why): the probe described above, over `transport`."""
    if not transport.run(["test", "-c", "/dev/kvm"], check=False).ok:
        return False, "no /dev/kvm"
    if not transport.run(["test", "-r", "/dev/kvm", "-a", "-w", "/dev/kvm"], check=False).ok:
        return False, "/dev/kvm is there but not usable by this user (group kvm?)"
    kernel = kernel or _host_kernel(transport)
    if kernel is None:
        return True, "/dev/kvm is usable; not probed (no kernel to boot: set boot:, or accel:)"
    start = time.monotonic()
    result = transport.run(probe_argv(kernel), check=False, timeout=PROBE_SECONDS + 30)
    took = time.monotonic() - start
    if PANIC in result.stdout:
        return True, f"a guest kernel booted under KVM in {took:.1f} s"
    if result.returncode in (124, 137, -9):
        return False, (
            f"/dev/kvm is there, but a guest kernel did not boot under it within {PROBE_SECONDS} s "
            "(nested virtualisation off?)"
        )
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return (
        False,
        f"/dev/kvm is there, but QEMU could not run a guest with it: {lines[-1] if lines else 'no output'}",
    )


class KvmProbe:
    """The probe's answer for one machine, asked at most once per kernel (hosts build in parallel)."""

    def __init__(self, transport: Transport):
        self.transport = transport
        self._answers: dict[str | None, tuple[bool, str]] = {}
        self._lock = threading.Lock()

    def answer(self, kernel: str | None) -> tuple[bool, str]:
        with self._lock:
            if kernel not in self._answers:
                self._answers[kernel] = probe(self.transport, kernel)
            return self._answers[kernel]


def choose(setting: str, kvm: KvmProbe, kernel: str | None) -> Accel:
    """What the guests run on, from the host's `accel:` (auto asks the probe)."""
    if setting == "kvm":
        return Accel("kvm", "accel: kvm")
    if setting == "tcg":
        return Accel("qemu", "accel: tcg")
    usable, why = kvm.answer(kernel)
    return Accel("kvm" if usable else "qemu", why)


def doctor(setting: str, kvm: KvmProbe, kernel: str | None) -> tuple[bool, str]:
    """`labctl doctor`'s check: what the guests will run on, and why; not ok only when
    `accel: kvm` insists on a KVM that does not run guests here."""
    if setting == "tcg":
        return True, "guests will run under TCG (accel: tcg)"
    usable, why = kvm.answer(kernel)
    if setting == "kvm":
        return usable, "guests will run under KVM (accel: kvm)" + (
            "" if usable else f", but {why}: use accel: auto"
        )
    return True, f"guests will run under {choose(setting, kvm, kernel)}"


def doctor_check(setting: str, kvm: KvmProbe, kernel: str | None) -> DoctorCheck:
    """`labctl doctor`'s "accel" check for one host."""
    return ("accel", lambda: doctor(setting, kvm, kernel))


def planned_domain_type(uri: str, setting: str) -> str:
    """The domain type `labctl plan` shows: auto is decided at up, so the plan shows kvm."""
    if uri.startswith("test:"):
        return "test"
    return "qemu" if setting == "tcg" else "kvm"


def describe(setting: str) -> str:
    """What `labctl plan` says about a host's accel: (nothing runs to plan)."""
    if setting == "kvm":
        return "guests run under KVM (accel: kvm): libvirt domain type kvm"
    if setting == "tcg":
        return "guests run under QEMU's TCG emulation (accel: tcg): libvirt domain type qemu"
    return (
        f"accel: auto: KVM (domain type kvm) if a guest kernel boots under it within {PROBE_SECONDS} s "
        "when up first defines a guest, else TCG (domain type qemu)"
    )
