#!/usr/bin/env bash
# Host benchmark: prints figures, asserts nothing. In one run:
#   1. time to deploy an already-downloaded commit: `host upgrade` vs `ostree admin deploy`,
#      each on its own copy of the same sysroot (best and median of 7 rounds, alternating order);
#   2. bytes `host upgrade` transfers for a one-package update (the test tree + `hello`),
#      with and without a static delta on the server.
# Needs root and ./ci/setup.sh. Served over HTTP on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
W=$(realpath -m "${BENCH_DIR:-target/bench-host}")
CACHE=$(realpath -m "${BENCH_CACHE:-target/bench/cache}")
# Deployment roots carry the immutable flag (libostree sets it); clear it before removing.
rmtree() {
  [ -e "$1" ] || return 0
  find "$1" -mindepth 5 -maxdepth 6 -path '*/ostree/deploy/*/deploy/*' -prune -exec chattr -i {} + 2>/dev/null || true
  rm -rf "$1"
}
rmtree "$W"; mkdir -p "$W/srv"
cargo build --release -q -p compose-tree -p atoll-updater
T=$PWD/target/release
REF="test/$(uname -m)/small"
TF=$PWD/compose-tree/tests/fixtures/small/treefile.toml
S=$W/srv/repo

echo "== composing v1 and v2 (v2 = v1 + hello)"
$T/compose-tree compose "$TF" --repo "$S" --cachedir "$CACHE" > /dev/null
V1=$(ostree --repo="$S" rev-parse "$REF")
printf 'include = "%s"\npackages = ["hello"]\n' "$TF" > "$W/v2.toml"
$T/compose-tree compose "$W/v2.toml" --repo "$S" --cachedir "$CACHE" > /dev/null
V2=$(ostree --repo="$S" rev-parse "$REF")

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 "$PORT" --directory "$W/srv" > /dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 1

# A client sysroot at v1 following the server.
client() {
  local d=$1
  mkdir -p "$d"
  ostree admin init-fs "$d" > /dev/null
  ostree admin os-init atoll --sysroot="$d" > /dev/null
  $T/host --sysroot "$d" remote add atoll "http://127.0.0.1:$PORT/repo" --no-gpg-verify
  ostree --repo="$d/ostree/repo" pull atoll "$V1" > /dev/null
  ostree --repo="$d/ostree/repo" refs --create="atoll:$REF" "$V1"
  ostree admin deploy --sysroot="$d" --os=atoll --karg=root=LABEL=root "atoll:$REF" > /dev/null 2>&1
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) ? a : b }'; }

echo "== bytes for the one-package update, without a static delta"
client "$W/c-nodelta"
NODELTA=$($T/host --sysroot "$W/c-nodelta" upgrade --download-only --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pull"]["bytes_transferred"])')

echo "== bytes with a static delta v1 -> v2 on the server"
ostree --repo="$S" static-delta generate --from="$V1" --to="$V2" > /dev/null
ostree --repo="$S" summary -u
client "$W/c-delta"
DELTA_JSON=$($T/host --sysroot "$W/c-delta" upgrade --download-only --json)
DELTA=$(echo "$DELTA_JSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pull"]["bytes_transferred"])')
PARTS=$(echo "$DELTA_JSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pull"]["delta_parts"])')

ROUNDS=${BENCH_ROUNDS:-7}
echo "== deploy time, objects already local ($ROUNDS rounds, alternating which goes first)"
host_times=(); ostree_times=()
for round in $(seq "$ROUNDS"); do
  rmtree "$W/a"; rmtree "$W/b"
  cp -a "$W/c-delta" "$W/a"; cp -a "$W/c-delta" "$W/b"
  sync
  run_host() { t0=$(now); $T/host --sysroot "$W/a" upgrade > /dev/null; t1=$(now); host_times+=("$(secs "$t0" "$t1")"); }
  run_ostree() { t0=$(now); ostree admin deploy --sysroot="$W/b" --os=atoll "atoll:$REF" > /dev/null 2>&1; t1=$(now); ostree_times+=("$(secs "$t0" "$t1")"); }
  if ((round % 2)); then run_host; run_ostree; else run_ostree; run_host; fi
done
stat_of() { printf '%s\n' "${@:2}" | sort -n | awk -v what="$1" '{ v[NR] = $1 } END { if (what == "min") print v[1]; else print v[int((NR + 1) / 2)] }'; }
best_host=$(stat_of min "${host_times[@]}"); best_ostree=$(stat_of min "${ostree_times[@]}")
med_host=$(stat_of median "${host_times[@]}"); med_ostree=$(stat_of median "${ostree_times[@]}")

cat <<REPORT

host benchmark ($(nproc) cores): test tree, v1 -> v2 adds the hello package
| measure | host | peer | ratio (target) |
| --- | --- | --- | --- |
| deploy an already-pulled commit, best of $ROUNDS | ${best_host}s | ${best_ostree}s ostree admin deploy | $(awk -v a="$best_host" -v b="$best_ostree" 'BEGIN{printf "%.2f", a/b}') (<= 1.0) |
| same, median of $ROUNDS | ${med_host}s | ${med_ostree}s ostree admin deploy | $(awk -v a="$med_host" -v b="$med_ostree" 'BEGIN{printf "%.2f", a/b}') (<= 1.0) |
| bytes pulled, no static delta | $NODELTA | - | - |
| bytes pulled, static delta ($PARTS parts) | $DELTA | - | - |
REPORT
