"""`labctl graph` draws the lab from the inventory alone; Graphviz renders it."""

from __future__ import annotations

import html
import subprocess
import sys

from labctl.defaults import INVENTORIES
from labctl.graph import to_dot, to_mermaid
from labctl.inventory import load_inventory

MIXED = INVENTORIES / "blog-4host-mixed.yaml"


def test_dot_of_the_4host_lab_renders_and_names_every_host_tunnel_and_vm(tmp_path):
    svg = tmp_path / "lab.svg"
    result = subprocess.run(
        [sys.executable, "-m", "labctl", "graph", "-i", str(MIXED), "--sim", "-f", "svg", "-o", str(svg)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    text = html.unescape(svg.read_text())  # graphviz escapes "-" as &#45;
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    for name in ("kvm1", "xen1", "xs1", "kvm2", "vm1", "vm4", "172.16.0.3/24", "vnet0", "vif1.0"):
        assert name in text, name
    for peer in ("10.250.0.2", "10.250.0.3", "10.250.0.4"):
        assert f"gre 10.250.0.1 - {peer}" in text  # every tunnel with its endpoints


def test_mesh_and_mermaid_show_every_tunnel_and_the_controller():
    lab = load_inventory(MIXED, simulate=True)
    mesh = lab.__class__(**{**lab.__dict__, "topology": "mesh"})
    assert to_dot(mesh).count("penwidth=2") == 6
    mermaid = to_mermaid(lab)
    assert mermaid.startswith("graph LR") and mermaid.count("===|gre") == 3
    assert mermaid.count("-.-|OpenFlow 1.0|") == 4 and "os-ken tcp:10.250.0.254:6633" in mermaid


FOUR_HOSTS_ODD_NAMES = """\
name: odd-names
topology: mesh
hosts:
  node:
    vms:
      end: {ip: 10.9.0.1/24}
  edge:
    vms:
      graph: {ip: 10.9.0.2/24}
  h-3:
    vms:
      subgraph: {ip: 10.9.0.3/24}
  h4:
    vms:
      vm-4: {ip: 10.9.0.4/24}
"""


def test_names_that_are_dot_or_mermaid_keywords_still_render_with_dot(tmp_path):
    inventory = tmp_path / "odd.yaml"
    inventory.write_text(FOUR_HOSTS_ODD_NAMES)
    dot = subprocess.run(
        [sys.executable, "-m", "labctl", "graph", "-i", str(inventory), "--sim"],
        capture_output=True,
        text=True,
    )
    assert dot.returncode == 0, dot.stderr
    svg = subprocess.run(["dot", "-Tsvg"], input=dot.stdout, capture_output=True, text=True)
    assert svg.returncode == 0, svg.stderr
    text = html.unescape(svg.stdout)
    for label in ("end", "graph", "subgraph", "vm-4", "10.9.0.4/24", "h-3 (sim", "os-ken"):
        assert label in text, label
    assert text.count("gre 10.250.0.") == 6  # a full mesh of 4 hosts
    mermaid = to_mermaid(load_inventory(inventory, simulate=True))
    assert "vm_end[" in mermaid and "host_node[" in mermaid  # keywords never stand alone as ids
