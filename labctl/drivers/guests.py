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
from pydantic import Field

from labctl.defaults import TEMPLATES
from labctl.drivers.base import PlannedStep
from labctl.errors import InputError
from labctl.fieldtypes import HostField
from labctl.model import VM, Lab
from labctl.transport.base import Transport

MEMORY_MIB = 256
VCPUS = 1
GUEST_DIR = "/var/lib/labctl"  # on the host: overlays and configs, one directory per lab (LABCTL_GUEST_DIR)


# `image:` of a host: kvm, xen: the base qcow2 image; xenserver: the VM template's name label.
IMAGE = HostField(str | None, Field(default=None, pattern=r"^[A-Za-z0-9_./~+() -]{1,255}$"))


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


def render_guest(template: str, lab: Lab, vm: VM, **values) -> str:
    """A guest's hypervisor config (libvirt domain, xl cfg): what every guest template is
    given; `values` adds to it or overrides it (the disk of a guest that keeps it elsewhere)."""
    given = {
        "lab": lab.name,
        "vm": vm.name,
        "name": guest_name(lab.name, vm.name),
        "disk": overlay_path(lab.name, vm.name),
        "bridge": lab.bridge,
        "mac": vm.mac,
        "mtu": lab.mtu,
    }
    return render(template, **(given | values))


def guest_name(lab: str, vm: str) -> str:
    return f"lc-{lab}-{vm}"


def lab_dir(lab: str) -> str:
    return f"{os.environ.get('LABCTL_GUEST_DIR') or GUEST_DIR}/{lab}"


def overlay_path(lab: str, vm: str) -> str:
    return f"{lab_dir(lab)}/{vm}.qcow2"


NO_IMAGE = "set image: to the base qcow2 image the VMs boot from"


def overlay_argvs(base_image: str, overlay: str) -> list[list[str]]:
    """The commands that make a qcow2 overlay backed by the base image (which stays untouched)."""
    return [
        ["mkdir", "-p", overlay.rsplit("/", 1)[0]],
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", base_image, "-F", "qcow2", overlay],
    ]


def create_overlay(transport: Transport, base_image: str | None, overlay: str, host: str) -> None:
    if not base_image:
        raise InputError(f"host {host}: {NO_IMAGE}")
    for argv in overlay_argvs(base_image, overlay):
        transport.run(argv)


def planned_overlay(base_image: str | None, overlay: str) -> list[PlannedStep]:
    """create_overlay's commands for `labctl plan`; without an image, the step `up` would stop at."""
    if not base_image:
        return [PlannedStep(f"qcow2 overlay {overlay}", problem=NO_IMAGE, field="image")]
    mkdir, create = overlay_argvs(base_image, overlay)
    return [
        PlannedStep(f"directory {mkdir[-1]}", argv=tuple(mkdir)),
        PlannedStep(f"qcow2 overlay {overlay} on the base image {base_image}", argv=tuple(create)),
    ]
