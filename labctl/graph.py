"""The lab as a picture: Graphviz DOT or Mermaid, from the model alone (nothing runs).

Hosts are boxes holding their bridge and VMs (with addresses and port names);
tunnels join bridges, labelled with their type and endpoints; the controller
joins every bridge with a dashed OpenFlow edge.
"""

from __future__ import annotations

from labctl.drivers.naming import vm_port_name
from labctl.model import Lab
from labctl.plan import tunnels


def _id(*parts: str) -> str:
    return "_".join(p.replace("-", "_") for p in parts)


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
        f'  controller [label="controller\\n{ctl.kind} {apps}\\n{ctl.target}", shape=ellipse];',
    ]
    for host in lab.hosts:
        lines += [
            f"  subgraph cluster_{_id(host.name)} {{",
            f'    label="{host.name} ({host.flavor}, underlay {host.underlay_ip})";',
            f'    {_id(host.name, lab.bridge)} [label="{lab.bridge}", shape=component];',
        ]
        for vm in host.vms:
            lines.append(f'    {_id(vm.name)} [label="{vm.name}\\n{vm.ip}"];')
            port = vm_port_name(host.flavor, vm)
            lines.append(f'    {_id(vm.name)} -- {_id(host.name, lab.bridge)} [label="{port}"];')
        lines.append("  }")
    for t in tunnels(lab):
        a, b = lab.host(t.a), lab.host(t.b)
        label = f"{lab.tunnel_type} {a.underlay_ip} - {b.underlay_ip}"
        lines.append(
            f'  {_id(a.name, lab.bridge)} -- {_id(b.name, lab.bridge)} [label="{label}", penwidth=2];'
        )
    for host in lab.hosts:
        lines.append(
            f'  controller -- {_id(host.name, lab.bridge)} [style=dashed, label="OpenFlow {lab.openflow}"];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(lab: Lab) -> str:
    ctl = lab.controller
    lines = ["graph LR", f'  controller(["controller: {ctl.kind} {ctl.target}"])']
    for host in lab.hosts:
        bridge = _id(host.name, lab.bridge)
        lines.append(f'  subgraph {_id(host.name)}["{host.name} ({host.flavor}, {host.underlay_ip})"]')
        lines.append(f'    {bridge}[["{lab.bridge}"]]')
        for vm in host.vms:
            lines.append(
                f'    {_id(vm.name)}["{vm.name} {vm.ip}"] ---|{vm_port_name(host.flavor, vm)}| {bridge}'
            )
        lines.append("  end")
    for t in tunnels(lab):
        a, b = lab.host(t.a), lab.host(t.b)
        label = f"{lab.tunnel_type} {a.underlay_ip} - {b.underlay_ip}"
        lines.append(f"  {_id(a.name, lab.bridge)} ===|{label}| {_id(b.name, lab.bridge)}")
    for host in lab.hosts:
        lines.append(f"  controller -.-|OpenFlow {lab.openflow}| {_id(host.name, lab.bridge)}")
    return "\n".join(lines) + "\n"
