#!/bin/bash
# Measures how long `bcvk ephemeral run-ssh IMAGE -- true` takes against two
# hand-made boots of the same image in the same runner container:
#   floor  the same kernel, bcvk's initramfs, QEMU and virtiofsd arguments as
#          bcvk, started by a shell script: what bcvk cannot beat
#   bcvk   bin/bcvk ephemeral run-ssh --accel tcg IMAGE -- true
#   field  the Rust bcvk's settings (virtiofsd --cache=never, the image's own
#          initramfs, its kernel arguments): what other tools do
# plus one run of bcvk with the default --accel auto. Contenders alternate, so
# a slow spell of the (shared, noisy) machine hits them all alike.
#
# Env: RUNS (3), BENCH_JSON (_output/bench.json), BCVK (bin/bcvk),
# SAMPLE_IMAGE, BCVK_RUNNER_IMAGE, FLOOR_TIMEOUT (120 s), FIELD_TIMEOUT (240 s),
# AUTO_RUN (1: also time --accel auto once), CONTENDERS ("floor bcvk field"),
# BUSY_WAIT (900 s: how long to wait for other VMs on the host to end).
set -euo pipefail
export LC_ALL=C # $EPOCHREALTIME and printf %f need a '.' decimal point

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
BENCH_JSON=${BENCH_JSON:-_output/bench.json}
BCVK=${BCVK:-bin/bcvk}
SAMPLE_IMAGE=${SAMPLE_IMAGE:-localhost/bcvk-sample:latest}
RUNNER_IMAGE=${BCVK_RUNNER_IMAGE:-localhost/bcvk-runner:$(cat VERSION)}
FLOOR_TIMEOUT=${FLOOR_TIMEOUT:-120}
FIELD_TIMEOUT=${FIELD_TIMEOUT:-240}
BCVK_TIMEOUT=${BCVK_TIMEOUT:-300}
AUTO_RUN=${AUTO_RUN:-1}
BUSY_WAIT=${BUSY_WAIT:-900}
PROBE_CONNECT_TIMEOUT=${PROBE_CONNECT_TIMEOUT:-2}
BENCH_LOGS=${BENCH_LOGS:-} # a directory to keep each run's output in
CONTENDERS=${CONTENDERS:-floor bcvk field} # a subset, for trying the script out
MEMORY_MIB=2048                       # bcvk's default --memory
VCPUS=$(( $(nproc) < 4 ? $(nproc) : 4 )) # bcvk's default --vcpus: host CPUs, at most 4

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "bench: RUNS must be a positive number" >&2; exit 2; }
for c in podman awk sort date timeout; do
	command -v "$c" >/dev/null || { echo "bench: $c is missing" >&2; exit 2; }
done
[[ -x $BCVK ]] || { echo "bench: $BCVK is missing: run 'make build'" >&2; exit 2; }
for img in "$SAMPLE_IMAGE" "$RUNNER_IMAGE"; do
	podman image exists "$img" || { echo "bench: image $img is missing: run 'make images'" >&2; exit 2; }
done

# ---- cleanup: every container and file this script made, on every exit ----
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bcvk-bench.XXXXXX")
containers=() # names are registered before the container is created
bgpids=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local p c
	for p in "${bgpids[@]}"; do kill "$p" 2>/dev/null || true; done
	for c in "${containers[@]}"; do podman rm --force --ignore --time 0 "$c" >/dev/null 2>&1 || true; done
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
# bash runs these once the foreground command (which got the same Ctrl-C) ends.
trap 'exit 130' INT
trap 'exit 143' TERM

# stamp VAR: microseconds since the epoch, without forking (bash 5).
stamp() { local _t=$EPOCHREALTIME; printf -v "$1" %s "${_t/./}"; }
# secs US: microseconds as seconds with three decimals.
secs() { printf '%d.%03d' $(($1 / 1000000)) $(($1 % 1000000 / 1000)); }

results=$tmp/results.tsv # contender, run, key, seconds
notes=$tmp/notes.txt     # one line per remark, into the report and JSON
: >"$results"
: >"$notes"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"; }
note() { echo "note: $*" >&2; grep -qxF -- "$*" "$notes" || echo "$*" >>"$notes"; }

