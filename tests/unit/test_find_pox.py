"""Where the POX tests look for POX, in order (tests/find_pox.py), on fake places in tmp_path."""

from __future__ import annotations

import pytest

from tests.find_pox import MISSING, PoxPathError, PoxSource, find_pox, pox_for_tests


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A repository with nothing beside it and no POX anywhere; the helpers put POX in each place."""
    monkeypatch.delenv("LABCTL_POX_PATH", raising=False)
    monkeypatch.delenv("LABCTL_REQUIRE_POX", raising=False)
    repo = tmp_path / "labctl"
    repo.mkdir()

    class Places:
        def __init__(self):
            self.repo = repo

        def checkout(self, path):
            path.mkdir(parents=True)
            (path / "pox.py").write_text("# POX\n")
            return path

        def env(self):
            path = self.checkout(tmp_path / "my-pox")
            monkeypatch.setenv("LABCTL_POX_PATH", str(path))
            return path

        def tarball(self):
            path = tmp_path / "shared" / "vendor" / "pox.tar.gz"
            path.parent.mkdir(parents=True)
            path.write_bytes(b"\x1f\x8b")
            return path

        def clone(self):
            return self.checkout(repo / ".pox")

    return Places()


def test_labctl_pox_path_comes_first(places):
    places.clone()
    places.tarball()
    mine = places.env()
    assert find_pox(places.repo) == PoxSource(mine, packed=False)


def test_the_vendored_tarball_beside_the_repository_comes_before_the_clone(places):
    places.clone()
    tarball = places.tarball()
    assert find_pox(places.repo) == PoxSource(tarball, packed=True)


def test_the_clone_setup_made_is_used_when_nothing_else_is_there(places):
    clone = places.clone()
    assert find_pox(places.repo) == PoxSource(clone, packed=False)
    assert pox_for_tests(places.repo) == PoxSource(clone, packed=False)


def test_a_clone_without_pox_py_is_not_pox(places):
    (places.repo / ".pox").mkdir()
    assert find_pox(places.repo) is None


def test_labctl_pox_path_naming_no_checkout_is_an_error_not_a_fallback(places, tmp_path, monkeypatch):
    places.tarball()
    monkeypatch.setenv("LABCTL_POX_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(PoxPathError, match="no pox.py there"):
        find_pox(places.repo)
    with pytest.raises(pytest.fail.Exception, match="LABCTL_POX_PATH=.*nowhere: no pox.py there"):
        pox_for_tests(places.repo)


def test_without_pox_a_test_skips_with_one_line_saying_how_to_get_it(places):
    assert find_pox(places.repo) is None
    with pytest.raises(pytest.skip.Exception) as skipped:
        pox_for_tests(places.repo)
    assert str(skipped.value) == MISSING
    assert "\n" not in MISSING and "LABCTL_POX_PATH" in MISSING and "git clone" in MISSING


def test_where_pox_is_required_its_absence_fails_instead_of_skipping(places, monkeypatch):
    monkeypatch.setenv("LABCTL_REQUIRE_POX", "1")
    with pytest.raises(pytest.fail.Exception, match="POX not found.*LABCTL_REQUIRE_POX is set"):
        pox_for_tests(places.repo)
    places.tarball()
    assert pox_for_tests(places.repo).packed
