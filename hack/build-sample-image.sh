#!/bin/bash
# Builds bcvk's sample bootc images without any container registry, from
# Debian packages: trixie with systemd, a kernel at the bootc location
# (/usr/lib/modules/KVER/{vmlinuz,initramfs.img}), sshd and DHCP networking,
# podman (the TEST FIXTURE reads the image from container storage with it),
# and a TEST FIXTURE at /usr/bin/bootc (hack/test-fixture-bootc.sh) that
# implements `bootc install to-disk` and `bootc status` for bcvk's tests.
#
#   IMAGE          the plain sample image (a Debian tree: /root, /home, ...
#                  are directories).
#   NOKERNEL_IMAGE a tiny kernel-less image, labelled bootc too, for the test
#                  that expects bcvk to report that no kernel was found.
#   BOOTC_IMAGE    the same as IMAGE plus the bootc file layout that
#                  fedora-bootc has: /root, /home, /mnt, /opt, /srv and
#                  /usr/local are relative symlinks into /var, which
#                  tmpfiles fills at boot; kernel arguments in
#                  /usr/lib/bootc/kargs.d; /usr/lib/ostree/prepare-root.conf,
#                  /sysroot and /ostree; python3, rsync and sftp-server; and a
#                  TEST-ONLY unit that makes /root read-only when the kernel
#                  command line has bcvk.test.ro-root (see customize_bootc).
#
# Usage: hack/build-sample-image.sh [IMAGE [NOKERNEL_IMAGE [BOOTC_IMAGE]]]
#   defaults: localhost/bcvk-sample:latest localhost/bcvk-test-nokernel:latest
#             localhost/bcvk-sample-bootc:latest
#   An empty name ("") skips that image.
# Needs podman and mmdebstrap >= 1.x (see hack/install-host-deps.sh). Run by
# an ordinary user, it builds into their rootless storage, as root of their
# user namespace (hack/userns.sh).
# Each image is skipped when it was already built from this exact script.
set -euo pipefail

