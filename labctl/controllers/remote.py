"""A controller someone else runs: labctl only points the bridges at it and checks.

In a simulated lab the hosts reach it over the lab's underlay, so it must
listen on an underlay address; labctl still creates the namespace
lc-<lab>-controller with that address, for the user's own controller to run
in (`ip netns exec lc-<lab>-controller ryu-manager ...`).
"""

from __future__ import annotations

from labctl.controllers.base import ControllerKind, Problem


class RemoteController(ControllerKind):
    kind = "remote"
    label = "remote"
    managed = False
    takes_apps = False

    @classmethod
    def inventory_problems(cls, spec, simulate: bool) -> list[Problem]:
        address, subnet = spec.controller.address, spec.underlay.subnet
        if address is None:
            return [(("controller", "address"), "a remote controller needs the address it listens on")]
        if simulate and address not in subnet:
            return [
                (
                    ("controller", "address"),
                    f"simulated hosts reach a controller only on their underlay ({subnet}); "
                    "give it an address there and run it in namespace lc-<lab>-controller",
                )
            ]
        return []

    def argv(self) -> list[str]:
        return []
