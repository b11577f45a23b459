#!/usr/bin/env bash
# Build the small real guest that labctl's nested-VM lab boots under QEMU/TCG (the
# ci-nested playbook, tests/e2e/test_nested_guests.py): Debian 12's kernel and a
# busybox-static initramfs that does what cloud-init does with labctl's NoCloud seed
# (labctl/nocloud.py), in a few lines of shell: it finds the CD labelled cidata, gives
# each NIC named in its network-config (matched by MAC) its address and MTU, installs
# the lab's key for root (user-data's ssh_authorized_keys) and the guest's own host key
# (ssh_keys), and starts dropbear on the management address only, never on the lab's
# NIC. Then it prints a ready line on its serial console. No install scripts run: the
# kernel package is downloaded (apt-get download) and unpacked (dpkg-deb -x). Nothing
# built here is committed.
#
# Without a seed the guest has no address and no way in (labctl says "address not
# managed"). fping, dropbear and dropbearconvert, and the C libraries they link, are
# copied in, so verify pings from inside the guest over SSH as from a namespace VM.
#
# Cached under build/guest/ per kernel package and version of this script; the links
# build/guest/vmlinuz and build/guest/initrd.gz point at the current build, and the
# script prints its directory. Needs apt's package lists, dpkg-deb, busybox-static,
# fping and dropbear-bin (scripts/setup.sh --libvirt installs them).
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."

out=build/guest
# In load order: each module needs the ones before it (modinfo -F depends).
modules=(drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko
         drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci_legacy_dev.ko
         drivers/virtio/virtio_pci.ko net/core/failover.ko drivers/net/net_failover.ko
         drivers/net/virtio_net.ko
         # the seed's CD: SATA (AHCI: both of QEMU's x86 machines), SCSI CD-ROM, ISO9660
         drivers/scsi/scsi_common.ko drivers/scsi/scsi_mod.ko drivers/ata/libata.ko
         drivers/ata/libahci.ko drivers/ata/ahci.ko drivers/cdrom/cdrom.ko
         drivers/scsi/sr_mod.ko fs/isofs/isofs.ko)
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
    # a tool and its shared libraries and loader, at the paths ldd names
    copy_tool() {
        local tool=$1 package=$2 path lib
        path=$(command -v "$tool" || true)
        if [ -z "$path" ]; then
            echo "build-guest: $tool is needed in the initramfs: apt-get install $package" >&2
            exit 3
        fi
        mkdir -p "$root$(dirname "$path")"
        cp "$path" "$root$path"
        for lib in $(ldd "$path" | grep -o '/[^ ]*'); do
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done
    }
    copy_tool fping fping
    copy_tool dropbear dropbear-bin
    copy_tool dropbearconvert dropbear-bin
    mkdir -p "$root/etc" "$root/tmp" "$root/root" "$root/seed" "$root/var/run" "$root/etc/dropbear"
    cp /etc/protocols "$root/etc/protocols"
    echo "root:*:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
    echo "root:x:0:" > "$root/etc/group"
    echo "/bin/sh" > "$root/etc/shells"
    names=()
    for module in "${modules[@]}"; do
        cp "$work"/x/lib/modules/*/kernel/"$module" "$root/lib/modules/"
        names+=("$(basename "$module")")
    done
    cat > "$root/init" <<INIT
#!/bin/busybox sh
# labctl's test guest: what cloud-init does with labctl's NoCloud seed, in busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
for m in ${names[*]}; do insmod /lib/modules/\$m; done
# the lab is IPv4: no router solicitations or MLD for the controller to see, as in a namespace VM
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
ip link set lo up
export PATH=/usr/sbin:/usr/bin:/bin
# The seed: the CD labelled cidata (the CD-ROM driver finds it a moment after it loads).
seed=
for try in \$(seq 1 100); do
    for dev in /dev/sr* /dev/vd*; do
        [ -b "\$dev" ] || continue
        if mount -t iso9660 -o ro "\$dev" /seed 2>/dev/null; then
            [ -f /seed/meta-data ] && [ -f /seed/network-config ] && seed=\$dev && break 2
            umount /seed
        fi
    done
    sleep 0.1
done
if [ -z "\$seed" ]; then
    echo "LABCTL-GUEST-NO-SEED: no address, no way in"
    echo "$ready none"
    while true; do sleep 3600; done
fi
echo "LABCTL-GUEST-SEED \$seed"
# network-config v2, as labctl writes it: "NAME MAC ADDRESS MTU" per ethernet
awk '
function flush() { if (mac != "") print name, mac, addr, (mtu == "" ? "-" : mtu); mac = ""; addr = ""; mtu = "" }
/^  [A-Za-z0-9_-]+:\$/ { flush(); name = \$1; sub(/:\$/, "", name) }
/macaddress:/ { mac = tolower(\$2); gsub(/["\047]/, "", mac) }
/^    - / { addr = \$2 }
/^    mtu:/ { mtu = \$2 }
END { flush() }' /seed/network-config > /tmp/nics
mgmt=
while read name mac addr mtu; do
    for path in /sys/class/net/*; do
        [ "\$(cat \$path/address)" = "\$mac" ] || continue
        dev=\${path##*/}
        [ "\$mtu" = - ] || ip link set "\$dev" mtu "\$mtu"
        ip addr add "\$addr" dev "\$dev"
        ip link set "\$dev" up
        [ "\$name" = mgmt ] && mgmt=\${addr%/*}
    done
done < /tmp/nics
# user-data: the lab's key for root, and this guest's host key (OpenSSH format, for dropbear)
mkdir -p /root/.ssh && chmod 700 /root/.ssh
awk '/^ssh_authorized_keys:/ { on = 1; next } on && /^- / { sub(/^- /, ""); gsub(/["\047]/, ""); print; next } { on = 0 }' \\
    /seed/user-data > /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
awk '/^  ed25519_private: [|]/ { on = 1; next } on && /^    / { sub(/^    /, ""); print; next } { on = 0 }' \\
    /seed/user-data > /tmp/host_key
dropbearconvert openssh dropbear /tmp/host_key /etc/dropbear/dropbear_ed25519_host_key >/dev/null 2>&1
rm -f /tmp/host_key
if [ -n "\$mgmt" ]; then
    # keys only (-s), on the management address only: nothing listens on the lab's NIC
    dropbear -s -r /etc/dropbear/dropbear_ed25519_host_key -p "\$mgmt:22"
    echo "LABCTL-GUEST-WAY-IN ssh root@\$mgmt"
fi
echo "$ready \$(ip -4 -o addr show | grep -v ' lo ' | tr -s ' ')"
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
