"""The versions that matter in a bug report: labctl, Python, the system, Open vSwitch, the
controllers, libvirt. `labctl --version -v` prints them, and so does `labctl doctor`.

Every probe is read-only and answers with a line even when the thing is missing, so
the report is complete on any machine. Nothing here runs for plain `labctl --version`.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labctl import __version__
from labctl.errors import LabctlError

PROBE_TIMEOUT = 10  # seconds for one `--version` of another program


@dataclass(frozen=True)
class Version:
    name: str
    version: str  # the version, or why there is none ("not installed", "not configured")
    detail: str = ""  # where it was found, or how to get it

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version, "detail": self.detail}


Runner = Callable[[list[str]], str]  # argv -> stdout; raises OSError or CalledProcessError


def run_quietly(argv: list[str]) -> str:
    return subprocess.run(
        argv, capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL, timeout=PROBE_TIMEOUT
    ).stdout


def _distribution(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def labctl_version() -> Version:
    from labctl.defaults import checkout

    root = checkout()
    where = f"clone {root}" if root else f"installed in {Path(__file__).resolve().parent.parent}"
    return Version("labctl", __version__, where)


def python_version() -> Version:
    return Version("Python", platform.python_version(), sys.executable)


def system_version(os_release: Path = Path("/etc/os-release")) -> Version:
    try:
        fields = dict(line.split("=", 1) for line in os_release.read_text().splitlines() if "=" in line)
        name = fields.get("PRETTY_NAME", "").strip('"') or platform.system()
    except OSError:
        name = platform.system()
    return Version("system", name, f"kernel {platform.release()}")


def ovs_version(run: Runner = run_quietly) -> Version:
    """This machine's Open vSwitch, which simulated hosts run (`ovs-vsctl (Open vSwitch) 3.1.0`)."""
    if not shutil.which("ovs-vsctl"):
        return Version("Open vSwitch", "not installed", "no ovs-vsctl on PATH: install openvswitch-switch")
    try:
        first = run(["ovs-vsctl", "--version"]).splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError) as exc:
        return Version("Open vSwitch", "unknown", f"ovs-vsctl --version failed: {exc}")
    found = re.search(r"\)\s*(\S+)", first)
    return Version("Open vSwitch", found.group(1) if found else first, "ovs-vsctl")


def osken_version() -> Version:
    found = _distribution("os-ken")
    return Version("os-ken", found or "not installed", "the default controller" if found else "")


def ryu_version(configured: str | None = None, run: Runner = run_quietly) -> Version:
    """Ryu as `controller.path`, LABCTL_RYU_PYTHON or the clone's .venv-ryu name it."""
    from labctl.controllers.ryu import how_to_install, ryu_python

    try:
        python = ryu_python(configured)
    except LabctlError:
        return Version("Ryu", "not installed", how_to_install())
    try:
        found = run([str(python), "-c", "import importlib.metadata as m; print(m.version('ryu'))"]).strip()
    except (OSError, subprocess.SubprocessError):
        return Version("Ryu", "not installed", f"{python} has no Ryu")
    return Version("Ryu", found, str(python))


def pox_version(configured: str | None = None) -> Version:
    """POX from `controller.path` or LABCTL_POX_PATH; its version is in pox/core.py."""
    from labctl.controllers.pox import POX_PATH_ENV, pox_checkout

    if not (configured or os.environ.get(POX_PATH_ENV)):
        return Version("POX", "not configured", f"set {POX_PATH_ENV} or controller.path")
    try:
        checkout = pox_checkout(configured)
        core = (checkout / "pox" / "core.py").read_text(errors="replace")
    except (LabctlError, OSError) as exc:
        return Version("POX", "not found", str(exc))
    number = re.search(r"^\s*version\s*=\s*\(([\d,\s]+)\)", core, re.M)
    name = re.search(r"^\s*version_name\s*=\s*[\"'](\w+)", core, re.M)
    version = ".".join(p.strip() for p in number.group(1).split(",")) if number else "unknown"
    return Version("POX", f"{version} ({name.group(1)})" if name else version, str(checkout))


def testcontroller_version(run: Runner = run_quietly) -> Version:
    if not shutil.which("ovs-testcontroller"):
        return Version("ovs-testcontroller", "not installed", "install openvswitch-testcontroller")
    try:
        first = run(["ovs-testcontroller", "--version"]).splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError) as exc:
        return Version("ovs-testcontroller", "unknown", str(exc))
    found = re.search(r"\)\s*(\S+)", first)
    return Version("ovs-testcontroller", found.group(1) if found else first)


def dotted(number: int) -> str:
    """libvirt's versions are major * 1,000,000 + minor * 1,000 + release."""
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def libvirt_version() -> Version:
    binding = _distribution("libvirt-python")
    if binding is None:
        return Version("libvirt", "not installed", "libvirt-python is the kvm extra: pip install labctl[kvm]")
    try:
        import libvirt
    except ImportError as exc:  # installed, but its C library is gone
        return Version("libvirt", "unknown", f"libvirt-python {binding} does not load: {exc}")
    try:
        library = dotted(libvirt.getVersion())
    except libvirt.libvirtError as exc:
        return Version("libvirt", "unknown", f"libvirt-python {binding}: {exc}")
    return Version("libvirt", library, f"libvirt-python {binding}")


def report(controller=None, run: Runner | None = None) -> list[Version]:
    """Every version, the controllers' as the lab's `controller` (if given) configures them."""
    run = run or run_quietly
    kind = getattr(controller, "kind", None)
    path = getattr(controller, "path", None)
    versions = [
        labctl_version(),
        python_version(),
        system_version(),
        ovs_version(run),
        osken_version(),
        ryu_version(path if kind == "ryu" else None, run),
        pox_version(path if kind == "pox" else None),
    ]
    if kind == "ovs-testcontroller":
        versions.append(testcontroller_version(run))
    versions.append(libvirt_version())
    return versions


def render(versions: list[Version]) -> str:
    width = max(len(v.name) for v in versions)
    return "\n".join(
        f"{v.name:<{width}}  {v.version}" + (f"  ({v.detail})" if v.detail else "") for v in versions
    )
