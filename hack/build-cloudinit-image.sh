#!/bin/bash
# Builds bcvk's CLOUD-INIT test image: the sample image plus Debian's
# cloud-init, for the tests of `--cloud-init DIR` (a NoCloud seed that bcvk
# attaches as a disk labelled CIDATA).
#
# cloud-init is set up to be quick under emulation and to leave the sample
# image's own set-up alone:
#   - datasource_list [NoCloud, None]: no cloud metadata services are probed
#     (each would wait for a network timeout);
#   - the SSH host key stays the sample image's (one ed25519 key made at first
#     boot): cloud-init neither deletes it nor makes RSA and ECDSA keys, which
#     are slow to make under TCG;
#   - root's authorized_keys are left as they are (bcvk logs in as root);
#   - only the modules that can matter in an ephemeral VM are run (write_files,
#     users, runcmd, scripts, ...): Python is slow under emulation.
#
# Usage: hack/build-cloudinit-image.sh [IMAGE [BASE]]
#   defaults: localhost/bcvk-test-cloudinit:latest localhost/bcvk-sample:latest
# Skipped when IMAGE was already built from this script and this BASE.
set -euo pipefail

image=${1:-localhost/bcvk-test-cloudinit:latest}
base=${2:-localhost/bcvk-sample:latest}

log() { echo "build-cloudinit-image: $*" >&2; }
self=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source=hack/derived.sh
. "$(dirname "$self")/derived.sh"
derived_begin "$image" "$base"
log "building $image from $base with cloud-init"
# No docs, man pages or translations, as in the sample image. The config file
# sorts after Debian's 90_dpkg.cfg (which also sets datasource_list), so it
# wins.
podman build --pull=never --quiet --build-arg "BASE=$base" --label "bcvk.inputs=$inputs" -t "$image" -f - <<'CONTAINERFILE' >/dev/null
ARG BASE
FROM $BASE
RUN printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' 'path-exclude /usr/share/locale/*' \
      >/etc/dpkg/dpkg.cfg.d/90-bcvk-nodoc && \
    apt-get -o Acquire::Check-Valid-Until=false update -qq && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cloud-init >/dev/null && \
    apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log && \
    rm -f /boot/vmlinuz* /boot/initrd* /boot/System.map* /boot/config*
RUN printf '%s\n' \
      '# bcvk test image: the NoCloud seed only (bcvk --cloud-init DIR), no cloud probes.' \
      'datasource_list: [NoCloud, None]' \
      '# Keep the SSH host key that the image makes at first boot (ed25519);' \
      '# RSA and ECDSA keys are slow to make under emulation.' \
      'ssh_deletekeys: false' \
      'ssh_genkeytypes: []' \
      '# bcvk logs in as root with its own key.' \
      'disable_root: false' \
      '# Only the modules that can matter in an ephemeral VM: each one listed is' \
      '# loaded at every boot, and Python is slow under emulation. Left out: disks,' \
      '# apt, snap, NTP, locale, configuration management, phoning home, ...' \
      'cloud_init_modules: [seed_random, bootcmd, write_files, set_hostname, update_hostname, update_etc_hosts, users_groups, ssh]' \
      'cloud_config_modules: [set_passwords, runcmd]' \
      'cloud_final_modules: [write_files_deferred, scripts_per_once, scripts_per_boot, scripts_per_instance, scripts_user, final_message]' \
      >/etc/cloud/cloud.cfg.d/99_bcvk.cfg && \
    command -v cloud-init >/dev/null
CONTAINERFILE
derived_end "$image"
version=$(podman run --rm --network none --entrypoint cloud-init "$image" --version 2>&1 || true)
log "built $image in $(( $(date +%s) - start )) s: $version"
