"""Playbooks: scripted scenarios for CI smoke tests and workshops (`labctl run FILE`).

    name: ci-smoke
    inventory: ../inventories/blog-2host.yaml      # relative to the playbook
    steps:
      - up
      - ping: {from: vm1, to: vm2, expect: success}
      - flows-contain: {host: host1, match: icmp}
      - down

A step is a bare name or a one-key mapping of arguments (`name:` labels it).
Each step passes or fails with what was expected and what was seen; after a
failure the remaining steps are skipped, except `down`, which always runs so a
CI run never leaves a lab behind. Playbooks are validated like inventories:
FILE:LINE: field: problem, exit 2, nothing run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from labctl.errors import InventoryError, LabctlError
from labctl.yamlfile import YamlProblem, load_yaml

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
    where: Name = Field(alias="in")  # a VM or host ("on:" would be YAML's boolean true)
    command: list[Annotated[str, BeforeValidator(_as_text)]] = Field(min_length=1)
    expect_exit: int = 0
    expect_output: str | None = None  # a regular expression searched in stdout+stderr


class WaitArgs(_Args):
    seconds: float = Field(gt=0, le=600)


class FlowsArgs(_Args):
    host: Name
    match: str = Field(min_length=1)  # a substring of an `ovs-ofctl dump-flows` line


class WaitForArgs(_Args):
    condition: Literal["flows-contain", "flows-absent", "ping"]
    host: Name | None = None
    match: str | None = None
    src: Name | None = Field(default=None, alias="from")
    to: Name | None = None
    timeout: float = Field(default=30, gt=0, le=600)


class LinkArgs(_Args):
    vm: Name
    state: Literal["up", "down"]


class CaptureArgs(_Args):
    action: Literal["start", "stop"]
    file: str | None = None


class TraceArgs(_Args):
    contains: list[str] = Field(default_factory=list)  # texts the decoded trace must show


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


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    inventory: str | None = None
    steps: list = Field(min_length=1, max_length=500)


@dataclass
class Outcome:
    step: Step
    status: Literal["passed", "failed", "skipped"]
    seconds: float = 0.0
    message: str = ""

    def to_json(self) -> dict:
        return {
            "step": self.step.label,
            "kind": self.step.kind,
            "line": self.step.line,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "message": self.message,
        }


class StepFailed(Exception):
    """A step's expectation did not hold: expected X, saw Y."""


# --- loading ---------------------------------------------------------------


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
}


