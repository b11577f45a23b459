"""Fake real hosts and a fake "this machine" behind labctl's Transport interface.

A FakeWorld holds, per host, an Open vSwitch database (tests/fakes/ovsdb.py)
and its namespaces and links (tests/fakes/linux.py); `ping` answers from the
underlay (every host reaches every other unless the test cuts a path), and the
machine labctl runs the controller on answers `ss` from the controller it
started and the bridges pointed at it. Every argv labctl runs is recorded, in
order, as a Call naming the transport it went to.

labctl reaches the fakes through two seams it keeps for this: the driver
registry (`ovs_host_kind()` is the `ovs` kind whose `connect` returns a fake
host, also when `down` finds the host again from the journal) and LabRunner's
`controller_site` (`machine_transport`).

The controller labctl starts is a stand-in process (`sleep`), so its PID, start
time and liveness are real: labctl's journal, `down` and status read them as
they would a controller's. It listens, for `ss`, where its argv says.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labctl.drivers.base import ControllerSite
from labctl.drivers.ovs_host import OvsHostDriver
from labctl.model import Access
from labctl.transport.base import Completed, Transport
from tests.fakes.linux import FakeLinux
from tests.fakes.ovsdb import OVS_3_1, TIMEOUT_EXIT, FakeOvsdb, NotModelled

RUNDIR = "/var/run/openvswitch"  # where a real host's OVS keeps its sockets and pidfiles
# ovs-vsctl commands that change the database (and so wait for ovs-vswitchd to apply them)
WRITES = {"add-br", "del-br", "add-port", "del-port", "set", "set-controller", "del-controller"}
STAND_IN_SECONDS = "600"  # a stand-in controller outlives no test run by much, whatever happens


@dataclass(frozen=True)
class Call:
    where: str  # the transport's name: a host, or "controller" on this machine
    argv: tuple[str, ...]
    input: str | None = None
    spawned: bool = False


class RecordingTransport(Transport):
    """Runs nothing: each argv is recorded and answered by the fake machine behind it."""

    def __init__(self, name: str, machine: FakeHost | FakeMachine, calls: list[Call]):
        self.name, self.machine, self.calls = name, machine, calls

    def _run(self, argv: tuple[str, ...], *, input: str | None, timeout: float) -> Completed:
        self.calls.append(Call(self.name, argv, input))
        code, out, err = self.machine.answer(list(argv), input)
        return Completed(argv, code, out, err)

    def spawn(self, argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None) -> int:
        argv = tuple(str(a) for a in argv)
        self.calls.append(Call(self.name, argv, spawned=True))
        return self.machine.spawn(list(argv), log_path)

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.machine.files[path] = data

    def get_file(self, path: str) -> bytes:
        return self.machine.files[path]


class FakeHost:
    """A Linux host with Open vSwitch, as labctl's `ovs` driver finds it over SSH."""

    def __init__(
        self,
        world: FakeWorld,
        name: str,
        address: str,
        underlay_ip: str,
        has_ovs: bool = True,
        schema: Path = OVS_3_1,
    ):
        self.world, self.name, self.address, self.underlay_ip = world, name, address, underlay_ip
        self.has_ovs = has_ovs
        # The host's own OVS daemons; a test stops one as `kill -9` would (see stop_daemon).
        self.running = {"ovsdb-server": True, "ovs-vswitchd": True}
        self.linux = FakeLinux()
        self.ovs = FakeOvsdb(device_exists=self.linux.device_exists, connected=self._connected, schema=schema)
        self.files: dict[str, bytes] = {}

    def transport(self, name: str) -> RecordingTransport:
        return RecordingTransport(name, self, self.world.calls)

    def answer(self, argv: list[str], input: str | None) -> tuple[int, str, str]:
        if argv[0] in ("ovs-vsctl", "ovs-appctl") and not self.has_ovs:
            return 127, "", f"bash: line 1: {argv[0]}: command not found\n"
        if argv[0] == "ovs-vsctl":
            if "--version" not in argv and not self.running["ovsdb-server"]:
                refused = f"unix:{RUNDIR}/db.sock: database connection failed (Connection refused)"
                return 1, "", f"ovs-vsctl: {refused}\n"
            if not self.running["ovs-vswitchd"] and WRITES & set(argv) and "--no-wait" not in argv:
                # ovs-vsctl waits for ovs-vswitchd to apply a change, until its --timeout
                return TIMEOUT_EXIT, "", "fatal_signal|WARN|terminating with signal 14 (Alarm clock)\n"
            return self.ovs.vsctl(argv)
        if argv[0] == "ovsdb-client":
            if not self.has_ovs:
                return 127, "", "bash: line 1: ovsdb-client: command not found\n"
            return self.ovs.client(argv)
        if argv[0] == "ovs-appctl":
            return self._appctl(argv)
        if argv == ["id", "-un"]:  # who labctl logged in as (doctor)
            return 0, "root\n", ""
        if argv[0] in ("ip", "ethtool"):
            return self.linux.run(argv, input)
        if argv[0] == "ping":
            return self.world.ping(self, argv)
        raise NotModelled(f"{self.name}: {argv}")

    def _appctl(self, argv: list[str]) -> tuple[int, str, str]:
        match argv:
            case ["ovs-appctl", "--timeout=5", "-t", daemon, "version"] if daemon in self.running:
                if self.running[daemon]:
                    return 0, f"{daemon} (Open vSwitch) 3.1.0\n", ""
                # what ovs-appctl 3.1 says when the daemon's pidfile is left from a dead process
                return 1, "", f'ovs-appctl: cannot read pidfile "{RUNDIR}/{daemon}.pid" (No such process)\n'
            case ["ovs-appctl", "revalidator/purge"] if self.running.get("ovs-vswitchd", True):
                return 0, "", ""  # the datapath's flow cache emptied: nothing to model beyond the call
        raise NotModelled(f"{self.name}: {argv}")

    def stop_daemon(self, daemon: str) -> None:
        """The daemon dies (kill -9): its database and the controller's sessions are left as they were,
        so OVSDB still says connected, and so does the controller (the goodbye never left the host)."""
        self.running[daemon] = False

    def start_daemon(self, daemon: str) -> None:
        self.running[daemon] = True

    def spawn(self, argv: list[str], log_path: str) -> int:
        raise NotModelled(f"{self.name}: labctl starts no process on a real host ({argv})")

    def admin(self, *argv: str) -> str:
        """Someone else's command on the host (not labctl's, so not recorded); it must succeed."""
        code, out, err = self.answer(list(argv), None)
        assert code == 0, f"{self.name}: {' '.join(argv)} exited {code}: {err}"
        return out

    def _connected(self, target: str) -> bool:
        return self.world.controller_answers(self, target)


