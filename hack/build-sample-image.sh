#!/bin/bash
# Builds bcvk's sample bootc image without any container registry, from
# Debian packages: trixie with systemd, a kernel at the bootc location
# (/usr/lib/modules/KVER/{vmlinuz,initramfs.img}), sshd and DHCP networking,
# and a TEST FIXTURE at /usr/bin/bootc (hack/test-fixture-bootc.sh) that
# implements `bootc install to-disk` for bcvk's to-disk tests.
# It also builds a tiny kernel-less image, labelled bootc too, for the test
# that expects bcvk to report that no kernel was found.
#
# Usage: hack/build-sample-image.sh [IMAGE [NOKERNEL_IMAGE]]
#   defaults: localhost/bcvk-sample:latest localhost/bcvk-test-nokernel:latest
#   An empty NOKERNEL_IMAGE ("") skips the kernel-less image.
# Needs root, podman and mmdebstrap >= 1.x (see hack/install-host-deps.sh).
# Each image is skipped when it was already built from this exact script.
set -euo pipefail

image=${1:-localhost/bcvk-sample:latest}
nokernel_image=${2-localhost/bcvk-test-nokernel:latest}
suite=trixie
mirror=${BCVK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# systemd-sysv gives /sbin/init; dracut provides the initramfs tool the kernel
# package asks for (instead of initramfs-tools); networkd ships in systemd.
# The last line is for the bootc test fixture (to-disk): partitioning, file
# systems and GRUB for BIOS and UEFI.
packages=systemd,systemd-sysv,systemd-resolved,libpam-systemd,dbus,linux-image-amd64,dracut,zstd,openssh-server,iproute2,\
fdisk,dosfstools,e2fsprogs,grub2-common,grub-pc-bin,grub-efi-amd64-bin
# Fixed, so that file times and therefore the tarball do not depend on when
# the script ran.
export SOURCE_DATE_EPOCH=1754697600 # 2025-08-09, trixie's release day

log() { echo "build-sample-image: $*" >&2; }

# Everything that decides the result lives in this file, so its hash (plus the
# mirror, which decides package versions) identifies the inputs.
self=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source=hack/lib.sh
. "$(dirname "$self")/lib.sh"
fixture=$(dirname "$self")/test-fixture-bootc.sh
inputs=$( { cat "$self" "$(dirname "$self")/lib.sh" "$fixture"; echo "$mirror"; } | sha256sum | cut -c1-32)
up_to_date() {
	local have
	have=$(podman image inspect --format '{{index .Labels "bcvk.inputs"}}' "$1" 2>/dev/null || true)
	[ "$have" = "$inputs" ] && log "$1 is up to date (bcvk.inputs=$inputs), skipping"
}

tmp=$(mktemp -d /var/tmp/bcvk-sample.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Sorted entries, clamped times and numeric owners make the tarball depend on
# the tree only; xattrs keep file capabilities.
pack() {
	tar -C "$1" --sort=name --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime \
		--numeric-owner --xattrs --xattrs-include='*' \
		--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
		-cf - .
}
podman_import() { # import NAME < tarball; the bootc labels are what bcvk checks
	local old
	old=$(podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true)
	podman import --quiet \
		--change 'LABEL containers.bootc=1' \
		--change 'LABEL ostree.bootable=1' \
		--change "LABEL bcvk.inputs=$inputs" \
		--change 'CMD ["/sbin/init"]' \
		--message "hack/build-sample-image.sh" - "$1" >/dev/null
	# Drop the image this one replaces, unless something still uses it.
	[ -z "$old" ] || podman rmi "$old" >/dev/null 2>&1 || true
}

# Applied to the finished root file system (run as root on the host, so no
# chroot is needed except for tools that must see the image's own files).
customize() {
	local root=$1 kver
	kver=$(ls "$root/usr/lib/modules")
	[ "$(echo "$kver" | wc -l)" = 1 ] || { log "expected one kernel, got: $kver"; return 1; }

	# bootc finds the kernel next to its modules; /boot stays empty so that
	# nothing else there looks like a kernel.
	mv "$root/boot/vmlinuz-$kver" "$root/usr/lib/modules/$kver/vmlinuz"
	mv "$root/boot/initrd.img-$kver" "$root/usr/lib/modules/$kver/initramfs.img"
	chmod 0644 "$root/usr/lib/modules/$kver/initramfs.img" # dracut makes it 0600; it holds no secrets
	find "$root/boot" -mindepth 1 -delete
	rm -f "$root"/vmlinuz* "$root"/initrd.img* # dangling symlinks from kernel-img.conf

	# Host keys baked into an image would be shared by every VM. Generate one
	# key at first boot instead; ed25519 only, because RSA keygen is slow
	# under emulation. DefaultDependencies=no lets it run before ssh.socket
	# (which is ordered before basic.target) without an ordering cycle.
	rm -f "$root"/etc/ssh/ssh_host_*
	cat >"$root/etc/systemd/system/bcvk-ssh-hostkey.service" <<'EOF'
[Unit]
Description=Generate the SSH host key (ed25519)
DefaultDependencies=no
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
After=local-fs.target
Before=ssh.service ssh.socket shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=multi-user.target ssh.service
EOF
	# sshd_config includes this before its own settings, and first wins; the
	# HostKey line keeps sshd from looking for the RSA/ECDSA keys.
	cat >"$root/etc/ssh/sshd_config.d/10-bcvk.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
EOF

	cat >"$root/etc/systemd/network/80-bcvk-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF
	# Debian's own sshd-keygen.service runs "ssh-keygen -A" (RSA and ECDSA too,
	# slow under emulation) on first boot, which an empty machine-id makes
	# every boot: mask it, the unit above replaces it.
	systemctl --root="$root" --quiet disable sshd-keygen.service
	systemctl --root="$root" --quiet mask sshd-keygen.service
	systemctl --root="$root" --quiet enable systemd-networkd.service \
		systemd-resolved.service ssh.service bcvk-ssh-hostkey.service

	# mmdebstrap copies /etc/hostname from the build host; without the file
	# the guest is "localhost" unless DHCP names it. (resolv.conf is already
	# systemd-resolved's symlink.)
	rm -f "$root/etc/hostname"
	printf '%s\n' '127.0.0.1	localhost' '::1	localhost ip6-localhost ip6-loopback' >"$root/etc/hosts"

	# Debian has no bootc: a test fixture stands in for `bootc install
	# to-disk` (see the script). Real bootc images bring the real one.
	install -m 0755 "$fixture" "$root/usr/bin/bootc"

	# Root has no password at all ('*' cannot match): login is by SSH key only.
	chroot "$root" usermod -p '*' root
	# An empty machine-id makes systemd generate a fresh one at each boot.
	: >"$root/etc/machine-id"
}

if ! up_to_date "$image"; then
	start=$(date +%s)
	log "building $image from Debian $suite ($mirror)"
	# dracut's config goes in before the kernel's postinst runs dracut: a
	# generic (not host-only) initramfs that can mount a virtiofs root, made
	# reproducible (sorted, with SOURCE_DATE_EPOCH times).
	printf '%s\n' 'hostonly="no"' 'hostonly_cmdline="no"' \
		'add_dracutmodules+=" virtiofs "' 'compress="zstd"' 'reproducible="yes"' \
		>"$tmp/50-bcvk.conf"
	# Docs, man pages and translations are left out: nobody reads them there.
	mmdebstrap --variant=minbase --include="$packages" \
		"${MMDEBSTRAP_SLIM[@]}" \
		--essential-hook='mkdir -p "$1/etc/dracut.conf.d"' \
		--essential-hook="upload $tmp/50-bcvk.conf /etc/dracut.conf.d/50-bcvk.conf" \
		--quiet "$suite" "$tmp/root" "$mirror" >&2
	log "customizing"
	customize "$tmp/root"
	log "importing into podman"
	pack "$tmp/root" | podman_import "$image"
	rm -rf "$tmp/root"
	log "built $image in $(( $(date +%s) - start )) s"
fi

# The kernel-less image: just enough files to look like an OS, and no
# /usr/lib/modules at all.
if [ -n "$nokernel_image" ] && ! up_to_date "$nokernel_image"; then
	log "building $nokernel_image"
	mkdir -p "$tmp/nokernel/usr/lib" "$tmp/nokernel/etc"
	printf '%s\n' 'ID=bcvk-test-nokernel' 'NAME="bcvk test image without a kernel"' \
		>"$tmp/nokernel/usr/lib/os-release"
	ln -s ../usr/lib/os-release "$tmp/nokernel/etc/os-release"
	pack "$tmp/nokernel" | podman_import "$nokernel_image"
	log "built $nokernel_image"
fi
