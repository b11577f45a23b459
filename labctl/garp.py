"""Gratuitous ARP from inside VMs that are namespaces on this machine (announce.py says
why and when), and who hears whose.

A packet socket on the VM's one interface (besides loopback) sends the VM's gratuitous
ARP request (sender and target address both its own, to the broadcast address) and
receives the other VMs' ones, each as the switches of the lab delivered it. While the
sockets are open, each VM takes unsolicited ARP (`arp_accept`), so hearing another VM's
announcement puts its address in the VM's ARP table, as a reply would; closing them puts
the VM's setting back. Entries learned so are STALE: once used, the kernel checks them
with a unicast ARP request of its own 5 s later, over the path that was set up, unless
verify's probes after an answered set-up confirm them first (icmp.py, MSG_CONFIRM).
"""

from __future__ import annotations

import fcntl
import selectors
import socket
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from labctl.errors import LabctlError
from labctl.icmp import in_namespaces

ETH_P_ARP = 0x0806
PACKET_OUTGOING = 4  # a frame this socket's interface sent, not one it received
SIOCGIFHWADDR = 0x8927
ARP_ACCEPT = "/proc/sys/net/ipv4/conf/all/arp_accept"  # the larger of all's and the interface's counts
BROADCAST = b"\xff" * 6


def gratuitous_arp(mac: bytes, address: str) -> bytes:
    """An ARP request (Ethernet, IPv4) for the sender's own address: an announcement."""
    ip = socket.inet_aton(address)
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, ip, b"\0" * 6, ip)


def announced(packet: bytes) -> str | None:
    """The address a gratuitous ARP (request or reply) announces, else None."""
    if len(packet) < 28 or packet[:6] != b"\x00\x01\x08\x00\x06\x04":
        return None
    sender, target = packet[14:18], packet[24:28]
    return socket.inet_ntoa(sender) if sender == target else None


@dataclass
class _Vm:
    sock: socket.socket
    interface: str
    mac: bytes
    arp_accept: str  # the namespace's setting before, put back on close


def _open(_: str) -> _Vm:
    interfaces = [name for _, name in socket.if_nameindex() if name != "lo"]
    if len(interfaces) != 1:
        raise OSError(f"expected one interface besides lo, found {len(interfaces)}")
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ARP))
    try:
        sock.bind((interfaces[0], ETH_P_ARP))
        sock.setblocking(False)
        request = struct.pack("256s", interfaces[0].encode())
        mac = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, request)[18:24]
        with open(ARP_ACCEPT) as fh:
            before = fh.read().strip()
        with open(ARP_ACCEPT, "w") as fh:
            fh.write("1")
    except OSError:
        sock.close()
        raise
    return _Vm(sock, interfaces[0], mac, before)


class Announcers:
    """A packet socket in each VM's namespace (VM name -> /run/netns/... path); `addresses`:
    each VM's address (what the others ping it at)."""

    def __init__(self, namespaces: Mapping[str, str], addresses: Mapping[str, str]):
        self.namespaces = dict(namespaces)
        self.vms = in_namespaces(self.namespaces, _open)
        self.addresses = {name: addresses[name] for name in self.vms}
        self.names = {address: name for name, address in self.addresses.items()}
        self.selector = selectors.DefaultSelector()
        for name, vm in self.vms.items():
            self.selector.register(vm.sock, selectors.EVENT_READ, name)

    def announce(self, name: str) -> None:
        vm = self.vms[name]
        try:
            vm.sock.sendto(
                gratuitous_arp(vm.mac, self.addresses[name]), (vm.interface, ETH_P_ARP, 0, 0, BROADCAST)
            )
        except OSError:
            pass  # not sent: nobody hears it, so it times out

    def heard(self, wait_s: float) -> Iterator[tuple[str, str]]:
        """(announcing VM, listening VM) for the announcements heard within `wait_s`."""
        for key, _ in self.selector.select(max(0.0, wait_s)):
            listener, sock = key.data, self.vms[key.data].sock
            while True:
                try:
                    packet, where = sock.recvfrom(64)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break  # the VM's interface went down (ENETDOWN): it hears nothing more
                if where[2] == PACKET_OUTGOING:
                    continue
                speaker = self.names.get(announced(packet) or "")
                if speaker is not None and speaker != listener:
                    yield speaker, listener

    def close(self) -> None:
        """Close the sockets; each VM takes unsolicited ARP only as it did before."""
        self.selector.close()

        def restore(name: str) -> None:
            vm = self.vms[name]
            vm.sock.close()
            try:
                with open(ARP_ACCEPT, "w") as fh:
                    fh.write(vm.arp_accept)
            except OSError:
                pass  # the VM went meanwhile: nothing left to put back

        try:
            in_namespaces({name: self.namespaces[name] for name in self.vms}, restore)
        except LabctlError:
            pass  # a VM's namespace went meanwhile: its pairs say so, not this
