"""A guest's cloud-init NoCloud seed: an ISO9660 volume labelled `cidata` holding
meta-data, user-data and network-config, which the hypervisor attaches as a CD.

- meta-data: the instance id (the guest's libvirt name) and its hostname (the VM's);
- user-data (#cloud-config): the lab's public key in `ssh_authorized_keys`, root login
  with it allowed and no password login, and the guest's own SSH host key (`ssh_keys`),
  which labctl then expects when it connects;
- network-config (version 2): the lab NIC, matched by its MAC, with the inventory
  address and the lab's MTU; the management NIC (labctl's way in), when it has one,
  with its management address. Both with no gateway: the lab is one subnet.

Any cloud image with cloud-init reads it; labctl's small initramfs guest
(scripts/build-guest.sh) reads the same files with a few lines of awk, so the YAML is
written in block style, one key per line.

Built with pycdlib (pure Python, no genisoimage/xorriso on the host or here): Joliet and
Rock Ridge names, as cloud-localds writes them, so every reader finds `meta-data` with its
dash.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import yaml

LABEL = "cidata"


@dataclass(frozen=True)
class Nic:
    mac: str
    address: str  # with prefix: 172.16.0.1/24
    mtu: int | None = None


@dataclass(frozen=True)
class Seed:
    instance_id: str
    hostname: str
    authorized_key: str  # the lab's public key, one OpenSSH line
    host_key_private: str  # the guest's ed25519 host key, OpenSSH PEM
    host_key_public: str
    lab: Nic
    mgmt: Nic | None = None

    def meta_data(self) -> str:
        return _dump({"instance-id": self.instance_id, "local-hostname": self.hostname})

    def user_data(self) -> str:
        config = {
            "ssh_authorized_keys": [self.authorized_key],
            "disable_root": False,  # labctl logs in as root, with the lab's key only
            "ssh_pwauth": False,
            "ssh_deletekeys": True,
            "ssh_keys": {
                "ed25519_private": self.host_key_private,
                "ed25519_public": self.host_key_public,
            },
        }
        return "#cloud-config\n" + _dump(config)

    def network_config(self) -> str:
        ethernets = {"lab": _ethernet(self.lab)}
        if self.mgmt is not None:
            ethernets["mgmt"] = _ethernet(self.mgmt)
        return _dump({"version": 2, "ethernets": ethernets})

    def files(self) -> dict[str, str]:
        return {
            "meta-data": self.meta_data(),
            "user-data": self.user_data(),
            "network-config": self.network_config(),
        }


def _ethernet(nic: Nic) -> dict:
    out: dict = {"match": {"macaddress": nic.mac}, "addresses": [nic.address], "dhcp4": False}
    if nic.mtu is not None:
        out["mtu"] = nic.mtu
    return out


class _BlockDumper(yaml.SafeDumper):
    """Block style, and multi-line strings (the host key) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def _dump(data: dict) -> str:
    # width: never fold a line (a key stays on its line for the initramfs's awk)
    return yaml.dump(data, Dumper=_BlockDumper, default_flow_style=False, sort_keys=False, width=1 << 16)


def build_iso(files: dict[str, str]) -> bytes:
    """The ISO9660 image of the seed: volume `cidata`, the files at its root."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=LABEL)
    try:
        for number, (name, text) in enumerate(files.items()):
            data = text.encode()
            # ISO9660 level 3 names are upper case 8.3-ish; Rock Ridge and Joliet carry the real ones
            iso.add_fp(
                io.BytesIO(data),
                len(data),
                f"/SEED{number}.;1",
                rr_name=name,
                joliet_path=f"/{name}",
            )
        out = io.BytesIO()
        iso.write_fp(out)
        return out.getvalue()
    finally:
        iso.close()


def read_iso(image: bytes) -> tuple[str, dict[str, str]]:
    """(volume label, {file name: text}) of a seed, by its Rock Ridge names (tests, doctor)."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        found = {}
        for child in iso.list_children(rr_path="/"):
            if child.is_dot() or child.is_dotdot():
                continue
            name = child.rock_ridge.name().decode()
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            found[name] = out.getvalue().decode()
        return label, found
    finally:
        iso.close()
