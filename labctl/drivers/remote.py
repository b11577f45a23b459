"""What every real (non-simulated) host driver shares: reaching the host over
SSH (or locally, when its address is `localhost`) and checking it has OVS."""

from __future__ import annotations

from labctl.drivers.base import Context, Driver
from labctl.errors import ProvisionError
from labctl.model import VM, Access, Host
from labctl.state import LabState
from labctl.transport.base import Transport
from labctl.transport.local import LocalTransport
from labctl.transport.ssh import SshTransport

LOCAL_ADDRESSES = ("localhost", "local")


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

    def __init__(self, ctx: Context, host: Host):
        super().__init__(ctx, host)
        self._transport = self.connect(host.name, host.address or "localhost", host.access)

    @classmethod
    def connect(cls, name: str, address: str, access: Access) -> Transport:
        """How this kind reaches a host: when building it, and when `undo` finds it again
        from a journal record. The one place to swap the transport (the unit tests
        register a kind whose hosts are fakes)."""
        return host_transport(name, address, access)

    def transport(self) -> Transport:
        return self._transport

    def vm_transport(self, vm: VM) -> Transport:
        raise ProvisionError(
            vm.name,
            "run a command in the VM",
            f"{vm.name} is a real guest on {self.host.name}: labctl cannot enter it; "
            "use its console, or run the lab simulated (--sim)",
        )

    def record(self, kind: str, **fields) -> None:
        """Journal records also say how to reach the host again (never a secret)."""
        access = self.host.access
        reach = {"address": self.host.address, "user": access.user, "port": access.port}
        reach |= {"key": access.key, "known_hosts": access.known_hosts}
        super().record(kind, **(reach | fields))

    @classmethod
    def undo(cls, record: dict, state: LabState) -> None:
        """A bridge labctl added to the host's OVS goes again."""
        if record["kind"] != "ovs-bridge":
            return
        access = Access(
            record.get("user"), record.get("port", 22), record.get("key"), record.get("known_hosts")
        )
        transport = cls.connect(record["host"], record.get("address") or "localhost", access)
        try:
            transport.run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", record["bridge"]])
        finally:
            transport.close()

    def check_ovs(self) -> None:
        """Open vSwitch must be installed and running: one line naming the host if not."""
        result = self._transport.run(["ovs-vsctl", "--timeout=5", "--version"], check=False)
        if result.returncode == 127:
            raise ProvisionError(
                self.host.name, "check Open vSwitch", "ovs-vsctl not found: install openvswitch"
            )
        result = self._transport.run(["ovs-vsctl", "--timeout=5", "show"], check=False)
        if not result.ok:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ProvisionError(self.host.name, "check Open vSwitch", f"ovsdb-server not reachable: {last}")
