#!/usr/bin/env bash
# Install every system package Atoll's build, tools and tests need, then verify: every listed
# package installed, every program the code spawns (utils/src/programs.txt) on PATH. Idempotent
# and quiet: when everything is already installed it installs nothing (no apt-get update).
#
# All packages go to apt in one call, so installing one can never evict another. The machine
# image may ship a package at a version no configured source offers (qemu-utils 10.x beside
# bookworm's qemu-system-x86 7.2, which Breaks it); apt refuses that set, and setup then asks for
# the archive's version of such packages so the whole list resolves together.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # building: libostree through the ostree crate
  build-essential pkg-config libglib2.0-dev libostree-dev
  # compose-tree: root filesystems, sandboxing, inspection
  apt ostree mmdebstrap bubblewrap debian-archive-keyring gnupg gpg ca-certificates
  # local packages: cargo-deb (dpkg-shlibdeps), indexing them as a flat apt repository
  dpkg dpkg-dev apt-utils
  # images: partitioning, loop devices, filesystems, boot loaders, qcow2
  gdisk fdisk mount util-linux coreutils e2fsprogs xfsprogs mtools
  grub-common grub-pc-bin grub-efi-amd64-bin qemu-utils
  # booted tests; host tests serve repos over HTTP with python3 -m http.server
  qemu-system-x86 ovmf python3 dash
)

say() { echo "ci/setup.sh: $*" >&2; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do installed "$p" || echo "$p"; done
}

# PACKAGE, or PACKAGE=VERSION with the newest version a configured source offers when the
# installed version comes from none of them (apt would otherwise keep it and refuse the set).
archive_pin() {
  local p=$1 have offered
  if installed "$p"; then
    have=$(dpkg-query -W -f='${Version}' "$p")
    offered=$(apt-cache madison "$p" | awk -F' [|] ' '{gsub(/ /, "", $2); print $2}')
    if [ -n "$offered" ] && ! grep -qxF -- "$have" <<<"$offered"; then
      echo "$p=$(head -n1 <<<"$offered")"
      return
    fi
  fi
  echo "$p"
}

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confold "$@" >/dev/null
}

# One call with the whole list; if apt cannot resolve it as the machine stands, one call with
# off-archive versions replaced by the archive's.
install_all() {
  if apt_install "${PACKAGES[@]}"; then return 0; fi
  local pinned=() p
  for p in "${PACKAGES[@]}"; do pinned+=("$(archive_pin "$p")"); done
  say "apt could not resolve the list as installed; retrying with archive versions: $(printf '%s\n' "${pinned[@]}" | grep = | tr '\n' ' ')"
  apt_install --allow-downgrades "${pinned[@]}"
}

mapfile -t missing < <(missing_packages)
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  apt-get update -qq
  install_all || true
  mapfile -t missing < <(missing_packages)
  if ((${#missing[@]})); then
    say "still missing after install: ${missing[*]}; installing again"
    install_all || true
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]})); then
      say "ERROR: these packages could not be installed: ${missing[*]}"
      exit 1
    fi
  fi
fi

if ! command -v cargo >/dev/null; then
  say "ERROR: cargo is not installed; this machine kind ships a Rust toolchain"
  exit 1
fi

# cargo-deb packages the `host` agent as atoll-host_*.deb, which the reference treefile installs.
CARGO_DEB_VERSION=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
  say "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

# Every program the code spawns must be on PATH now: a missing tool is a setup error, never a
# runtime surprise. Programs marked `host` run only on a booted Atoll host.
bad=()
while read -r prog pkg where _; do
  case "$prog" in '' | '#'*) continue ;; esac
  [ "${where:-}" = host ] && continue
  command -v "$prog" >/dev/null || bad+=("$prog (Debian package $pkg)")
done <utils/src/programs.txt
# Data files the image build and booted tests read.
for f in /usr/lib/grub/i386-pc/grub-bios-setup /usr/lib/grub/i386-pc/boot.img /usr/lib/grub/i386-pc/loadenv.mod \
  /usr/lib/grub/x86_64-efi/loadenv.mod /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_VARS_4M.fd; do
  [ -e "$f" ] || bad+=("$f (file)")
done
if ((${#bad[@]})); then
  say "ERROR: setup finished but these are missing:"
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
