#!/usr/bin/env bash
# Image benchmark: prints figures, asserts nothing. Composes the reference recipe (reusing
# ./build/repo when present), then times `compose-tree image` for raw and qcow2, reports the image
# sizes, and times boot-to-ready (multi-user, no failed unit) under TCG for BIOS and UEFI.
# Needs root and ./ci/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
W=$(realpath -m "${BENCH_DIR:-target/bench-image}")
rm -rf "$W"; mkdir -p "$W" build
cargo build --release -q -p compose-tree -p vmtest
cargo deb -p atoll-updater --locked -q > /dev/null   # atoll-host, which the reference treefile installs
T=$PWD/target/release
REF="atoll/$(uname -m)/stable"
$T/compose-tree compose image-recipes/atoll-host/treefile.toml --repo build/repo > /dev/null

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
declare -A BUILD SIZE
for f in raw qcow2; do
  t0=$(now)
  $T/compose-tree image --repo build/repo --ref "$REF" --recipe image-recipes/atoll-host/image.toml \
    --format "$f" --output "$W/atoll.$f" --json > "$W/$f.json"
  t1=$(now)
  BUILD[$f]=$(secs "$t0" "$t1")
  SIZE[$f]=$(( $(stat -c %b "$W/atoll.$f") * 512 / 1048576 ))
done
declare -A BOOT
for fw in bios uefi; do
  flag=; [ $fw = uefi ] && flag=--uefi
  t0=$(now)
  $T/atoll-vm "$W/atoll.qcow2" $flag > /dev/null 2> "$W/boot-$fw.log"
  t1=$(now)
  BOOT[$fw]=$(grep -o 'after [0-9]*s' "$W/boot-$fw.log" | head -1)
done
cat <<REPORT

image benchmark ($(nproc) cores, TCG), reference recipe, virtual size $(python3 -c 'import json;print(json.load(open("'"$W"'/raw.json"))["virtual_size"]>>20)') MiB
| measure | raw | qcow2 |
| --- | --- | --- |
| build time | ${BUILD[raw]}s | ${BUILD[qcow2]}s |
| size on disk | ${SIZE[raw]} MiB | ${SIZE[qcow2]} MiB |
boot to ready (multi-user, no failed unit, guest agent up), qcow2: BIOS ${BOOT[bios]}, UEFI ${BOOT[uefi]}
phases raw: $(python3 -c 'import json;print(json.load(open("'"$W"'/raw.json"))["timings"])')
phases qcow2: $(python3 -c 'import json;print(json.load(open("'"$W"'/qcow2.json"))["timings"])')
REPORT
