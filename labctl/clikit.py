"""What every CLI command shares: error handling, the common options, loading the lab.

Command modules (cli.py and labctl/commands/*) import from here, never from each
other, so each can be imported on its own.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

import click

from labctl.defaults import DEFAULT_INVENTORY, find_inventory
from labctl.errors import LabctlError
from labctl.inventory import load_inventory
from labctl.progress import Reporter


def _fail(exc: LabctlError) -> None:
    message = str(exc)
    first, _, rest = message.partition("\n")
    click.echo(f"labctl: error: {first}", err=True)
    if rest:
        click.echo(rest, err=True)
    sys.exit(exc.exit_code)


def handles_errors(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LabctlError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("labctl: interrupted; `labctl up` resumes the lab, `labctl down` removes it", err=True)
            sys.exit(130)

    return wrapper


def inventory_option(func):
    func = click.option("-q", "--quiet", is_flag=True, help="Print only results and errors.")(func)
    func = click.option("-v", "--verbose", is_flag=True, help="Also print every command run on every host.")(
        func
    )
    func = click.option(
        "--sim", "simulate", is_flag=True, help="Run every host simulated (namespaces + userspace OVS)."
    )(func)
    return click.option(
        "-i",
        "--inventory",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Inventory file, or a bundled inventory's name (default: blog-2host, 2 hosts, simulated).",
    )(func)


def setup_output(ctx: click.Context, quiet: bool, verbose: bool) -> Reporter:
    quiet = quiet or ctx.obj["quiet"]
    if verbose or ctx.obj["verbose"]:
        logging.basicConfig(level=logging.DEBUG, format="  $ %(message)s", stream=sys.stderr)
    return Reporter(quiet=quiet)


def load_lab(inventory: Path | None, simulate: bool):
    if inventory is None:
        return load_inventory(DEFAULT_INVENTORY, simulate=True)
    return load_inventory(find_inventory(inventory), simulate=simulate)


def lab_runner(ctx: click.Context, inventory: Path | None, simulate: bool, quiet: bool, verbose: bool):
    from labctl.lab import LabRunner  # keeps `labctl --help` fast

    report = setup_output(ctx, quiet, verbose)
    return LabRunner(load_lab(inventory, simulate), report)
