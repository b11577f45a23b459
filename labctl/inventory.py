"""The inventory file: schema, defaults, and errors that name file, line and field.

`load_inventory(path)` reads YAML safely, validates it completely and returns
the resolved `Lab` model (see model.py) -- or raises `InventoryError` listing
every problem as `FILE:LINE: FIELD: what was expected, what was found`.
Nothing touches the machine before this has succeeded.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from labctl.errors import InventoryError
from labctl.model import RYU_SWITCH_FOR, Lab, resolve
from labctl.state import LAB_NAME_PATTERN, LAB_NAME_RULE
from labctl.yamlfile import LoadedYaml, YamlProblem, load_yaml, read_text

MAX_HOSTS = 64
MAX_VMS_PER_HOST = 16
RYU_SWITCH_VERSIONS = {app: version for version, app in RYU_SWITCH_FOR.items()}

# Names reach namespace names, interface names (15 characters at most) and
# command lines, so they are kept to a small, shell-safe alphabet.
NAME_RULE = "1-11 characters: lower-case letters, digits, '-' or '_', starting with a letter"
APP_RULE = (
    "a Python module path such as forwarding.l2_learning (letters, digits, '_' and '.'), "
    "or for POX an option such as --no-flood or --hold-down=5"
)


def _matcher(pattern: str, rule: str, kind: str):
    regex = re.compile(pattern)

    def check(value: Any) -> Any:
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise PydanticCustomError("labctl_name", "expected {kind}: {rule}", {"kind": kind, "rule": rule})
        return value

    return BeforeValidator(check)


def _ip(kind: str, parse, example: str):
    def check(value: Any) -> Any:
        try:
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise ValueError
            return parse(value)
        except ValueError:
            raise PydanticCustomError(
                "labctl_ip", "expected {kind}, like {example}", {"kind": kind, "example": example}
            ) from None

    return BeforeValidator(check)


def _mac(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", value):
        if int(value[:2], 16) & 1:
            raise PydanticCustomError("labctl_mac", "expected a unicast MAC address (first octet even)")
        return value.lower()
    raise PydanticCustomError("labctl_mac", "expected a MAC address like 02:00:ac:10:00:01")


def _version(value: Any) -> Any:
    # YAML reads `openflow: 1.0` as the float 1.0; accept it as the text "1.0".
    return f"{value:.1f}" if isinstance(value, float) else value


Name = Annotated[str, _matcher(r"[a-z][a-z0-9_-]{0,10}", NAME_RULE, "a name")]
LabName = Annotated[str, _matcher(LAB_NAME_PATTERN, LAB_NAME_RULE, "a lab name")]
AppName = Annotated[
    str,
    _matcher(
        r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*|--[a-z][a-z0-9_-]*(=[A-Za-z0-9_.:,/-]+)?",
        APP_RULE,
        "an app",
    ),
]
IPv4Prefix = Annotated[
    ipaddress.IPv4Interface,
    _ip("an IPv4 address with a prefix length", ipaddress.IPv4Interface, "172.16.0.1/24"),
]
IPv4Addr = Annotated[ipaddress.IPv4Address, _ip("an IPv4 address", ipaddress.IPv4Address, "10.250.0.1")]
IPv4Net = Annotated[ipaddress.IPv4Network, _ip("an IPv4 network", ipaddress.IPv4Network, "10.250.0.0/24")]
Mac = Annotated[str, BeforeValidator(_mac)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VMSpec(_Strict):
    ip: IPv4Prefix
    mac: Mac | None = None


_PATH = r"^[A-Za-z0-9_./~+-]{1,4096}$"


class HostSpec(_Strict):
    driver: Literal["sim", "kvm", "xen", "xenserver", "ovs"] = "sim"
    address: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.@:\[\]-]{1,253}$")
    underlay_ip: IPv4Addr | None = None
    vms: dict[Name, VMSpec] = Field(default_factory=dict, max_length=MAX_VMS_PER_HOST)
    # How a real host is reached and what its driver needs (docs/drivers.md).
    user: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_-]{0,31}$")  # SSH user; sudo if not root
    port: int = Field(default=22, ge=1, le=65535)  # SSH port
    key: str | None = Field(default=None, pattern=_PATH)  # SSH private key; the agent when unset
    # a file, or off (YAML reads a bare off as false): no host key checking, logged
    known_hosts: Annotated[str | None, BeforeValidator(lambda v: "off" if v is False else v)] = Field(
        default=None, pattern=_PATH
    )
    uri: str | None = Field(default=None, pattern=r"^[a-z0-9+]+://[A-Za-z0-9_.@:\[\]/?=&%-]*$")  # libvirt
    # kvm, xen: the base qcow2 image; xenserver: the VM template's name label
    image: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_./~+() -]{1,255}$")
    url: str | None = Field(default=None, pattern=r"^https?://[A-Za-z0-9_.:\[\]/-]+$")  # XenAPI
    password_file: str | None = Field(default=None, pattern=_PATH)  # XenAPI password
    # ovs hosts: the datapath, and for netdev the NIC that joins br-phy (it carries the underlay IP)
    datapath: Literal["system", "netdev"] = "system"
    underlay_dev: Name | None = None


class ControllerSpec(_Strict):
    kind: Literal["os-ken", "pox", "ryu", "ovs-testcontroller", "remote"] = "os-ken"
    apps: list[AppName] | None = Field(default=None, max_length=32)
    port: int = Field(default=6633, ge=1, le=65535)
    address: IPv4Addr | None = None
    path: str | None = None
    host: Name | None = None  # run it on this lab host (simulated labs), at its underlay address


class UnderlaySpec(_Strict):
    subnet: IPv4Net = ipaddress.IPv4Network("10.250.0.0/24")


class InventorySpec(_Strict):
    name: LabName
    description: str = ""
    openflow: Annotated[Literal["1.0", "1.3"], BeforeValidator(_version)] = "1.0"
    simulate: bool = False
    bridge: Name = "br0"
    topology: Literal["star", "mesh"] = "star"
    hub: Name | None = None
    tunnel_type: Literal["gre", "vxlan"] = "gre"
    controller: ControllerSpec = ControllerSpec()
    underlay: UnderlaySpec = UnderlaySpec()
    hosts: dict[Name, HostSpec] = Field(min_length=1, max_length=MAX_HOSTS)


# --- error messages ---------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type inside."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation


def _fields_of(model: type[BaseModel], path: tuple) -> list[str]:
    """Field names allowed at `path` (for did-you-mean hints)."""
    current: Any = model
    for part in path:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif get_origin(current) in (dict, list):
            current = get_args(current)[-1]  # a key or index: go to the value type
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _describe(error: dict) -> str:
    kind, found = error["type"], error.get("input")
    path = tuple(p for p in error["loc"] if p != "[key]")
    if kind == "extra_forbidden":
        allowed = _fields_of(InventorySpec, path[:-1])
        hint = difflib.get_close_matches(str(path[-1]), allowed, n=1)
        text = f"unknown field {path[-1]!r}"
        if hint:
            text += f" (did you mean {hint[0]!r}?)"
        return text + (f"; expected one of: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"expected {expected}, found {found!r}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of fields, found {found!r}"
    message = error["msg"]
    message = message[0].lower() + message[1:]
    return f"{message}, found {found!r}"


def _dotted(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p != "[key]") or "(top level)"


def _problem(source: str, loaded: LoadedYaml, loc: tuple, text: str) -> str:
    line = loaded.line_of(tuple(p for p in loc if p != "[key]"))
    place = f"{source}:{line}" if line else source
    return f"{place}: {_dotted(loc)}: {text}"


# --- semantic checks (things a schema cannot say) ----------------------------


def _semantic_problems(spec: InventorySpec, simulate: bool) -> list[tuple[tuple, str]]:
    problems: list[tuple[tuple, str]] = []
    hosts = spec.hosts
    reserved = {"underlay", "controller"}
    seen_names: dict[str, tuple] = {}
    for host_name, host in hosts.items():
        for name, loc in [(host_name, ("hosts", host_name))] + [
            (vm_name, ("hosts", host_name, "vms", vm_name)) for vm_name in host.vms
        ]:
            if name in reserved:
                problems.append((loc, f"{name!r} is reserved for labctl's own namespaces"))
            elif name in seen_names:
                problems.append((loc, f"name {name!r} is already used at {_dotted(seen_names[name])}"))
            seen_names.setdefault(name, loc)

    vm_subnet = None
    seen_ips: dict[Any, tuple] = {}
    for host_name, host in hosts.items():
        for vm_name, vm in host.vms.items():
            loc = ("hosts", host_name, "vms", vm_name, "ip")
            if vm.ip.ip in seen_ips:
                problems.append((loc, f"address {vm.ip.ip} is already used at {_dotted(seen_ips[vm.ip.ip])}"))
            seen_ips.setdefault(vm.ip.ip, loc)
            if vm.ip.ip in (vm.ip.network.network_address, vm.ip.network.broadcast_address):
                problems.append((loc, f"{vm.ip} is the network or broadcast address of its subnet"))
            if vm_subnet is None:
                vm_subnet = (vm.ip.network, loc)
            elif vm.ip.network != vm_subnet[0]:
                problems.append(
                    (
                        loc,
                        f"all VMs share one L2 segment: {vm.ip} is not in {vm_subnet[0]} "
                        f"(set at {_dotted(vm_subnet[1])})",
                    )
                )

    subnet = spec.underlay.subnet
    if subnet.num_addresses - 2 < len(hosts) + 1:
        problems.append(
            (
                ("underlay", "subnet"),
                f"{subnet} has too few addresses for {len(hosts)} hosts and a controller",
            )
        )
    seen_underlay: dict[Any, str] = {}
    for host_name, host in hosts.items():
        if host.underlay_ip is None:
            continue
        loc = ("hosts", host_name, "underlay_ip")
        if host.underlay_ip not in subnet:
            problems.append((loc, f"{host.underlay_ip} is not in the underlay subnet {subnet}"))
        if host.underlay_ip in seen_underlay:
            problems.append((loc, f"{host.underlay_ip} is already used by {seen_underlay[host.underlay_ip]}"))
        seen_underlay.setdefault(host.underlay_ip, host_name)

    if spec.hub is not None and spec.hub not in hosts:
        problems.append((("hub",), f"expected one of the hosts ({', '.join(hosts)}), found {spec.hub!r}"))
    ctl = spec.controller
    if ctl.kind == "remote" and ctl.address is None:
        problems.append((("controller", "address"), "a remote controller needs the address it listens on"))
    if ctl.apps is not None and ctl.kind in ("ovs-testcontroller", "remote"):
        problems.append((("controller", "apps"), f"a {ctl.kind} controller takes no apps"))
    for index, app in enumerate(ctl.apps or []):
        if app.startswith("--") and ctl.kind != "pox":
            problems.append((("controller", "apps", index), f"app options like {app} are for POX only"))
    if ctl.kind == "pox" and spec.openflow != "1.0":
        problems.append((("openflow",), 'POX speaks OpenFlow 1.0 only; use openflow: "1.0" or another kind'))
    if ctl.kind == "ryu":
        for index, app in enumerate(ctl.apps or []):
            speaks = RYU_SWITCH_VERSIONS.get(app, spec.openflow)
            if speaks != spec.openflow:
                problems.append(
                    (
                        ("controller", "apps", index),
                        f'{app} speaks OpenFlow {speaks} only; with openflow: "{spec.openflow}" use '
                        f"{RYU_SWITCH_FOR[spec.openflow]}",
                    )
                )
    all_simulated = simulate or all(h.driver == "sim" for h in hosts.values())
    simulated_names = [name for name, h in hosts.items() if h.driver == "sim"]
    if not all_simulated and simulated_names:
        problems.append(
            (
                ("hosts", simulated_names[0], "driver"),
                "a lab is either simulated or real: simulated hosts cannot reach real ones "
                "(give every host a real driver, or run the lab with --sim)",
            )
        )
    if not all_simulated and ctl.address is None:
        problems.append(
            (
                ("controller", "address"),
                "real hosts need the controller's address on their underlay "
                "(labctl runs it on this machine unless kind: remote)",
            )
        )
    problems += _placement_problems(spec, all_simulated)
    if ctl.kind == "remote" and all_simulated and ctl.address and ctl.address not in spec.underlay.subnet:
        problems.append(
            (
                ("controller", "address"),
                f"simulated hosts reach a controller only on their underlay ({spec.underlay.subnet}); "
                "give it an address there and run it in namespace lc-<lab>-controller",
            )
        )
    only_for = {
        "uri": ("kvm",),
        "url": ("xenserver",),
        "password_file": ("xenserver",),
        "image": ("kvm", "xen", "xenserver"),
        "underlay_dev": ("ovs",),
    }
    for host_name, host in hosts.items():
        for field, drivers in only_for.items():
            if getattr(host, field) is not None and host.driver not in drivers:
                problems.append(
                    (
                        ("hosts", host_name, field),
                        f"{field} is for {' and '.join(drivers)} hosts, not {host.driver}",
                    )
                )
        if host.datapath == "netdev" and host.driver != "ovs":
            problems.append((("hosts", host_name, "datapath"), "datapath: netdev is for ovs hosts"))
        if host.datapath == "netdev" and not host.underlay_dev and not simulate:
            problems.append(
                (
                    ("hosts", host_name, "underlay_dev"),
                    "datapath: netdev needs the underlay NIC to put in br-phy",
                )
            )
        if host.driver != "sim" and not simulate and not host.address:
            problems.append(
                (
                    ("hosts", host_name, "address"),
                    f"a {host.driver} host needs an address "
                    "(or run the lab simulated: simulate: true / --sim)",
                )
            )
    return problems


def _placement_problems(spec: InventorySpec, all_simulated: bool) -> list[tuple[tuple, str]]:
    """controller.host: a managed controller on one of the lab's simulated hosts."""
    ctl, loc = spec.controller, ("controller", "host")
    if ctl.host is None:
        return []
    if ctl.host not in spec.hosts:
        return [(loc, f"expected one of the hosts ({', '.join(spec.hosts)}), found {ctl.host!r}")]
    if ctl.kind == "remote":
        return [(loc, "a remote controller runs wherever someone else runs it; host is for one labctl runs")]
    if not all_simulated:
        return [
            (
                loc,
                "a controller on a real host is not supported yet: leave host out (labctl runs it on "
                "this machine at controller.address) or run the lab simulated (--sim)",
            )
        ]
    if ctl.address is not None:
        return [
            (
                ("controller", "address"),
                f"a controller on {ctl.host} listens on {ctl.host}'s underlay address; leave address out",
            )
        ]
    return []


