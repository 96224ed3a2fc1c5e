#!/bin/bash
# EXPERIMENT (not product code): can a VM booted the way bcvk boots it be saved
# to a file and restored ("warm start"), and how fast does a restored VM
# answer SSH?
#
#   1. container bcvk-warmexp-PID-save boots the sample image by hand, as
#      hack/bench.sh's boot.sh does (bcvk's initramfs, virtiofsd and QEMU
#      arguments, the SSH key as the systemd credential tmpfiles.extra), waits
#      for an SSH login and for systemd to settle, writes /root/marker, then
#      QMP stop + migrate to file:/exp/vm.state, and kills QEMU and virtiofsd;
#   2. containers bcvk-warmexp-PID-restoreN (RESTORES of them, one after the
#      other, each fresh) start a new virtiofsd on the same image and QEMU
#      with the same command line plus -incoming defer, QMP migrate-incoming
#      file:/exp/vm.state, cont, and time the first `ssh true`; then check
#      the guest.
# The containers share a host directory (/exp) for the state file, the key
# and the initramfs (all must be the same for every restore).
#
# QMP: the runner has no socat or python, so QEMU's QMP listens on TCP
# 127.0.0.1:4444 inside the container and bash's /dev/tcp talks to it.
#
# Env: SAMPLE_IMAGE, BCVK_RUNNER_IMAGE, RESTORES (3), BOOT_TIMEOUT (300 s),
# MEMORY_MIB (2048), WARM_INCOMING ("defer": -incoming defer + QMP
# migrate-incoming; "direct": -incoming file:PATH on the command line; a
# space-separated list is cycled through the restores), WARM_CAPS (migration
# capabilities set before migrate and migrate-incoming, e.g. "mapped-ram" or
# "mapped-ram multifd"; needs WARM_INCOMING=defer), WARM_LINGER (1: loginctl
# enable-linger root before the save, so root's user manager is in the
# snapshot), WARM_KEEP (1: keep
# the shared directory), WARM_DIR (the shared directory's parent, /var/tmp).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

SAMPLE_IMAGE=${SAMPLE_IMAGE:-localhost/bcvk-sample:latest}
RUNNER_IMAGE=${BCVK_RUNNER_IMAGE:-localhost/bcvk-runner:$(cat VERSION)}
RESTORES=${RESTORES:-3}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
MEMORY_MIB=${MEMORY_MIB:-2048}
WARM_INCOMING=${WARM_INCOMING:-defer}
VCPUS=$(($(nproc) < 4 ? $(nproc) : 4))

for img in "$SAMPLE_IMAGE" "$RUNNER_IMAGE"; do
	podman image exists "$img" || { echo "warm: image $img is missing" >&2; exit 2; }
done

