#!/bin/bash
# The rest of `make bench` (hack/bench.sh times the boot against the floor
# and the field): what bcvk costs besides the boot, and the modes beside the
# default. Each part is one word of EXTRAS:
#   rss         peak RSS (VmHWM) of bcvk-inner, QEMU and virtiofsd of one VM
#               that booted and served a login
#   latency     `bcvk ephemeral ps` and `bcvk images list`, 10 runs each
#               (after rss, ps lists its VM)
#   todisk      `bcvk to-disk` of the sample image, cold and with a cache hit
#   concurrent  three `run-ssh -- true` started at once
#   fast        FAST_RUNS x `run-ssh --fast -- true` (the opt-in fast mode)
#   warm        `run-ssh --warm -- true`: the first run saves the booted VM,
#               the next FAST_RUNS restore it
# Env: EXTRAS (all of the above), FAST_RUNS (3), BCVK (bin/bcvk),
# SAMPLE_IMAGE, EXTRAS_JSON (_output/bench-extras.json).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
# shellcheck source=hack/bench-lib.sh
. hack/bench-lib.sh
EXTRAS=${EXTRAS:-rss latency todisk concurrent fast warm}
FAST_RUNS=${FAST_RUNS:-3}
BCVK=${BCVK:-bin/bcvk}
SAMPLE_IMAGE=${SAMPLE_IMAGE:-localhost/bcvk-sample:latest}
EXTRAS_JSON=${EXTRAS_JSON:-_output/bench-extras.json}
[[ -x $BCVK ]] || { echo "bench-extras: $BCVK is missing: run 'make build'" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/bcvk-bench-extras.XXXXXX")
vms=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	((${#vms[@]} == 0)) || "$BCVK" -q ephemeral rm -f "${vms[@]}" >/dev/null 2>&1 || true
	jobs -p | xargs -r kill 2>/dev/null || true
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ms() { echo $((($2 - $1) / 1000)); }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) exit; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
json=() # "key": value pairs
put() { json+=("\"$1\": $2"); }
say() { printf '%-44s %s\n' "$1" "$2" | tee -a "$tmp/report" >&2; }

# hwm PID: peak resident set size in KiB.
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

part_rss() {
	local name=bcvk-bench-rss pid q v inner_kib qemu_kib vfs_kib
	vms+=("$name")
	"$BCVK" -q ephemeral run -d --accel tcg --name "$name" "$SAMPLE_IMAGE" >/dev/null
	"$BCVK" -q ephemeral ssh "$name" -- true
	pid=$(podman inspect --format '{{.State.Pid}}' "$name")
	inner_kib=$(hwm "$pid")
	q=$(pgrep -P "$pid" -x qemu-system-x86 | head -n1)
	qemu_kib=$(hwm "$q")
	vfs_kib=0
	for v in $(pgrep -P "$pid" -x virtiofsd); do vfs_kib=$((vfs_kib + $(hwm "$v"))); done
	say "peak RSS bcvk-inner" "$((inner_kib / 1024)) MiB"
	say "peak RSS QEMU + virtiofsd (2 GiB guest)" "$(((qemu_kib + vfs_kib) / 1024)) MiB (QEMU $((qemu_kib / 1024)), virtiofsd $((vfs_kib / 1024)))"
	put rssInnerMiB $((inner_kib / 1024))
	put rssQemuMiB $((qemu_kib / 1024))
	put rssVirtiofsdMiB $((vfs_kib / 1024))
}

part_latency() {
	local i a b ps=() il=()
	for ((i = 0; i < 10; i++)); do
		stamp a; "$BCVK" ephemeral ps >/dev/null; stamp b; ps+=("$(ms "$a" "$b")")
		stamp a; "$BCVK" images list >/dev/null; stamp b; il+=("$(ms "$a" "$b")")
	done
	local mps mil
	mps=$(printf '%s\n' "${ps[@]}" | median) mil=$(printf '%s\n' "${il[@]}" | median)
	say "bcvk ephemeral ps (median of 10)" "$mps ms ($(printf '%s ' "${ps[@]}")ms)"
	say "bcvk images list (median of 10)" "$mil ms"
	put psMs "$mps"
	put imagesListMs "$mil"
}

part_todisk() {
	local a b cold hit
	stamp a
	"$BCVK" -q to-disk --accel tcg "$SAMPLE_IMAGE" "$tmp/disk.raw"
	stamp b; cold=$(ms "$a" "$b")
	stamp a
	"$BCVK" -q to-disk --accel tcg "$SAMPLE_IMAGE" "$tmp/disk.raw"
	stamp b; hit=$(ms "$a" "$b")
	say "to-disk raw, cold" "$((cold / 1000)).$((cold % 1000 / 100)) s"
	say "to-disk raw, cache hit" "$hit ms"
	put toDiskColdMs "$cold"
	put toDiskHitMs "$hit"
}

part_concurrent() {
	local i pids=() a b times=() codes=()
	stamp a
	for i in 1 2 3; do
		( s=$EPOCHREALTIME; rc=0; "$BCVK" -q ephemeral run-ssh --accel tcg --name "bcvk-bench-c$i" "$SAMPLE_IMAGE" -- true || rc=$?
		  e=$EPOCHREALTIME; echo "$(( (${e/./} - ${s/./}) / 1000 )) $rc" >"$tmp/c$i" ) &
		pids+=($!)
	done
	wait "${pids[@]}" || true
	stamp b
	for i in 1 2 3; do read -r t rc <"$tmp/c$i"; times+=("$t"); codes+=("$rc"); done
	say "3 VMs at once: each run-ssh -- true" "$(printf '%s ' "${times[@]}")ms, exit $(printf '%s ' "${codes[@]}")"
	put concurrentMs "[$(IFS=,; echo "${times[*]}")]"
	put concurrentExit "[$(IFS=,; echo "${codes[*]}")]"
}

# timed_runs KEY LABEL ARGS...: FAST_RUNS runs of run-ssh ARGS -- true.
timed_runs() {
	local key=$1 label=$2 i a b t=() rc
	shift 2
	for ((i = 0; i < FAST_RUNS; i++)); do
		stamp a; rc=0
		"$BCVK" -q ephemeral run-ssh --accel tcg "$@" "$SAMPLE_IMAGE" -- true || rc=$?
		stamp b
		((rc == 0)) || { say "$label" "run $((i + 1)) FAILED (exit $rc)"; put "${key}Failed" true; return 0; }
		t+=("$(ms "$a" "$b")")
	done
	local m
	m=$(printf '%s\n' "${t[@]}" | median)
	say "$label (median of $FAST_RUNS)" "$m ms ($(printf '%s ' "${t[@]}")ms)"
	put "${key}Ms" "$m"
	put "${key}Values" "[$(IFS=,; echo "${t[*]}")]"
}

part_fast() { timed_runs fast "run-ssh --fast -- true, whole" --fast; }

part_warm() {
	if ! "$BCVK" ephemeral run-ssh --help 2>/dev/null | grep -q -- '--warm'; then
		say "warm start" "not available in this bcvk"
		return 0
	fi
	local a b
	# A cache of our own: the first run must boot and save.
	export XDG_CACHE_HOME=$tmp/cache
	stamp a
	"$BCVK" -q ephemeral run-ssh --accel tcg --warm "$SAMPLE_IMAGE" -- true
	stamp b
	say "run-ssh --warm, first (boots and saves)" "$(ms "$a" "$b") ms"
	put warmFirstMs "$(ms "$a" "$b")"
	timed_runs warm "run-ssh --warm -- true, restored" --warm
}

: >"$tmp/report"
echo "== bench extras: $EXTRAS" >&2
for p in $EXTRAS; do
	case $p in
	rss | latency | todisk | concurrent | fast | warm) "part_$p" ;;
	*) echo "bench-extras: unknown part $p" >&2; exit 2 ;;
	esac
done
((${#vms[@]} == 0)) || "$BCVK" -q ephemeral rm -f "${vms[@]}" >/dev/null 2>&1 || true
vms=()

mkdir -p "$(dirname "$EXTRAS_JSON")"
{
	printf '{\n  "started": "%s",\n  "commit": "%s"' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	for kv in "${json[@]}"; do printf ',\n  %s' "$kv"; done
	printf '\n}\n'
} >"$EXTRAS_JSON"
echo >&2
cat "$tmp/report"
echo "Wrote $EXTRAS_JSON" >&2