image=${1-localhost/bcvk-sample:latest}
nokernel_image=${2-localhost/bcvk-test-nokernel:latest}
bootc_image=${3-localhost/bcvk-sample-bootc:latest}
suite=trixie
mirror=${BCVK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# systemd-sysv gives /sbin/init; dracut provides the initramfs tool the kernel
# package asks for (instead of initramfs-tools); networkd ships in systemd.
# The second line is for the bootc test fixture (to-disk): partitioning, file
# systems and GRUB for BIOS and UEFI. The third is podman, which the fixture
# reads the image with (crun is its runtime in a VM with a plain cgroup v2
# tree; netavark and nftables give `podman run` its default network).
packages=systemd,systemd-sysv,systemd-resolved,libpam-systemd,dbus,linux-image-amd64,dracut,zstd,openssh-server,iproute2,\
fdisk,dosfstools,e2fsprogs,grub2-common,grub-pc-bin,grub-efi-amd64-bin,\
podman,crun,netavark,nftables
# What fedora-bootc has besides: python3 (Ansible), rsync, and sftp-server
# (scp speaks the SFTP protocol since OpenSSH 9.0).
bootc_packages=$packages,python3,rsync,openssh-sftp-server
# Fixed, so that file times and therefore the tarball do not depend on when
# the script ran.
export SOURCE_DATE_EPOCH=1754697600 # 2025-08-09, trixie's release day

log() { echo "build-sample-image: $*" >&2; }

# Everything that decides the result lives in this file, so its hash (plus the
# mirror, which decides package versions) identifies the inputs.
self=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source=hack/lib.sh
. "$(dirname "$self")/lib.sh"
# shellcheck source=hack/userns.sh
. "$(dirname "$self")/userns.sh"
as_namespace_root "$@"
fixture=$(dirname "$self")/test-fixture-bootc.sh
inputs=$( { cat "$self" "$(dirname "$self")/lib.sh" "$(dirname "$self")/userns.sh" "$fixture"; echo "$mirror"; } | sha256sum | cut -c1-32)
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

# The bootc file layout, applied after customize (see the header). Real
# bootc images get it from rpm-ostree/bootc-base-imagectl; here it is done by
# hand, the same way: the directories move into /var, which the image ships
# (nearly) empty, and tmpfiles.d makes them at boot.
customize_bootc() {
	local root=$1 d
	# /var keeps only /var/lib (dpkg's database and the like); everything else
	# there is made at boot by tmpfiles (Debian's and systemd's var.conf,
	# tmp.conf, and the file below). None of the link targets exist.
	find "$root/var" -mindepth 1 -maxdepth 1 ! -name lib -exec rm -rf {} +
	for d in root home mnt opt srv; do
		rm -rf "${root:?}/$d"
	done
	ln -s var/roothome "$root/root"
	ln -s var/home "$root/home"
	ln -s var/mnt "$root/mnt"
	ln -s var/opt "$root/opt"
	ln -s var/srv "$root/srv"
	rm -rf "${root:?}/usr/local"
	ln -s ../var/usrlocal "$root/usr/local"
	# What rpm-ostree writes for fedora-bootc (rpm-ostree-0-integration.conf).
	cat >"$root/usr/lib/tmpfiles.d/bcvk-bootc-layout.conf" <<'EOF'
# The bootc file layout: /root, /home, /mnt, /opt, /srv and /usr/local are
# symlinks into /var, which the image ships empty (as rpm-ostree's
# rpm-ostree-0-integration.conf does for fedora-bootc).
d /var/home 0755 root root -
d /var/lib 0755 root root -
d /var/log/journal 0755 root root -
d /var/mnt 0755 root root -
d /var/opt 0755 root root -
d /var/roothome 0700 root root -
d /var/srv 0755 root root -
d /var/usrlocal 0755 root root -
d /var/usrlocal/bin 0755 root root -
d /var/usrlocal/etc 0755 root root -
d /var/usrlocal/games 0755 root root -
d /var/usrlocal/include 0755 root root -
d /var/usrlocal/lib 0755 root root -
d /var/usrlocal/man 0755 root root -
d /var/usrlocal/sbin 0755 root root -
d /var/usrlocal/share 0755 root root -
d /var/usrlocal/src 0755 root root -
d /run/media 0755 root root -
EOF

	# Kernel arguments the image asks for: bootc applies kargs.d at install
	# (files in name order); the second file is for aarch64 only and must not
	# appear on x86_64.
	mkdir -p "$root/usr/lib/bootc/kargs.d"
	cat >"$root/usr/lib/bootc/kargs.d/10-bcvk-test.toml" <<'EOF'
kargs = ["bcvk.kargsd=yes", "bcvk.kargsd.second=2"]
EOF
	cat >"$root/usr/lib/bootc/kargs.d/20-other-arch.toml" <<'EOF'
kargs = ["bcvk.kargsd.arm=1"]
match-architectures = ["aarch64"]
EOF

	# ostree's files as fedora-bootc ships them. Nothing here reads them; they
	# are there so that bcvk meets them as it would in a real image.
	mkdir -p "$root/usr/lib/ostree" "$root/sysroot"
	cat >"$root/usr/lib/ostree/prepare-root.conf" <<'EOF'
[composefs]
enabled = yes
[sysroot]
readonly = true
EOF
	ln -s sysroot/ostree "$root/ostree"

	# TEST ONLY: a read-only /root, as on images whose /root is on a
	# read-only composefs. Off unless the kernel command line has
	# bcvk.test.ro-root; then an empty read-only tmpfs covers /var/roothome
	# before tmpfiles, sshd or anything else could write there, so a test can
	# show that SSH key injection does not need to write /root/.ssh.
	cat >"$root/usr/lib/systemd/system/bcvk-test-ro-root.service" <<'EOF'
# TEST ONLY (bcvk's sample bootc image): makes /root read-only when the
# kernel command line has bcvk.test.ro-root. Not something a real image has.
[Unit]
Description=TEST ONLY: read-only /root (bcvk.test.ro-root)
ConditionKernelCommandLine=bcvk.test.ro-root
DefaultDependencies=no
After=local-fs.target
Before=systemd-tmpfiles-setup.service sysinit.target ssh.service ssh.socket bcvk-ssh-hostkey.service shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/mkdir -p -m 0700 /var/roothome
ExecStart=/usr/bin/mount -t tmpfs -o ro,mode=0700,size=64k,nosuid,nodev bcvk-test-ro-root /var/roothome

[Install]
WantedBy=sysinit.target
EOF
	systemctl --root="$root" --quiet enable bcvk-test-ro-root.service
}

# build NAME PACKAGES [EXTRA-CUSTOMIZE]: mmdebstrap, customize, import.
build() {
	local name=$1 pkgs=$2 extra=${3:-} start
	start=$(date +%s)
	log "building $name from Debian $suite ($mirror)"
	rm -rf "$tmp/root"
	# Docs, man pages and translations are left out: nobody reads them there.
	# The archives go to a cache shared by the images of this run, so the
	# second image downloads only what the first did not have.
	# podman-testing (36 MB) is podman's test helper; nobody runs it here.
	mmdebstrap --variant=minbase --include="$pkgs" \
		"${MMDEBSTRAP_SLIM[@]}" "${MMDEBSTRAP_NS[@]}" \
		--dpkgopt='path-exclude=/usr/libexec/podman/podman-testing' \
		--skip=essential/unlink \
		--setup-hook='mkdir -p "$1/var/cache/apt/archives/"' \
		--setup-hook="sync-in $tmp/debs /var/cache/apt/archives/" \
		--essential-hook='mkdir -p "$1/etc/dracut.conf.d"' \
		--essential-hook="upload $tmp/50-bcvk.conf /etc/dracut.conf.d/50-bcvk.conf" \
		--customize-hook="sync-out /var/cache/apt/archives $tmp/debs" \
		--customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
		--quiet "$suite" "$tmp/root" "$mirror" >&2
	log "customizing"
	customize "$tmp/root"
	[ -z "$extra" ] || "$extra" "$tmp/root"
	log "importing into podman"
	pack "$tmp/root" | podman_import "$name"
	rm -rf "$tmp/root"
	log "built $name in $(( $(date +%s) - start )) s ($(podman image inspect --format '{{.Size}}' "$name" | awk '{printf "%d MB", $1/1e6}'))"
}

# dracut's config goes in before the kernel's postinst runs dracut: a generic
# (not host-only) initramfs that can mount a virtiofs root, made reproducible
# (sorted, with SOURCE_DATE_EPOCH times).
printf '%s\n' 'hostonly="no"' 'hostonly_cmdline="no"' \
	'add_dracutmodules+=" virtiofs "' 'compress="zstd"' 'reproducible="yes"' \
	>"$tmp/50-bcvk.conf"
mkdir -p "$tmp/debs"

if [ -n "$image" ] && ! up_to_date "$image"; then
	build "$image" "$packages"
fi
if [ -n "$bootc_image" ] && ! up_to_date "$bootc_image"; then
	build "$bootc_image" "$bootc_packages" customize_bootc
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