shared=$(mktemp -d "${WARM_DIR:-/var/tmp}/bcvk-warmexp.XXXXXX")
containers=()
child=''
cleanup() {
	local rc=$? c
	trap - EXIT INT TERM
	[[ -z $child ]] || kill -TERM "$child" 2>/dev/null || true
	for c in "${containers[@]}"; do podman rm --force --ignore --time 0 "$c" >/dev/null 2>&1 || true; done
	[[ -z $child ]] || wait "$child" 2>/dev/null || true
	if [[ ${WARM_KEEP:-0} = 1 ]]; then echo "warm: kept $shared" >&2; else rm -rf "$shared"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the script run inside the runner container ----------------------------------
cat >"$shared/exp.sh" <<'EXP'
#!/bin/bash
# exp.sh save VCPUS MEMORY TIMEOUT | exp.sh restore N VCPUS MEMORY defer|direct
set -euo pipefail
export LC_ALL=C
mode=$1
stamp() { local _t=$EPOCHREALTIME; printf -v "$1" %s "${_t/./}"; }
ms() { echo $((($2 - $1) / 1000)); } # ms FROM TO (microseconds) -> milliseconds
stamp t_container
img=/bcvk/image run=/run/x exp=/exp
mkdir -p "$run"
qemu_pid='' vfs_pid=''
tag=save
[[ $mode = save ]] || tag=restore$2
out=$exp/$tag
mkdir -p "$out"
finish() {
	[[ -z $qemu_pid ]] || kill -9 "$qemu_pid" 2>/dev/null || true
	[[ -z $vfs_pid ]] || kill -9 "$vfs_pid" 2>/dev/null || true
	{ wait 2>/dev/null; } 2>/dev/null || true # no "Killed" notices
	cp "$run"/*.log "$run"/*.err "$out"/ 2>/dev/null || true
}
trap finish EXIT
trap 'exit 143' TERM INT
say() { echo "WARM $tag $*"; }
fail() {
	echo "exp.sh ($tag): $*" >&2
	for f in qemu.err virtiofsd.err console.log; do
		[[ -s $run/$f ]] || continue
		echo "--- last lines of $f:" >&2
		tail -n 25 "$run/$f" | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g' >&2
	done
	exit 1
}

# ---- QMP over TCP with bash's /dev/tcp: one connection per QEMU ----
QMP_PORT=4444
qmp_fd=''
qmp_open() { # waits up to 30 s for QEMU's QMP server
	local i line
	for ((i = 0; i < 3000; i++)); do
		if { exec {qmp_fd}<>/dev/tcp/127.0.0.1/$QMP_PORT; } 2>/dev/null; then
			read -r -t 10 line <&"$qmp_fd" || return 1 # the greeting
			qmp_raw '{"execute":"qmp_capabilities"}' >/dev/null
			return
		fi
		kill -0 "$qemu_pid" 2>/dev/null || return 1
		sleep 0.01
	done
	return 1
}
qmp_raw() { # JSON: prints the "return" or "error" line; status 1 on error. Events are logged.
	local line
	printf '%s\n' "$1" >&"$qmp_fd"
	while read -r -t 120 line <&"$qmp_fd"; do
		line=${line%$'\r'}
		case $line in
		*'"event"'*) echo "$EPOCHREALTIME $line" >>"$run/qmp-events.log" ;;
		*'"return"'*) echo "$line"; return 0 ;;
		*'"error"'*) echo "$line"; return 1 ;;
		esac
	done
	echo '{"error": "no answer from QMP"}'
	return 1
}
qmp() { # COMMAND [ARGUMENTS-JSON]
	qmp_raw "{\"execute\":\"$1\"${2:+,\"arguments\":$2}}"
}
field() { # JSON KEY: the first "KEY": VALUE (string or number) in JSON
	sed -n "s/.*\"$2\": *\"\{0,1\}\([^\",}]*\).*/\1/p" <<<"$1" | head -n1
}
set_caps() { # WARM_CAPS: migration capabilities, set on both sides
	local c list=''
	for c in ${WARM_CAPS:-}; do list+="${list:+,}{\"capability\":\"$c\",\"state\":true}"; done
	[[ -z $list ]] && return 0
	r=$(qmp migrate-set-capabilities "{\"capabilities\":[$list]}") || fail "migrate-set-capabilities: $r"
	if [[ " $WARM_CAPS " = *" multifd "* ]]; then
		r=$(qmp migrate-set-parameters '{"multifd-channels":2}') || fail "migrate-set-parameters: $r"
	fi
}

# ---- the VM, as bcvk (pkg/inner/qemu.Args, pkg/inner/virtiofsd.Args) ----
kargs="console=ttyS0,115200n8 selinux=0 panic=-1"
if [[ $mode = save ]]; then
	vcpus=$2 mem=$3 deadline_s=$4
	kernel=$(bcvk-inner initramfs "$img" "$exp/initramfs.img")
	echo "$kernel" >"$exp/kernel"
	ssh-keygen -q -t ed25519 -N '' -C warmexp -f "$exp/key"
	keyb64=$(base64 -w0 <"$exp/key.pub")
	{
		printf 'd /root/.ssh 0700 root root -\n'
		printf 'f+~ /root/.ssh/authorized_keys 0600 root root - %s\n' "$keyb64"
	} | base64 -w0 >"$exp/cred"
else
	n=$2 vcpus=$3 mem=$4 incoming=$5
	kernel=$(cat "$exp/kernel")
fi
cred=$(cat "$exp/cred")
cp "$exp/key" "$run/key" && chmod 600 "$run/key" # ssh wants a private key only we read

stamp t_vfs
rm -f "$run/virtiofs.sock"
# --log-level=info: virtiofsd says what it does when it migrates.
/usr/libexec/virtiofsd --shared-dir="$img" --sandbox=none --allow-mmap --log-level=info --readonly \
	--modcaps=-mknod --cache=always --inode-file-handles=never \
	--migration-mode=find-paths --migration-on-error=abort \
	--socket-path="$run/virtiofs.sock" 2>>"$run/virtiofsd.err" &
vfs_pid=$!
for ((i = 0; i < 2000; i++)); do
	[[ -S $run/virtiofs.sock ]] && break
	kill -0 "$vfs_pid" 2>/dev/null || fail "virtiofsd exited"
	sleep 0.005
done
[[ -S $run/virtiofs.sock ]] || fail "virtiofsd made no socket"

qemu=(-name "bcvk-warmexp,debug-threads=on" -nodefaults -no-user-config -display none -no-reboot
	-machine q35 -accel tcg,tb-size=256 -cpu max
	-smp "$vcpus" -m "${mem}M"
	-object "memory-backend-memfd,id=mem,size=${mem}M,share=on" -numa node,memdev=mem
	-kernel "$kernel" -initrd "$exp/initramfs.img" -append "$kargs"
	-chardev "socket,id=rootfs,path=$run/virtiofs.sock"
	-device vhost-user-fs-pci,queue-size=1024,chardev=rootfs,tag=rootfs
	-netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:2223-:1
	-device virtio-net-pci,netdev=net0,romfile=
	-device virtio-rng-pci
	-chardev stdio,id=console,signal=off -serial chardev:console
	-qmp "tcp:127.0.0.1:$QMP_PORT,server=on,wait=off"
	-smbios "type=11,value=io.systemd.credential.binary:tmpfiles.extra=$cred")
if [[ $mode = restore ]]; then
	case $incoming in
	defer) qemu+=(-incoming defer) ;;
	direct) qemu+=(-incoming "file:$exp/vm.state") ;;
	*) fail "unknown incoming mode $incoming" ;;
	esac
