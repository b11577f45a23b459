"""Real QEMU guests on a simulated kvm host (`guests: libvirt`): the kvm driver's guest
code (libvirt_guests.py) pointed at a libvirtd inside the simulated host (libvirtd.py).

The simulated host composes this instead of making namespace VMs; the orchestrator
sees the same driver hooks either way. libvirt plugs each guest's vnetN into the
host's br0 (virtualport openvswitch), as on a real KVM host. Each guest gets a second NIC
on the management bridge `labmgmt` (a Linux bridge in the host's namespace) and a
NoCloud seed (unless `seed: none`) with its lab address and MTU, its management address
and the lab's SSH key; labctl runs commands in it over SSH on that path, from inside
the host's namespace (transport/guest.py): verify, exec, shell.

The daemon sees its own /run and /var: the guests' files live in
DIR/var/lib/libvirt/labctl, which it sees as /var/lib/libvirt/labctl. The boot kernel
and initrd are copied there (the inventory may name them anywhere on this machine),
as is an `image:`'s qcow2 overlay, backed by the image where it is -- which must then
be outside /run and /var. The serial console of each guest is a file there too.

Journal: `libvirtd` before the daemon starts (then its PID as a `process`), and
`libvirt-guest` before each domain is defined. `down` destroys each domain through
the daemon while it runs, stops the daemon by its PID, then every process left in
the host's namespace (QEMU among them) and the state directory with all the files.
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from labctl import processes
from labctl.drivers import accel, seed
from labctl.drivers.base import DoctorCheck, PlannedStep
from labctl.drivers.libvirt_guests import (
    PORT_CHOSEN_BY_LIBVIRT,
    BootSpec,
    GuestFiles,
    LibvirtGuests,
    Management,
    remove_domain,
)
from labctl.drivers.libvirtd import Libvirtd, running
from labctl.drivers.mgmt import MgmtSpec
from labctl.drivers.way_in import SshWayIn
from labctl.errors import InputError, ProvisionError
from labctl.model import VM, Host, Lab
from labctl.transport.local import LocalTransport

if TYPE_CHECKING:
    from labctl.drivers.sim import SimDriver

GUEST_DIR = "/var/lib/libvirt/labctl"  # as the host's libvirtd and QEMU see it
# The way in: a plain Linux bridge in the host's namespace (not OVS, not the lab's br0),
# on a link-local subnet used only inside that namespace; the host is .1, guest N is .10+N
# (MgmtSpec's default first address).
MGMT_BRIDGE = "labmgmt"
MGMT = MgmtSpec(bridge=MGMT_BRIDGE, subnet="169.254.100.0/24")
MGMT_HOST = f"{MGMT.subnet.network_address + 1}/{MGMT.subnet.prefixlen}"
HIDDEN = ("/run", "/var")  # what the host's libvirtd sees its own of
SETUP = "scripts/setup.sh --libvirt installs what real guests need"


def on_this_machine(lab: Lab, path: str) -> Path:
    """A simulated host's file: relative paths are from the inventory's directory."""
    given = Path(path).expanduser()
    if given.is_absolute():
        return given
    return Path(os.path.normpath(Path(lab.source).resolve().parent / given))


class RealGuests(SshWayIn):
    """What a simulated kvm host with `guests: libvirt` does instead of namespace VMs. The
    way in (way_in.py): SSH from the host's namespace to each guest's address on labmgmt."""

    def __init__(self, driver: SimDriver):
        self.driver, self.session, self.host = driver, driver.session, driver.host
        self._transport = driver.transport()  # the host's namespace: the way in starts there
        self.libvirtd = Libvirtd(self.host.name, driver.netns, driver.rundir)
        self.files = GuestFiles(GUEST_DIR, f"{self.libvirtd.dir}{GUEST_DIR}", console_log=True)
        self.local = LocalTransport(self.host.name)
        self.kvm_probe = self.machine_probe()  # prepare_lab hands every host the same one
        self.boot: BootSpec | None = self.host.options["boot"]
        image = self.host.options["image"]
        self.image = str(on_this_machine(self.session.lab, image)) if image else None
        self.init_way_in(self.host, MGMT)
        self.guests = LibvirtGuests(
            self.session,
            self.host,
            uri=self.libvirtd.uri,
            transport=self.local,
            files=self.files,
            boot=self._boot_inside(),
            image=self.image,
            accel=self.accel,
            journal=self._journal,
            mgmt=Management(MGMT_BRIDGE, lambda vm: MGMT.address(self.host, vm)) if self.seeded else None,
            seeds=self.seeded,
        )

    def ensure_mgmt_bridge(self) -> None:
        """The management bridge, in the host's namespace only (it goes with it at down)."""
        ns = self.driver.transport()
        if ns.run(["ip", "link", "show", MGMT_BRIDGE], check=False).ok:
            return
        ns.run(["ip", "link", "add", MGMT_BRIDGE, "type", "bridge"])
        ns.run(["ip", "addr", "add", MGMT_HOST, "dev", MGMT_BRIDGE])
        ns.run(["ip", "link", "set", MGMT_BRIDGE, "up"])
        self.session.report.changed(
            self.host.name, f"management bridge {MGMT_BRIDGE} ({MGMT_HOST}, a Linux bridge, not the lab's)"
        )

    @staticmethod
    def wanted(host: Host) -> bool:
        return host.flavor == "kvm" and host.options.get("guests") == "libvirt" and bool(host.vms)

    @staticmethod
    def machine_probe() -> accel.KvmProbe:
        return accel.KvmProbe(LocalTransport("this machine"))

    # --- the boot source, on this machine and as the daemon sees it ---
    def _boot_sources(self) -> list[tuple[Path, str]]:
        """(file on this machine, its name in the guests' directory)."""
        if self.boot is None:
            return []
        lab = self.session.lab
        found = [(on_this_machine(lab, self.boot.kernel), "vmlinuz")]
        if self.boot.initrd:
            found.append((on_this_machine(lab, self.boot.initrd), "initrd"))
        return found

    def _boot_inside(self) -> BootSpec | None:
        if self.boot is None:
            return None
        names = {name: self.files.of(name)[0] for _, name in self._boot_sources()}
        return BootSpec(kernel=names["vmlinuz"], initrd=names.get("initrd"), cmdline=self.boot.cmdline)

    def _stage_boot_files(self) -> None:
        """Copy the kernel and initrd where the daemon sees them, when they changed."""
        for source, name in self._boot_sources():
            if not source.is_file():
                raise InputError(f"host {self.host.name}: boot file {source} does not exist")
            target = Path(self.files.of(name)[1])
            have = target.stat() if target.exists() else None
            want = source.stat()
            if have and (have.st_size, int(have.st_mtime)) == (want.st_size, int(want.st_mtime)):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{name}.partial")
            shutil.copy2(source, partial)
            os.replace(partial, target)
            self.session.report.changed(self.host.name, f"boot file {source} copied for the guests")

    def _image_problem(self) -> str | None:
        if self.image and any(self.image == d or self.image.startswith(f"{d}/") for d in HIDDEN):
            return (
                f"the image {self.image} is under {' or '.join(HIDDEN)}, which the host's libvirtd sees "
                "its own of: put it elsewhere"
            )
        return None

    def accel(self) -> accel.Accel:
        sources = self._boot_sources()
        return accel.choose(
            self.host.options["accel"], self.kvm_probe, str(sources[0][0]) if sources else None
        )

    def _journal(self, vm: VM, name: str, overlay: str | None, seed_file: str | None) -> None:
        self.driver.record(
            "libvirt-guest",
            uri=self.libvirtd.uri,
            name=name,
            netns=self.driver.netns,
            pidfile=self.libvirtd.pidfile,
        )

    # --- up ---
    def ensure_libvirtd(self) -> None:
        """The host's libvirtd runs (after its OVS: libvirt's ovs-vsctl needs the database)."""
        if self.libvirtd.process() is not None:
            return
        self._check_installed()
        self.driver.record(
            "libvirtd", netns=self.driver.netns, dir=self.libvirtd.dir, pidfile=self.libvirtd.pidfile
        )
        proc = self.libvirtd.start(self.driver.transport())
        self.session.state.record(
            "process", role="libvirtd", host=self.host.name, pid=proc.pid, start=proc.start
        )
        self.session.report.changed(
            self.host.name, f"libvirtd started (pid {proc.pid}) in the host's namespaces: {self.libvirtd.uri}"
        )

    def _check_installed(self) -> None:
        """What libvirtd needs here, said in one line before it is started."""
        missing = [tool for tool in ("libvirtd", accel.QEMU) if shutil.which(tool) is None]
        try:
            pwd.getpwnam("libvirt-qemu")  # libvirt's QEMU driver looks it up when it starts
        except KeyError:
            missing.append("the user libvirt-qemu")
        if missing:
            raise ProvisionError(
                self.host.name, "start libvirtd", f"{', '.join(missing)} missing here: {SETUP}"
            )

    def ensure_guests(self) -> None:
        """Each guest defined and started (the lab bridge exists by now)."""
        problem = self._image_problem()
        if problem:
            raise InputError(f"host {self.host.name}: {problem}")
        self._stage_boot_files()
        if self.seeded:
            self.ensure_mgmt_bridge()
        for vm in self.host.vms:
            self.guests.ensure(vm)

    # --- status ---
    def missing(self) -> list[str]:
        if self.libvirtd.process() is None:
            return ["libvirtd is not running"]
        gone = not self.driver.transport().run(["ip", "link", "show", MGMT_BRIDGE], check=False).ok
        lost = (
            [f"management bridge {MGMT_BRIDGE} is missing (the guests' way in)"]
            if self.seeded and gone
            else []
        )
        return lost + self.guests.not_running()

    # --- plan ---
    def planned_host_steps(self) -> list[PlannedStep]:
        steps = [
            PlannedStep(
                f"libvirtd in the host's namespace, with its own /run, /var and /etc/libvirt "
                f"(from {self.libvirtd.dir}); clients use {self.libvirtd.uri}",
                argv=("ip", "netns", "exec", self.driver.netns, *self.libvirtd.argv()),
            ),
            PlannedStep(accel.describe(self.host.options["accel"])),
        ]
        if self.seeded:
            steps.append(
                PlannedStep(
                    f"management bridge {MGMT_BRIDGE} ({MGMT_HOST}) in the host's namespace, a Linux "
                    "bridge the guests' second NIC joins: labctl's way in, not the lab's br0",
                    argv=("ip", "link", "add", MGMT_BRIDGE, "type", "bridge"),
                )
            )
        for source, name in self._boot_sources():
            steps.append(PlannedStep(f"copy {source} to {self.files.of(name)[1]} for the guests"))
        return steps

    def planned_vm_steps(self, vm: VM) -> list[PlannedStep]:
        problem = self._image_problem()
        steps = [PlannedStep("the base image", problem=problem, field="image")] if problem else []
        return steps + self.guests.planned_vm_steps(
            vm, accel.planned_domain_type(self.libvirtd.uri, self.host.options["accel"])
        )

    def planned_vm_port(self) -> str:
        return PORT_CHOSEN_BY_LIBVIRT

    # --- doctor ---
    def doctor_checks(self) -> list[DoctorCheck]:
        def command(argv: list[str], package: str):
            def check():
                result = self.local.run(argv, check=False)
                if result.returncode == 127:
                    return False, f"{argv[0]} not found: {SETUP} ({package})"
                lines = (result.stdout or result.stderr).strip().splitlines()
                return result.ok, lines[0] if lines else "no output"

            return check

        def qemu_user():
            try:
                pwd.getpwnam("libvirt-qemu")
            except KeyError:
                return False, f"no user libvirt-qemu, which libvirt's QEMU driver looks up at start: {SETUP}"
            return True, "user libvirt-qemu exists (libvirt's QEMU driver looks it up at start)"

        def boot_files():
            missing = [str(source) for source, _ in self._boot_sources() if not source.is_file()]
            if missing:
                return False, f"missing: {', '.join(missing)}"
            return True, ", ".join(str(source) for source, _ in self._boot_sources())

        checks: list[DoctorCheck] = [
            ("libvirtd", command(["libvirtd", "--version"], "libvirt-daemon, libvirt-daemon-driver-qemu")),
            ("libvirt-qemu user", qemu_user),
            ("QEMU", command([accel.QEMU, "--version"], "qemu-system-x86")),
        ]
        if self.boot is not None:
            checks.append(("boot files", boot_files))
        if self.seeded:
            checks.append(("NoCloud seeds", seed.doctor_check))
        sources = self._boot_sources()
        kernel = str(sources[0][0]) if sources else None
        checks.append(accel.doctor_check(self.host.options["accel"], self.kvm_probe, kernel))
        return checks

    # --- down ---
    @staticmethod
    def undo(record: dict) -> None:
        if record["kind"] == "libvirt-guest":
            if running(record["pidfile"], record["netns"]) is None:
                return  # its QEMU goes with the host's other processes
            try:
                remove_domain(record["uri"], record["name"], record["host"])
            except ProvisionError:
                pass  # the same: the host's processes are stopped next
        elif record["kind"] == "libvirtd":
            proc = running(record["pidfile"], record["netns"])
            if proc is not None:
                processes.stop([proc])
