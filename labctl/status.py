"""What is there now: per host, its bridge, ports and controller sessions; the faults in
what labctl made and started (drift: each one line, with what `up` does about it); and
why a lab cannot be verified now.

A host's faults come from three places: its driver (processes, namespaces, kernel links:
`Driver.faults()`), its OVS configuration (what the plan wants that OVS does not hold) and
what OVS and the controller say of it (ports' errors, tunnels' link state, the OpenFlow
session as the controller sees it). A fault that makes the others stale or unreadable
says so (`Hides`), and they are not read or not named: a dead ovs-vswitchd leaves OVSDB
saying "connected" for ever, and the controller too until it times the session out.
"""

from __future__ import annotations

from labctl.build import HostBuilder
from labctl.controller_lifecycle import ControllerLifecycle
from labctl.drivers.base import Driver
from labctl.faults import Fault, Hides
from labctl.model import Host, Lab
from labctl.ovs import AddBridge, AddPort, Ovs, OvsCommand, OvsSnapshot, SetController, pending
from labctl.parallel import in_parallel
from labctl.state import LabState

_REPAIRS = {
    AddBridge: "up adds it, with the planned settings",
    AddPort: "up adds it",
    SetController: "up points the bridge at the controller",
}


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
            return {
                "lab": self.lab.name, "up": False, "hosts": [], "controller": None, "drift": [], "faults": [],
            }  # fmt: skip
        hosts, faults, controller = self._collect()
        return {
            "drift": [f.line() for f in faults],
            "faults": [f.to_json() for f in faults],
            "lab": self.lab.name,
            "up": all(h.get("connected") for h in hosts) and not faults,
            "hosts": hosts,
            "controller": controller,
        }

    def faults(self) -> list[Fault]:
        """Every fault status finds: what `up` checks its own work by."""
        return self._collect()[1]

    def _collect(self) -> tuple[list[dict], list[Fault], dict]:
        controller = self.controller.status()
        faults = self._lab_faults(controller)
        lab_hides = Hides.NOTHING
        for fault in faults:
            lab_hides |= fault.hides
        sessions = self.controller.sessions()
        outcomes = in_parallel(lambda h: self._host(h, sessions, lab_hides), self.lab.hosts, lambda h: h.name)
        hosts = []
        for outcome in outcomes:
            if outcome.error is None:
                entry, host_faults = outcome.value
            else:  # the host cannot be asked (SSH, a hung OVS): nothing to repair from here
                entry = {"name": outcome.name, "error": str(outcome.error), "connected": False}
                host_faults = [
                    Fault(f"cannot be read: {outcome.error}", "up cannot repair this: see labctl doctor")
                    .on(outcome.name)
                ]  # fmt: skip
            entry["drift"] = [f.what for f in host_faults]
            hosts.append(entry)
            faults += host_faults
        return hosts, faults, controller

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

    # --- the lab's own faults: its controller, its state, what its hosts share ---
    def _lab_faults(self, controller: dict) -> list[Fault]:
        faults = []
        if controller["running"] is False:
            faults.append(
                Fault(
                    f"controller {self.lab.controller.kind} is not running",
                    "up starts it again and waits for every bridge's session",
                )
            )
        faults += self.state.faults()
        kinds = {type(d): d for d in self.drivers.values()}
        for kind, driver in kinds.items():
            faults += kind.lab_faults(driver.session)
        return faults

    # --- one host ---
    def _host(self, host: Host, sessions: set[str] | None, lab_hides: Hides) -> tuple[dict, list[Fault]]:
        driver = self.drivers[host.name]
        base = {
            "name": host.name,
            "driver": host.driver,
            "flavor": host.flavor,
            "underlay_ip": str(host.underlay_ip),
        }
        faults = [f.on(host.name) for f in driver.faults()]
        if Hides.UNDERLAY in lab_hides:  # the host's own underlay faults follow from the lab's
            faults = [f for f in faults if not f.hides & Hides.UNDERLAY]
        hides = lab_hides
        for fault in faults:
            hides |= fault.hides
        if Hides.OVSDB in hides:
            why = "; ".join(f.what for f in faults if f.hides & Hides.OVSDB)
            return {**base, "error": why, "connected": False}, faults
        snap = Ovs(driver.transport()).snapshot()
        plan = self.builder.plan(host)
        unset = pending([*plan.commands, plan.controller], snap)
        faults += [_missing(c).on(host.name) for c in unset]
        live = not hides & (Hides.SWITCH | Hides.UNDERLAY)  # what OVS and the controller say is true
        named = {f.port for f in faults if f.port}
        faults += [f.on(host.name) for f in _port_faults(plan.commands, snap, named, tunnels=live)]
        bridge = snap.bridges.get(self.lab.bridge)
        if bridge is None:
            return {**base, "error": f"bridge {self.lab.bridge} is missing", "connected": False}, faults
        # The controller's view of the session when it can be asked, else OVSDB's; neither
        # is true of a dead ovs-vswitchd.
        says = {
            target: (ovsdb if sessions is None else str(host.underlay_ip) in sessions)
            and Hides.SWITCH not in hides
            for target, ovsdb in bridge.connected.items()
        }
        connected = bool(says) and all(says.values())
        asked = sessions is not None or not self.controller.kind.managed  # else: the controller is down
        if not connected and live and asked and plan.controller not in unset:  # nothing else explains it
            faults.append(
                Fault(
                    f"{bridge.name} holds no OpenFlow session with {self.lab.controller.target}",
                    "up points it at the controller again and waits for the session",
                ).on(host.name)
            )
        vm_by_port = {driver.vm_port(vm): vm for vm in host.vms}
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
                if not driver.address_managed(vm_by_port[name]):
                    entry["address_managed"] = False  # e.g. an image without cloud-init (seed: none)
            if iface and iface.options.get("remote_ip"):
                entry["remote_ip"] = iface.options["remote_ip"]
            if iface and iface.mtu is not None:
                entry["mtu"] = iface.mtu
            if iface and iface.error:
                entry["error"] = iface.error
            ports.append(entry)
        return {
            **base,
            "bridge": bridge.name,
            "datapath_type": bridge.datapath_type,
            "protocols": bridge.protocols,
            "fail_mode": bridge.fail_mode,
            "ports": ports,
            "controllers": [{"target": t, "connected": c} for t, c in says.items()],
            "connected": connected,
        }, faults


