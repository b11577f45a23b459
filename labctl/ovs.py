"""Open vSwitch configuration as small command objects, applied in one transaction.

The plan describes what each host's OVS should hold as a list of commands
(AddBridge, AddPort, SetController). `Ovs.snapshot()` reads what a host has in
one `ovs-vsctl` call; `pending()` keeps only the commands whose effect is not
there yet; `Ovs.apply()` renders them into ONE `ovs-vsctl -- ... -- ...` argv
with --may-exist, so `up` twice changes nothing. The same code runs over any
transport: a simulated host's namespace, this machine or SSH.

Hosts run different OVS versions (XCP-ng 8.2 ships 2.5, Debian 12 3.1), and a
column newer than a host's OVS makes the whole transaction fail ("No column
controller_queue_size in table Controller"). `Ovs.schema()` reads the host's
database schema once, and each command leaves out the settings of
OPTIONAL_COLUMNS the host lacks (tests/data/ovs-schemas/ has the schemas of the
supported hypervisors).
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

from labctl.errors import CommandError, ProvisionError
from labctl.transport.base import Transport

Pairs = tuple[tuple[str, str], ...]

# Columns labctl sets when the host's OVS has them, and does without otherwise:
# (table, column) -> the OVS release that added it, for doctor and the docs.
OPTIONAL_COLUMNS: dict[tuple[str, str], str] = {
    ("Controller", "controller_queue_size"): "2.13",
}
SCHEMA_READ = ["ovsdb-client", "get-schema", "Open_vSwitch"]  # no --timeout: OVS 2.5's has none


@dataclass(frozen=True)
class OvsSchema:
    """The columns of a host's Open_vSwitch database, as its ovsdb-server serves them.

    `tables` None: any column (what `labctl plan` shows, touching no host)."""

    version: str
    tables: dict[str, frozenset[str]] | None

    @classmethod
    def parse(cls, text: str) -> OvsSchema:
        schema = json.loads(text)
        return cls(
            schema["version"],
            {name: frozenset(table["columns"]) for name, table in schema["tables"].items()},
        )

    @classmethod
    def unreadable(cls) -> OvsSchema:
        """A schema labctl could not read: it sets no optional column."""
        return cls("unknown", {})

    def has(self, table: str, column: str) -> bool:
        return self.tables is None or column in self.tables.get(table, ())

    def lacks(self) -> list[str]:
        """The optional columns this schema does not have: Table.column (OVS N+)."""
        return [f"{t}.{c} (OVS {since}+)" for (t, c), since in OPTIONAL_COLUMNS.items() if not self.has(t, c)]


ANY_SCHEMA = OvsSchema("any", None)


def _map_arg(column: str, pairs: Pairs) -> list[str]:
    return [f"{column}:{key}={value}" for key, value in pairs]


@dataclass(frozen=True)
class AddBridge:
    name: str
    datapath_type: str = "system"
    fail_mode: str | None = None
    protocols: str | None = None
    rstp: bool = False  # Rapid Spanning Tree: breaks the loops of a tunnel mesh
    other_config: Pairs = ()

    def argv(self, schema: OvsSchema = ANY_SCHEMA) -> list[str]:
        settings = [f"datapath_type={self.datapath_type}", f"rstp_enable={str(self.rstp).lower()}"]
        if self.fail_mode:
            settings.append(f"fail_mode={self.fail_mode}")
        if self.protocols:
            settings.append(f"protocols={self.protocols}")
        settings += _map_arg("other_config", self.other_config)
        return ["--may-exist", "add-br", self.name, "--", "set", "bridge", self.name, *settings]

    def satisfied_by(self, snap: OvsSnapshot) -> bool:
        have = snap.bridges.get(self.name)
        return (
            have is not None
            and have.datapath_type == self.datapath_type
            and have.fail_mode == (self.fail_mode or "")
            and (self.protocols is None or have.protocols == [self.protocols])
            and have.rstp == self.rstp
            and all(have.other_config.get(k) == v for k, v in self.other_config)
        )

    def describe(self) -> str:
        return f"bridge {self.name} ({self.datapath_type}{', ' + self.protocols if self.protocols else ''})"


@dataclass(frozen=True)
class AddPort:
    bridge: str
    name: str
    type: str = ""
    options: Pairs = ()
    port_config: Pairs = ()  # the Port's other_config, e.g. rstp-port-admin-edge
    # Its OpenFlow port number (ofport_request): a port made again (a tunnel someone
    # deleted, a VM rebuilt) comes back under the same number, so the flows a controller
    # installed toward it, and what it learned about it, stay true.
    ofport: int | None = None

    def argv(self, schema: OvsSchema = ANY_SCHEMA) -> list[str]:
        out = ["--may-exist", "add-port", self.bridge, self.name]
        settings = []
        if self.type or self.options:
            settings += [f"type={self.type or 'system'}", *_map_arg("options", self.options)]
        if self.ofport is not None:
            settings.append(f"ofport_request={self.ofport}")
        if settings:
            out += ["--", "set", "interface", self.name, *settings]
        if self.port_config:
            out += ["--", "set", "port", self.name, *_map_arg("other_config", self.port_config)]
        return out

    def satisfied_by(self, snap: OvsSnapshot) -> bool:
        bridge = snap.bridges.get(self.bridge)
        iface = snap.interfaces.get(self.name)
        return (
            bridge is not None
            and self.name in bridge.ports
            and iface is not None
            and iface.type == self.type
            and iface.options == dict(self.options)
            and (self.ofport is None or iface.ofport_request == self.ofport)
            and all(snap.port_config.get(self.name, {}).get(k) == v for k, v in self.port_config)
        )

    def describe(self) -> str:
        if self.type in ("gre", "vxlan", "geneve"):
            return f"port {self.name} on {self.bridge} ({self.type} to {dict(self.options).get('remote_ip')})"
        return f"port {self.name} on {self.bridge}"


@dataclass(frozen=True)
class SetController:
    bridge: str
    targets: tuple[str, ...]
    max_backoff_ms: int = 1000
    inactivity_probe_ms: int = 5000
    queue_size: int = 512  # packet-ins OVS holds for a busy controller (default 100, max 512)

    def argv(self, schema: OvsSchema = ANY_SCHEMA) -> list[str]:
        if not self.targets:
            return ["del-controller", self.bridge]
        # Short backoff: a bridge that lost its controller finds it again within a second.
        out = ["set-controller", self.bridge, *self.targets]
        out += [
            "--",
            "set",
            "controller",
            self.bridge,
            f"max_backoff={self.max_backoff_ms}",
            f"inactivity_probe={self.inactivity_probe_ms}",
        ]
        if schema.has("Controller", "controller_queue_size"):  # OVS 2.13+; 2.5 holds its default 100
            out.append(f"controller_queue_size={self.queue_size}")
        return out

    def satisfied_by(self, snap: OvsSnapshot) -> bool:
        bridge = snap.bridges.get(self.bridge)
        return bridge is not None and sorted(bridge.controllers) == sorted(self.targets)

    def describe(self) -> str:
        return f"controller of {self.bridge} -> {', '.join(self.targets) or 'none'}"


@dataclass(frozen=True)
class DelPort:
    bridge: str
    name: str

    def argv(self, schema: OvsSchema = ANY_SCHEMA) -> list[str]:
        return ["--if-exists", "del-port", self.bridge, self.name]

    def satisfied_by(self, snap: OvsSnapshot) -> bool:
        bridge = snap.bridges.get(self.bridge)
        return bridge is None or self.name not in bridge.ports

    def describe(self) -> str:
        return f"unplug port {self.name} from {self.bridge}"


OvsCommand = AddBridge | AddPort | SetController | DelPort


# --- putting a real host's OVS back as it was ------------------------------
# A real host keeps its Open vSwitch after `down`. What `up` adds to it is journalled
# *before* it is added, with what it changes, so `down` removes exactly that and puts
# back what was there: a bridge labctl made goes; on a bridge that was there before,
# labctl's ports go and its settings and controllers are restored.


@dataclass(frozen=True)
class Undo:
    """What `down` needs to undo one command on a real host: a journal record's kind and fields."""

    kind: str  # ovs-bridge, ovs-port, ovs-controller or ovs-bridge-settings
    bridge: str
    fields: tuple[tuple[str, object], ...] = ()


