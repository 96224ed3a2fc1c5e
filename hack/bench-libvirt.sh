#!/bin/bash
# Measures bcvk's persistent libvirt VMs against an ephemeral VM of the same
# image, all under TCG, in one run:
#   (a) cold   bcvk libvirt run --ssh IMAGE -- true in a new pool: the base
#              disk is made (to-disk), uploaded through libvirt's stream, cloned,
#              and the VM boots to an SSH login
#   (b) warm   a second VM from that base: clone and boot to an SSH login
#   (c) start  bcvk libvirt stop, then start --wait-ssh of the stopped VM (to
#              sshd's greeting), and the first `ssh -- true` after it
#   (d) ephemeral  bcvk ephemeral run-ssh IMAGE -- true
# and prints a table with the ratio (b)/(d) against the target of 1.2x.
# Each measured VM runs alone: the one before it is removed first.
#
# Everything it makes is private and removed on every exit: the pool
# bcvk-bench-PID (--pool), the VMs (label bench=bcvk-bench-PID), the base
# disk, the pool's directory on the libvirt host, the ephemeral container.
#
# Env: BCVK (bin/bcvk), BCVK_SAMPLE_BOOTC_IMAGE (localhost/bcvk-sample-bootc:latest),
# BENCH_CONNECT (a libvirt URI for --connect; default: bcvk's own choice,
# $LIBVIRT_DEFAULT_URI else qemu:///system), STEP_TIMEOUT (2400 s for the cold
# run, which makes the base disk), BOOT_TIMEOUT (900 s for every other step),
# TARGET (1.2), BENCH_LOGS (a directory to keep every step's output in).
# Needs root for qemu:///system, a running libvirtd (hack/libvirt-host.sh
# start) and the image in podman's storage.
set -euo pipefail
export LC_ALL=C # $EPOCHREALTIME and printf need a '.' decimal point

cd "$(dirname "$0")/.."
# shellcheck source=hack/bench-lib.sh
. hack/bench-lib.sh
BCVK=${BCVK:-bin/bcvk}
IMAGE=${BCVK_SAMPLE_BOOTC_IMAGE:-localhost/bcvk-sample-bootc:latest}
BENCH_CONNECT=${BENCH_CONNECT:-}
STEP_TIMEOUT=${STEP_TIMEOUT:-2400}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-900}
TARGET=${TARGET:-1.2}
BENCH_LOGS=${BENCH_LOGS:-}

for c in podman virsh awk timeout; do
	command -v "$c" >/dev/null || { echo "bench-libvirt: $c is missing" >&2; exit 2; }
done
[[ -x $BCVK ]] || { echo "bench-libvirt: $BCVK is missing: run 'make build'" >&2; exit 2; }
podman image exists "$IMAGE" || { echo "bench-libvirt: image $IMAGE is missing: run 'make images'" >&2; exit 2; }
for v in STEP_TIMEOUT BOOT_TIMEOUT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench-libvirt: $v must be a number of seconds" >&2; exit 2; }
done

