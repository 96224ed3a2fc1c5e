#!/bin/bash
# Measures how long `bcvk ephemeral run-ssh IMAGE -- true` takes against two
# hand-made boots of the same image in the same runner container:
#   floor  the same kernel, bcvk's initramfs, bcvk's QEMU and virtiofsd
#          arguments, started by a shell script: what bcvk cannot beat
#   bcvk   bin/bcvk ephemeral run-ssh --accel tcg IMAGE -- true
#   field  the Rust bcvk's settings (virtiofsd --cache=never, the image's own
#          initramfs, its kernel arguments): what other tools do
#   bcvk-tcp  bcvk with --ssh-transport tcp (bcvk's default is SSH over vsock
#          where the image supports it): the two transports side by side
# plus one run of bcvk with the default --accel auto. Contenders alternate, so
# a slow spell of the (shared, noisy) machine hits them all alike.
#
# Env: RUNS (3), BENCH_JSON (_output/bench.json), BCVK (bin/bcvk),
# SAMPLE_IMAGE, BCVK_RUNNER_IMAGE, FLOOR_TIMEOUT (120 s), FIELD_TIMEOUT (240 s),
# BCVK_TIMEOUT (300 s), AUTO_RUN (1: also time --accel auto once),
# CONTENDERS ("floor bcvk field bcvk-tcp"), BUSY_WAIT (900 s to wait for other VMs on
# the host to end), RETRY_CONTENDED (1: repeat a run once when another VM
# ran beside it), BENCH_LOGS (a directory to keep every run's logs in).
set -euo pipefail
export LC_ALL=C # $EPOCHREALTIME and printf need a '.' decimal point

cd "$(dirname "$0")/.."
# shellcheck source=hack/bench-lib.sh
. hack/bench-lib.sh
RUNS=${RUNS:-3}
BENCH_JSON=${BENCH_JSON:-_output/bench.json}
BCVK=${BCVK:-bin/bcvk}
SAMPLE_IMAGE=${SAMPLE_IMAGE:-localhost/bcvk-sample:latest}
RUNNER_IMAGE=${BCVK_RUNNER_IMAGE:-localhost/bcvk-runner:$(cat VERSION)}
FLOOR_TIMEOUT=${FLOOR_TIMEOUT:-120}
FIELD_TIMEOUT=${FIELD_TIMEOUT:-240}
BCVK_TIMEOUT=${BCVK_TIMEOUT:-300}
AUTO_RUN=${AUTO_RUN:-1}
CONTENDERS=${CONTENDERS:-floor bcvk field bcvk-tcp}
BUSY_WAIT=${BUSY_WAIT:-900}
RETRY_CONTENDED=${RETRY_CONTENDED:-1}
BENCH_LOGS=${BENCH_LOGS:-}
MEMORY_MIB=2048                          # bcvk's default --memory
VCPUS=$(($(nproc) < 4 ? $(nproc) : 4)) # bcvk's default --vcpus: host CPUs, at most 4

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "bench: RUNS must be a positive number" >&2; exit 2; }
for c in podman awk sort date timeout setsid pgrep; do
	command -v "$c" >/dev/null || { echo "bench: $c is missing" >&2; exit 2; }
done
[[ -x $BCVK ]] || { echo "bench: $BCVK is missing: run 'make build'" >&2; exit 2; }
for img in "$SAMPLE_IMAGE" "$RUNNER_IMAGE"; do
	podman image exists "$img" || { echo "bench: image $img is missing: run 'make images'" >&2; exit 2; }
done

# ---- cleanup: every container, process and file this script made -------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bcvk-bench.XXXXXX")
containers=() # names are registered before the container is created
bgpids=()     # "-PGID" for process groups
child=''      # the podman run or bcvk being timed
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local p c
	# SIGTERM lets bcvk remove what it made; removing the containers ends a
	# podman run (and makes bcvk give up waiting) at once.
	[[ -z $child ]] || kill -TERM "$child" 2>/dev/null || true
	for c in "${containers[@]}"; do podman rm --force --ignore --time 0 "$c" >/dev/null 2>&1 || true; done
	[[ -z $child ]] || wait "$child" 2>/dev/null || true
	for p in "${bgpids[@]}"; do kill -- "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# secs US: microseconds as seconds with three decimals.
secs() { printf '%d.%03d' $(($1 / 1000000)) $(($1 % 1000000 / 1000)); }

results=$tmp/results.tsv # contender, run, key, value
attempt=$tmp/attempt.tsv # the same, for the run being measured
notes=$tmp/notes.txt     # one remark a line, for the report and the JSON
: >"$results"
: >"$notes"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$attempt"; }
note() { echo "note: $*" >&2; grep -qxF -- "$*" "$notes" || echo "$*" >>"$notes"; }

