"""A lab of real hosts, brought up over SSH end to end.

The test builds a small network of machines out of namespaces, none of them
labctl's: `m` is the machine labctl runs on (the controller runs there too),
`h1` and `h2` are Linux hosts with Open vSwitch (userspace datapath: no
kernel module here) at its default paths and an OpenSSH server, each in its
own mount namespace with a private /run. A management segment carries SSH
(198.18.0.0/24), an underlay segment carries GRE and OpenFlow (10.250.0.0/24).
labctl reaches the hosts only over SSH, with a throwaway key and a
known_hosts file; everything it does to them is journalled and undone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, processes_in

pytestmark = pytest.mark.lab

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
HOSTS = {"h1": 1, "h2": 2}
INVENTORY = """\
name: {name}
controller:
  kind: os-ken
  address: 10.250.0.254
hosts:
  h1:
    driver: ovs
    address: root@198.18.0.1
    key: {key}
    known_hosts: {known_hosts}
    datapath: netdev
    underlay_dev: eth1
    vms:
      vm1: {{ip: 172.16.0.1/24}}
      vm2: {{ip: 172.16.0.3/24}}
  h2:
    driver: ovs
    address: root@198.18.0.2
    key: {key}
    known_hosts: {known_hosts}
    datapath: netdev
    underlay_dev: eth1
    vms:
      vm3: {{ip: 172.16.0.2/24}}
