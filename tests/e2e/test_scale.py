"""Scale, correctness only (bench/bench.py times it): every documented lab size verifies,
and so does a lab whose controller gets only a fraction of a core.

Big labs need the kernel limits every namespace shares raised (scripts/setup.sh does);
without them pairs fail at random with nothing to say why, so the tests check them first.
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from labctl.drivers.simlimits import remedy, shortfalls
from labctl.inventory import parse_inventory
from tests.conftest import n_hosts

pytestmark = pytest.mark.lab


def up_and_verify(lab, confine=None) -> None:
    short = shortfalls(parse_inventory(lab.inventory.read_text().format(name=lab.name)))
    assert not short, f"{remedy(short)}: {'; '.join(map(str, short))}"
    lab.run("up", "-q", timeout=300)
    with confine(lab.status()["controller"]["pid"]) if confine else _nothing():
        result = lab.run("verify", "--json", check=False, timeout=900)
    report = json.loads(result.stdout)
    pairs = report["pairs"]
    vms = len(parse_inventory(lab.inventory.read_text().format(name=lab.name)).vms)
    failed = [
        f"{p['src']}->{p['dst']} {p['failed']} {p['received']}/{p['sent']}" for p in pairs if not p["ok"]
    ]
    assert len(pairs) == vms * (vms - 1)
    assert not failed, f"{len(failed)} pairs failed, e.g. {failed[:5]}; {result.stderr}"
    assert report["ok"] and result.returncode == 0


@contextmanager
def _nothing():
    yield


@pytest.mark.parametrize("hosts", [8, 16, 32, 64])
def test_every_documented_lab_size_verifies_every_ordered_pair(make_lab, hosts):
    """64 hosts is the inventory's largest: 4032 pairs over one hub and one controller."""
    up_and_verify(make_lab(n_hosts(hosts, topology="star")))


def test_sixteen_hosts_of_four_vms_each_verify_every_pair(make_lab):
    up_and_verify(make_lab(n_hosts(16, vms_per_host=4)))


# --- a slower controller ---


def cpu_controller() -> tuple[Path, str] | None:
    """A cgroup hierarchy with the cpu controller this process may use: (its root, "v2"
    with cpu.max, or "v1" with cpu.cfs_quota_us); None when there is none."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mount, kind = Path(fields[4]), fields[fields.index("-") + 1]
        if not os.access(mount, os.W_OK):
            continue
        if kind == "cgroup2" and "cpu" in (mount / "cgroup.subtree_control").read_text().split():
            return mount, "v2"
        if kind == "cgroup" and "cpu" in fields[-1].split(",") and (mount / "cpu.cfs_quota_us").exists():
            return mount, "v1"
    return None


def cgroup_of(pid: int, version: str) -> str:
    """The cgroup `pid` is in, in the hierarchy of the cpu controller."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (version == "v2" and controllers == "") or "cpu" in controllers.split(","):
            return path.lstrip("/")
    return ""


@contextmanager
def confined(pid: int, share: float, root: Path, version: str):
    """Run process `pid` on `share` of one core (a cgroup of its own), then put it back."""
    home = root / cgroup_of(pid, version)
    group = root / f"labctl-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    period = 100_000
    try:
        if version == "v2":
            (group / "cpu.max").write_text(f"{int(share * period)} {period}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(period))
            (group / "cpu.cfs_quota_us").write_text(str(int(share * period)))
        (group / "cgroup.procs").write_text(str(pid))
        yield
    finally:
        if Path(f"/proc/{pid}").exists():  # back where it was, so the group can go
            try:
                (home / "cgroup.procs").write_text(str(pid))
            except OSError:
                pass  # it exited meanwhile
        group.rmdir()


def test_a_controller_on_a_twentieth_of_a_core_still_verifies_every_pair(make_lab):
    """The set-up pacing follows the controller: confined to 5% of one core, it answers
    packet-ins about twenty times slower, and every pair still verifies (more slowly)."""
    found = cpu_controller()
    if found is None:
        pytest.skip("no cgroup cpu controller (v2 cpu.max or v1 cpu.cfs_quota_us) this test may use")
    up_and_verify(make_lab(n_hosts(16, topology="star")), confine=lambda pid: confined(pid, 0.05, *found))


# --- announcements: what makes a big lab's set-ups unicast ---


def test_each_vm_announces_itself_to_every_other_which_learns_its_address(make_lab):
    """Before the set-ups, each VM's gratuitous ARP crosses the controller's floods to every
    other VM (announce.py), which puts the VM's MAC in its ARP table; afterwards each VM
    takes unsolicited ARP only as it did before."""
    from labctl.verify import announce_all

    lab = make_lab(n_hosts(5, topology="star"))
    lab.run("up", "-q")
    vms = parse_inventory(lab.inventory.read_text().format(name=lab.name)).vms
    before = {
        vm.name: lab.in_vm(vm.name, "sysctl", "-n", "net.ipv4.conf.all.arp_accept").stdout for vm in vms
    }
    done = announce_all(
        {vm.name: f"/run/netns/{lab.netns(vm.name)}" for vm in vms}, {vm.name: str(vm.ip.ip) for vm in vms}
    )
    assert done is not None
    assert sorted(done.heard_by_all) == sorted(vm.name for vm in vms) and not done.not_heard
    for vm in vms:
        known = lab.in_vm(vm.name, "ip", "neigh", "show", "dev", "eth0").stdout
        for other in vms:
            if other is not vm:
                assert f"{other.ip.ip} lladdr {other.mac}" in known, f"{vm.name} does not know {other.name}"
        after = lab.in_vm(vm.name, "sysctl", "-n", "net.ipv4.conf.all.arp_accept").stdout
        assert after == before[vm.name]
    lab.run("verify")  # and the pairs, set up by unicast now, all answer
