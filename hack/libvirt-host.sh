#!/bin/bash
# Runs the libvirt host that bcvk's libvirt tests talk to, on a machine
# without systemd (CI, containers): the daemons started by hand, as root.
#
#   hack/libvirt-host.sh start      virtlogd and libvirtd --listen (TCP on loopback)
#   hack/libvirt-host.sh stop       both, by their pid files in /run
#   hack/libvirt-host.sh status     what runs; exit 1 unless both URIs answer
#   hack/libvirt-host.sh virtiofsd  a virtiofsd for libvirt, from the runner image
#
# Environment:
#   BCVK_LIBVIRT_TCP_PORT  TCP port of libvirtd on 127.0.0.1 (default 16509);
#                          the tests use qemu+tcp://127.0.0.1:PORT/system
#   BCVK_RUNNER_IMAGE      image to take virtiofsd from (default
#                          localhost/bcvk-runner:0.1.0, `make runner-image`)
#
# Idempotent: start with the daemons up and configured is a no-op, and
# virtiofsd with a working virtiofsd already known to libvirt does nothing.
# hack/install-host-deps.sh installs the packages.
set -euo pipefail

PORT=${BCVK_LIBVIRT_TCP_PORT:-16509}
RUNNER_IMAGE=${BCVK_RUNNER_IMAGE:-localhost/bcvk-runner:0.1.0}
CONF=/etc/libvirt/libvirtd.conf
LOG=/var/log/libvirt/libvirtd.log
VIRTLOGD_LOG=/var/log/libvirt/virtlogd.log
WAIT_SECONDS=30

VFS_DIR=/usr/local/lib/bcvk/virtiofsd
VFS_WRAPPER=/usr/local/libexec/bcvk-virtiofsd
VFS_DESCRIPTOR=/etc/qemu/vhost-user/50-bcvk-virtiofsd.json

die() {
	echo "libvirt-host: $*" >&2
	exit 1
}

# pid_of NAME: the pid in /run/NAME.pid if that process is NAME and alive.
pid_of() {
	local pid
	pid=$(cat "/run/$1.pid" 2>/dev/null) || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
	echo "$pid"
}

uri_ok() {
	timeout 5 virsh -c "$1" version >/dev/null 2>&1
}

tcp_uri() {
	echo "qemu+tcp://127.0.0.1:$PORT/system"
}

# The marked block goes first in the file: libvirt's config parser takes the
# first assignment of a key, so it wins over any later line in the file.
# Prints "changed" when the file was rewritten.
write_conf() {
	local begin='# BEGIN bcvk (hack/libvirt-host.sh): TCP on loopback for the tests, no auth' end='# END bcvk'
	local tmp rest
	mkdir -p "$(dirname "$CONF")"
	touch "$CONF"
	tmp=$(mktemp "$CONF.bcvk.XXXXXX")
	rest=$(awk -v b="$begin" -v e="$end" '$0==b{skip=1; next} skip && $0==e{skip=0; next} !skip' "$CONF")
	{
		echo "$begin"
		echo 'listen_tls = 0'
		echo 'listen_tcp = 1'
		echo 'listen_addr = "127.0.0.1"'
		echo "tcp_port = \"$PORT\""
		echo 'auth_tcp = "none"'
		echo "$end"
		printf '%s\n' "$rest"
	} >"$tmp"
	if cmp -s "$tmp" "$CONF"; then
		rm -f "$tmp"
	else
		chmod --reference="$CONF" "$tmp"
		mv "$tmp" "$CONF"
		echo changed
	fi
}

wait_ready() {
	local deadline=$((SECONDS + WAIT_SECONDS)) tcp
	tcp=$(tcp_uri)
	while :; do
		if ! pid_of libvirtd >/dev/null; then
			echo "libvirt-host: libvirtd exited; last lines of $LOG:" >&2
			tail -n 30 "$LOG" >&2 || true
			exit 1
		fi
		if uri_ok qemu:///system && uri_ok "$tcp"; then
			return 0
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "libvirt-host: libvirtd not answering on qemu:///system and $tcp after ${WAIT_SECONDS}s; last lines of $LOG:" >&2
			tail -n 30 "$LOG" >&2 || true
			virsh -c "$tcp" version >&2 || true
			exit 1
		fi
		sleep 0.2
	done
}

stop_daemon() {
	local name=$1 pid i
	pid=$(pid_of "$name") || return 0
	kill -TERM "$pid"
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "libvirt-host: $name ($pid) still running 10 s after SIGTERM, sending SIGKILL" >&2
	kill -KILL "$pid" 2>/dev/null || true
}

