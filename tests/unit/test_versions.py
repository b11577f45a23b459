"""The version report for bug reports: `labctl --version [-v]` and the top of `labctl doctor`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from labctl import __version__, versions
from labctl.cli import cli

NAMES = ["labctl", "Python", "system", "Open vSwitch", "os-ken", "Ryu", "POX", "libvirt"]


def fake_run(outputs: dict[str, str]):
    """A runner answering each program (argv[0]'s last part, or `python` for a Ryu probe)."""
    seen = []

    def run(argv):
        seen.append(argv)
        key = "python" if argv[1:2] == ["-c"] else argv[0].rsplit("/", 1)[-1]
        if key not in outputs:
            raise subprocess.CalledProcessError(1, argv)
        return outputs[key]

    run.seen = seen
    return run


def test_plain_version_prints_one_line_and_starts_no_process(monkeypatch):
    def no_spawn(*args, **kwargs):
        raise AssertionError(f"plain --version started a process: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_spawn)
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"labctl, version {__version__}\n"


@pytest.mark.parametrize("argv", [["--version", "-v"], ["-v", "--version"], ["--verbose", "--version"]])
def test_version_with_v_prints_every_version_a_bug_report_needs(argv, monkeypatch):
    monkeypatch.setattr(versions, "run_quietly", fake_run({"ovs-vsctl": "ovs-vsctl (Open vSwitch) 3.1.0\n"}))
    monkeypatch.setattr(versions.shutil, "which", lambda program: f"/usr/bin/{program}")
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split("  ")[0].strip() for line in lines] == NAMES
    assert lines[0].split()[:2] == ["labctl", __version__]
    assert lines[1].split()[:2] == ["Python", ".".join(map(str, sys.version_info[:3]))]
    assert lines[3].split()[:3] == ["Open", "vSwitch", "3.1.0"]


def test_a_group_option_alone_is_still_a_missing_command():
    result = CliRunner().invoke(cli, ["-v"])
    assert result.exit_code == 2 and "Missing command." in result.output


def test_ovs_version_is_read_from_ovs_vsctl_or_says_it_is_missing(monkeypatch):
    run = fake_run({"ovs-vsctl": "ovs-vsctl (Open vSwitch) 3.1.0\nDB Schema 8.3.1\n"})
    monkeypatch.setattr(versions.shutil, "which", lambda program: "/usr/bin/ovs-vsctl")
    assert versions.ovs_version(run) == versions.Version("Open vSwitch", "3.1.0", "ovs-vsctl")
    assert run.seen == [["ovs-vsctl", "--version"]]
    monkeypatch.setattr(versions.shutil, "which", lambda program: None)
    missing = versions.ovs_version(run)
    assert missing.version == "not installed" and "install openvswitch-switch" in missing.detail


def test_ryu_version_comes_from_ryus_own_python(tmp_path, monkeypatch):
    monkeypatch.delenv("LABCTL_RYU_PYTHON", raising=False)
    found = versions.ryu_version(sys.executable, fake_run({"python": "4.34\n"}))
    assert found == versions.Version("Ryu", "4.34", sys.executable)
    assert versions.ryu_version(sys.executable, fake_run({})).version == "not installed"
    missing = versions.ryu_version(str(tmp_path / "no-venv"), fake_run({}))
    assert missing.version == "not installed" and "docs/controllers.md" in missing.detail


def test_pox_version_is_read_from_the_checkouts_core_py(tmp_path, monkeypatch):
    monkeypatch.delenv("LABCTL_POX_PATH", raising=False)
    assert versions.pox_version(None).version == "not configured"
    (tmp_path / "pox").mkdir()
    (tmp_path / "pox.py").write_text("")
    (tmp_path / "pox" / "core.py").write_text('class POXCore:\n  version = (0,7,0)\n  version_name = "gar"\n')
    assert versions.pox_version(str(tmp_path)) == versions.Version("POX", "0.7.0 (gar)", str(tmp_path))
    monkeypatch.setenv("LABCTL_POX_PATH", str(tmp_path / "elsewhere"))
    missing = versions.pox_version(None)
    assert missing.version == "not found" and "no pox.py" in missing.detail


def test_libvirt_numbers_are_dotted():
    assert versions.dotted(9_000_000) == "9.0.0"
    assert versions.dotted(12_008_001) == "12.8.1"


def test_the_system_is_named_from_os_release(tmp_path):
    release = tmp_path / "os-release"
    release.write_text('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    assert versions.system_version(release).version == "Debian GNU/Linux 12 (bookworm)"
    assert versions.system_version(tmp_path / "none").detail.startswith("kernel ")


def test_the_labs_controller_decides_where_ryu_and_pox_are_looked_for(tmp_path, monkeypatch):
    class Pox:
        kind, path = "pox", str(tmp_path / "no-pox")

    class TestController:
        kind, path = "ovs-testcontroller", None

    monkeypatch.setattr(versions.shutil, "which", lambda program: f"/usr/bin/{program}")
    run = fake_run(
        {"ovs-vsctl": "ovs-vsctl (Open vSwitch) 3.1.0\n", "ovs-testcontroller": "x (Open vSwitch) 3.1.0"}
    )
    pox = {v.name: v for v in versions.report(Pox(), run)}["POX"]
    assert pox.version == "not found" and "no-pox" in pox.detail
    names = [v.name for v in versions.report(TestController(), run)]
    assert names == [*NAMES[:-1], "ovs-testcontroller", "libvirt"]


def test_doctor_starts_with_the_versions(tmp_path, monkeypatch):
    inventory = tmp_path / "lab.yaml"
    inventory.write_text("name: demo\nhosts:\n  host1:\n    vms:\n      vm1: {ip: 172.16.0.1/24}\n")
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(versions, "run_quietly", fake_run({"ovs-vsctl": "ovs-vsctl (Open vSwitch) 3.1.0\n"}))
    as_json = CliRunner().invoke(cli, ["doctor", "--json", "-i", str(inventory)])
    assert [v["name"] for v in json.loads(as_json.output)["versions"]] == NAMES
    text = CliRunner().invoke(cli, ["doctor", "-i", str(inventory)]).output
    assert text.startswith(f"labctl        {__version__}  (")
    assert "\n\nsimulated, nothing to check on a real host: host1 (sim)\n" in text
