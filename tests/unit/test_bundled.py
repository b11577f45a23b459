"""The inventories, templates and playbooks that ship inside the package, and how -i and
`labctl run` find them by name outside a clone."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl import defaults
from labctl.errors import InventoryError
from labctl.playbook import load_playbook
from tests.conftest import REPO


def test_the_bundled_files_live_inside_the_package():
    package = Path(defaults.__file__).resolve().parent
    assert package / "data" == defaults.DATA
    assert defaults.DEFAULT_INVENTORY.is_file()
    assert (defaults.TEMPLATES / "libvirt-domain.xml.j2").is_file()
    assert (defaults.TEMPLATES / "xl.cfg.j2").is_file()
    assert defaults.bundled_names(defaults.PLAYBOOKS) == [
        "ci-nested",
        "ci-smoke",
        "part2-walkthrough",
        "workshop-timeouts",
    ]


@pytest.mark.parametrize("kind", ["inventories", "templates", "playbooks"])
def test_a_clone_shows_the_bundled_directories_at_its_top_level(kind):
    top = REPO / kind
    assert top.is_symlink() and top.resolve() == (defaults.DATA / kind).resolve()


def test_this_clone_is_found_and_a_wheel_has_none(monkeypatch, tmp_path):
    assert defaults.checkout() == REPO
    monkeypatch.setattr(defaults, "_PACKAGE", tmp_path / "site-packages" / "labctl")
    assert defaults.checkout() is None  # no pyproject.toml beside an installed package


@pytest.mark.parametrize(
    "spelt", ["blog-4host-mixed", "blog-4host-mixed.yaml", "inventories/blog-4host-mixed.yaml"]
)
def test_an_inventory_not_in_the_current_directory_is_found_by_its_bundled_name(spelt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # as outside a clone: no inventories/ here
    assert defaults.find_inventory(Path(spelt)) == defaults.INVENTORIES / "blog-4host-mixed.yaml"


def test_a_file_that_exists_wins_over_a_bundled_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("blog-2host.yaml").write_text("name: mine\n")
    assert defaults.find_inventory(Path("blog-2host.yaml")) == Path("blog-2host.yaml")


@pytest.mark.parametrize("spelt", ["nosuch.yaml", "elsewhere/blog-2host.yaml", "blog-2host.yml.txt"])
def test_an_unknown_inventory_names_the_bundled_ones(spelt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InventoryError) as err:
        defaults.find_inventory(Path(spelt))
    assert (
        str(err.value)
        == f"{spelt}: no such inventory file (bundled: blog-2host, blog-4host-mixed, blog-4host-nested)"
    )


def test_a_bundled_playbook_is_found_by_name_and_its_inventory_is_the_bundled_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spelt in ("ci-smoke", "playbooks/ci-smoke.yaml"):
        assert defaults.find_playbook(Path(spelt)) == defaults.PLAYBOOKS / "ci-smoke.yaml"
    loaded = load_playbook(defaults.find_playbook(Path("ci-smoke")))
    assert loaded.inventory_path() == defaults.DEFAULT_INVENTORY.resolve()
    with pytest.raises(
        InventoryError, match=r"^part2-walkthrough.sh: no such playbook \(bundled: ci-nested, ci-smoke, "
    ):
        defaults.find_playbook(Path("part2-walkthrough.sh"))  # the shell script is not a playbook