fi
printf '%q ' qemu-system-x86_64 "${qemu[@]}" >"$out/qemu-cmdline.txt"
stamp t_qemu
qemu-system-x86_64 "${qemu[@]}" </dev/null >"$run/console.log" 2>"$run/qemu.err" &
qemu_pid=$!

ssh=(-i "$run/key" -p 2222 -F none -o IdentitiesOnly=yes -o StrictHostKeyChecking=no
	-o UserKnownHostsFile=/dev/null -o ConnectTimeout=15 -o BatchMode=yes -o LogLevel=ERROR)
gssh() { timeout 120 ssh "${ssh[@]}" root@127.0.0.1 "$@" </dev/null; }
tries=0 t_banner=''
probe_until() { # DEADLINE(us): real logins 1 s apart until one works
	local a b rc line
	shopt -s lastpipe
	for ((;;)); do
		kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited"
		stamp a
		((a < $1)) || return 1
		tries=$((tries + 1))
		rc=0
		: >"$run/ssh.last"
		{ timeout 60 ssh -v "${ssh[@]}" root@127.0.0.1 true </dev/null 2>&1 >/dev/null; echo "exit $?"; } |
			while IFS= read -r line; do
				case $line in
				*"Remote protocol version"*) [[ -n $t_banner ]] || stamp t_banner ;;
				"exit "*) rc=${line#exit } ;;
				debug* | OpenSSH_* | "Authenticated to"* | Transferred:* | "Bytes per"*) ;;
				*) echo "$line" >>"$run/ssh.last" ;;
				esac
			done
		stamp b
		echo "try $tries +$(ms "$t_qemu" "$a")ms took $(ms "$a" "$b")ms status $rc $(tr '\n' ' ' <"$run/ssh.last")" >>"$run/probe.log"
		((rc != 0)) || return 0
		sleep 1
	done
}

