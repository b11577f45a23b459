"""One host's Open vSwitch database in memory, reached through the `ovs-vsctl` argv labctl runs.

It answers the way ovs-vsctl 3.1 does at the wire: the same JSON for
`--format=json --data=json list`, the same exit codes and the same one-line
errors (tests/e2e/test_fake_ovsdb_contract.py runs the same argv against a real
ovsdb-server and compares). Every `ovs-vsctl -- ... -- ...` is one transaction:
if any command fails, nothing of it is kept. It refuses what OVS refuses: a port
on a bridge that does not exist, a second port of the same name without
--may-exist, a column the schema does not have, a value outside a column's range.

The columns ovs-vswitchd fills in (ofport, error, is_connected) come from the
host around it: `device_exists(name)` says whether a system port's device is
there, `connected(target)` whether a controller answers at that target.

`ovsdb-client get-schema Open_vSwitch` answers with the database's schema
(tests/data/ovs-schemas/: OVS 3.1's unless the test gives another). With an
older schema the database refuses a column it lacks, as ovsdb-server does
("No column ... in table ..."; the real error also quotes the row, which the
fake leaves out).

Only what labctl asks is modelled; anything else raises NotModelled, so a
change in labctl that the fake does not understand fails the test loudly
instead of being answered wrongly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VERSION = "ovs-vsctl (Open vSwitch) 3.1.0\nDB Schema 8.3.1\n"
SCHEMAS = Path(__file__).resolve().parent.parent / "data" / "ovs-schemas"
OVS_3_1 = SCHEMAS / "ovs-3.1.0.ovsschema"
LOCAL_OFPORT = 65534  # the bridge's own internal port
TIMEOUT_EXIT = 142  # ovs-vsctl --timeout expired: killed by SIGALRM


class NotModelled(AssertionError):
    """labctl ran something the fake does not answer: extend the fake, do not guess."""


class VsctlError(Exception):
    """ovs-vsctl refused the command line: exit 1 with this message."""


@dataclass(frozen=True)
class Column:
    kind: str  # str, int, bool, enum, uuid, map
    optional: bool = False  # min 0, max 1: empty set when unset
    many: bool = False  # a set: one member shows as the bare atom, like OVSDB does
    allowed: tuple[str, ...] = ()
    writable: bool = True  # False: labctl never writes it (references, what ovs-vswitchd fills in)
    read_only: bool = False  # the schema's immutable columns: no client may write them


def _name() -> Column:
    return Column("str", read_only=True)


SCHEMA: dict[str, dict[str, Column]] = {
    "Bridge": {
        "_uuid": Column("uuid", writable=False),
        "name": _name(),
        "datapath_type": Column("str"),
        "fail_mode": Column("enum", optional=True, allowed=("secure", "standalone")),
        "protocols": Column("enum", many=True, allowed=tuple(f"OpenFlow1{v}" for v in range(6))),
        "rstp_enable": Column("bool"),
        "other_config": Column("map"),
        "ports": Column("uuid", many=True, writable=False),
        "controller": Column("uuid", many=True, writable=False),
    },
    "Port": {
        "_uuid": Column("uuid", writable=False),
        "name": _name(),
        "interfaces": Column("uuid", many=True, writable=False),
        "other_config": Column("map"),
    },
    "Interface": {
        "_uuid": Column("uuid", writable=False),
        "name": _name(),
        "type": Column("str"),
        "options": Column("map"),
        "ofport": Column("int", optional=True, writable=False),
        "error": Column("str", optional=True, writable=False),
        "statistics": Column("map", writable=False),
        "mac_in_use": Column("str", optional=True, writable=False),
        "mtu": Column("int", optional=True, writable=False),
    },
    "Controller": {
        "_uuid": Column("uuid", writable=False),
        "target": Column("str", writable=False),
        "is_connected": Column("bool", writable=False),
        "max_backoff": Column("int", optional=True),
        "inactivity_probe": Column("int", optional=True),
        "controller_queue_size": Column("int", optional=True),
    },
}
# Every table, and every column of the tables labctl uses, of the real schema (vswitch.ovsschema
# 8.3.1): ovs-vsctl matches a name by case-insensitive unique prefix among all of them, so a
# name that is ambiguous or unknown there is refused here the same way.
TABLES = (
    "AutoAttach",
    "Bridge",
    "CT_Timeout_Policy",
    "CT_Zone",
    "Controller",
    "Datapath",
    "Flow_Sample_Collector_Set",
    "Flow_Table",
    "IPFIX",
    "Interface",
    "Manager",
    "Mirror",
    "NetFlow",
    "Open_vSwitch",
    "Port",
    "QoS",
    "Queue",
    "SSL",
    "sFlow",
)
COLUMNS = {
    "Bridge": (
        "_uuid",
        "auto_attach",
        "controller",
        "datapath_id",
        "datapath_type",
        "datapath_version",
        "external_ids",
        "fail_mode",
        "flood_vlans",
        "flow_tables",
        "ipfix",
        "mcast_snooping_enable",
        "mirrors",
        "name",
        "netflow",
        "other_config",
        "ports",
        "protocols",
        "rstp_enable",
        "rstp_status",
        "sflow",
        "status",
        "stp_enable",
    ),
    "Port": (
        "_uuid",
        "bond_active_slave",
        "bond_downdelay",
        "bond_fake_iface",
        "bond_mode",
        "bond_updelay",
        "cvlans",
        "external_ids",
        "fake_bridge",
        "interfaces",
        "lacp",
        "mac",
        "name",
        "other_config",
        "protected",
        "qos",
        "rstp_statistics",
        "rstp_status",
        "statistics",
        "status",
        "tag",
        "trunks",
        "vlan_mode",
    ),
    "Interface": (
        "_uuid",
        "admin_state",
        "bfd",
        "bfd_status",
        "cfm_fault",
        "cfm_fault_status",
        "cfm_flap_count",
        "cfm_health",
        "cfm_mpid",
        "cfm_remote_mpids",
        "cfm_remote_opstate",
        "duplex",
        "error",
        "external_ids",
        "ifindex",
        "ingress_policing_burst",
        "ingress_policing_kpkts_burst",
        "ingress_policing_kpkts_rate",
        "ingress_policing_rate",
        "lacp_current",
        "link_resets",
        "link_speed",
        "link_state",
        "lldp",
        "mac",
        "mac_in_use",
        "mtu",
        "mtu_request",
        "name",
        "ofport",
        "ofport_request",
        "options",
        "other_config",
        "statistics",
        "status",
        "type",
    ),
    "Controller": (
        "_uuid",
        "connection_mode",
        "controller_burst_limit",
        "controller_queue_size",
        "controller_rate_limit",
        "enable_async_messages",
        "external_ids",
        "inactivity_probe",
        "is_connected",
        "local_gateway",
        "local_ip",
        "local_netmask",
        "max_backoff",
        "other_config",
        "role",
        "status",
        "target",
        "type",
    ),
}
# ovs-vsctl's own options: before the first command, and per command.
GLOBAL_OPTIONS = ("--timeout=", "--format=json", "--data=json", "--db=", "--no-wait")
COMMAND_OPTIONS = {
    "add-br": {"--may-exist"},
    "del-br": {"--if-exists"},
    "add-port": {"--may-exist"},
    "del-port": {"--if-exists"},
    "set": set(),
    "remove": set(),
    "br-exists": set(),
    "list": {"--columns"},
    "set-controller": set(),
    "del-controller": set(),
    "wait-until": set(),
    "init": set(),
    "show": set(),
}


COMMAND_OPTION_NAMES = set().union(*COMMAND_OPTIONS.values())


class FakeOvsdb:
    def __init__(
        self,
        device_exists: Callable[[str], bool] = lambda name: False,
        connected: Callable[[str], bool] = lambda target: False,
        schema: Path = OVS_3_1,
    ):
        self.device_exists, self.connected = device_exists, connected
        self.schema_text = schema.read_text()
        self.server_columns = {
            name: set(table["columns"]) for name, table in json.loads(self.schema_text)["tables"].items()
        }
        self.tables: dict[str, dict[str, dict]] = {t: {} for t in SCHEMA}
        self._uuids = 0
        self._ofports: dict[str, int] = {}  # interface name -> OpenFlow port, once vswitchd opened it
        self._next_ofport: dict[str, int] = {}  # per bridge
        self._json = False  # this command line asked for JSON output

    # --- the command line ------------------------------------------------------------

    def vsctl(self, argv: list[str]) -> tuple[int, str, str]:
        """Run one `ovs-vsctl ...` argv: (exit code, stdout, stderr)."""
        assert argv[0] == "ovs-vsctl", argv
        args = argv[1:]
        if "--version" in args:
            return 0, VERSION, ""
        at, first = 0, []  # command options before the first command are that command's
        while at < len(args) and args[at].startswith("-") and args[at] != "--":
            if args[at].partition("=")[0] in COMMAND_OPTION_NAMES:
                first.append(args[at])
            elif not args[at].startswith(GLOBAL_OPTIONS):
                return 1, "", f"ovs-vsctl: unrecognized option '{args[at]}'\n"
            at += 1
        self._json = {"--format=json", "--data=json"} <= set(args[:at])
        commands, current = [], list(first)
        for arg in args[at:]:
            if arg == "--":
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(arg)
        if current:
            commands.append(current)
        if not commands:
            return 1, "", "ovs-vsctl: missing command name (use --help for help)\n"
        saved = json.dumps([self.tables, self._uuids])
        out = []
        try:
            for command in commands:
                out.append(self._command(command))
        except VsctlError as exc:
            self.tables, self._uuids = json.loads(saved)  # one transaction: all or nothing
            return 1, "", f"ovs-vsctl: {exc}\n"
        except _TimedOut:
            self.tables, self._uuids = json.loads(saved)
            return TIMEOUT_EXIT, "", "fatal_signal|WARN|terminating with signal 14 (Alarm clock)\n"
        except _Exit as exc:
            self.tables, self._uuids = json.loads(saved)
            return exc.code, "", ""
        self._gc()
        self._vswitchd()
        return 0, "".join(out), ""

    def _command(self, words: list[str]) -> str:
        options = {}
        while words and words[0].startswith("--"):
            key, _, value = words[0].partition("=")
            options[key] = value
            words = words[1:]
        if not words:
            raise NotModelled(f"ovs-vsctl: options without a command: {options}")
        verb, args = words[0], words[1:]
        if verb not in COMMAND_OPTIONS:
            raise VsctlError(f"unknown command '{verb}'; use --help for help")
        for key in options:
            if key not in COMMAND_OPTIONS[verb]:
                raise VsctlError(f"'{verb}' command has no '{key}' option")
        handler = getattr(self, "_" + verb.replace("-", "_"))
        return handler(args, options) or ""

    def client(self, argv: list[str]) -> tuple[int, str, str]:
        """Run one `ovsdb-client ...` argv: only reading the schema is modelled."""
        if argv[1:] == ["get-schema", "Open_vSwitch"]:
            return 0, self.schema_text, ""
        raise NotModelled(f"ovsdb-client: {argv}")

    # --- commands ----------------------------------------------------------------------

    def _init(self, args, options) -> None:
        return None

    def _show(self, args, options) -> str:
        lines = ["00000000-0000-4000-8000-000000000000"]
        for bridge in self.tables["Bridge"].values():
            lines.append(f"    Bridge {bridge['name']}")
            for uuid in bridge["controller"]:
                lines.append(f'        Controller "{self.tables["Controller"][uuid]["target"]}"')
            if bridge["fail_mode"]:
                lines.append(f"        fail_mode: {bridge['fail_mode'][0]}")
            for uuid in bridge["ports"]:
                port = self.tables["Port"][uuid]
                lines.append(f"        Port {port['name']}")
                for iface_uuid in port["interfaces"]:
                    iface = self.tables["Interface"][iface_uuid]
                    lines.append(f"            Interface {iface['name']}")
                    if iface["type"]:
                        lines.append(f"                type: {iface['type']}")
        lines.append('    ovs_version: "3.1.0"')
        return "\n".join(lines) + "\n"

    def _add_br(self, args, options) -> None:
        if len(args) != 1:
            raise NotModelled(f"add-br {args}: only `add-br BRIDGE` is modelled")
        name = args[0]
        if self._bridge(name) is not None:
            if "--may-exist" in options:
                return
            raise VsctlError(
                f"cannot create a bridge named {name} because a bridge named {name} already exists"
            )
        owner = self._bridge_of_port(name)
        if owner is not None:
            raise VsctlError(
                f"cannot create a bridge named {name} because a port named {name} already exists on "
                f"bridge {owner['name']}"
            )
        port = self._new_port(name, "internal")
        self._insert(
            "Bridge",
            name=name,
            datapath_type="",
            fail_mode=[],
            protocols=[],
            rstp_enable=False,
            other_config={},
            ports=[port],
            controller=[],
        )

    def _del_br(self, args, options) -> None:
        [name] = args
        bridge = self._bridge(name)
        if bridge is None:
            if "--if-exists" in options:
                return
            raise VsctlError(f"no bridge named {name}")
        del self.tables["Bridge"][bridge["_uuid"]]  # its ports, interfaces, controllers go with it

    def _add_port(self, args, options) -> None:
        if len(args) != 2:
            raise NotModelled(f"add-port {args}: only `add-port BRIDGE PORT` is modelled")
        bridge_name, name = args
        bridge = self._bridge(bridge_name)
        if bridge is None:
            raise VsctlError(f"no bridge named {bridge_name}")
        owner = self._bridge_of_port(name)
        if owner is not None:
            if "--may-exist" not in options:
                raise VsctlError(
                    f"cannot create a port named {name} because a port named {name} already exists on "
                    f"bridge {owner['name']}"
                )
            if owner is not bridge:
                raise VsctlError(
                    f'"--may-exist add-port {bridge_name} {name}" but {name} is actually attached to '
                    f"bridge {owner['name']}"
                )
            return
        bridge["ports"].append(self._new_port(name, ""))

    def _del_port(self, args, options) -> None:
        if len(args) != 2:
            raise NotModelled(f"del-port {args}: only `del-port BRIDGE PORT` is modelled")
        bridge_name, name = args
        bridge = self._bridge(bridge_name)
        if bridge is None:
            raise VsctlError(f"no bridge named {bridge_name}")
        owner = self._bridge_of_port(name)
        if owner is None:
            if "--if-exists" in options:
                return
            raise VsctlError(f"no port named {name}")
        if owner is not bridge:
            raise VsctlError(f"bridge {bridge_name} does not have a port {name}")
        uuid = next(u for u in bridge["ports"] if self.tables["Port"][u]["name"] == name)
        bridge["ports"].remove(uuid)

    def _set_controller(self, args, options) -> None:
        name, *targets = args
        bridge = self._bridge(name)
        if bridge is None:
            raise VsctlError(f"no bridge named {name}")
        bridge["controller"] = [
            self._insert(
                "Controller",
                target=t,
                is_connected=False,
                max_backoff=[],
                inactivity_probe=[],
                controller_queue_size=[],
            )
            for t in targets
        ]

    def _del_controller(self, args, options) -> None:
        [name] = args
        bridge = self._bridge(name)
        if bridge is None:
            raise VsctlError(f"no bridge named {name}")
        bridge["controller"] = []

    def _set(self, args, options) -> None:
        table, record, *settings = args
        table = self._table(table)
        row = self._row(table, record)
        for setting in settings:
            column, _, value = setting.partition("=")
            if not value:
                raise VsctlError(f'{setting}: argument does not end in "=" followed by a value.')
            column, _, key = column.partition(":")
            column, spec = self._column(table, column)
            if column not in self.server_columns[table]:  # ovs-vsctl knows it, this database does not
                raise VsctlError(
                    f'transaction error: {{"details":"No column {column} in table {table}.",'
                    '"error":"unknown column"}'
                )
            if spec.read_only:
                raise VsctlError(f"cannot modify read-only column {column} in table {table}")
            if not spec.writable:
                raise NotModelled(f"set {table} {column}: the fake does not let clients write it")
            if key:
                if spec.kind != "map":
                    raise VsctlError(f"cannot specify key to set for non-map column {column}")
                row[column][key] = _unquote(value)
            elif spec.kind == "map":
                raise NotModelled(f"set {table} {column}={value}: only COLUMN:KEY=VALUE is modelled for maps")
            else:
                row[column] = _parse(spec, value)

    def _br_exists(self, args, options) -> None:
        [name] = args
        if self._bridge(name) is None:
            raise _Exit(2)  # ovs-vsctl br-exists: exit 2, nothing printed

    def _remove(self, args, options) -> None:
        table, record, column, *values = args
        table = self._table(table)
        row = self._row(table, record)
        column, spec = self._column(table, column)
        if spec.kind != "map":
            raise NotModelled(f"remove {table} {column}: only keys of map columns are modelled")
        for key in values:
            if "=" in key:
                raise NotModelled(f"remove {table} {column} {key}: only bare keys are modelled")
            row[column].pop(_unquote(key), None)  # a key that is not there is no error

    def _list(self, args, options) -> str:
        if len(args) != 1:
            raise NotModelled(f"list {args}: only `list TABLE` is modelled")
        table = self._table(args[0])
        if "--columns" in options:
            columns = [self._column(table, c)[0] for c in options["--columns"].split(",")]
        else:
            columns = list(SCHEMA[table])
        if not self._json:
            raise NotModelled("list without --format=json --data=json: only JSON output is modelled")
        rows = [[self._encode(table, column, row) for column in columns] for row in self._rows(table)]
        return json.dumps({"data": rows, "headings": columns}, separators=(",", ":")) + "\n"

    def _wait_until(self, args, options) -> None:
        table, record, *conditions = args
        table = self._table(table)
        row = self._row(table, record)
        for condition in conditions:
            column, _, value = condition.partition("=")
            column, spec = self._column(table, column)
            if self._live(table, column, row) != _parse(spec, value):
                raise _TimedOut  # nothing changes while ovs-vsctl waits: the fake has no clock
        return None

    # --- names, as ovs-vsctl matches them -------------------------------------------------

    def _table(self, word: str) -> str:
        found = _matches(word, TABLES)
        if not found:
            raise VsctlError(f'unknown table "{word}"')
        if len(found) > 1:
            raise VsctlError(f'"{word}" matches multiple table names: {", ".join(found)}')
        if found[0] not in SCHEMA:
            raise NotModelled(f"table {found[0]}: a real table the fake does not model")
        return found[0]

    def _column(self, table: str, word: str) -> tuple[str, Column]:
        found = _matches(word, COLUMNS[table])
        if not found:
            raise VsctlError(f'{table} does not contain a column whose name matches "{word}"')
        if len(found) > 1:
            raise VsctlError(
                f'{table} contains more than one column whose name matches "{word}": {", ".join(found)}'
            )
        if found[0] not in SCHEMA[table]:
            raise NotModelled(f"{table}.{found[0]}: a real column the fake does not model")
        return found[0], SCHEMA[table][found[0]]

    # --- rows ------------------------------------------------------------------------------

    def _insert(self, table: str, **row) -> str:
        self._uuids += 1
        uuid = f"00000000-0000-4000-8000-{self._uuids:012x}"
        self.tables[table][uuid] = {"_uuid": uuid, **row}
        return uuid

    def _new_port(self, name: str, type_: str) -> str:
        iface = self._insert(
            "Interface",
            name=name,
            type=type_,
            options={},
            ofport=[],
            error=[],
            statistics={},
            mac_in_use=[],
            mtu=[],
        )
        return self._insert("Port", name=name, interfaces=[iface], other_config={})

    def _bridge(self, name: str) -> dict | None:
        return next((b for b in self.tables["Bridge"].values() if b["name"] == name), None)

    def _bridge_of_port(self, name: str) -> dict | None:
        for bridge in self.tables["Bridge"].values():
            if any(self.tables["Port"][u]["name"] == name for u in bridge["ports"]):
                return bridge
        return None

    def _row(self, table: str, record: str) -> dict:
        rows = self.tables[table]
        if record in rows:
            return rows[record]
        if table == "Controller":  # ovs-vsctl names a bridge's controller by the bridge
            bridge = self._bridge(record)
            if bridge is not None and len(bridge["controller"]) == 1:
                return rows[bridge["controller"][0]]
        else:
            found = next((r for r in rows.values() if r.get("name") == record), None)
            if found is not None:
                return found
        raise VsctlError(f'no row "{record}" in table {table}')

    def _rows(self, table: str) -> list[dict]:
        return list(self.tables[table].values())

    def _gc(self) -> None:
        """Ports, interfaces and controllers no bridge refers to any more are gone (OVSDB's
        garbage collection of non-root rows)."""
        ports = {u for b in self.tables["Bridge"].values() for u in b["ports"]}
        self.tables["Port"] = {u: r for u, r in self.tables["Port"].items() if u in ports}
        ifaces = {u for p in self.tables["Port"].values() for u in p["interfaces"]}
        self.tables["Interface"] = {u: r for u, r in self.tables["Interface"].items() if u in ifaces}
        ctls = {u for b in self.tables["Bridge"].values() for u in b["controller"]}
        self.tables["Controller"] = {u: r for u, r in self.tables["Controller"].items() if u in ctls}

    # --- what ovs-vswitchd would fill in --------------------------------------------------

    def _vswitchd(self) -> None:
        """OpenFlow port numbers, in the order ports were added, once their device opens."""
        for bridge in self.tables["Bridge"].values():
            for uuid in bridge["ports"]:
                for iface_uuid in self.tables["Port"][uuid]["interfaces"]:
                    iface = self.tables["Interface"][iface_uuid]
                    if iface["name"] in self._ofports or self._open_error(iface):
                        continue
                    if iface["type"] == "internal":
                        self._ofports[iface["name"]] = LOCAL_OFPORT
                    else:
                        number = self._next_ofport.get(bridge["name"], 1)
                        self._ofports[iface["name"]] = number
                        self._next_ofport[bridge["name"]] = number + 1

    def _open_error(self, iface: dict) -> str | None:
        if iface["type"] == "" and not self.device_exists(iface["name"]):
            return f"could not open network device {iface['name']} (No such device)"
        return None

    def _live(self, table: str, column: str, row: dict):
        if table == "Interface" and column == "error":
            return self._open_error(row)
        if table == "Interface" and column == "ofport":
            return -1 if self._open_error(row) else self._ofports.get(row["name"])
        if table == "Controller" and column == "is_connected":
            return self.connected(row["target"])
        return row[column]

    def _encode(self, table: str, column: str, row: dict):
        spec, value = SCHEMA[table][column], self._live(table, column, row)
        if column == "_uuid":
            return ["uuid", value]
        if spec.kind == "map":
            return ["map", [[k, value[k]] for k in sorted(value)]]
        if spec.optional and not isinstance(value, list):  # a live value: None when unset
            value = [] if value is None else [value]
        if spec.optional or spec.many:
            atoms = [["uuid", v] if spec.kind == "uuid" else v for v in value]
            return atoms[0] if len(atoms) == 1 else ["set", atoms]
        return value

    # --- what is there, for the world around it and for tests -----------------------------

    def controllers(self) -> dict[str, list[str]]:
        """Bridge name -> the controller targets it is pointed at."""
        return {
            b["name"]: [self.tables["Controller"][u]["target"] for u in b["controller"]]
            for b in self.tables["Bridge"].values()
        }

    def bridge_settings(self, name: str) -> dict:
        """What `up` may change on a bridge and `down` must put back."""
        row = self._bridge(name)
        columns = ("datapath_type", "fail_mode", "protocols", "rstp_enable", "other_config")
        return {c: row[c] for c in columns}

    def bridges(self) -> dict[str, list[str]]:
        """Bridge name -> its port names."""
        return {
            b["name"]: sorted(self.tables["Port"][u]["name"] for u in b["ports"])
            for b in self.tables["Bridge"].values()
        }


class _TimedOut(Exception):
    pass


class _Exit(Exception):
    """A command that ends ovs-vsctl with this exit code and no message (br-exists)."""

    def __init__(self, code: int):
        self.code = code


def _matches(word: str, names: tuple[str, ...]) -> list[str]:
    """ovs-vsctl's name lookup: a case-insensitive exact match, else every unique prefix."""
    exact = [n for n in names if n.lower() == word.lower()]
    return exact or sorted(n for n in names if n.lower().startswith(word.lower()))


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _parse(spec: Column, value: str):
    value = _unquote(value)
    if value == "[]" and (spec.optional or spec.many):  # the empty set
        return []
    if spec.kind == "bool":
        if value not in ("true", "false"):
            raise VsctlError(f'"{value}" is not a valid boolean (use "true" or "false")')
        return value == "true"
    if spec.kind == "int":
        try:
            number = int(value)
        except ValueError:
            raise VsctlError(f'"{value}" is not a valid integer or range') from None
        return [number] if spec.optional else number
    if spec.kind == "enum":
        values = value.split(",") if spec.many else [value]
        for v in values:
            if v not in spec.allowed:
                raise VsctlError(
                    f"constraint violation: {v} is not one of the allowed values "
                    f"([{', '.join(spec.allowed)}])"
                )
        return values
    return [value] if spec.optional else value
