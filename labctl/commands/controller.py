"""`labctl logs controller|HOST` and `labctl controller restart`."""

from __future__ import annotations

import click

from labctl.clikit import Needs, handles_errors, inventory_option, lab_runner


def register(cli: click.Group) -> None:
    cli.add_command(logs)
    cli.add_command(controller)


@click.command()
@click.argument("name", default="controller")
@inventory_option
@click.option("-n", "--lines", type=int, default=0, help="Only the last N lines.")
@click.pass_context
@handles_errors
def logs(ctx, name, inventory, simulate, quiet, verbose, lines):
    """Print the controller's log, or a simulated host's ovs-vswitchd log."""
    from labctl.errors import LabctlError

    path = lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.FILES).log_path(name)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise LabctlError(f"no log yet at {path} (is the lab up?)") from None
    except OSError as exc:
        raise LabctlError(f"cannot read {path}: {exc.strerror or exc}") from None
    output = text.splitlines()[-lines:] if lines else text.splitlines()
    click.echo("\n".join(output))


@click.group()
def controller():
    """Work on the lab's controller without touching the bridges."""


@controller.command()
@inventory_option
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the bridges.")
@click.pass_context
@handles_errors
def restart(ctx, inventory, simulate, quiet, verbose, timeout):
    """Stop the controller and start it again; wait until every bridge is back."""
    runner = lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.CHANGES)
    proc = runner.restart_controller(timeout=timeout)
    click.echo(f"controller {runner.lab.controller.kind} restarted (pid {proc.pid}), every bridge connected")
