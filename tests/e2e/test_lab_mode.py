"""A lab remembers how it was made: after `up --sim`, every command on it works without
--sim, and `down -i FILE` removes it even when the file no longer validates."""

from __future__ import annotations

import json
import re

import pytest

from labctl.defaults import INVENTORIES


def mixed_inventory() -> str:
    """The mixed KVM/Xen/XenServer lab without its controller address, so it is valid only
    simulated (a command that forgot the lab's mode fails validation instead of reaching
    for the real hosts' addresses), as a make_lab template with a unique name."""
    text = (INVENTORIES / "blog-4host-mixed.yaml").read_text().replace("name: blog-4host", "name: {name}")
    text = re.sub(r"\n  address: .*", "", text, count=1)
    return text.replace("{", "{{").replace("}", "}}").replace("{{name}}", "{name}")


def one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = proc.stderr.splitlines()
    return line


@pytest.mark.lab
def test_a_lab_up_with_sim_is_worked_on_and_removed_without_it(make_lab):
    lab = make_lab(mixed_inventory())
    assert "real hosts need" in one_error_line(lab.run("up", check=False))  # not up yet: as asked
    lab.run("up", "--sim")

    status = lab.status()  # no --sim from here on
    assert status["up"] and {h["flavor"] for h in status["hosts"]} == {"kvm", "xen", "xenserver"}
    report = json.loads(lab.run("verify", "--json").stdout)
    assert report["ok"] and len(report["pairs"]) == 12
    assert "vnet0" in lab.run("ports", "kvm1").stdout
    assert "nothing to change" in lab.run("up").stdout  # resumed as it was made, not on real hosts
    assert "vm4" in lab.run("graph").stdout

    # lab.json lost its mind: the journal's namespaces still say the lab is simulated
    info = lab.state_dir / lab.name / "lab.json"
    info.write_bytes(b"\x00{garbled")
    status = lab.status()
    assert all(h["connected"] for h in status["hosts"])
    assert status["drift"] == [f"lab.json is garbled: not what up wrote ({info})"]  # up writes it again

    # the inventory no longer validates in any mode, but it still names the lab
    lab.inventory.write_text(lab.inventory.read_text().replace('openflow: "1.0"', "openflow: 9.9"))
    assert "openflow" in one_error_line(lab.run("status", check=False))
    lab.remember_processes()
    down = lab.run("down")
    assert f"lab {lab.name} removed" in down.stdout
    lab.assert_gone()


def test_sim_on_a_lab_up_on_real_hosts_is_refused_in_one_line(make_lab):
    """A lab up on real hosts cannot be built here; its state is written as `up` writes it
    (lab.json, then the journal), with nothing in the journal that needs undoing."""
    lab = make_lab(
        "name: {name}\ncontroller: {{address: 10.0.0.1}}\n"
        "hosts:\n  box1: {{driver: ovs, address: root@box1, vms: {{vm1: {{ip: 172.16.0.1/24}}}}}}\n"
    )
    state = lab.state_dir / lab.name
    state.mkdir(parents=True)
    (state / "lab.json").write_text(json.dumps({"lab": lab.name, "simulated": False}))
    (state / "journal.jsonl").write_text(json.dumps({"kind": "note"}) + "\n")

    for command in ("status", "graph", "verify", "up"):
        line = one_error_line(lab.run(command, "--sim", check=False))
        assert line == (
            f"labctl: error: lab {lab.name} is up on real hosts, not simulated: run it without --sim, "
            f"or take the lab down first (labctl down -i {lab.inventory})"
        )
    assert f"{lab.name}" in lab.run("graph").stdout  # without --sim: the real lab, read only
    assert f"lab {lab.name} removed" in lab.run("down", "--sim").stdout  # down reads only the name
    assert not state.exists()
