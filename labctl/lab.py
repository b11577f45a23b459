"""Bring a lab up, tear it down, report its status.

up:   underlay and controller host -> controller started -> per host, in
      parallel: namespaces/links/VMs, OVS daemons, one OVS transaction ->
      (a controller placed on a lab host starts here, once its address exists) ->
      wait for the controller to listen -> per host: reach every tunnel peer
      over the underlay, point the bridge at the controller -> wait until the
      controller holds a session from every bridge. Each step is checked first, so a second
      `up` changes nothing and a failed or interrupted one resumes.
down: undo what the journal lists, and only that.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

from labctl import processes
from labctl.controllers import make_controller
from labctl.drivers import DRIVERS, Context, make_driver, simlimits, simnet
from labctl.drivers.sim import SimDriver, controller_transport, ensure_controller_host, ensure_underlay
from labctl.errors import InputError, ProvisionError
from labctl.model import Host, Lab
from labctl.ovs import AddBridge, Ovs, pending, unplug_stale
from labctl.parallel import per_host, raise_failures
from labctl.plan import HostPlan, plan_host, tunnel_peers
from labctl.processes import ProcessId
from labctl.progress import Reporter
from labctl.state import LabState
from labctl.transport.base import Transport
from labctl.transport.local import LocalTransport
from labctl.transport.netns import NetnsTransport

CONTROLLER = "controller"


class LabRunner:
    def __init__(
        self,
        lab: Lab,
        report: Reporter | None = None,
        state: LabState | None = None,
        *,
        local_transport: Callable[[str], Transport] = LocalTransport,
    ):
        """`local_transport(name)` runs commands on this machine, where a lab of real hosts
        runs its controller (the unit tests pass a fake one)."""
        self.lab = lab
        self.local_transport = local_transport
        self.report = report or Reporter(quiet=True)
        self.state = state or LabState(lab.name)
        self.ctx = Context(lab, self.state, self.report)
        self.drivers = {h.name: make_driver(self.ctx, h) for h in lab.hosts}
        self.controller = make_controller(lab, self.state.dir / CONTROLLER / "controller.log")

    # --- plan ---
    def host_plan(self, host: Host) -> HostPlan:
        driver = self.drivers[host.name]
        vm_ports = [driver.vm_port(vm) for vm in host.vms] if driver.adds_vm_ports else []
        return plan_host(
            self.lab, host, datapath_type=driver.datapath_type, vm_ports=vm_ports, extra=driver.ovs_commands()
        )

    # --- up ---
    def up(self, timeout: float = 30.0) -> int:
        """Build what is missing; return how many changes were made."""
        self.controller.check()
        for shortfall in simlimits.shortfalls(self.lab):
            self.report.warn(shortfall.advice())
        with self.state.lock("up"), self.state.command_log():
            self.state.write_info(self._info())
            existing = simnet.existing_netns()
            if self.simulated_hosts:  # real hosts have their own network
                ensure_underlay(self.ctx, existing)
            for driver in self.drivers.values():
                if isinstance(driver, SimDriver):
                    driver.existing_netns = existing
            on_host = self.lab.controller.host is not None
            ctl_transport = (
                ensure_controller_host(self.ctx, existing)
                if self.simulated_hosts and not on_host
                else self.controller_transport()
            )
            ctl_proc = (
                self._ensure_controller(ctl_transport) if self.controller.managed and not on_host else None
            )

            outcomes = per_host(self._build_host, self.lab.hosts, lambda h: h.name)
            raise_failures(outcomes, "build")
            if self.controller.managed and on_host:  # its address is on the host's br-phy only now
                ctl_proc = self._ensure_controller(ctl_transport)
            if self.controller.managed:
                self.controller.wait_listening(ctl_transport, ctl_proc, timeout)
            outcomes = per_host(self._point_at_controller, self.lab.hosts, lambda h: h.name)
            raise_failures(outcomes, "set the controller")
            if self.controller.managed:
                # The controller's side is exact and immediate; OVSDB's is_connected
                # is refreshed only every few seconds.
                expected = {str(h.underlay_ip): h.name for h in self.lab.hosts}
                self.controller.wait_connected(ctl_transport, ctl_proc, expected, timeout)
            else:  # someone else's controller: ask each bridge
                outcomes = per_host(
                    lambda h: Ovs(self.drivers[h.name].transport()).wait_connected(self.lab.bridge, timeout),
                    self.lab.hosts,
                    lambda h: h.name,
                )
                raise_failures(outcomes, "connect to the controller")
            self.report.info(
                CONTROLLER, f"every {self.lab.bridge} is connected ({len(self.lab.hosts)} switches)"
            )
            if self.lab.topology == "mesh":  # verify would race the spanning tree
                outcomes = per_host(
                    lambda h: Ovs(self.drivers[h.name].transport()).wait_rstp(self.lab.bridge, timeout),
                    self.lab.hosts,
                    lambda h: h.name,
                )
                raise_failures(outcomes, "settle the spanning tree")
                self.report.info(
                    "rstp", f"the tunnel mesh is loop-free ({len(self.lab.hosts)} bridges settled)"
                )
            return self.report.changes

    @property
    def simulated_hosts(self) -> bool:
        return any(isinstance(d, SimDriver) for d in self.drivers.values())

    def controller_transport(self) -> Transport:
        """Where the controller runs. On a lab host (controller.host): inside that host.
        Simulated hosts: the controller's own namespace on their underlay. Real hosts
        only: this machine, at the controller address the inventory gives."""
        if self.lab.controller.host is not None:
            return self.drivers[self.lab.controller.host].transport()
        if self.simulated_hosts:
            return controller_transport(self.ctx)
        return self.local_transport(CONTROLLER)

    def controller_place(self) -> str | None:
        """Where the controller runs, in words for status; None when someone else runs it."""
        if not self.controller.managed:
            return None
        if self.lab.controller.host is not None:
            return f"on {self.lab.controller.host}"
        transport = self.controller_transport()
        if isinstance(transport, NetnsTransport):
            return f"in its own namespace {transport.netns}"
        return "on this machine"

    def _info(self) -> dict:
        info = self.state.read_info()
        return {
            "lab": self.lab.name,
            "inventory": os.path.abspath(self.lab.source),
            "created": info.get("created") or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "simulated": self.lab.simulated,
        }

    def controller_process(self) -> ProcessId | None:
        for record in reversed(self.state.records("process")):
            if record.get("role") == CONTROLLER:
                proc = ProcessId(record["pid"], record["start"])
                return proc if processes.alive(proc) else None
        return None

    def _ensure_controller(self, transport: Transport) -> ProcessId | None:
        running = self.controller_process()
        if running is not None:
            return running
        if isinstance(transport, NetnsTransport) and self.lab.controller.host is None:
            # An `up` killed between starting the controller and journalling it leaves a
            # controller nobody recorded; it lives in our namespace, so it is ours to stop.
            # (Not on a lab host: that namespace holds the host's OVS daemons too.)
            orphans = processes.in_netns({os.stat(f"/run/netns/{transport.netns}").st_ino})
            processes.stop(orphans)
        pid = transport.spawn(
            self.controller.argv(), log_path=str(self.controller.log_path), env=self.controller.env()
        )
        proc = processes.identify(pid)
        if proc is None:  # it died at once; wait_listening reports the log
            proc = ProcessId(pid, -1)
        self.state.record(
            "process", role=CONTROLLER, pid=proc.pid, start=proc.start, argv=self.controller.argv()
        )
        self.report.changed(
            CONTROLLER,
            f"{self.controller.kind} started (pid {pid}), listening on {self.lab.controller.target}",
        )
        return proc

    def _build_host(self, host: Host) -> None:
        driver = self.drivers[host.name]
        driver.prepare()
        ovs = Ovs(driver.transport())
        commands = self.host_plan(host).commands
        snap = ovs.snapshot()
        stale = unplug_stale(commands, snap, driver.replugged_ports)
        if stale:
            ovs.apply(stale)
            snap = ovs.snapshot()
        todo = pending(commands, snap)
        if not isinstance(driver, SimDriver):
            # A real host keeps its OVS after down: note each bridge we add, before adding it.
            for command in todo:
                if isinstance(command, AddBridge) and command.name not in snap.bridges:
                    driver.record("ovs-bridge", bridge=command.name, address=host.address)
        ovs.apply(todo)
        for command in todo:
            self.report.changed(host.name, command.describe())
        driver.finish()

    def _check_underlay(self, host: Host) -> None:
        """Reach every tunnel peer over the underlay.

        Simulated hosts first get their tunnel neighbours seeded (see
        SimDriver.seed_tunnel_neighbours)."""
        driver = self.drivers[host.name]
        transport = driver.transport()
        if isinstance(driver, SimDriver):
            peers = [self.drivers[p] for p in tunnel_peers(self.lab, host.name)]
            driver.seed_tunnel_neighbours(
                {str(p.host.underlay_ip): p.underlay_mac for p in peers if isinstance(p, SimDriver)}
            )
        for peer in tunnel_peers(self.lab, host.name):
            address = str(self.lab.host(peer).underlay_ip)
            result = transport.run(["ping", "-n", "-q", "-c", "1", "-W", "2", address], check=False)
            if result.returncode != 0:
                raise ProvisionError(host.name, "reach tunnel peers", f"{peer} ({address}) does not answer")

    def _point_at_controller(self, host: Host) -> None:
        self._check_underlay(host)
        ovs = Ovs(self.drivers[host.name].transport())
        for command in ovs.ensure([self.host_plan(host).controller]):
            self.report.changed(host.name, command.describe())

    def restart_controller(self, timeout: float = 30.0) -> ProcessId:
        """Stop the controller by PID and start it again; the bridges are not touched.

        They reconnect on their own (max_backoff is 1 s); this returns once every
        bridge holds a session again."""
        if not self.controller.managed:
            raise InputError(f"a {self.lab.controller.kind} controller is run by someone else")
        if not self.state.exists():
            raise InputError(f"lab {self.lab.name} is not up; run `labctl up`")
        self.controller.check()
        with self.state.lock("controller restart"), self.state.command_log():
            running = self.controller_process()
            if running is not None:
                processes.stop([running])
                self.report.changed(CONTROLLER, f"stopped {self.controller.kind} (pid {running.pid})")
            transport = self.controller_transport()
            proc = self._ensure_controller(transport)
            self.controller.wait_listening(transport, proc, timeout)
            expected = {str(h.underlay_ip): h.name for h in self.lab.hosts}
            self.controller.wait_connected(transport, proc, expected, timeout)
            self.report.info(CONTROLLER, f"every {self.lab.bridge} is connected again")
            return proc

    def transport_of(self, name: str) -> Transport:
        """How to run a command in the VM or host called `name`."""
        if name in self.drivers:
            return self.drivers[name].transport()
        try:
            vm = self.lab.vm(name)
        except KeyError:
            names = [h.name for h in self.lab.hosts] + [v.name for v in self.lab.vms]
            raise InputError(f"no VM or host named {name!r} (the lab has {', '.join(names)})") from None
        return self.drivers[vm.host].vm_transport(vm)

    def log_path(self, name: str) -> Path:
        """The log of the controller, or of a simulated host's ovs-vswitchd."""
        if name == CONTROLLER:
            return self.controller.log_path
        driver = self.drivers.get(name)
        if isinstance(driver, SimDriver):
            return Path(driver.rundir) / "ovs-vswitchd.log"
        raise InputError(
            f"no log for {name!r}: name `controller` or a simulated host ({', '.join(self.drivers)})"
        )

    # --- down ---
    def down(self) -> bool:
        """Remove everything the journal lists; False when there was nothing."""
        return teardown(self.state, self.report)

    # --- status ---
    def status(self) -> dict:
        """What is there now, per host, with the controller's state."""
        if not self.state.exists():
            return {"lab": self.lab.name, "up": False, "hosts": [], "controller": None}
        present = simnet.existing_netns()
        proc = self.controller_process()
        sessions = None  # the controller's side of each OpenFlow session, when we run it
        ctl = self.controller_transport()
        if proc is not None and (not isinstance(ctl, NetnsTransport) or ctl.netns in present):
            sessions = self.controller.connected_peers(ctl)
        outcomes = per_host(
            lambda h: self._host_status(h, present, sessions), self.lab.hosts, lambda h: h.name
        )
        hosts = [o.value if o.error is None else {"name": o.name, "error": str(o.error)} for o in outcomes]
        controller = {
            "kind": self.lab.controller.kind,
            "target": self.lab.controller.target,
            "apps": list(self.lab.controller.apps),
            "running": proc is not None if self.controller.managed else None,  # None: not ours
            "host": self.lab.controller.host,
            "where": self.controller_place(),
            "pid": proc.pid if proc else None,
            "log": str(self.controller.log_path),
        }
        connected = all(h.get("connected") for h in hosts)
        drift = [f"{h['name']}: {d}" for h in hosts for d in h.get("drift", [])]
        if proc is None and self.controller.managed:
            drift.insert(0, f"controller {self.lab.controller.kind} is not running")
        return {
            "drift": drift,
            "lab": self.lab.name,
            "up": connected and not drift,
            "hosts": hosts,
            "controller": controller,
        }

    def problems(self) -> list[str]:
        """Why the lab cannot pass verification now (empty when it can)."""
        if not self.state.exists():
            return [f"lab {self.lab.name} is not up; run `labctl up`"]
        if self.controller.managed and self.controller_process() is None:
            return [
                f"controller {self.lab.controller.kind} is not running (log: {self.controller.log_path}); "
                "`labctl up` restarts it"
            ]
        return []

    def _host_status(self, host: Host, present: set[str], sessions: set[str] | None) -> dict:
        driver = self.drivers[host.name]
        base = {
            "name": host.name,
            "driver": host.driver,
            "flavor": host.flavor,
            "underlay_ip": str(host.underlay_ip),
        }
        if isinstance(driver, SimDriver) and driver.netns not in present:
            return {**base, "error": f"namespace {driver.netns} is missing", "connected": False}
        snap = Ovs(driver.transport()).snapshot()
        bridge = snap.bridges.get(self.lab.bridge)
        if bridge is None:
            return {**base, "error": f"bridge {self.lab.bridge} is missing", "connected": False}
        vm_by_port = {driver.vm_port(vm): vm for vm in host.vms}
        plan = self.host_plan(host)
        drift = [f"missing {c.describe()}" for c in pending([*plan.commands, plan.controller], snap)]
        if isinstance(driver, SimDriver):
            drift += [f"VM {vm.name} is missing" for vm in host.vms if driver.vm_netns(vm) not in present]
        ports = []
        for name in bridge.ports:
            iface = snap.interfaces.get(name)
            entry = {
                "name": name,
                "ofport": iface.ofport if iface else None,
                "type": (iface.type if iface else "") or "system",
            }
            if name in vm_by_port:
                entry["vm"] = vm_by_port[name].name
            if iface and iface.options.get("remote_ip"):
                entry["remote_ip"] = iface.options["remote_ip"]
            if iface and iface.error:
                entry["error"] = iface.error
            ports.append(entry)
        return {
            **base,
            "drift": drift,
            "bridge": bridge.name,
            "datapath_type": bridge.datapath_type,
            "protocols": bridge.protocols,
            "fail_mode": bridge.fail_mode,
            "ports": ports,
            "controllers": [
                {"target": t, "connected": c if sessions is None else str(host.underlay_ip) in sessions}
                for t, c in bridge.connected.items()
            ],
            "connected": bool(bridge.connected)
            and (all(bridge.connected.values()) if sessions is None else str(host.underlay_ip) in sessions),
        }


