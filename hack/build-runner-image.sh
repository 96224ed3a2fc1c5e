#!/bin/bash
# Builds bcvk's runner image from the Containerfile, reproducibly: the same
# inputs (Containerfile, bin/bcvk-inner, the base image, VERSION and the
# time of the last commit) give the same image ID, here or on another host.
#
# Usage: hack/build-runner-image.sh IMAGE [BASE]
#   IMAGE  the tag to build (make runner-image: localhost/bcvk-runner:VERSION)
#   BASE   the base image (default localhost/bcvk-base:trixie)
# Environment:
#   VERSION              bcvk's version (default: the VERSION file)
#   SOURCE_DATE_EPOCH    the image's time (default: the last commit's time,
#                        outside git a fixed one)
#   BCVK_RUNNER_PACKAGES where the package list goes
#                        (default _output/runner-packages.txt)
# Needs bin/bcvk-inner (make build). Skips the build when IMAGE was built
# from the same inputs; the package list is then only rewritten if missing.
#
# What makes two builds equal:
# - podman build --timestamp: the created time and every history entry, and
#   the time of every file in the new layers, are SOURCE_DATE_EPOCH;
# - --layers=false: no build cache, so no layer of an earlier build (with its
#   own times) is reused; all steps go into one new layer;
# - --identity-label=false: no io.buildah.version label (it differs between
#   hosts);
# - COPY --chmod: bcvk-inner's mode does not depend on the umask of the build;
# - Go builds bcvk-inner reproducibly (-trimpath -buildvcs=false).
set -euo pipefail

image=${1:?usage: hack/build-runner-image.sh IMAGE [BASE]}
base=${2:-localhost/bcvk-base:trixie}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
self="$root/hack/build-runner-image.sh"
cd "$root"
version=${VERSION:-$(cat VERSION)}
packages=${BCVK_RUNNER_PACKAGES:-_output/runner-packages.txt}
# 2025-08-09, trixie's release day (as in build-base-image.sh).
fallback_epoch=1754697600
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || true)
	SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$fallback_epoch}
fi
export SOURCE_DATE_EPOCH

log() { echo "build-runner-image: $*" >&2; }

[ -f bin/bcvk-inner ] || { log "bin/bcvk-inner is missing: run 'make build'"; exit 1; }
base_id=$(podman image inspect --format '{{.Id}}' "$base" 2>/dev/null) ||
	{ log "the base image $base is missing: run 'make base-image'"; exit 1; }

# Everything the result depends on. The hash goes into a label, so that the
# next run sees that the image is up to date; it is itself reproducible.
inputs=$( {
	sha256sum Containerfile "$self" bin/bcvk-inner | cut -d' ' -f1
	echo "$base_id $version $SOURCE_DATE_EPOCH"
} | sha256sum | cut -c1-32)

# write_packages IMAGE_ID: the package list of the built image, from its own
# dpkg database, sorted, with the image's and the base's ID on top.
write_packages() {
	mkdir -p "$(dirname "$packages")"
	{
		echo "# bcvk runner image $image"
		echo "# ID $1"
		echo "# base $base ID $base_id"
		echo "# package, version, architecture (dpkg-query -W)"
		podman run --rm --network none --entrypoint dpkg-query "$1" \
			-W -f '${Package}\t${Version}\t${Architecture}\n' | LC_ALL=C sort
	} >"$packages.tmp"
	mv "$packages.tmp" "$packages"
	log "packages of $image: $packages"
}

have=$(podman image inspect --format '{{.Id}} {{index .Labels "bcvk.runner-inputs"}}' "$image" 2>/dev/null || true)
if [ "${have#* }" = "$inputs" ]; then
	id=${have%% *}
	log "$image is up to date (ID ${id:0:12}, bcvk.runner-inputs=$inputs), skipping"
	grep -qx "# ID $id" "$packages" 2>/dev/null || write_packages "$id"
	exit 0
fi

start=$(date +%s)
log "building $image from $base (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
old=${have%% *}
podman build --quiet --pull=never --layers=false --identity-label=false \
	--timestamp "$SOURCE_DATE_EPOCH" \
	--build-arg BASE="$base" --build-arg VERSION="$version" \
	--label bcvk.runner-inputs="$inputs" \
	-t "$image" -f Containerfile . >/dev/null
id=$(podman image inspect --format '{{.Id}}' "$image")
log "built $image in $(($(date +%s) - start)) s: ID $id"
# Drop the image this one replaces, unless something still uses it or
# another tag names it (then podman refuses, which is fine).
[ -z "$old" ] || [ "$old" = "$id" ] || podman rmi "$old" >/dev/null 2>&1 || true
write_packages "$id"
