"""What `up` would do, described without doing any of it: `labctl plan`.

It builds the LabRunner `up` builds and asks each part to describe itself: the
OVS command objects of HostBuilder.plan (the very commands `up` applies, in
its one transaction per host), each driver's planned_*_steps (made from the
code its `up` runs: the domain XML, the xl cfg, the XenAPI records), the tunnels
with both ends, and where the controller runs. Building the drivers opens no
connection (SSH, libvirt and XenAPI connect on first use), nothing runs and
nothing is written, so planning needs no root and no reachable host.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from labctl.drivers.base import PlannedStep
from labctl.errors import InputError
from labctl.lab import LabRunner
from labctl.mtu import explain, tunnel_overhead
from labctl.ovs import AddBridge, OvsCommand, render
from labctl.plan import tunnel_ends, tunnels
from labctl.yamlfile import YamlProblem, load_yaml

INDENT = "  "
LABEL_WIDTH = 12  # the left column: "inventory", "reach", "setup", "ovs", VM names, "controller"


def build(runner: LabRunner) -> dict:
    """The plan as plain data (what `plan --json` prints)."""
    lab = runner.lab
    lab_steps: list[PlannedStep] = []
    for kind in dict.fromkeys(type(d) for d in runner.drivers.values()):
        lab_steps += kind.planned_lab_steps(runner.session)
    hosts = [_host(runner, host) for host in lab.hosts]
    controller = _controller(runner)
    problems = (
        [{"field": "controller.path", "problem": controller["problem"]}] if "problem" in controller else []
    )
    for host in hosts:
        steps = host["steps"] + [s for vm in host["vms"] for s in vm["steps"]]
        problems += [
            {"field": f"hosts.{host['name']}.{s['field']}", "problem": s["problem"]}
            for s in steps
            if "problem" in s
        ]
    return {
        "lab": lab.name,
        "description": lab.description,
        "inventory": lab.source,
        "simulated": lab.simulated,
        "openflow": lab.openflow,
        "protocols": lab.protocols,
        "bridge": lab.bridge,
        "topology": lab.topology,
        "hub": lab.hub if lab.topology == "star" else None,
        "tunnel_type": lab.tunnel_type,
        "underlay": str(lab.underlay),
        "underlay_mtu": lab.underlay_mtu,
        "tunnel_overhead": tunnel_overhead(lab.tunnel_type),
        "mtu": lab.mtu,
        "controller": controller,
        "lab_steps": [s.to_json() for s in lab_steps],
        "tunnels": [
            {"type": lab.tunnel_type, "ends": [end.__dict__ for end in tunnel_ends(lab, t)]}
            for t in tunnels(lab)
        ],
        "hosts": hosts,
        "problems": problems,
    }


def _controller(runner: LabRunner) -> dict:
    ctl, kind = runner.lab.controller, runner.controller
    runs = (
        f"labctl runs it {runner.control.site.where}"
        if kind.managed
        else "someone else runs it; labctl only points bridges at it"
    )
    if kind.managed and ctl.host is None and not runner.lab.simulated:
        runs += f": {ctl.address} must be its address on the hosts' underlay"
    out = {
        "kind": ctl.kind,
        "apps": list(ctl.apps),
        "target": ctl.target,
        "managed": kind.managed,
        "host": ctl.host,
        "runs": runs,
        "argv": None,
    }
    if kind.managed:
        try:
            out["argv"] = kind.argv()
        except InputError as exc:  # POX or Ryu not found here: `up` stops at the same error
            out["problem"] = str(exc)
    return out


def _ovs(command: OvsCommand) -> dict:
    text = command.describe()
    if isinstance(command, AddBridge):  # what a bridge line in `up` leaves out
        settings = [f"fail mode {command.fail_mode}"] if command.fail_mode else []
        settings += [f"{key} {value}" for key, value in command.other_config if key == "datapath-id"]
        settings += ["RSTP"] if command.rstp else []
        text += f": {', '.join(settings)}" if settings else ""
    return {"change": text, "argv": command.argv()}


def _host(runner: LabRunner, host) -> dict:
    driver = runner.drivers[host.name]
    plan = runner.builder.plan(host)
    plugged_by = "labctl, in the OVS transaction" if driver.adds_vm_ports else "the hypervisor"
    return {
        "name": host.name,
        "driver": host.driver,
        "flavor": host.flavor,
        "address": host.address,
        "reach": driver.transport().describe(),
        "underlay_ip": str(host.underlay_ip),
        "steps": [s.to_json() for s in driver.planned_host_steps()],
        "ovs": [_ovs(c) for c in plan.commands],
        "ovs_transaction": render(plan.commands),
        "vms": [
            {
                "name": vm.name,
                "ip": str(vm.ip),
                "mac": vm.mac,
                "port": driver.planned_vm_port(vm),
                "plugged_by": plugged_by,
                "steps": [s.to_json() for s in driver.planned_vm_steps(vm)],
            }
            for vm in host.vms
        ],
        "controller": {"change": plan.controller.describe(), "argv": render([plan.controller])},
    }


def problem_lines(data: dict) -> list[str]:
    """Each problem as an inventory error reads: FILE:LINE: FIELD: what to do."""
    try:
        loaded = load_yaml(Path(data["inventory"]).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YamlProblem):  # it was read a moment ago; no line then
        loaded = None
    out = []
    for item in data["problems"]:
        line = loaded.line_of(tuple(item["field"].split("."))) if loaded else None
        place = f"{data['inventory']}:{line}" if line else data["inventory"]
        out.append(f"{place}: {item['field']}: {item['problem']}")
    return out


# --- text ------------------------------------------------------------------


def to_text(data: dict, verbose: bool = False) -> str:
    """The plan for a reader: the lab on top, then this machine, the tunnels and each host.

    verbose adds the exact OVS transaction, the controller's command line and
    every file a step writes or sends (domain XML, xl cfg, XenAPI records)."""
    ctl = data["controller"]
    mode = "simulated on this machine" if data["simulated"] else "real hosts"
    topology = f"star through {data['hub']}" if data["topology"] == "star" else "mesh, RSTP on every bridge"
    lines = [
        f"lab {data['lab']}" + (f": {data['description']}" if data["description"] else ""),
        *_rows(
            [
                ("inventory", f"{data['inventory']} ({mode})"),
                (
                    "openflow",
                    f"{data['openflow']} ({data['protocols']}), bridge {data['bridge']} on every host",
                ),
                ("topology", f"{topology}, {data['tunnel_type']} tunnels, underlay {data['underlay']}"),
                ("mtu", explain(data["mtu"], data["underlay_mtu"], data["tunnel_type"])),
                (
                    "controller",
                    " ".join(w for w in (ctl["kind"], ",".join(ctl["apps"]), "at", ctl["target"]) if w),
                ),
                ("", ctl["runs"]),
            ]
        ),
    ]
    if verbose and ctl["argv"]:
        lines.append(f"{INDENT}{'':<{LABEL_WIDTH}}$ {shlex.join(ctl['argv'])}")
    if "problem" in ctl:
        lines.append(f"{INDENT}{'':<{LABEL_WIDTH}}! up stops here: {ctl['problem']}")
    if data["lab_steps"]:
        lines += ["", "this machine"]
        lines += _steps("", data["lab_steps"], verbose)
    if data["tunnels"]:
        count = len(data["tunnels"])
        lines += ["", f"{count} {data['tunnel_type']} tunnel{'s' if count > 1 else ''}"]
        lines += _tunnel_rows(data["tunnels"])
    for host in data["hosts"]:
        lines += ["", *_host_text(host, verbose)]
    return "\n".join(lines)


def _rows(rows: list[tuple[str, str]]) -> list[str]:
    return [f"{INDENT}{label:<{LABEL_WIDTH}}{text}".rstrip() for label, text in rows]


def _tunnel_rows(tunnel_list: list[dict]) -> list[str]:
    ends = [(t["ends"][0], t["ends"][1]) for t in tunnel_list]
    width = {key: max(len(e[key]) for pair in ends for e in pair) for key in ("host", "underlay_ip", "port")}

    def side(end: dict, mirrored: bool) -> str:
        cells = [f"{end[key]:<{width[key]}}" for key in ("host", "underlay_ip", "port")]
        return "  ".join(reversed(cells) if mirrored else cells)

    return [f"{INDENT}{side(a, False)}  <->  {side(b, True)}".rstrip() for a, b in ends]


def _steps(label: str, steps: list[dict], verbose: bool) -> list[str]:
    """One line per step with its call under it; with verbose, the files it writes too."""
    pad = INDENT + " " * LABEL_WIDTH
    lines = []
    for index, step in enumerate(steps):
        head = label if index == 0 else ""
        lines.append(f"{INDENT}{head:<{LABEL_WIDTH}}{step['what']}")
        if "argv" in step:
            lines.append(f"{pad}  $ {shlex.join(step['argv'])}")
        if "api" in step:
            lines.append(f"{pad}  {step['api']}")
        if "problem" in step:
            lines.append(f"{pad}  ! up stops here: {step['problem']}")
        for name, text in step.get("files", {}).items() if verbose else ():
            lines.append(f"{pad}  {name}:")
            lines += [f"{pad}    | {line}".rstrip() for line in text.rstrip("\n").splitlines()]
    return lines


def _host_text(host: dict, verbose: bool) -> list[str]:
    pad = INDENT + " " * LABEL_WIDTH
    if host["driver"] != "sim":
        kind = host["driver"]
    else:
        kind = "simulated" if host["flavor"] == "sim" else f"{host['flavor']}, simulated"
    lines = [f"host {host['name']} ({kind}), underlay {host['underlay_ip']}"]
    lines += _rows([("reach", host["reach"])])
    lines += _steps("setup", host["steps"], verbose)
    lines += _rows([("ovs" if i == 0 else "", c["change"]) for i, c in enumerate(host["ovs"])])
    if verbose:  # the one transaction, a line per command
        lines.append(f"{pad}  $ {shlex.join(render([]))} \\")
        last = len(host["ovs"]) - 1
        lines += [
            f"{pad}      -- {shlex.join(c['argv'])}" + (" \\" if i < last else "")
            for i, c in enumerate(host["ovs"])
        ]
    for vm in host["vms"]:
        lines += _rows([(vm["name"], f"{vm['ip']} {vm['mac']}, port {vm['port']}")])
        lines += _steps("", vm["steps"], verbose)
    lines += _rows([("controller", host["controller"]["change"])])
    if verbose:
        lines.append(f"{pad}  $ {shlex.join(host['controller']['argv'])}")
    return lines
