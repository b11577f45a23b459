"""Run as an ordinary user (nobody): a command that would enter or change a simulated
lab, or write a state directory it may not, says so in one line (exit 3) before doing
anything; commands that only read files work."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO, TWO_HOST, netns_with_prefix, unique_name

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching to the user nobody needs root")


@pytest.fixture
def shared_dir():
    """A directory nobody may read but not write (pytest's tmp_path is root's alone)."""
    with tempfile.TemporaryDirectory(prefix="labctl-nobody-") as name:
        os.chmod(name, 0o755)
        yield Path(name)


@pytest.fixture
def as_nobody(shared_dir):
    """as_nobody(*labctl args) -> CompletedProcess, run as nobody with a state directory
    under `shared_dir` that nobody cannot create."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    user = pwd.getpwnam("nobody")
    prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "LABCTL_STATE_DIR": str(shared_dir / "state"),
    }

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*prefix, *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=shared_dir,
            stdin=subprocess.DEVNULL,
        )

    probe = run(sys.executable, "-c", "import os, labctl.cli; assert os.geteuid() != 0")
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"nobody cannot run labctl from {REPO} with {sys.executable}: {reason}")
    return lambda *args: run(sys.executable, "-m", "labctl", *args)


@pytest.fixture
def sim_inventory(shared_dir) -> tuple[str, Path]:
    name = unique_name("np")
    path = shared_dir / "lab.yaml"
    path.write_text(TWO_HOST.format(name=name, openflow="1.0"))
    os.chmod(path, 0o644)
    return name, path


def one_line(proc, code: int) -> str:
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    return line


def test_commands_on_a_simulated_lab_need_root_and_say_so_first(as_nobody, sim_inventory, shared_dir):
    name, inventory = sim_inventory
    i = ["-i", str(inventory)]
    for command, argv in [
        ("up", ["up", *i]),
        ("status", ["status", *i]),
        ("verify", ["verify", *i]),
        ("exec", ["exec", *i, "vm1", "--", "true"]),
        ("controller restart", ["controller", "restart", *i]),
        ("capture start", ["capture", "start", *i]),
        ("trace", ["trace", "--follow", *i]),  # it starts a capture in the lab
    ]:
        line = one_line(as_nobody(*argv), 3)
        assert line == (
            f"labctl: error: labctl {command} needs root: a simulated lab is network namespaces "
            "with OVS daemons of its own (run it as root, e.g. with sudo)"
        )
    assert not (shared_dir / "state").exists()
    assert not netns_with_prefix(f"lc-{name}-")


def test_down_without_a_state_directory_it_may_write_says_so(as_nobody, sim_inventory, shared_dir):
    _, inventory = sim_inventory
    line = one_line(as_nobody("down", "-i", str(inventory)), 3)
    assert line == (
        f"labctl: error: labctl down cannot write the lab's state in {shared_dir}: run it as root, "
        "or set LABCTL_STATE_DIR to a directory you may write"
    )
    assert not (shared_dir / "state").exists()


def test_reading_commands_work_without_privileges(as_nobody, sim_inventory, shared_dir):
    name, inventory = sim_inventory
    graph = as_nobody("graph", "-i", str(inventory))
    assert graph.returncode == 0, graph.stderr
    assert graph.stdout.startswith(f'graph "{name}" {{') and "vm2" in graph.stdout
    assert as_nobody("--help").returncode == 0 and "up" in as_nobody("up", "--help").stdout

    doctor = as_nobody("doctor", "-i", str(inventory))
    assert doctor.returncode in (0, 3), doctor.stderr  # 3: this machine's kernel limits fall short
    assert "kernel limits" in doctor.stdout and "root" not in doctor.stderr

    pcap = shared_dir / "hello.pcap"
    pcap.write_bytes(_pcap_of_one_hello())
    os.chmod(pcap, 0o644)
    trace = as_nobody("trace", "-i", str(inventory), "--pcap", str(pcap), "--all", "--json")
    assert trace.returncode == 0, trace.stderr
    [hello] = json.loads(trace.stdout)
    assert hello["type"] == "hello" and hello["host"] == "host1"
    assert not (shared_dir / "state").exists()


def _pcap_of_one_hello() -> bytes:
    """One OpenFlow 1.0 HELLO from host1's underlay address to the controller's."""
    from os_ken.lib.packet import ethernet, ipv4, packet, tcp

    frame = packet.Packet()
    frame.add_protocol(ethernet.ethernet(src="02:00:00:00:00:01", dst="02:00:00:00:00:fe"))
    frame.add_protocol(ipv4.ipv4(src="10.250.0.1", dst="10.250.0.254", proto=6))
    frame.add_protocol(tcp.tcp(src_port=40000, dst_port=6633, seq=1, ack=1, bits=0x18))
    frame.add_protocol(struct.pack("!BBHI", 1, 0, 8, 7))  # version 1.0, HELLO, length 8, xid 7
    frame.serialize()
    data = bytes(frame.data)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # Ethernet
    return header + struct.pack("<IIII", 1, 0, len(data), len(data)) + data