# ---- the raw boot, run inside the runner container --------------------------
# It does what bcvk-inner does (pkg/inner/supervisor): find the kernel, build
# or pick the initramfs, start virtiofsd and wait for its socket, start QEMU
# with the arguments of pkg/inner/qemu.Args, and wait for a real SSH login.
# It prints one "BENCH key=value..." line with its timestamps.
cat >"$tmp/boot.sh" <<'EOF'
#!/bin/bash
set -euo pipefail
export LC_ALL=C
mode=$1 vcpus=$2 mem=$3 deadline_s=$4 connect_timeout=$5
stamp() { local _t=$EPOCHREALTIME; printf -v "$1" %s "${_t/./}"; }
stamp t_container
img=/bcvk/image run=/run/bench
mkdir -p "$run"
fail() {
	echo "boot.sh: $*" >&2
	for f in console.log qemu.err virtiofsd.err probe.log; do
		[[ -s $run/$f ]] || continue
		echo "--- last lines of $f:" >&2
		tail -n 15 "$run/$f" | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g' >&2
	done
	exit 1
}
# PID 1 ignores signals it has no handler for: `podman stop` must work.
trap 'exit 143' TERM INT

# pkg/inner/qemu.BaseKernelArgs
kargs="console=ttyS0,115200n8 selinux=0 panic=-1"
# pkg/inner/virtiofsd.Args for a read-only share, minus the cache options.
vfs=(--shared-dir="$img" --sandbox=none
	--allow-mmap --log-level=error --readonly --modcaps=-mknod)
handles=never
case $mode in
floor)
	# bcvk's own initramfs; the command prints the kernel it belongs to.
	kernel=$(bcvk-inner initramfs "$img" "$run/initramfs.img")
	initrd=$run/initramfs.img
	vfs+=(--cache=always)
	handover='bcvk-init: handing over to' # bcvk's init starts the image's systemd
	;;
