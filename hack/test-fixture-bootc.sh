#!/bin/bash
# TEST FIXTURE -- NOT THE REAL bootc.
#
# Debian has no bootc, so bcvk's sample images carry this small stand-in at
# /usr/bin/bootc (installed by hack/build-sample-image.sh). It implements the
# part of bootc's command line that bcvk relies on, and behaves the way real
# bootc does there:
#
#   bootc install to-disk --source-imgref containers-storage:REF
#       [--target-imgref NAME] [--target-transport TRANSPORT]
#       [--generic-image] [--skip-fetch-check] [--wipe]
#       [--filesystem FS] [--root-size SIZE] [--karg ARG]... DEVICE
#   bootc status [--json | --format json|humanreadable] [--booted]
#
# install to-disk reads the image from container storage with the guest's
# podman (a created, never started container of REF, `podman mount`ed), as
# real bootc reads it from the storage
# that --source-imgref names; it refuses to run without --source-imgref and
# knows only the containers-storage: transport. It writes a GPT (BIOS boot,
# EFI system and root partitions), makes the file system, copies the image's
# tree onto it, puts the image's kernel and initramfs in /boot, installs GRUB
# for BIOS and for UEFI, and boots with the kernel arguments from the image's
# /usr/lib/bootc/kargs.d/*.toml (name order, match-architectures honoured)
# followed by the --karg arguments. It records what it installed in
# /var/lib/bootc-fixture/status.json on the disk, which `bootc status` in the
# booted disk reads. Real bootc images bring the real bootc.
set -euo pipefail
export LC_COLLATE=C # kargs.d files in byte order of their names, as bootc sorts them

prog="bootc (bcvk test fixture)"
# Overrides for testing this script outside a VM; unset in the images.
status_file=${BCVK_FIXTURE_STATUS:-/var/lib/bootc-fixture/status.json}
arch=${BCVK_FIXTURE_ARCH:-$(uname -m)}

die() { echo "$prog: error: $*" >&2; exit 1; }
step_start=$(date +%s)
step() { echo "$prog: [$(( $(date +%s) - step_start ))s] $*"; }

# json_str VALUE: VALUE as a JSON string. Control characters are refused
# rather than escaped: nothing this fixture records should contain them.
json_str() {
	local s=$1
	case $s in *[[:cntrl:]]*) die "cannot record a value with control characters: $(printf '%q' "$s")" ;; esac
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}
# json_array VALUE...: a JSON array of strings, on one line.
json_array() {
	local sep='' v
	printf '['
	for v in "$@"; do printf '%s%s' "$sep" "$(json_str "$v")"; sep=', '; done
	printf ']'
}

