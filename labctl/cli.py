"""The command line: parse, call, print, exit code. Nothing else lives here."""

from __future__ import annotations

import json
import sys

import click

from labctl import __version__
from labctl.clikit import Needs, handles_errors, inventory_option, lab_runner, setup_output, state_to_remove
from labctl.commands import register_all
from labctl.errors import EXIT_OK, EXIT_VERIFY_FAILED

EPILOG = """Exit codes: 0 ok, 1 verification failed, 2 bad input (inventory, usage),
3 provisioning or runtime failure, or privileges missing (said before anything is done).

With no -i, the bundled two-host lab (blog-2host) runs simulated. -i takes a file
or the name of a bundled inventory (blog-2host, blog-4host-mixed).
A lab that is up keeps the mode it was made in: after `up --sim`, no more --sim."""


# --version is an ordinary flag, not click's eager version_option: that one prints and exits
# before -v is read, and `labctl --version -v` must see both.
@click.group(
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,  # `labctl --version` runs no command
    no_args_is_help=True,
    subcommand_metavar="COMMAND [ARGS]...",
)
@click.option(
    "--version",
    "show_version",
    is_flag=True,
    help="Print labctl's version; with -v, also those of Python, the system, OVS, the controllers, libvirt.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only results and errors.")
@click.option("-v", "--verbose", is_flag=True, help="Also print every command run on every host.")
@click.pass_context
def cli(ctx: click.Context, show_version: bool, quiet: bool, verbose: bool) -> None:
    """Build Open vSwitch + OpenFlow labs from one inventory file."""
    if show_version:
        if verbose:  # for a bug report; it runs `ovs-vsctl --version` and the like
            from labctl import versions

            click.echo(versions.render(versions.report()))
        else:
            click.echo(f"labctl, version {__version__}")
        ctx.exit()
    if ctx.invoked_subcommand is None:
        ctx.fail("Missing command.")
    ctx.obj = {"quiet": quiet, "verbose": verbose}


@cli.command()
@inventory_option
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the controller.")
@click.pass_context
@handles_errors
def up(ctx, inventory, simulate, quiet, verbose, timeout):
    """Build the lab: bridges, tunnels, controller, VMs. Safe to run again."""
    runner = lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.CHANGES)
    changes = runner.up(timeout=timeout)
    took = runner.report.elapsed()
    if changes:
        click.echo(f"lab {runner.lab.name} is up ({changes} changes, {took:.1f}s)")
    else:
        click.echo(f"lab {runner.lab.name} is up: nothing to change ({took:.1f}s)")


@cli.command()
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


@cli.command()
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handles_errors
def status(ctx, inventory, simulate, quiet, verbose, as_json):
    """Hosts, bridges, ports, tunnels, controller, and whether each bridge is connected."""
    runner = lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.HOSTS)
    data = runner.status()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(_status_text(data))


def _controller_state(ctl: dict) -> str:
    if ctl["running"] is None:
        return "run by someone else"
    return f"running pid {ctl['pid']}" if ctl["running"] else "NOT RUNNING"


def _status_text(data: dict) -> str:
    if not data["hosts"] and not data["up"]:
        return f"lab {data['lab']}: not up"
    ctl = data["controller"]
    lines = [
        f"lab {data['lab']}: {'up' if data['up'] else 'NOT fully up'}",
        *(f"  drift: {d} (`labctl up` repairs it)" for d in data.get("drift", [])),
        f"controller {ctl['kind']} {ctl['target']} apps={','.join(ctl['apps']) or '-'} "
        + (f"{ctl['where']} " if ctl.get("where") else "")
        + _controller_state(ctl),
    ]
    for host in data["hosts"]:
        if "error" in host:
            lines.append(f"  {host['name']}: {host['error']}")
            continue
        conn = (
            ", ".join(
                f"{c['target']} {'connected' if c['connected'] else 'NOT CONNECTED'}"
                for c in host["controllers"]
            )
            or "no controller"
        )
        lines.append(
            f"  {host['name']} ({host['flavor']}, underlay {host['underlay_ip']}): "
            f"{host['bridge']} {host['datapath_type']} {'/'.join(host['protocols'])} -> {conn}"
        )
        for port in host["ports"]:
            what = (
                f"VM {port['vm']}"
                if "vm" in port
                else f"{port['type']} to {port['remote_ip']}"
                if "remote_ip" in port
                else port["type"]
            )
            error = f"  ERROR {port['error']}" if "error" in port else ""
            lines.append(
                f"      {str(port['ofport'] if port['ofport'] is not None else '-'):>5}  "
                f"{port['name']:<12} {what}{error}"
            )
    return "\n".join(lines)


@cli.command()
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("-c", "--count", default=3, show_default=True, help="Pings per pair.")
@click.option(
    "--junit", "junit_path", type=click.Path(dir_okay=False), help="Also write JUnit XML: a case per pair."
)
@click.pass_context
@handles_errors
def verify(ctx, inventory, simulate, quiet, verbose, as_json, count, junit_path):
    """Ping every ordered pair of VMs, in parallel. Exit 1 if any pair loses packets."""
    from labctl.verify import ping_all, render_table

    runner = lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.HOSTS)
    problems = runner.problems()
    if problems:
        if as_json:
            click.echo(json.dumps({"lab": runner.lab.name, "ok": False, "problems": problems, "pairs": []}))
        for problem in problems:
            click.echo(f"labctl: verify failed: {problem}", err=True)
        if junit_path:
            from labctl import junit

            junit.write(
                junit_path,
                f"labctl verify {runner.lab.name}",
                [junit.Case("lab ready", f"labctl.verify.{runner.lab.name}", failure="; ".join(problems))],
            )
        sys.exit(EXIT_VERIFY_FAILED)
    drivers = runner.drivers
    results = ping_all(runner.lab, lambda vm: drivers[vm.host].vm_transport(vm), count=count)
    ok = all(r.ok for r in results)
    if junit_path:
        _write_verify_junit(junit_path, runner.lab.name, results)
    if as_json:
        click.echo(
            json.dumps({"lab": runner.lab.name, "ok": ok, "pairs": [r.to_json() for r in results]}, indent=2)
        )
    else:
        click.echo(render_table(results))
    if not ok:
        from labctl.drivers import simlimits

        short = simlimits.shortfalls(runner.lab)
        if short:
            click.echo(f"labctl: verify: lost pings may come from: {'; '.join(map(str, short))}", err=True)
            click.echo(f"labctl: verify: {simlimits.remedy(short)}", err=True)
    sys.exit(EXIT_OK if ok else EXIT_VERIFY_FAILED)


def _write_verify_junit(path: str, lab: str, results) -> None:
    from labctl import junit

    cases = [
        junit.Case(
            name=f"{r.src} -> {r.dst}",
            classname=f"labctl.verify.{lab}",
            seconds=(r.rtt_avg_ms or 0) / 1000,
            failure=None
            if r.ok
            else f"{r.loss_pct:g}% loss to {r.dst_ip}" + (f": {r.error}" if r.error else ""),
            detail=f"sent {r.sent}, received {r.received}",
        )
        for r in results
    ]
    junit.write(path, f"labctl verify {lab}", cases)


def main() -> None:
    cli(prog_name="labctl")


register_all(cli)


if __name__ == "__main__":
    main()