# --- entry points ----------------------------------------------------------


class InventoryDocument:
    """An inventory file read and parsed as YAML, not yet validated.

    Its lab name can be read on its own (`lab_name`), before the whole file is
    validated (`validate`): the name says where the lab's state is, and the state
    says in which mode a lab that is up was made -- which decides how to validate.
    """

    def __init__(self, text: str, source: str = "<inventory>"):
        self.source = source
        try:
            self.loaded = load_yaml(text)
        except YamlProblem as exc:
            raise InventoryError([_yaml_problem(source, exc)]) from None

    def _mapping(self) -> dict:
        data = self.loaded.data
        if not isinstance(data, dict):
            found = type(data).__name__ if data is not None else "an empty file"
            raise InventoryError(
                [f"{self.source}:1: expected a mapping with name: and hosts:, found {found}"]
            )
        return data

    def lab_name(self) -> str:
        """The `name:` alone, checked as validation checks it; InventoryError if it cannot be read."""
        data = self._mapping()
        if "name" not in data:
            raise InventoryError([f"{self.source}:1: name: required field is missing"])
        try:
            return _LAB_NAME.validate_python(data["name"])
        except ValidationError as exc:
            raise InventoryError(
                [_problem(self.source, self.loaded, ("name",), _describe(e)) for e in exc.errors()]
            ) from None

    def validate(self, *, simulate: bool = False) -> Lab:
        """The resolved Lab, or InventoryError listing every problem."""
        data = self._mapping()
        try:
            spec = InventorySpec.model_validate(data)
        except ValidationError as exc:
            raise InventoryError(
                [_problem(self.source, self.loaded, tuple(e["loc"]), _describe(e)) for e in exc.errors()]
            ) from None
        simulate = simulate or spec.simulate
        problems = _semantic_problems(spec, simulate)
        if problems:
            raise InventoryError([_problem(self.source, self.loaded, loc, text) for loc, text in problems])
        return resolve(spec, source=self.source, simulate=simulate)


_LAB_NAME = TypeAdapter(LabName)


def _yaml_problem(source: str, exc: YamlProblem) -> str:
    return f"{source}:{exc.line}: {exc.message}" if exc.line else f"{source}: {exc.message}"


def read_inventory(path: str | Path) -> InventoryDocument:
    """Read an inventory file (refused unread when it is absurdly large) and parse its YAML."""
    path = Path(path)
    try:
        text = read_text(path)
    except FileNotFoundError:
        raise InventoryError([f"{path}: no such inventory file"]) from None
    except YamlProblem as exc:
        raise InventoryError([_yaml_problem(str(path), exc)]) from None
    except OSError as exc:
        raise InventoryError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    return InventoryDocument(text, str(path))


def parse_inventory(text: str, source: str = "<inventory>", *, simulate: bool = False) -> Lab:
    """Validate inventory text; returns the resolved Lab or raises InventoryError."""
    return InventoryDocument(text, source).validate(simulate=simulate)


def load_inventory(path: str | Path, *, simulate: bool = False) -> Lab:
    return read_inventory(path).validate(simulate=simulate)
