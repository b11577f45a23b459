"""Shared fixtures. End-to-end tests build real labs: real namespaces, real OVS
daemons, a real controller. Each lab gets a unique name and its own state
directory, and the `lab` fixture always tears it down and proves nothing is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.find_pox import pox_for_tests

REPO = Path(__file__).resolve().parent.parent
_TWO_HOST = """\
name: {name}
openflow: "{openflow}"
controller:
<controller>
hosts:
  host1:
    vms:
      vm1: {{ip: 172.16.0.1/24}}
  host2:
    vms:
      vm2: {{ip: 172.16.0.2/24}}
"""


def two_hosts(controller: str = "  kind: os-ken") -> str:
    """The classic 2-host inventory with this controller section, {name} and {openflow}
    left for str.format (as make_lab fills them)."""
    return _TWO_HOST.replace("<controller>", controller)


TWO_HOST = two_hosts()


# --- n-host inventories -----------------------------------------------------------------


def n_hosts(
    n: int,
    *,
    name: str = "{name}",
    topology: str | None = None,
    controller: str | None = None,
    driver: str | None = None,
    address: str | None = None,
    vms_per_host: int = 1,
) -> str:
    """An inventory of hosts host1..hostN, each with `vms_per_host` VMs numbered across the
    lab: vm1 172.16.0.1/24, vm2 172.16.0.2/24, ...

    `name` is left as {name} for make_lab to fill in; the text has no other braces, so
    it is a make_lab template and parse_inventory input alike. `controller` is the body
    of the controller section, as for two_hosts ("  kind: pox\\n  path: ..."); `driver`
    and `address` (a pattern of the host number, "10.0.0.{i}") go on every host."""
    lines = [f"name: {name}"]
    if topology is not None:
        lines.append(f"topology: {topology}")
    if controller is not None:
        lines += ["controller:", controller.rstrip("\n")]
    lines.append("hosts:")
    for i in range(1, n + 1):
        lines.append(f"  host{i}:")
        if driver is not None:
            lines.append(f"    driver: {driver}")
        if address is not None:
            lines.append(f"    address: {address.format(i=i)}")
        if vms_per_host:
            lines.append("    vms:")
        for k in range((i - 1) * vms_per_host + 1, i * vms_per_host + 1):
            lines += [f"      vm{k}:", f"        ip: 172.16.0.{k}/24"]
    return "\n".join(lines) + "\n"


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("the lab tests need root; CI runs them as root")
    skip = pytest.mark.skip(reason="builds namespaces and OVS daemons: needs root")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:7]}"


def labctl(*args: str, env: dict, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "labctl", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"labctl {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def netns_with_prefix(prefix: str) -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {n["name"] for n in json.loads(out or "[]") if n["name"].startswith(prefix)}


def processes_in(netns_inodes: set[int]) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in netns_inodes:
                    with open(f"/proc/{entry}/stat") as fh:
                        if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                            pids.append(int(entry))
            except OSError:
                pass
    return pids


@dataclass
class Lab:
    """A lab inventory written for one test, with helpers to drive and inspect it."""

    name: str
    inventory: Path
    state_dir: Path
    env: dict
    recorded_pids: list[int] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"lc-{self.name}-"

    def netns(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        args = list(args)
        at = args.index("--") if "--" in args else len(args)  # options go before a `--` command
        args[at:at] = ["-i", str(self.inventory)]
        return labctl(*args, env=self.env, check=check, timeout=timeout)

    def on_host(self, host: str, *argv: str) -> str:
        """Run a command inside a simulated host, with its own OVS."""
        env = {**self.env, "OVS_RUNDIR": str(self.state_dir / self.name / "hosts" / host)}
        return subprocess.run(
            ["ip", "netns", "exec", self.netns(host), *argv],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout

    def in_vm(self, vm: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ip", "netns", "exec", self.netns(vm), *argv], capture_output=True, text=True, check=check
        )

    def status(self) -> dict:
        return json.loads(self.run("status", "--json").stdout)

    def journal(self) -> list[dict]:
        path = self.state_dir / self.name / "journal.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def remember_processes(self) -> None:
        """Note every process of the lab, to prove later that down stopped them."""
        inodes = set()
        for ns in netns_with_prefix(self.prefix):
            inodes.add(os.stat(f"/run/netns/{ns}").st_ino)
        self.recorded_pids = processes_in(inodes)

    def assert_gone(self) -> None:
        left = netns_with_prefix(self.prefix)
        assert not left, f"namespaces left behind: {left}"
        alive = [pid for pid in self.recorded_pids if _alive(pid)]
        assert not alive, f"processes left behind: {alive}"
        assert not (self.state_dir / self.name).exists(), "state directory left behind"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def lab_env(tmp_path) -> dict:
    state = tmp_path / "state"
    return {**os.environ, "LABCTL_STATE_DIR": str(state), "PYTHONPATH": str(REPO)}


@pytest.fixture
def make_lab(tmp_path, lab_env):
    """make_lab(text=None, openflow="1.0") -> Lab; every lab made is torn down afterwards."""
    made: list[Lab] = []

    def make(text: str | None = None, openflow: str = "1.0", name: str | None = None) -> Lab:
        name = name or unique_name()
        path = tmp_path / f"{name}.yaml"
        path.write_text((text or TWO_HOST).format(name=name, openflow=openflow))
        lab = Lab(name, path, Path(lab_env["LABCTL_STATE_DIR"]), lab_env)
        made.append(lab)
        return lab

    yield make
    for lab in made:
        lab.remember_processes()
        labctl("down", "--lab", lab.name, env=lab.env, check=False)
        lab.assert_gone()


@pytest.fixture(scope="session")
def pox_checkout(tmp_path_factory) -> Path:
    """A POX checkout for the POX tests, from the first place tests/find_pox.py lists that
    has one (a tarball is unpacked once per run); without POX the test skips or fails there."""
    source = pox_for_tests(REPO)
    if not source.packed:
        return source.path
    target = tmp_path_factory.mktemp("pox")
    with tarfile.open(source.path) as archive:
        archive.extractall(target, filter="data")
    return target / "pox"


@pytest.fixture
def two_host_lab(make_lab) -> Lab:
    """The classic two-host lab, up."""
    lab = make_lab()
    lab.run("up")
    return lab
