#!/bin/bash
# systemd-vmspawn as a field contender: can it boot the sample image here,
# and how long does it take? See docs/performance.md, "systemd-vmspawn as a
# field contender".
#
# What this does:
#   1. Checks whether Debian trixie's systemd-container (systemd 257) ships
#      systemd-vmspawn. It does not, so the runner takes systemd-container
#      from sid (systemd 262 at the time of writing), which does.
#   2. Builds localhost/bcvk-vmspawn:sid FROM the local trixie base image
#      (QEMU 10, virtiofsd 1.13, OVMF) with that package added.
#   3. Boots the sample image with vmspawn inside that container: the image
#      is mounted read-only with --mount=type=image, its own vmlinuz and
#      initramfs are given to --linux=/--initrd=, /dev/kvm is not passed in
#      and --kvm=no forces TCG. The root is made writable inside the guest
#      with systemd.volatile=overlay (the image is not changed).
#   4. Would measure the time from `podman run` to the guest's
#      "Reached target ... Multi-User System" on the console (vmspawn can
#      only do SSH over vsock, and there is no /dev/vhost-vsock here).
#
# Result on these hosts (2026-11-30, systemd 262.1-1): QEMU starts about 1 s
# after `podman run`, then vmspawn stops with "Failed to get our own unit:
# No such device or address" before the guest runs: vmspawn has to run under
# systemd (it needs a D-Bus system bus, and then either a transient scope from
# systemd or, with --keep-unit, a systemd unit's cgroup to run in). The script
# says so and exits 0.
#
# One boot per run, capped with `timeout`. Exits 0 with a clear message when
# vmspawn cannot boot the image here.
#
# Environment:
#   SAMPLE_IMAGE  image to boot (localhost/bcvk-sample:latest)
#   BASE_IMAGE    runner base (localhost/bcvk-base:trixie)
#   RUNNER_IMAGE  tag for the built runner (localhost/bcvk-vmspawn:sid)
#   BOOT_TIMEOUT  seconds for one boot (240)
#   FIRMWARE      vmspawn --firmware= value (auto: UEFI/OVMF, as vmspawn
#                 picks for a PE kernel; "bios" for SeaBIOS like bcvk)
#   LOGDIR        where console logs go (a temporary directory)
set -euo pipefail

SAMPLE_IMAGE=${SAMPLE_IMAGE:-localhost/bcvk-sample:latest}
BASE_IMAGE=${BASE_IMAGE:-localhost/bcvk-base:trixie}
RUNNER_IMAGE=${RUNNER_IMAGE:-localhost/bcvk-vmspawn:sid}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-240}
FIRMWARE=${FIRMWARE:-auto}
LOGDIR=${LOGDIR:-$(mktemp -d /tmp/bench-vmspawn.XXXXXX)}
NAME=bench-vmspawn-$$
BUILD_DIR=$(mktemp -d /tmp/bench-vmspawn-build.XXXXXX)

