"""A controller someone else runs: labctl only points the bridges at it and checks.

In a simulated lab the hosts reach it over the lab's underlay, so it must
listen on an underlay address; labctl still creates the namespace
lc-<lab>-controller with that address, for the user's own controller to run
in (`ip netns exec lc-<lab>-controller ryu-manager ...`).
"""

from __future__ import annotations

from labctl.controllers.base import ControllerKind


class RemoteController(ControllerKind):
    kind = "remote"
    managed = False

    def argv(self) -> list[str]:
        return []
