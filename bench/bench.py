#!/usr/bin/env python3
"""Time `labctl up`, `verify` and `down` for simulated labs of N hosts, against a floor.

The floor is measured in the same run: only what any simulated lab must do at
least -- create N host namespaces and start each host's ovsdb-server and
ovs-vswitchd -- then remove them again. Ratios (labctl / floor) make the numbers
comparable across machines. Memory per host is the resident size of the OVS
daemons and VM namespaces' share, read from /proc while the lab is up.

    sudo .venv/bin/python bench/bench.py            # 2 8 16 32 hosts
    sudo .venv/bin/python bench/bench.py 2 8        # just these sizes
    sudo .venv/bin/python bench/bench.py 4 --real-guests
                          # and the mixed 4-host lab with real QEMU guests on its KVM hosts
                          # (inventories/blog-4host-nested.yaml; needs scripts/setup.sh --libvirt)

The real-guest row adds `boot`: from the end of `up` until every real guest answers a
ping from a namespace VM (a guest boots after `up` has started it). Its verify runs every
ordered pair, those from a real guest from inside it (over the guest's way in); `pairs`
counts the pairs verify ran, a pair it reports as not verifiable is left out.

Runs as root; uses its own state dir and lab names, and removes everything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from labctl.drivers import simlimits  # noqa: E402
from labctl.drivers.sim import start_ovs_daemons  # noqa: E402 - the same start-up labctl uses
from labctl.transport.netns import NetnsTransport  # noqa: E402

# Shared by every namespace: a 32-host lab needs them raised (scripts/setup.sh does).
LIMITS = (simlimits.ARP_TABLE, simlimits.SOCKET_BUFFER)


def inventory(name: str, hosts: int) -> str:
    lines = [f"name: {name}", "topology: star", "hosts:"]
    for i in range(1, hosts + 1):
        lines += [f"  host{i}:", "    vms:", f"      vm{i}: {{ip: 172.16.0.{i}/24}}"]
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
    from concurrent.futures import ThreadPoolExecutor

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


DEFAULT_SIZES = [2, 8, 16, 32]
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


def host_count(text: str) -> int:
    n = int(text) if text.isdigit() else 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a number of hosts (1 or more), found {text!r}")
    return n


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "sizes",
        nargs="*",
        type=host_count,
        default=DEFAULT_SIZES,
        metavar="HOSTS",
        help=f"simulated lab sizes to time, in hosts (default: {' '.join(map(str, DEFAULT_SIZES))})",
    )
    parser.add_argument(
        "--real-guests",
        action="store_true",
        help="also time the mixed 4-host lab with real QEMU guests on its KVM hosts, against a 4-host floor",
    )
    return parser.parse_args(argv)


def real_guest_row(env: dict, tmpdir: Path) -> tuple:
    """The nested lab: up, the guests' boot, verify, down, and the floor of its 4 hosts."""
    name = f"benchrg-{os.getpid() % 10000}"
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


def main() -> None:
    args = parse_args()
    sizes = args.sizes
    rows = []
    real_guests = None
    with tempfile.TemporaryDirectory(prefix="labctl-bench-") as tmp:
        tmpdir = Path(tmp)
        env = {**os.environ, "LABCTL_STATE_DIR": str(tmpdir / "state"), "PYTHONPATH": str(REPO)}
        if args.real_guests:
            real_guests = real_guest_row(env, tmpdir)
        for n in sizes:
            name = f"bench{n}-{os.getpid() % 10000}"
            inv = tmpdir / f"{name}.yaml"
            inv.write_text(inventory(name, n))
            floor_s = floor(n, tmpdir / f"floor-{n}")
            try:
                up_s, _ = labctl(env, "up", "-q", "-i", str(inv))
                mem = rss_kib(ovs_pids(tmpdir / "state", name)) / n
                verify_s, out = labctl(env, "verify", "--json", "-i", str(inv), check=False)
                report = json.loads(out.stdout)
            finally:  # never leave a lab behind, whatever failed
                down_s, _ = labctl(env, "down", "-q", "-i", str(inv))
            passed = sum(pair["ok"] for pair in report["pairs"])
            rows.append((n, n * (n - 1), floor_s, up_s, verify_s, down_s, mem, passed))
    limits = ", ".join(f"{key}={simlimits.read_sysctl(key)}" for key in LIMITS)
    print(f"{os.cpu_count()} CPUs; kernel limits: {limits}")
    print(
        f"{'hosts':>5} {'pairs':>5} {'floor':>7} {'up':>7} {'verify':>7} {'down':>7} "
        f"{'up/floor':>8} {'(up+verify)/floor':>17} {'down/floor':>10} {'OVS MiB/host':>12} {'pairs ok':>8}"
    )
    for n, pairs, fl, up, ver, down, mem, passed in rows:
        print(
            f"{n:>5} {pairs:>5} {fl:>6.2f}s {up:>6.2f}s {ver:>6.2f}s {down:>6.2f}s "
            f"{up / fl:>8.2f} {(up + ver) / fl:>17.2f} {down / fl:>10.2f} {mem / 1024:>12.1f} {passed:>8}"
        )
    if real_guests:
        fl, up, boot, ver, down, passed, run = real_guests
        print(
            "\nthe mixed 4-host lab, real QEMU guests on its 2 KVM hosts (inventories/blog-4host-nested.yaml)"
        )
        print(
            f"{'hosts':>5} {'pairs':>5} {'floor':>7} {'up':>7} {'boot':>7} {'verify':>7} {'down':>7} "
            f"{'up/floor':>8} {'(up+boot+verify)/floor':>22} {'down/floor':>10} {'pairs ok':>8}"
        )
        print(
            f"{4:>5} {run:>5} {fl:>6.2f}s {up:>6.2f}s {boot:>6.2f}s {ver:>6.2f}s {down:>6.2f}s "
            f"{up / fl:>8.2f} {(up + boot + ver) / fl:>22.2f} {down / fl:>10.2f} {passed:>8}"
        )
        print(
            "pairs: those verify ran, from inside the real guests too (a pair not verifiable is not counted)"
        )


if __name__ == "__main__":
    main()