# parse_array TEXT: sets array_items to the strings of a TOML one-line array
# of double-quoted strings without escapes (["a", "b"], trailing comma
# allowed). Returns 1 on anything else.
parse_array() {
	local v=$1
	array_items=()
	[[ $v =~ ^\[(.*)\]$ ]] || return 1
	v=${BASH_REMATCH[1]}
	while :; do
		v=${v#"${v%%[![:space:]]*}"}
		[ -n "$v" ] || return 0
		[[ $v =~ ^\"([^\"\\]*)\"[[:space:]]*(,(.*))?$ ]] || return 1
		array_items+=("${BASH_REMATCH[1]}")
		[ -n "${BASH_REMATCH[2]}" ] || return 0
		v=${BASH_REMATCH[3]}
	done
}

# read_kargs_d DIR: appends to image_kargs the kernel arguments of
# DIR/*.toml in name order, as bootc does: each file has `kargs = [...]` and
# may have `match-architectures = [...]` (compared with uname -m); any other
# content is refused.
image_kargs=()
read_kargs_d() {
	local dir=$1 path f line n key value have_kargs match matched a
	local -a kargs_here arches
	[ -d "$dir" ] || return 0
	for path in "$dir"/*.toml; do
		[ -f "$path" ] || continue
		f=${path##*/}
		n=0 have_kargs=0 match=0
		kargs_here=() arches=()
		while IFS= read -r line || [ -n "$line" ]; do
			n=$((n + 1))
			[[ $line =~ ^[[:space:]]*(#.*)?$ ]] && continue
			[[ $line =~ ^[[:space:]]*([A-Za-z0-9_-]+)[[:space:]]*=[[:space:]]*(\[.*\])[[:space:]]*(#[^\]\"]*)?$ ]] ||
				die "$dir/$f:$n: cannot parse this line (this fixture reads only key = [\"...\", ...] on one line): $line"
			key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
			parse_array "$value" ||
				die "$dir/$f:$n: cannot parse the array (this fixture reads only double-quoted strings without escapes): $value"
			case $key in
			kargs) [ "$have_kargs" = 0 ] || die "$dir/$f:$n: kargs given twice"
				have_kargs=1 kargs_here=(${array_items[@]+"${array_items[@]}"}) ;;
			match-architectures) [ "$match" = 0 ] || die "$dir/$f:$n: match-architectures given twice"
				match=1 arches=(${array_items[@]+"${array_items[@]}"}) ;;
			*) die "$dir/$f:$n: unknown key '$key' (bootc knows kargs and match-architectures)" ;;
			esac
		done <"$dir/$f"
		[ "$have_kargs" = 1 ] || die "$dir/$f: no kargs = [...] in it"
		if [ "$match" = 1 ]; then
			matched=0
			for a in ${arches[@]+"${arches[@]}"}; do [ "$a" = "$arch" ] && matched=1; done
			if [ "$matched" = 0 ]; then
				step "kargs.d/$f: not for $arch (match-architectures: ${arches[*]}), skipped"
				continue
			fi
		fi
		step "kargs.d/$f: ${kargs_here[*]}"
		image_kargs+=(${kargs_here[@]+"${kargs_here[@]}"})
	done
}

# --- bootc status ----------------------------------------------------------

# status_field KEY: KEY's raw JSON value from the status file, which this
# script writes with one "key": value per line.
status_field() {
	sed -n 's/^  "'"$1"'": //p' "$status_file" | sed 's/,$//'
}
unquote() { local s=${1#\"}; printf '%s' "${s%\"}"; }

cmd_status() {
	local format=human target transport digest id arch_oci src
	while [ $# -gt 0 ]; do
		case $1 in
		--json) format=json ;;
		--format) format=${2:?--format needs a value}; shift ;;
		--format=*) format=${1#*=} ;;
		--booted | -v | --verbose) ;;
		*) die "bootc status: unknown option $1 (this fixture knows --json, --format json|humanreadable, --booted)" ;;
		esac
		shift
	done
	case $format in
	json | human | humanreadable) ;;
	*) die "bootc status: --format $format is not implemented by this fixture (json or humanreadable)" ;;
	esac
	if [ ! -f "$status_file" ]; then
		# What real bootc says on a system it did not install.
		if [ "$format" = json ]; then
			printf '%s\n' '{"apiVersion":"org.containers.bootc/v1","kind":"BootcHost","metadata":{"name":"host"},"spec":{"image":null,"bootOrder":"default"},"status":{"staged":null,"booted":null,"rollback":null,"rollbackQueued":false,"type":null}}'
		else
			echo "System is not deployed via bootc."
		fi
		return 0
	fi
	target=$(status_field targetImgref) transport=$(status_field targetTransport)
	digest=$(status_field imageDigest) id=$(status_field imageId)
	arch_oci=$(status_field architecture) src=$(status_field sourceImgref)
	if [ -z "$target" ] || [ -z "$transport" ] || [ -z "$digest" ] || [ -z "$id" ]; then
		die "$status_file is incomplete"
	fi
	if [ "$format" = json ]; then
		printf '{"apiVersion":"org.containers.bootc/v1","kind":"BootcHost","metadata":{"name":"host"},'
		printf '"spec":{"image":{"image":%s,"transport":%s},"bootOrder":"default"},' "$target" "$transport"
		printf '"status":{"staged":null,"booted":{"image":{"image":{"image":%s,"transport":%s},' "$target" "$transport"
		printf '"version":null,"timestamp":null,"imageDigest":%s,"imageId":%s,"architecture":%s},' "$digest" "$id" "${arch_oci:-null}"
		printf '"cachedUpdate":null,"incompatible":false,"pinned":false,"store":null,"ostree":null},'
		printf '"rollback":null,"rollbackQueued":false,"type":"bootcHost"}}\n'
	else
		printf '● Booted image: %s\n' "$(unquote "$target")"
		printf '        Digest: %s (%s)\n' "$(unquote "$digest")" "$(unquote "${arch_oci:-unknown}")"
		printf '      Image ID: %s\n' "$(unquote "$id")"
		printf '     Installed: from %s by %s\n' "$(unquote "$src")" "$prog"
	fi
}

# --- bootc install to-disk -------------------------------------------------

cmd_install_to_disk() {
	local fs=ext4 root_size='' device='' source_imgref='' target_imgref='' target_transport=registry
	local -a kargs=()
	while [ $# -gt 0 ]; do
		case $1 in
		--generic-image | --skip-fetch-check | --wipe) ;;
		--source-imgref) source_imgref=${2:?--source-imgref needs a value}; shift ;;
		--source-imgref=*) source_imgref=${1#*=} ;;
		--target-imgref) target_imgref=${2:?--target-imgref needs a value}; shift ;;
		--target-imgref=*) target_imgref=${1#*=} ;;
		--target-transport) target_transport=${2:?--target-transport needs a value}; shift ;;
		--target-transport=*) target_transport=${1#*=} ;;
		--filesystem) fs=${2:?--filesystem needs a value}; shift ;;
		--filesystem=*) fs=${1#*=} ;;
		--root-size) root_size=${2:?--root-size needs a value}; shift ;;
		--root-size=*) root_size=${1#*=} ;;
		--karg) kargs+=("${2:?--karg needs a value}"); shift ;;
		--karg=*) kargs+=("${1#*=}") ;;
		-*) die "unknown option $1" ;;
		*) [ -z "$device" ] || die "more than one device given: $device $1"; device=$1 ;;
		esac
		shift
	done

	# Everything that can be checked is checked before the disk is touched.
	[ -n "$source_imgref" ] ||
		die "--source-imgref is required: this fixture installs only an image from container storage (--source-imgref containers-storage:IMAGE); it does not copy the running system"
	local ref
	case $source_imgref in
	containers-storage:?*) ref=${source_imgref#containers-storage:} ;;
	containers-storage:) die "--source-imgref containers-storage: names no image" ;;
	*) die "--source-imgref $source_imgref: this fixture reads only the containers-storage: transport (e.g. containers-storage:IMAGE-ID)" ;;
	esac
	# Like real bootc: without --target-imgref the installed system tracks
	# the source reference itself, transport and all.
	if [ -z "$target_imgref" ]; then
		target_imgref=$ref target_transport=containers-storage
	fi
	case $target_transport in
	registry | containers-storage | oci | oci-archive | docker-daemon | dir) ;;
	*) die "--target-transport $target_transport: unknown transport" ;;
	esac
	[ -n "$device" ] || die "no target device given"
	[ -b "$device" ] || die "$device is not a block device"
	[ "$(id -u)" = 0 ] || die "must run as root"
	command -v podman >/dev/null || die "podman is not in this image; it reads the image from container storage"
	command -v "mkfs.$fs" >/dev/null || die "unsupported file system '$fs': there is no mkfs.$fs in this image"
	case $root_size in
	'' | [0-9]*[KMGT]) ;;
	*) die "--root-size '$root_size': give a number with K, M, G or T" ;;
	esac

	local inspect digest image_id image_arch
	inspect=$(podman image inspect --format '{{.Digest}} {{.Id}} {{.Architecture}}' "$ref" 2>&1) ||
		die "image $ref is not in this system's container storage (podman image inspect: $inspect)"
	read -r digest image_id image_arch <<<"$inspect"
	case $digest in sha256:*) ;; *) die "podman reports no manifest digest for $ref (got '$digest')" ;; esac

	local dev target src='' ctr='' kver
	dev=$(readlink -f "$device")
	part() { case $dev in *[0-9]) echo "${dev}p$1" ;; *) echo "${dev}$1" ;; esac; }
	target=$(mktemp -d /run/bootc-fixture.XXXXXX)
	# Every exit path: the disk's file systems, the mount and the container go.
	cleanup() {
		umount -R "$target" 2>/dev/null || true
		rmdir "$target" 2>/dev/null || true
		if [ -n "$ctr" ]; then
			podman umount "$ctr" >/dev/null 2>&1 || true
			podman rm --force "$ctr" >/dev/null 2>&1 || true
		fi
	}
	trap cleanup EXIT

	# A container that never runs, mounted: podman refuses `podman image
	# mount` for an image in a read-only additional store (where bcvk's VMs
	# see the host's images), but a container's read-only lower layers may
	# come from there.
	step "reading $source_imgref (digest $digest) from container storage"
	ctr=$(podman create --quiet --pull=never --network=none --name "bootc-fixture-$$" "$ref") ||
		die "podman create $ref failed"
	src=$(podman mount "$ctr") || die "podman mount of $ref failed"
	[ -d "$src/usr" ] || die "the image $ref has no /usr (mounted at $src)"
	kver=$(ls "$src/usr/lib/modules" 2>/dev/null || true)
	[ -n "$kver" ] || die "the image has no kernel in /usr/lib/modules"
	[ "$(echo "$kver" | wc -l)" = 1 ] || die "expected one kernel in /usr/lib/modules, found: $kver"
	[ -f "$src/usr/lib/modules/$kver/vmlinuz" ] || die "no vmlinuz for $kver"
	[ -f "$src/usr/lib/modules/$kver/initramfs.img" ] || die "no initramfs.img for $kver"
	read_kargs_d "$src/usr/lib/bootc/kargs.d"
	local -a all_kargs=(${image_kargs[@]+"${image_kargs[@]}"} ${kargs[@]+"${kargs[@]}"})
	local v
	for v in "$source_imgref" "$target_imgref" ${all_kargs[@]+"${all_kargs[@]}"}; do
		json_str "$v" >/dev/null # refuses what the status file could not hold, before the disk is touched
	done

	step "partitioning $dev (GPT: BIOS boot, EFI system, root${root_size:+ of $root_size})"
	wipefs --all --quiet "$dev"
	sfdisk --quiet --wipe always --wipe-partitions always "$dev" <<EOF
