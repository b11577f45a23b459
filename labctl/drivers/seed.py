"""A real guest's NoCloud seed, from the lab: its address and MTU, its management
address when it has a way in, the lab's key and the guest's own host key (guest_keys.py,
kept in the lab's state). nocloud.py writes the files and the ISO.

`seed:` of a kvm, xen or xenserver host says whether its guests get one: `nocloud` (default) or `none`,
for an image with no cloud-init (labctl then does not manage the guest's address and
has no way into it: `status` says "address not managed", `verify` reports the guest's
pairs as not verifiable).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labctl.errors import ProvisionError
from labctl.fieldtypes import HostField
from labctl.guest_keys import KeyPair, LabKeys
from labctl.model import VM
from labctl.nocloud import Nic, Seed, build_iso

SEEDS = ("nocloud", "none")
FIELD = HostField(Literal[SEEDS], Field(default="nocloud"))  # type: ignore[valid-type]
NOT_MANAGED = "address not managed (seed: none)"
FILE = "{vm}.seed.iso"  # in the host's guest directory, next to the overlay


def keys(session) -> LabKeys:
    return LabKeys(session.state.dir, session.lab.name)


def doctor_check() -> tuple[bool, str]:
    """What builds the seeds here (pycdlib), in one line."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return True, f"pycdlib {version('pycdlib')} builds the guests' seeds"
    except PackageNotFoundError:
        return False, "pycdlib is missing (it builds the guests' seeds): scripts/setup.sh installs it"


def build(session, vm: VM, domain_name: str, mgmt: tuple[str, str] | None) -> bytes:
    """The seed's ISO image; `mgmt` is the management NIC's (MAC, address/prefix)."""
    lab_keys = keys(session)
    host: KeyPair = lab_keys.host(vm.name)
    seed = Seed(
        instance_id=domain_name,
        hostname=vm.name,
        authorized_key=lab_keys.client().public,
        host_key_private=host.private_text,
        host_key_public=host.public,
        lab=Nic(vm.mac, str(vm.ip), session.lab.mtu),
        mgmt=Nic(*mgmt) if mgmt else None,
    )
    try:
        return build_iso(seed.files())
    except ImportError:
        raise ProvisionError(
            vm.host, f"build the seed of {vm.name}", "pycdlib is missing: scripts/setup.sh installs it"
        ) from None