def undo_of(command: OvsCommand, snap: OvsSnapshot) -> Undo | None:
    """How to undo `command` on the OVS that `snap` read (None: nothing to undo, or
    undoing the bridge it sits on undoes it too)."""
    if isinstance(command, AddBridge):
        have = snap.bridges.get(command.name)
        if have is None:
            return Undo("ovs-bridge", command.name)
        before = {
            "datapath_type": have.datapath_type,
            "fail_mode": have.fail_mode,
            "protocols": list(have.protocols),
            "rstp": have.rstp,
            "other_config": {key: have.other_config.get(key) for key, _ in command.other_config},
        }
        return Undo("ovs-bridge-settings", command.name, (("before", before),))
    bridge = snap.bridges.get(getattr(command, "bridge", ""))
    if bridge is None:
        return None
    if isinstance(command, AddPort) and command.name not in bridge.ports:
        return Undo("ovs-port", command.bridge, (("port", command.name),))
    if isinstance(command, SetController):
        return Undo("ovs-controller", command.bridge, (("before", list(bridge.controllers)),))
    return None


def undo_argv(record: dict) -> list[str]:
    """The ovs-vsctl words (after `ovs-vsctl --timeout=N`) that undo one journalled Undo."""
    kind, bridge = record["kind"], record["bridge"]
    if kind == "ovs-bridge":
        return ["--if-exists", "del-br", bridge]
    if kind == "ovs-port":
        return ["--if-exists", "del-port", bridge, record["port"]]
    if kind == "ovs-controller":
        before = record["before"]
        return ["set-controller", bridge, *before] if before else ["del-controller", bridge]
    if kind == "ovs-bridge-settings":
        before = record["before"]
        settings = [
            f'datapath_type="{before["datapath_type"]}"',  # quoted: ovs-vsctl refuses a bare empty value
            f"fail_mode={before['fail_mode'] or '[]'}",
            f"protocols={','.join(before['protocols']) or '[]'}",
            f"rstp_enable={str(before['rstp']).lower()}",
        ]
        settings += [f"other_config:{k}={v}" for k, v in before["other_config"].items() if v is not None]
        argv = ["set", "bridge", bridge, *settings]
        for key in (k for k, v in before["other_config"].items() if v is None):
            argv += ["--", "remove", "bridge", bridge, "other_config", key]
        return argv
    raise ValueError(f"not an OVS undo record: {kind}")


