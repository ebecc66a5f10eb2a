#!/usr/bin/env bash
# Builds the sandbox base image without any registry: a minimal Debian root file system made by
# debootstrap from the Debian package mirror, then `docker import`. About a minute on 2 cores.
#   usage: images/make-base.sh [TAG]      (default lumia-base:bookworm)
set -euo pipefail
tag="${1:-lumia-base:bookworm}"
mirror="${LUMIA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag already present"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
root="$(mktemp -d /tmp/lumia-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm into $root (python3, numpy, Pillow) ..."
debootstrap --variant=minbase --include=python3,python3-numpy,python3-pil bookworm "$root" "$mirror" \
  > "$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# Trim what a sandbox never needs.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/locale/*
tar -C "$root" -c . | docker import --change 'CMD ["python3"]' - "$tag" >/dev/null
echo "base image $tag imported"