field)
	kernels=("$img"/usr/lib/modules/*/vmlinuz)
	[[ ${#kernels[@]} = 1 && -f ${kernels[0]} ]] || fail "want exactly one kernel, found: ${kernels[*]}"
	kernel=${kernels[0]}
	# The image's own (dracut) initramfs mounts the virtiofs root itself.
	initrd=$(dirname "$kernel")/initramfs.img
	kargs+=" rootfstype=virtiofs root=rootfs systemd.volatile=overlay systemd.mask=systemd-journal-flush.service"
	vfs+=(--cache=never)
	handles=fallback
	handover='Switching root' # the initrd's systemd hands over
	;;
*) fail "unknown mode $mode" ;;
esac
stamp t_initramfs

# The key reaches the guest as the systemd credential tmpfiles.extra
# (pkg/credential): the image is not changed.
ssh-keygen -q -t ed25519 -N '' -C bench -f "$run/key"
keyb64=$(base64 -w0 <"$run/key.pub") # key.pub ends with a newline, as bcvk's does
cred=$({
	printf 'd /root/.ssh 0700 root root -\n'
	printf 'f+~ /root/.ssh/authorized_keys 0600 root root - %s\n' "$keyb64"
} | base64 -w0)

start_virtiofsd() { # SOCKET
	rm -f "$1"
	/usr/libexec/virtiofsd "${vfs[@]}" --socket-path="$1" --inode-file-handles="$handles" 2>>"$run/virtiofsd.err" &
	vfs_pid=$!
	local i
	for ((i = 0; i < 2000; i++)); do
		[[ -S $1 ]] && return 0
		kill -0 "$vfs_pid" 2>/dev/null || return 1
		sleep 0.005
	done
	return 1
}
# Without CAP_DAC_READ_SEARCH (not among podman's defaults), virtiofsd 1.13
# with file handles makes its socket and then dies: try it before the clock
# runs, and use never if so (on an overlay store file handles fail anyway,
# so fallback would mostly mean never).
if [[ $handles = fallback ]]; then
	if start_virtiofsd "$run/try.sock" && sleep 0.5 && kill -0 "$vfs_pid" 2>/dev/null; then
		kill "$vfs_pid"
	else
		echo "BENCH_NOTE virtiofsd --inode-file-handles=fallback does not start here ($(tail -n1 "$run/virtiofsd.err" | sed 's/^\[[^]]*\] *//')): used never"
		handles=never
	fi
	wait "$vfs_pid" 2>/dev/null || true
fi
# bcvk-inner emits its "kernel" event just before it starts virtiofsd.
stamp t_kernel
start_virtiofsd "$run/virtiofs.sock" || fail "virtiofsd did not start"

qemu=(-name bcvk-bench,debug-threads=on -nodefaults -no-user-config -display none -no-reboot
	-machine q35 -accel tcg,tb-size=256 -cpu max
	-smp "$vcpus" -m "${mem}M"
	-object "memory-backend-memfd,id=mem,size=${mem}M,share=on" -numa node,memdev=mem
	-kernel "$kernel" -initrd "$initrd" -append "$kargs"
	-chardev "socket,id=rootfs,path=$run/virtiofs.sock"
	-device vhost-user-fs-pci,queue-size=1024,chardev=rootfs,tag=rootfs
	-netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22
	-device virtio-net-pci,netdev=net0,romfile=
	-device virtio-rng-pci
	-chardev stdio,id=console,signal=off -serial chardev:console
	-qmp "unix:$run/qmp.sock,server=on,wait=off"
	-smbios "type=11,value=io.systemd.credential.binary:tmpfiles.extra=$cred")
qemu-system-x86_64 "${qemu[@]}" </dev/null >"$run/console.log" 2>"$run/qemu.err" &
qemu_pid=$!

# Console phases, watched beside the SSH probe so a slow ssh try does not
# delay them: first output, and the hand-over to the image's systemd.
(
	booted=0
	for ((;;)); do
		if ((!booted)) && [[ -s $run/console.log ]]; then stamp t; echo "$t" >"$run/t_booting"; booted=1; fi
		if grep -aqF "$handover" "$run/console.log" 2>/dev/null; then stamp t; echo "$t" >"$run/t_systemd"; exit 0; fi
		sleep 0.1
	done
) &
watch_pid=$!

# Real logins from the start, never banner-only connects: OpenSSH's
# PerSourcePenalties refuses a client that keeps connecting without logging
# in. Until sshd listens, QEMU's user net closes the connection at once.
ssh=(-i "$run/key" -p 2222 -F none -o IdentitiesOnly=yes -o StrictHostKeyChecking=no
	-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout="$connect_timeout" -o BatchMode=yes)
tries=1
stamp now
deadline=$((now + deadline_s * 1000000))
# probe: one login try, logged with when it started and how long it took.
probe() {
	local a b rc=0
	stamp a
	timeout 20 ssh "${ssh[@]}" root@127.0.0.1 true </dev/null 2>"$run/ssh.last" || rc=$?
	stamp b
	cat "$run/ssh.last" >>"$run/ssh.err"
	echo "+$(((a - t_kernel) / 1000))ms took $(((b - a) / 1000))ms status $rc: $(tr '\n' ' ' <"$run/ssh.last")" >>"$run/probe.log"
	return "$rc"
}
until probe; do
	kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited before SSH was ready"
	stamp now
	((now < deadline)) || fail "no SSH login within ${deadline_s}s"
	sleep 0.2
	tries=$((tries + 1))
done
stamp t_ssh
kill "$watch_pid" 2>/dev/null || true
t_booting=$(cat "$run/t_booting" 2>/dev/null || echo 0)
t_systemd=$(cat "$run/t_systemd" 2>/dev/null || echo 0)
refused=$(grep -c 'Not allowed at this time' "$run/ssh.err" 2>/dev/null || true)
echo "--- SSH probe, times since QEMU start:" >&2
tail -n 30 "$run/probe.log" >&2
echo "BENCH t_container=$t_container t_initramfs=$t_initramfs t_kernel=$t_kernel t_booting=$t_booting t_systemd=$t_systemd t_ssh=$t_ssh tries=$tries refused=${refused:-0} handles=$handles"
# bcvk removes its container with --time 0, which kills QEMU; so do we.
kill -9 "$qemu_pid" "$vfs_pid" 2>/dev/null || true
EOF

# The container limits bcvk gives its runner (pkg/outer/ephemeral.Rlimits):
# virtiofsd needs many descriptors, and runc here cannot raise limits.
nofile=$(ulimit -Hn)
[[ $nofile = unlimited ]] && nofile=1048576
nproc_limit=$(ulimit -Hu)
[[ $nproc_limit = unlimited || $nproc_limit -gt 4096 ]] && nproc_limit=4096

# Another VM on this small machine doubles boot times: wait up to BUSY_WAIT
# seconds for other QEMUs to end before each run, then go on and say so.
# QEMUs that are not ours (ours are named bcvk-bench* or bcvk-bcvk-bench*).
others() {
	local all ours
	all=$(pgrep -c -x qemu-system-x86 || true) # the name is cut to 15 characters
	ours=$(pgrep -c -f '^qemu-system-x86_64 -name (bcvk-)?bcvk-bench' || true)
	echo $((all - ours))
}
busy_check() {
	local waited=0
	while (($(others) > 0 && waited < BUSY_WAIT)); do
		((waited > 0)) || echo "   waiting for other VMs on this host to end (up to ${BUSY_WAIT}s)" >&2
		sleep 5
		waited=$((waited + 5))
	done
	((waited == 0)) || note "$1 run $2 waited ${waited}s for other VMs to end"
}
# One that starts during a run is only seen by sampling: count the seconds.
overlap_start() {
	(
		n=0
		for ((;;)); do
			(($(others) == 0)) || { n=$((n + 1)); echo "$n" >"$1"; }
			sleep 1
		done
	) &
	overlap_pid=$!
	bgpids+=("$overlap_pid")
}
overlap_end() { # contender run file
	kill "$overlap_pid" 2>/dev/null || true
	local n
	n=$(cat "$3" 2>/dev/null || echo 0)
	record "$1" "$2" overlap "$n"
	((n == 0)) || note "$1 run $2 shared the machine with another VM for about ${n}s: it is likely slow"
}

keep_log() { # copy a run's output to BENCH_LOGS
	[[ -z $BENCH_LOGS ]] || { mkdir -p "$BENCH_LOGS" && cp "$@" "$BENCH_LOGS/"; }
}

fail_run() { # contender run log message
	echo "bench: $1 run $2 failed: $4; its output:" >&2
	tail -n 40 "$3" >&2 || true
	record "$1" "$2" failed 1
}

# raw_boot floor|field RUN: one podman run of boot.sh.
raw_boot() {
	local mode=$1 i=$2 timeout_s
	local name="bcvk-bench-$$-$mode-$i" log="$tmp/$mode-$i.log"
	[[ $mode = field ]] && timeout_s=$FIELD_TIMEOUT || timeout_s=$FLOOR_TIMEOUT
	containers+=("$name")
	busy_check "$mode" "$i"
	echo "== $mode, run $i/$RUNS" >&2
	local t0 t1 rc=0
	overlap_start "$tmp/$mode-$i.overlap"
	stamp t0
	# --foreground keeps timeout in our process group, so Ctrl-C reaches podman.
	timeout --foreground -k 10 $((timeout_s + 60)) podman run --rm --name "$name" --pull=never \
		--mount "type=image,source=$SAMPLE_IMAGE,destination=/bcvk/image" \
		--mount "type=bind,source=$tmp/boot.sh,destination=/bench/boot.sh,ro=true" \
		--tmpfs /run:rw,mode=0755 \
		--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc_limit:$nproc_limit" \
		--security-opt label=disable \
		--entrypoint /bin/bash "$RUNNER_IMAGE" \
		/bench/boot.sh "$mode" "$VCPUS" "$MEMORY_MIB" "$timeout_s" "$PROBE_CONNECT_TIMEOUT" >"$log" 2>&1 || rc=$?
	stamp t1
	overlap_end "$mode" "$i" "$tmp/$mode-$i.overlap"
	podman rm --force --ignore --time 0 "$name" >/dev/null 2>&1 || true
	keep_log "$log"
	local line
	line=$(grep '^BENCH ' "$log" | tail -n1 || true)
	if ((rc != 0)) || [[ -z $line ]]; then
		fail_run "$mode" "$i" "$log" "exit status $rc"
		return 0
	fi
	grep '^BENCH_NOTE ' "$log" | while read -r _ msg; do note "$mode: $msg"; done || true
	local t_container t_initramfs t_kernel t_booting t_systemd t_ssh tries refused handles kv
	for kv in ${line#BENCH }; do printf -v "${kv%%=*}" %s "${kv#*=}"; done
	record "$mode" "$i" wall "$(secs $((t1 - t0)))"
	record "$mode" "$i" boot "$(secs $((t_ssh - t_kernel)))"
	record "$mode" "$i" container "$(secs $((t_container - t0)))"
	record "$mode" "$i" initramfs "$(secs $((t_initramfs - t_container)))"
	record "$mode" "$i" kernel "$(secs $((t_kernel - t0)))"
	((t_booting > 0)) && record "$mode" "$i" booting "$(secs $((t_booting - t0)))"
	((t_systemd > 0)) && record "$mode" "$i" systemd "$(secs $((t_systemd - t0)))"
	record "$mode" "$i" ssh "$(secs $((t_ssh - t0)))"
	record "$mode" "$i" ssh_tries "$tries"
	((refused == 0)) || note "$mode run $i: sshd refused $refused probe(s) with 'Not allowed at this time' (PerSourcePenalties)"
	echo "   QEMU->SSH $(secs $((t_ssh - t_kernel))) s, whole $(secs $((t1 - t0))) s (virtiofsd inode handles: $handles)" >&2
}

# bcvk's state directory base (pkg/outer/ephemeral.StateBase): events.jsonl
# lives there while the VM runs and goes with it.
if [[ -n ${XDG_RUNTIME_DIR:-} && -d ${XDG_RUNTIME_DIR:-} ]]; then
	state_base=$XDG_RUNTIME_DIR/bcvk
else
	state_base=${TMPDIR:-/tmp}/bcvk-$(id -u)
fi

# bcvk_run tcg|auto RUN
bcvk_run() {
	local accel=$1 i=$2 contender=bcvk
	[[ $accel = tcg ]] || contender=bcvk-$accel
	local name="bcvk-bench-$$-$contender-$i" log="$tmp/$contender-$i.log" ev="$tmp/$contender-$i.events"
	containers+=("$name")
	busy_check "$contender" "$i"
	echo "== $contender, run $i/$RUNS" >&2
	# bcvk deletes its state directory on exit: follow the events file with
	# tail, whose open descriptor outlives the deletion.
	(
		for ((n = 0; n < 6000; n++)); do
			for f in "$state_base/$name"-*/events.jsonl; do
				[[ -f $f ]] && exec tail -n +1 -f "$f" >"$ev"
			done
			sleep 0.05
		done
	) &
	local watcher=$!
	bgpids+=("$watcher")
	local t0 t1 rc=0
	overlap_start "$tmp/$contender-$i.overlap"
	stamp t0
	timeout --foreground -k 30 "$BCVK_TIMEOUT" "$BCVK" ephemeral run-ssh --name "$name" --accel "$accel" \
		"$SAMPLE_IMAGE" -- true >"$log" 2>&1 || rc=$?
	stamp t1
	overlap_end "$contender" "$i" "$tmp/$contender-$i.overlap"
	sleep 0.2 # let tail copy the last lines
	kill "$watcher" 2>/dev/null || true
	wait "$watcher" 2>/dev/null || true
	podman rm --force --ignore --time 0 "$name" >/dev/null 2>&1 || true
	keep_log "$log" "$ev" 2>/dev/null || true
	if ((rc != 0)); then
		fail_run "$contender" "$i" "$log" "exit status $rc"
		[[ -s $ev ]] && { echo "--- its events:"; cat "$ev"; } >&2
		return 0
	fi
	record "$contender" "$i" wall "$(secs $((t1 - t0)))"
	# The first event of each phase, as seconds since bcvk started.
	declare -A at=()
	local ts phase us
	if [[ -s $ev ]]; then
		while read -r phase ts; do
			[[ -n ${at[$phase]:-} ]] && continue
			us=$(date -d "$ts" +%s%6N) || continue
			at[$phase]=$us
			case $phase in container | kernel | booting | systemd | ssh) record "$contender" "$i" "$phase" "$(secs $((us - t0)))" ;; esac
		done < <(sed -n 's/.*"time":"\([^"]*\)","phase":"\([^"]*\)".*/\2 \1/p' "$ev")
		if [[ -n ${at[kernel]:-} && -n ${at[ssh]:-} ]]; then
			record "$contender" "$i" boot "$(secs $((at[ssh] - at[kernel])))"
		fi
		grep -q '"phase":"warning"' "$ev" && note "$contender: bcvk warned: $(sed -n 's/.*"phase":"warning","message":"\([^"]*\)".*/\1/p' "$ev" | head -n1)"
	else
		note "$contender run $i: no events captured from $state_base/$name-*/events.jsonl"
	fi
	grep -qi 'warn' "$log" && note "$contender: bcvk said: $(grep -i -m1 'warn' "$log" | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g')"
	echo "   whole $(secs $((t1 - t0))) s" >&2
}

# ---- the machine --------------------------------------------------------------
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem_gib=$(awk '/^MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
ncpu=$(nproc)
host_kernel=$(uname -r)
podman_version=$(podman version --format '{{.Client.Version}}' 2>/dev/null || echo unknown)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit+dirty"
echo "Machine: $ncpu CPUs ($cpu_model), $mem_gib GiB, kernel $host_kernel, podman $podman_version" >&2
echo "bcvk $commit; $RUNS runs each; TCG, $VCPUS vCPUs, $MEMORY_MIB MiB" >&2

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for ((i = 1; i <= RUNS; i++)); do
	for c in $CONTENDERS; do
		case $c in
		floor | field) raw_boot "$c" "$i" ;;
		bcvk) bcvk_run tcg "$i" ;;
		*) echo "bench: unknown contender $c" >&2; exit 2 ;;
		esac
	done
done
((AUTO_RUN)) && bcvk_run auto 1

# ---- statistics ---------------------------------------------------------------
# stats.tsv: contender, key, n, median, min, max, comma-separated values
sort -t$'\t' -k1,1 -k3,3 -k4,4n "$results" | awk -F'\t' '
	function flush() {
		if (n == 0) return
		med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		printf "%s\t%s\t%d\t%.3f\t%.3f\t%.3f\t%s\n", c, k, n, med, v[1], v[n], list
		n = 0
	}
	{ if ($1 != c || $3 != k) { flush(); c = $1; k = $3; list = "" }
	  v[++n] = $4; list = list (list == "" ? "" : ",") $4 }
	END { flush() }' >"$tmp/stats.tsv"

# get CONTENDER KEY FIELD (n=3 median=4 min=5 max=6 values=7)
get() { awk -F'\t' -v c="$1" -v k="$2" -v f="$3" '$1 == c && $2 == k { print $f }' "$tmp/stats.tsv"; }
ratio() { # contender key: median over the floor's median for the same key
	local a b
	a=$(get "$1" "$2" 4) b=$(get floor "$2" 4)
	[[ -n $a && -n $b ]] || return 0
	awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b }'
}

