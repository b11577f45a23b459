"""The command line: the `labctl` group and its global options. Every command lives in
its own module under labctl/commands/ (up, down, status in lab.py; verify in verify.py)."""

from __future__ import annotations

import click

from labctl import __version__
from labctl.commands import register_all

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


def main() -> None:
    cli(prog_name="labctl")


register_all(cli)


if __name__ == "__main__":
    main()
