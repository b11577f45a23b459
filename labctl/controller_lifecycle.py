"""The lab's managed controller: where it runs, start (journalled by PID), the waits
that say it is ready, restart, and whether it is running.

Where it runs is decided by the lab, not here: on a lab host (controller.host),
or at the site the hosts' driver kind gives (a simulated lab: the controller's own
namespace on the underlay; real hosts: this machine).
"""

from __future__ import annotations

from labctl import processes
from labctl.controllers import ControllerKind
from labctl.drivers.base import ControllerSite
from labctl.errors import LabctlError
from labctl.model import Lab
from labctl.processes import ProcessId
from labctl.progress import Reporter
from labctl.state import LabState

CONTROLLER = "controller"  # its role in the journal, and its name in progress lines


class ControllerLifecycle:
    def __init__(
        self, lab: Lab, state: LabState, report: Reporter, kind: ControllerKind, site: ControllerSite
    ):
        self.lab, self.state, self.report = lab, state, report
        self.kind, self.site = kind, site

    @property
    def transport(self):
        return self.site.transport

    def expected_peers(self) -> dict[str, str]:
        """Every bridge's session, by the underlay address it comes from -> host name."""
        return {str(h.underlay_ip): h.name for h in self.lab.hosts}

    def process(self) -> ProcessId | None:
        """The controller labctl started for this lab, if it still runs."""
        for record in reversed(self.state.records("process")):
            if record.get("role") == CONTROLLER:
                proc = ProcessId(record["pid"], record["start"])
                return proc if processes.alive(proc) else None
        return None

    def ensure_running(self) -> ProcessId | None:
        """Start it unless it runs; journalled before anyone waits on it."""
        running = self.process()
        if running is not None:
            return running
        if self.site.netns is not None:
            # An `up` killed between starting the controller and journalling it leaves a
            # controller nobody recorded; it lives in its own namespace, so it is ours to stop.
            # (A lab host's namespace holds the host's OVS daemons too: no site.netns there.)
            # Other processes the journal lists there (a running capture) are not strays.
            journalled = {
                ProcessId(r["pid"], r["start"])
                for r in self.state.records("process")
                if r.get("role") != CONTROLLER
            }
            strays = [p for p in processes.in_named_netns([self.site.netns]) if p not in journalled]
            processes.stop(strays)
        argv = self.kind.argv()
        pid = self.transport.spawn(argv, log_path=str(self.kind.log_path), env=self.kind.env())
        proc = processes.identify(pid)
        if proc is None:  # it died at once; wait_listening reports the log
            proc = ProcessId(pid, -1)
        self.state.record("process", role=CONTROLLER, pid=proc.pid, start=proc.start, argv=argv)
        self.report.changed(
            CONTROLLER, f"{self.kind.kind} started (pid {pid}), listening on {self.lab.controller.target}"
        )
        return proc

    def wait_ready(self, proc: ProcessId | None, timeout: float) -> None:
        self.kind.wait_listening(self.transport, proc, timeout)

    def wait_connected(self, proc: ProcessId | None, timeout: float) -> None:
        """Every bridge holds a session. The controller's side is exact and immediate;
        OVSDB's is_connected is refreshed only every few seconds."""
        self.kind.wait_connected(self.transport, proc, self.expected_peers(), timeout)

    def restart(self, timeout: float) -> ProcessId:
        """Stop it by PID and start it again; the bridges reconnect on their own
        (max_backoff is 1 s). Returns once every bridge holds a session again."""
        running = self.process()
        if running is not None:
            processes.stop([running])
            self.report.changed(CONTROLLER, f"stopped {self.kind.kind} (pid {running.pid})")
        proc = self.ensure_running()
        self.wait_ready(proc, timeout)
        self.wait_connected(proc, timeout)
        return proc

    def sessions(self) -> set[str] | None:
        """The addresses holding an OpenFlow session, as the controller sees them; None
        when it cannot be asked (not ours, not running, or where it runs is gone)."""
        if not self.kind.managed or self.process() is None:
            return None
        try:
            return self.kind.connected_peers(self.transport)
        except LabctlError:
            return None

    def status(self) -> dict:
        proc = self.process()
        spec = self.lab.controller
        return {
            "kind": spec.kind,
            "target": spec.target,
            "apps": list(spec.apps),
            "running": proc is not None if self.kind.managed else None,  # None: not ours
            "host": spec.host,
            "where": self.site.where if self.kind.managed else None,
            "pid": proc.pid if proc else None,
            "log": str(self.kind.log_path),
        }
