"""A lab remembers how it was made: the mode recorded in its state decides how its
inventory is read, `down` needs only the lab's name, and what a command needs from
this machine is checked before it does anything. No root: states are fakes or files
in a temporary directory."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from labctl import clikit
from labctl.clikit import Needs, check_privileges, lab_in_its_mode, load_lab, state_to_remove
from labctl.defaults import INVENTORIES
from labctl.errors import EXIT_BAD_INPUT, EXIT_RUNTIME, InputError, InventoryError, PrivilegeError
from labctl.inventory import InventoryDocument, read_inventory
from labctl.state import LabState

# The bundled mixed lab of real hosts without its controller.address: valid only simulated.
MIXED_TEXT = re.sub(r"\n  address: .*", "", (INVENTORIES / "blog-4host-mixed.yaml").read_text(), count=1)


@pytest.fixture
def mixed(tmp_path) -> Path:
    path = tmp_path / "blog-4host-mixed.yaml"
    path.write_text(MIXED_TEXT)
    return path


class RecordedState:
    """A lab state that says only how the lab was made (None: not up, or not known)."""

    def __init__(self, simulated: bool | None):
        self.simulated = simulated

    def recorded_simulated(self) -> bool | None:
        return self.simulated


def real_lab_text(extra: str = "") -> str:
    return (
        "name: real\ncontroller: {address: 10.0.0.1}\n"
        + extra
        + "hosts:\n  box1: {driver: ovs, address: root@box1, vms: {vm1: {ip: 172.16.0.1/24}}}\n"
    )


def test_a_lab_that_is_not_up_is_read_as_asked(mixed):
    document = read_inventory(mixed)
    with pytest.raises(InventoryError, match="controller.address: real hosts need"):
        lab_in_its_mode(document, False, RecordedState(None))
    assert lab_in_its_mode(document, True, RecordedState(None)).simulated


def test_a_lab_up_simulated_stays_simulated_without_sim(mixed):
    lab = lab_in_its_mode(read_inventory(mixed), False, RecordedState(True))
    assert lab.simulated and {h.flavor for h in lab.hosts} == {"kvm", "xen", "xenserver"}


def test_a_lab_up_on_real_hosts_is_read_as_real():
    lab = lab_in_its_mode(InventoryDocument(real_lab_text(), "real.yaml"), False, RecordedState(False))
    assert not lab.simulated and lab.host("box1").driver == "ovs"


def test_sim_on_a_lab_up_on_real_hosts_is_one_line_saying_what_to_do():
    with pytest.raises(InputError) as info:
        lab_in_its_mode(InventoryDocument(real_lab_text(), "real.yaml"), True, RecordedState(False))
    assert str(info.value) == (
        "lab real is up on real hosts, not simulated: run it without --sim, "
        "or take the lab down first (labctl down -i real.yaml)"
    )
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_simulate_true_added_to_a_lab_up_on_real_hosts_is_refused_too():
    document = InventoryDocument(real_lab_text("simulate: true\n"), "real.yaml")
    with pytest.raises(InputError, match="not simulated: take simulate: true out of real.yaml, or take"):
        lab_in_its_mode(document, False, RecordedState(False))


def test_an_unreadable_name_leaves_the_mode_to_the_command_line():
    document = InventoryDocument("name: Not A Name\nhosts: {host1: {}}\n", "lab.yaml")
    with pytest.raises(InventoryError, match="lab.yaml:1: name: expected a lab name"):
        document.lab_name()
    with pytest.raises(InventoryError, match="lab.yaml:1: name: expected a lab name"):
        lab_in_its_mode(document, True, None)


@pytest.fixture
def state_root(tmp_path, monkeypatch):
    root = tmp_path / "state"
    monkeypatch.setenv("LABCTL_STATE_DIR", str(root))
    return root


def lab_that_is_up(root, name: str, info: bytes | None, journal: list[dict]) -> LabState:
    state = LabState(name)
    state.dir.mkdir(parents=True)
    state.journal_path.write_text("".join(json.dumps(r) + "\n" for r in journal))
    if info is not None:
        state.info_path.write_bytes(info)
    return state


def test_load_lab_reads_the_mode_from_lab_json(state_root, mixed):
    lab_that_is_up(state_root, "blog-4host", json.dumps({"simulated": True}).encode(), [{"kind": "x"}])
    assert load_lab(mixed, False).simulated


@pytest.mark.parametrize(
    "info",
    [None, b"{not json", b"\xff\xfe\x00garbage", b"[1, 2]", b'{"simulated": "yes"}'],
    ids=["missing", "cut-short", "binary", "a-list", "not-a-bool"],
)
def test_a_lost_or_garbled_lab_json_falls_back_to_the_journal_then_the_command_line(state_root, info, mixed):
    state = lab_that_is_up(state_root, "blog-4host", info, [{"kind": "process", "pid": 1, "start": 1}])
    assert state.recorded_simulated() is None
    with pytest.raises(InventoryError, match="real hosts need"):
        load_lab(mixed, False)
    assert load_lab(mixed, True).simulated
    state.record("netns", name="lc-blog-4host-underlay")  # only simulated labs make namespaces here
    assert state.recorded_simulated() is True
    assert load_lab(mixed, False).simulated


def test_a_lab_that_is_not_up_has_no_recorded_mode_even_with_a_lab_json(state_root, mixed):
    state = LabState("blog-4host")
    state.write_info({"simulated": False})  # an `up` that failed before it made anything
    assert state.recorded_simulated() is None
    assert load_lab(mixed, True).simulated


def test_down_needs_only_the_name_even_when_nothing_else_validates(state_root, tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("name: gone\nopenflow: 9.9\nhosts: {Bad Host: {driver: vmware}}\n")
    for simulate in (False, True):
        with pytest.raises(InventoryError):
            load_lab(path, simulate)
    assert state_to_remove(path, None).lab_name == "gone"


@pytest.mark.parametrize(
    "text, why",
    [
        ("hosts: {}\n", "lab.yaml:1: name: required field is missing"),
        (
            "name: [a list]\nhosts: {}\n",
            "lab.yaml:1: name: expected a lab name: 1-20 characters: lower-case letters, digits or '-', "
            "starting with a letter, found ['a list']",
        ),
        ("name: demo\nhosts: *nope\n", "lab.yaml:2: YAML syntax error: found undefined alias 'nope'"),
    ],
)
def test_down_without_a_readable_name_points_at_down_lab(state_root, tmp_path, text, why):
    lab_that_is_up(state_root, "left-behind", None, [{"kind": "x"}])
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        state_to_remove(path, None)
    assert str(info.value) == (
        f"{path}:{why.split(':', 1)[1]}; the lab's name cannot be read from it, so give it: "
        f"labctl down --lab NAME (labs with state in {state_root}: left-behind)"
    )


@pytest.mark.parametrize("name", ["..", "../..", "a/b", "", "UPPER", "x" * 21])
def test_a_lab_name_never_names_a_directory_outside_the_state_root(state_root, name):
    with pytest.raises(InputError, match="is not a lab name"):
        state_to_remove(None, name)


def test_reading_files_needs_nothing(state_root, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    (state_root.parent / "state").write_text("a file where the state root should be")
    check_privileges(Needs.FILES, LabState("demo"), simulated=True)


@pytest.mark.parametrize("needs", [Needs.HOSTS, Needs.CHANGES])
def test_a_simulated_lab_needs_root_to_be_entered_or_changed(state_root, monkeypatch, needs):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PrivilegeError) as info:
        check_privileges(needs, LabState("demo"), simulated=True)
    assert str(info.value).startswith("labctl needs root: a simulated lab is network namespaces")
    assert info.value.exit_code == EXIT_RUNTIME
    check_privileges(needs, LabState("demo"), simulated=False)  # real hosts: their own credentials
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    check_privileges(needs, LabState("demo"), simulated=True)


def test_changing_a_lab_needs_a_state_directory_it_can_write(state_root, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    state_root.parent.mkdir(exist_ok=True)
    state_root.write_text("a file where the state root should be")
    with pytest.raises(PrivilegeError) as info:
        check_privileges(Needs.CHANGES, LabState("demo"), simulated=True)
    assert str(info.value) == (
        f"labctl cannot write the lab's state in {state_root}: run it as root, "
        "or set LABCTL_STATE_DIR to a directory you may write"
    )
    check_privileges(Needs.HOSTS, LabState("demo"), simulated=True)  # reads state, writes none


def test_a_missing_state_root_is_fine_where_it_can_be_made(state_root):
    assert not state_root.exists()
    assert LabState("demo").unwritable() is None


def test_every_lab_command_states_what_it_needs():
    """lab_runner has no default: a new command must say what it needs."""
    import inspect

    needs = inspect.signature(clikit.lab_runner).parameters["needs"]
    assert needs.kind is inspect.Parameter.KEYWORD_ONLY and needs.default is inspect.Parameter.empty
