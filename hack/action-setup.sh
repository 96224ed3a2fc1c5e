#!/bin/bash
# Sets bcvk up on a CI machine: what action.yml runs, and runnable by hand on a
# Debian or Ubuntu machine (as root, or as a user with passwordless sudo).
#
#  1. host packages: podman and mmdebstrap (which builds the runner's base
#     image from Debian packages), with debian-archive-keyring so that
#     mmdebstrap can check Debian's archive on Ubuntu too. On Debian this is
#     hack/install-host-deps.sh (the path the project's own machines take);
#     elsewhere a minimal list.
#  2. KVM: where /dev/kvm exists but the user cannot open it (GitHub's hosted
#     runners), a udev rule makes it 0666. bcvk's default --accel auto then
#     uses KVM, and TCG where KVM is absent or does not work.
#  3. bcvk and bcvk-inner are built (`make build`, needs Go) and installed
#     into BCVK_ACTION_BIN, which is added to $GITHUB_PATH when that is set.
#  4. the runner image: `podman load` of BCVK_RUNNER_ARCHIVE when given,
#     else built with `make runner-image` as the job's user, into their own
#     (rootless, for an ordinary user) container storage, where bcvk looks.
#
# Environment:
#   BCVK_ACTION_BIN      where bcvk goes (default $RUNNER_TEMP/bcvk-bin, else /usr/local/bin)
#   BCVK_RUNNER_ARCHIVE  an archive made by `make runner-archive` (or `podman save`) to load
#   BCVK_RUNNER_IMAGE    the runner image's name (default localhost/bcvk-runner:VERSION)
#   BCVK_ACTION_STEPS    which of "packages kvm build runner" to do (default: all)
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=$(cat "$src/VERSION")
image=${BCVK_RUNNER_IMAGE:-localhost/bcvk-runner:$version}
steps=" ${BCVK_ACTION_STEPS:-packages kvm build runner} "

log() { echo "bcvk-action: $*" >&2; }
want() { [[ "$steps" == *" $1 "* ]]; }
as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	else
		sudo -n "$@"
	fi
}

if want packages; then
	# shellcheck source=/dev/null
	. /etc/os-release
	if [ "${ID:-}" = debian ]; then
		as_root "$src/hack/install-host-deps.sh"
	else
		pkgs=(podman uidmap slirp4netns fuse-overlayfs mmdebstrap debian-archive-keyring
			openssh-client ca-certificates make)
		missing=()
		for p in "${pkgs[@]}"; do
			dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
		done
		if [ "${#missing[@]}" -gt 0 ]; then
			log "installing ${missing[*]}"
			as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
		fi
	fi
	log "podman $(podman version --format '{{.Client.Version}}'), mmdebstrap $(mmdebstrap --version | awk '{print $2}')"
fi

if want kvm; then
	if [ ! -e /dev/kvm ]; then
		log "no /dev/kvm: VMs run under TCG (software emulation, several times slower)"
	elif [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		log "/dev/kvm is usable: bcvk uses KVM (and falls back to TCG if KVM does not work)"
	else
		log "making /dev/kvm usable by everyone (udev rule /etc/udev/rules.d/99-bcvk-kvm.rules)"
		echo 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"' |
			as_root tee /etc/udev/rules.d/99-bcvk-kvm.rules >/dev/null
		as_root udevadm control --reload-rules || true
		as_root udevadm trigger --name-match=kvm || true
		# Where udev is not running, set the mode directly.
		[ -w /dev/kvm ] || as_root chmod 0666 /dev/kvm
		log "/dev/kvm is $(stat -c %a /dev/kvm)"
	fi
fi

bin=${BCVK_ACTION_BIN:-}
if [ -z "$bin" ]; then
	if [ -n "${RUNNER_TEMP:-}" ]; then bin=$RUNNER_TEMP/bcvk-bin; else bin=/usr/local/bin; fi
fi
if want build; then
	make -C "$src" build
	mkdir -p "$bin"
	install -m 0755 "$src/bin/bcvk" "$src/bin/bcvk-inner" "$bin/"
	if [ -n "${GITHUB_PATH:-}" ]; then
		echo "$bin" >>"$GITHUB_PATH"
	fi
	log "installed $("$bin/bcvk" --version | head -n1) in $bin"
fi

if want runner; then
	if [ -n "${BCVK_RUNNER_ARCHIVE:-}" ]; then
		log "loading $BCVK_RUNNER_ARCHIVE"
		podman load -q -i "$BCVK_RUNNER_ARCHIVE"
		if ! podman image exists "$image"; then
			log "$BCVK_RUNNER_ARCHIVE did not give $image; set BCVK_RUNNER_IMAGE (the action's runner-image input) to the name it holds"
			exit 1
		fi
	else
		# As the job's user, in their own storage (rootless for an ordinary
		# user, as `make demo` does). deps and build were done above (-o:
		# take them as up to date).
		make -C "$src" -o deps -o build runner-image RUNNER_IMAGE="$image"
	fi
	if [ -n "${GITHUB_ENV:-}" ]; then
		echo "BCVK_RUNNER_IMAGE=$image" >>"$GITHUB_ENV"
	fi
	if [ -n "${GITHUB_OUTPUT:-}" ]; then
		echo "runner-image=$image" >>"$GITHUB_OUTPUT"
	fi
	log "runner image $image: $(podman image inspect --format '{{.Id}}' "$image" | cut -c1-12)"
	# What the host offers (KVM, vsock, ulimits); a problem is reported here
	# but left to the first bcvk command to fail on.
	bcvk=$bin/bcvk
	[ -x "$bcvk" ] || bcvk=bcvk
	"$bcvk" --runner-image "$image" system check || log "bcvk system check reported a problem (above)"
fi
