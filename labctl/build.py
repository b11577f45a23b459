"""Build one host: its driver's preparation, one OVS transaction, then the tunnels'
underlay and the controller target. Each step is checked first, so a second `up`
changes nothing and an interrupted one resumes.
"""

from __future__ import annotations

from labctl import icmp
from labctl.drivers.base import Driver
from labctl.errors import ProvisionError
from labctl.model import Host, Lab
from labctl.ovs import Ovs, pending, unplug_stale
from labctl.parallel import in_parallel
from labctl.plan import HostPlan, plan_host, tunnel_peers
from labctl.progress import Reporter

PEERS_AT_ONCE = 8  # a host's tunnel peers pinged (and seeded) side by side


class HostBuilder:
    def __init__(self, lab: Lab, drivers: dict[str, Driver], report: Reporter):
        self.lab, self.drivers, self.report = lab, drivers, report

    def plan(self, host: Host) -> HostPlan:
        driver = self.drivers[host.name]
        vm_ports = [driver.vm_port(vm) for vm in host.vms] if driver.adds_vm_ports else []
        return plan_host(
            self.lab, host, datapath_type=driver.datapath_type, vm_ports=vm_ports, extra=driver.ovs_commands()
        )

    def build(self, host: Host) -> None:
        """The driver's preparation, the bridges and ports in one transaction, then its finish."""
        driver = self.drivers[host.name]
        driver.prepare()
        ovs = Ovs(driver.transport())
        commands = self.plan(host).commands
        snap = ovs.snapshot()
        # Ports whose device was made again, and ports OVS could not open: plugged in anew.
        failed = {name for name, iface in snap.interfaces.items() if iface.error}
        stale = unplug_stale(commands, snap, driver.replugged_ports | failed)
        if stale:
            ovs.apply(stale)
            snap = ovs.snapshot()
        todo = pending(commands, snap)
        driver.before_ovs_changes(todo, snap)
        ovs.apply(todo)
        for command in todo:
            self.report.changed(host.name, command.describe())
        driver.finish()

    def point_at_controller(self, host: Host) -> None:
        """Reach every tunnel peer over the underlay, then set the bridge's controller."""
        self.check_underlay(host)
        driver = self.drivers[host.name]
        ovs = Ovs(driver.transport())
        snap = ovs.snapshot()
        todo = pending([self.plan(host).controller], snap)
        driver.before_ovs_changes(todo, snap)
        ovs.apply(todo)
        for command in todo:
            self.report.changed(host.name, command.describe())

    @staticmethod
    def _unanswered(transport, addresses: dict[str, str]) -> list[str]:
        """The peers that do not answer a ping: from sockets in the host's namespace when it
        is one here (no process per peer), else one `ping` per peer, side by side."""
        netns = transport.netns_path()
        if netns is not None:
            silent = set(icmp.unanswered(netns, list(addresses.values())))
            return [peer for peer, address in addresses.items() if address in silent]

        def answers(address: str) -> bool:
            return transport.run(["ping", "-n", "-q", "-c", "1", "-W", "2", address], check=False).ok

        outcomes = in_parallel(answers, list(addresses.values()), str, workers=PEERS_AT_ONCE)
        for outcome in outcomes:
            if outcome.error is not None:  # the host itself could not be asked
                raise outcome.error
        return [peer for peer, outcome in zip(addresses, outcomes, strict=True) if not outcome.value]

    def check_underlay(self, host: Host) -> None:
        """Every tunnel peer answers over the underlay. A star's hub (or any host of a mesh)
        has one peer per other host: they are pinged side by side, not one after another."""
        peers = tunnel_peers(self.lab, host.name)
        driver = self.drivers[host.name]
        driver.before_tunnels([self.drivers[p] for p in peers])
        transport = driver.transport()

        addresses = {peer: str(self.lab.host(peer).underlay_ip) for peer in peers}
        silent = [f"{peer} ({addresses[peer]})" for peer in self._unanswered(transport, addresses)]
        if silent:
            verb = "does" if len(silent) == 1 else "do"
            raise ProvisionError(host.name, "reach tunnel peers", f"{', '.join(silent)} {verb} not answer")