read -ra contenders <<<"$CONTENDERS"
((AUTO_RUN)) && contenders+=(bcvk-auto)
label() {
	case $1 in
	floor) echo "floor (by hand)" ;;
	bcvk) echo "bcvk --accel tcg" ;;
	field) echo "field (cache=never)" ;;
	bcvk-auto) echo "bcvk --accel auto" ;;
	esac
}

report=$tmp/report.txt
{
	echo "Machine: $ncpu CPUs ($cpu_model), $mem_gib GiB RAM, Linux $host_kernel, podman $podman_version"
	echo "bcvk $commit, $started; guest: TCG, $VCPUS vCPUs, $MEMORY_MIB MiB; $RUNS runs each (bcvk --accel auto: 1)"
	echo
	printf '%-21s %-24s %4s %8s %17s %8s\n' contender measure runs median min-max "x floor"
	for c in "${contenders[@]}"; do
		for k in boot wall; do
			n=$(get "$c" "$k" 3)
			[[ -n $n ]] || continue
			[[ $k = boot ]] && m="QEMU start -> SSH" || m="whole (launch -> exit)"
			printf '%-21s %-24s %4s %7.1fs %8.1f-%-7.1f %8s\n' "$(label "$c")" "$m" "$n" \
				"$(get "$c" "$k" 4)" "$(get "$c" "$k" 5)" "$(get "$c" "$k" 6)" "$(ratio "$c" "$k")"
		done
		f=$(awk -F'\t' -v c="$c" '$1 == c && $3 == "failed"' "$results" | wc -l)
		((f == 0)) || printf '%-21s %d run(s) FAILED\n' "$(label "$c")" "$f"
	done
	echo
	echo "Phases, median seconds since launch (podman run for floor/field, bcvk for bcvk):"
	printf '%-21s %9s %9s %9s %9s %9s %9s\n' contender container kernel booting systemd ssh exit
	for c in "${contenders[@]}"; do
		row=$(printf '%-21s' "$(label "$c")")
		for k in container kernel booting systemd ssh wall; do
			v=$(get "$c" "$k" 4)
			row+=$(printf ' %9s' "${v:--}")
		done
		echo "$row"
	done
	echo "  container: the runner's PID 1 started; kernel: QEMU started (initramfs built);"
	echo "  booting: first console output; systemd: the image's systemd took over (field: switch-root"
	echo "  from the image's initramfs); exit: the launcher returned, container removed."
	if [[ -s $notes ]]; then
		echo
		sed 's/^/Note: /' "$notes"
	fi
} >"$report"
echo >&2
cat "$report"

