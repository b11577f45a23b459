#!/usr/bin/env bash
# Install what labctl needs on Debian 12 (as root): system packages, then a
# Python environment in .venv with labctl installed in it. Safe to re-run:
# it installs only what is missing.
#   scripts/setup.sh          what `labctl up` needs
#   scripts/setup.sh --test   also what the test suite needs
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "setup: run as root (labctl creates network namespaces and OVS daemons)" >&2
    exit 2
fi

packages=(openvswitch-switch openvswitch-common iproute2 iputils-ping fping ethtool tcpdump
          python3 python3-venv python3-dev gcc pkg-config libvirt-dev)
extras=(".[all]")
if [ "${1:-}" = "--test" ]; then
    packages+=(tshark graphviz openvswitch-testcontroller openssh-server openssh-client
               busybox-static qemu-system-x86 qemu-utils libvirt-clients libxml2-utils)
    extras=(".[all,test]")
fi

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian starts the system Open vSwitch when installing it; labctl does not
# use it (each simulated host runs its own daemons) and leaves it alone.

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=".venv/.labctl-installed-$(sha1sum pyproject.toml | cut -c1-12)-${extras[0]}"
if [ ! -e "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e "${extras[@]}"
    rm -f .venv/.labctl-installed-*
    touch "$stamp"
fi
