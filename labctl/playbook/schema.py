"""What a playbook may say, and loading one with FILE:LINE: field: problem errors (exit 2).

A step is a bare name (`up`, `down`) or a one-key mapping whose value holds the
step's arguments, with an optional `name:` shown in reports and JUnit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from labctl.errors import InventoryError
from labctl.yamlfile import YamlProblem, load_yaml, read_text

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,10}$")]


def _as_text(value):
    """YAML reads `-4` or `3` in a command as numbers; a command takes them as text."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: str | None = None  # a label for reports


class NoArgs(_Args):
    pass


class PingArgs(_Args):
    src: Name = Field(alias="from")
    to: Name
    count: int = Field(default=3, ge=1, le=100)
    expect: Literal["success", "failure"] = "success"


class ExecArgs(_Args):
    where: Name = Field(validation_alias=AliasChoices("on", "in"), serialization_alias="on")
    command: list[Annotated[str, BeforeValidator(_as_text)]] = Field(min_length=1)
    expect_exit: int = 0
    expect_output: str | None = None  # a substring, else a regular expression, of stdout+stderr

    @model_validator(mode="before")
    @classmethod
    def _on_is_not_true(cls, data):
        """YAML 1.1 reads the key `on` as the boolean true; the playbook meant `on`."""
        if isinstance(data, dict) and True in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data


class WaitArgs(_Args):
    seconds: float = Field(gt=0, le=600)


class FlowsArgs(_Args):
    host: Name
    match: str = Field(min_length=1)  # a substring of an `ovs-ofctl dump-flows br0` line


class WaitForArgs(_Args):
    condition: Literal["flows-contain", "flows-absent", "ping"]
    host: Name | None = None
    match: str | None = None
    src: Name | None = Field(default=None, alias="from")
    to: Name | None = None
    timeout: float = Field(default=30, gt=0, le=600)

    @model_validator(mode="after")
    def _complete(self):
        if self.condition == "ping" and not (self.src and self.to):
            raise ValueError("wait-for ping needs from: and to:")
        if self.condition != "ping" and not (self.host and self.match):
            raise ValueError(f"wait-for {self.condition} needs host: and match:")
        return self


class LinkArgs(_Args):
    vm: Name
    state: Literal["up", "down"]


class CaptureArgs(_Args):
    action: Literal["start", "stop"]
    file: str | None = None  # relative to the directory labctl runs in


class TraceArgs(_Args):
    file: str | None = None  # a pcap; default: the lab's last capture
    contains: list[str] = Field(default_factory=list)  # texts the decoded trace must show


class PortsArgs(_Args):
    host: Name | None = None
    stats: bool = False


class FlowTableArgs(_Args):
    host: Name | None = None
    datapath: bool = False


ARGS: dict[str, type[_Args]] = {
    "up": NoArgs,
    "down": NoArgs,
    "verify": NoArgs,
    "ping": PingArgs,
    "exec": ExecArgs,
    "wait": WaitArgs,
    "wait-for": WaitForArgs,
    "flows-contain": FlowsArgs,
    "flows-absent": FlowsArgs,
    "link": LinkArgs,
    "capture": CaptureArgs,
    "trace": TraceArgs,
    "ports": PortsArgs,
    "flows": FlowTableArgs,
}


@dataclass(frozen=True)
class Step:
    kind: str
    args: BaseModel
    line: int | None

    @property
    def label(self) -> str:
        if getattr(self.args, "name", None):
            return self.args.name
        details = {
            k: v for k, v in self.args.model_dump(by_alias=True, exclude_none=True).items() if k != "name"
        }
        return self.kind + (" " + " ".join(f"{k}={v}" for k, v in details.items()) if details else "")

    def names(self) -> list[str]:
        """The VMs and hosts this step refers to, to check against the lab before running."""
        fields = ("src", "to", "vm", "host", "where")
        return [getattr(self.args, f) for f in fields if getattr(self.args, f, None)]


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    description: str = ""
    inventory: str | None = None  # relative to the playbook file
    steps: list = Field(min_length=1, max_length=500)


@dataclass(frozen=True)
class LoadedPlaybook:
    path: Path
    book: Playbook
    steps: list[Step]

    def inventory_path(self) -> Path | None:
        return (self.path.parent / self.book.inventory).resolve() if self.book.inventory else None

    def check_names(self, lab) -> None:
        """Refuse (exit 2, nothing run) a step naming a VM or host the lab does not have."""
        known = {h.name for h in lab.hosts} | {v.name for v in lab.vms}
        problems = [
            f"{self.path}:{step.line}: {step.kind}: no VM or host named {name!r} in lab {lab.name}"
            f" (it has {', '.join(sorted(known))})"
            for step in self.steps
            for name in step.names()
            if name not in known
        ]
        if problems:
            raise InventoryError(problems)


def _split(raw) -> tuple[str | None, object]:
    if isinstance(raw, str):
        return raw, {}
    if isinstance(raw, dict) and len(raw) == 1:
        kind, args = next(iter(raw.items()))
        return (kind if isinstance(kind, str) else None), args
    return None, None


def load_playbook(path: str | Path) -> LoadedPlaybook:
    path = Path(path)
    try:
        loaded = load_yaml(read_text(path))
    except (FileNotFoundError, IsADirectoryError):
        raise InventoryError([f"{path}: no such playbook"]) from None
    except OSError as exc:
        raise InventoryError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except YamlProblem as exc:
        raise InventoryError(
            [f"{path}:{exc.line}: {exc.message}" if exc.line else f"{path}: {exc.message}"]
        ) from None
    if not isinstance(loaded.data, dict):
        raise InventoryError([f"{path}:1: a playbook is a mapping with name: and steps:"])
    try:
        book = Playbook.model_validate(loaded.data)
    except ValidationError as exc:
        raise InventoryError(
            [
                f"{path}:{loaded.line_of(tuple(e['loc'])) or 1}: {'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in exc.errors()
            ]
        ) from None
    steps, problems = [], []
    for index, raw in enumerate(book.steps):
        line = loaded.line_of(("steps", index))
        kind, args = _split(raw)
        if kind not in ARGS:
            problems.append(f"{path}:{line}: steps.{index}: expected one of {', '.join(ARGS)}, found {raw!r}")
            continue
        if args is None:
            args = {}
        if not isinstance(args, dict):
            problems.append(f"{path}:{line}: steps.{index}.{kind}: expected a mapping of arguments")
            continue
        try:
            steps.append(Step(kind, ARGS[kind].model_validate(args), line))
        except ValidationError as exc:
            for e in exc.errors():
                loc = [("on" if part is True else part) for part in e["loc"]]
                where = loaded.line_of(("steps", index, kind, *loc)) or line
                field = ".".join(map(str, [f"steps.{index}.{kind}", *loc]))
                message = e["msg"].removeprefix("Value error, ")
                problems.append(f"{path}:{where}: {field}: {message}")
    if problems:
        raise InventoryError(problems)
    return LoadedPlaybook(path, book, steps)
