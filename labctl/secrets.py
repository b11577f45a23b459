"""Secrets for real hosts (XenAPI passwords), from the environment or a file.

Never written to the journal, a log or an error message: records carry where a
secret comes from (the password file's path), never the secret itself.

Lookup order for host H: LABCTL_PASSWORD_<H> (H upper-cased, `-` as `_`), then
LABCTL_PASSWORD, then the host's `password_file` (first line).
"""

from __future__ import annotations

import os
from pathlib import Path

from labctl.errors import InputError


def env_name(host: str) -> str:
    return "LABCTL_PASSWORD_" + host.upper().replace("-", "_")


def password(host: str, password_file: str | None) -> str:
    for name in (env_name(host), "LABCTL_PASSWORD"):
        value = os.environ.get(name)
        if value:
            return value
    if password_file:
        try:
            lines = Path(password_file).expanduser().read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InputError(
                f"host {host}: cannot read password_file {password_file}: {exc.strerror}"
            ) from None
        if lines and lines[0]:
            return lines[0]
        raise InputError(f"host {host}: password_file {password_file} is empty")
    raise InputError(
        f"host {host}: no password: set {env_name(host)} (or LABCTL_PASSWORD), "
        "or password_file in the inventory"
    )
