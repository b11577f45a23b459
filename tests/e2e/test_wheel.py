"""labctl as a `pip install` user gets it: a wheel built from this tree, installed into a
fresh venv, run from a directory that is not the repository.

How the venv is made, and why that way: `python -m venv` (no system site-packages) and
`pip install -c constraints.txt WHEEL`, which fetches labctl's dependencies from the same
index and pip cache the test's own pip uses, at the versions scripts/setup.sh pins. That is
what a user's `pip install` does, and it proves the constraints file installs; nothing of
the repository's .venv leaks in (no PYTHONPATH, cwd outside the clone). Measured on 2
cores with a warm pip cache: building the wheel ~2 s, the venv ~4 s, installing ~8 s.

The wheel is built from a copy of the tree, so the build leaves no build/ or *.egg-info
in the repository. The lab gets a name of its own (a copy of the bundled classic lab),
since the bundled lab's fixed name could meet another lab on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Lab, unique_name

pytestmark = pytest.mark.lab

NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "results"
)


def run(
    argv: list, *, cwd: Path, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, argv))} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with labctl installed from a wheel of this tree; returns its bin/."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=NOT_SOURCE)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", source], cwd=tmp)
    [wheel] = (tmp / "dist").glob("labctl-*.whl")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp)
    run([venv / "bin" / "pip", "install", "-q", "-c", REPO / "constraints.txt", wheel], cwd=tmp)
    return venv / "bin"


@pytest.fixture
def user(tmp_path):
    """Where the user stands: a directory outside the clone, an environment without
    PYTHONPATH, a state directory of the test's own."""
    home = tmp_path / "elsewhere"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LABCTL_TEMPLATES")}
    env["LABCTL_STATE_DIR"] = str(tmp_path / "state")
    return home, env


def test_the_wheel_carries_the_bundled_files_and_finds_them(installed, user):
    home, env = user
    site = installed.parent / "lib"
    report = run([installed / "labctl", "--version", "-v"], cwd=home, env=env).stdout
    assert report.startswith("labctl        0.1.0  (installed in ")
    assert f"  (installed in {site}" in report.splitlines()[0]  # the wheel's labctl, not the clone's
    probe = (
        "import json; from labctl import defaults as d; from labctl.drivers import guests; "
        "print(json.dumps({'default': str(d.DEFAULT_INVENTORY), 'templates': str(guests.templates_dir()), "
        "'files': sorted(str(p.relative_to(d.DATA)) for p in d.DATA.rglob('*.*'))}))"
    )
    found = json.loads(run([installed / "python", "-c", probe], cwd=home, env=env).stdout)
    assert found["default"].startswith(str(site)) and found["templates"].startswith(str(site))
    shipped = sorted(
        str(p.relative_to(REPO / "labctl" / "data")) for p in (REPO / "labctl" / "data").rglob("*.*")
    )
    assert found["files"] == shipped
    override = run([installed / "python", "-c", probe], cwd=home, env={**env, "LABCTL_TEMPLATES": str(home)})
    assert json.loads(override.stdout)["templates"] == str(home)
    # the default lab, and a bundled inventory by name, without the files in the current directory
    assert run([installed / "labctl", "status"], cwd=home, env=env).stdout.strip() == "lab blog-2host: not up"
    by_name = run([installed / "labctl", "status", "--sim", "-i", "blog-4host-mixed"], cwd=home, env=env)
    assert by_name.stdout.strip() == "lab blog-4host: not up"


def test_up_verify_down_and_a_bundled_playbook_from_outside_the_clone(installed, user):
    home, env = user
    name = unique_name("w")
    bundled = installed.parent / "lib"
    [classic] = bundled.glob("python3*/site-packages/labctl/data/inventories/blog-2host.yaml")
    inventory = home / "mylab.yaml"
    inventory.write_text(classic.read_text().replace("name: blog-2host", f"name: {name}"))
    labctl = installed / "labctl"
    lab = Lab(name, inventory, Path(env["LABCTL_STATE_DIR"]), env)  # to see what is left, not to run
    try:
        up = run([labctl, "up", "-q", "-i", inventory.name], cwd=home, env=env)
        assert up.stdout.startswith(f"lab {name} is up (")
        lab.remember_processes()
        assert lab.recorded_pids and (lab.state_dir / name).is_dir()
        verify = run([labctl, "verify", "-i", inventory.name], cwd=home, env=env)
        assert "2/2 pairs answered, no packet lost" in verify.stdout
        down = run([labctl, "down", "-q", "-i", inventory.name], cwd=home, env=env)
        assert down.stdout.startswith(f"lab {name} removed")
        lab.assert_gone()
        # a shipped playbook, named as the docs spell it, on the same lab
        smoke = run([labctl, "run", "playbooks/ci-smoke.yaml", "-i", inventory.name], cwd=home, env=env)
        assert "ci-smoke: 6 passed, 0 failed, 0 skipped" in smoke.stdout
    finally:
        lab.remember_processes()
        subprocess.run([labctl, "down", "-q", "--lab", name], cwd=home, env=env, capture_output=True)
    lab.assert_gone()
    assert sorted(p.name for p in home.iterdir()) == ["mylab.yaml"]  # labctl wrote nothing in the cwd
