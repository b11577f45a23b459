"""What is there now: per host, its bridge, ports and controller sessions, and drift
(what `up` would repair); and why a lab cannot be verified now."""

from __future__ import annotations

from labctl.build import HostBuilder
from labctl.controller_lifecycle import ControllerLifecycle
from labctl.drivers.base import Driver
from labctl.model import Host, Lab
from labctl.ovs import Ovs, pending
from labctl.parallel import in_parallel
from labctl.state import LabState


class LabStatus:
    def __init__(
        self,
        lab: Lab,
        state: LabState,
        drivers: dict[str, Driver],
        builder: HostBuilder,
        controller: ControllerLifecycle,
    ):
        self.lab, self.state, self.drivers = lab, state, drivers
        self.builder, self.controller = builder, controller

    def read(self) -> dict:
        """The status `labctl status` shows (and --json prints)."""
        if not self.state.exists():
            return {"lab": self.lab.name, "up": False, "hosts": [], "controller": None}
        sessions = self.controller.sessions()
        outcomes = in_parallel(lambda h: self._host(h, sessions), self.lab.hosts, lambda h: h.name)
        hosts = [o.value if o.error is None else {"name": o.name, "error": str(o.error)} for o in outcomes]
        controller = self.controller.status()
        connected = all(h.get("connected") for h in hosts)
        drift = [f"{h['name']}: {d}" for h in hosts for d in h.get("drift", [])]
        if controller["running"] is False:
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
        kind = self.controller.kind
        if kind.managed and self.controller.process() is None:
            return [f"controller {kind.kind} is not running (log: {kind.log_path}); `labctl up` restarts it"]
        sessions = self.controller.sessions()  # None: not ours to ask
        expected = self.controller.expected_peers()
        lost = sorted(expected[a] for a in expected if sessions is not None and a not in sessions)
        if lost:
            return [
                f"the {self.lab.bridge} of {', '.join(lost)} holds no session with controller {kind.kind} "
                f"(log: {kind.log_path})"
            ]
        return []

    def _host(self, host: Host, sessions: set[str] | None) -> dict:
        driver = self.drivers[host.name]
        base = {
            "name": host.name,
            "driver": host.driver,
            "flavor": host.flavor,
            "underlay_ip": str(host.underlay_ip),
        }
        unreachable, missing = driver.missing()
        if unreachable:
            return {**base, "error": unreachable, "connected": False}
        snap = Ovs(driver.transport()).snapshot()
        bridge = snap.bridges.get(self.lab.bridge)
        if bridge is None:
            return {**base, "error": f"bridge {self.lab.bridge} is missing", "connected": False}
        vm_by_port = {driver.vm_port(vm): vm for vm in host.vms}
        plan = self.builder.plan(host)
        drift = [f"missing {c.describe()}" for c in pending([*plan.commands, plan.controller], snap)]
        drift += missing
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
            if iface and iface.mtu is not None:
                entry["mtu"] = iface.mtu
            if iface and iface.error:
                entry["error"] = iface.error
            ports.append(entry)
        own = str(host.underlay_ip)
        return {
            **base,
            "drift": drift,
            "bridge": bridge.name,
            "datapath_type": bridge.datapath_type,
            "protocols": bridge.protocols,
            "fail_mode": bridge.fail_mode,
            "ports": ports,
            "controllers": [
                {"target": t, "connected": c if sessions is None else own in sessions}
                for t, c in bridge.connected.items()
            ],
            "connected": bool(bridge.connected)
            and (all(bridge.connected.values()) if sessions is None else own in sessions),
        }


def _controller_state(ctl: dict) -> str:
    if ctl["running"] is None:
        return "run by someone else"
    return f"running pid {ctl['pid']}" if ctl["running"] else "NOT RUNNING"


def render_text(data: dict) -> str:
    """`labctl status` as text: the lab, its drift, the controller, each host's bridge and ports."""
    if not data["hosts"] and not data["up"]:
        return f"lab {data['lab']}: not up"
    ctl = data["controller"]
    lines = [
        f"lab {data['lab']}: {'up' if data['up'] else 'NOT fully up'}",
        *(f"  drift: {d} (`labctl up` repairs it)" for d in data.get("drift", [])),
        f"controller {ctl['kind']} {ctl['target']} apps={','.join(ctl['apps']) or '-'} "
        + (f"{ctl['where']} " if ctl.get("where") else "")
        + _controller_state(ctl),
    ]
    for host in data["hosts"]:
        if "error" in host:
            lines.append(f"  {host['name']}: {host['error']}")
            continue
        conn = (
            ", ".join(
                f"{c['target']} {'connected' if c['connected'] else 'NOT CONNECTED'}"
                for c in host["controllers"]
            )
            or "no controller"
        )
        lines.append(
            f"  {host['name']} ({host['flavor']}, underlay {host['underlay_ip']}): "
            f"{host['bridge']} {host['datapath_type']} {'/'.join(host['protocols'])} -> {conn}"
        )
        for port in host["ports"]:
            what = (
                f"VM {port['vm']}"
                if "vm" in port
                else f"{port['type']} to {port['remote_ip']}"
                if "remote_ip" in port
                else port["type"]
            )
            mtu = f", MTU {port['mtu']}" if "vm" in port and "mtu" in port else ""
            error = f"  ERROR {port['error']}" if "error" in port else ""
            lines.append(
                f"      {str(port['ofport'] if port['ofport'] is not None else '-'):>5}  "
                f"{port['name']:<12} {what}{mtu}{error}"
            )
    return "\n".join(lines)
