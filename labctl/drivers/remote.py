"""What every real (non-simulated) host driver shares: reaching the host over
SSH (or locally, when its address is `localhost`) and checking it has OVS."""

from __future__ import annotations

from collections.abc import Sequence

from labctl import ovs
from labctl.drivers.base import Driver, LabSession, PlannedStep, Problem
from labctl.errors import ProvisionError
from labctl.model import VM, Access, Host
from labctl.ovs import OvsCommand, OvsSnapshot
from labctl.state import LabState
from labctl.transport.base import Transport
from labctl.transport.local import LocalTransport
from labctl.transport.ssh import SshTransport

LOCAL_ADDRESSES = ("localhost", "local")
OVS_UNDO_KINDS = ("ovs-bridge", "ovs-port", "ovs-controller", "ovs-bridge-settings")  # ovs.undo_of
OVS_VERSION = ["ovs-vsctl", "--timeout=5", "--version"]  # installed?
OVS_SHOW = ["ovs-vsctl", "--timeout=5", "show"]  # and its database answering?


def host_transport(name: str, address: str, access) -> Transport:
    """The transport for a real host from its inventory address and access settings."""
    if address in LOCAL_ADDRESSES:
        return LocalTransport(name)
    user, _, hostname = address.rpartition("@")
    known = access.known_hosts
    return SshTransport(
        name,
        hostname,
        user=user or access.user,
        port=access.port,
        key=access.key,
        known_hosts=None if known in (None, "off") else known,
        check_host_key=known != "off",
    )


class RealHostDriver(Driver):
    """A hypervisor host labctl reaches over SSH; the kernel datapath; the hypervisor plugs VMs in."""

    datapath_type = "system"
    adds_vm_ports = False

    def __init__(self, session: LabSession, host: Host):
        super().__init__(session, host)
        self._transport = self.connect(host.name, host.address or "localhost", host.access)

    @classmethod
    def connect(cls, name: str, address: str, access: Access) -> Transport:
        """How this kind reaches a host: when building it, and when `undo` finds it again
        from a journal record. The one place to swap the transport (the unit tests
        register a kind whose hosts are fakes)."""
        return host_transport(name, address, access)

    def transport(self) -> Transport:
        return self._transport

    @classmethod
    def inventory_problems(cls, name, host, simulate: bool) -> list[Problem]:
        if simulate or host.address:
            return []
        return [
            (
                ("hosts", name, "address"),
                f"a {host.driver} host needs an address (or run the lab simulated: simulate: true / --sim)",
            )
        ]

    def way_in(self, vm: VM) -> str | None:
        return "real guest, no way in yet"

    def vm_transport(self, vm: VM) -> Transport:
        raise ProvisionError(
            vm.name,
            "run a command in the VM",
            f"{vm.name} is a real guest on {self.host.name}: labctl cannot enter it; "
            "use its console, or run the lab simulated (--sim)",
        )

    def record(self, kind: str, **fields) -> None:
        """Journal records also say how to reach the host again (never a secret)."""
        reach = {"address": self.host.address, **self.host.access.to_record()}
        super().record(kind, **(reach | fields))

    def before_ovs_changes(self, todo: Sequence[OvsCommand], snap: OvsSnapshot) -> None:
        """A real host keeps its OVS after down: journal how to undo each change, before making
        it. Only the first record of a thing counts (it holds what was there before labctl),
        and nothing on a bridge labctl made itself (removing the bridge removes all of it)."""
        state, host = self.session.state, self.host.name
        made = {r["bridge"] for r in state.records("ovs-bridge") if r.get("host") == host}
        for command in todo:
            undo = ovs.undo_of(command, snap)
            if undo is None or undo.bridge in made:
                continue
            fields = dict(undo.fields)
            key = {"port": fields["port"]} if undo.kind == "ovs-port" else {}
            if not state.has(undo.kind, host=host, bridge=undo.bridge, **key):
                self.record(undo.kind, bridge=undo.bridge, **fields)
            if undo.kind == "ovs-bridge":
                made.add(undo.bridge)

    @classmethod
    def undo(cls, record: dict, state: LabState) -> None:
        """Reach the host the record names again, from the record alone, and remove the thing."""
        transport = cls.connect(
            record["host"], record.get("address") or "localhost", Access.from_record(record)
        )
        try:
            cls.remove(record, transport)
        finally:
            transport.close()

    def planned_reach_steps(self) -> list[PlannedStep]:
        """What every real host's `up` starts with: check its OVS answers."""
        return [PlannedStep("check Open vSwitch is installed and answers", argv=tuple(OVS_SHOW))]

    @classmethod
    def remove(cls, record: dict, transport: Transport) -> None:
        """Remove what one journal record names, over its host's transport. A kind that
        records things of its own handles their records and passes the rest up."""
        if record["kind"] not in OVS_UNDO_KINDS:
            return
        if record["kind"] != "ovs-bridge" and not _bridge_exists(transport, record["bridge"]):
            return  # the others change a bridge, which may be gone already
        transport.run(["ovs-vsctl", "--timeout=10", *ovs.undo_argv(record)])

    def check_ovs(self) -> None:
        """Open vSwitch must be installed and running: one line naming the host if not."""
        result = self._transport.run(OVS_VERSION, check=False)
        if result.returncode == 127:
            raise ProvisionError(
                self.host.name, "check Open vSwitch", "ovs-vsctl not found: install openvswitch"
            )
        result = self._transport.run(OVS_SHOW, check=False)
        if not result.ok:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ProvisionError(self.host.name, "check Open vSwitch", f"ovsdb-server not reachable: {last}")


def _bridge_exists(transport: Transport, bridge: str) -> bool:
    return transport.run(["ovs-vsctl", "--timeout=10", "br-exists", bridge], check=False).returncode == 0
