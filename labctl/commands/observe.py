"""`labctl ports [HOST] [--stats]` and `labctl flows [HOST] [--datapath]`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from labctl.clikit import Needs, handles_errors, inventory_option, lab_runner


def register(cli: click.Group) -> None:
    cli.add_command(ports)
    cli.add_command(flows)
    cli.add_command(capture)
    cli.add_command(trace)


def _or_dash(value) -> str:
    return "-" if value is None else str(value)


def _ready(runner):
    from labctl.errors import InputError

    if not runner.state.exists():
        raise InputError(f"lab {runner.lab.name} is not up; run `labctl up`")
    return runner


def _check_host(runner, host):
    from labctl.errors import InputError

    if host and host not in runner.drivers:
        raise InputError(f"no host named {host!r} (the lab has {', '.join(runner.drivers)})")


@click.command()
@click.argument("host", required=False)
@inventory_option
@click.option("--stats", is_flag=True, help="Also live packet, byte and drop counters.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handles_errors
def ports(ctx, host, inventory, simulate, quiet, verbose, stats, as_json):
    """OpenFlow and datapath port numbers, names, and the VM or tunnel behind each port."""
    from labctl.observe.tables import port_table

    runner = _ready(lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.HOSTS))
    _check_host(runner, host)
    rows = port_table(runner, host, stats)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    for name in dict.fromkeys(r.host for r in rows):
        click.echo(f"{name}  {runner.lab.bridge}")
        header = f"  {'OF':>6} {'DP':>3}  {'PORT':<12} BEHIND"
        if stats:
            header += "  (rx pkts/bytes/drop  tx pkts/bytes/drop)"
        click.echo(header)
        for r in (r for r in rows if r.host == name):
            numbers = f"{_or_dash(r.ofport):>6} {_or_dash(r.dp_port):>3}"
            line = f"  {numbers}  {r.name:<12} {r.behind}"
            if r.stats:
                s = r.stats
                line += (
                    f"  rx {s['rx_packets']}/{s['rx_bytes']}/{s['rx_dropped']}"
                    f"  tx {s['tx_packets']}/{s['tx_bytes']}/{s['tx_dropped']}"
                )
            click.echo(line)


@click.command()
@click.argument("host", required=False)
@inventory_option
@click.option("--datapath", is_flag=True, help="The datapath's flows (what is cached), not OpenFlow's.")
@click.option("--raw", is_flag=True, help="Without the names labctl adds.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handles_errors
def flows(ctx, host, inventory, simulate, quiet, verbose, datapath, raw, as_json):
    """OpenFlow (or datapath) flows per host, with ports and MACs named."""
    from labctl.observe.tables import flow_table

    runner = _ready(lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.HOSTS))
    _check_host(runner, host)
    rows = flow_table(runner, host, datapath)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for name in [h.name for h in runner.lab.hosts if not host or h.name == host]:
        mine = [r for r in rows if r["host"] == name]
        click.echo(f"{name}  {'datapath' if datapath else runner.lab.bridge}  {len(mine)} flows")
        for row in mine:
            click.echo(f"  {row['flow'] if raw else row['named']}")


@click.group()
def capture():
    """Record the controller channel (every bridge's session) to a pcap."""


@capture.command("start")
@inventory_option
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="The pcap file (default: LAB-openflow.pcap)."
)
@click.pass_context
@handles_errors
def capture_start(ctx, inventory, simulate, quiet, verbose, output):
    """Start recording; `labctl capture stop` (or `down`) ends it."""
    from labctl.observe.capture import start_capture

    runner = _ready(lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.CHANGES))
    path = start_capture(runner, output or f"{runner.lab.name}-openflow.pcap")
    click.echo(f"capturing the OpenFlow channel to {path}")


@capture.command("stop")
@inventory_option
@click.pass_context
@handles_errors
def capture_stop(ctx, inventory, simulate, quiet, verbose):
    """Stop recording; prints the pcap file."""
    from labctl.observe.capture import stop_capture

    runner = lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.CHANGES)
    path = stop_capture(runner)
    click.echo(f"capture saved in {path}" if path else "no capture is running")


