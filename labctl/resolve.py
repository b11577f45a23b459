"""The defaults stage: a validated inventory becomes the Lab model.

Everything the inventory leaves out is decided here and nowhere else: underlay
addresses, MACs, the VMs' MTU (mtu.py), the controller's address and apps (from
its kind), each host's driver options (from its kind's declared fields). Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from labctl.controllers import KINDS
from labctl.drivers import DRIVERS
from labctl.model import VM, Access, Controller, Host, Lab
from labctl.mtu import guest_mtu

if TYPE_CHECKING:
    from labctl.inventory import InventorySpec


def default_mac(ip: ipaddress.IPv4Interface) -> str:
    """A locally administered MAC that shows the VM's address: 172.16.0.1 -> 02:00:ac:10:00:01."""
    return "02:00:" + ":".join(f"{octet:02x}" for octet in ip.ip.packed)


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
        access = Access(user=host.user, port=host.port, key=host.key, known_hosts=host.known_hosts)
        # A simulated host playing a kvm host still carries its kvm options (graph, plan show them).
        options = {field: getattr(host, field) for field in DRIVERS[host.driver].host_fields}
        hosts.append(Host(name, driver, host.driver, host.address, underlay_ip, vms, index, access, options))

    ctl = spec.controller
    if ctl.address is not None:
        ctl_address = ctl.address
    elif ctl.host is not None:  # on a lab host: that host's underlay address
        ctl_address = next(h.underlay_ip for h in hosts if h.name == ctl.host)
    else:  # its own simulated host: the last address of the underlay
        taken = {h.underlay_ip for h in hosts}
        ctl_address = next(ip for ip in reversed(list(subnet.hosts())) if ip not in taken)
    apps = tuple(ctl.apps) if ctl.apps is not None else KINDS[ctl.kind].default_apps(spec.openflow)
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
        underlay_mtu=spec.underlay.mtu,
        mtu=spec.mtu if spec.mtu is not None else guest_mtu(spec.underlay.mtu, spec.tunnel_type),
        hosts=tuple(hosts),
        simulated=all(h.driver == "sim" for h in hosts),
        description=spec.description,
    )
