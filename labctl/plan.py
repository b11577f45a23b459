"""Desired state, computed from the Lab model alone: tunnels and each host's OVS commands.

Pure functions, no I/O: `labctl plan` prints them and the unit tests compare them.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from labctl.model import Host, Lab
from labctl.ovs import AddBridge, AddPort, OvsCommand, SetController

DEFAULT_FAIL_MODE = "secure"  # the bridge forwards nothing the controller did not allow


@dataclass(frozen=True)
class Tunnel:
    a: str
    b: str


@dataclass(frozen=True)
class TunnelEnd:
    host: str
    underlay_ip: str  # the tunnel's local address here, the peer's remote_ip
    port: str  # the tunnel port on this host's bridge


@dataclass(frozen=True)
class HostPlan:
    host: Host
    commands: tuple[OvsCommand, ...]  # bridges and ports, before the controller is up
    controller: SetController  # pointed at the controller once it listens


def tunnels(lab: Lab) -> list[Tunnel]:
    """star: every host to the hub (loop-free); mesh: every pair (loops; RSTP on the bridge)."""
    names = [h.name for h in lab.hosts]
    if lab.topology == "mesh":
        return [Tunnel(a, b) for a, b in combinations(names, 2)]
    return [Tunnel(lab.hub, n) for n in names if n != lab.hub]


def tunnel_ends(lab: Lab, tunnel: Tunnel) -> tuple[TunnelEnd, TunnelEnd]:
    """Both ends of a tunnel: each host, its underlay address and its port toward the other."""
    a, b = lab.host(tunnel.a), lab.host(tunnel.b)
    return (
        TunnelEnd(a.name, str(a.underlay_ip), tunnel_port(lab, b.name)),
        TunnelEnd(b.name, str(b.underlay_ip), tunnel_port(lab, a.name)),
    )


def tunnel_peers(lab: Lab, host: str) -> list[str]:
    """The hosts `host` has a tunnel to."""
    return [t.b if t.a == host else t.a for t in tunnels(lab) if host in (t.a, t.b)]


def tunnel_port(lab: Lab, peer: str) -> str:
    """The tunnel port toward `peer`: gre-host2, vxlan-host3."""
    return f"{lab.tunnel_type}-{peer}"[:15]


def datapath_id(host: Host) -> str:
    """A readable, stable datapath ID per host: host1 -> 0000000000000001."""
    return f"{host.index + 1:016x}"


def plan_host(
    lab: Lab, host: Host, *, datapath_type: str, vm_ports: list[str], extra: list[OvsCommand] | None = None
) -> HostPlan:
    peers = tunnel_peers(lab, host.name)
    commands: list[OvsCommand] = list(extra or [])
    commands.append(
        AddBridge(
            lab.bridge,
            datapath_type,
            fail_mode=DEFAULT_FAIL_MODE,
            protocols=lab.protocols,
            rstp=lab.topology == "mesh",
            other_config=(("datapath-id", datapath_id(host)), ("disable-in-band", "true")),
        )
    )
    # Every port has its own OpenFlow number, the same each time it is made (AddPort.ofport):
    # the VMs' first, then the tunnels'.
    for number, peer in enumerate(peers, len(vm_ports) + 1):
        remote = lab.host(peer).underlay_ip
        commands.append(
            AddPort(
                lab.bridge,
                tunnel_port(lab, peer),
                lab.tunnel_type,
                (("remote_ip", str(remote)),),
                ofport=number,
            )
        )
    # In a mesh, VM ports are RSTP edge ports: they forward at once, only tunnels negotiate.
    edge = (("rstp-port-admin-edge", "true"),) if lab.topology == "mesh" else ()
    commands += [
        AddPort(lab.bridge, port, port_config=edge, ofport=number) for number, port in enumerate(vm_ports, 1)
    ]
    return HostPlan(host, tuple(commands), SetController(lab.bridge, (lab.controller.target,)))
