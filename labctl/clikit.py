"""What every CLI command shares: error handling, the common options, loading the lab.

Command modules (cli.py and labctl/commands/*) import from here, never from each
other, so each can be imported on its own.
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import sys
from pathlib import Path

import click

from labctl.defaults import DEFAULT_INVENTORY, find_inventory
from labctl.errors import InputError, InventoryError, LabctlError, PrivilegeError
from labctl.inventory import InventoryDocument, read_inventory
from labctl.model import Lab
from labctl.progress import Reporter
from labctl.state import LabState, labs_with_state, state_root


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
        "--sim",
        "simulate",
        is_flag=True,
        help="Run every host simulated (namespaces + userspace OVS). "
        "A lab that is up keeps the mode it was made in.",
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


class Needs(enum.Enum):
    """What a command needs from this machine; lab_runner checks it before anything is done."""

    FILES = "reads files only"  # graph, doctor, logs, trace: no privileges at all
    HOSTS = "runs commands on the lab's hosts"  # status, verify, ports, flows, exec, shell
    CHANGES = "changes the lab and writes its state"  # up, down, controller restart, capture, run


def check_privileges(needs: Needs, state: LabState, simulated: bool) -> None:
    """Refuse, in one line and before anything is done, what this process may not do.

    A simulated lab lives in network namespaces with OVS daemons of its own: entering or
    changing it takes root. Effective uid 0, not capabilities: labctl runs `ip` and the OVS
    tools, and a non-root process does not pass its capabilities on to them. Real hosts are
    reached over SSH with their own credentials and need nothing of this machine but the
    state directory."""
    if needs is Needs.FILES:
        return
    ctx = click.get_current_context(silent=True)
    command = ctx.command_path if ctx else "labctl"
    if simulated and os.geteuid() != 0:
        raise PrivilegeError(
            f"{command} needs root: a simulated lab is network namespaces with OVS daemons of its own "
            f"(run it as root, e.g. with sudo)"
        )
    if needs is Needs.CHANGES:
        where = state.unwritable()
        if where is not None:
            raise PrivilegeError(
                f"{command} cannot write the lab's state in {where}: run it as root, or set "
                "LABCTL_STATE_DIR to a directory you may write"
            )


def lab_in_its_mode(document: InventoryDocument, simulate: bool, state: LabState | None) -> Lab:
    """The lab validated in the mode it was made in when it is up (its state says), else
    as asked (`simulate`: --sim, or the bundled lab). The inventory's `simulate: true`
    counts as asking.

    A lab that is up on real hosts cannot be asked for simulated: that would be another
    lab under the same name. (The other way round cannot be asked: without --sim, a lab
    that is up simulated stays simulated.)"""
    recorded = state.recorded_simulated() if state is not None else None
    lab = document.validate(simulate=simulate or recorded is True)
    if recorded is False and lab.simulated:
        change = "run it without --sim" if simulate else f"take simulate: true out of {document.source}"
        raise InputError(
            f"lab {lab.name} is up on real hosts, not simulated: {change}, "
            f"or take the lab down first (labctl down -i {document.source})"
        )
    return lab


def inventory_path(inventory: Path | None) -> Path:
    """-i FILE (a file, or a bundled inventory's name), or the bundled classic lab."""
    return find_inventory(inventory) if inventory else DEFAULT_INVENTORY


def load_lab(inventory: Path | None, simulate: bool) -> Lab:
    """The inventory's lab (the bundled one, simulated, with no -i), in the mode its state records."""
    document = read_inventory(inventory_path(inventory))
    try:
        state = LabState(document.lab_name())
    except InventoryError:
        state = None  # validating says what is wrong with the name, with everything else
    return lab_in_its_mode(document, simulate or inventory is None, state)


def lab_runner(
    ctx: click.Context, inventory: Path | None, simulate: bool, quiet: bool, verbose: bool, *, needs: Needs
):
    """The lab, loaded in its mode and checked against what the command needs, ready to run."""
    from labctl.lab import LabRunner  # keeps `labctl --help` fast

    lab = load_lab(inventory, simulate)
    state = LabState(lab.name)
    check_privileges(needs, state, lab.simulated)
    return LabRunner(lab, setup_output(ctx, quiet, verbose), state)


def state_to_remove(inventory: Path | None, lab_name: str | None) -> LabState:
    """The state of the lab `down` removes, by --lab NAME or by the inventory's `name:` alone:
    the journal says what to undo, so the rest of the file need not validate in any mode."""
    if lab_name is None:
        try:
            lab_name = read_inventory(
                find_inventory(inventory) if inventory else DEFAULT_INVENTORY
            ).lab_name()
        except InventoryError as exc:
            known = labs_with_state()
            labs = f" (labs with state in {state_root()}: {', '.join(known)})" if known else ""
            raise InputError(
                f"{exc.problems[0]}; the lab's name cannot be read from it, so give it: "
                f"labctl down --lab NAME{labs}"
            ) from None
    state = LabState(lab_name)
    check_privileges(Needs.CHANGES, state, state.recorded_simulated() is True)
    return state
