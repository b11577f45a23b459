"""`labctl plan`: validate the inventory and show what `up` would create, touching nothing."""

from __future__ import annotations

import json

import click

from labctl.clikit import handles_errors, inventory_option, load_lab


def register(cli: click.Group) -> None:
    cli.add_command(plan)


@click.command(short_help="What `up` would create, per host; touches nothing.")
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable plan (docs/inventory.md).")
@click.pass_context
@handles_errors
def plan(ctx, inventory, simulate, quiet, verbose, as_json):
    """Check the inventory and show, per host, what `up` would create: bridges, ports,
    tunnels with both ends, the controller, each VM with its hypervisor's calls.

    Nothing runs and no host is contacted, so it needs no root: the lint step for CI
    and the preview before `up` on real hosts. -v adds the exact OVS transaction and
    every file a step writes (domain XML, xl cfg, XenAPI records). Exit 2 when the
    inventory is wrong, or names something `up` would stop at (a missing image:)."""
    from labctl.errors import InventoryError
    from labctl.lab import LabRunner
    from labctl.preview import build, problem_lines, to_text
    from labctl.progress import Reporter

    lab = load_lab(inventory, simulate)
    data = build(LabRunner(lab, Reporter(quiet=True)))
    verbose = verbose or (ctx.obj or {}).get("verbose", False)
    click.echo(json.dumps(data, indent=2) if as_json else to_text(data, verbose=verbose))
    if data["problems"]:
        raise InventoryError(problem_lines(data))
