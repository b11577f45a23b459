"""The lab as a picture: Graphviz DOT or Mermaid, from the model alone (nothing runs).

Hosts are boxes holding their bridge and VMs (with addresses and port names);
tunnels join bridges, labelled with their type and endpoints; the controller
joins every bridge with a dashed OpenFlow edge.
"""

from __future__ import annotations

from labctl.drivers.naming import vm_port_name
from labctl.model import Lab
from labctl.plan import tunnels


def _id(kind: str, *parts: str) -> str:
    """A node id no lab name can break: prefixed (a VM may be called `node` or `end`,
    keywords in DOT and Mermaid) and without `-`, which neither takes unquoted."""
    return "_".join([kind, *(p.replace("-", "_") for p in parts)])


CONTROLLER = "ctl"


def _placed(ctl) -> str:
    """A controller running on one of the lab's hosts says so."""
    return f" on {ctl.host}" if ctl.host else ""


def to_dot(lab: Lab) -> str:
    ctl = lab.controller
    apps = ", ".join(ctl.apps)
    lines = [
        f'graph "{lab.name}" {{',
        '  graph [fontname="Helvetica", label="'
        + f"lab {lab.name} (OpenFlow {lab.openflow}, {lab.topology})"
        + '"];',
        '  node [fontname="Helvetica", shape=box, style=rounded];',
        '  edge [fontname="Helvetica", fontsize=10];',
        f'  {CONTROLLER} [label="controller\\n{ctl.kind} {apps}\\n{ctl.target}{_placed(ctl)}",'
        " shape=ellipse];",
    ]
    for host in lab.hosts:
        lines += [
            f"  subgraph cluster_{_id('host', host.name)} {{",
            f'    label="{host.name} ({host.flavor}, underlay {host.underlay_ip})";',
            f'    {_id("br", host.name)} [label="{lab.bridge}", shape=component];',
        ]
        for vm in host.vms:
            lines.append(f'    {_id("vm", vm.name)} [label="{vm.name}\\n{vm.ip}"];')
            port = vm_port_name(host.flavor, vm)
            lines.append(f'    {_id("vm", vm.name)} -- {_id("br", host.name)} [label="{port}"];')
        lines.append("  }")
    for t in tunnels(lab):
        a, b = lab.host(t.a), lab.host(t.b)
        label = f"{lab.tunnel_type} {a.underlay_ip} - {b.underlay_ip}"
        lines.append(f'  {_id("br", a.name)} -- {_id("br", b.name)} [label="{label}", penwidth=2];')
    for host in lab.hosts:
        lines.append(
            f'  {CONTROLLER} -- {_id("br", host.name)} [style=dashed, label="OpenFlow {lab.openflow}"];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(lab: Lab) -> str:
    ctl = lab.controller
    lines = ["graph LR", f'  {CONTROLLER}(["controller: {ctl.kind} {ctl.target}{_placed(ctl)}"])']
    for host in lab.hosts:
        bridge = _id("br", host.name)
        lines.append(
            f'  subgraph {_id("host", host.name)}["{host.name} ({host.flavor}, {host.underlay_ip})"]'
        )
        lines.append(f'    {bridge}[["{lab.bridge}"]]')
        for vm in host.vms:
            lines.append(
                f'    {_id("vm", vm.name)}["{vm.name} {vm.ip}"] ---|{vm_port_name(host.flavor, vm)}| {bridge}'
            )
        lines.append("  end")
    for t in tunnels(lab):
        a, b = lab.host(t.a), lab.host(t.b)
        label = f"{lab.tunnel_type} {a.underlay_ip} - {b.underlay_ip}"
        lines.append(f"  {_id('br', a.name)} ===|{label}| {_id('br', b.name)}")
    for host in lab.hosts:
        lines.append(f"  {CONTROLLER} -.-|OpenFlow {lab.openflow}| {_id('br', host.name)}")
    return "\n".join(lines) + "\n"
