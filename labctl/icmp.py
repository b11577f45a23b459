"""Echo requests from inside network namespaces, sent and timed by this one process.

verify pings thousands of VM pairs. Starting a ping program per pair, or even per VM
and phase, costs more CPU than the pings, and it could not be steered while it runs.
So for VMs that are namespaces on this machine, labctl opens a raw ICMP socket inside
each VM's namespace (a socket stays in the namespace it was made in) and drives all of
them from one loop: the kernel of each VM resolves ARP and routes the packets exactly as
for `ping` run inside it. Receive times are the kernel's (SO_TIMESTAMPNS), so a busy
loop here does not inflate the round trips it reports.

Every request leaves with Don't Fragment (IP_PMTUDISC_DO, like `ping -M do`): a full-size
probe must cross the tunnels whole or not at all, never be split by the VM's kernel.
"""

from __future__ import annotations

import ctypes
import os
import random
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

from labctl.errors import LabctlError

CLONE_NEWNET = 0x40000000
ECHO_REQUEST, ECHO_REPLY = 8, 0
PAYLOAD = bytes(range(48)) + b"labctl!!"  # 56 bytes, like ping's
IP_AND_ICMP_HEADERS = 60 + 8  # at most: an IPv4 header with every option
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
_IP_PMTUDISC_DO = getattr(socket, "IP_PMTUDISC_DO", 2)
T = TypeVar("T")


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python 3.12+
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def in_namespaces(namespaces: Mapping[str, str], make: Callable[[str], T]) -> dict[str, T]:
    """`make(name)` called inside each namespace (name -> /run/netns/... path), in turn.

    Entering a namespace changes only the calling thread's, so a short-lived thread
    does it and this process's own threads stay where they are. What `make` opens there
    (a socket) stays in that namespace. An OSError stops it: LabctlError, naming the VM."""
    made: dict[str, T] = {}
    failure: list[str] = []

    def work() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            for name, path in namespaces.items():
                fd = os.open(path, os.O_RDONLY)
                try:
                    _setns(fd)
                finally:
                    os.close(fd)
                made[name] = make(name)
        except OSError as exc:
            failure.append(f"in {name}'s namespace: {exc.strerror or exc}")
        finally:
            _setns(home)
            os.close(home)

    thread = threading.Thread(target=work, name="labctl-netns")
    thread.start()
    thread.join()
    if failure:
        for thing in made.values():
            close = getattr(thing, "close", None)
            if close is not None:
                close()
        raise LabctlError(failure[0])
    return made


def _icmp_socket(_: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DO)
    return sock


