"""The files that ship with labctl (inventories, templates, playbooks) and the default lab.

They live inside the package, in labctl/data/, and are found with importlib.resources,
so they are there however labctl was installed: a wheel in a venv, `pip install -e` of a
clone, or a clone on PYTHONPATH. A clone also shows them at its top level
(inventories/, templates/ and playbooks/ are links into labctl/data/), where the
README's commands expect them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from labctl.errors import InventoryError

# pip installs labctl as plain files (never zipped), so this is a real directory: Jinja2's
# loader and a playbook's relative `inventory:` need paths, not resource handles.
_PACKAGE = Path(str(files("labctl")))

DATA = _PACKAGE / "data"
INVENTORIES = DATA / "inventories"
TEMPLATES = DATA / "templates"
PLAYBOOKS = DATA / "playbooks"
DEFAULT_INVENTORY = INVENTORIES / "blog-2host.yaml"


def checkout() -> Path | None:
    """The clone labctl runs from (it holds pyproject.toml beside labctl/), or None for a wheel."""
    root = _PACKAGE.resolve().parent
    return root if (root / "pyproject.toml").is_file() else None


def bundled_names(directory: Path) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def _find(path: Path, directory: Path, what: str) -> Path:
    """`path` if it exists; else the bundled file it names, spelt `NAME`, `NAME.yaml` or, as in
    the README, `inventories/NAME.yaml` (so the docs' commands work outside a clone too)."""
    if path.exists():
        return path
    if path.parent in (Path("."), Path(directory.name)) and path.suffix in ("", ".yaml"):
        bundled = directory / f"{path.stem if path.suffix else path.name}.yaml"
        if bundled.is_file():
            return bundled
    raise InventoryError([f"{path}: no such {what} (bundled: {', '.join(bundled_names(directory))})"])


def find_inventory(path: Path) -> Path:
    return _find(path, INVENTORIES, "inventory file")


def find_playbook(path: Path) -> Path:
    return _find(path, PLAYBOOKS, "playbook")
