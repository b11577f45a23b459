"""`labctl doctor`: what a real host needs, checked over its own transport.

Each check returns (name, ok, detail). Nothing is changed on the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from labctl.drivers.base import Driver
from labctl.errors import LabctlError
from labctl.model import Lab
from labctl.ovs import SCHEMA_READ, Ovs


@dataclass(frozen=True)
class Check:
    host: str
    name: str
    ok: bool
    detail: str


def _last_line(text: str) -> str:
    """The last non-blank line: where a tool says what went wrong."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def driver_checks(driver: Driver) -> list[Check]:
    """The driver's own checks alone (a simulated host: this machine, nothing to reach)."""
    out = []
    for name, probe in driver.doctor_checks():
        try:
            ok, detail = probe()
        except LabctlError as exc:
            ok, detail = False, str(exc)
        out.append(Check(driver.host.name, name, ok, detail))
    return out


def host_checks(lab: Lab, driver: Driver) -> list[Check]:
    host, transport = driver.host.name, driver.transport()
    out: list[Check] = []

    def check(name: str, probe: Callable[[], tuple[bool, str]]) -> bool:
        try:
            ok, detail = probe()
        except LabctlError as exc:
            ok, detail = False, str(exc)
        out.append(Check(host, name, ok, detail))
        return ok

    def reach():
        who = transport.run(["id", "-un"]).stdout.strip()
        return True, f"logged in as {who}"

    if not check("reach the host", reach):
        return out  # nothing else can run

    def ovs_installed():
        result = transport.run(["ovs-vsctl", "--version"], check=False)
        if result.returncode == 127:
            return False, "ovs-vsctl not found: install openvswitch-switch"
        return result.ok, _last_line(result.stdout.splitlines()[0] if result.ok else result.stderr)

    def ovsdb():
        result = transport.run(
            ["ovs-vsctl", "--timeout=5", "get", "Open_vSwitch", ".", "ovs_version"], check=False
        )
        if result.ok:
            return True, f"ovsdb-server answers (OVS {result.stdout.strip().strip(chr(34))})"
        return (
            False,
            f"cannot reach ovsdb-server: {_last_line(result.stderr)} (is openvswitch-switch running?)",
        )

    def datapath():
        types = transport.run(
            ["ovs-vsctl", "--timeout=5", "get", "Open_vSwitch", ".", "datapath_types"], check=False
        )
        module = transport.run(["test", "-d", "/sys/module/openvswitch"], check=False).ok
        wanted = driver.datapath_type
        if wanted == "system" and not module:
            return False, "the openvswitch kernel module is not loaded (modprobe openvswitch)"
        listed = types.stdout.strip() if types.ok else "unknown"
        return (
            True,
            f"{wanted} datapath ({'kernel module loaded' if module else 'userspace'}; host offers {listed})",
        )

    def schema():
        found = Ovs(transport).schema()
        lacks = found.lacks()
        if found.tables == {}:
            return (
                True,
                f"could not read it (`{' '.join(SCHEMA_READ)}`): labctl leaves out {', '.join(lacks)}",
            )
        if lacks:
            return True, f"schema {found.version}: labctl leaves out {', '.join(lacks)}"
        return True, f"schema {found.version}: has every column labctl sets"

    if check("Open vSwitch installed", ovs_installed) and check(
        "ovsdb-server reachable (permissions)", ovsdb
    ):
        check("datapath", datapath)
        check("OVS database schema", schema)
    for name, probe in driver.doctor_checks():
        check(name, probe)
    peers = ", ".join(str(h.underlay_ip) for h in lab.hosts if h.name != host)
    proto = "IP protocol 47" if lab.tunnel_type == "gre" else "UDP 4789"
    out.append(
        Check(
            host,
            "firewall (note)",
            True,
            f"allow {lab.tunnel_type.upper()} ({proto}) "
            f"from {peers or 'the other hosts'}, and TCP to the controller {lab.controller.target}",
        )
    )
    return out
