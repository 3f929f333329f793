#!/usr/bin/env bash
# Power cuts while an Atoll host switches versions, beyond the fixed set `.ci/run` runs:
#   ci/power-cut.sh random N [SEED]   N cuts at random phases (pull, staged, finalize, early boot)
#   ci/power-cut.sh window B U        B cuts on BIOS and U on UEFI spread over the finalize window
# Prints the table of trials (phase, moment, what GRUB reads, booted version, invariants).
# Needs ci/setup.sh's packages and the atoll-host package in target/debian (ci/test.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: ci/power-cut.sh random N [SEED] | window BIOS UEFI}
case "$mode" in
  random) spec="random:${2:?N}${3:+:$3}" ;;
  window) spec="window:${2:?BIOS cuts}:${3:?UEFI cuts}" ;;
  *) echo "ci/power-cut.sh: unknown mode $mode" >&2; exit 2 ;;
esac
[ -d target/debian ] || cargo deb -p atoll-updater --locked -q
start=$(date +%s)
ATOLL_POWER_CUTS=$spec cargo test -p compose-tree --locked --test power_cut -- --nocapture
echo "ci/power-cut.sh: $spec took $(( $(date +%s) - start )) s"