def unplug_stale(commands: Sequence[OvsCommand], snap: OvsSnapshot, ports: set[str]) -> list[DelPort]:
    """Ports OVS still has whose device was re-created (a VM rebuilt after drift).

    OVS keeps a socket on the old device; the port must be deleted and added
    again -- in two transactions, since in one OVS would see no change at all."""
    return [
        DelPort(c.bridge, c.name)
        for c in commands
        if isinstance(c, AddPort) and c.name in ports and c.satisfied_by(snap)
    ]


def render(commands: Sequence[OvsCommand], timeout: int = 30, schema: OvsSchema = ANY_SCHEMA) -> list[str]:
    """One ovs-vsctl argv that applies all commands in one transaction, with only the
    optional columns `schema` has."""
    argv = ["ovs-vsctl", f"--timeout={timeout}"]
    for command in commands:
        argv += ["--", *command.argv(schema)]
    return argv


# --- reading what a host has ------------------------------------------------


@dataclass
class BridgeState:
    name: str
    datapath_type: str
    fail_mode: str
    protocols: list[str]
    rstp: bool
    other_config: dict[str, str]
    ports: list[str] = field(default_factory=list)
    controllers: list[str] = field(default_factory=list)
    connected: dict[str, bool] = field(default_factory=dict)


@dataclass
class InterfaceState:
    name: str
    type: str
    options: dict[str, str]
    ofport: int | None
    error: str | None
    statistics: dict[str, int]
    mac: str | None
    mtu: int | None = None  # what the device has (ovs-vswitchd fills it in)
    link_state: str | None = None  # "up"/"down" as ovs-vswitchd last wrote it; None: not yet
    admin_state: str | None = None
    ofport_request: int | None = None


