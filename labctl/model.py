"""The Lab model: an inventory with every default resolved. Plain, immutable data.

Everything after loading works from this model; nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labctl.inventory import InventorySpec

# The app each controller kind runs when the inventory names none (default_apps).
DEFAULT_APPS = {
    "os-ken": ("l2_learning",),
    "pox": ("forwarding.l2_learning",),
}
# Ryu's learning switch: one module per OpenFlow version, each speaking only its own.
RYU_SWITCH_FOR = {"1.0": "ryu.app.simple_switch", "1.3": "ryu.app.simple_switch_13"}
OPENFLOW_PROTOCOLS = {"1.0": "OpenFlow10", "1.3": "OpenFlow13"}


@dataclass(frozen=True)
class VM:
    name: str
    host: str
    ip: ipaddress.IPv4Interface
    mac: str
    index: int  # position on its host, from 0


@dataclass(frozen=True)
class Access:
    """How a real host is reached (SSH) and what its driver is told (libvirt URI, XenAPI URL, image)."""

    user: str | None = None
    port: int = 22
    key: str | None = None
    known_hosts: str | None = None  # a file, "off", or None for ~/.ssh/known_hosts
    uri: str | None = None
    image: str | None = None
    url: str | None = None
    password_file: str | None = None
    datapath: str = "system"
    underlay_dev: str | None = None


@dataclass(frozen=True)
class Host:
    name: str
    driver: str  # the driver that builds it: "sim" when simulated
    flavor: str  # the hypervisor it is (or plays, when simulated): port names follow it
    address: str | None
    underlay_ip: ipaddress.IPv4Address
    vms: tuple[VM, ...]
    index: int
    access: Access = Access()


@dataclass(frozen=True)
class Controller:
    kind: str
    apps: tuple[str, ...]
    address: ipaddress.IPv4Address
    port: int
    path: str | None = None
    host: str | None = None  # the lab host it runs on; None: its own namespace, or this machine

    @property
    def target(self) -> str:
        return f"tcp:{self.address}:{self.port}"


@dataclass(frozen=True)
class Lab:
    name: str
    source: str
    openflow: str
    bridge: str
    topology: str
    hub: str
    tunnel_type: str
    controller: Controller
    underlay: ipaddress.IPv4Network
    hosts: tuple[Host, ...]
    simulated: bool
    description: str = ""
    _by_name: dict = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        index = {h.name: h for h in self.hosts} | {v.name: v for v in self.vms}
        object.__setattr__(self, "_by_name", index)

    @property
    def vms(self) -> tuple[VM, ...]:
        return tuple(vm for host in self.hosts for vm in host.vms)

    @property
    def protocols(self) -> str:
        return OPENFLOW_PROTOCOLS[self.openflow]

    def host(self, name: str) -> Host:
        found = self._by_name.get(name)
        if not isinstance(found, Host):
            raise KeyError(name)
        return found

    def vm(self, name: str) -> VM:
        found = self._by_name.get(name)
        if not isinstance(found, VM):
            raise KeyError(name)
        return found


def default_mac(ip: ipaddress.IPv4Interface) -> str:
    """A locally administered MAC that shows the VM's address: 172.16.0.1 -> 02:00:ac:10:00:01."""
    return "02:00:" + ":".join(f"{octet:02x}" for octet in ip.ip.packed)


def default_apps(kind: str, openflow: str) -> tuple[str, ...]:
    if kind == "ryu":
        return (RYU_SWITCH_FOR[openflow],)
    return DEFAULT_APPS.get(kind, ())


def resolve(spec: InventorySpec, *, source: str, simulate: bool) -> Lab:
    subnet = spec.underlay.subnet
    free = (ip for ip in subnet.hosts() if ip not in {h.underlay_ip for h in spec.hosts.values()})
    hosts = []
    for index, (name, host) in enumerate(spec.hosts.items()):
        underlay_ip = host.underlay_ip or next(free)
        vms = tuple(
            VM(vm_name, name, vm.ip, vm.mac or default_mac(vm.ip), vm_index)
            for vm_index, (vm_name, vm) in enumerate(host.vms.items())
        )
        driver = "sim" if simulate or host.driver == "sim" else host.driver
        access = Access(
            host.user,
            host.port,
            host.key,
            host.known_hosts,
            host.uri,
            host.image,
            host.url,
            host.password_file,
            host.datapath,
            host.underlay_dev,
        )
        hosts.append(Host(name, driver, host.driver, host.address, underlay_ip, vms, index, access))

    ctl = spec.controller
    if ctl.address is not None:
        ctl_address = ctl.address
    elif ctl.host is not None:  # on a lab host: that host's underlay address
        ctl_address = next(h.underlay_ip for h in hosts if h.name == ctl.host)
    else:  # its own simulated host: the last address of the underlay
        taken = {h.underlay_ip for h in hosts}
        ctl_address = next(ip for ip in reversed(list(subnet.hosts())) if ip not in taken)
    apps = tuple(ctl.apps) if ctl.apps is not None else default_apps(ctl.kind, spec.openflow)
    controller = Controller(ctl.kind, apps, ctl_address, ctl.port, ctl.path, ctl.host)
    return Lab(
        name=spec.name,
        source=source,
        openflow=spec.openflow,
        bridge=spec.bridge,
        topology=spec.topology,
        hub=spec.hub or hosts[0].name,
        tunnel_type=spec.tunnel_type,
        controller=controller,
        underlay=subnet,
        hosts=tuple(hosts),
        simulated=all(h.driver == "sim" for h in hosts),
        description=spec.description,
    )
