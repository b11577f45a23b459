"""The NoCloud seed labctl builds for a real guest, read back as a guest would: the ISO's
volume label and files (pycdlib), their YAML (PyYAML); the lab's keys on disk."""

from __future__ import annotations

import stat

import pytest
import yaml

pytest.importorskip("pycdlib", reason="pycdlib is in the kvm extra (scripts/setup.sh installs it)")

from labctl.guest_keys import LabKeys  # noqa: E402
from labctl.nocloud import Nic, Seed, build_iso, read_iso  # noqa: E402

MGMT = Nic("06:00:ac:10:00:01", "169.254.100.10/24")


def seed(tmp_path, mgmt: Nic | None = MGMT) -> tuple[Seed, LabKeys]:
    keys = LabKeys(tmp_path, "lab1")
    host = keys.host("vm1")
    return (
        Seed(
            instance_id="lc-lab1-vm1",
            hostname="vm1",
            authorized_key=keys.client().public,
            host_key_private=host.private_text,
            host_key_public=host.public,
            lab=Nic("02:00:ac:10:00:01", "172.16.0.1/24", 1462),
            mgmt=mgmt,
        ),
        keys,
    )


def test_the_seed_is_an_iso9660_volume_labelled_cidata_with_the_three_nocloud_files(tmp_path):
    built, _ = seed(tmp_path)
    image = build_iso(built.files())
    assert image[0x8001:0x8006] == b"CD001"  # the primary volume descriptor of ISO9660
    label, files = read_iso(image)
    assert label == "cidata"
    assert sorted(files) == ["meta-data", "network-config", "user-data"]
    assert yaml.safe_load(files["meta-data"]) == {"instance-id": "lc-lab1-vm1", "local-hostname": "vm1"}


def test_network_config_carries_the_lab_address_and_mtu_and_the_management_address(tmp_path):
    built, _ = seed(tmp_path)
    config = yaml.safe_load(read_iso(build_iso(built.files()))[1]["network-config"])
    assert config == {
        "version": 2,
        "ethernets": {
            "lab": {
                "match": {"macaddress": "02:00:ac:10:00:01"},
                "addresses": ["172.16.0.1/24"],
                "dhcp4": False,
                "mtu": 1462,
            },
            "mgmt": {
                "match": {"macaddress": "06:00:ac:10:00:01"},
                "addresses": ["169.254.100.10/24"],
                "dhcp4": False,
            },
        },
    }


def test_without_a_way_in_the_network_config_has_the_lab_nic_only(tmp_path):
    built, _ = seed(tmp_path, mgmt=None)
    assert list(yaml.safe_load(built.network_config())["ethernets"]) == ["lab"]


def test_user_data_carries_the_lab_key_and_the_guest_host_key(tmp_path):
    built, keys = seed(tmp_path)
    text = read_iso(build_iso(built.files()))[1]["user-data"]
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    client, host = keys.client(), keys.host("vm1")
    assert data["ssh_authorized_keys"] == [client.public]
    assert client.public.startswith("ssh-ed25519 ") and client.public.endswith(" labctl-lab1")
    assert data["ssh_keys"]["ed25519_private"] == host.private_text
    assert data["ssh_keys"]["ed25519_public"] == host.public
    assert data["disable_root"] is False and data["ssh_pwauth"] is False
    # one line per key: the initramfs guest reads it with awk
    assert f"- {client.public}\n" in text


def test_the_lab_key_is_made_once_private_to_root_and_kept(tmp_path):
    keys = LabKeys(tmp_path, "lab1")
    first = keys.client()
    assert stat.S_IMODE(first.private_path.stat().st_mode) == 0o600
    assert first.private_text.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert LabKeys(tmp_path, "lab1").client() == first  # the next labctl run finds the same
    assert keys.host("vm1") != keys.host("vm2")  # each guest its own host key
    assert not list(tmp_path.glob("**/.*partial*"))