@dataclass
class OvsSnapshot:
    bridges: dict[str, BridgeState]
    interfaces: dict[str, InterfaceState]
    port_config: dict[str, dict[str, str]] = field(default_factory=dict)  # Port other_config by name


def _ovsdb(value):
    """Decode an OVSDB JSON value (atoms, ["set", ...], ["map", ...], ["uuid", ...])."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        tag, body = value
        if tag == "set":
            return [_ovsdb(v) for v in body]
        if tag == "map":
            return {_ovsdb(k): _ovsdb(v) for k, v in body}
        if tag in ("uuid", "named-uuid"):
            return body
    return value


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _single(value):
    """OVSDB encodes an optional value as an empty set."""
    return None if value == [] else value


_QUERIES = [
    ("Bridge", "_uuid,name,datapath_type,fail_mode,protocols,rstp_enable,other_config,ports,controller"),
    ("Port", "_uuid,name,interfaces,other_config"),
    (
        "Interface",
        "_uuid,name,type,options,ofport,error,statistics,mac_in_use,mtu,link_state,admin_state,ofport_request",
    ),
    ("Controller", "_uuid,target,is_connected"),
]


def _tables(text: str) -> list[list[dict]]:
    decoder, pos, tables = json.JSONDecoder(), 0, []
    text = text.strip()
    while pos < len(text):
        obj, pos = decoder.raw_decode(text, pos)
        while pos < len(text) and text[pos].isspace():
            pos += 1
        tables.append([dict(zip(obj["headings"], map(_ovsdb, row))) for row in obj["data"]])
    return tables


def parse_snapshot(text: str) -> OvsSnapshot:
    bridges_t, ports_t, ifaces_t, ctls_t = _tables(text)
    ifaces_by_uuid = {}
    interfaces = {}
    for row in ifaces_t:
        ofport = _single(row["ofport"])
        state = InterfaceState(
            name=row["name"],
            type=row["type"],
            options=row["options"] or {},
            ofport=ofport if isinstance(ofport, int) and ofport >= 0 else None,
            error=_single(row["error"]),
            statistics=row["statistics"] or {},
            mac=_single(row["mac_in_use"]),
            mtu=_single(row.get("mtu", [])),
            link_state=_single(row["link_state"]),
            admin_state=_single(row["admin_state"]),
            ofport_request=_single(row["ofport_request"]),
        )
        ifaces_by_uuid[row["_uuid"]] = state
        interfaces[state.name] = state
    port_names = {row["_uuid"]: row["name"] for row in ports_t}
    controllers = {row["_uuid"]: row for row in ctls_t}
    bridges = {}
    for row in bridges_t:
        ctl_rows = [controllers[u] for u in _as_list(row["controller"]) if u in controllers]
        bridges[row["name"]] = BridgeState(
            name=row["name"],
            datapath_type=row["datapath_type"],
            fail_mode=_single(row["fail_mode"]) or "",
            protocols=_as_list(row["protocols"]),
            rstp=bool(row["rstp_enable"]),
            other_config=row["other_config"] or {},
            ports=sorted(port_names[u] for u in _as_list(row["ports"]) if u in port_names),
            controllers=[c["target"] for c in ctl_rows],
            connected={c["target"]: bool(c["is_connected"]) for c in ctl_rows},
        )
    port_config = {row["name"]: row.get("other_config") or {} for row in ports_t}
    return OvsSnapshot(bridges, interfaces, port_config)


def pending(commands: Sequence[OvsCommand], snap: OvsSnapshot) -> list[OvsCommand]:
    """The commands whose effect the host does not show yet."""
    return [c for c in commands if not c.satisfied_by(snap)]


def rstp_unsettled(show: str) -> list[str]:
    """Ports of `ovs-appctl rstp/show` that have not settled yet.

    Settled: forwarding, or discarding as an alternate/backup (the loop RSTP
    broke). A designated or root port still discarding or learning is not."""
    unsettled = []
    for line in show.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] in ("Discarding", "Learning", "Forwarding"):
            port, role, state = fields[:3]
            if state != "Forwarding" and role not in ("Alternate", "Backup", "Disabled"):
                unsettled.append(f"{port} ({role.lower()}, {state.lower()})")
    return unsettled


def ofctl(protocols: str, *args: str) -> list[str]:
    """An ovs-ofctl command in the bridge's OpenFlow version: a 1.3-only bridge refuses
    ovs-ofctl's default 1.0 (the connection just closes, 'Broken pipe')."""
    return ["ovs-ofctl", "-O", protocols, *args]