# ---- console milestones ---------------------------------------------------------
# mark.sh LOG OUT follows a console log and appends "PHASE MICROSECONDS" to
# OUT as each milestone's line arrives: first output, the image's systemd
# (its "Welcome to" banner, not the initramfs's), sshd started, multi-user.
# It runs inside the runner container for the raw boots, and on the host on
# bcvk's console.log.
cat >"$tmp/mark.sh" <<'MARK'
#!/bin/bash
set -uo pipefail
export LC_ALL=C
out=$2
declare -A seen=()
mark() {
	[[ -n ${seen[$1]:-} ]] && return
	seen[$1]=1
	local t=$EPOCHREALTIME
	echo "$1 ${t/./}" >>"$out"
}
# systemd colours unit names: drop escape sequences before matching.
tail -n +1 -F "$1" 2>/dev/null | sed -u 's/\x1b\[[0-9;]*[a-zA-Z]//g' | while IFS= read -r line; do
	mark booting
	case $line in
	*"Welcome to "*Initramfs*) ;;
	*"Welcome to "*) mark systemd ;;
	*"Started ssh.service"*) mark sshd ;;
	*"Reached target sockets.target"*) mark sockets ;;
	*"Reached target multi-user.target"*) mark multiuser ;;
	esac
done
MARK

# watch.sh GLOB EVENTS MARKS CONSOLE (on the host, in its own process group):
# waits for bcvk's state directory, copies its events.jsonl and console.log
# and marks the console.
# bcvk deletes the directory on exit; tail keeps what it read.
cat >"$tmp/watch.sh" <<'WATCH'
#!/bin/bash
set -uo pipefail
for ((n = 0; n < 6000; n++)); do
	for d in $1; do [[ -d $d ]] && break 2; done
	sleep 0.05
done
[[ -d $d ]] || exit 0
tail -n +1 -F "$d/events.jsonl" >"$2" 2>/dev/null &
tail -n +1 -F "$d/console.log" >"$4" 2>/dev/null &
exec "$(dirname "$0")/mark.sh" "$d/console.log" "$3"
WATCH

# ---- the raw boot, run inside the runner container ----------------------------
# boot.sh MODE VCPUS MEMORY DEADLINE NAME does what bcvk-inner does
# (pkg/inner/supervisor): build or pick the initramfs, start virtiofsd and
# wait for its socket, start QEMU with the command lines `bcvk-inner cmdline`
# prints (the field changes a few of their words), and wait for a real SSH
# login. It prints one
# "BENCH key=value..." line of timestamps.
cat >"$tmp/boot.sh" <<'BOOT'
#!/bin/bash
set -euo pipefail
export LC_ALL=C
mode=$1 vcpus=$2 mem=$3 deadline_s=$4 name=$5
stamp() { local _t=$EPOCHREALTIME; printf -v "$1" %s "${_t/./}"; }
stamp t_container
img=/bcvk/image run=/run/bench
mkdir -p "$run"
# The logs go to /bench/out, which the host keeps with BENCH_LOGS.
trap 'cp "$run"/*.log "$run"/*.err /bench/out/ 2>/dev/null || true' EXIT
# PID 1 ignores signals it has no handler for: `podman stop` must work.
trap 'exit 143' TERM INT
fail() {
	echo "boot.sh: $*" >&2
	for f in console.log qemu.err virtiofsd.err probe.log; do
		[[ -s $run/$f ]] || continue
		echo "--- last lines of $f:" >&2
		tail -n 15 "$run/$f" | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g' >&2
	done
	exit 1
}

# The key reaches the guest as the systemd credential tmpfiles.extra: the
# image is not changed.
ssh-keygen -q -t ed25519 -N '' -C bench -f "$run/key"
# bcvk's own command lines for this spec (`bcvk-inner cmdline`), so the floor
# is bcvk's line by construction: one "ROLE<TAB>SOCKET<TAB>ARGV..." a line.
bcvk-inner cmdline --accel tcg --console=false --memory "${mem}M" --vcpus "$vcpus" --name "$name" \
	--image-root "$img" --run-dir "$run" --ssh-key "$run/key.pub" >"$run/cmdline" || fail "bcvk-inner cmdline failed"
vfs=() qemu=()
while IFS=$'\t' read -r -a words; do
	case ${words[0]} in
	virtiofsd) vfs=("${words[@]:2}") ;;
	qemu) qemu=("${words[@]:2}") ;;
	esac
