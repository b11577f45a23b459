"""Where the bundled inventories live, and the default lab."""

from __future__ import annotations

from pathlib import Path

INVENTORIES = Path(__file__).resolve().parent.parent / "inventories"
DEFAULT_INVENTORY = INVENTORIES / "blog-2host.yaml"
