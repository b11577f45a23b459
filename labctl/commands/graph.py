"""`labctl graph`: the lab as Graphviz DOT, Mermaid, or a rendered SVG/PNG."""

from __future__ import annotations

import shutil
import subprocess

import click

from labctl.clikit import handles_errors, inventory_option, load_lab


def register(cli: click.Group) -> None:
    cli.add_command(graph)


@click.command()
@inventory_option
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["dot", "mermaid", "svg", "png"]),
    default="dot",
    show_default=True,
    help="svg and png need Graphviz's `dot`.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@handles_errors
def graph(inventory, simulate, quiet, verbose, fmt, output):
    """Draw the lab: hosts, bridges, tunnels with their endpoints, VMs with addresses, controller."""
    from labctl.errors import LabctlError
    from labctl.graph import to_dot, to_mermaid

    lab = load_lab(inventory, simulate)
    if fmt == "mermaid":
        data = to_mermaid(lab).encode()
    elif fmt == "dot":
        data = to_dot(lab).encode()
    else:
        if not shutil.which("dot"):
            raise LabctlError("rendering svg/png needs Graphviz (apt-get install graphviz); try -f dot")
        rendered = subprocess.run(["dot", f"-T{fmt}"], input=to_dot(lab).encode(), capture_output=True)
        if rendered.returncode != 0:
            raise LabctlError(f"dot -T{fmt} failed: {rendered.stderr.decode(errors='replace').strip()}")
        data = rendered.stdout
    if output:
        with open(output, "wb") as fh:
            fh.write(data)
        click.echo(f"wrote {output}")
    else:
        click.echo(data.decode() if fmt != "png" else data, nl=False)
