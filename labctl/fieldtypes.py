"""Validated value types for the inventory schema: names, addresses, paths.

Shared by the schema (inventory.py) and by the driver and controller kinds that
declare inventory fields of their own (a driver's `host_fields`), so each kind
can say what its fields accept without importing the schema.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from labctl.state import LAB_NAME_PATTERN, LAB_NAME_RULE  # a lab's name is its state directory's

# Names reach namespace names, interface names (15 characters at most) and
# command lines, so they are kept to a small, shell-safe alphabet.
NAME_RULE = "1-11 characters: lower-case letters, digits, '-' or '_', starting with a letter"
APP_RULE = (
    "a Python module path such as forwarding.l2_learning (letters, digits, '_' and '.'), "
    "or for POX an option such as --no-flood or --hold-down=5"
)
PATH_PATTERN = r"^[A-Za-z0-9_./~+-]{1,4096}$"  # a file on this machine or a host: no spaces, no quoting


def _matcher(pattern: str, rule: str, kind: str):
    regex = re.compile(pattern)

    def check(value: Any) -> Any:
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise PydanticCustomError("labctl_name", "expected {kind}: {rule}", {"kind": kind, "rule": rule})
        return value

    return BeforeValidator(check)


def _ip(kind: str, parse, example: str):
    def check(value: Any) -> Any:
        try:
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise ValueError
            return parse(value)
        except ValueError:
            raise PydanticCustomError(
                "labctl_ip", "expected {kind}, like {example}", {"kind": kind, "example": example}
            ) from None

    return BeforeValidator(check)


def _mac(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", value):
        if int(value[:2], 16) & 1:
            raise PydanticCustomError("labctl_mac", "expected a unicast MAC address (first octet even)")
        return value.lower()
    raise PydanticCustomError("labctl_mac", "expected a MAC address like 02:00:ac:10:00:01")


def openflow_version(value: Any) -> Any:
    # YAML reads `openflow: 1.0` as the float 1.0; accept it as the text "1.0".
    return f"{value:.1f}" if isinstance(value, float) else value


Name = Annotated[str, _matcher(r"[a-z][a-z0-9_-]{0,10}", NAME_RULE, "a name")]
LabName = Annotated[str, _matcher(LAB_NAME_PATTERN, LAB_NAME_RULE, "a lab name")]
AppName = Annotated[
    str,
    _matcher(
        r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*|--[a-z][a-z0-9_-]*(=[A-Za-z0-9_.:,/-]+)?",
        APP_RULE,
        "an app",
    ),
]
IPv4Prefix = Annotated[
    ipaddress.IPv4Interface,
    _ip("an IPv4 address with a prefix length", ipaddress.IPv4Interface, "172.16.0.1/24"),
]
IPv4Addr = Annotated[ipaddress.IPv4Address, _ip("an IPv4 address", ipaddress.IPv4Address, "10.250.0.1")]
IPv4Net = Annotated[ipaddress.IPv4Network, _ip("an IPv4 network", ipaddress.IPv4Network, "10.250.0.0/24")]
Mac = Annotated[str, BeforeValidator(_mac)]


@dataclass(frozen=True)
class HostField:
    """An inventory field a driver kind adds to its hosts (`hosts.NAME.FIELD`).

    `annotation` and `field` are what pydantic validates it with; the value
    reaches the driver as `host.options[FIELD]`. Setting it on a host of another
    driver is refused with `misplaced`, or "FIELD is for K hosts, not D"."""

    annotation: Any
    field: FieldInfo
    misplaced: str | None = None  # {value} is filled in
