"""Build one host: its driver's preparation, one OVS transaction, then the tunnels'
underlay and the controller target. Each step is checked first, so a second `up`
changes nothing and an interrupted one resumes.
"""

from __future__ import annotations

from labctl.drivers.base import Driver
from labctl.errors import ProvisionError
from labctl.model import Host, Lab
from labctl.ovs import Ovs, pending, unplug_stale
from labctl.plan import HostPlan, plan_host, tunnel_peers
from labctl.progress import Reporter


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
        stale = unplug_stale(commands, snap, driver.replugged_ports)
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

    def check_underlay(self, host: Host) -> None:
        peers = tunnel_peers(self.lab, host.name)
        driver = self.drivers[host.name]
        driver.before_tunnels([self.drivers[p] for p in peers])
        transport = driver.transport()
        for peer in peers:
            address = str(self.lab.host(peer).underlay_ip)
            result = transport.run(["ping", "-n", "-q", "-c", "1", "-W", "2", address], check=False)
            if result.returncode != 0:
                raise ProvisionError(host.name, "reach tunnel peers", f"{peer} ({address}) does not answer")
