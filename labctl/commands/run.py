"""`labctl run PLAYBOOK`: a scripted scenario, step by step, with a result per step."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from labctl.clikit import Needs, handles_errors, inventory_option, lab_runner
from labctl.defaults import find_playbook


def register(cli: click.Group) -> None:
    cli.add_command(run)


@click.command()
@click.argument("playbook", type=click.Path(dir_okay=False, path_type=Path))
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable results.")
@click.option(
    "--junit", "junit_path", type=click.Path(dir_okay=False), help="Also write JUnit XML: a case per step."
)
@click.pass_context
@handles_errors
def run(ctx, playbook, inventory, simulate, quiet, verbose, as_json, junit_path):
    """Run a playbook: steps such as up, ping, exec, flows-contain, link, down.

    PLAYBOOK is a file, or a bundled playbook's name (ci-smoke,
    workshop-timeouts, part2-walkthrough). The playbook's `inventory:` is
    relative to the playbook; -i overrides it.
    Exit 0 when every step passed, 1 when an expectation failed (later steps
    are skipped, `down` still runs), 2 when the playbook or inventory is
    wrong (nothing run), 3 when a step could not run at all.
    """
    from labctl import junit
    from labctl.playbook import exit_code, load_playbook
    from labctl.playbook import run as run_steps

    loaded = load_playbook(find_playbook(playbook))
    book, steps = loaded.book, loaded.steps
    runner = lab_runner(
        ctx, inventory or loaded.inventory_path(), simulate, quiet, verbose, needs=Needs.CHANGES
    )
    loaded.check_names(runner.lab)

    def show(outcome) -> None:
        if not as_json:
            mark = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[outcome.status]
            detail = f"  {outcome.message}" if outcome.message else ""
            click.echo(f"{mark} {outcome.seconds:6.2f}s  {outcome.step.label}{detail}")

    outcomes = run_steps(steps, runner, show)
    failed = [o for o in outcomes if o.status == "failed"]
    if junit_path:
        junit.write(
            junit_path,
            f"labctl run {book.name}",
            [
                junit.Case(
                    name=f"{i + 1:02d} {o.step.label}",
                    classname=f"labctl.playbook.{book.name}",
                    seconds=o.seconds,
                    failure=o.message if o.status == "failed" else None,
                    detail=f"{playbook}:{o.step.line}: {o.message}",
                    skipped=o.message if o.status == "skipped" else None,
                )
                for i, o in enumerate(outcomes)
            ],
        )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "playbook": book.name,
                    "ok": not failed,
                    "exit": exit_code(outcomes),
                    "steps": [o.to_json() for o in outcomes],
                },
                indent=2,
            )
        )
    else:
        passed = sum(o.status == "passed" for o in outcomes)
        skipped = len(outcomes) - passed - len(failed)
        click.echo(f"{book.name}: {passed} passed, {len(failed)} failed, {skipped} skipped")
    sys.exit(exit_code(outcomes))