done <"$run/cmdline"
((${#vfs[@]} && ${#qemu[@]})) || fail "bcvk-inner cmdline printed no virtiofsd or QEMU line"
handles=never
case $mode in
floor)
	# bcvk's own initramfs, at the path of bcvk's QEMU line.
	bcvk-inner initramfs "$img" "$run/initramfs.img" >/dev/null
	;;
field)
	kernels=("$img"/usr/lib/modules/*/vmlinuz)
	[[ ${#kernels[@]} = 1 && -f ${kernels[0]} ]] || fail "want exactly one kernel, found: ${kernels[*]}"
	# The image's own (dracut) initramfs mounts the virtiofs root itself.
	for i in "${!qemu[@]}"; do
		case ${qemu[i]} in
		-initrd) qemu[i + 1]=$(dirname "${kernels[0]}")/initramfs.img ;;
		-append) qemu[i + 1]+=" rootfstype=virtiofs root=rootfs systemd.volatile=overlay systemd.mask=systemd-journal-flush.service" ;;
		esac
	done
	for i in "${!vfs[@]}"; do
		[[ ${vfs[i]} != --cache=* ]] || vfs[i]=--cache=never
	done
	handles=fallback
	;;
*) fail "unknown mode $mode" ;;
esac
stamp t_initramfs

start_virtiofsd() { # SOCKET: bcvk's virtiofsd line with this socket and $handles
	local args=() a
	for a in "${vfs[@]}"; do
		case $a in
		--socket-path=*) a=--socket-path=$1 ;;
		--inode-file-handles=*) a=--inode-file-handles=$handles ;;
		esac
		args+=("$a")
	done
	rm -f "$1"
	"${args[@]}" 2>>"$run/virtiofsd.err" &
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
# with file handles makes its socket and then dies: try that before the clock
# runs, and use never if so (file handles fail on an overlay store anyway).
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

"${qemu[@]}" </dev/null >"$run/console.log" 2>"$run/qemu.err" &
qemu_pid=$!
/bench/mark.sh "$run/console.log" "$run/marks" &

# The probe does what bcvk-inner's does (pkg/inner/sshprobe),
# with real logins where bcvk waits for a banner (the time the banner came
# is taken from ssh -v, for a like-for-like figure). Until the guest is on the
# network, QEMU's user net holds a connection without an answer; so first
# learn that from a port where nothing listens (2223, forwarded to the
# guest's port 1: closed at once when the guest is up). Then log in, with
# bcvk's 15 s wait for sshd's greeting: under TCG sshd can take seconds to
# greet, and a try that gives up earlier counts against us (OpenSSH's
# PerSourcePenalties) and leaves a half-started session behind in the guest.
# With ssh's ConnectTimeout=2 alone, both happened here and the first login
# came 20-30 s late. `timeout` guards against a connection that hangs.
on_network() { # 0 when the guest closed a connection to its port 1 at once
	timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2223 2>/dev/null || exit 2; cat <&3 >/dev/null 2>&1; exit 0'
}
ssh=(-v -i "$run/key" -p 2222 -F none -o IdentitiesOnly=yes -o StrictHostKeyChecking=no
	-o UserKnownHostsFile=/dev/null -o ConnectTimeout=15 -o BatchMode=yes)
shopt -s lastpipe # the loop below sets t_banner in this shell
t_banner=''
probe() { # one login, logged with its start (ms after QEMU) and length
	local a b rc=0 sshd=down line
	grep -q '^sshd ' "$run/marks" 2>/dev/null && sshd=started
	: >"$run/ssh.last"
	stamp a
	# A first login under TCG takes 5-20 s here (PAM, logind, root's
	# systemd --user): give it a minute.
	{ timeout 60 ssh "${ssh[@]}" root@127.0.0.1 true </dev/null 2>&1 >/dev/null; echo "exit $?"; } |
		while IFS= read -r line; do
			case $line in
			*"Remote protocol version"*) [[ -n $t_banner ]] || stamp t_banner ;;
			"exit "*) rc=${line#exit } ;;
			debug* | "OpenSSH_"* | "Warning: Permanently added"* | "Authenticated to"* | "Transferred:"* | "Bytes per second:"*) ;;
			*) echo "$line" >>"$run/ssh.last" ;;
			esac
		done
	stamp b
	echo "+$(((a - t_kernel) / 1000))ms took $(((b - a) / 1000))ms sshd $sshd, status $rc: $(tr '\n' ' ' <"$run/ssh.last")" >>"$run/probe.log"
	return "$rc"
}
result() { # the BENCH line: timestamps and counts
	local marks="" phase us refused
	while read -r phase us; do marks+=" t_$phase=$us"; done < <(cat "$run/marks" 2>/dev/null)
	refused=$(grep -c 'Not allowed at this time' "$run/probe.log" 2>/dev/null || true)
	echo "$1 t_container=$t_container t_initramfs=$t_initramfs t_kernel=$t_kernel$2$marks tries=$tries refused=${refused:-0} handles=$handles"
}
tries=0 silent=0 netmark=""
deadline=$((t_kernel + deadline_s * 1000000))
for ((;;)); do
	kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited before SSH was ready"
	stamp now
	if ((now >= deadline)); then
		# A result too: how far the boot got is worth reporting.
		result BENCH_TIMEOUT "$netmark${t_banner:+ t_banner=$t_banner}"
		fail "no SSH login within ${deadline_s}s"
	fi
	if [[ -z $netmark ]]; then
		rc=0
		on_network || rc=$?
		# Like bcvk, give up on the port after 120 silent tries (someone
		# may listen there) and probe sshd anyway.
		((rc != 124)) || silent=$((silent + 1))
		if ((rc == 0 || silent >= 120)); then stamp t_net; netmark=" t_net=$t_net"; fi
		((rc != 2)) || sleep 0.1 # QEMU is not listening yet
		continue
	fi
	tries=$((tries + 1))
	probe && break
	sleep 0.2
done
stamp t_ssh
result BENCH "$netmark t_banner=$t_banner t_ssh=$t_ssh"
# bcvk removes its container with --time 0, which kills QEMU; so do we.
kill -9 "$qemu_pid" "$vfs_pid" 2>/dev/null || true
BOOT
chmod +x "$tmp/mark.sh" "$tmp/watch.sh" "$tmp/boot.sh"

# ---- the host --------------------------------------------------------------------
# The container limits bcvk gives its runner (pkg/outer/ephemeral.Rlimits):
# virtiofsd needs many descriptors, and runc here cannot raise limits.
nofile=$(ulimit -Hn)
[[ $nofile = unlimited ]] && nofile=1048576
nproc_limit=$(ulimit -Hu)
[[ $nproc_limit = unlimited || $nproc_limit -gt 4096 ]] && nproc_limit=4096

# bcvk's state directory base (pkg/outer/ephemeral.StateBase).
if [[ -n ${XDG_RUNTIME_DIR:-} && -d ${XDG_RUNTIME_DIR:-} ]]; then
	state_base=$XDG_RUNTIME_DIR/bcvk
else
	state_base=${TMPDIR:-/tmp}/bcvk-$(id -u)
fi

# Another TCG VM on a small machine slows a boot down a lot: wait up to
# BUSY_WAIT seconds for other QEMUs to end before each run. Ours are named
# bcvk-bench* (raw) or bcvk-bcvk-bench* (bcvk).
others() {
	local all ours
	all=$(pgrep -c -x qemu-system-x86 || true) # the name is cut to 15 characters
	ours=$(pgrep -c -f '^qemu-system-x86_64 -name (bcvk-)?bcvk-bench' || true)
	echo $((all - ours))
}
busy_check() { # contender run
	local waited=0
	while (($(others) > 0 && waited < BUSY_WAIT)); do
		((waited > 0)) || echo "   waiting for other VMs on this host to end (up to ${BUSY_WAIT}s)" >&2
		sleep 5
		waited=$((waited + 5))
	done
	((waited == 0)) || note "$1 run $2 waited ${waited}s for other VMs to end"
}
# Wall time on a shared machine is noisy; the CPU time our QEMU and its
# virtiofsd use until SSH answers is steadier. A sampler writes, every half
# second, "MICROSECONDS OTHER-VMS CPU-TICKS" for the QEMU named $2 (found
# by its -name) and the virtiofsd beside it. It also catches another VM that
# starts during a run.
clk_tck=$(getconf CLK_TCK)
sample_start() { # FILE QEMU-NAME
	(
		qpid='' ppid=''
		for ((;;)); do
			if [[ -z $qpid || ! -e /proc/$qpid ]]; then # a KVM attempt's QEMU may be replaced
				qpid=$(pgrep -f "^qemu-system-x86_64 -name $2," | head -n1 || true)
				[[ -z $qpid ]] || ppid=$(awk '{print $4}' "/proc/$qpid/stat" 2>/dev/null || true)
			fi
			ticks=0
			if [[ -n $ppid ]]; then
				for p in $qpid $(pgrep -P "$ppid" -x virtiofsd || true); do
					ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
				done
			fi
			t=$EPOCHREALTIME
			echo "${t/./} $(others) $ticks" >>"$1"
			sleep 0.5
		done
	) &
	sampler_pid=$!
	bgpids+=("$sampler_pid")
	# Busy and stolen CPU of the whole host (a VM itself, maybe shared).
	read -r _ u n sy _ _ irq sirq steal _ </proc/stat
	host_busy0=$((u + n + sy + irq + sirq)) host_steal0=$steal
}
sample_end() { # CONTENDER RUN FILE END-MICROSECONDS
	kill "$sampler_pid" 2>/dev/null || true
	wait "$sampler_pid" 2>/dev/null || true
	read -r _ u n sy _ _ irq sirq steal _ </proc/stat
	record "$1" "$2" host_cpu "$(awk -v t=$((u + n + sy + irq + sirq - host_busy0)) -v hz="$clk_tck" 'BEGIN { printf "%.2f", t / hz }')"
	record "$1" "$2" steal "$(awk -v t=$((steal - host_steal0)) -v hz="$clk_tck" 'BEGIN { printf "%.2f", t / hz }')"
	local busy
	busy=$(awk '$2 > 0' "$3" 2>/dev/null | wc -l)
	last_overlap=$((busy / 2))
	record "$1" "$2" overlap "$last_overlap"
}
cpu_until() { # CONTENDER RUN FILE MICROSECONDS: record the CPU used by then
	local ticks
	ticks=$(awk -v t="$4" '$1 <= t { v = $3 } END { print v + 0 }' "$3" 2>/dev/null || echo 0)
	((ticks == 0)) || record "$1" "$2" cpu "$(awk -v t="$ticks" -v hz="$clk_tck" 'BEGIN { printf "%.2f", t / hz }')"
}

keep_logs() { # copy a run's logs to BENCH_LOGS
	[[ -n $BENCH_LOGS ]] || return 0
	mkdir -p "$BENCH_LOGS"
	cp -r "$@" "$BENCH_LOGS/" 2>/dev/null || true
}

fail_run() { # contender run log message
	echo "bench: $1 run $2 failed: $4; its output:" >&2
	tail -n 40 "$3" >&2 || true
	record "$1" "$2" failed 1
}

# raw_boot floor|field RUN: one `podman run` of boot.sh.
raw_boot() {
	local mode=$1 i=$2 timeout_s id="$1-$2$try_suffix"
	local name="bcvk-bench-$$-$id" log="$tmp/$id.log" out="$tmp/$id.d"
	[[ $mode = field ]] && timeout_s=$FIELD_TIMEOUT || timeout_s=$FLOOR_TIMEOUT
	mkdir -p "$out"
	busy_check "$mode" "$i"
	echo "== $mode, run $i/$RUNS${try_suffix:+ (again)}" >&2
	containers+=("$name")
	local t0 t1 rc=0 samples="$tmp/$id.samples"
	sample_start "$samples" "bcvk-$name" # QEMU's -name
	stamp t0
	# --foreground keeps timeout in our process group, so Ctrl-C reaches podman.
	run_child timeout --foreground -k 10 $((timeout_s + 60)) podman run --rm --name "$name" --pull=never \
		--mount "type=image,source=$SAMPLE_IMAGE,destination=/bcvk/image" \
		--mount "type=bind,source=$tmp/boot.sh,destination=/bench/boot.sh,ro=true" \
		--mount "type=bind,source=$tmp/mark.sh,destination=/bench/mark.sh,ro=true" \
		--mount "type=bind,source=$out,destination=/bench/out" \
		--tmpfs /run:rw,mode=0755 \
		--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc_limit:$nproc_limit" \
		--security-opt label=disable \
		--entrypoint /bin/bash "$RUNNER_IMAGE" \
		/bench/boot.sh "$mode" "$VCPUS" "$MEMORY_MIB" "$timeout_s" "$name" >"$log" 2>&1 || rc=$?
	stamp t1
	sample_end "$mode" "$i" "$samples"
	podman rm --force --ignore --time 0 "$name" >/dev/null 2>&1 || true
	keep_logs "$log" "$out" "$samples"
	grep '^BENCH_NOTE ' "$log" | while read -r _ msg; do note "$mode: $msg"; done || true
	local line timed_out=0
	line=$(grep '^BENCH ' "$log" | tail -n1 || true)
	if [[ -z $line ]] && line=$(grep '^BENCH_TIMEOUT ' "$log" | tail -n1); then
		# Too slow is a result, not a failure: keep the phases it reached.
		timed_out=1
		record "$mode" "$i" timeout 1
		note "$mode run $i: no SSH login within ${timeout_s}s (${mode^^}_TIMEOUT)"
		echo "   no SSH login within ${timeout_s}s" >&2
	elif ((rc != 0)) || [[ -z $line ]]; then
		fail_run "$mode" "$i" "$log" "exit status $rc"
		return 0
	fi
	local kv k v handles=unknown t_container=0 t_initramfs=0 t_kernel=0 t_banner=0 t_ssh=0
	for kv in ${line#* }; do
		k=${kv%%=*} v=${kv#*=}
		case $k in
		t_container) t_container=$v ;;
		t_initramfs) t_initramfs=$v ;;
		t_kernel) t_kernel=$v ;;
		t_banner) t_banner=$v ;;
		t_ssh) t_ssh=$v ;;
		handles) handles=$v ;;
		tries) record "$mode" "$i" ssh_tries "$v" ;;
		refused) ((v == 0)) || note "$mode run $i: sshd refused $v probe(s) with 'Not allowed at this time' (PerSourcePenalties)" ;;
		esac
		# Timestamps become seconds since `podman run` started.
		case $k in
		t_initramfs) ;;
		t_*) record "$mode" "$i" "${k#t_}" "$(secs $((v - t0)))" ;;
		esac
	done
	record "$mode" "$i" initramfs "$(secs $((t_initramfs - t_container)))"
	((!timed_out)) || return 0
	record "$mode" "$i" wall "$(secs $((t1 - t0)))"
	record "$mode" "$i" boot "$(secs $((t_banner - t_kernel)))"
	record "$mode" "$i" login "$(secs $((t_ssh - t_kernel)))"
	cpu_until "$mode" "$i" "$samples" "$t_banner"
	echo "   QEMU start -> sshd greets $(secs $((t_banner - t_kernel))) s, -> first login $(secs $((t_ssh - t_kernel))) s, whole $(secs $((t1 - t0))) s (virtiofsd --inode-file-handles=$handles)" >&2
}

# bcvk_run tcg|auto|tcp RUN (tcp: --accel tcg --ssh-transport tcp)
bcvk_run() {
	local accel=$1 i=$2 contender=bcvk transport=auto
	[[ $accel = tcg ]] || contender=bcvk-$accel
	if [[ $accel = tcp ]]; then accel=tcg transport=tcp; fi
	local id="$contender-$i$try_suffix"
	local name="bcvk-bench-$$-$id" log="$tmp/$id.log" ev="$tmp/$id.events" marks="$tmp/$id.marks"
	local console="$tmp/$id.console"
	busy_check "$contender" "$i"
	echo "== $contender, run $i/$([[ $accel = tcg ]] && echo "$RUNS" || echo 1)${try_suffix:+ (again)}" >&2
	containers+=("$name")
	# setsid: a process group of its own, so one kill ends tail and all.
	setsid "$tmp/watch.sh" "$state_base/$name-*" "$ev" "$marks" "$console" &
	local watcher=$!
	bgpids+=("-$watcher")
	local t0 t1 rc=0 samples="$tmp/$id.samples"
	sample_start "$samples" "bcvk-$name"
	stamp t0
	run_child timeout --foreground -k 30 "$BCVK_TIMEOUT" "$BCVK" ephemeral run-ssh --name "$name" --accel "$accel" --ssh-transport "$transport" \
		"$SAMPLE_IMAGE" -- true >"$log" 2>&1 || rc=$?
	stamp t1
	sample_end "$contender" "$i" "$samples"
	sleep 0.2 # let tail copy the last lines
	kill -- "-$watcher" 2>/dev/null || true
	wait "$watcher" 2>/dev/null || true
	podman rm --force --ignore --time 0 "$name" >/dev/null 2>&1 || true
	keep_logs "$log" "$ev" "$marks" "$console" "$samples"
	if ((rc != 0)); then
		fail_run "$contender" "$i" "$log" "exit status $rc"
		[[ ! -s $ev ]] || { echo "--- its events:"; cat "$ev"; } >&2
		return 0
	fi
	record "$contender" "$i" wall "$(secs $((t1 - t0)))"
	# The first event of each phase, as seconds since bcvk started.
	declare -A at=()
	local ts phase us
	if [[ -s $ev ]]; then
		while read -r phase ts; do
			[[ -z ${at[$phase]:-} ]] || continue
			us=$(date -d "$ts" +%s%6N) || continue
			at[$phase]=$us
			case $phase in
			container | kernel | booting | systemd) record "$contender" "$i" "$phase" "$(secs $((us - t0)))" ;;
			ssh) record "$contender" "$i" banner "$(secs $((us - t0)))" ;; # bcvk's "ssh" is sshd's greeting
			esac
		done < <(sed -n 's/.*"time":"\([^"]*\)","phase":"\([^"]*\)".*/\2 \1/p' "$ev")
		if [[ -n ${at[kernel]:-} && -n ${at[ssh]:-} ]]; then
			record "$contender" "$i" boot "$(secs $((at[ssh] - at[kernel])))"
			cpu_until "$contender" "$i" "$samples" "${at[ssh]}"
		fi
	else
		note "$contender run $i: no events captured from $state_base/$name-*/events.jsonl"
	fi
	# From the console: what the events do not say.
	if [[ -s $marks ]]; then
		while read -r phase us; do
			case $phase in sshd | sockets | multiuser) record "$contender" "$i" "$phase" "$(secs $((us - t0)))" ;; esac
		done <"$marks"
	fi
	if grep -qi 'warn' "$log"; then
		note "$contender: bcvk said: $(grep -i -m1 'warn' "$log" | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g')"
	fi
	echo "   whole $(secs $((t1 - t0))) s" >&2
}

