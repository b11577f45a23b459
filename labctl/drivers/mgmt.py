"""A real host's management path for its guests (`mgmt:`): labctl's way in.

    mgmt: {bridge: virbr0, subnet: 192.168.122.0/24, first: 192.168.122.200}

On kvm and xen hosts, `bridge` is a plain Linux bridge of the hypervisor host
(libvirt's `virbr0` of its `default` network, Xen's `xenbr0`, or a bridge on the
hypervisors' management LAN), never the lab's br0 and never OVS: no OpenFlow datapath
sees the management traffic. Each guest gets a second NIC there (kvm:
libvirt_guests.Management; xen: a second vif with Xen's default vif-bridge script) and,
in its NoCloud seed's network-config, a static address of `subnet`: the host's guest N
(inventory order) has `first` + N (default: the subnet's 10th address). No gateway:
labctl reaches the guests from the hypervisor host itself (SSH's direct-tcpip over its
connection to the host, transport/guest.py; way_in.py), so the host needs an address in
`subnet` on that bridge. Hosts that share one management LAN need ranges that do not
overlap (`first`). A xenserver host names a xapi network (`network:`, its name label)
instead of a bridge (xenserver.py).
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
NEEDS_SEED = (
    "the way in needs the seed (it gives the guests their management address and the lab's key): "
    "not with seed: none"
)


class MgmtSpec(BaseModel):
    """`mgmt:` of a kvm, xen or xenserver host: where the guests' second NIC goes (kvm, xen:
    `bridge`; xenserver: `network`, field_problems says which) and their addresses."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # an interface name (15 characters at most), shell-safe
    bridge: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,15}$")
    # a xapi network's name label
    network: str | None = Field(default=None, pattern=r"^[^\x00-\x1f]{1,255}$")
    subnet: IPv4Net
    first: IPv4Addr | None = None

    def first_address(self) -> ipaddress.IPv4Address:
        return self.first or self.subnet.network_address + OFFSET

    def address(self, host: Host, vm: VM) -> str:
        """The guest's management address, with the subnet's prefix."""
        address = self.first_address() + host.vms.index(vm)
        return f"{address}/{self.subnet.prefixlen}"


FIELD = HostField(MgmtSpec | None, Field(default=None))


def mgmt_mac(vm: VM) -> str:
    """The management NIC's MAC: the lab MAC with its first octet made 06 (still local)."""
    return "06" + vm.mac[2:]


# which of `bridge:` and `network:` each form names, and what it is
FORMS = {"bridge": "a Linux bridge of the host", "network": "a xapi network (its name label)"}


def field_problems(name: str, host, simulate: bool, form: str = "bridge") -> list[Problem]:
    """What every kind's `mgmt:` must be: its kind's form (`bridge:` or `network:`), for a
    real host, with a seed, its addresses in the subnet."""
    if host.mgmt is None:
        return []
    other = next(f for f in FORMS if f != form)
    if getattr(host.mgmt, form) is None or getattr(host.mgmt, other) is not None:
        return [
            (
                ("hosts", name, "mgmt"),
                f"the guests of a {host.driver} host go on {FORMS[form]}: "
                f"mgmt: {{{form}: NAME, subnet: CIDR}}"
                + (f", not {other}:" if getattr(host.mgmt, other) is not None else ""),
            )
        ]
    if simulate:
        return [
            (
                ("hosts", name, "mgmt"),
                "a simulated host reaches its VMs itself (real guests: its own management bridge, "
                "labmgmt): mgmt: is for real hosts",
            )
        ]
    if host.seed == "none":
        return [(("hosts", name, "mgmt"), NEEDS_SEED)]
    return problems(name, host.mgmt, len(host.vms or {}))


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
            f"(ip link add {spec.bridge} type bridge) or name another (libvirt's virbr0, Xen's xenbr0)"
        )
    return None


def doctor_bridge(transport: Transport, spec: MgmtSpec, lab_bridge: str) -> tuple[bool, str]:
    """`labctl doctor`: the bridge takes the guests' NICs, and the host has an address there."""
    why = check_bridge(transport, spec, lab_bridge)
    if why:
        return False, why
    own = host_address(transport, spec.bridge, spec)
    if own is None:
        return False, no_host_address(spec.bridge, spec, "the host")
    return True, f"{spec.bridge} is a Linux bridge; the host is {own} there"


def no_host_address(bridge: str, spec: MgmtSpec, who: str) -> str:
    return (
        f"{who} has no address in {spec.subnet} on {bridge}: labctl's connections to the guests "
        f"start from {who} (ip addr add ADDRESS dev {bridge})"
    )


def host_address(transport: Transport, bridge: str, spec: MgmtSpec) -> str | None:
    """The host's own address in the subnet on the bridge (where labctl's connections to
    the guests start), None when it has none."""
    result = transport.run(["ip", "-o", "-4", "addr", "show", "dev", bridge], check=False)
    for word in result.stdout.split() if result.ok else []:
        try:
            address = ipaddress.IPv4Interface(word)
        except ValueError:
            continue
        if address.ip in spec.subnet:
            return str(address)
    return None


def address_range(spec: MgmtSpec, vm_count: int) -> str:
    """The guests' management addresses, for `labctl plan`: 10.99.0.10..10.99.0.11 of 10.99.0.0/24."""
    first = spec.first_address()
    last = first + max(vm_count - 1, 0)
    return f"{first if last == first else f'{first}..{last}'} of {spec.subnet}"


def planned_step(spec: MgmtSpec, vm_count: int) -> PlannedStep:
    return PlannedStep(
        f"check management bridge {spec.bridge} is a Linux bridge (not OVS, not the lab's): the guests' "
        f"second NIC, {address_range(spec, vm_count)}, labctl's way in over SSH through this host",
        argv=tuple(linux_bridge_argv(spec.bridge)),
    )