cleanup() {
	podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
	rm -rf "$BUILD_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '== %s\n' "$*"; }
cannot() {
	say "RESULT: systemd-vmspawn cannot boot $SAMPLE_IMAGE here: $*"
	exit 0
}


# 1. Does trixie's systemd-container have vmspawn?
say "trixie's systemd-container: files under */bin/"
podman run --rm --network=host "$BASE_IMAGE" sh -c '
	apt-get -o Acquire::Check-Valid-Until=false update >/dev/null 2>&1
	cd /tmp
	for v in $(apt-cache madison systemd-container | awk "{print \$3}"); do
		apt-get download "systemd-container=$v" >/dev/null 2>&1 || continue
		printf "%s: " "$v"
		dpkg-deb -c systemd-container_*.deb | grep -o "bin/systemd-[a-z]*spawn" | tr "\n" " "
		echo
		rm -f systemd-container_*.deb
	done' | tee "$LOGDIR/packages.txt"
grep -q 'vmspawn' "$LOGDIR/packages.txt" ||
	cannot "no Debian systemd-container package here ships systemd-vmspawn"

# 2. The runner: the base image plus the systemd-container that has vmspawn,
# and a D-Bus daemon: running as root, vmspawn always opens the system bus
# (without one it stops at once with "Failed to open system bus: No such file
# or directory", even with --register=no --keep-unit); with those two options
# it then makes no calls on it, so a bare dbus-daemon without systemd will do.
cat >"$BUILD_DIR/Containerfile" <<'EOF'
ARG BASE
FROM ${BASE}
RUN apt-get -o Acquire::Check-Valid-Until=false update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -t sid systemd-container \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dbus-daemon dbus-system-bus-common \
 && rm -rf /var/lib/apt/lists/*
EOF
say "building $RUNNER_IMAGE"
podman build --network=host --build-arg BASE="$BASE_IMAGE" -t "$RUNNER_IMAGE" "$BUILD_DIR" >"$LOGDIR/build.log" 2>&1 ||
	{ tail -20 "$LOGDIR/build.log"; cannot "the runner image did not build (see $LOGDIR/build.log)"; }
podman run --rm "$RUNNER_IMAGE" systemd-vmspawn --version | head -1

KVER=$(podman run --rm --mount=type=image,source="$SAMPLE_IMAGE",destination=/image \
	"$RUNNER_IMAGE" sh -c 'ls /image/usr/lib/modules | head -1')
[ -n "$KVER" ] || cannot "no kernel under /usr/lib/modules in $SAMPLE_IMAGE"

# 3. One boot. No /dev/kvm and no /dev/vhost-vsock are passed in (there is
# no /dev/vhost-vsock on these hosts anyway); --kvm=no makes QEMU use TCG.
# vmspawn runs its helpers (virtiofsd) itself, so the container gets all
# capabilities of the container's user namespace and no seccomp filter, but
# no devices.
VMSPAWN=(
	systemd-vmspawn
	--directory=/image
	--linux="/image/usr/lib/modules/$KVER/vmlinuz"
	--initrd="/image/usr/lib/modules/$KVER/initramfs.img"
	--kvm=no
	--cpus=2 --ram=2G
	--tpm=no
	--secure-boot=no
	--firmware="$FIRMWARE"
	--efi-nvram-state=off
	--register=no --keep-unit
	--network-user-mode
	--console=read-only
	--machine=bench
	# Extra arguments go to the guest's kernel command line.
	systemd.volatile=overlay selinux=0
)
say "load before boot: $(cut -d' ' -f1-3 /proc/loadavg)"
say "boot: ${VMSPAWN[*]}"
LOG=$LOGDIR/console.log
: >"$LOG"
T0=$(date +%s%N)
timeout --kill-after=10 "$BOOT_TIMEOUT" \
	podman run --name "$NAME" --rm --network=host \
	--cap-add=all --security-opt seccomp=unconfined \
	--mount=type=image,source="$SAMPLE_IMAGE",destination=/image \
	-e SYSTEMD_LOG_COLOR=0 -e SYSTEMD_COLORS=0 \
	"$RUNNER_IMAGE" sh -c 'mkdir -p /run/dbus && dbus-daemon --system --fork && exec "$@"' sh \
	"${VMSPAWN[@]}" >"$LOG" 2>&1 &
PID=$!

elapsed() { local ms=$((($(date +%s%N) - T0) / 1000000)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
first_kernel='' qemu_pid='' ready=''
while kill -0 "$PID" 2>/dev/null; do
	if [ -z "$qemu_pid" ] && podman top "$NAME" args 2>/dev/null | grep -q qemu-system; then
		qemu_pid=$(elapsed)
		say "QEMU running after ${qemu_pid} s"
	fi
	if [ -z "$first_kernel" ] && grep -aq 'Linux version' "$LOG"; then
		first_kernel=$(elapsed)
		say "first kernel message after ${first_kernel} s"
	fi
	if grep -aqE 'Reached target .*(multi-user|Multi-User System)' "$LOG"; then
		ready=$(elapsed)
		break
	fi
	sleep 0.1
done
if [ -n "$ready" ]; then
	say "guest reached multi-user.target after ${ready} s"
	podman top "$NAME" pid pcpu time args 2>/dev/null | grep -E 'qemu|virtiofsd|vmspawn|PID' | cut -c1-160 || true
	podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
fi
wait "$PID" 2>/dev/null && rc=0 || rc=$?
say "vmspawn/podman exit status $rc; console log: $LOG"

if [ -z "$ready" ]; then
	say "last lines of the console log:"
	tr -d '\r' <"$LOG" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | tail -25
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		cannot "no multi-user.target within ${BOOT_TIMEOUT} s"
	fi
	first_error=$(grep -a -m1 -E '^(Failed|Error)|[Ee]rror:' "$LOG" || grep -avE '^\s*$' "$LOG" | tail -1)
	if grep -aq 'Failed to get our own unit' "$LOG"; then
		# After forking QEMU, vmspawn either asks systemd (over D-Bus) for a
		# transient scope, or, with --keep-unit, looks up the unit whose
		# cgroup it runs in. Both need systemd as the service manager; in a
		# plain container there is neither, and a systemd 262 as the
		# container's PID 1 would need a unified cgroup v2 hierarchy, which
		# these hosts (cgroup v1 controllers, hybrid) do not have.
		cannot "vmspawn must run inside a systemd unit or scope (status $rc): $first_error"
	fi
	cannot "vmspawn stopped (status $rc) before the guest reached multi-user.target: $first_error"
fi
say "RESULT: systemd-vmspawn booted $SAMPLE_IMAGE under TCG: multi-user.target after ${ready} s" \
	"(QEMU up ${qemu_pid:-?} s, first kernel message ${first_kernel:-?} s); no SSH (vsock needs /dev/vhost-vsock)"
