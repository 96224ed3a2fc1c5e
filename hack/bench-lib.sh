# shellcheck shell=bash
# Shared by the bench scripts (sourced, not run).

# run_child CMD...: bash delays a trap until a foreground command ends, but
# not a `wait`: so the timed command runs in the background and is waited
# for, and a signal reaches cleanup (and so the command) at once. The
# caller's cleanup kills $child.
run_child() {
	"$@" &
	child=$!
	local rc=0
	wait "$child" || rc=$?
	child=''
	return "$rc"
}

# stamp VAR: microseconds since the epoch, without forking (bash 5).
stamp() { local _t=$EPOCHREALTIME; printf -v "$1" %s "${_t/./}"; }
