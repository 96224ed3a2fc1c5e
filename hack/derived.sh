# shellcheck shell=bash
# Shared by the scripts that build a test image FROM another local image
# (sourced, not run; the script defines log and $self).
# shellcheck disable=SC2154,SC2034 # log, $self; inputs, old, start are for the script

# derived_begin IMAGE BASE: exits the script when IMAGE was already built by
# it from this BASE; otherwise sets $inputs (the label to give the new
# image), $old (the ID it replaces) and $start.
derived_begin() {
	local image=$1 base=$2 base_id have
	base_id=$(podman image inspect --format '{{.Id}}' "$base") || { log "the base image $base is missing: run make sample-image"; exit 1; }
	inputs=$( { cat "$self" "${BASH_SOURCE[0]}"; echo "$base_id"; } | sha256sum | cut -c1-32)
	have=$(podman image inspect --format '{{index .Labels "bcvk.inputs"}}' "$image" 2>/dev/null || true)
	if [ "$have" = "$inputs" ]; then
		log "$image is up to date (bcvk.inputs=$inputs), skipping"
		exit 0
	fi
	old=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
	start=$(date +%s)
}

# derived_end IMAGE: drops the image IMAGE replaced, unless something still
# uses it.
derived_end() {
	[ -z "$old" ] || [ "$old" = "$(podman image inspect --format '{{.Id}}' "$1")" ] || podman rmi "$old" >/dev/null 2>&1 || true
}
