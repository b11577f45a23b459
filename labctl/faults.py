"""A fault: something labctl made or started that is gone or broken, and what `up` does
about it. `status` lists them (one drift line each, and structured with --json); `up`
repairs them and then checks that none is left.

Each check that finds one lives where the knowledge is: a driver's `faults()` for its
processes, namespaces and kernel links, status.py for what every host's OVS shows (its
configuration, its ports' errors, its tunnels' link state, its OpenFlow session), and
the lab's state for its own files.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass


class Hides(enum.Flag):
    """What a fault keeps status from reading, or makes untrue where status would read it."""

    NOTHING = 0
    OVSDB = enum.auto()  # the host's OVS configuration: its database does not answer
    # The switch itself: OVSDB's link states and is_connected, and the controller's view
    # of the host's session, are what a dead ovs-vswitchd left behind.
    SWITCH = enum.auto()
    # The host's way onto the underlay: its tunnels' link state and its OpenFlow session
    # follow from this fault, so status does not name them again.
    UNDERLAY = enum.auto()
    HOST = OVSDB | SWITCH | UNDERLAY  # nothing on the host can be asked at all


@dataclass(frozen=True)
class Fault:
    what: str  # what is wrong, naming the thing: "ovs-vswitchd is not running (pid 812 is gone)"
    repair: str  # what `up` does about it: "up starts it again"
    host: str | None = None  # None: the lab's (its controller, its state, what its hosts share)
    port: str | None = None  # the OVS port it is about, so no port is named twice
    hides: Hides = Hides.NOTHING

    def on(self, host: str) -> Fault:
        return dataclasses.replace(self, host=host)

    def line(self) -> str:
        """The drift line `status` has always printed: where, and what."""
        return f"{self.host}: {self.what}" if self.host else self.what

    def to_json(self) -> dict:
        return {"host": self.host, "what": self.what, "repair": self.repair}
