"""`labctl up`, `down` and `status`: build the lab, remove it, say what is there."""

from __future__ import annotations

import json

import click

from labctl.clikit import Needs, handles_errors, inventory_option, lab_runner, setup_output, state_to_remove


def register(cli: click.Group) -> None:
    for command in (up, down, status):
        cli.add_command(command)


@click.command()
@inventory_option
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the controller.")
@click.pass_context
@handles_errors
def up(ctx, inventory, simulate, quiet, verbose, timeout):
    """Build the lab: bridges, tunnels, controller, VMs. Safe to run again.

    Run again after a fault (a daemon killed, a link set down, a port deleted), it
    repairs what `status` reports. It ends by running status's checks on its own work
    and fails (exit 3), naming each fault, if any is left."""
    runner = lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.CHANGES)
    changes = runner.up(timeout=timeout)
    took = runner.report.elapsed()
    if changes:
        click.echo(f"lab {runner.lab.name} is up ({changes} changes, {took:.1f}s)")
    else:
        click.echo(f"lab {runner.lab.name} is up: nothing to change ({took:.1f}s)")


@click.command()
@inventory_option
@click.option("--lab", "lab_name", help="Remove the lab of this name (no inventory needed).")
@click.pass_context
@handles_errors
def down(ctx, inventory, simulate, quiet, verbose, lab_name):
    """Remove everything the lab's `up` made, and nothing else.

    The journal says what that is: of the inventory only the lab's name is read, and
    --sim changes nothing."""
    from labctl.lab import teardown

    state = state_to_remove(inventory, lab_name)
    report = setup_output(ctx, quiet, verbose)
    if teardown(state, report):
        click.echo(f"lab {state.lab_name} removed ({report.elapsed():.1f}s)")
    else:
        click.echo(f"lab {state.lab_name} is not up: nothing to remove")


@click.command()
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handles_errors
def status(ctx, inventory, simulate, quiet, verbose, as_json):
    """Hosts, bridges, ports, tunnels, controller, and whether each bridge is connected.

    Drift: every fault in what labctl started and made (processes, links, ports, OpenFlow
    sessions, the lab's state files), one line each with what `up` will do; with --json
    also as `faults` entries (host, what, repair). Exits 0 whatever it finds."""
    from labctl.status import render_text

    runner = lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.HOSTS)
    data = runner.status()
    click.echo(json.dumps(data, indent=2) if as_json else render_text(data))