def sockets_in(namespaces: Mapping[str, str]) -> dict[str, socket.socket]:
    """A raw ICMP socket inside each namespace (name -> /run/netns/... path)."""
    try:
        return in_namespaces(namespaces, _icmp_socket)
    except LabctlError as exc:
        raise LabctlError(f"cannot open a socket {exc}") from None


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def payload_of(size: int) -> bytes:
    """`size` bytes of echo data: ping's 56 bytes, repeated or cut."""
    return (PAYLOAD * (size // len(PAYLOAD) + 1))[:size]


def echo_request(ident: int, seq: int, size: int = len(PAYLOAD)) -> bytes:
    """An echo request with `size` bytes of data (the IPv4 packet is 28 bytes more)."""
    data = PAYLOAD if size == len(PAYLOAD) else payload_of(size)
    header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq)
    return struct.pack("!BBHHH", ECHO_REQUEST, 0, checksum(header + data), ident, seq) + data


def parse_reply(packet: bytes) -> tuple[str, int, int] | None:
    """(source address, identifier, sequence) of an echo reply (IP header first), else None."""
    if len(packet) < 20:
        return None
    start = (packet[0] & 0x0F) * 4
    if len(packet) < start + 8 or packet[start] != ECHO_REPLY:
        return None
    ident, seq = struct.unpack("!HH", packet[start + 4 : start + 8])
    return socket.inet_ntoa(packet[12:16]), ident, seq


class Pinger:
    """Echo requests from many namespaces, replies matched to what was sent.

    Each source namespace has its own identifier; a request is known by (source,
    sequence), and a reply counts only from the address it was sent to."""

    def __init__(self, sockets: Mapping[str, socket.socket]):
        self.sockets = dict(sockets)
        base = random.randrange(0x10000)
        self.ident = {name: (base + i) & 0xFFFF for i, name in enumerate(self.sockets)}
        self.seq = dict.fromkeys(self.sockets, 0)
        self.pending: dict[tuple[str, int], tuple[object, str, float]] = {}  # -> (key, address, sent)
        self.sent_as: dict[object, tuple[str, int]] = {}  # key -> (source, sequence)
        self.receive_bytes = 1500  # room for the largest reply expected
        self.selector = selectors.DefaultSelector()
        for name, sock in self.sockets.items():
            self.selector.register(sock, selectors.EVENT_READ, name)

    def send(
        self, src: str, address: str, key: object, size: int = len(PAYLOAD), answered: bool = False
    ) -> None:
        """One echo request of `size` data bytes from `src` to `address`; its reply will come
        back as `key`. `answered`: `address` has answered `src` already, so the request tells
        the kernel its neighbour entry is confirmed (MSG_CONFIRM, as TCP's acks do): otherwise
        an entry learned from a gratuitous ARP (garp.py) would be checked with a unicast ARP
        request 5 s after its first use, thousands of packet-ins more in a big lab."""
        seq = self.seq[src] = (self.seq[src] + 1) & 0xFFFF
        self.pending[(src, seq)] = (key, address, time.time())
        self.sent_as[key] = (src, seq)
        self.receive_bytes = max(self.receive_bytes, size + IP_AND_ICMP_HEADERS)
        try:
            flags = socket.MSG_CONFIRM if answered else 0
            self.sockets[src].sendto(echo_request(self.ident[src], seq, size), flags, (address, 0))
        except OSError:
            # unreachable for now (an ARP failure reported late), or bigger than the path
            # takes with Don't Fragment: no reply, so it times out
            pass

    def forget(self, key: object) -> None:
        """Stop waiting for the reply to `key` (it timed out)."""
        sent = self.sent_as.pop(key, None)
        if sent is not None:
            self.pending.pop(sent, None)

    def replies(self, wait_s: float) -> Iterator[tuple[object, float]]:
        """(key, round trip in ms) of the replies that arrive within `wait_s` seconds."""
        for selected, _ in self.selector.select(max(0.0, wait_s)):
            src = selected.data
            sock = self.sockets[src]
            while True:
                try:
                    packet, ancillary, _, _ = sock.recvmsg(self.receive_bytes, 64)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue  # an error queued for an earlier request (unreachable)
                got = parse_reply(packet)
                if got is None or got[1] != self.ident[src]:
                    continue
                entry = self.pending.get((src, got[2]))
                if entry is None or entry[1] != got[0]:
                    continue
                del self.pending[(src, got[2])]
                key, _, sent = entry
                self.sent_as.pop(key, None)
                yield key, max(0.0, (_received_at(ancillary) - sent) * 1000)

    def close(self) -> None:
        self.selector.close()
        for sock in self.sockets.values():
            sock.close()


def _received_at(ancillary: list) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanos = struct.unpack("qq", data[:16])
            return seconds + nanos / 1e9
    return time.time()


def unanswered(
    netns_path: str, addresses: Sequence[str], timeout_s: float = 6.0, resend_s: float = 1.0
) -> list[str]:
    """The addresses that do not answer an echo request from inside a namespace within
    `timeout_s` (like `ping -c 6 -w 6` to each, all at once, each stopping at its first
    answer). Requests go again every `resend_s` to the addresses not answered yet: when a
    host asks all its tunnel peers at once (a mesh's every host does), ARP requests crowd
    the underlay and some give up, and their packets with them."""
    pinger = Pinger(sockets_in({"here": netns_path}))
    try:
        waiting, start = set(addresses), time.monotonic()
        deadline, resend_at = start + timeout_s, start
        while waiting and time.monotonic() < deadline:
            if time.monotonic() >= resend_at:
                for address in addresses:
                    if address in waiting:
                        pinger.send("here", address, address)
                resend_at += resend_s
            wait = min(deadline, resend_at) - time.monotonic()
            for address, _ in pinger.replies(max(0.0, wait)):
                waiting.discard(address)  # type: ignore[arg-type]
        return [a for a in addresses if a in waiting]
    finally:
        pinger.close()
