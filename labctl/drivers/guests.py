"""What the KVM and Xen drivers share about guests: names, templates, disks.

Templates ship with labctl (labctl/data/templates/, shown as templates/ in a
clone); LABCTL_TEMPLATES names another directory to take them from. Each
guest's disk is a qcow2 overlay on the host's base image (`image:` in the
inventory), so the base is never written to.
"""

from __future__ import annotations

import os
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from labctl.defaults import TEMPLATES
from labctl.errors import InputError
from labctl.transport.base import Transport

MEMORY_MIB = 256
VCPUS = 1
GUEST_DIR = "/var/lib/labctl"  # on the host: overlays and configs, one directory per lab (LABCTL_GUEST_DIR)


def templates_dir() -> Path:
    return Path(os.environ.get("LABCTL_TEMPLATES") or TEMPLATES)


def render(template: str, **values) -> str:
    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        undefined=StrictUndefined,
        autoescape=template.endswith(".xml.j2"),
        keep_trailing_newline=True,
    )
    return env.get_template(template).render(memory_mib=MEMORY_MIB, vcpus=VCPUS, **values)


def guest_name(lab: str, vm: str) -> str:
    return f"lc-{lab}-{vm}"


def lab_dir(lab: str) -> str:
    return f"{os.environ.get('LABCTL_GUEST_DIR') or GUEST_DIR}/{lab}"


def overlay_path(lab: str, vm: str) -> str:
    return f"{lab_dir(lab)}/{vm}.qcow2"


def create_overlay(transport: Transport, base_image: str | None, overlay: str, host: str) -> None:
    """A qcow2 overlay backed by the base image (which stays untouched)."""
    if not base_image:
        raise InputError(f"host {host}: set image: to the base qcow2 image the VMs boot from")
    transport.run(["mkdir", "-p", overlay.rsplit("/", 1)[0]])
    transport.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base_image, "-F", "qcow2", overlay])
