#!/bin/bash
# Installs what a Debian 12 host needs to build bcvk's images and run it:
# podman (with runc), mmdebstrap from bookworm-backports, and a containers.conf
# that works where crun or podman's default rlimits do not (see docs/environment).
# Idempotent: safe to run again.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
	echo "install-host-deps: run as root (it installs Debian packages)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
need=()
# docker-registry and openssl serve the pull tests; openssh-client and
# ssh-keygen check ssh-config and the key format; procps (pgrep, ps) serves
# the fault tests (stray processes, key not on a command line); scp, sftp,
# rsync and ansible (ansible-core) are the real clients the ssh-config tests
# drive; sshd (openssh-server, never started as a service) plays a remote
# libvirt host's sshd in the libvirt tests.
for cmd in podman runc mmdebstrap newuidmap slirp4netns cpio docker-registry openssl ssh ssh-keygen scp sftp \
	pgrep ps rsync ansible sshd; do
	command -v "$cmd" >/dev/null 2>&1 || need+=("$cmd")
done

if [ "${#need[@]}" -gt 0 ]; then
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	if [ "$codename" = bookworm ] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
		echo "deb http://deb.debian.org/debian bookworm-backports main" >/etc/apt/sources.list.d/bcvk-backports.list
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends \
		podman runc uidmap slirp4netns fuse-overlayfs netavark aardvark-dns \
		golang-github-containernetworking-plugin-dnsname containernetworking-plugins \
		catatonit iptables cpio ca-certificates zstd xz-utils \
		docker-registry openssl openssh-client openssh-server procps rsync ansible-core >/dev/null || \
	apt-get install -y -qq --no-install-recommends \
		podman runc uidmap slirp4netns fuse-overlayfs containernetworking-plugins \
		catatonit iptables cpio ca-certificates zstd xz-utils \
		docker-registry openssl openssh-client openssh-server procps rsync ansible-core >/dev/null
	if [ "$codename" = bookworm ]; then
		apt-get install -y -qq --no-install-recommends -t bookworm-backports mmdebstrap >/dev/null
	else
		apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
	fi
fi

# The libvirt backend (bcvk libvirt ...): libvirt 11 and QEMU 10 from
# bookworm-backports (bookworm's libvirt 9.0 rejects <backend type="passt"/>),
# OVMF and passt from bookworm. Only the daemons and the qemu and storage
# drivers: no libvirt-daemon-system (systemd units, network and nwfilter
# drivers); hack/libvirt-host.sh starts the daemons by hand. virtiofsd has no
# bookworm package: hack/libvirt-host.sh virtiofsd takes it from the runner image.
# Caveat (seen with libvirt 11.3, QEMU 10.0.2): bookworm's passt
# 0.0~git20230309 starts, binds the forwarded host port and serves DHCP, but
# never ACKs the guest's SYN-ACK, so a forwarded TCP connection gets no data.
libvirt_need=0
for cmd in libvirtd virtlogd virsh qemu-system-x86_64 qemu-img passt; do
	command -v "$cmd" >/dev/null 2>&1 || libvirt_need=1
done
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || libvirt_need=1
if [ "$libvirt_need" = 1 ]; then
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	if [ "$codename" = bookworm ] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
		echo "deb http://deb.debian.org/debian bookworm-backports main" >/etc/apt/sources.list.d/bcvk-backports.list
	fi
	apt-get update -qq
	libvirt_pkgs=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-driver-storage libvirt-clients
		qemu-system-x86 qemu-utils)
	if [ "$codename" = bookworm ]; then
		apt-get install -y -qq --no-install-recommends -t bookworm-backports "${libvirt_pkgs[@]}" >/dev/null
	else
		apt-get install -y -qq --no-install-recommends "${libvirt_pkgs[@]}" >/dev/null
	fi
	apt-get install -y -qq --no-install-recommends ovmf passt >/dev/null
fi

# crun fails on hybrid cgroup hosts and podman's default rlimits need
# CAP_SYS_RESOURCE; a nofile limit at the hard limit also keeps virtiofsd alive.
conf=/etc/containers/containers.conf
if ! grep -qs '^# bcvk' "$conf"; then
	hard=$(ulimit -Hn)
	[ "$hard" = unlimited ] && hard=1048576
	mkdir -p /etc/containers
	[ -f "$conf" ] && cp "$conf" "$conf.bcvk-orig"
	cat >"$conf" <<CONF
# bcvk: written by hack/install-host-deps.sh
[containers]
default_ulimits = ["nofile=${hard}:${hard}", "nproc=4096:4096"]

[engine]
runtime = "runc"
CONF
fi
# Rootless podman's network (slirp4netns) opens /dev/net/tun as the user;
# 0666 is the device's usual mode, but some hosts (this CI's) make it 0600.
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
	chmod 0666 /dev/net/tun
fi

podman version --format '{{.Client.Version}}' >/dev/null
echo "install-host-deps: podman $(podman version --format '{{.Client.Version}}'), mmdebstrap $(mmdebstrap --version | awk '{print $2}'), libvirt $(libvirtd --version | awk '{print $NF}'), qemu $(qemu-system-x86_64 --version | awk 'NR==1{print $4}')"
