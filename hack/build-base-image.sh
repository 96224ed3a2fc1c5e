#!/bin/bash
# Builds bcvk's runner base image without any container registry: a Debian
# trixie root file system made by mmdebstrap from Debian packages, imported
# into podman. It holds what the runner needs inside the container: QEMU
# (no GUI), virtiofsd and the SSH client.
#
# Usage: hack/build-base-image.sh [IMAGE]   (default localhost/bcvk-base:trixie)
# Needs root, podman and mmdebstrap >= 1.x (see hack/install-host-deps.sh).
# Skips the build when IMAGE was already built from this exact script.
set -euo pipefail

image=${1:-localhost/bcvk-base:trixie}
suite=trixie
mirror=${BCVK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# --no-install-recommends matters: qemu-system-x86 recommends qemu-system-gui.
# qemu-utils gives qemu-img (disk images for to-disk); ovmf is UEFI firmware
# for booting the disks it makes (SeaBIOS comes with qemu-system-x86).
# dosfstools and mtools make the --cloud-init seed disk (mkfs.vfat, mcopy).
packages=qemu-system-x86,qemu-utils,ovmf,virtiofsd,erofs-utils,openssh-client,xz-utils,zstd,ca-certificates,vhost-device-vsock,dosfstools,mtools
# vhost-device-vsock (the userspace virtio-vsock backend for hosts without
# /dev/vhost-vsock) is only in sid. sid is a source at priority 100, so
# nothing else comes from there; that one package is pinned to 500. Its
# dependencies (libc6, libgcc-s1) are trixie's.
# apt takes the first record that matches a package: the specific one first.
pin='Package: vhost-device-vsock
Pin: release n=sid
Pin-Priority: 500

Package: *
Pin: release n=sid
Pin-Priority: 100
'
# A fixed timestamp: mmdebstrap clamps file times to it and writes a sorted
# tarball, so equal package versions give an equal root file system.
export SOURCE_DATE_EPOCH=1754697600 # 2025-08-09, trixie's release day

log() { echo "build-base-image: $*" >&2; }

# Everything that decides the result lives in this file (packages, suite,
# hooks), so its hash identifies the inputs. The mirror is added because a
# different mirror may serve different versions.
self=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source=hack/lib.sh
. "$(dirname "$self")/lib.sh"
inputs=$( { cat "$self" "$(dirname "$self")/lib.sh"; echo "$mirror"; } | sha256sum | cut -c1-32)
have=$(podman image inspect --format '{{index .Labels "bcvk.inputs"}}' "$image" 2>/dev/null || true)
if [ "$have" = "$inputs" ]; then
	log "$image is up to date (bcvk.inputs=$inputs), skipping"
	exit 0
fi

tmp=$(mktemp -d /var/tmp/bcvk-base.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

start=$(date +%s)
log "building $image from Debian $suite ($mirror)"
# Variant apt keeps apt in the image so that a Containerfile can extend it.
# Docs, man pages and translations are dropped: nobody reads them in here.
# The first customize hook drops what mmdebstrap copies from the build host
# (podman provides both at run time). The others fail the build if the
# binaries the runner calls are missing, rather than at the first VM launch.
mmdebstrap --variant=apt --include="$packages" \
	"${MMDEBSTRAP_SLIM[@]}" \
	--setup-hook='mkdir -p "$1/etc/apt/preferences.d"' \
	--setup-hook="printf '%s' '$pin' > \"\$1/etc/apt/preferences.d/bcvk-sid.pref\"" \
	--customize-hook='rm -f "$1/etc/hostname" "$1/etc/resolv.conf"' \
	--customize-hook='test -x "$1/usr/libexec/virtiofsd" && test -x "$1/usr/bin/qemu-system-x86_64" && test -x "$1/usr/bin/qemu-img" && test -e "$1/usr/share/OVMF/OVMF_CODE_4M.fd" && test -x "$1/usr/bin/mkfs.erofs" && test -x "$1/usr/bin/vhost-device-vsock" && test -x "$1/usr/sbin/mkfs.vfat" && test -x "$1/usr/bin/mcopy"' \
	--customize-hook='if chroot "$1" dpkg -s qemu-system-gui >/dev/null 2>&1; then echo "qemu-system-gui was pulled in" >&2; exit 1; fi' \
	--quiet "$suite" "$tmp/rootfs.tar" "deb $mirror $suite main" "deb $mirror sid main" >&2

log "importing into podman"
old=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
podman import --quiet \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'CMD ["/bin/bash"]' \
	--change "LABEL bcvk.inputs=$inputs" \
	--change "LABEL org.opencontainers.image.description=bcvk runner base: Debian $suite, QEMU, qemu-img, OVMF, virtiofsd, mkfs.erofs, vhost-device-vsock, OpenSSH client, dosfstools, mtools" \
	--message "hack/build-base-image.sh" \
	"$tmp/rootfs.tar" "$image" >/dev/null
# Drop the image this one replaces, unless something still uses it (then
# podman refuses, which is fine).
[ -z "$old" ] || podman rmi "$old" >/dev/null 2>&1 || true
log "built $image in $(( $(date +%s) - start )) s"