def load_playbook(path: str | Path) -> tuple[Playbook, list[Step]]:
    path = Path(path)
    source = str(path)
    try:
        loaded = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InventoryError([f"{source}: no such playbook"]) from None
    except YamlProblem as exc:
        raise InventoryError([f"{source}:{exc.line or 1}: {exc.message}"]) from None
    try:
        book = Playbook.model_validate(loaded.data)
    except ValidationError as exc:
        raise InventoryError(
            [
                f"{source}:{loaded.line_of(tuple(e['loc'])) or 1}: {'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in exc.errors()
            ]
        ) from None
    steps, problems = [], []
    for index, raw in enumerate(book.steps):
        line = loaded.line_of(("steps", index))
        kind, args = (
            (raw, {})
            if isinstance(raw, str)
            else next(iter(raw.items()))
            if (isinstance(raw, dict) and len(raw) == 1)
            else (None, None)
        )
        if kind not in ARGS:
            known = ", ".join(ARGS)
            problems.append(f"{source}:{line}: steps.{index}: expected one of {known}, found {raw!r}")
            continue
        try:
            steps.append(Step(kind, ARGS[kind].model_validate(args or {}), line))
        except ValidationError as exc:
            for e in exc.errors():
                where = loaded.line_of(("steps", index, kind, *e["loc"])) or line
                problems.append(
                    f"{source}:{where}: steps.{index}.{kind}.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                )
    if problems:
        raise InventoryError(problems)
    return book, steps


# --- running ---------------------------------------------------------------


def run(steps: list[Step], runner, report: Callable[[Outcome], None]) -> list[Outcome]:
    """Run the steps in order; after a failure only `down` steps still run."""
    outcomes, failed = [], False
    for step in steps:
        if failed and step.kind != "down":
            outcome = Outcome(step, "skipped", message="an earlier step failed")
        else:
            start = time.monotonic()
            try:
                message = STEPS[step.kind](runner, step.args) or ""
                outcome = Outcome(step, "passed", time.monotonic() - start, message)
            except (StepFailed, LabctlError) as exc:
                outcome = Outcome(step, "failed", time.monotonic() - start, str(exc))
                failed = True
        outcomes.append(outcome)
        report(outcome)
    return outcomes


def _vm(runner, name: str):
    try:
        return runner.lab.vm(name)
    except KeyError:
        raise StepFailed(f"no VM named {name!r}") from None


def _ping_once(runner, src: str, dst: str, count: int) -> tuple[int, int]:
    vm, target = _vm(runner, src), _vm(runner, dst)
    transport = runner.drivers[vm.host].vm_transport(vm)
    result = transport.run(
        ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2", str(target.ip.ip)], check=False
    )
    found = re.search(r"(\d+) packets transmitted, (\d+) received", result.stdout)
    return (int(found.group(1)), int(found.group(2))) if found else (count, 0)


def _flows(runner, host: str) -> list[str]:
    if host not in runner.drivers:
        raise StepFailed(f"no host named {host!r}")
    out = runner.drivers[host].transport().run(["ovs-ofctl", "dump-flows", runner.lab.bridge]).stdout
    return [line.strip() for line in out.splitlines()[1:]]


def step_up(runner, args) -> str:
    return f"{runner.up()} changes"


def step_down(runner, args) -> str:
    from labctl.lab import teardown

    return "removed" if teardown(runner.state, runner.report) else "nothing was up"


def step_verify(runner, args) -> str:
    from labctl.verify import ping_all

    problems = runner.problems()
    if problems:
        raise StepFailed("; ".join(problems))
    results = ping_all(runner.lab, lambda vm: runner.drivers[vm.host].vm_transport(vm))
    bad = [f"{r.src}->{r.dst} {r.loss_pct:g}% loss" for r in results if not r.ok]
    if bad:
        raise StepFailed(f"expected every pair to answer, saw {', '.join(bad)}")
    return f"{len(results)} pairs, 0% loss"


def step_ping(runner, args: PingArgs) -> str:
    sent, received = _ping_once(runner, args.src, args.to, args.count)
    seen = f"{received}/{sent} answered"
    if args.expect == "success" and received == 0:
        raise StepFailed(f"expected {args.src} to reach {args.to}, saw {seen}")
    if args.expect == "failure" and received > 0:
        raise StepFailed(f"expected {args.src} not to reach {args.to}, saw {seen}")
    return seen


def step_exec(runner, args: ExecArgs) -> str:
    result = runner.transport_of(args.where).run(args.command, check=False)
    output = result.stdout + result.stderr
    if result.returncode != args.expect_exit:
        raise StepFailed(
            f"expected exit {args.expect_exit}, saw {result.returncode}: {output.strip()[-200:]}"
        )
    if args.expect_output and not re.search(args.expect_output, output):
        raise StepFailed(f"expected output matching {args.expect_output!r}, saw: {output.strip()[-300:]}")
    return f"exit {result.returncode}"


def step_wait(runner, args: WaitArgs) -> str:
    time.sleep(args.seconds)
    return f"waited {args.seconds:g}s"


def _flows_contain(runner, args) -> bool:
    return any(args.match in line for line in _flows(runner, args.host))


def step_flows_contain(runner, args: FlowsArgs) -> str:
    if not _flows_contain(runner, args):
        raise StepFailed(f"expected a flow on {args.host} matching {args.match!r}, saw none")
    return "found"


def step_flows_absent(runner, args: FlowsArgs) -> str:
    found = [line for line in _flows(runner, args.host) if args.match in line]
    if found:
        raise StepFailed(f"expected no flow on {args.host} matching {args.match!r}, saw {found[0]}")
    return "absent"


def step_wait_for(runner, args: WaitForArgs) -> str:
    def holds() -> bool:
        if args.condition == "ping":
            return _ping_once(runner, args.src, args.to, 1)[1] > 0
        present = _flows_contain(runner, args)
        return present if args.condition == "flows-contain" else not present

    if args.condition == "ping" and not (args.src and args.to):
        raise StepFailed("wait-for ping needs from: and to:")
    if args.condition != "ping" and not (args.host and args.match):
        raise StepFailed(f"wait-for {args.condition} needs host: and match:")
    start = time.monotonic()
    while not holds():
        if time.monotonic() - start > args.timeout:
            raise StepFailed(f"expected {args.condition} within {args.timeout:g}s, it did not happen")
        time.sleep(0.5)
    return f"after {time.monotonic() - start:.1f}s"


def step_link(runner, args: LinkArgs) -> str:
    vm = _vm(runner, args.vm)
    runner.drivers[vm.host].vm_transport(vm).run(["ip", "link", "set", "eth0", args.state])
    return f"{args.vm} eth0 {args.state}"


def step_capture(runner, args: CaptureArgs) -> str:
    from labctl.observe.capture import start_capture, stop_capture

    if args.action == "start":
        return start_capture(runner, args.file or f"{runner.lab.name}-openflow.pcap")
    return stop_capture(runner) or "no capture was running"


def step_trace(runner, args: TraceArgs) -> str:
    from labctl.observe.capture import last_capture_file
    from labctl.observe.trace import Names, render_line, trace

    path = last_capture_file(runner)
    if not path:
        raise StepFailed("expected a capture to decode, saw none (add a capture step)")
    lines = [render_line(m) for m in trace(path, Names(runner), runner.lab.controller.port)]
    for text in args.contains:
        if not any(text in line for line in lines):
            raise StepFailed(f"expected the trace to show {text!r}, saw {len(lines)} messages without it")
    for line in lines:
        runner.report.info("trace", line)
    return f"{len(lines)} messages"


STEPS: dict[str, Callable] = {
    "up": step_up,
    "down": step_down,
    "verify": step_verify,
    "ping": step_ping,
    "exec": step_exec,
    "wait": step_wait,
    "wait-for": step_wait_for,
    "flows-contain": step_flows_contain,
    "flows-absent": step_flows_absent,
    "link": step_link,
    "capture": step_capture,
    "trace": step_trace,
}
