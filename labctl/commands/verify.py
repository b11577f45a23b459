"""`labctl verify`: ping every ordered pair of VMs; a table, JSON or JUnit (verify_report.py)."""

from __future__ import annotations

import json
import sys

import click

from labctl.clikit import Needs, handles_errors, inventory_option, lab_runner
from labctl.errors import EXIT_OK, EXIT_VERIFY_FAILED


def register(cli: click.Group) -> None:
    cli.add_command(verify)


@click.command(short_help="Ping every ordered VM pair, small and full-size.")
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "-c", "--count", default=3, show_default=True, type=click.IntRange(min=1), help="Pings per pair."
)
@click.option(
    "--junit", "junit_path", type=click.Path(dir_okay=False), help="Also write JUnit XML: a case per pair."
)
@click.pass_context
@handles_errors
def verify(ctx, inventory, simulate, quiet, verbose, as_json, count, junit_path):
    """Ping every ordered pair of VMs, in parallel: each pair's path is set up (paced to what
    the controller keeps up with), measured with COUNT pings, then sent one full-size ping
    (the lab's MTU, Don't Fragment). Exit 1 if any pair is not set up in time, loses
    packets, or loses only its full-size packets (an MTU black hole), or if the controller
    stops or loses a bridge meanwhile."""
    from labctl import verify_report
    from labctl.verify import passed, ping_all

    runner = lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.HOSTS)
    lab = runner.lab.name
    problems = runner.problems()
    if problems:
        if as_json:
            click.echo(json.dumps(verify_report.to_json(lab, [], problems)))
        for problem in problems:
            click.echo(f"labctl: verify failed: {problem}", err=True)
        if junit_path:
            verify_report.write_junit(junit_path, lab, [], problems)
        sys.exit(EXIT_VERIFY_FAILED)
    drivers = runner.drivers
    results = ping_all(
        runner.lab,
        lambda vm: drivers[vm.host].vm_transport(vm),
        count=count,
        way_in=lambda vm: drivers[vm.host].way_in(vm),
    )
    controller = runner.problems()  # did the controller die, or a bridge lose it, meanwhile?
    ok = passed(results) and not controller
    if junit_path:
        verify_report.write_junit(junit_path, lab, results, controller=controller)
    if as_json:
        click.echo(json.dumps(verify_report.to_json(lab, results, controller=controller), indent=2))
    else:
        click.echo(verify_report.render_table(results, controller))
    if any(r.mtu_black_hole for r in results):
        from labctl.mtu import black_hole_cause

        cause = black_hole_cause(runner.lab.mtu, runner.lab.underlay_mtu, runner.lab.tunnel_type)
        click.echo(f"labctl: verify: MTU black hole: {cause}", err=True)
    if any(r.failed_in in ("set-up", "measurement") for r in results):
        from labctl.drivers import simlimits

        short = simlimits.shortfalls(runner.lab)
        if short:
            click.echo(f"labctl: verify: lost pings may come from: {'; '.join(map(str, short))}", err=True)
            click.echo(f"labctl: verify: {simlimits.remedy(short)}", err=True)
    sys.exit(EXIT_OK if ok else EXIT_VERIFY_FAILED)
