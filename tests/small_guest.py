"""The small test guest: Debian's kernel and a busybox initramfs that reads labctl's NoCloud
seed and runs dropbear on its management address (scripts/build-guest.sh, which caches it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import REPO


def build() -> tuple[Path, Path]:
    """(kernel, initrd), built once and cached under build/guest/."""
    built = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-guest.sh")], capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stderr
    directory = REPO / built.stdout.strip()
    return directory / "vmlinuz", directory / "initrd.gz"
