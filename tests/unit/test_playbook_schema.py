"""Playbooks are read like inventories: every step checked, errors with file:line:field."""

from __future__ import annotations

import pytest

from labctl.defaults import DEFAULT_INVENTORY
from labctl.errors import InventoryError
from labctl.inventory import load_inventory
from labctl.playbook import load_playbook
from tests.conftest import REPO


def write(tmp_path, text: str):
    path = tmp_path / "book.yaml"
    path.write_text(text)
    return path


def problems_of(path) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        load_playbook(path)
    return caught.value.problems


def test_bare_and_mapping_steps_load_with_their_lines(tmp_path):
    path = write(
        tmp_path,
        "name: demo\n"
        "steps:\n"
        "  - up\n"
        "  - ping: {name: vm1 reaches vm2, from: vm1, to: vm2}\n"
        "  - exec: {on: vm2, command: [ip, -4, addr], expect_output: 172.16.0.2/24}\n"
        "  - down\n",
    )
    loaded = load_playbook(path)
    assert [s.kind for s in loaded.steps] == ["up", "ping", "exec", "down"]
    assert [s.line for s in loaded.steps] == [3, 4, 5, 6]
    assert loaded.steps[1].label == "vm1 reaches vm2"
    exec_args = loaded.steps[2].args
    assert exec_args.where == "vm2"  # `on:` although YAML 1.1 reads it as true
    assert exec_args.command == ["ip", "-4", "addr"]


def test_every_bad_step_is_named_with_file_line_and_field(tmp_path):
    path = write(
        tmp_path,
        "name: bad\n"
        "steps:\n"
        "  - pingg: {from: vm1, to: vm2}\n"
        "  - ping: {from: vm1, expect: maybe}\n"
        "  - wait-for: {condition: ping, from: vm1}\n"
        "  - link: {vm: vm1, state: sideways}\n",
    )
    problems = problems_of(path)
    assert problems[0].startswith(f"{path}:3: steps.0: expected one of up, down")
    assert f"{path}:4: steps.1.ping.to: Field required" in problems
    assert any(p.startswith(f"{path}:4: steps.1.ping.expect:") for p in problems)
    assert f"{path}:5: steps.2.wait-for: wait-for ping needs from: and to:" in problems
    assert any(p.startswith(f"{path}:6: steps.3.link.state:") for p in problems)


def test_a_playbook_without_steps_or_with_unknown_keys_is_refused(tmp_path):
    problems = problems_of(write(tmp_path, "name: empty\nstep: [up]\n"))
    assert f"{tmp_path / 'book.yaml'}:1: steps: Field required" in problems
    assert any(":2: step: Extra inputs are not permitted" in p for p in problems)


def test_steps_naming_vms_the_lab_lacks_are_refused_before_anything_runs(tmp_path):
    path = write(tmp_path, "name: x\nsteps:\n  - up\n  - ping: {from: vm1, to: vm9}\n")
    lab = load_inventory(REPO / "inventories" / "blog-2host.yaml", simulate=True)
    with pytest.raises(InventoryError) as caught:
        load_playbook(path).check_names(lab)
    assert caught.value.problems[0].startswith(f"{path}:4: ping: no VM or host named 'vm9'")


@pytest.mark.parametrize("book", sorted((REPO / "playbooks").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_playbook_loads_and_names_only_what_its_lab_has(book):
    loaded = load_playbook(book)
    inventory = loaded.inventory_path() or DEFAULT_INVENTORY  # as `labctl run` does
    loaded.check_names(load_inventory(inventory, simulate=True))


@pytest.mark.parametrize("name", ["ci-smoke", "workshop-timeouts"])
def test_the_ci_and_workshop_playbooks_end_with_down_so_no_lab_is_left_behind(name):
    assert load_playbook(REPO / "playbooks" / f"{name}.yaml").steps[-1].kind == "down"