# ---- the runs --------------------------------------------------------------------
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem_gib=$(awk '/^MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
ncpu=$(nproc)
host_kernel=$(uname -r)
podman_version=$(podman version --format '{{.Client.Version}}' 2>/dev/null || echo unknown)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- cmd pkg 2>/dev/null || commit="$commit+dirty"
machine="$ncpu CPUs ($cpu_model), $mem_gib GiB RAM, Linux $host_kernel, podman $podman_version"
echo "Machine: $machine" >&2
echo "bcvk $commit; $RUNS runs each; TCG, $VCPUS vCPUs, $MEMORY_MIB MiB" >&2

# measure CONTENDER RUN: one run, and once more if another VM shared the
# machine for more than a few seconds of it; the last try counts.
measure() {
	local try
	for ((try = 0; ; try++)); do
		: >"$attempt"
		last_overlap=0
		try_suffix=''
		((try == 0)) || try_suffix=-again$try
		case $1 in
		floor | field) raw_boot "$1" "$2" ;;
		bcvk) bcvk_run tcg "$2" ;;
		bcvk-auto) bcvk_run auto "$2" ;;
		bcvk-tcp) bcvk_run tcp "$2" ;;
		esac
		if ((last_overlap > 5 && try < RETRY_CONTENDED)); then
			note "$1 run $2 shared the machine with another VM for ${last_overlap}s: discarded and run again"
			continue
		fi
		((last_overlap <= 5)) || note "$1 run $2 shared the machine with another VM for ${last_overlap}s: it is likely slow"
		cat "$attempt" >>"$results"
		return 0
	done
}

