"""Controller kinds, registered by the name the inventory uses."""

from __future__ import annotations

from pathlib import Path

from labctl.controllers.base import ControllerKind
from labctl.controllers.osken import OsKenController
from labctl.controllers.pox import PoxController
from labctl.controllers.remote import RemoteController
from labctl.controllers.ryu import RyuController
from labctl.controllers.testcontroller import OvsTestController
from labctl.errors import InputError
from labctl.model import Lab

KINDS: dict[str, type[ControllerKind]] = {
    kind.kind: kind
    for kind in (OsKenController, PoxController, RyuController, OvsTestController, RemoteController)
}


def make_controller(lab: Lab, log_path: Path) -> ControllerKind:
    try:
        return KINDS[lab.controller.kind](lab, log_path)
    except KeyError:
        raise InputError(
            f"controller kind {lab.controller.kind!r} is not available in this version of labctl "
            f"(available: {', '.join(KINDS)})"
        ) from None


__all__ = ["KINDS", "ControllerKind", "make_controller"]
