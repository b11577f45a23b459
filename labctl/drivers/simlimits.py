"""Kernel limits that a large simulated lab outgrows on one machine.

Every simulated host and VM is a namespace of this one kernel, and two of its
limits are shared by all namespaces, with defaults sized for one host:

* the ARP table (net.ipv4.neigh.default.gc_thresh3, 1024 entries by default,
  for the whole machine). Each VM that pings every other VM holds an entry per
  peer: 32 VMs need 992 entries before the underlay's own. Past the limit the
  kernel logs "neighbor table overflow!" and drops the packets that needed an
  entry, so pings fail at random while nothing else shows an error.
* the default receive buffer of a socket (net.core.rmem_default, 208 KiB).
  ovs-vswitchd reads a userspace-datapath port through a packet socket of that
  size; a busy host (a star's hub carries every tunnel) overflows it during the
  first pings of a lab of about 24 hosts or more.

labctl does not change machine-wide settings itself: `up` and `doctor` name the
ones a lab needs, and scripts/setup.sh raises them (never lowers them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labctl.model import Lab
from labctl.plan import tunnels

ARP_TABLE = "net.ipv4.neigh.default.gc_thresh3"
SOCKET_BUFFER = "net.core.rmem_default"
HUB_BUFFER_BYTES = 2 * 1024 * 1024
BIG_STAR_HOSTS = 16  # measured: 16 hosts lose nothing with the default buffer, 24 do
ARP_ENTRIES_SPARE = 256  # the machine's own neighbours and other labs'


@dataclass(frozen=True)
class Shortfall:
    key: str
    current: int
    needed: int
    why: str

    def __str__(self) -> str:
        return f"{self.key} is {self.current}, this lab needs at least {self.needed}: {self.why}"

    def advice(self) -> str:
        """What is short and the command that fixes it, in one line."""
        return f"{self}; {remedy([self])}"


def read_sysctl(key: str) -> int | None:
    try:
        return int(Path("/proc/sys", *key.split(".")).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def arp_entries_needed(lab: Lab) -> int:
    """Every VM resolves every other; on the underlay both ends of each tunnel resolve each
    other (up checks each peer answers), and each host and the controller one another."""
    vms = len(lab.vms)
    underlay = 2 * len(tunnels(lab)) + 2 * len(lab.hosts)
    return vms * (vms - 1) + underlay + ARP_ENTRIES_SPARE


def shortfalls(lab: Lab, read: Callable[[str], int | None] = read_sysctl) -> list[Shortfall]:
    """The machine-wide limits too small for this lab; none for a lab of real hosts."""
    simulated = [h for h in lab.hosts if h.driver == "sim"]
    if not simulated:
        return []
    found = []
    entries = arp_entries_needed(lab)
    current = read(ARP_TABLE)
    if current is not None and current < entries:
        found.append(
            Shortfall(
                ARP_TABLE,
                current,
                entries,
                f"{len(lab.vms)} VMs pinging each other need about {entries} ARP entries, and the "
                "kernel drops packets once its one table for all namespaces is full",
            )
        )
    current = read(SOCKET_BUFFER)
    if len(simulated) > BIG_STAR_HOSTS and current is not None and current < HUB_BUFFER_BYTES:
        found.append(
            Shortfall(
                SOCKET_BUFFER,
                current,
                HUB_BUFFER_BYTES,
                f"with {len(simulated)} hosts the underlay port of a busy host overflows its "
                "ovs-vswitchd socket and drops tunnel packets",
            )
        )
    return found


def remedy(found: list[Shortfall]) -> str:
    settings = " ".join(f"{s.key}={s.needed}" for s in found)
    which = "it" if len(found) == 1 else "them"
    return f"raise {which} as root: sysctl -w {settings} (scripts/setup.sh does)"
