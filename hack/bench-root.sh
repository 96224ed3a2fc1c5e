#!/bin/bash
# Compares the root transports on one image under TCG: virtiofs, erofs on
# first use (the EROFS image is built: cold) and erofs with the image
# cached, alternating, RUNS rounds. Each run is `bcvk ephemeral run -d`
# (it returns when SSH answers a real login), then `ssh -- true`, then rm.
# Printed per run: wall seconds to SSH, the runner container's CPU seconds
# until then (QEMU, virtiofsd, mkfs.erofs: steadier than wall time on a
# shared host) and the load average at the start.
#
# With WALK=1, each run then walks the whole root and reads every file under
# /usr in the guest (as the large-image test does), and prints how long that
# took and the container's CPU seconds at its end.
#
# Env: RUNS (2), BCVK (bin/bcvk), IMAGE (localhost/bcvk-sample:latest),
# WALK (0), BCVK_RUNNER_IMAGE, BUSY_WAIT (600 s to wait for other bcvk VMs).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
RUNS=${RUNS:-2}
BCVK=${BCVK:-bin/bcvk}
IMAGE=${IMAGE:-localhost/bcvk-sample:latest}
BUSY_WAIT=${BUSY_WAIT:-600}
WALK=${WALK:-0}
walk='n=$(find / -xdev 2>/dev/null | wc -l); find /usr -xdev -type f -print0 | xargs -0 cat >/dev/null && echo "$n files"' 
cache=$(mktemp -d /tmp/bcvk-bench-root-XXXXXX)
trap 'rm -rf "$cache"' EXIT
export XDG_CACHE_HOME=$cache

others() { podman ps -q --filter label=bcvk.ephemeral=1 | wc -l; }
wait_idle() {
	local end=$((SECONDS + BUSY_WAIT))
	while (($(others) > 0 && SECONDS < end)); do sleep 5; done
	(($(others) == 0)) || echo "bench-root: another VM is running: this run is contended" >&2
}
cpu_seconds() { # the container's CPU time (cgroup v1 cpuacct or v2 cpu.stat)
	local cg
	cg=$(podman inspect -f '{{.State.CgroupPath}}' "$1")
	if [[ -r /sys/fs/cgroup/cpuacct$cg/cpuacct.usage ]]; then
		awk '{printf "%.1f", $1/1e9}' "/sys/fs/cgroup/cpuacct$cg/cpuacct.usage"
	else
		awk '$1=="usage_usec"{printf "%.1f", $2/1e6}' "/sys/fs/cgroup$cg/cpu.stat"
	fi
}
one() { # transport label
	local t=$1 label=$2 name=bench-root-$$-$RANDOM start wall cpu load
	[[ $label == erofs-cold ]] && rm -f "$cache"/bcvk/erofs/*.erofs
	wait_idle
	load=$(cut -d' ' -f1 /proc/loadavg)
	start=$EPOCHREALTIME
	"$BCVK" ephemeral run -d --accel tcg --name "$name" --root-transport "$t" "$IMAGE" >/dev/null 2>"$cache/err" ||
		{ cat "$cache/err" >&2; exit 1; }
	wall=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
	cpu=$(cpu_seconds "$name")
	"$BCVK" ephemeral ssh "$name" -- true
	local extra=""
	if [[ $WALK == 1 ]]; then
		local ws=$EPOCHREALTIME files
		files=$("$BCVK" ephemeral ssh "$name" -- sh -c "$walk")
		extra=$(awk -v a="$ws" -v b="$EPOCHREALTIME" -v f="$files" -v c="$(cpu_seconds "$name")" \
			'BEGIN{printf "  walk %6.1fs (%s)  cpu at end %ss", b-a, f, c}')
	fi
	"$BCVK" ephemeral rm -f "$name" >/dev/null
	printf '%-11s run %d  ssh %6ss  cpu %6ss  load %s%s\n' "$label" "$round" "$wall" "$cpu" "$load" "$extra"
}
for ((round = 1; round <= RUNS; round++)); do
	one virtiofs virtiofs
	one erofs erofs-cold
	one erofs erofs-cached
done
ls -l "$cache"/bcvk/erofs/*.erofs | awk '{printf "EROFS image: %d MB\n", $5/1048576}'
