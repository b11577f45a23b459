"""The driver interface: what a hypervisor kind must tell and do.

A driver knows how to reach its host, how to get the host ready for the
shared OVS work, how VMs are made and what their OVS ports are called. All
OVS configuration itself is shared code (plan.py + ovs.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from labctl.fieldtypes import HostField
from labctl.model import VM, Host, Lab
from labctl.ovs import OvsCommand, OvsSnapshot
from labctl.progress import Reporter
from labctl.state import LabState
from labctl.transport.base import Transport
from labctl.transport.local import LocalTransport

if TYPE_CHECKING:
    from labctl.inventory import HostSpec, InventorySpec

# A check `labctl doctor` runs on a host: (name, probe); the probe returns (ok, detail).
DoctorCheck = tuple[str, Callable[[], tuple[bool, str]]]
# An inventory problem: where (a path of keys) and what is wrong.
Problem = tuple[tuple, str]


@dataclass
class LabSession:
    lab: Lab
    state: LabState
    report: Reporter


@dataclass(frozen=True)
class PlannedStep:
    """One thing a driver would do for `up`, as `labctl plan` shows it (nothing runs).

    `argv` is a command run on the host, `api` an API call (libvirt, XenAPI);
    `files` are (name, text) pairs the step writes or sends: the domain XML, the
    xl cfg at its path, a XenAPI record, a command's input; `problem` says why
    `up` would stop at this step, `field` which of the host's inventory fields
    would fix it (a setting it needs is missing)."""

    what: str
    argv: tuple[str, ...] = ()
    api: str = ""
    files: tuple[tuple[str, str], ...] = ()
    problem: str = ""
    field: str = ""

    def to_json(self) -> dict:
        out: dict = {"what": self.what}
        if self.argv:
            out["argv"] = list(self.argv)
        if self.api:
            out["api"] = self.api
        if self.files:
            out["files"] = dict(self.files)
        if self.problem:
            out["problem"] = self.problem
            out["field"] = self.field
        return out


@dataclass(frozen=True)
class ControllerSite:
    """Where a managed controller runs."""

    transport: Transport
    where: str  # for status: "in its own namespace lc-lab-controller", "on this machine"
    netns: str | None = None  # a namespace labctl made for the controller alone
    # Where `labctl capture` sees every bridge's session there, each packet once: the
    # interface tcpdump listens on ("any": all of them, in Linux cooked v2 frames), and
    # the interfaces whose second copy of the same packets it leaves out.
    capture_on: str = "any"
    capture_skips: tuple[str, ...] = ()


class Driver(ABC):
    name: ClassVar[str]
    datapath_type: ClassVar[str] = "system"
    # True when labctl adds each VM's port to the bridge; False when the
    # hypervisor plugs it in itself (libvirt's virtualport, Xen's vif script).
    adds_vm_ports: ClassVar[bool] = False
    # Inventory fields only this kind's hosts take (hosts.NAME.FIELD -> host.options).
    host_fields: ClassVar[dict[str, HostField]] = {}

    def __init__(self, session: LabSession, host: Host):
        self.session, self.host = session, host
        # Ports whose device prepare() had to re-create (a VM rebuilt after drift):
        # the OVS port must be re-plugged to use the new device.
        self.replugged_ports: set[str] = set()

    @abstractmethod
    def transport(self) -> Transport:
        """How commands reach this host."""

    @abstractmethod
    def vm_port(self, vm: VM) -> str:
        """The OVS port name the VM's NIC shows up as on the bridge."""

    @abstractmethod
    def vm_transport(self, vm: VM) -> Transport:
        """How to run a command (ping) inside the VM."""

    def way_in(self, vm: VM) -> str | None:
        """None when vm_transport() can run commands inside the VM; else why not, in a few
        words (`verify` reports the pairs from it as not verifiable, never as passed)."""
        return None

    # --- what `labctl plan` shows: descriptions only, no I/O, no connection ---
    @classmethod
    def planned_lab_steps(cls, session: LabSession) -> list[PlannedStep]:
        """What this kind of host needs once per lab on this machine (sim: the underlay)."""
        return []

    @abstractmethod
    def planned_host_steps(self) -> list[PlannedStep]:
        """What prepare() and finish() do to the host itself, besides the OVS transaction."""

    @abstractmethod
    def planned_vm_steps(self, vm: VM) -> list[PlannedStep]:
        """The calls that make the VM, in the order `up` makes them."""

    @abstractmethod
    def planned_vm_port(self, vm: VM) -> str:
        """The VM's port on the bridge as far as it is known before `up`: a name, or who picks it."""

    # --- what the kind does once per lab ---
    @classmethod  # noqa: B027 - an optional step
    def prepare_lab(cls, session: LabSession, drivers: list[Driver]) -> None:
        """Before any host of this kind is built, once per `up`: what its hosts share (optional)."""

    @classmethod
    def controller_site(cls, session: LabSession) -> ControllerSite:
        """Where the controller runs for a lab of this kind's hosts, unless it is on a lab host."""
        return ControllerSite(LocalTransport("controller"), "on this machine")

    def hosted_controller_site(self) -> ControllerSite:
        """Where the controller runs when the inventory places it on this host (controller.host)."""
        return ControllerSite(self.transport(), f"on {self.host.name}")

    @classmethod
    def inventory_problems(cls, name: str, host: HostSpec, simulate: bool) -> list[Problem]:
        """What the inventory says about one host of this kind that cannot work.

        `simulate`: every host of the lab runs simulated (--sim or simulate: true)."""
        return []

    @classmethod
    def lab_problems(cls, spec: InventorySpec, simulate: bool) -> list[Problem]:
        """What the lab-wide settings (bridge name, ...) mean for hosts of this kind that cannot
        work; asked once per kind the lab has."""
        return []

    def doctor_checks(self) -> list[DoctorCheck]:
        """What `labctl doctor` checks on this host besides reach and Open vSwitch."""
        return []

    def prepare(self) -> None:  # noqa: B027 - optional step
        """Get the host ready for OVS work (and create VMs whose ports labctl adds)."""

    def ovs_commands(self) -> list[OvsCommand]:
        """OVS configuration this driver needs besides the lab bridge (sim: br-phy)."""
        return []

    def finish(self) -> None:  # noqa: B027 - optional step
        """Work after the OVS transaction (addresses on bridges, VMs the hypervisor plugs in)."""

    def before_ovs_changes(self, todo: Sequence[OvsCommand], snap: OvsSnapshot) -> None:  # noqa: B027
        """`up` is about to apply these commands to the host's OVS as `snap` read it
        (a real host keeps its OVS after down: it journals how to undo them)."""

    def before_tunnels(self, peers: list[Driver]) -> None:  # noqa: B027 - optional step
        """Before the host first reaches its tunnel peers over the underlay."""

    def missing(self) -> tuple[str | None, list[str]]:
        """What `status` cannot learn from the host's OVS: (why the host cannot be asked at
        all, or None; drift lines for what is missing besides OVS configuration)."""
        return None, []

    def log_path(self) -> Path | None:
        """The host's ovs-vswitchd log, where labctl runs the daemon itself."""
        return None

    def record(self, kind: str, **fields) -> None:
        """Journal something this driver is about to create on its host, *before* creating it.

        The record carries the driver's name and the host, so `down` can hand it
        back to `undo` without the inventory."""
        self.session.state.record(kind, driver=self.name, host=self.host.name, **fields)

    @classmethod
    def undo(cls, record: dict, state: LabState) -> None:
        """Remove one thing this driver recorded (a VM, a bridge on a real host).

        Called by `down` with the journal record alone; must tolerate the thing
        being gone already. The simulated driver records nothing of its own."""
        return None
