#!/usr/bin/env bash
# The main job on the built-in default: compose the reference host tree, build its qcow2 image,
# boot it under QEMU (TCG) and print the booted version and `host status` from inside.
# Needs root and ./ci/setup.sh. Outputs land in ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p compose-tree -p vmtest
cargo deb -p atoll-updater --locked -q   # atoll-host_*.deb, which the treefile installs
T=target/release
mkdir -p build
$T/compose-tree compose image-recipes/atoll-host/treefile.toml --repo build/repo
$T/compose-tree image --repo build/repo --ref "atoll/$(uname -m)/stable" \
  --recipe image-recipes/atoll-host/image.toml --format qcow2 --output build/atoll.qcow2
$T/atoll-vm build/atoll.qcow2 \
  --exec '. /usr/lib/os-release && echo "booted $PRETTY_NAME, Atoll version $IMAGE_VERSION"' \
  --exec 'host status'
