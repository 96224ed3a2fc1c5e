# shellcheck shell=bash
# shellcheck disable=SC2034 # MMDEBSTRAP_NS is for the sourcing script
# Sourced by image build scripts that need root for a file tree (mmdebstrap
# into a directory, chroot, files owned by other users): an ordinary user's
# build runs as root of their rootless podman's user namespace instead.
# `podman unshare` maps root to the user and other IDs to their subordinate
# ones (/etc/subuid), and podman inside it uses the user's own storage. The
# new PID namespace lets mmdebstrap mount /proc for the package scripts
# (dracut needs it); /sys stays unmounted, which they do without.

# as_namespace_root ARGS...: re-runs $self with ARGS as namespace root unless
# this is root already (real root, or the re-run).
# shellcheck disable=SC2154 # $self is the sourcing script
as_namespace_root() {
	[ "$(id -u)" = 0 ] && return 0
	if ! grep -qs "^$(id -un):" /etc/subuid || ! grep -qs "^$(id -un):" /etc/subgid; then
		echo "$(basename "$self"): $(id -un) has no subordinate IDs in /etc/subuid and /etc/subgid, which rootless podman needs: ask root to run 'usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $(id -un)'" >&2
		exit 1
	fi
	# A user's PATH lacks the sbin directories that package scripts use
	# (chroot, ldconfig, ...), which root's has.
	PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin exec podman unshare unshare --pid --fork --mount-proc --kill-child -- "$self" "$@"
}

# Options for mmdebstrap in that namespace: sysfs cannot be mounted there
# (it needs a network namespace), so it is not tried.
MMDEBSTRAP_NS=()
if [ -n "${_CONTAINERS_USERNS_CONFIGURED:-}" ]; then
	MMDEBSTRAP_NS=(--skip=chroot/mount/sys)
fi
