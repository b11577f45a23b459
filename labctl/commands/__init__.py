"""CLI commands that live in their own modules, one module per capability.

Each module here defines `register(cli: click.Group) -> None`; cli.py finds them
all at start-up. Shared options and error handling come from labctl.clikit. Keep
heavy imports inside the command functions so `labctl --help` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil

import click


def register_all(cli: click.Group) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(cli)