def teardown(state: LabState, report: Reporter) -> bool:
    """Undo a lab from its journal alone (no inventory needed)."""
    with state.lock("down"):
        records = state.records()
        if not records:
            state.remove()
            return False
        # Things drivers made on real hosts (VMs, bridges), newest first.
        for record in reversed([r for r in records if "driver" in r]):
            DRIVERS[record["driver"]].undo(record, state)
            report.changed(record.get("host", state.lab_name), f"removed {record['kind']}")
        namespaces = list(dict.fromkeys(r["name"] for r in records if r["kind"] == "netns"))
        inodes = set()
        for name in namespaces:
            try:
                inodes.add(os.stat(f"/run/netns/{name}").st_ino)
            except OSError:
                pass
        procs = processes.in_netns(inodes) if inodes else []
        procs += [ProcessId(r["pid"], r["start"]) for r in records if r["kind"] == "process"]
        live = [p for p in set(procs) if processes.alive(p)]
        if live:
            processes.stop(live)
            report.changed(state.lab_name, f"stopped {len(live)} processes")
        if namespaces:
            simnet.delete_netns(namespaces)
            report.changed(state.lab_name, f"removed {len(namespaces)} namespaces and their links")
        state.remove()
        report.changed(state.lab_name, f"removed state {state.dir}")
        return True
