"""A lab session: bring a lab up, tear it down, report its status.

up:   what the hosts' kind shares (a simulated lab: the underlay, the controller's
      namespace) -> the controller started -> per host, in parallel: the driver's
      preparation (namespaces, links, VMs, OVS daemons), one OVS transaction ->
      (a controller placed on a lab host starts here, once its address exists) ->
      wait for the controller to listen -> per host: reach every tunnel peer over
      the underlay, point the bridge at the controller -> wait until the controller
      holds a session from every bridge -> check its own work: status's checks
      find no fault. Each step is checked first, so a second `up` changes nothing,
      a failed or interrupted one resumes, and one after a fault repairs it.
down: undo what the journal lists, and only that.

The jobs live in their own modules: build.py (one host), controller_lifecycle.py
(the controller), status.py (status and drift); drivers decide everything that
differs between simulated and real hosts.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path

from labctl import processes
from labctl.build import HostBuilder
from labctl.controller_lifecycle import CONTROLLER, ControllerLifecycle
from labctl.controllers import make_controller
from labctl.drivers import DRIVERS, LabSession, make_driver, simlimits, simnet
from labctl.drivers.base import ControllerSite
from labctl.errors import InputError, ProvisionError
from labctl.model import Host, Lab
from labctl.ovs import Ovs
from labctl.parallel import in_parallel, raise_failures
from labctl.processes import ProcessId
from labctl.progress import Reporter
from labctl.state import LabState
from labctl.status import LabStatus
from labctl.transport.base import Transport

# OVS writes a port's link state a moment after it changes, and a bridge whose
# ovs-vswitchd was restarted reconnects within a second (max_backoff): up's own check
# gives what it just repaired this long to show, before it calls a fault left over.
SETTLE_SECONDS = 3.0


class LabRunner:
    def __init__(self, lab: Lab, report: Reporter | None = None, state: LabState | None = None):
        self.lab = lab
        self.report = report or Reporter(quiet=True)
        self.state = state or LabState(lab.name)
        self.session = LabSession(lab, self.state, self.report)
        self.drivers = {h.name: make_driver(self.session, h) for h in lab.hosts}
        self.controller = make_controller(lab, self.state.dir / CONTROLLER / "controller.log")
        self.control = ControllerLifecycle(
            lab, self.state, self.report, self.controller, self._controller_site()
        )
        self.builder = HostBuilder(lab, self.drivers, self.report)
        self.health = LabStatus(lab, self.state, self.drivers, self.builder, self.control)

    def _controller_site(self) -> ControllerSite:
        """On a lab host (controller.host): inside that host. Otherwise where the hosts'
        kind puts it (a lab is all simulated or all real, so the first host's kind says)."""
        on_host = self.lab.controller.host
        if on_host is not None:
            return self.drivers[on_host].hosted_controller_site()
        return type(self.drivers[self.lab.hosts[0].name]).controller_site(self.session)

    def _on_every_host(self, step: str, task: Callable[[Host], object]) -> None:
        """Run one step on every host in parallel; one error naming each host that failed."""
        raise_failures(in_parallel(task, self.lab.hosts, lambda h: h.name), step)

    # --- up ---
    def up(self, timeout: float = 30.0) -> int:
        """Build what is missing; return how many changes were made."""
        self.controller.check()
        for shortfall in simlimits.shortfalls(self.lab):
            self.report.warn(shortfall.advice())
        with self.state.lock("up"), self.state.command_log():
            self._repair_state()
            self._prepare_kinds()
            managed, on_host = self.controller.managed, self.lab.controller.host is not None
            before = self.control.established()
            proc = self.control.ensure_running() if managed and not on_host else None
            self._on_every_host("build", self.builder.build)
            if managed and on_host:  # its address is on the host's br-phy only now
                proc = self.control.ensure_running()
            if managed:
                self.control.wait_ready(proc, timeout)
            self._on_every_host("set the controller", self.builder.point_at_controller)
            if managed:
                self.control.wait_connected(proc, timeout, self._stale_sessions(before))
                self._forget_cached_misses(self._hosts_with_new_sessions(before))
            else:  # someone else's controller: ask each bridge
                self._on_every_host(
                    "connect to the controller",
                    lambda h: self._ovs(h).wait_connected(self.lab.bridge, timeout),
                )
            self.report.info(
                CONTROLLER, f"every {self.lab.bridge} is connected ({len(self.lab.hosts)} switches)"
            )
            if self.lab.topology == "mesh":  # verify would race the spanning tree
                self._on_every_host(
                    "settle the spanning tree", lambda h: self._ovs(h).wait_rstp(self.lab.bridge, timeout)
                )
                self.report.info(
                    "rstp", f"the tunnel mesh is loop-free ({len(self.lab.hosts)} bridges settled)"
                )
            self._check_own_work()
            return self.report.changes

    def _repair_state(self) -> None:
        """lab.json says what up decided (written every time); a journal line cut short
        by a crash goes, so the journal is whole again."""
        problem = self.state.info_problem() if self.state.exists() else None
        self.state.write_info(self._info())
        if problem:
            self.report.changed(self.lab.name, f"{self.state.info_path.name} written again (it {problem})")
        dropped = self.state.drop_broken_lines()
        if dropped:
            self.report.changed(self.lab.name, f"journal written again without {dropped} broken line(s)")

    def _stale_sessions(self, before: frozenset[tuple[str, int]]) -> frozenset[tuple[str, int]]:
        """The sessions the controller held before up from hosts whose ovs-vswitchd up
        started again: the dead daemon's, which the controller has not timed out yet."""
        restarted = {str(h.underlay_ip) for h in self.lab.hosts if self.drivers[h.name].switch_restarted}
        return frozenset(s for s in before if s[0] in restarted)

    def _hosts_with_new_sessions(self, before: frozenset[tuple[str, int]]) -> list[Host]:
        """The hosts whose bridge holds a session the controller did not hold before up:
        a restarted controller's, or one a bridge opened again after losing it."""
        fresh = {address for address, _ in self.control.established() - before}
        return [h for h in self.lab.hosts if str(h.underlay_ip) in fresh]

    def _forget_cached_misses(self, hosts: list[Host]) -> None:
        """Packets that missed while a bridge had no controller are cached as drops in its
        datapath; with the session back, they must reach the controller (Ovs.forget_cached_misses)."""
        if hosts:
            raise_failures(
                in_parallel(lambda h: self._ovs(h).forget_cached_misses(), hosts, lambda h: h.name),
                "forget the misses cached without a controller",
            )

    def _check_own_work(self) -> None:
        """up succeeds only when status's checks find nothing wrong: every process, link,
        port and session it made or repaired is there and works."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            faults = self.health.faults()
            if not faults:
                return
            if time.monotonic() > deadline:
                raise ProvisionError(
                    f"lab {self.lab.name}",
                    "the check after up",
                    "still wrong: " + "; ".join(f.line() for f in faults),
                )
            time.sleep(0.1)

    def _prepare_kinds(self) -> None:
        """Once per driver kind in the lab: what its hosts share."""
        by_kind: dict[type, list] = {}
        for driver in self.drivers.values():
            by_kind.setdefault(type(driver), []).append(driver)
        for kind, drivers in by_kind.items():
            kind.prepare_lab(self.session, drivers)

    def _ovs(self, host: Host) -> Ovs:
        return Ovs(self.drivers[host.name].transport())

    def _info(self) -> dict:
        info = self.state.read_info()
        return {
            "lab": self.lab.name,
            "inventory": os.path.abspath(self.lab.source),
            "created": info.get("created") or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            # every later command on this lab runs it in this mode (LabState.recorded_simulated)
            "simulated": self.lab.simulated,
        }

    def restart_controller(self, timeout: float = 30.0) -> ProcessId:
        """Stop the controller by PID and start it again; the bridges are not touched."""
        if not self.controller.managed:
            raise InputError(f"a {self.lab.controller.kind} controller is run by someone else")
        if not self.state.exists():
            raise InputError(f"lab {self.lab.name} is not up; run `labctl up`")
        self.controller.check()
        with self.state.lock("controller restart"), self.state.command_log():
            proc = self.control.restart(timeout)
            self._forget_cached_misses(list(self.lab.hosts))
            self.report.info(CONTROLLER, f"every {self.lab.bridge} is connected again")
            return proc

    # --- names ---
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
        path = driver.log_path() if driver is not None else None
        if path is None:
            raise InputError(
                f"no log for {name!r}: name `controller` or a simulated host ({', '.join(self.drivers)})"
            )
        return path

    # --- down, status ---
    def down(self) -> bool:
        """Remove everything the journal lists; False when there was nothing."""
        return teardown(self.state, self.report)

    def status(self) -> dict:
        """What is there now, per host, with the controller's state."""
        return self.health.read()

    def problems(self) -> list[str]:
        """Why the lab cannot pass verification now (empty when it can)."""
        return self.health.problems()


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
        procs = processes.in_named_netns(namespaces)
        procs += [ProcessId(r["pid"], r["start"]) for r in records if r["kind"] == "process"]
        for kind in DRIVERS.values():  # also those whose namespace someone deleted
            procs += kind.journalled_processes(records)
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
