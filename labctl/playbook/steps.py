"""What each playbook step does to a running lab; a failed expectation raises StepFailed.

Steps return a short text of what they saw (shown after PASS). The observe
steps (capture, trace, ports, flows) are thin calls into labctl.observe.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable

from labctl.errors import LabctlError
from labctl.ovs import ofctl
from labctl.playbook.schema import (
    CaptureArgs,
    ExecArgs,
    FlowsArgs,
    FlowTableArgs,
    LinkArgs,
    PingArgs,
    PortsArgs,
    TraceArgs,
    WaitArgs,
    WaitForArgs,
)


class StepFailed(Exception):
    """A step's expectation did not hold: expected X, saw Y."""


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
    # iputils says "N received", busybox (a real guest) "N packets received"
    found = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", result.stdout)
    return (int(found.group(1)), int(found.group(2))) if found else (count, 0)


def _flows(runner, host: str) -> list[str]:
    if host not in runner.drivers:
        raise StepFailed(f"no host named {host!r}")
    transport = runner.drivers[host].transport()
    out = transport.run(ofctl(runner.lab.protocols, "dump-flows", runner.lab.bridge)).stdout
    return [line.strip() for line in out.splitlines()[1:]]


def step_up(runner, args) -> str:
    return f"{runner.up()} changes"


def step_down(runner, args) -> str:
    from labctl.lab import teardown

    return "removed" if teardown(runner.state, runner.report) else "nothing was up"


def step_verify(runner, args) -> str:
    from labctl.verify import passed, ping_all
    from labctl.verify_report import failure, summary

    problems = runner.problems()
    if problems:
        raise StepFailed("; ".join(problems))
    drivers = runner.drivers
    results = ping_all(
        runner.lab,
        lambda vm: drivers[vm.host].vm_transport(vm),
        way_in=lambda vm: drivers[vm.host].way_in(vm),
    )
    bad = [f"{r.src}->{r.dst} {failure(r)}" for r in results if not r.ok and not r.unverifiable]
    bad += runner.problems()  # the controller died, or a bridge lost it, meanwhile
    if bad:
        raise StepFailed(f"expected every pair to answer, saw {', '.join(bad)}")
    if not passed(results):
        raise StepFailed(f"expected pairs to verify, saw {summary(results)}")
    run = sum(r.unverifiable is None for r in results)
    unverifiable = f" ({len(results) - run} not verifiable)" if run < len(results) else ""
    return f"{run} pairs, 0% loss, {runner.lab.mtu}-byte packets pass{unverifiable}"


def step_ping(runner, args: PingArgs) -> str:
    sent, received = _ping_once(runner, args.src, args.to, args.count)
    seen = f"{received}/{sent} answered"
    if args.expect == "success" and received == 0:
        raise StepFailed(f"expected {args.src} to reach {args.to}, saw {seen}")
    if args.expect == "failure" and received > 0:
        raise StepFailed(f"expected {args.src} not to reach {args.to}, saw {seen}")
    return seen


def _output_has(output: str, wanted: str) -> bool:
    """`wanted` as a plain substring, else as a regular expression."""
    if wanted in output:
        return True
    try:
        return re.search(wanted, output) is not None
    except re.error:
        return False


def step_exec(runner, args: ExecArgs) -> str:
    result = runner.transport_of(args.where).run(args.command, check=False)
    output = result.stdout + result.stderr
    if result.returncode != args.expect_exit:
        raise StepFailed(
            f"expected exit {args.expect_exit}, saw {result.returncode}: {output.strip()[-200:]}"
        )
    if args.expect_output and not _output_has(output, args.expect_output):
        raise StepFailed(f"expected output containing {args.expect_output!r}, saw: {output.strip()[-300:]}")
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


def _observe(function: str) -> Callable:
    """The labctl.observe API, imported when a playbook first uses it; until that
    package exports a function, the module that implements it today stands in."""
    from labctl import observe

    found = getattr(observe, function, None)
    if found is None:
        found = _STAND_INS.get(function, lambda: None)()
    if found is None:
        raise LabctlError(f"this labctl has no labctl.observe.{function}")
    return found


def _decode_with_lab_names(path: str, runner=None) -> list[dict]:
    from labctl.observe.trace import Names, trace

    return trace(path, Names(runner), runner.lab.controller.port)


def _module_function(module: str, name: str) -> Callable:
    import importlib

    return getattr(importlib.import_module(f"labctl.observe.{module}"), name, None)


_STAND_INS: dict[str, Callable[[], Callable | None]] = {
    "start_capture": lambda: _module_function("capture", "start_capture"),
    "stop_capture": lambda: _module_function("capture", "stop_capture"),
    "decode_pcap": lambda: _decode_with_lab_names,
    "port_table": lambda: _module_function("tables", "port_table"),
    "flow_table": lambda: _module_function("tables", "flow_table"),
}


def _trace_line(message: dict) -> str:
    try:
        from labctl.observe.trace import render_line

        return render_line(message)
    except (ImportError, KeyError, TypeError):
        return _one_line(message)


def step_capture(runner, args: CaptureArgs) -> str:
    if args.action == "start":
        capture = _observe("start_capture")(runner, args.file or f"{runner.lab.name}-openflow.pcap")
        return f"recording to {getattr(capture, 'path', capture)}"
    path = _observe("stop_capture")(runner)
    return f"saved {path}" if path else "no capture was running"


def _last_capture(runner) -> str | None:
    from labctl.observe.capture import last_capture_file

    return last_capture_file(runner)


def step_trace(runner, args: TraceArgs) -> str:
    path = args.file or _last_capture(runner)
    if not path:
        raise StepFailed("expected a capture to decode, saw none (add a capture step or file:)")
    messages = _observe("decode_pcap")(path, runner)
    lines = [_trace_line(m) for m in messages]
    for text in args.contains:
        if not any(text in line for line in lines):
            raise StepFailed(f"expected the trace to show {text!r}, saw {len(lines)} messages without it")
    for line in lines:
        runner.report.info("trace", line)
    return f"{len(lines)} messages"


def _one_line(row) -> str:
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        row = dataclasses.asdict(row)
    if isinstance(row, dict):
        return " ".join(f"{k}={v}" for k, v in row.items())
    return str(row)


def step_ports(runner, args: PortsArgs) -> str:
    rows = _observe("port_table")(runner, host=args.host, stats=args.stats)
    for row in rows:
        runner.report.info(args.host or "ports", _one_line(row))
    return f"{len(rows)} ports"


def step_flows(runner, args: FlowTableArgs) -> str:
    rows = _observe("flow_table")(runner, host=args.host, datapath=args.datapath)
    for row in rows:
        runner.report.info(args.host or "flows", _one_line(row))
    return f"{len(rows)} flows"


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
    "ports": step_ports,
    "flows": step_flows,
}