for c in $CONTENDERS; do
	case $c in
	floor | field | bcvk | bcvk-tcp) ;;
	*) echo "bench: unknown contender $c (want floor, bcvk, field, bcvk-tcp)" >&2; exit 2 ;;
	esac
done
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for ((i = 1; i <= RUNS; i++)); do
	for c in $CONTENDERS; do measure "$c" "$i"; done
done
if ((AUTO_RUN)); then measure bcvk-auto 1; fi

# ---- statistics ------------------------------------------------------------------
# stats.tsv: contender, key, n, median, min, max, the values in run order
sort -t$'\t' -k1,1 -k3,3 -k2,2n "$results" | awk -F'\t' '
	function flush(   i, j, t) {
		if (n == 0) return
		for (i = 2; i <= n; i++) # insertion sort: a handful of values
			for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
		med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		printf "%s\t%s\t%d\t%.3f\t%.3f\t%.3f\t%s\n", c, k, n, med, v[1], v[n], list
		n = 0
	}
	{
		if ($1 != c || $3 != k) { flush(); c = $1; k = $3; list = "" }
		v[++n] = $4 + 0; list = list (list == "" ? "" : ",") $4
	}
	END { flush() }' >"$tmp/stats.tsv"

# get CONTENDER KEY FIELD (3 n, 4 median, 5 min, 6 max, 7 values)
get() { awk -F'\t' -v c="$1" -v k="$2" -v f="$3" '$1 == c && $2 == k { print $f }' "$tmp/stats.tsv"; }
ratio() { # CONTENDER KEY: its median over the floor's
	local a b
	a=$(get "$1" "$2" 4) b=$(get floor "$2" 4)
	[[ -n $a && -n $b ]] || return 0
	awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b }'
}
failures() { awk -F'\t' -v c="$1" '$1 == c && $3 == "failed"' "$results" | wc -l; }
# Runs that shared the machine with another VM for more than 5 s.
contended() { awk -F'\t' -v c="$1" '$1 == c && $3 == "overlap" && $4 > 5' "$results" | wc -l; }

