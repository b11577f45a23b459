"""A real ovsdb-server of our own, in a temporary directory: no root, no ovs-vswitchd.

It serves one Open_vSwitch database made from a schema file (a host's OVS
version: tests/data/ovs-schemas/). `vsctl(argv)` runs an `ovs-vsctl` argv
against it; `transport()` is a Transport on which labctl's own OVS code
(labctl.ovs.Ovs) reaches it, as it reaches a host's OVS.

With no ovs-vswitchd, nothing would ever acknowledge a reconfiguration, so
every ovs-vsctl gets `--no-wait`; the columns ovs-vswitchd fills in (ofport,
is_connected) stay empty.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from labctl.transport.base import Completed
from labctl.transport.local import LocalTransport
from labctl.transport.netns import ovs_env

SYSTEM_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")


def have_ovsdb_server() -> bool:
    return all(shutil.which(tool) for tool in ("ovsdb-server", "ovsdb-tool", "ovsdb-client", "ovs-vsctl"))


class PrivateOvsdb:
    def __init__(self, schema: Path = SYSTEM_SCHEMA):
        self.schema = schema
        self.rundir = Path(tempfile.mkdtemp(prefix="ut-ovsdb-"))  # short: a unix socket path has 108 bytes
        self.pid: int | None = None

    @property
    def remote(self) -> str:
        return f"unix:{self.rundir}/db.sock"

    def start(self) -> PrivateOvsdb:
        subprocess.run(["ovsdb-tool", "create", str(self.rundir / "conf.db"), str(self.schema)], check=True)
        pidfile = self.rundir / "ovsdb-server.pid"
        subprocess.run(
            [
                "ovsdb-server",
                str(self.rundir / "conf.db"),
                f"--remote=punix:{self.rundir}/db.sock",
                f"--pidfile={pidfile}",
                f"--unixctl={self.rundir}/ovsdb-server.ctl",
                f"--log-file={self.rundir}/ovsdb-server.log",
                "--detach",
                "--no-chdir",
            ],
            check=True,
        )
        self.pid = int(pidfile.read_text().split()[0])
        code, _, err = self.vsctl(["ovs-vsctl", "init"])
        assert code == 0, err
        return self

    def stop(self) -> None:
        if self.pid is not None:
            os.kill(self.pid, signal.SIGTERM)  # our own ovsdb-server, by the PID it wrote
            for _ in range(200):
                if not Path(f"/proc/{self.pid}").exists():
                    break
                time.sleep(0.01)
        shutil.rmtree(self.rundir, ignore_errors=True)

    def vsctl(self, argv: list[str]) -> tuple[int, str, str]:
        """An ovs-vsctl argv -> (exit code, stdout, stderr)."""
        real = [argv[0], f"--db={self.remote}", "--no-wait", *argv[1:]]
        done = subprocess.run(real, capture_output=True, text=True, timeout=30)
        return done.returncode, done.stdout, done.stderr

    def transport(self, name: str = "host") -> LocalTransport:
        return _ToPrivateOvsdb(name, str(self.rundir))


class _ToPrivateOvsdb(LocalTransport):
    """This machine, with the OVS tools pointed at the private database (OVS_RUNDIR, as on a
    simulated host) and `--no-wait` on every ovs-vsctl."""

    def __init__(self, name: str, rundir: str):
        super().__init__(name, ovs_env(rundir))

    def _run(self, argv: tuple[str, ...], *, input: str | None, timeout: float) -> Completed:
        real = (argv[0], "--no-wait", *argv[1:]) if argv and argv[0] == "ovs-vsctl" else argv
        done = super()._run(real, input=input, timeout=timeout)
        return Completed(argv, done.returncode, done.stdout, done.stderr)
