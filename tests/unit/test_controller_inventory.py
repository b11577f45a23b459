"""The controller part of an inventory: Ryu's apps per OpenFlow version, where Ryu's
Python is found, a controller placed on one of the lab's hosts, and how many switches
a kind serves."""

from __future__ import annotations

import ast
import ipaddress
import sys

import pytest
from click.testing import CliRunner

from labctl.cli import cli
from labctl.controllers import make_controller
from labctl.controllers import ryu as ryu_kind
from labctl.errors import InputError, InventoryError
from labctl.graph import to_dot, to_mermaid
from labctl.inventory import MAX_HOSTS, parse_inventory
from tests.conftest import n_hosts, two_hosts


def lab(controller: str, openflow: str = "1.0", **kwargs):
    text = two_hosts(controller).format(name="demo", openflow=openflow)
    return parse_inventory(text, "lab.yaml", **kwargs)


def problems(controller: str, openflow: str = "1.0", **kwargs) -> list[str]:
    with pytest.raises(InventoryError) as info:
        lab(controller, openflow, **kwargs)
    return info.value.problems


# --- Ryu ---


@pytest.mark.parametrize(
    ("openflow", "app"), [("1.0", "ryu.app.simple_switch"), ("1.3", "ryu.app.simple_switch_13")]
)
def test_ryu_runs_the_learning_switch_of_the_labs_openflow_version(openflow, app):
    assert lab("  kind: ryu", openflow).controller.apps == (app,)


def test_a_ryu_switch_app_of_the_other_openflow_version_is_refused():
    [problem] = problems("  kind: ryu\n  apps: [ryu.app.simple_switch]", "1.3")
    assert problem.startswith("lab.yaml:5: controller.apps.0: ryu.app.simple_switch speaks OpenFlow 1.0")
    assert "use ryu.app.simple_switch_13" in problem


def test_ryu_apps_take_no_pox_options():
    [problem] = problems("  kind: ryu\n  apps: [ryu.app.simple_switch, --no-flood]")
    assert "controller.apps.1: app options like --no-flood are for POX only" in problem


def test_ryu_python_comes_from_path_then_env_then_the_clones_venv(tmp_path, monkeypatch):
    venv = tmp_path / ".venv-ryu"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    monkeypatch.setenv(ryu_kind.RYU_PYTHON_ENV, sys.executable)
    assert ryu_kind.ryu_python(str(venv)) == venv / "bin" / "python"  # a venv: its python, unresolved
    assert ryu_kind.ryu_python(None) == ryu_kind.Path(sys.executable)
    monkeypatch.delenv(ryu_kind.RYU_PYTHON_ENV)
    monkeypatch.setattr(ryu_kind, "checkout", lambda: tmp_path)  # labctl runs from a clone at tmp_path
    assert ryu_kind.ryu_python(None) == venv / "bin" / "python"


def test_no_ryu_python_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.delenv(ryu_kind.RYU_PYTHON_ENV, raising=False)
    monkeypatch.setattr(ryu_kind, "checkout", lambda: tmp_path)  # a clone without .venv-ryu
    with pytest.raises(InputError, match=r"scripts/setup.sh --ryu"):
        ryu_kind.ryu_python(None)
    with pytest.raises(InputError, match=r"no Python at .*nowhere/bin/python \(controller.path\)"):
        (tmp_path / "nowhere").mkdir()
        ryu_kind.ryu_python(str(tmp_path / "nowhere"))


def test_without_a_clone_no_ryu_python_points_at_the_docs_not_at_setup_sh(monkeypatch):
    monkeypatch.delenv(ryu_kind.RYU_PYTHON_ENV, raising=False)
    monkeypatch.setattr(ryu_kind, "checkout", lambda: None)  # labctl installed from a wheel
    with pytest.raises(
        InputError, match=r"set controller.path .* docs/controllers.md \(section Ryu\)"
    ) as err:
        ryu_kind.ryu_python(None)
    assert "setup.sh" not in str(err.value)