read -ra contenders <<<"$CONTENDERS"
if ((AUTO_RUN)); then contenders+=(bcvk-auto); fi
label() {
	case $1 in
	floor) echo "floor (by hand)" ;;
	bcvk) echo "bcvk --accel tcg" ;;
	field) echo "field (cache=never)" ;;
	bcvk-auto) echo "bcvk --accel auto" ;;
	bcvk-tcp) echo "bcvk (SSH over TCP)" ;;
	esac
}

report=$tmp/report.txt
{
	echo "Machine: $machine"
	echo "bcvk $commit, $started; guest: TCG, $VCPUS vCPUs, $MEMORY_MIB MiB; $RUNS runs each, bcvk --accel auto once"
	echo
	printf '%-20s %-25s %4s %7s %13s %7s %7s\n' contender measure runs median min-max "/floor" shared
	for c in "${contenders[@]}"; do
		for k in boot login cpu wall; do
			n=$(get "$c" "$k" 3)
			[[ -n $n ]] || continue
			case $k in
			boot) m="QEMU start -> sshd greets" ;;
			login) m="QEMU start -> 1st login" ;;
			cpu) m="CPU until sshd greets" ;;
			wall) m="whole (launch -> exit)" ;;
			esac
			printf '%-20s %-25s %4s %6.1fs %13s %7s %7s\n' "$(label "$c")" "$m" "$n" "$(get "$c" "$k" 4)" \
				"$(printf '%.1f-%.1f' "$(get "$c" "$k" 5)" "$(get "$c" "$k" 6)")" "$(ratio "$c" "$k")" "$(contended "$c")"
		done
		f=$(failures "$c")
		((f == 0)) || printf '%-20s %d run(s) FAILED\n' "$(label "$c")" "$f"
		f=$(get "$c" timeout 3)
		[[ -z $f ]] || printf '%-20s %d run(s) without SSH within %ss\n' "$(label "$c")" "$f" "$([[ $c = field ]] && echo "$FIELD_TIMEOUT" || echo "$FLOOR_TIMEOUT")"
	done
	echo "  sshd greets: the first SSH banner (bcvk's \"ssh\" event; for floor and field, from the"
	echo "  login's ssh -v). 1st login: \`ssh true\` done (bcvk logs in after its event, in the"
	echo "  whole time). CPU: seconds of CPU QEMU and virtiofsd used until sshd greeted (sampled"
	echo "  every 0.5 s): steadier than wall time on a shared machine. shared: runs that another"
	echo "  VM ran beside for more than 5 s even after one repeat (likely slow)."
	echo
	echo "Phases: median seconds since launch (of podman run, or of bcvk)"
	printf '%-20s %9s %6s %7s %7s %7s %6s %7s %6s %6s %6s\n' contender container qemu booting systemd sockets sshd network greets login exit
	for c in "${contenders[@]}"; do
		row=$(printf '%-20s' "$(label "$c")")
		for k in container:9 kernel:6 booting:7 systemd:7 sockets:7 sshd:6 net:7 banner:6 ssh:6 wall:6; do
			v=$(get "$c" "${k%:*}" 4)
			[[ -z $v ]] || v=$(printf '%.1f' "$v")
			row+=$(printf " %${k#*:}s" "${v:--}")
		done
		echo "$row"
	done
	echo "  container: the runner's PID 1 runs; qemu: starting virtiofsd and QEMU (initramfs built);"
	echo "  booting: first console output; systemd: the image's systemd starts; sockets: sockets.target"
	echo "  reached (console; sshd-vsock.socket listens from then); sshd: ssh.service started (console;"
	echo "  the TCP path needs it); network: the guest answers on the network (raw boots' probe);"
	echo "  greets: sshd's banner; login: \`ssh true\` done; exit: the launcher returned, the"
	echo "  container removed. bcvk's container/qemu/booting/systemd/greets come from its events."
	if [[ -s $notes ]]; then
		echo
		sed 's/^/Note: /' "$notes"
	fi
} >"$report"
echo >&2
cat "$report"