if [[ $mode = save ]]; then
	qmp_open || fail "no QMP"
	probe_until $((t_qemu + deadline_s * 1000000)) || fail "no SSH login within ${deadline_s}s"
	stamp t_ssh
	say "boot_to_ssh_ms=$(ms "$t_qemu" "$t_ssh") tries=$tries"
	# Let the boot finish: the snapshot should be of a settled system.
	state=$(gssh 'timeout 150 systemctl is-system-running --wait' || true)
	stamp t_settled
	say "system_state=$state settled_ms=$(ms "$t_qemu" "$t_settled")"
	token=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
	echo "$token" >"$exp/token"
	gssh "echo $token >/root/marker && cat /root/marker" >/dev/null || fail "cannot write /root/marker"
	gssh 'cat /proc/meminfo' | awk '/^(MemFree|Cached|Shmem):/ {printf "%s%s ", $1, $2} END {print ""}' |
		sed 's/^/WARM save guest_meminfo_kB /'
	if [[ ${WARM_LINGER:-0} = 1 ]]; then
		# Keep root's user manager running, so a restored login need not start it.
		gssh 'loginctl enable-linger root && sleep 3 && systemctl is-active user@0.service' | sed 's/^/WARM save linger user@0=/'
	fi
	sleep 12 # let root's user manager (UserStopDelaySec=10) stop: a quiet guest
	# ---- save ----
	stamp t_stop
	r=$(qmp stop) || fail "stop: $r"
	set_caps
	r=$(qmp migrate "{\"uri\":\"file:$exp/vm.state\"}") || fail "migrate: $r"
	for ((;;)); do
		r=$(qmp query-migrate) || fail "query-migrate: $r"
		st=$(field "$r" status)
		case $st in
		completed) break ;;
		failed | cancelled) fail "migration $st: $r" ;;
		esac
		sleep 0.05
	done
	stamp t_saved
	echo "$r" >"$out/query-migrate.json"
	say "save_ms=$(ms "$t_stop" "$t_saved") qemu_total_time_ms=$(field "$r" total-time) downtime_ms=$(field "$r" downtime)" \
		"ram_transferred=$(field "$r" transferred) ram_normal_pages=$(field "$r" normal) ram_zero_pages=$(field "$r" duplicate)" \
		"file_bytes=$(stat -c %s "$exp/vm.state") file_disk_bytes=$(($(stat -c %b "$exp/vm.state") * $(stat -c %B "$exp/vm.state")))"
	r=$(qmp query-status) || true
	say "source_status_after_save=$(field "$r" status)"
	sha256sum "$exp/vm.state" | cut -d' ' -f1 >"$exp/vm.state.sha256"
	exit 0
fi

# ---- restore ----
qmp_open || fail "no QMP from the new QEMU"
stamp t_qmp
r=$(qmp query-status) || true
say "status_at_start=$(field "$r" status) qmp_ms=$(ms "$t_qemu" "$t_qmp")"
if [[ $incoming = defer ]]; then
	set_caps
	r=$(qmp migrate-incoming "{\"uri\":\"file:$exp/vm.state\"}") || fail "migrate-incoming: $r"
fi
for ((;;)); do
	r=$(qmp query-migrate) || fail "query-migrate: $r"
	st=$(field "$r" status)
	case $st in
	completed) break ;;
	failed | cancelled) fail "incoming migration $st: $r" ;;
	esac
	kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited during the incoming migration"
	stamp now
	((now < t_qemu + 300000000)) || fail "incoming migration not completed after 300 s: $r"
	sleep 0.02
done
stamp t_loaded
r=$(qmp query-status) || true
st_before=$(field "$r" status)
r=$(qmp cont) || fail "cont: $r"
stamp t_cont
r=$(qmp query-status) || true
say "loaded_ms=$(ms "$t_qemu" "$t_loaded") status_before_cont=$st_before cont_ms=$(ms "$t_qemu" "$t_cont") status_after_cont=$(field "$r" status)"
probe_until $((t_cont + 180 * 1000000)) || fail "no SSH login within 180 s of cont"
stamp t_ssh
say "qemu_to_ssh_ms=$(ms "$t_qemu" "$t_ssh") qemu_to_banner_ms=$(ms "$t_qemu" "$t_banner") cont_to_ssh_ms=$(ms "$t_cont" "$t_ssh") tries=$tries" \
	"container_to_qemu_ms=$(ms "$t_container" "$t_qemu") virtiofsd_ms=$(ms "$t_vfs" "$t_qemu")"

# Later logins: what a login costs once the guest runs again.
for k in 2 3; do
	stamp a
	gssh true || true
	stamp b
	say "login${k}_ms=$(ms "$a" "$b")"
