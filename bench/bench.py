#!/usr/bin/env python3
"""Time `labctl up`, `verify` and `down` for simulated labs, against a floor and targets.

The floor is measured in the same run: only what any simulated lab must do at least --
create its host namespaces and start each host's ovsdb-server and ovs-vswitchd -- then
remove them again. Ratios (labctl / floor) make the numbers comparable across machines;
the targets (seconds on a 2-core machine) are printed next to them. Memory per host is
the resident size of each host's OVS daemons, read from /proc while the lab is up.

Scenarios (default: all of them, in this order):

    2 8 16 32 64     a star of that many hosts, one VM each
    mesh64           64 hosts, every pair of hosts tunnelled (RSTP)
    16x4             16 hosts of 4 VMs each
    room16           a workshop room: 16 two-host labs side by side, brought up in
                     parallel, then each verified (in parallel), then all taken down

    sudo .venv/bin/python bench/bench.py              # everything (many minutes)
    sudo .venv/bin/python bench/bench.py 32 room16    # just these
    sudo .venv/bin/python bench/bench.py 4 --real-guests
                          # and the mixed 4-host lab with real QEMU guests on its KVM hosts
                          # (inventories/blog-4host-nested.yaml; needs scripts/setup.sh --libvirt)

The real-guest row adds `boot`: from the end of `up` until every real guest answers a
ping from a namespace VM (a guest boots after `up` has started it). Its verify runs every
ordered pair, those from a real guest from inside it (over the guest's way in); `pairs`
counts the pairs verify ran, a pair it reports as not verifiable is left out.

Runs as root. Its labs are named PREFIX<scenario>-<pid> (--prefix, default "bench") and
its state goes to $LABCTL_STATE_DIR when set, else to a directory of its own; everything
it makes it removes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from labctl.drivers import simlimits  # noqa: E402
from labctl.drivers.sim import start_ovs_daemons  # noqa: E402 - the same start-up labctl uses
from labctl.transport.netns import NetnsTransport  # noqa: E402

# Shared by every namespace: a 32-host lab needs them raised (scripts/setup.sh does).
LIMITS = (simlimits.ARP_TABLE, simlimits.SOCKET_BUFFER)
DEFAULT = ["2", "8", "16", "32", "64", "mesh64", "16x4", "room16"]
# Seconds on 2 cores (issue: every documented lab size verifies, with set-up pacing that
# adapts to the controller): scenario -> {step: target}.
TARGETS = {"64": {"up": 8.0, "verify": 25.0, "down": 3.0}, "32": {"verify": 7.0}}


@dataclass(frozen=True)
class Scenario:
    name: str
    hosts: int  # per lab
    vms_per_host: int = 1
    topology: str = "star"
    labs: int = 1  # a room: this many labs side by side

    @property
    def vms(self) -> int:
        return self.hosts * self.vms_per_host

    @property
    def pairs(self) -> int:
        return self.labs * self.vms * (self.vms - 1)

    @property
    def all_hosts(self) -> int:
        return self.labs * self.hosts


def scenario(text: str) -> Scenario:
    if text.isdigit() and int(text) >= 1:
        return Scenario(text, int(text))
    if m := re.fullmatch(r"mesh(\d+)", text):
        return Scenario(text, int(m.group(1)), topology="mesh")
    if m := re.fullmatch(r"(\d+)x(\d+)", text):
        return Scenario(text, int(m.group(1)), vms_per_host=int(m.group(2)))
    if m := re.fullmatch(r"room(\d+)", text):
        return Scenario(text, 2, labs=int(m.group(1)))
    raise argparse.ArgumentTypeError(
        f"expected a number of hosts, meshN, HOSTSxVMS or roomN (labs of 2 hosts), found {text!r}"
    )


def inventory(name: str, s: Scenario) -> str:
    lines = [f"name: {name}", f"topology: {s.topology}", "hosts:"]
    for i in range(1, s.hosts + 1):
        lines += [f"  host{i}:", "    vms:"]
        for k in range((i - 1) * s.vms_per_host + 1, i * s.vms_per_host + 1):
            lines.append(f"      vm{k}: {{ip: 172.16.0.{k}/24}}")
    return "\n".join(lines) + "\n"


def labctl(env: dict, *args: str, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "labctl", *args], env=env, capture_output=True, text=True)
    took = time.monotonic() - start
    if check and proc.returncode != 0:
        raise SystemExit(f"labctl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return took, proc


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def ovs_pids(state: Path, name: str) -> list[int]:
    pids = []
    for pidfile in (state / name / "hosts").glob("*/*.pid"):
        try:
            pids.append(int(pidfile.read_text().split()[0]))
        except (OSError, ValueError):
            pass
    return pids


def floor(hosts: int, workdir: Path) -> float:
    """Namespaces + OVS daemons for N hosts, started in parallel the same way, then removed."""
    tag = f"lcfloor{os.getpid()}"

    def start(i: int) -> None:
        ns = f"{tag}-{i}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        start_ovs_daemons(NetnsTransport(ns, ns, str(workdir / f"floor{i}")), str(workdir / f"floor{i}"))

    begin = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(start, range(hosts)))
    took = time.monotonic() - begin
    # tear down by PID (from our own pidfiles), then the namespaces
    pids = [
        int((workdir / f"floor{i}" / f"{d}.pid").read_text())
        for i in range(hosts)
        for d in ("ovs-vswitchd", "ovsdb-server")
    ]
    for pid in pids:
        os.kill(pid, 15)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    subprocess.run(
        ["ip", "-batch", "-"],
        input="".join(f"netns del {tag}-{i}\n" for i in range(hosts)),
        text=True,
        check=True,
    )
    return took


@dataclass
class Row:
    scenario: Scenario
    floor: float
    up: float = 0.0
    verify: float = 0.0
    down: float = 0.0
    mib_per_host: float = 0.0
    passed: int = 0
    notes: list[str] = field(default_factory=list)


NESTED = REPO / "inventories" / "blog-4host-nested.yaml"
BOOT = "{kernel: ../../../build/guest/vmlinuz, initrd: ../../../build/guest/initrd.gz}"
BOOT_SECONDS = 300


def nested_inventory(name: str) -> tuple[str, list[str], list[str]]:
    """The bundled nested lab under `name`, booting the guest scripts/build-guest.sh builds;
    with the namespace VMs' namespaces and the real guests' addresses, to wait for their boot."""
    built = subprocess.run(["bash", str(REPO / "scripts" / "build-guest.sh")], capture_output=True, text=True)
    if built.returncode != 0:
        raise SystemExit(f"scripts/build-guest.sh failed:\n{built.stderr}")
    guest = REPO / built.stdout.strip()
    text = NESTED.read_text().replace("name: blog-4host-nested\n", f"name: {name}\n")
    text = text.replace(BOOT, f"{{kernel: {guest / 'vmlinuz'}, initrd: {guest / 'initrd.gz'}}}")
    from labctl.drivers.sim_guests import RealGuests
    from labctl.inventory import parse_inventory

    lab = parse_inventory(text)
    real = [h for h in lab.hosts if RealGuests.wanted(h)]
    senders = [f"lc-{name}-{vm.name}" for h in lab.hosts if h not in real for vm in h.vms]
    guests = [str(vm.ip.ip) for h in real for vm in h.vms]
    return text, senders, guests


def wait_for_guests(senders: list[str], guests: list[str]) -> float:
    """Seconds until every real guest answers a ping from a namespace VM."""
    start = time.monotonic()
    for address in guests:
        while subprocess.run(
            ["ip", "netns", "exec", senders[0], "ping", "-n", "-q", "-c", "1", "-W", "1", address],
            capture_output=True,
        ).returncode:
            if time.monotonic() - start > BOOT_SECONDS:
                raise SystemExit(f"the real guest {address} did not answer within {BOOT_SECONDS} s")
    return time.monotonic() - start


def in_parallel(task, items: list) -> list:
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(task, items))


def run(s: Scenario, workdir: Path, env: dict, state: Path, prefix: str) -> Row:
    names = [
        f"{prefix}{s.name}{'-' + str(i) if s.labs > 1 else ''}-{os.getpid() % 10000}" for i in range(s.labs)
    ]
    inventories = []
    for name in names:
        path = workdir / f"{name}.yaml"
        path.write_text(inventory(name, s))
        inventories.append(str(path))
    row = Row(s, floor(s.all_hosts, workdir / f"floor-{s.name}"))
    try:
        start = time.monotonic()
        ups = in_parallel(lambda inv: labctl(env, "up", "-q", "-i", inv, check=False)[1], inventories)
        row.up = time.monotonic() - start
        failed = [proc.stderr.strip().splitlines()[0] for proc in ups if proc.returncode != 0]
        if failed:  # the row says so, and the other scenarios still run
            row.notes.append(f"up failed: {failed[0][:300]}")
            return row
        row.mib_per_host = sum(rss_kib(ovs_pids(state, n)) for n in names) / s.all_hosts / 1024
        start = time.monotonic()
        verified = in_parallel(
            lambda inv: labctl(env, "verify", "--json", "-i", inv, check=False)[1], inventories
        )
        row.verify = time.monotonic() - start
        for proc in verified:
            report = json.loads(proc.stdout)
            row.passed += sum(pair["ok"] for pair in report["pairs"])
            row.notes += [f"controller: {p}" for p in report.get("controller_problems", [])]
    finally:  # never leave a lab behind, whatever failed
        start = time.monotonic()
        in_parallel(lambda inv: labctl(env, "down", "-q", "-i", inv), inventories)
        row.down = time.monotonic() - start
    return row


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        type=scenario,
        default=[scenario(s) for s in DEFAULT],
        metavar="SCENARIO",
        help=f"what to time (default: {' '.join(DEFAULT)})",
    )
    parser.add_argument("--prefix", default="bench", help="lab names start with this (default: bench)")
    parser.add_argument(
        "--real-guests",
        action="store_true",
        help="also time the mixed 4-host lab with real QEMU guests on its KVM hosts, against a 4-host floor",
    )
    return parser.parse_args(argv)


HEADER = (
    f"{'lab':>8} {'hosts':>5} {'pairs':>5} {'floor':>7} {'up':>7} {'verify':>7} {'down':>7} "
    f"{'up/floor':>8} {'(up+verify)/floor':>17} {'down/floor':>10} {'OVS MiB/host':>12} {'pairs ok':>8}"
)


def row_line(r: Row) -> str:
    s, fl = r.scenario, r.floor
    return (
        f"{s.name:>8} {s.all_hosts:>5} {s.pairs:>5} {fl:>6.2f}s {r.up:>6.2f}s {r.verify:>6.2f}s "
        f"{r.down:>6.2f}s {r.up / fl:>8.2f} {(r.up + r.verify) / fl:>17.2f} {r.down / fl:>10.2f} "
        f"{r.mib_per_host:>12.1f} {r.passed:>8}" + (f"  {'; '.join(r.notes)}" if r.notes else "")
    )


def report(rows: list[Row]) -> str:
    limits = ", ".join(f"{key}={simlimits.read_sysctl(key)}" for key in LIMITS)
    lines = [f"{os.cpu_count()} CPUs; kernel limits: {limits}", HEADER, *map(row_line, rows)]
    targets = [(r, step, limit) for r in rows for step, limit in TARGETS.get(r.scenario.name, {}).items()]
    if targets:
        lines.append("targets (seconds, 2 cores):")
        for r, step, limit in targets:
            took = getattr(r, step)
            verdict = "met" if took <= limit else "MISSED"
            lines.append(f"  {r.scenario.name:>6} {step:<6} <= {limit:>4.1f}s: {took:6.2f}s {verdict}")
    return "\n".join(lines)


def real_guest_row(env: dict, tmpdir: Path, prefix: str) -> tuple:
    """The nested lab: up, the guests' boot, verify, down, and the floor of its 4 hosts."""
    name = f"{prefix}rg-{os.getpid() % 10000}"
    text, senders, guests = nested_inventory(name)
    inv = tmpdir / f"{name}.yaml"
    inv.write_text(text)
    floor_s = floor(4, tmpdir / "floor-rg")
    try:
        up_s, _ = labctl(env, "up", "-q", "-i", str(inv))
        boot_s = wait_for_guests(senders, guests)
        verify_s, out = labctl(env, "verify", "--json", "-i", str(inv), check=False)
        report = json.loads(out.stdout)
    finally:
        down_s, _ = labctl(env, "down", "-q", "-i", str(inv))
    run = [pair for pair in report["pairs"] if not pair.get("unverifiable")]
    return floor_s, up_s, boot_s, verify_s, down_s, sum(pair["ok"] for pair in run), len(run)


