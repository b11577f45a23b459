"""`labctl exec NAME -- CMD...` and `labctl shell NAME`: run something in a VM or host.

On a simulated host the OVS tools reach that host's own Open vSwitch, so
`labctl exec host1 -- ovs-ofctl dump-flows br0` works as on a real host.
"""

from __future__ import annotations

import os
import sys

import click

from labctl.clikit import Needs, handles_errors, inventory_option, lab_runner


def register(cli: click.Group) -> None:
    cli.add_command(exec_)
    cli.add_command(shell)


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@inventory_option
@click.pass_context
@handles_errors
def exec_(ctx, name, command, inventory, simulate, quiet, verbose):
    """Run COMMAND in the VM or host NAME; exits with COMMAND's exit code.

    Put `--` before the command: labctl exec vm1 -- ping -c1 172.16.0.2
    """
    transport = lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.HOSTS).transport_of(name)
    sys.exit(transport.interactive(list(command)))


@click.command()
@click.argument("name")
@inventory_option
@click.pass_context
@handles_errors
def shell(ctx, name, inventory, simulate, quiet, verbose):
    """An interactive shell in the VM or host NAME ($SHELL, else /bin/sh; /bin/sh in a real guest)."""
    transport = lab_runner(ctx, inventory, simulate, quiet, verbose, needs=Needs.HOSTS).transport_of(name)
    sys.exit(transport.interactive(transport.shell_argv() or [os.environ.get("SHELL", "/bin/sh")]))