ID=bcvk-bench-$$
POOL=$ID
LABEL=bench=$ID
COLD=$ID-cold
WARM=$ID-warm
EPH=$ID-eph
URI=${BENCH_CONNECT:-${LIBVIRT_DEFAULT_URI:-qemu:///system}}
lv=(libvirt --pool "$POOL")
[[ -z $BENCH_CONNECT ]] || lv+=(--connect "$BENCH_CONNECT")

# ---- cleanup: every VM, disk, pool, container and file this script made ------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bcvk-bench-libvirt.XXXXXX")
child='' # the bcvk being timed
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# SIGTERM lets bcvk undo what it was making.
	if [[ -n $child ]]; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	echo "bench-libvirt: cleaning up pool $POOL on $URI" >&2
	"$BCVK" "${lv[@]}" rm -f "$COLD" "$WARM" >/dev/null 2>&1 || true
	"$BCVK" "${lv[@]}" rm-all -f --label "$LABEL" >/dev/null 2>&1 || true
	"$BCVK" "${lv[@]}" base-disks prune >/dev/null 2>&1 || true
	podman rm --force --ignore --time 0 "$EPH" >/dev/null 2>&1 || true
	if virsh -c "$URI" pool-info "$POOL" >/dev/null 2>&1; then
		virsh -c "$URI" pool-destroy "$POOL" >/dev/null 2>&1 || true
		# pool-delete removes the (now empty) directory on the libvirt host.
		virsh -c "$URI" pool-delete "$POOL" >/dev/null 2>&1 || true
		virsh -c "$URI" pool-undefine "$POOL" >/dev/null 2>&1 ||
			echo "bench-libvirt: could not undefine pool $POOL: virsh -c $URI pool-undefine $POOL" >&2
	fi
	case $URI in
	qemu:///* | qemu+unix:///*) rmdir "/var/lib/libvirt/images/$POOL" 2>/dev/null || true ;;
	esac
	if [[ -n $BENCH_LOGS ]]; then
		mkdir -p "$BENCH_LOGS"
		cp "$tmp"/*.log "$BENCH_LOGS/" 2>/dev/null || true
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# secs US: microseconds as seconds with one decimal.
secs() { printf '%d.%d' $(($1 / 1000000)) $(($1 % 1000000 / 100000)); }

declare -A took=() # step -> seconds
failed=0

# step KEY TIMEOUT TITLE CMD...: runs CMD, logs it to $tmp/KEY.log, records
# its wall time in took[KEY]; 1 when it failed (and says why).
step() {
	local key=$1 limit=$2 title=$3 t0 t1 rc=0
	shift 3
	echo "== $title" >&2
	stamp t0
	run_child timeout --foreground -k 30 "$limit" "$@" >"$tmp/$key.log" 2>&1 || rc=$?
	stamp t1
	if ((rc != 0)); then
		echo "bench-libvirt: $title failed (exit status $rc$( ((rc == 124)) && echo ", timed out after ${limit}s")); its output:" >&2
		tail -n 30 "$tmp/$key.log" >&2 || true
		failed=1
		return 1
	fi
	took[$key]=$(secs $((t1 - t0)))
	echo "   ${took[$key]} s" >&2
}

machine="$(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r)"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- cmd pkg 2>/dev/null || commit="$commit+dirty"
echo "Machine: $machine; bcvk $commit; libvirt $URI, pool $POOL; image $IMAGE; TCG" >&2

run_vm=(run --accel tcg --label "$LABEL" --timeout "${BOOT_TIMEOUT}s" --ssh)

if step cold "$STEP_TIMEOUT" "(a) cold: base disk (to-disk + upload) + first VM to SSH" \
	"$BCVK" "${lv[@]}" "${run_vm[@]}" --name "$COLD" "$IMAGE" -- true; then
	grep -q 'No base disk' "$tmp/cold.log" ||
		echo "bench-libvirt: warning: (a) did not make a base disk; it is not a cold run" >&2
fi
# The next VM boots alone.
"$BCVK" "${lv[@]}" rm -f "$COLD" >/dev/null 2>"$tmp/rm-cold.log" || true

if [[ -n ${took[cold]:-} ]]; then
	if step warm "$BOOT_TIMEOUT" "(b) warm: a second VM from the base to SSH" \
		"$BCVK" "${lv[@]}" "${run_vm[@]}" --name "$WARM" "$IMAGE" -- true; then
		! grep -q 'No base disk' "$tmp/warm.log" ||
			echo "bench-libvirt: warning: (b) made a new base disk; it is not a warm run" >&2
		if step stop "$BOOT_TIMEOUT" "stop $WARM (ACPI power button)" \
			"$BCVK" "${lv[@]}" stop --timeout 120s "$WARM"; then
			if step start "$BOOT_TIMEOUT" "(c) start --wait-ssh of the stopped VM" \
				"$BCVK" "${lv[@]}" start --wait-ssh --timeout "${BOOT_TIMEOUT}s" "$WARM"; then
				step login "$BOOT_TIMEOUT" "    then ssh -- true" \
					"$BCVK" "${lv[@]}" ssh "$WARM" -- true || true
			fi
		fi
	fi
fi
"$BCVK" "${lv[@]}" rm -f "$WARM" >/dev/null 2>"$tmp/rm-warm.log" || true

step eph "$BOOT_TIMEOUT" "(d) ephemeral run-ssh" \
	"$BCVK" ephemeral run-ssh --accel tcg --name "$EPH" "$IMAGE" -- true || true

# bcvk's own figures, from its messages (absent when a step failed).
upload=$(sed -n 's/.*through libvirt.s stream in \([0-9.]*\)s.*/\1/p' "$tmp/cold.log" 2>/dev/null | tail -n1 || true)
clone=$(sed -n 's/.*clone made in \([0-9.]*\)s.*/\1/p' "$tmp/warm.log" 2>/dev/null | tail -n1 || true)

row() { printf '%-58s %10s\n' "$1" "${2:--}"; }
echo
echo "bcvk libvirt vs ephemeral, TCG: $IMAGE on $machine (bcvk $commit)"
row "step" "seconds"
row "(a) cold run --ssh -- true (to-disk, upload, boot)" "${took[cold]:-failed}"
row "    of which the upload (bcvk's message)" "$upload"
row "(b) second VM from the base: run --ssh -- true" "${took[warm]:-failed}"
row "    of which the clone (bcvk's message)" "$clone"
row "    stop (ACPI power button to shut off)" "${took[stop]:-failed}"
row "(c) start --wait-ssh of the stopped VM (sshd greets)" "${took[start]:-failed}"
row "    then the first ssh -- true" "${took[login]:-failed}"
row "(d) ephemeral run-ssh -- true" "${took[eph]:-failed}"
if [[ -n ${took[warm]:-} && -n ${took[eph]:-} ]]; then
	awk -v b="${took[warm]}" -v d="${took[eph]}" -v t="$TARGET" 'BEGIN {
		r = b / d
		printf "%-58s %9.2fx (target %sx: %s)\n", "ratio (b)/(d)", r, t, (r <= t ? "met" : "missed")
	}'
else
	row "ratio (b)/(d)" "n/a"
fi
exit "$failed"
