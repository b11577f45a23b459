"""The driver interface: what a hypervisor kind must tell and do.

A driver knows how to reach its host, how to get the host ready for the
shared OVS work, how VMs are made and what their OVS ports are called. All
OVS configuration itself is shared code (plan.py + ovs.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from labctl.model import VM, Host, Lab
from labctl.ovs import OvsCommand
from labctl.progress import Reporter
from labctl.state import LabState
from labctl.transport.base import Transport


@dataclass
class Context:
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


class Driver(ABC):
    name: ClassVar[str]
    datapath_type: ClassVar[str] = "system"
    # True when labctl adds each VM's port to the bridge; False when the
    # hypervisor plugs it in itself (libvirt's virtualport, Xen's vif script).
    adds_vm_ports: ClassVar[bool] = False

    def __init__(self, ctx: Context, host: Host):
        self.ctx, self.host = ctx, host
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

    # --- what `labctl plan` shows: descriptions only, no I/O, no connection ---
    @classmethod
    def planned_lab_steps(cls, ctx: Context) -> list[PlannedStep]:
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

    def prepare(self) -> None:  # noqa: B027 - optional step
        """Get the host ready for OVS work (and create VMs whose ports labctl adds)."""

    def ovs_commands(self) -> list[OvsCommand]:
        """OVS configuration this driver needs besides the lab bridge (sim: br-phy)."""
        return []

    def finish(self) -> None:  # noqa: B027 - optional step
        """Work after the OVS transaction (addresses on bridges, VMs the hypervisor plugs in)."""

    def record(self, kind: str, **fields) -> None:
        """Journal something this driver is about to create on its host, *before* creating it.

        The record carries the driver's name and the host, so `down` can hand it
        back to `undo` without the inventory."""
        self.ctx.state.record(kind, driver=self.name, host=self.host.name, **fields)

    @classmethod
    def undo(cls, record: dict, state: LabState) -> None:
        """Remove one thing this driver recorded (a VM, a bridge on a real host).

        Called by `down` with the journal record alone; must tolerate the thing
        being gone already. The simulated driver records nothing of its own."""
        return None