# ---- JSON --------------------------------------------------------------------------
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
	printf '  "guest": {"accel": "tcg,tb-size=256", "cpu": "max,svm=off,vmx=off", "machine": "q35,sata=off,smbus=off,i8042=off,vmport=off", "vcpus": %d, "memoryMiB": %d, "image": %s, "runner": %s},\n' \
		"$VCPUS" "$MEMORY_MIB" "$(json_str "$SAMPLE_IMAGE")" "$(json_str "$RUNNER_IMAGE")"
	printf '  "units": "seconds; values in run order. boot: QEMU start to the first SSH banner; login: QEMU start to ssh true done (raw boots); cpu: CPU seconds of QEMU and virtiofsd until the banner; wall: launch to exit; container..ssh: phases, seconds since launch; host_cpu, steal: CPU seconds of the whole host during the run",\n'
	printf '  "contenders": {\n'
	first=1
	for c in "${contenders[@]}"; do
		((first)) || printf ',\n'
		first=0
		printf '    "%s": {"label": %s, "failed": %d' "$c" "$(json_str "$(label "$c")")" "$(failures "$c")"
		for k in boot login cpu wall container initramfs kernel booting systemd sockets sshd multiuser net banner ssh ssh_tries overlap host_cpu steal timeout; do
			n=$(get "$c" "$k" 3)
			[[ -n $n ]] || continue
			printf ',\n      "%s": {"n": %d, "median": %s, "min": %s, "max": %s, "values": [%s]' \
				"$k" "$n" "$(get "$c" "$k" 4)" "$(get "$c" "$k" 5)" "$(get "$c" "$k" 6)" "$(get "$c" "$k" 7)"
			r=$(ratio "$c" "$k")
			if [[ ($k = boot || $k = login || $k = cpu || $k = wall) && -n $r ]]; then printf ', "ratioToFloor": %s' "$r"; fi
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

# A failed run fails the benchmark, after the numbers that did come in.
if grep -q $'\tfailed\t' "$results"; then
	echo "bench: some runs failed (see above)" >&2
	exit 1
fi
