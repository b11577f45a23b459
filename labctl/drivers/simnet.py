"""Namespaces and veth links for simulated hosts, created only where recorded first.

Everything lives inside namespaces labctl creates (named lc-<lab>-<name>); the
machine's own network namespace is never touched. TX checksum offload is
turned off on every veth end: with the userspace datapath, offloaded
checksums are never filled in and TCP silently fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass

from labctl.errors import CommandError, ProvisionError
from labctl.processes import NETNS_DIR
from labctl.state import LabState
from labctl.transport.local import LocalTransport

UNDERLAY_BRIDGE = "ul"
NO_IPV6 = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
_local = LocalTransport("local")


def netns_name(lab: str, name: str) -> str:
    return f"lc-{lab}-{name}"


def existing_netns() -> set[str]:
    """The named namespaces (what `ip netns list` lists), read without starting a process."""
    try:
        return set(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return set()


def ip_batch(netns: str, lines: list[str], where: str) -> None:
    """Several `ip` commands in one process inside one namespace."""
    _local.run(["ip", "-n", netns, "-batch", "-"], input="\n".join(lines) + "\n")


def links(netns: str) -> set[str]:
    out = _local.run(["ip", "-n", netns, "-j", "link", "show"]).stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


@dataclass(frozen=True)
class LinkState:
    up: bool  # set up (IFF_UP): what `ip link set ... up` changes
    carrier: bool  # has carrier (LOWER_UP): for a veth, its other end is up too
    addresses: tuple[str, ...]  # IPv4 addresses, as ADDRESS/PREFIXLEN


def link_states(netns: str) -> dict[str, LinkState]:
    """Every link in `netns`, by name: set up, carrier, IPv4 addresses (one `ip` call)."""
    out = _local.run(["ip", "-n", netns, "-j", "addr", "show"]).stdout
    return {link["ifname"]: _link_state(link) for link in json.loads(out or "[]")}


def _link_state(link: dict) -> LinkState:
    flags = link.get("flags", [])
    addresses = tuple(
        f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("family") == "inet"
    )
    return LinkState("UP" in flags, "LOWER_UP" in flags, addresses)


def tx_off(netns: str, *devices: str) -> None:
    for dev in devices:
        _local.run(["ip", "netns", "exec", netns, "ethtool", "-K", dev, "tx", "off"])


def ensure_netns(state: LabState, name: str, existing: set[str]) -> bool:
    """Create a namespace labctl owns; refuse one that exists but is not ours."""
    if name in existing:
        if not state.has("netns", name=name):
            raise ProvisionError(
                name,
                "create namespace",
                f"network namespace {name} already exists and this lab's state does not list it; "
                "it is not labctl's to use (remove it, or give the lab another name)",
            )
        return False
    state.record("netns", name=name)
    _local.run(["ip", "netns", "add", name])
    # The lab is IPv4: without IPv6's router solicitations, MLD and DAD every
    # packet-in the controller sees (and a trace shows) is the lab's own traffic.
    _local.run(["ip", "netns", "exec", name, "sysctl", "-q", "-w", *NO_IPV6])
    ip_batch(name, ["link set lo up"], name)
    existing.add(name)
    return True


def ensure_veth(
    netns: str,
    name: str,
    peer_netns: str,
    peer: str,
    peer_lines: list[str],
    lines: list[str],
    mac: str | None = None,
) -> bool:
    """A veth from `netns`/`name` to `peer_netns`/`peer`, configured by the given ip lines.

    The configuration is applied every time (the lines must be idempotent: `addr
    replace`, `link set`), so an `up` killed half-way through a link is completed
    by the next one. `mac`: `name`'s address when it is made. Returns True when the
    link had to be created."""
    created = name not in links(netns)
    if created:
        address = f" address {mac}" if mac else ""
        ip_batch(netns, [f"link add {name}{address} type veth peer name {peer} netns {peer_netns}"], netns)
    ip_batch(peer_netns, peer_lines, peer_netns)
    ip_batch(netns, lines, netns)
    if created:
        tx_off(netns, name)
        tx_off(peer_netns, peer)
    return created


def delete_netns(names: list[str]) -> None:
    present = existing_netns()
    todo = [n for n in dict.fromkeys(names) if n in present]  # the journal may list one twice
    if todo:
        subprocess.run(  # -force: one failed delete must not stop the others
            ["ip", "-force", "-batch", "-"],
            input="".join(f"netns del {n}\n" for n in todo),
            text=True,
            capture_output=True,
            check=False,
        )
    left = [n for n in todo if n in existing_netns()]
    if left:
        raise CommandError("local", ["ip", "netns", "del", *left], 1, "namespaces still present")