done
# ---- checks in the restored guest ----
check() { # NAME COMMAND: one line "WARM restoreN check NAME=... "
	local o rc=0
	o=$(gssh "$2" 2>&1) || rc=$?
	say "check $1 rc=$rc: $(tr '\n' '|' <<<"$o" | cut -c1-400)"
}
check is-system-running 'systemctl is-system-running'
check failed-units 'systemctl --failed --no-legend --plain | head -n5'
check os-release 'grep -E "^(PRETTY_NAME|VERSION_CODENAME)=" /etc/os-release'
check modules 'ls /usr/lib/modules'
check marker 'cat /root/marker'
say "check marker_expected=$(cat "$exp/token")"
check earlier-restore-file 'ls /root/after-restore* 2>&1 || true'
check write-new "echo $tag >/root/after-$tag && cat /root/after-$tag"
# Files the guest probably never opened before the save: new lookups and reads over virtiofs.
check read-new 'find /usr/share -xdev -type f 2>/dev/null | head -n 3000 | xargs cat 2>/dev/null | wc -c; find /usr -xdev 2>/dev/null | wc -l'
check exec-new '/usr/bin/sha256sum /usr/bin/bash | cut -c1-16; getent passwd root | cut -d: -f7'
check root-mount 'findmnt -no SOURCE,FSTYPE,OPTIONS / | cut -c1-120'
host_now=$(date +%s)
check guest-clock "d=\$(date +%s); echo guest=\$d lag_s=\$(($host_now - \$d))"
check dmesg-errors 'dmesg | grep -iE "virtio|fuse|error|fail|clocksource|watchdog|rcu" | tail -n 8'
check uptime 'cat /proc/uptime'
r=$(qmp query-status) || true
say "status_end=$(field "$r" status)"
EXP
chmod +x "$shared/exp.sh"

# ---- the host ----------------------------------------------------------------------
nofile=$(ulimit -Hn)
[[ $nofile = unlimited ]] && nofile=1048576
nproc_limit=$(ulimit -Hu)
[[ $nproc_limit = unlimited || $nproc_limit -gt 4096 ]] && nproc_limit=4096

run_container() { # NAME ARGS...: one podman run of exp.sh, output to stdout
	local name=$1
	shift
	containers+=("$name")
	local rc=0
	timeout --foreground -k 10 $((BOOT_TIMEOUT + 300)) podman run --rm --name "$name" --pull=never \
		--mount "type=image,source=$SAMPLE_IMAGE,destination=/bcvk/image" \
		--mount "type=bind,source=$shared,destination=/exp" \
		--tmpfs /run:rw,mode=0755 \
		--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc_limit:$nproc_limit" \
		--security-opt label=disable \
		--env "WARM_CAPS=${WARM_CAPS:-}" --env "WARM_LINGER=${WARM_LINGER:-0}" \
		--entrypoint /bin/bash "$RUNNER_IMAGE" /exp/exp.sh "$@" &
	child=$!
	wait "$child" || rc=$?
	child=''
	podman rm --force --ignore --time 0 "$name" >/dev/null 2>&1 || true
	return "$rc"
}

show_logs() { # DIR
	local f
	for f in "$1"/qemu.err "$1"/virtiofsd.err "$1"/probe.log; do
		[[ -s $f ]] || continue
		echo "--- $f (last 15 lines)"
		tail -n 15 "$f" | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g'
	done
}

echo "warm: $(nproc) CPUs, TCG, $VCPUS vCPUs, $MEMORY_MIB MiB; shared dir $shared" >&2
echo "== boot and save" >&2
t0=$EPOCHREALTIME
if ! run_container "bcvk-warmexp-$$-save" save "$VCPUS" "$MEMORY_MIB" "$BOOT_TIMEOUT"; then
	show_logs "$shared/save"
	echo "warm: the boot or the save failed" >&2
	exit 1
fi
echo "WARM host save_container_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
show_logs "$shared/save"
sha=$(cat "$shared/vm.state.sha256")
read -ra modes <<<"$WARM_INCOMING"
failed=0
for ((n = 1; n <= RESTORES; n++)); do
	m=${modes[$(((n - 1) % ${#modes[@]}))]}
	echo "== restore $n ($m)" >&2
	t0=$EPOCHREALTIME
	rc=0
	run_container "bcvk-warmexp-$$-restore$n" restore "$n" "$VCPUS" "$MEMORY_MIB" "$m" || rc=$?
	echo "WARM host restore$n incoming=$m container_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') rc=$rc"
	show_logs "$shared/restore$n"
	((rc == 0)) || failed=1
	[[ $(sha256sum "$shared/vm.state" | cut -d' ' -f1) = "$sha" ]] || { echo "WARM host restore$n changed the state file"; failed=1; }
done
exit "$failed"