def real_guest_report(row: tuple) -> str:
    fl, up, boot, ver, down, passed, run = row
    return "\n".join(
        [
            "",
            "the mixed 4-host lab, real QEMU guests on its 2 KVM hosts (inventories/blog-4host-nested.yaml)",
            f"{'hosts':>5} {'pairs':>5} {'floor':>7} {'up':>7} {'boot':>7} {'verify':>7} {'down':>7} "
            f"{'up/floor':>8} {'(up+boot+verify)/floor':>22} {'down/floor':>10} {'pairs ok':>8}",
            f"{4:>5} {run:>5} {fl:>6.2f}s {up:>6.2f}s {boot:>6.2f}s {ver:>6.2f}s {down:>6.2f}s "
            f"{up / fl:>8.2f} {(up + boot + ver) / fl:>22.2f} {down / fl:>10.2f} {passed:>8}",
            "pairs: those verify ran, from inside the real guests too (a pair not verifiable is not counted)",
        ]
    )


def main() -> None:
    args = parse_args()
    rows = []
    real_guests = None
    with tempfile.TemporaryDirectory(prefix="labctl-bench-") as tmp:
        tmpdir = Path(tmp)
        state = Path(os.environ.get("LABCTL_STATE_DIR") or tmpdir / "state")
        env = {**os.environ, "LABCTL_STATE_DIR": str(state), "PYTHONPATH": str(REPO)}
        if args.real_guests:
            real_guests = real_guest_row(env, tmpdir, args.prefix)
        for s in args.scenarios:
            rows.append(run(s, tmpdir, env, state, args.prefix))
            print(row_line(rows[-1]), file=sys.stderr, flush=True)  # progress, for long runs
    print(report(rows))
    if real_guests:
        print(real_guest_report(real_guests))


if __name__ == "__main__":
    main()
