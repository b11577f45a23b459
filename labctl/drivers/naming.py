"""How each hypervisor names a VM's port on the OVS bridge.

The simulated driver uses the same names when a simulated host plays a KVM,
Xen or XenServer host, so a lab looks the same simulated and for real.
"""

from __future__ import annotations

from labctl.model import VM


def vm_port_name(flavor: str, vm: VM) -> str:
    if flavor == "kvm":
        return f"vnet{vm.index}"  # libvirt's tap devices: vnet0, vnet1, ...
    if flavor in ("xen", "xenserver"):
        return f"vif{vm.index + 1}.0"  # vif<domid>.<devid>; dom0 is 0, guests from 1
    return vm.name  # plain simulated host: the port is named after its VM
