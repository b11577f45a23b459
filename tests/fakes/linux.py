"""One host's network namespaces and links in memory, reached through the `ip`,
`ethtool` and `sysctl` argv labctl runs on a real host.

Answers and errors are iproute2's (Debian 12): the same exit codes and the
same one-line messages. It refuses what the kernel refuses: a namespace that
exists already, a link whose name is taken, a device that is not there. A veth
is a pair: when one end goes (with its namespace), so does the other.
Anything labctl runs that is not modelled raises NotModelled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tests.fakes.ovsdb import NotModelled

Result = tuple[int, str, str]
ROOT = None  # the host's own network namespace
VETH_MTU = (68, 65535)  # what the kernel lets a veth (or an Ethernet device) take
NO_SUCH_DEVICE = "netlink error: no device matches name (offset 24)\nnetlink error: No such device\n"


@dataclass
class Link:
    name: str
    netns: str | None
    peer: tuple[str | None, str] | None = None  # (namespace, name) of a veth's other end
    up: bool = False
    mac: str | None = None
    mtu: int = 1500
    addrs: list[str] = field(default_factory=list)
    tx_offload: bool = True


class FakeLinux:
    def __init__(self, devices: tuple[str, ...] = ("eth0",)):
        self.namespaces: set[str] = set()
        self.links: dict[tuple[str | None, str], Link] = {}
        self.sysctls: dict[tuple[str | None, str], str] = {}
        for name in ("lo", *devices):
            self.links[(ROOT, name)] = Link(name, ROOT, up=True)

    def device_exists(self, name: str, netns: str | None = ROOT) -> bool:
        return (netns, name) in self.links

    # --- commands ---------------------------------------------------------------------

    def run(self, argv: list[str], input: str | None) -> Result:
        program = argv[0]
        if program == "ip":
            return self._ip(argv[1:], input)
        if program == "ethtool":
            return self._ethtool(argv[1:], ROOT)
        raise NotModelled(f"not a command this fake host runs: {argv}")

    def _ip(self, args: list[str], input: str | None) -> Result:
        json_out = False
        netns = ROOT
        while args and args[0].startswith("-") and args[0] != "-batch":
            if args[0] == "-j":
                json_out, args = True, args[1:]
            elif args[0] == "-n":
                netns, args = args[1], args[2:]
                if netns not in self.namespaces:
                    return 255, "", f'Cannot open network namespace "{netns}": No such file or directory\n'
            else:
                raise NotModelled(f"ip option {args[0]}")
        if args[:2] == ["-batch", "-"]:
            return self._batch(netns, (input or "").splitlines())
        if args[:2] == ["netns", "list"] and json_out:
            return 0, json.dumps([{"name": n} for n in sorted(self.namespaces)], separators=(",", ":")), ""
        if args[:2] == ["netns", "add"]:
            return self._netns_add(args[2])
        if args[:2] == ["netns", "del"]:
            return self._netns_del(args[2])
        if args[:2] == ["netns", "exec"]:
            return self._netns_exec(args[2], args[3:])
        if not json_out:
            return self._line(netns, args)
        raise NotModelled(f"ip {args}")

    def _batch(self, netns: str | None, lines: list[str]) -> Result:
        """`ip -batch -` stops at the first line that fails, as iproute2 does without -force."""
        for number, line in enumerate(lines, 1):
            code, out, err = self._line(netns, line.split())
            if code != 0:
                return 1, "", f"{err}Command failed -:{number}\n"
        return 0, "", ""

    def _line(self, netns: str | None, words: list[str]) -> Result:
        match words:
            case ["link", "add", name, "type", "veth", "peer", "name", peer, "netns", peer_netns]:
                if peer_netns not in self.namespaces:
                    return 255, "", f'Error: argument "{peer_netns}" is wrong: Invalid "netns" value\n\n'
                if (netns, name) in self.links or (peer_netns, peer) in self.links:
                    return 2, "", "RTNETLINK answers: File exists\n"
                self.links[(netns, name)] = Link(name, netns, peer=(peer_netns, peer))
                self.links[(peer_netns, peer)] = Link(peer, peer_netns, peer=(netns, name))
                return 0, "", ""
            case ["link", "set", name, *settings]:
                link = self.links.get((netns, name))
                if link is None:
                    return 1, "", f'Cannot find device "{name}"\n'
                while settings:
                    if settings[0] in ("up", "down"):
                        link.up, settings = settings[0] == "up", settings[1:]
                    elif settings[0] == "address":
                        link.mac, settings = settings[1], settings[2:]
                    elif settings[0] == "mtu":
                        mtu, settings = int(settings[1]), settings[2:]
                        if not VETH_MTU[0] <= mtu <= VETH_MTU[1]:
                            side = (
                                "less than device minimum"
                                if mtu < VETH_MTU[0]
                                else "greater than device maximum"
                            )
                            return 2, "", f"Error: mtu {side}.\n"
                        link.mtu = mtu
                    else:
                        raise NotModelled(f"ip link set {name} {settings}")
                return 0, "", ""
            case ["link", "del", name]:
                if (netns, name) not in self.links:
                    return 1, "", f'Cannot find device "{name}"\n'
                self._remove(netns, name)
                return 0, "", ""
            case ["addr", "replace", address, "dev", name]:
                link = self.links.get((netns, name))
                if link is None:
                    return 1, "", f'Cannot find device "{name}"\n'
                if address not in link.addrs:
                    link.addrs.append(address)
                return 0, "", ""
        raise NotModelled(f"ip {' '.join(words)}")

    def _netns_add(self, name: str) -> Result:
        if name in self.namespaces:
            return 1, "", f'Cannot create namespace file "/run/netns/{name}": File exists\n'
        self.namespaces.add(name)
        self.links[(name, "lo")] = Link("lo", name)
        return 0, "", ""

    def _netns_del(self, name: str) -> Result:
        if name not in self.namespaces:
            return 1, "", f'Cannot remove namespace file "/run/netns/{name}": No such file or directory\n'
        self.namespaces.discard(name)
        for key in [k for k in self.links if k[0] == name]:
            if key in self.links:  # a veth inside may have taken its peer with it
                self._remove(*key)
        return 0, "", ""

    def _netns_exec(self, name: str, argv: list[str]) -> Result:
        if name not in self.namespaces:
            return 255, "", f'Cannot open network namespace "{name}": No such file or directory\n'
        if argv[:3] == ["sysctl", "-q", "-w"]:
            for setting in argv[3:]:
                key, _, value = setting.partition("=")
                self.sysctls[(name, key)] = value
            return 0, "", ""
        if argv[:1] == ["ethtool"]:
            return self._ethtool(argv[1:], name)
        raise NotModelled(f"ip netns exec {name} {argv}")

    def _ethtool(self, args: list[str], netns: str | None) -> Result:
        match args:
            case ["-K", name, "tx", "off"]:
                link = self.links.get((netns, name))
                if link is None:
                    return 92, "", NO_SUCH_DEVICE
                link.tx_offload = False
                return 0, "", ""
        raise NotModelled(f"ethtool {args}")

    def _remove(self, netns: str | None, name: str) -> None:
        link = self.links.pop((netns, name))
        if link.peer is not None:
            self.links.pop(link.peer, None)
