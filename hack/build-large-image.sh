#!/bin/bash
# Builds bcvk's LARGE test image: the sample image plus Debian packages that
# bring it to about 80-100k files (kernel headers, a C toolchain, Python,
# Go, Boost headers, Node.js), as fedora-bootc and centos-bootc images with
# developer tools are. The tests walk it in the guest: virtiofsd needs a file
# descriptor per file the guest caches, and such a walk once broke the VM.
#
# Usage: hack/build-large-image.sh [IMAGE [BASE]]
#   defaults: localhost/bcvk-test-large:latest localhost/bcvk-sample:latest
# Skipped when IMAGE was already built from this script and this BASE.
set -euo pipefail

image=${1:-localhost/bcvk-test-large:latest}
base=${2:-localhost/bcvk-sample:latest}
packages="linux-headers-amd64 build-essential python3-full golang-go libboost-dev nodejs"

log() { echo "build-large-image: $*" >&2; }
self=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source=hack/derived.sh
. "$(dirname "$self")/derived.sh"
derived_begin "$image" "$base"
log "building $image from $base with: $packages"
# No docs, man pages or translations, as in the sample image.
podman build --pull=never --quiet --label "bcvk.inputs=$inputs" -t "$image" -f - <<CONTAINERFILE >/dev/null
FROM $base
RUN printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' 'path-exclude /usr/share/locale/*' \
      >/etc/dpkg/dpkg.cfg.d/90-bcvk-nodoc && \
    apt-get update -qq && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >/dev/null && \
    apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log && \
    rm -f /boot/vmlinuz* /boot/initrd* /boot/System.map* /boot/config*
CONTAINERFILE
derived_end "$image"
files=$(podman run --rm --network none --entrypoint sh "$image" -c 'find / -xdev | wc -l')
log "built $image in $(( $(date +%s) - start )) s: $files files"