def test_ryu_runs_the_shipped_runner_as_a_file_with_its_listen_options(tmp_path):
    spec = lab(f"  kind: ryu\n  path: {sys.executable}\n  port: 6653")
    argv = make_controller(spec, tmp_path / "controller.log").argv()
    assert argv[:2] == [sys.executable, str(ryu_kind.RUNNER)] and ryu_kind.RUNNER.is_file()
    assert argv[2:] == [
        "--ofp-listen-host",
        "10.250.0.254",
        "--ofp-tcp-listen-port",
        "6653",
        "ryu.app.simple_switch",
    ]


def test_the_ryu_runner_imports_nothing_from_labctl():
    tree = ast.parse(ryu_kind.RUNNER.read_text())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not [m for m in modules if m.split(".")[0] == "labctl"]  # it runs under Ryu's own Python


# --- placement ---


def test_a_controller_on_a_lab_host_listens_on_that_hosts_underlay_address():
    spec = lab("  kind: os-ken\n  host: host2")
    assert spec.controller.host == "host2"
    assert spec.controller.address == ipaddress.IPv4Address("10.250.0.2")
    assert spec.controller.target == "tcp:10.250.0.2:6633"
    assert lab("  kind: os-ken").controller.host is None  # default: its own namespace
    assert "tcp:10.250.0.2:6633 on host2" in to_dot(spec) and "6633 on host2" in to_mermaid(spec)


def test_the_controller_host_must_be_a_host_of_the_lab():
    [problem] = problems("  kind: os-ken\n  host: host9")
    assert problem.startswith("lab.yaml:5: controller.host: expected one of the hosts (host1, host2)")


def test_a_remote_controller_cannot_be_placed():
    found = problems("  kind: remote\n  address: 10.250.0.200\n  host: host1")
    assert any("controller.host: a remote controller runs wherever someone else runs it" in p for p in found)


def test_a_placed_controller_takes_its_hosts_address_not_its_own():
    [problem] = problems("  kind: os-ken\n  host: host1\n  address: 10.250.0.9")
    assert "controller.address: a controller on host1 listens on host1's underlay address" in problem


def test_a_controller_on_a_real_host_is_refused_clearly():
    text = two_hosts("  kind: os-ken\n  host: host1\n  address: 10.0.0.9").format(name="demo", openflow="1.0")
    text = text.replace("  host1:\n", "  host1:\n    driver: ovs\n    address: 10.0.0.1\n")
    text = text.replace("  host2:\n", "  host2:\n    driver: ovs\n    address: 10.0.0.2\n")
    with pytest.raises(InventoryError) as info:
        parse_inventory(text, "lab.yaml")
    assert any(
        "controller.host: a controller on a real host is not supported yet" in p for p in info.value.problems
    )


# --- how many switches a kind serves ---


def test_ovs_testcontroller_serves_sixteen_switches_and_a_bigger_lab_is_refused_naming_why():
    controller = "  kind: ovs-testcontroller"
    assert len(parse_inventory(n_hosts(16, name="demo", controller=controller)).hosts) == 16
    with pytest.raises(InventoryError) as info:
        parse_inventory(n_hosts(17, name="demo", controller=controller), "lab.yaml")
    [problem] = info.value.problems
    assert problem.startswith("lab.yaml:3: controller.kind: ovs-testcontroller serves at most 16 switches")
    assert "MAX_SWITCHES in Open vSwitch's utilities/ovs-testcontroller.c" in problem
    assert "this lab has 17 hosts" in problem


def test_kinds_without_a_fixed_limit_take_the_largest_lab():
    for controller in ("  kind: os-ken", "  kind: remote\n  address: 10.250.0.200"):
        assert len(parse_inventory(n_hosts(MAX_HOSTS, name="demo", controller=controller)).hosts) == MAX_HOSTS


def test_up_refuses_a_lab_its_controller_cannot_serve_before_anything_is_made(tmp_path, monkeypatch):
    inventory = tmp_path / "big.yaml"
    inventory.write_text(n_hosts(32, name="big", controller="  kind: ovs-testcontroller"))
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(cli, ["up", "-i", str(inventory)])
    assert result.exit_code == 2
    assert "controller.kind: ovs-testcontroller serves at most 16 switches" in result.output
    assert not (tmp_path / "state").exists()
