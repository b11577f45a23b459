"""The Lab model: an inventory with every default resolved. Plain, immutable data.

Everything after loading works from this model; nothing here does I/O, and
nothing here knows the inventory's schema (resolve.py fills the defaults in).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OPENFLOW_PROTOCOLS = {"1.0": "OpenFlow10", "1.3": "OpenFlow13"}


@dataclass(frozen=True)
class VM:
    name: str
    host: str
    ip: ipaddress.IPv4Interface
    mac: str
    index: int  # position on its host, from 0


@dataclass(frozen=True, kw_only=True)
class Access:
    """How a real host is reached over SSH. Journal records carry it (never a secret),
    so `down` reaches the host again without the inventory."""

    user: str | None = None
    port: int = 22
    key: str | None = None
    known_hosts: str | None = None  # a file, "off", or None for ~/.ssh/known_hosts

    def to_record(self) -> dict[str, Any]:
        return {"user": self.user, "port": self.port, "key": self.key, "known_hosts": self.known_hosts}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Access:
        return cls(
            user=record.get("user"),
            port=record.get("port", 22),
            key=record.get("key"),
            known_hosts=record.get("known_hosts"),
        )


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
    # The fields the host's driver kind declares (its `host_fields`), with their defaults.
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)


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
    underlay_mtu: int  # the underlay's MTU: what the tunnel packets may fill
    mtu: int  # every VM NIC's MTU (mtu.py: the underlay's minus the tunnel's overhead, unless set)
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
