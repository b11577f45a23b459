"""The inventory file: schema, defaults, and errors that name file, line and field.

`load_inventory(path)` reads YAML safely, validates it completely and returns
the resolved `Lab` model (see model.py) -- or raises `InventoryError` listing
every problem as `FILE:LINE: FIELD: what was expected, what was found`.
Nothing touches the machine before this has succeeded.

Stages: YAML (yamlfile.py) -> schema (here) -> rules (rules.py) -> defaults
(resolve.py). The `driver:` and `controller.kind:` values, and the fields each
driver kind adds to its hosts, come from the kinds' registries.
"""

from __future__ import annotations

import difflib
import ipaddress
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    create_model,
)

from labctl import rules
from labctl.controllers import KINDS
from labctl.drivers import DRIVERS
from labctl.errors import InventoryError
from labctl.fieldtypes import (
    PATH_PATTERN,
    AppName,
    IPv4Addr,
    IPv4Net,
    IPv4Prefix,
    LabName,
    Mac,
    Name,
    openflow_version,
)
from labctl.model import Lab
from labctl.mtu import DEFAULT_UNDERLAY_MTU
from labctl.resolve import resolve
from labctl.yamlfile import LoadedYaml, YamlProblem, load_yaml, read_text

MAX_HOSTS = 64
MAX_VMS_PER_HOST = 16
DRIVER_NAMES = tuple(DRIVERS)
CONTROLLER_KINDS = tuple(KINDS)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VMSpec(_Strict):
    ip: IPv4Prefix
    mac: Mac | None = None


class _HostSpec(_Strict):
    """What every host may say; each driver kind adds its own fields (HostSpec below)."""

    driver: Literal[DRIVER_NAMES] = "sim"  # type: ignore[valid-type]
    address: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.@:\[\]-]{1,253}$")
    underlay_ip: IPv4Addr | None = None
    vms: dict[Name, VMSpec] = Field(default_factory=dict, max_length=MAX_VMS_PER_HOST)
    # How a real host is reached over SSH (docs/drivers.md).
    user: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_-]{0,31}$")  # SSH user; sudo if not root
    port: int = Field(default=22, ge=1, le=65535)  # SSH port
    key: str | None = Field(default=None, pattern=PATH_PATTERN)  # SSH private key; the agent when unset
    # a file, or off (YAML reads a bare off as false): no host key checking, logged
    known_hosts: Annotated[str | None, BeforeValidator(lambda v: "off" if v is False else v)] = Field(
        default=None, pattern=PATH_PATTERN
    )


def _driver_fields() -> dict[str, Any]:
    """Every driver kind's own host fields, in registry order (a field two kinds share, once)."""
    fields: dict[str, Any] = {}
    for kind in DRIVERS.values():
        for name, declared in kind.host_fields.items():
            fields.setdefault(name, (declared.annotation, declared.field))
    return fields


HostSpec = create_model("HostSpec", __base__=_HostSpec, **_driver_fields())


class ControllerSpec(_Strict):
    kind: Literal[CONTROLLER_KINDS] = "os-ken"  # type: ignore[valid-type]
    apps: list[AppName] | None = Field(default=None, max_length=32)
    port: int = Field(default=6633, ge=1, le=65535)
    address: IPv4Addr | None = None
    path: str | None = None
    host: Name | None = None  # run it on this lab host (simulated labs), at its underlay address


class UnderlaySpec(_Strict):
    subnet: IPv4Net = ipaddress.IPv4Network("10.250.0.0/24")
    mtu: StrictInt = DEFAULT_UNDERLAY_MTU  # its range is a rule (rules.mtu_in_range)


class InventorySpec(_Strict):
    name: LabName
    description: str = ""
    openflow: Annotated[Literal["1.0", "1.3"], BeforeValidator(openflow_version)] = "1.0"
    simulate: bool = False
    bridge: Name = "br0"
    topology: Literal["star", "mesh"] = "star"
    hub: Name | None = None
    tunnel_type: Literal["gre", "vxlan"] = "gre"
    mtu: StrictInt | None = None  # the VMs' MTU; default: what the tunnel leaves of the underlay's
    controller: ControllerSpec = ControllerSpec()
    underlay: UnderlaySpec = UnderlaySpec()
    hosts: dict[Name, HostSpec] = Field(min_length=1, max_length=MAX_HOSTS)  # type: ignore[valid-type]


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
        problems = rules.problems(spec, simulate)
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
