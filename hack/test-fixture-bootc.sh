#!/bin/bash
# TEST FIXTURE -- NOT THE REAL bootc.
#
# Debian has no bootc, so bcvk's sample image carries this small stand-in at
# /usr/bin/bootc (installed by hack/build-sample-image.sh). It implements just
# the part of bootc's command line that `bcvk to-disk` relies on:
#
#   bootc install to-disk [--generic-image] [--skip-fetch-check] [--wipe]
#       [--filesystem FS] [--root-size SIZE] [--karg ARG]... DEVICE
#
# It writes a GPT (BIOS boot, EFI system and root partitions), makes the file
# system, copies the image's pristine root (which bcvk's guest init exposes
# read-only at /run/bcvk/image) onto it, puts the image's kernel and
# initramfs in /boot, and installs GRUB for BIOS and for UEFI with the kernel
# arguments. Real bootc images bring the real bootc; bcvk uses nothing but
# the command line above.
set -euo pipefail

prog="bootc (bcvk test fixture)"
source_root=${BCVK_FIXTURE_SOURCE:-/run/bcvk/image}

die() { echo "$prog: error: $*" >&2; exit 1; }
step_start=$(date +%s)
step() { echo "$prog: [$(( $(date +%s) - step_start ))s] $*"; }

[ "${1:-}" = install ] && [ "${2:-}" = to-disk ] ||
	die "this test fixture implements only 'bootc install to-disk' (got: ${*:-nothing})"
shift 2

fs=ext4 root_size= device=
kargs=()
while [ $# -gt 0 ]; do
	case $1 in
	--generic-image | --skip-fetch-check | --wipe) ;;
	--filesystem) fs=${2:?--filesystem needs a value}; shift ;;
	--filesystem=*) fs=${1#*=} ;;
	--root-size) root_size=${2:?--root-size needs a value}; shift ;;
	--root-size=*) root_size=${1#*=} ;;
	--karg) kargs+=("${2:?--karg needs a value}"); shift ;;
	--karg=*) kargs+=("${1#*=}") ;;
	--source-imgref) shift ;; # the copy comes from the exposed image root
	-*) die "unknown option $1" ;;
	*) [ -z "$device" ] || die "more than one device given: $device $1"; device=$1 ;;
	esac
	shift
done

# Everything that can be checked is checked before the disk is touched.
[ -n "$device" ] || die "no target device given"
[ -b "$device" ] || die "$device is not a block device"
[ "$(id -u)" = 0 ] || die "must run as root"
[ -d "$source_root/usr" ] || die "the image root is not at $source_root (this fixture runs only in a bcvk VM)"
command -v "mkfs.$fs" >/dev/null || die "unsupported file system '$fs': there is no mkfs.$fs in this image"
case $root_size in
'' | [0-9]*[KMGT]) ;;
*) die "--root-size '$root_size': give a number with K, M, G or T" ;;
esac
kver=$(ls "$source_root/usr/lib/modules")
[ "$(echo "$kver" | wc -l)" = 1 ] || die "expected one kernel in /usr/lib/modules, found: $kver"
[ -f "$source_root/usr/lib/modules/$kver/vmlinuz" ] || die "no vmlinuz for $kver"
[ -f "$source_root/usr/lib/modules/$kver/initramfs.img" ] || die "no initramfs.img for $kver"

dev=$(readlink -f "$device")
part() { case $dev in *[0-9]) echo "${dev}p$1" ;; *) echo "${dev}$1" ;; esac; }
target=$(mktemp -d /run/bootc-fixture.XXXXXX)
cleanup() {
	umount -R "$target" 2>/dev/null || true
	rmdir "$target" 2>/dev/null || true
}
trap cleanup EXIT

step "partitioning $dev (GPT: BIOS boot, EFI system, root${root_size:+ of $root_size})"
wipefs --all --quiet "$dev"
sfdisk --quiet --wipe always --wipe-partitions always "$dev" <<EOF
label: gpt
size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name="BIOS-BOOT"
size=127MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI-SYSTEM"
${root_size:+size=${root_size}, }type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root"
EOF
udevadm settle
for n in 2 3; do [ -b "$(part $n)" ] || die "partition $(part $n) did not appear"; done

step "making file systems (vfat for EFI, $fs for root)"
mkfs.vfat -F 32 -n EFI-SYSTEM "$(part 2)" >/dev/null
case $fs in
ext2 | ext3 | ext4) "mkfs.$fs" -q -F -L root "$(part 3)" ;;
xfs | btrfs) "mkfs.$fs" -q -f -L root "$(part 3)" ;;
*) "mkfs.$fs" "$(part 3)" ;;
esac
root_uuid=$(blkid -s UUID -o value "$(part 3)")
esp_uuid=$(blkid -s UUID -o value "$(part 2)")

mount "$(part 3)" "$target"
step "copying the image root ($(du -sm --apparent-size "$source_root" 2>/dev/null | cut -f1) MiB)"
cp -a "$source_root/." "$target/"
mkdir -p "$target/boot/efi"
mount "$(part 2)" "$target/boot/efi"
cp "$source_root/usr/lib/modules/$kver/vmlinuz" "$target/boot/vmlinuz-$kver"
cp "$source_root/usr/lib/modules/$kver/initramfs.img" "$target/boot/initramfs-$kver.img"
cat >"$target/etc/fstab" <<EOF
# Written by $prog
UUID=$root_uuid / $fs defaults 0 1
UUID=$esp_uuid /boot/efi vfat umask=0077,nofail 0 2
EOF
# --generic-image: nothing tied to this machine. The image has no host keys
# and an empty machine-id; keep it that way.
rm -f "$target"/etc/ssh/ssh_host_*
: >"$target/etc/machine-id"

step "installing GRUB for BIOS and UEFI"
grub-install --target=i386-pc --boot-directory="$target/boot" "$dev" 2>&1 | grep -v '^Installation finished' || true
[ -f "$target/boot/grub/i386-pc/core.img" ] || die "grub-install for BIOS failed"
grub-install --target=x86_64-efi --efi-directory="$target/boot/efi" --boot-directory="$target/boot" \
	--removable --no-nvram 2>&1 | grep -v '^Installation finished' || true
[ -f "$target/boot/efi/EFI/BOOT/BOOTX64.EFI" ] || die "grub-install for UEFI failed"
grub_fs=$(grub-probe --target=fs "$target/boot")
cmdline="root=UUID=$root_uuid rw console=tty0 console=ttyS0,115200n8${kargs[*]:+ ${kargs[*]}}"
cat >"$target/boot/grub/grub.cfg" <<EOF
# Written by $prog
set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
insmod part_gpt
insmod $grub_fs
search --no-floppy --fs-uuid --set=root $root_uuid
menuentry "bootc image (kernel $kver)" {
	linux /boot/vmlinuz-$kver $cmdline
	initrd /boot/initramfs-$kver.img
}
EOF

step "unmounting"
sync
cleanup
trap - EXIT
step "installation complete: kernel $kver, root $fs, kernel arguments: $cmdline"
