#!/usr/bin/env bash
# Build the small real guest that labctl's nested-VM lab boots under QEMU/TCG (the
# ci-nested playbook, tests/e2e/test_nested_guests.py): Debian 12's kernel and a
# busybox-static initramfs that loads the virtio-net modules, sets the address labctl
# passes on the kernel command line (labctl.ip=172.16.0.1/24) and prints a ready line
# on its serial console. No install scripts run: the kernel package is downloaded
# (apt-get download) and unpacked (dpkg-deb -x). Nothing built here is committed.
#
# The way in: a second NIC (eth1) on the hypervisor host's management bridge, never the
# lab's br0, takes the address from labctl.mgmt=169.254.100.10/24, and busybox httpd,
# bound to that address only, runs one command per POST (cgi-bin/run: the body is a
# shell-quoted argv; the answer is "RC STDOUT_BYTES", then stdout, then stderr). No SSH
# yet: that is the next step (docs/drivers.md). fping and the C library it links are
# copied in, so verify pings from inside the guest as from a namespace VM.
#
# Cached under build/guest/ per kernel package and version of this script; the links
# build/guest/vmlinuz and build/guest/initrd.gz point at the current build, and the
# script prints its directory. Needs apt's package lists, dpkg-deb and busybox-static
# (scripts/setup.sh --libvirt installs it).
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."

out=build/guest
# In load order: each module needs the ones before it (modinfo -F depends).
modules=(drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko
         drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci_legacy_dev.ko
         drivers/virtio/virtio_pci.ko net/core/failover.ko drivers/net/net_failover.ko
         drivers/net/virtio_net.ko)
ready=LABCTL-GUEST-READY

# Debian 12's current kernel ABI, e.g. linux-image-6.1.0-26-amd64
package=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$package" ]; then
    echo "build-guest: apt knows no linux-image-amd64 (run apt-get update)" >&2
    exit 3
fi
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
    echo "build-guest: a static busybox is needed in the initramfs: apt-get install busybox-static" >&2
    exit 3
fi
dir="$out/$package-$(sha1sum "$self" | cut -c1-10)"

if [ ! -e "$dir/initrd.gz" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && apt-get download -qq "$package" 2>/dev/null)
    dpkg-deb -x "$work"/*.deb "$work/x"
    root="$work/root"
    mkdir -p "$root"/{bin,proc,sys,dev,lib/modules}
    cp "$busybox" "$root/bin/busybox"
    fping=$(command -v fping || true)
    if [ -z "$fping" ]; then
        echo "build-guest: fping is needed in the initramfs: apt-get install fping" >&2
        exit 3
    fi
    mkdir -p "$root/usr/bin" "$root/etc" "$root/www/cgi-bin" "$root/tmp"
    cp "$fping" "$root/usr/bin/fping"
    # its shared libraries and the loader, at the paths ldd names
    for lib in $(ldd "$fping" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    cp /etc/protocols "$root/etc/protocols"
    cat > "$root/www/cgi-bin/run" <<'RUN'
#!/bin/sh
# one command per request, from labctl on the hypervisor host (transport/guest.py)
echo "Content-Type: application/octet-stream"
echo
d=$(mktemp -d)
head -c "${CONTENT_LENGTH:-0}" > "$d/cmd"
sh "$d/cmd" > "$d/out" 2> "$d/err" < /dev/null
echo "$? $(wc -c < "$d/out")"
cat "$d/out" "$d/err"
rm -rf "$d"
RUN
    chmod 755 "$root/www/cgi-bin/run"
    names=()
    for module in "${modules[@]}"; do
        cp "$work"/x/lib/modules/*/kernel/"$module" "$root/lib/modules/"
        names+=("$(basename "$module")")
    done
    cat > "$root/init" <<INIT
#!/bin/busybox sh
# labctl's test guest: virtio-net up, the address from labctl.ip= on the kernel command line
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in ${names[*]}; do insmod /lib/modules/\$m; done
# the lab is IPv4: no router solicitations or MLD for the controller to see, as in a namespace VM
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
ip link set lo up
ip link set eth0 up
mgmt=
for arg in \$(cat /proc/cmdline); do
    case "\$arg" in
        labctl.ip=*) ip addr add "\${arg#labctl.ip=}" dev eth0 ;;
        labctl.mgmt=*) mgmt="\${arg#labctl.mgmt=}" ;;
    esac
done
export PATH=/usr/bin:/bin
if [ -n "\$mgmt" ] && [ -e /sys/class/net/eth1 ]; then
    ip link set eth1 up
    ip addr add "\$mgmt" dev eth1
    # bound to the management address only: nothing listens on the lab's eth0
    httpd -p "\${mgmt%/*}:8080" -h /www
    echo "LABCTL-GUEST-WAY-IN \$(ip -4 -o addr show dev eth1)"
fi
echo "$ready \$(ip -4 -o addr show dev eth0)"
while true; do sleep 3600; done
INIT
    chmod 755 "$root/init"
    (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null) | gzip -9 > "$work/initrd.gz"
    mkdir -p "$dir"
    cp "$work"/x/boot/vmlinuz-* "$dir/vmlinuz"
    mv "$work/initrd.gz" "$dir/initrd.gz"  # last: its presence says the build is whole
fi
ln -sfn "$(basename "$dir")/vmlinuz" "$out/vmlinuz"
ln -sfn "$(basename "$dir")/initrd.gz" "$out/initrd.gz"
echo "$dir"