@click.command()
@inventory_option
@click.option(
    "--pcap",
    type=click.Path(dir_okay=False),
    help="Decode this file (default: the lab's capture); with --follow, a file still being written.",
)
@click.option("-f", "--follow", is_flag=True, help="Decode live, as messages arrive, until Ctrl-C.")
@click.option("--host", "hosts", multiple=True, help="Only messages of this host (repeatable).")
@click.option(
    "--type",
    "types",
    multiple=True,
    help="Only this message type, e.g. packet_in, flow_mod, flow_removed (repeatable).",
)
@click.option("--all", "everything", is_flag=True, help="Also echo, hello and barrier messages.")
@click.option("-V", "--full", is_flag=True, help="Every field of every message.")
@click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable output (with --follow: one object a line)."
)
@click.pass_context
@handles_errors
def trace(ctx, inventory, simulate, quiet, verbose, pcap, follow, hosts, types, everything, full, as_json):
    """Decode the OpenFlow messages of a capture, in the lab's names.

    One line per message: time, host, direction, version, type, xid, and what
    the message says -- packet-in / packet-out / flow-mod ports, buffer, reason,
    match, timeouts, actions and what the frame is (ARP, ICMP); why a flow was
    removed; port status; stats; errors -- ports named after VMs and tunnels,
    addresses after VMs and hosts. Every OpenFlow 1.0 and 1.3 message is decoded.

    With --follow, messages are decoded as they arrive: from the running capture
    (`labctl capture start`), else from a capture trace starts itself and stops
    again when you press Ctrl-C.
    """
    from labctl.errors import InputError
    from labctl.observe.capture import last_capture_file
    from labctl.observe.trace import Names, Wanted, known_types, render_full, render_line
    from labctl.observe.trace import trace as decode_trace

    types = tuple(t.lower() for t in types)
    unknown = sorted(set(types) - known_types())
    if unknown:
        raise InputError(
            f"no OpenFlow message type {unknown[0]!r}; types: {', '.join(sorted(known_types()))}"
        )
    if pcap and not follow and not Path(pcap).is_file():
        raise InputError(f"{pcap}: no such file")
    runner = lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.FILES)
    wanted = Wanted(tuple(hosts), types, everything)
    if follow:
        _follow(runner, pcap, wanted, full, as_json, quiet)
        return
    path = pcap or (last_capture_file(runner) if runner.state.exists() else None)
    if not path:
        raise InputError("no capture: `labctl capture start` first, give --pcap FILE, or --follow")
    names = Names(runner)
    rows = decode_trace(path, names, runner.lab.controller.port, wanted.hosts, wanted.types, everything)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        click.echo(render_full(row) if full else render_line(row))


def _follow(runner, pcap, wanted, full, as_json, quiet) -> None:
    """Print each wanted message as it arrives; Ctrl-C (or SIGTERM) ends it with exit 0
    after what it started is stopped."""
    import os
    import sys
    import time

    from labctl.observe.follow import follow_source, interrupted_by_signals
    from labctl.observe.trace import Names, follow, render_full, render_json_line, render_line

    render = render_json_line if as_json else render_full if full else render_line
    since = time.time()
    names = Names(runner)
    with interrupted_by_signals():
        try:
            with follow_source(runner, pcap) as source:
                if not quiet:
                    click.echo(f"{source.what}; Ctrl-C to stop", err=True)
                port = runner.lab.controller.port
                for msg in follow(source.path, names, port, wanted, since, source.running):
                    click.echo(render(msg))
                if not quiet:
                    click.echo("the capture stopped (capture stop, or down); the follow ends", err=True)
        except KeyboardInterrupt:
            pass  # how a follow is meant to end
        except BrokenPipeError:  # the reader went away (| head): nothing more to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
