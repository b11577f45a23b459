"""A real KVM host's management path for its guests (`mgmt:`): labctl's way in.

    mgmt: {bridge: virbr0, subnet: 192.168.122.0/24, first: 192.168.122.200}

`bridge` is a plain Linux bridge of the hypervisor host (libvirt's `virbr0` of its
`default` network, or a bridge on the hypervisors' management LAN), never the lab's
br0 and never OVS: no OpenFlow datapath sees the management traffic. Each guest gets a
second NIC there (libvirt_guests.Management) and, in its NoCloud seed's network-config,
a static address of `subnet`: the host's guest N (inventory order) has `first` + N
(default: the subnet's 10th address). No gateway: labctl reaches the guests from the
hypervisor host itself (SSH's direct-tcpip over its connection to the host,
transport/guest.py), so the host needs an address in `subnet` on that bridge. Hosts
that share one management LAN need ranges that do not overlap (`first`).
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field

from labctl.drivers.base import PlannedStep, Problem
from labctl.fieldtypes import HostField, IPv4Addr, IPv4Net
from labctl.model import VM, Host
from labctl.transport.base import Transport

OFFSET = 10  # the default first address: the subnet's 10th, as on a simulated host's labmgmt
HINT = "set mgmt: {bridge: BRIDGE, subnet: CIDR} (a Linux bridge of the host with an address there)"


class MgmtSpec(BaseModel):
    """`mgmt:` of a kvm host."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # an interface name (15 characters at most), shell-safe
    bridge: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,15}$")
    subnet: IPv4Net
    first: IPv4Addr | None = None

    def first_address(self) -> ipaddress.IPv4Address:
        return self.first or self.subnet.network_address + OFFSET

    def address(self, host: Host, vm: VM) -> str:
        """The guest's management address, with the subnet's prefix."""
        address = self.first_address() + host.vms.index(vm)
        return f"{address}/{self.subnet.prefixlen}"


FIELD = HostField(MgmtSpec | None, Field(default=None))


def problems(name: str, spec: MgmtSpec | None, vm_count: int) -> list[Problem]:
    """The guests' addresses fit in the subnet, between its network and broadcast addresses."""
    if spec is None:
        return []
    where = ("hosts", name, "mgmt")
    first, subnet = spec.first_address(), spec.subnet
    if subnet.prefixlen > 30:
        return [(where + ("subnet",), f"{subnet} has no room for guests: a /30 or larger")]
    if not (subnet.network_address < first < subnet.broadcast_address):
        return [(where + ("first",), f"{first} is not a guest address of {subnet}")]
    last = first + max(vm_count - 1, 0)
    if last >= subnet.broadcast_address:
        return [
            (
                where,
                f"{vm_count} guests from {first} run past {subnet} (the last one would be {last}): "
                "a lower first: or a larger subnet",
            )
        ]
    return []


def linux_bridge_argv(bridge: str) -> list[str]:
    """True (exit 0) only for a Linux bridge: an OVS bridge has no sysfs `bridge` directory."""
    return ["test", "-d", f"/sys/class/net/{bridge}/bridge"]


def check_bridge(transport: Transport, spec: MgmtSpec, lab_bridge: str) -> str | None:
    """Why the host's management bridge cannot take the guests' second NIC (None: it can)."""
    if spec.bridge == lab_bridge:
        return f"{spec.bridge} is the lab's bridge: the management NIC goes on another, a Linux bridge"
    if not transport.run(linux_bridge_argv(spec.bridge), check=False).ok:
        return (
            f"{spec.bridge} is not a Linux bridge on the host (missing, or an OVS bridge): make one "
            f"(ip link add {spec.bridge} type bridge) or name libvirt's virbr0"
        )
    return None


def host_address(transport: Transport, spec: MgmtSpec) -> str | None:
    """The host's own address in the subnet on the bridge (where labctl's connections to
    the guests start), None when it has none."""
    result = transport.run(["ip", "-o", "-4", "addr", "show", "dev", spec.bridge], check=False)
    for word in result.stdout.split() if result.ok else []:
        try:
            address = ipaddress.IPv4Interface(word)
        except ValueError:
            continue
        if address.ip in spec.subnet:
            return str(address)
    return None


def planned_step(spec: MgmtSpec, vm_count: int) -> PlannedStep:
    first = spec.first_address()
    last = first + max(vm_count - 1, 0)
    addresses = f"{first}" if last == first else f"{first}..{last}"
    return PlannedStep(
        f"check management bridge {spec.bridge} is a Linux bridge (not OVS, not the lab's): the guests' "
        f"second NIC, {addresses} of {spec.subnet}, labctl's way in over SSH through this host",
        argv=tuple(linux_bridge_argv(spec.bridge)),
    )
