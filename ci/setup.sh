#!/usr/bin/env bash
# Install every system package Atoll's build, tools and tests need. Idempotent and quiet:
# when everything is already installed it does nothing (no apt-get update).
set -euo pipefail

PACKAGES=(
  # building: libostree through the ostree crate
  build-essential pkg-config libglib2.0-dev libostree-dev
  # compose-tree: root filesystems, sandboxing, inspection
  ostree mmdebstrap bubblewrap debian-archive-keyring gnupg ca-certificates
  # local packages: cargo-deb (dpkg-shlibdeps), indexing them as a flat apt repository
  dpkg-dev apt-utils
  # images: partitioning, filesystems, boot loaders, qcow2
  gdisk fdisk util-linux e2fsprogs xfsprogs mtools extlinux syslinux-common grub-efi-amd64-bin qemu-utils
  # booted tests; host tests serve repos over HTTP with python3 -m http.server
  qemu-system-x86 ovmf python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "ci/setup.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "ci/setup.sh: cargo is not installed; this machine kind ships a Rust toolchain" >&2
  exit 1
fi

# cargo-deb packages the `host` agent as atoll-host_*.deb, which the reference treefile installs.
CARGO_DEB_VERSION=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
  echo "ci/setup.sh: installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
