"""Drivers, one per hypervisor kind, registered by the name the inventory uses.

A new kind is its module plus one line here: the inventory's `driver:` values and
the fields each kind adds to its hosts come from this table, in this order.
"""

from __future__ import annotations

from labctl.drivers.base import Driver, LabSession
from labctl.drivers.kvm import KvmDriver
from labctl.drivers.ovs_host import OvsHostDriver
from labctl.drivers.sim import SimDriver
from labctl.drivers.xen import XenDriver
from labctl.drivers.xenserver import XenServerDriver
from labctl.errors import InputError
from labctl.model import Host

DRIVERS: dict[str, type[Driver]] = {
    kind.name: kind for kind in (SimDriver, KvmDriver, XenDriver, XenServerDriver, OvsHostDriver)
}


def make_driver(session: LabSession, host: Host) -> Driver:
    try:
        cls = DRIVERS[host.driver]
    except KeyError:
        raise InputError(
            f"host {host.name}: the {host.driver} driver is not available in this version of labctl; "
            "run the lab simulated (simulate: true, or --sim)"
        ) from None
    return cls(session, host)


__all__ = ["DRIVERS", "LabSession", "Driver", "make_driver"]
