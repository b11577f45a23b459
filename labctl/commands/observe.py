"""`labctl ports [HOST] [--stats]` and `labctl flows [HOST] [--datapath]`."""

from __future__ import annotations

import json

import click

from labctl.clikit import handles_errors, inventory_option, lab_runner


def register(cli: click.Group) -> None:
    cli.add_command(ports)
    cli.add_command(flows)


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

    runner = _ready(lab_runner(ctx, inventory, simulate, quiet, verbose))
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

    runner = _ready(lab_runner(ctx, inventory, simulate, quiet, verbose))
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
