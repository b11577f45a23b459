"""The VMs' MTU: what a tunnel leaves of the underlay's. Pure, no I/O.

A frame a VM sends crosses the underlay inside one tunnel packet: the VM's IP
packet, its Ethernet header, the tunnel's header and an outer IPv4 header. OVS
never fragments that outer packet: the userspace datapath cannot (the underlay
port refuses it, "Message too long", whatever `df_default` says), and the kernel
datapath sets Don't Fragment on it by default. So a VM whose MTU is larger than
the underlay's minus the tunnel's overhead loses every full-size packet while
small pings pass: an MTU black hole. labctl gives every VM NIC the MTU that fits.
"""

from __future__ import annotations

DEFAULT_UNDERLAY_MTU = 1500  # Ethernet's; simulated underlays are veths of this MTU unless told otherwise
MIN_MTU = 576  # every IPv4 host must take datagrams of 576 bytes (RFC 791)
MAX_MTU = 9216  # the largest jumbo frame common switches carry

IPV4_HEADER = 20
ICMP_HEADER = 8

# What each tunnel type puts around the VM's IP packet over an IPv4 underlay, as OVS
# builds it for the ports labctl makes (no GRE key, checksum or sequence number:
# OVS adds those 4-byte fields only when a port's options ask for them).
TUNNEL_HEADERS: dict[str, tuple[tuple[str, int], ...]] = {
    "gre": (("outer IPv4", IPV4_HEADER), ("GRE", 4), ("inner Ethernet", 14)),
    "vxlan": (("outer IPv4", IPV4_HEADER), ("UDP", 8), ("VXLAN", 8), ("inner Ethernet", 14)),
}


def tunnel_overhead(tunnel_type: str) -> int:
    """Bytes a tunnel of this type adds to a VM's IP packet: gre 38, vxlan 50."""
    return sum(size for _, size in TUNNEL_HEADERS[tunnel_type])


def guest_mtu(underlay_mtu: int, tunnel_type: str) -> int:
    """The largest MTU a VM can use so that its full-size packets still cross the tunnel."""
    return underlay_mtu - tunnel_overhead(tunnel_type)


def icmp_payload(mtu: int) -> int:
    """The ICMP echo payload that makes an IPv4 packet of exactly `mtu` bytes (ping -s, fping -b)."""
    return mtu - IPV4_HEADER - ICMP_HEADER


def explain(mtu: int, underlay_mtu: int, tunnel_type: str) -> str:
    """One line on where the VMs' MTU comes from, and a warning when it is too big to cross."""
    fits = guest_mtu(underlay_mtu, tunnel_type)
    if mtu == fits:
        parts = ", ".join(f"{name} {size}" for name, size in TUNNEL_HEADERS[tunnel_type])
        return (
            f"{mtu} on every VM NIC: underlay {underlay_mtu} - {tunnel_overhead(tunnel_type)} "
            f"for {tunnel_type} ({parts})"
        )
    carries = f"a {tunnel_type} tunnel over a {underlay_mtu}-byte underlay carries {fits}"
    if mtu < fits:
        return f"{mtu} on every VM NIC, set by mtu: ({carries})"
    dropped = f"packets of {fits + 1} to {mtu} bytes will be dropped"
    return f"{mtu} on every VM NIC, set by mtu:, but {carries}: {dropped}"


def black_hole_cause(mtu: int, underlay_mtu: int, tunnel_type: str) -> str:
    """Why a lab's full-size packets may vanish, and what to change: for `verify`."""
    fits = guest_mtu(underlay_mtu, tunnel_type)
    if mtu > fits:
        return (
            f"the VMs' MTU ({mtu}, set by mtu:) is more than a {tunnel_type} tunnel carries over a "
            f"{underlay_mtu}-byte underlay ({fits}): leave mtu: out, or raise underlay.mtu if the "
            "underlay takes bigger packets"
        )
    return (
        f"the VMs' MTU ({mtu}) fits a {tunnel_type} tunnel over a {underlay_mtu}-byte underlay, so "
        "the underlay takes less than underlay.mtu says, or a VM's MTU was changed by hand: set "
        "underlay.mtu to what the underlay takes"
    )