"""
VSWITCHD = (
    "ovs-vswitchd", "--pidfile", "--detach", "--no-chdir", "-vconsole:off",
    "--log-file=/run/openvswitch/ovs-vswitchd.log",
)  # fmt: skip
HOST_SCRIPT = (
    "mount -t tmpfs lc-test-run /run && mkdir -m 755 /run/sshd /run/openvswitch && "
    f"ovsdb-tool create /run/openvswitch/conf.db {SCHEMA} && "
    "ovsdb-server /run/openvswitch/conf.db --remote=punix:/run/openvswitch/db.sock "
    "--pidfile --detach --no-chdir --log-file=/run/openvswitch/ovsdb-server.log -vconsole:off && "
    "ovs-vsctl --no-wait init && "
    f"{' '.join(VSWITCHD)} && "
    "exec /usr/sbin/sshd -D -e -f {config}"
)


def sh(*argv: str, input: str | None = None) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, input=input).stdout


@dataclass
class Machines:
    tag: str
    tmp: Path
    env: dict
    lab: str
    inventory: Path
    sshd: dict

    def ns(self, name: str) -> str:
        return f"lcx{self.tag}-{name}"

    def labctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """labctl run on machine `m`."""
        argv = ["ip", "netns", "exec", self.ns("m"), sys.executable, "-m", "labctl", *args]
        if args[0] in ("up", "down", "status", "verify", "doctor"):
            argv += ["-i", str(self.inventory)]
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=180)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"labctl {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def on_host(self, host: str, *argv: str) -> subprocess.CompletedProcess:
        """A command on a host as its own console would run it (its mount and network namespace)."""
        pid = str(self.sshd[host].pid)
        return subprocess.run(["nsenter", "-t", pid, "-m", "-n", *argv], capture_output=True, text=True)

    def commands(self) -> list[str]:
        path = self.tmp / "state" / self.lab / "commands.log"
        return path.read_text().splitlines() if path.exists() else []


def build(tmp: Path, tag: str) -> Machines:
    net = f"lcx{tag}-net"
    names = ["m", *HOSTS]
    for ns in [net, *(f"lcx{tag}-{n}" for n in names)]:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh(
        "ip",
        "-n",
        net,
        "-batch",
        "-",
        input="link add mgmt type bridge\nlink set mgmt up\nlink add ul type bridge\nlink set ul up\n",
    )
    for name in names:
        ns, last = f"lcx{tag}-{name}", HOSTS.get(name, 254)
        for segment, nic in (("mgmt", "mgmt0"), ("ul", "eth1")):
            end = f"{segment[0]}{name}"
            sh("ip", "-n", net, "link", "add", end, "type", "veth", "peer", "name", nic, "netns", ns)
            sh("ip", "-n", net, "link", "set", end, "master", segment, "up")
            sh("ip", "-n", ns, "link", "set", nic, "up")
            for where, dev in ((net, end), (ns, nic)):
                sh("ip", "netns", "exec", where, "ethtool", "-K", dev, "tx", "off")
        sh("ip", "-n", ns, "addr", "add", f"198.18.0.{last}/24", "dev", "mgmt0")
        if name == "m":
            sh("ip", "-n", ns, "addr", "add", "10.250.0.254/24", "dev", "eth1")
    key = tmp / "id_ed25519"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    (tmp / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    known = []
    sshd = {}
    for host, last in HOSTS.items():
        host_key = tmp / f"{host}_host_key"
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
        kind, blob = Path(f"{host_key}.pub").read_text().split()[:2]
        known.append(f"198.18.0.{last} {kind} {blob}")
        config = tmp / f"{host}_sshd_config"
        config.write_text(
            f"ListenAddress 198.18.0.{last}\nHostKey {host_key}\nAuthorizedKeysFile {tmp}/authorized_keys\n"
            "StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "PidFile none\nLogLevel ERROR\nMaxSessions 64\nMaxStartups 64\n"
        )
        with open(tmp / f"{host}_sshd.log", "wb") as log:
            sshd[host] = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    f"lcx{tag}-{host}",
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    HOST_SCRIPT.format(config=config),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    (tmp / "known_hosts").write_text("\n".join(known) + "\n")
    for host in HOSTS:
        deadline = time.monotonic() + 20
        while not sh("ip", "netns", "exec", f"lcx{tag}-{host}", "ss", "-Hltn", "sport = :22").strip():
            assert sshd[host].poll() is None, (tmp / f"{host}_sshd.log").read_text()
            assert time.monotonic() < deadline, f"sshd on {host} did not listen"  # readiness, not timing
            time.sleep(0.05)
    lab = f"s{tag}"
    inventory = tmp / "lab.yaml"
    inventory.write_text(INVENTORY.format(name=lab, key=key, known_hosts=tmp / "known_hosts"))
    env = {**os.environ, "LABCTL_STATE_DIR": str(tmp / "state"), "PYTHONPATH": str(REPO)}
    return Machines(tag, tmp, env, lab, inventory, sshd)


def destroy(tmp: Path, tag: str) -> None:
    names = [f"lcx{tag}-{n}" for n in ("net", "m", *HOSTS)]
    inodes = set()
    for ns in names:
        try:
            inodes.add(os.stat(f"/run/netns/{ns}").st_ino)
        except OSError:
            pass
    for pid in processes_in(inodes):  # only processes in the test's own namespaces
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while processes_in(inodes) and time.monotonic() < deadline:
        time.sleep(0.05)
    for ns in names:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def machines(tmp_path):
    tag = uuid.uuid4().hex[:6]
    built: list[Machines] = []
    try:
        built.append(build(tmp_path, tag))
        yield built[0]
    finally:
        if built:
            built[0].labctl("down", check=False)
        destroy(tmp_path, tag)  # whatever build got to


def test_up_over_ssh_then_verify_pings_all_pairs_and_down_leaves_the_hosts_clean(machines):
    m = machines
    doctor = m.labctl("doctor")
    assert "h1: ok   Open vSwitch installed" in doctor.stdout and "userspace" in doctor.stdout

    m.labctl("up")
    status = json.loads(m.labctl("status", "--json").stdout)
    assert status["up"], status
    ports = {h["name"]: {p["name"]: p.get("vm") for p in h["ports"]} for h in status["hosts"]}
    assert ports["h1"]["vm1"] == "vm1" and ports["h2"]["vm3"] == "vm3"
    report = json.loads(m.labctl("verify", "--json").stdout)
    assert report["ok"] and len(report["pairs"]) == 6

    # The OVS work per host went as ONE batched ovs-vsctl transaction over SSH.
    for host in HOSTS:
        batched = [c for c in m.commands() if f" {host}: ovs-vsctl" in c and "add-br" in c]
        assert len(batched) == 1, batched
    sent = len(m.commands())
    m.labctl("up")  # up twice: nothing to change, nothing written
    assert not [c for c in m.commands()[sent:] if "add-br" in c or "add-port" in c]

    journal = [json.loads(x) for x in (m.tmp / "state" / m.lab / "journal.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in journal if r.get("driver") == "ovs"} == {"ovs-host-vm", "ovs-bridge"}

    m.labctl("down")
    for host in HOSTS:
        assert m.on_host(host, "ovs-vsctl", "list-br").stdout == ""  # br0 and br-phy removed
        assert "lc-" not in m.on_host(host, "ip", "netns", "list").stdout  # the VMs too
    assert not (m.tmp / "state" / m.lab).exists()


def test_doctor_and_up_name_a_host_without_ovs_and_an_unreachable_host(machines):
    m = machines
    m.on_host("h2", "sh", "-c", "kill $(cat /run/openvswitch/ovsdb-server.pid)")
    doctor = m.labctl("doctor", check=False)
    assert doctor.returncode == 3 and "h2: FAIL ovsdb-server reachable (permissions)" in doctor.stdout
    assert "h1: ok   ovsdb-server reachable" in doctor.stdout
    failed = m.labctl("up", check=False)
    assert failed.returncode == 3 and "Traceback" not in failed.stderr
    assert "h2: check Open vSwitch failed: ovsdb-server not reachable" in failed.stderr
    m.labctl("down")
    m.inventory.write_text(m.inventory.read_text().replace("198.18.0.2", "198.18.0.9"))
    failed = m.labctl("up", check=False)
    assert failed.returncode == 3 and "Traceback" not in failed.stderr
    assert "h2: connect over SSH to root@198.18.0.9:22 failed: unreachable" in failed.stderr


def test_a_dead_ovs_vswitchd_is_named_by_doctor_status_and_up(machines):
    """kill -9 of a host's ovs-vswitchd (by its own pidfile): its database still answers and
    says connected, and so does the controller (the goodbye went out through the dead daemon's
    br-phy). doctor, status and up name it; once the host's admin starts it again, the lab works."""
    m = machines
    m.labctl("up")
    pid = m.on_host("h1", "cat", "/run/openvswitch/ovs-vswitchd.pid").stdout.strip()
    assert m.on_host("h1", "kill", "-9", pid).returncode == 0

    doctor = m.labctl("doctor", check=False)
    assert doctor.returncode == 3
    assert 'h1: FAIL ovs-vswitchd running: ovs-appctl: cannot read pidfile "' in doctor.stdout
    assert "h2: ok   ovs-vswitchd running" in doctor.stdout
    status = json.loads(m.labctl("status", "--json").stdout)
    assert status["up"] is False
    [fault] = status["faults"]
    assert fault["host"] == "h1" and fault["what"].startswith("ovs-vswitchd does not answer (")
    assert fault["repair"].startswith("up cannot repair this: start it on the host")
    assert [h["connected"] for h in status["hosts"]] == [False, True]
    up = m.labctl("up", check=False)
    assert up.returncode == 3 and "h1: check Open vSwitch failed: ovs-vswitchd does not answer" in up.stderr

    # The host's admin starts it again (as the host started it); it reconnects on its own.
    started = m.on_host("h1", *VSWITCHD)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 20
    while not m.on_host("h1", "ss", "-Htn", "state", "established", "( dport = :6633 )").stdout.strip():
        assert time.monotonic() < deadline, "h1's restarted ovs-vswitchd did not reach the controller"
        time.sleep(0.1)
    m.labctl("up")
    assert json.loads(m.labctl("status", "--json").stdout)["up"] is True
    assert json.loads(m.labctl("verify", "--json").stdout)["ok"] is True
