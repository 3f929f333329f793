#!/usr/bin/env bash
# The whole test suite: unit tests, then integration tests that compose real trees.
# Must run as root (mmdebstrap --mode=root, bwrap).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "ci/test.sh: the integration tests compose real trees and need root" >&2
  exit 1
fi

export RUST_BACKTRACE=1
# Lints first: a formatting or clippy finding fails in seconds, before the long tests.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --all-targets --locked
# The reference treefile installs atoll-host from target/debian (the booted end-to-end test uses it).
cargo deb -p atoll-updater --locked -q
# One test binary at a time: the integration tests each saturate the machine's two cores.
cargo test --workspace --locked -- --test-threads=1