def _missing(command: OvsCommand) -> Fault:
    """A command of the plan whose effect OVS does not show."""
    port = command.name if isinstance(command, AddPort) else None
    return Fault(f"missing {command.describe()}", _REPAIRS.get(type(command), "up applies it"), port=port)


def _port_faults(commands, snap: OvsSnapshot, named: set[str | None], tunnels: bool) -> list[Fault]:
    """What OVS says of the ports the plan wants (and has): a device it cannot open; a
    tunnel whose link is down (no route to its remote end, or the underlay is down).
    Ports a driver fault names already are left out: one fault, one line."""
    faults = []
    for command in commands:
        if not isinstance(command, AddPort) or command.name in named or not command.satisfied_by(snap):
            continue
        iface = snap.interfaces[command.name]
        remote = iface.options.get("remote_ip")
        if iface.error:
            faults.append(Fault(f"port {iface.name}: {iface.error}", "up plugs it in again", port=iface.name))
        elif tunnels and remote and iface.link_state == "down":
            faults.append(
                Fault(
                    f"tunnel {command.name} to {remote} is down (OVS has no working route to {remote})",
                    "up sets the host's underlay up again",
                    port=command.name,
                )
            )
    return faults


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
        *(f"  drift: {line}: {f['repair']}" for line, f in zip(data["drift"], data["faults"], strict=True)),
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
            mtu += ", address not managed" if port.get("address_managed") is False else ""
            error = f"  ERROR {port['error']}" if "error" in port else ""
            lines.append(
                f"      {str(port['ofport'] if port['ofport'] is not None else '-'):>5}  "
                f"{port['name']:<12} {what}{mtu}{error}"
            )
    return "\n".join(lines)