class FakeMachine:
    """This machine, as far as a lab of real hosts uses it: it runs the controller."""

    def __init__(self, world: FakeWorld, address: str):
        self.world, self.address = world, address
        self.files: dict[str, bytes] = {}
        self.controllers: list[tuple[subprocess.Popen, str, int]] = []  # stand-in, listen address, port

    def transport(self, name: str) -> RecordingTransport:
        return RecordingTransport(name, self, self.world.calls)

    def spawn(self, argv: list[str], log_path: str) -> int:
        listen = _flag(argv, "--ofp-listen-host")
        port = _flag(argv, "--ofp-tcp-listen-port")
        if listen is None or port is None:
            raise NotModelled(f"a controller whose argv does not say where it listens: {argv}")
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"stand-in for: {' '.join(argv)}\n")
            log.flush()
            stand_in = subprocess.Popen(
                ["sleep", STAND_IN_SECONDS],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.controllers.append((stand_in, listen, int(port)))
        return stand_in.pid

    def listening(self, address: str, port: int) -> bool:
        return any(
            proc.poll() is None and listen in (address, "0.0.0.0") and bound == port
            for proc, listen, bound in self.controllers
        )

    def answer(self, argv: list[str], input: str | None) -> tuple[int, str, str]:
        match argv:
            case ["ss", "-Hltn", filter_]:
                port = _sport(filter_)
                lines = [
                    f"LISTEN 0      4096   {listen}:{bound} 0.0.0.0:*\n"
                    for proc, listen, bound in self.controllers
                    if proc.poll() is None and bound == port
                ]
                return 0, "".join(lines), ""
            case ["ss", "-Htn", "state", "established", filter_]:
                port = _sport(filter_.strip("() "))
                target = f"tcp:{self.address}:{port}"
                lines = [
                    f"0      0      {self.address}:{port} {host.underlay_ip}:{40000 + i}\n"
                    for i, host in enumerate(self.world.hosts.values())
                    if any(target in targets for targets in host.ovs.controllers().values())
                    and self.world.controller_answers(host, target)
                ]
                return 0, "".join(lines), ""
        raise NotModelled(f"this machine: {argv}")

    def stop_controllers(self) -> None:
        """Stop the stand-ins, by PID (as if the controller had crashed)."""
        for proc, _, _ in self.controllers:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
            proc.wait()


class FakeWorld:
    def __init__(self, controller_address: str):
        self.calls: list[Call] = []
        self.hosts: dict[str, FakeHost] = {}
        self.machine = FakeMachine(self, controller_address)
        self.cut: set[tuple[str, str]] = set()  # (host, address) pairs that do not answer

    def add_host(self, name: str, address: str, underlay_ip: str, **kwargs) -> FakeHost:
        host = FakeHost(self, name, address, underlay_ip, **kwargs)
        self.hosts[name] = host
        return host

    def host_at(self, address: str) -> FakeHost:
        for host in self.hosts.values():
            if host.address == address:
                return host
        raise AssertionError(f"labctl tried to reach {address}, which is no host of this fake world")

    def ovs_host_kind(self) -> type[OvsHostDriver]:
        """The `ovs` driver, unchanged but for how it reaches a host and this machine, where
        the controller runs: this world's fakes."""
        world = self

        class OvsHostOnFakes(OvsHostDriver):
            @classmethod
            def connect(cls, name: str, address: str, access: Access) -> Transport:
                return world.host_at(address).transport(name)

            @classmethod
            def controller_site(cls, session) -> ControllerSite:
                return ControllerSite(world.machine_transport("controller"), "on this machine")

        return OvsHostOnFakes

    def machine_transport(self, name: str) -> RecordingTransport:
        return self.machine.transport(name)

    # --- the underlay ---------------------------------------------------------------

    def reachable(self, host: FakeHost, address: str) -> bool:
        known = {h.underlay_ip for h in self.hosts.values()} | {self.machine.address}
        return address in known and (host.name, address) not in self.cut

    def controller_answers(self, host: FakeHost, target: str) -> bool:
        proto, address, port = target.split(":")
        return proto == "tcp" and self.reachable(host, address) and self.machine.listening(address, int(port))

    def ping(self, host: FakeHost, argv: list[str]) -> tuple[int, str, str]:
        match argv:
            case ["ping", "-n", "-q", "-c", "1", "-W", _, address]:
                if self.reachable(host, address):
                    return 0, "1 packets transmitted, 1 received, 0% packet loss, time 0ms\n", ""
                return 1, "1 packets transmitted, 0 received, 100% packet loss, time 0ms\n", ""
        raise NotModelled(f"{host.name}: {argv}")

    # --- for tests ------------------------------------------------------------------

    def argv_on(self, where: str) -> list[tuple[str, ...]]:
        """Every argv labctl ran there, in order."""
        return [c.argv for c in self.calls if c.where == where]

    def close(self) -> None:
        self.machine.stop_controllers()


def _flag(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def _sport(filter_: str) -> int:
    """The port of ss's `sport = :PORT` filter, the only one labctl uses."""
    key, eq, port = filter_.split()
    if key != "sport" or eq != "=" or not port.startswith(":"):
        raise NotModelled(f"ss filter {filter_!r}")
    return int(port[1:])
