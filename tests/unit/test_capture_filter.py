"""Where the controller runs, tcpdump keeps each packet of the controller channel once."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

from labctl.drivers.base import ControllerSite
from labctl.observe.capture import tcpdump_argv


class Links:
    """`ip -o link show dev NAME` of a host with these interface indexes."""

    def __init__(self, **indexes: int):
        self.indexes = indexes

    def run(self, argv, check=True):
        name = argv[-1]
        if name not in self.indexes:
            return subprocess.CompletedProcess(argv, 1, "", f'Device "{name}" does not exist.')
        line = f"{self.indexes[name]}: {name}@if9: <BROADCAST,MULTICAST,UP> mtu 1500\n"
        return subprocess.CompletedProcess(argv, 0, line, "")


def runner_at(site: ControllerSite, port: int = 6633):
    lab = SimpleNamespace(controller=SimpleNamespace(port=port))
    return SimpleNamespace(lab=lab, control=SimpleNamespace(site=site))


def test_in_the_controllers_own_namespace_one_interface_holds_every_session_once():
    site = ControllerSite(Links(), "in its own namespace", capture_on="eth-u")
    argv = tcpdump_argv(runner_at(site, port=6653), "c.pcap")
    assert argv[:3] == ["tcpdump", "-i", "eth-u"]
    assert argv[-1] == "tcp port 6653"


def test_on_a_lab_host_each_packet_is_kept_as_the_hosts_stack_took_it_in_or_sent_it():
    site = ControllerSite(Links(**{"u-host1": 2}), "on host1", capture_skips=("u-host1",))
    argv = tcpdump_argv(runner_at(site), "c.pcap")
    assert argv[:3] == ["tcpdump", "-i", "any"]
    # not the copy a promiscuous port saw on its way to the bridge (PACKET_OTHERHOST),
    # nor the datapath's resend of what the host sent through the bridge
    assert argv[-1] == "tcp port 6633 and link[10] != 3 and not (ifindex 2 and outbound)"


def test_a_skipped_interface_the_host_does_not_have_adds_no_filter():
    site = ControllerSite(Links(), "on host1", capture_skips=("u-host1",))
    assert tcpdump_argv(runner_at(site), "c.pcap")[-1] == "tcp port 6633 and link[10] != 3"
