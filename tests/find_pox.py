"""Where the POX tests get POX. It is not on PyPI or in Debian, so the first of these wins:

1. LABCTL_POX_PATH: a POX checkout (the directory with pox.py), as labctl itself reads it;
2. the vendored tarball beside the repository, ../shared/vendor/pox.tar.gz (CI has it);
3. .pox/ in the repository: the pinned commit `scripts/setup.sh --test` clones
   (scripts/get-pox.sh) where GitHub is reachable.

Found nowhere, a POX test skips with one line saying how to get POX. Where the POX tests
must run (.ci/run sets LABCTL_REQUIRE_POX=1), it fails instead: CI never passes without them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from labctl.controllers.pox import POX_PATH_ENV

REQUIRE_ENV = "LABCTL_REQUIRE_POX"
MISSING = f"POX not found: set {POX_PATH_ENV} to a POX checkout (git clone https://github.com/noxrepo/pox)"


class PoxPathError(Exception):
    """LABCTL_POX_PATH names something that is not a POX checkout: a mistake, not a skip."""


@dataclass(frozen=True)
class PoxSource:
    path: Path
    packed: bool  # a tarball to unpack (giving pox/pox.py), or a checkout to use as it is


def vendored_tarball(repo: Path) -> Path:
    return repo.parent / "shared" / "vendor" / "pox.tar.gz"


def setup_clone(repo: Path) -> Path:
    return repo / ".pox"


def find_pox(repo: Path) -> PoxSource | None:
    """The first place in the order above that has POX, or None."""
    configured = os.environ.get(POX_PATH_ENV)
    if configured:
        checkout = Path(configured).expanduser().resolve()
        if not (checkout / "pox.py").is_file():
            raise PoxPathError(f"{POX_PATH_ENV}={configured}: no pox.py there (it names a POX checkout)")
        return PoxSource(checkout, packed=False)
    if vendored_tarball(repo).is_file():
        return PoxSource(vendored_tarball(repo), packed=True)
    # get-pox.sh moves the clone here only once it is at the pinned commit
    if (setup_clone(repo) / "pox.py").is_file():
        return PoxSource(setup_clone(repo), packed=False)
    return None


def pox_for_tests(repo: Path) -> PoxSource:
    """find_pox, or the test's outcome without POX: skip, or fail where POX is required."""
    try:
        found, wrong = find_pox(repo), None
    except PoxPathError as exc:
        found, wrong = None, str(exc)
    if wrong:  # failed outside the except block, so the report is this one line, not a chain
        pytest.fail(wrong, pytrace=False)
    if found is None:
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(f"{MISSING} ({REQUIRE_ENV} is set: the POX tests must run here)", pytrace=False)
        pytest.skip(MISSING)
    return found
