#!/usr/bin/env bash
# Install what labctl needs on Debian 12 (as root): system packages, then a
# Python environment in .venv with labctl installed in it, every Python package
# at the version constraints.txt pins. Safe to re-run: it installs only what is
# missing or what a changed constraints file asks for.
#   scripts/setup.sh          what `labctl up` needs
#   scripts/setup.sh --ryu    also Ryu (controller kind ryu) in its own environment, .venv-ryu
#   scripts/setup.sh --libvirt  also what real guests on simulated kvm hosts need (guests: libvirt):
#                               libvirtd and its QEMU driver, QEMU, the libvirt-qemu user, and the
#                               small test guest (scripts/build-guest.sh, into build/guest/:
#                               busybox-static, dropbear-bin, fping)
#   scripts/setup.sh --test   also what the test suite needs (Ryu and --libvirt included; POX where
#                             GitHub is reachable)
set -euo pipefail
cd "$(dirname "$0")/.."

test=no
ryu=no
libvirt=no
for arg in "$@"; do
    case "$arg" in
        --test) test=yes; ryu=yes; libvirt=yes ;;
        --ryu) ryu=yes ;;
        --libvirt) libvirt=yes ;;
        *) echo "setup: unknown option $arg (expected --test, --ryu or --libvirt)" >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" != 0 ]; then
    echo "setup: run as root (labctl creates network namespaces and OVS daemons)" >&2
    exit 2
fi

packages=(openvswitch-switch openvswitch-common iproute2 iputils-ping fping ethtool tcpdump
          python3 python3-venv python3-dev gcc pkg-config libvirt-dev)
extras=(".[all]")
if [ "$test" = yes ]; then
    packages+=(tshark graphviz openvswitch-testcontroller openssh-server openssh-client
               qemu-utils libvirt-clients libxml2-utils
               openssl)  # openssl: the XenAPI TLS tests make a self-signed certificate
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

# Real guests on simulated kvm hosts (docs/drivers.md): each such host runs its own
# libvirtd inside its namespaces, so the machine's libvirtd is neither needed nor
# started -- these packages would start services, hence a policy-rc.d that forbids
# it while they install (removed after, unless one was there already). libvirt's QEMU
# driver looks the user libvirt-qemu up when it starts, even though labctl's qemu.conf
# runs QEMU as root; libvirt-daemon-system would create it, with much else.
if [ "$libvirt" = yes ]; then
    # busybox-static, dropbear-bin (dropbear, dropbearconvert): the test guest's initramfs
    # (scripts/build-guest.sh); curl: the tests probe a guest's lab address with it
    wanted=()
    for pkg in libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils busybox-static \
               dropbear-bin curl; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || wanted+=("$pkg")
    done
    if [ ${#wanted[@]} -gt 0 ]; then
        echo "setup: installing ${wanted[*]} (no service started)"
        policy=/usr/sbin/policy-rc.d
        own_policy=no
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\n# scripts/setup.sh: no service starts while it installs packages\nexit 101\n' > "$policy"
            chmod 755 "$policy"
            own_policy=yes
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null || status=$?
        if [ "$own_policy" = yes ]; then
            rm -f "$policy"
        fi
        [ "${status:-0}" = 0 ] || exit "$status"
    fi
    if ! getent passwd libvirt-qemu >/dev/null; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin libvirt-qemu
        echo "setup: created the system user libvirt-qemu (libvirt's QEMU driver looks it up)"
    fi
    apt-cache show linux-image-amd64 >/dev/null 2>&1 || apt-get update -qq  # the guest's kernel
    echo "setup: the test guest is in $(bash scripts/build-guest.sh)"
fi

# Kernel limits shared by every namespace, sized by default for one host: a
# simulated lab of 24-64 hosts outgrows the ARP table and the socket buffer of a
# busy host's OVS port (labctl/drivers/simlimits.py says why; `labctl up` warns
# when they are short). Raised for this boot only, never lowered; to keep them,
# put the same lines in /etc/sysctl.d/.
raise_sysctl() {
    local key=$1 wanted=$2 current
    current=$(sysctl -n "$key" 2>/dev/null) || return 0
    if [ "$current" -lt "$wanted" ]; then
        if sysctl -qw "$key=$wanted" 2>/dev/null; then
            echo "setup: raised $key from $current to $wanted (for simulated labs of many hosts)"
        else
            echo "setup: could not raise $key to $wanted; labs of more than 16 hosts may lose pings" >&2
        fi
    fi
}
raise_sysctl net.ipv4.neigh.default.gc_thresh3 16384  # a 64-host mesh needs about 8500
raise_sysctl net.core.rmem_default 2097152

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# Every package at the version constraints.txt pins (scripts/lock.sh refreshes it), so
# each machine and CI run gets the same; the stamp changes when either file does.
# The test install is a superset of the plain one, so demo.sh after test.sh installs nothing.
pins=$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
stamp=".venv/.labctl-installed-$pins-${extras[0]}"
superset_stamp=".venv/.labctl-installed-$pins-.[all,test]"
if [ ! -e "$stamp" ] && [ ! -e "$superset_stamp" ]; then
    .venv/bin/pip install -q -c constraints.txt --upgrade pip >/dev/null
    .venv/bin/pip install -q -c constraints.txt -e "${extras[@]}"
    rm -f .venv/.labctl-installed-*
    touch "$stamp"
fi

# Ryu 4.34 gets its own environment: its dependencies clash with os-ken's. It
# builds only with setuptools < 68 (its setup hook reads easy_install.get_script_args,
# since removed), hence no build isolation; on Python 3.11 it runs with eventlet
# 0.33.3 and dnspython 2 (0.30.2, its era, fails there), plus the shim in
# labctl/controllers/ryu_runner.py. See docs/controllers.md. Ryu's dependencies are
# pinned in constraints-ryu.txt (scripts/lock.sh); the stamp changes with it.
ryu_stamp=".venv-ryu/.labctl-ryu-4.34-$(sha1sum constraints-ryu.txt | cut -c1-12)"
if [ "$ryu" = yes ] && [ ! -e "$ryu_stamp" ]; then
    echo "setup: installing Ryu 4.34 in .venv-ryu"
    if [ ! -x .venv-ryu/bin/python ]; then
        python3 -m venv .venv-ryu
    fi
    .venv-ryu/bin/pip install -q -c constraints-ryu.txt "setuptools<68" wheel pbr
    .venv-ryu/bin/pip install -q -c constraints-ryu.txt --no-build-isolation \
        ryu==4.34 "eventlet==0.33.3" "dnspython>=2,<3"
    rm -f .venv-ryu/.labctl-ryu-*
    touch "$ryu_stamp"
fi

# POX for the POX tests: not on PyPI or in Debian, so a pinned clone where GitHub is
# reachable; without it the POX tests skip (scripts/get-pox.sh says how to run them).
if [ "$test" = yes ]; then
    bash scripts/get-pox.sh
fi