# ---- JSON ------------------------------------------------------------------------
json_str() { # a JSON string literal
	local s=$1
	s=${s//\\/\\\\} s=${s//\"/\\\"} s=${s//$'\t'/ } s=${s//$'\n'/ }
	printf '"%s"' "$s"
}
mkdir -p "$(dirname "$BENCH_JSON")"
{
	printf '{\n  "started": %s,\n  "commit": %s,\n  "runs": %d,\n' "$(json_str "$started")" "$(json_str "$commit")" "$RUNS"
	printf '  "machine": {"nproc": %d, "cpu": %s, "memoryGiB": %s, "kernel": %s, "podman": %s},\n' \
		"$ncpu" "$(json_str "$cpu_model")" "$mem_gib" "$(json_str "$host_kernel")" "$(json_str "$podman_version")"
	printf '  "guest": {"accel": "tcg,tb-size=256", "cpu": "max", "vcpus": %d, "memoryMiB": %d, "image": %s, "runner": %s},\n' \
		"$VCPUS" "$MEMORY_MIB" "$(json_str "$SAMPLE_IMAGE")" "$(json_str "$RUNNER_IMAGE")"
	printf '  "contenders": {\n'
	first=1
	for c in "${contenders[@]}"; do
		((first)) || printf ',\n'
		first=0
		f=$(awk -F'\t' -v c="$c" '$1 == c && $3 == "failed"' "$results" | wc -l)
		printf '    "%s": {"label": %s, "failed": %d' "$c" "$(json_str "$(label "$c")")" "$f"
		for k in boot wall container initramfs kernel booting systemd ssh ssh_tries overlap; do
			n=$(get "$c" "$k" 3)
			[[ -n $n ]] || continue
			printf ',\n      "%s": {"n": %d, "median": %s, "min": %s, "max": %s, "values": [%s]' \
				"$k" "$n" "$(get "$c" "$k" 4)" "$(get "$c" "$k" 5)" "$(get "$c" "$k" 6)" "$(get "$c" "$k" 7)"
			r=$(ratio "$c" "$k")
			[[ $k = boot || $k = wall ]] && [[ -n $r ]] && printf ', "ratioToFloor": %s' "$r"
			printf '}'
		done
		printf '}'
	done
	printf '\n  },\n  "notes": ['
	first=1
	while IFS= read -r l; do
		((first)) || printf ', '
		first=0
		json_str "$l"
	done <"$notes"
	printf ']\n}\n'
} >"$BENCH_JSON"
echo "Wrote $BENCH_JSON" >&2

# A failed run is a failed benchmark, after the numbers that did come in.
if grep -q $'\tfailed\t' "$results"; then
	echo "bench: some runs failed (see above)" >&2
	exit 1
fi