label: gpt
size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name="BIOS-BOOT"
size=127MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI-SYSTEM"
${root_size:+size=${root_size}, }type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root"
EOF
	udevadm settle
	local n
	for n in 2 3; do [ -b "$(part $n)" ] || die "partition $(part $n) did not appear"; done

	step "making file systems (vfat for EFI, $fs for root)"
	mkfs.vfat -F 32 -n EFI-SYSTEM "$(part 2)" >/dev/null
	case $fs in
	ext2 | ext3 | ext4) "mkfs.$fs" -q -F -L root "$(part 3)" ;;
	xfs | btrfs) "mkfs.$fs" -q -f -L root "$(part 3)" ;;
	*) "mkfs.$fs" "$(part 3)" ;;
	esac
	local root_uuid esp_uuid
	root_uuid=$(blkid -s UUID -o value "$(part 3)")
	esp_uuid=$(blkid -s UUID -o value "$(part 2)")

	mount "$(part 3)" "$target"
	step "copying the image ($(du -sm --apparent-size "$src" 2>/dev/null | cut -f1) MiB)"
	cp -a "$src/." "$target/"
	mkdir -p "$target/boot/efi"
	mount "$(part 2)" "$target/boot/efi"
	cp "$src/usr/lib/modules/$kver/vmlinuz" "$target/boot/vmlinuz-$kver"
	cp "$src/usr/lib/modules/$kver/initramfs.img" "$target/boot/initramfs-$kver.img"
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
	local grub_fs cmdline
	grub_fs=$(grub-probe --target=fs "$target/boot")
	cmdline="root=UUID=$root_uuid rw console=tty0 console=ttyS0,115200n8${all_kargs[*]:+ ${all_kargs[*]}}"
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

	# The record that `bootc status` reads in the installed system (one
	# "key": value per line; see status_field).
	step "recording the installed image in $status_file"
	mkdir -p "$target$(dirname "$status_file")"
	cat >"$target$status_file" <<EOF
{
  "fixture": $(json_str "$prog"),
  "sourceImgref": $(json_str "$source_imgref"),
  "targetImgref": $(json_str "$target_imgref"),
  "targetTransport": $(json_str "$target_transport"),
  "imageDigest": $(json_str "$digest"),
  "imageId": $(json_str "$image_id"),
  "architecture": $(json_str "$image_arch"),
  "kernel": $(json_str "$kver"),
  "filesystem": $(json_str "$fs"),
  "kargsFromImage": $(json_array ${image_kargs[@]+"${image_kargs[@]}"}),
  "kargs": $(json_array ${all_kargs[@]+"${all_kargs[@]}"}),
  "cmdline": $(json_str "$cmdline")
}
EOF

	step "unmounting"
	sync
	cleanup
	trap - EXIT
	step "installation complete: $source_imgref ($digest), kernel $kver, root $fs, kernel arguments: $cmdline"
}

case "${1:-} ${2:-}" in
"install to-disk") shift 2; cmd_install_to_disk "$@" ;;
"status "*) shift; cmd_status "$@" ;;
*) die "this test fixture implements only 'bootc install to-disk' and 'bootc status' (got: ${*:-nothing})" ;;
esac