cmd_start() {
	if ! [[ "$PORT" =~ ^[0-9]+$ ]] || [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
		die "BCVK_LIBVIRT_TCP_PORT=$PORT is not a port number"
	fi
	local c
	for c in libvirtd virtlogd virsh; do
		command -v "$c" >/dev/null || die "$c missing: run hack/install-host-deps.sh"
	done
	# bcvk defines its own dir pool (under images/); no default pool is needed.
	mkdir -p /var/lib/libvirt/images /var/log/libvirt /run/libvirt

	local changed pid i args
	changed=$(write_conf)

	# virtlogd first: QEMU's stdio and the serial <log file=> go through it.
	if ! pid_of virtlogd >/dev/null; then
		virtlogd -d
		for ((i = 0; i < 50; i++)); do
			[ -S /run/libvirt/virtlogd-sock ] && pid_of virtlogd >/dev/null && break
			sleep 0.2
		done
		pid_of virtlogd >/dev/null || {
			echo "libvirt-host: virtlogd did not start; last lines of $VIRTLOGD_LOG:" >&2
			tail -n 20 "$VIRTLOGD_LOG" >&2 || true
			exit 1
		}
	fi

	# A libvirtd started without --listen, or before the config changed,
	# has no (or another) TCP listener: restart it. Running domains survive
	# a libvirtd restart (it reconnects to their QEMU monitors).
	if pid=$(pid_of libvirtd); then
		args=$(tr '\0' '\n' <"/proc/$pid/cmdline")
		if [ -n "$changed" ] || ! grep -qxE -- '--listen|-l' <<<"$args"; then
			echo "libvirt-host: restarting libvirtd ($pid) with --listen and the current config"
			stop_daemon libvirtd
		fi
	fi
	if ! pid_of libvirtd >/dev/null; then
		# Without systemd socket activation libvirtd opens the TCP socket
		# itself, and only with --listen.
		if ! libvirtd -d --listen; then
			echo "libvirt-host: libvirtd did not start; last lines of $LOG:" >&2
			tail -n 30 "$LOG" >&2 || true
			exit 1
		fi
	fi
	wait_ready
	echo "libvirt-host: libvirtd $(pid_of libvirtd) on qemu:///system and $(tcp_uri), virtlogd $(pid_of virtlogd)"
}

cmd_stop() {
	local doms
	if pid_of libvirtd >/dev/null; then
		doms=$(timeout 5 virsh -c qemu:///system list --name 2>/dev/null | sed '/^$/d' || true)
		[ -z "$doms" ] || echo "libvirt-host: warning: domains still running (their QEMU keeps running): $doms" >&2
	fi
	stop_daemon libvirtd
	stop_daemon virtlogd
	echo "libvirt-host: stopped"
}

cmd_status() {
	local ok=0 pid tcp
	tcp=$(tcp_uri)
	for d in virtlogd libvirtd; do
		if pid=$(pid_of "$d"); then
			echo "$d: running, pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
		else
			echo "$d: not running"
			ok=1
		fi
	done
	for uri in qemu:///system "$tcp"; do
		if uri_ok "$uri"; then
			echo "$uri: answers"
		else
			echo "$uri: no answer"
			ok=1
		fi
	done
	echo "virtiofsd for libvirt: $(known_virtiofsd || echo none)"
	return "$ok"
}

# A virtiofsd binary works if it runs at all (the glibc it was built against
# is there) and prints its vhost-user capabilities, which libvirt reads.
# (Outputs are captured, not piped into grep -q: with pipefail, grep's early
# exit can fail the writer with SIGPIPE.)
virtiofsd_works() {
	local caps
	[ -x "$1" ] && timeout 10 "$1" --version >/dev/null 2>&1 &&
		caps=$(timeout 10 "$1" --print-capabilities 2>/dev/null) &&
		[[ "$caps" == *'"fs"'* ]]
}

# The binary of the first vhost-user descriptor of type "fs" whose binary
# works, in the directories libvirt reads (the /etc one overrides a file of
# the same name in /usr/share).
known_virtiofsd() {
	local f bin json
	for f in /etc/qemu/vhost-user/*.json /usr/share/qemu/vhost-user/*.json; do
		[ -f "$f" ] || continue
		json=$(tr -d '\n' <"$f")
		[[ "$json" =~ \"type\"[[:space:]]*:[[:space:]]*\"fs\" ]] || continue
		bin=$(sed -n 's/.*"binary"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$json")
		if [ -n "$bin" ] && virtiofsd_works "$bin"; then
			echo "$bin ($f)"
			return 0
		fi
	done
	return 1
}

write_descriptor() {
	local tmp
	mkdir -p "$(dirname "$VFS_DESCRIPTOR")"
	tmp=$(mktemp "$VFS_DESCRIPTOR.XXXXXX")
	cat >"$tmp" <<JSON
{
  "description": "virtiofsd for bcvk (written by hack/libvirt-host.sh)",
  "type": "fs",
  "binary": "$1"
}
JSON
	chmod 0644 "$tmp"
	mv "$tmp" "$VFS_DESCRIPTOR"
}

cmd_virtiofsd() {
	local found bin
	if found=$(known_virtiofsd); then
		echo "libvirt-host: virtiofsd for libvirt: $found"
		return 0
	fi
	# A working virtiofsd without a descriptor (installed by hand): describe it.
	for bin in /usr/libexec/virtiofsd /usr/lib/qemu/virtiofsd "$(command -v virtiofsd || true)"; do
		if [ -n "$bin" ] && virtiofsd_works "$bin"; then
			write_descriptor "$bin"
			echo "libvirt-host: virtiofsd for libvirt: $bin ($VFS_DESCRIPTOR)"
			return 0
		fi
	done

	# None: bundle the runner image's virtiofsd with the libraries it links,
	# its own ld.so included (it needs a newer glibc than bookworm's), and
	# run it through that ld.so.
	podman image exists "$RUNNER_IMAGE" || die "no working virtiofsd on this host and no image $RUNNER_IMAGE to take one from (make runner-image)"
	local stage
	mkdir -p "$(dirname "$VFS_DIR")"
	stage=$(mktemp -d "$(dirname "$VFS_DIR")/.virtiofsd.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$stage'" EXIT
	# The image's own ldd resolves the libraries (a line "NAME => PATH (addr)",
	# or "PATH (addr)" for the loader; linux-vdso has no file). tar -h
	# dereferences the symlinks; the files arrive flat under their sonames.
	podman run --rm --network=none --entrypoint /bin/sh "$RUNNER_IMAGE" -c '
		set -eu
		bin=/usr/libexec/virtiofsd
		out=$(mktemp -d)
		deps=$(ldd "$bin")
		if printf "%s\n" "$deps" | grep -q "not found"; then printf "%s\n" "$deps" >&2; exit 1; fi
		cp "$bin" "$out/virtiofsd"
		for lib in $(printf "%s\n" "$deps" | awk "\$2 == \"=>\" && \$3 ~ /^\\// {print \$3} \$1 ~ /^\\// {print \$1}"); do
			cp -L "$lib" "$out/"
		done
		tar -C "$out" -cf - .
	' | tar -C "$stage" -xf -
	local loader f
	loader=
	for f in "$stage"/ld-linux-*.so.*; do
		[ -f "$f" ] && loader=${f##*/} && break
	done
	if [ -z "$loader" ] || [ ! -x "$stage/virtiofsd" ]; then
		die "could not extract virtiofsd and its loader from $RUNNER_IMAGE"
	fi
	chmod 0755 "$stage"
	rm -rf "$VFS_DIR"
	mv "$stage" "$VFS_DIR"
	trap - EXIT

	mkdir -p "$(dirname "$VFS_WRAPPER")"
	cat >"$VFS_WRAPPER.tmp" <<WRAPPER
#!/bin/sh
# virtiofsd from $RUNNER_IMAGE with its own glibc (written by bcvk's hack/libvirt-host.sh)
exec $VFS_DIR/$loader --library-path $VFS_DIR $VFS_DIR/virtiofsd "\$@"
WRAPPER
	chmod 0755 "$VFS_WRAPPER.tmp"
	mv "$VFS_WRAPPER.tmp" "$VFS_WRAPPER"
	virtiofsd_works "$VFS_WRAPPER" || {
		"$VFS_WRAPPER" --version >&2 || true
		die "the bundled virtiofsd ($VFS_WRAPPER) does not run"
	}
	write_descriptor "$VFS_WRAPPER"
	echo "libvirt-host: virtiofsd for libvirt: $VFS_WRAPPER, $("$VFS_WRAPPER" --version | head -n1), from $RUNNER_IMAGE ($VFS_DESCRIPTOR)"
}

[ "$(id -u)" = 0 ] || die "run as root (it starts the system libvirt daemons)"
case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
virtiofsd) cmd_virtiofsd ;;
*)
	echo "usage: $0 start|stop|status|virtiofsd" >&2
	exit 2
	;;
esac