# The schema each host's database answered, by the transport that reaches the host: read
# once per labctl run, not once per phase (an `up` of 64 hosts read it 128 times, a process
# each on a machine whose cores are busy starting 64 switches). An unreadable answer is not
# kept: the next phase asks again.
_SCHEMAS: weakref.WeakKeyDictionary[Transport, OvsSchema] = weakref.WeakKeyDictionary()


class Ovs:
    """The OVS of one host, reached over its transport."""

    def __init__(self, transport: Transport):
        self.transport = transport

    def schema(self) -> OvsSchema:
        """The host database's schema (`ovsdb-client get-schema`), read once per transport."""
        known = _SCHEMAS.get(self.transport)
        if known is not None:
            return known
        result = self.transport.run(SCHEMA_READ, check=False, timeout=15)
        try:
            schema = OvsSchema.parse(result.stdout) if result.ok else None
        except (ValueError, KeyError, TypeError):
            schema = None
        if schema is None:
            return OvsSchema.unreadable()
        _SCHEMAS[self.transport] = schema
        return schema

    def snapshot(self) -> OvsSnapshot:
        argv = ["ovs-vsctl", "--timeout=10", "--format=json", "--data=json"]
        for table, columns in _QUERIES:
            argv += ["--", f"--columns={columns}", "list", table]
        return parse_snapshot(self.transport.run(argv).stdout)

    def apply(self, commands: Sequence[OvsCommand]) -> None:
        if commands:
            self.transport.run(render(commands, schema=self.schema()))

    def ensure(self, commands: Sequence[OvsCommand]) -> list[OvsCommand]:
        """Apply what is missing; return the commands that changed something."""
        todo = pending(commands, self.snapshot())
        self.apply(todo)
        return todo

    def forget_cached_misses(self) -> None:
        """Empty the datapath's flow cache, so every packet is looked up afresh.

        A table miss while the bridge has no controller session is cached in the datapath
        as a drop (nobody to send the packet-in to). When a session comes back nothing in
        the flow table changes, so OVS keeps that entry, and a VM retrying its ARP keeps it
        from idling out: the VM stays cut off until the controller happens to change a flow."""
        self.transport.run(["ovs-appctl", "revalidator/purge"])

    def wait_rstp(self, bridge: str, timeout: float) -> None:
        """Wait until RSTP has settled every port of the bridge."""
        deadline = time.monotonic() + timeout
        while True:
            unsettled = rstp_unsettled(self.transport.run(["ovs-appctl", "rstp/show", bridge]).stdout)
            if not unsettled:
                return
            if time.monotonic() > deadline:
                raise ProvisionError(
                    self.transport.name,
                    f"settle RSTP on {bridge}",
                    f"not settled after {timeout:g}s: {', '.join(unsettled)}",
                )
            time.sleep(0.1)

    def wait_connected(self, bridge: str, timeout: float) -> None:
        try:
            self.transport.run(
                [
                    "ovs-vsctl",
                    f"--timeout={max(1, round(timeout))}",
                    "wait-until",
                    "Controller",
                    bridge,
                    "is_connected=true",
                ],
                timeout=timeout + 5,
            )
        except CommandError as exc:
            raise ProvisionError(
                self.transport.name,
                f"connect {bridge} to its controller",
                f"{bridge} did not connect within {timeout:g}s ({exc.stderr or 'timed out'})",
            ) from None
