"""The command line: the `labctl` group and its global options. Every command lives in
its own module under labctl/commands/ (up, down, status in lab.py; verify in verify.py)."""

from __future__ import annotations

import click

from labctl import __version__
from labctl.commands import register_all

EPILOG = """Exit codes: 0 ok, 1 verification failed, 2 bad input (inventory, usage),
3 provisioning or runtime failure, or privileges missing (said before anything is done).

With no -i, the bundled two-host lab (inventories/blog-2host.yaml) runs simulated.
A lab that is up keeps the mode it was made in: after `up --sim`, no more --sim."""


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="labctl")
@click.option("-q", "--quiet", is_flag=True, help="Print only results and errors.")
@click.option("-v", "--verbose", is_flag=True, help="Also print every command run on every host.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool, verbose: bool) -> None:
    """Build Open vSwitch + OpenFlow labs from one inventory file."""
    ctx.obj = {"quiet": quiet, "verbose": verbose}


def main() -> None:
    cli(prog_name="labctl")


register_all(cli)


if __name__ == "__main__":
    main()
