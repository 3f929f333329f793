#!/usr/bin/env bash
# Compose benchmark: prints figures, asserts nothing. In one run, on one package set
# (default: the test fixture's; BENCH_TREEFILE overrides):
#   1. naive pipeline: mmdebstrap + dracut (--add ostree) + `ostree commit`
#   2. our full compose (warm package cache, --force)
#   3. our commit phase (`compose-tree commit`) vs `ostree commit` on the same tree
#   4. a no-change re-compose (cached metadata, and with --metadata-expire 0)
# Needs root and ./ci/setup.sh. Work happens under $BENCH_DIR (default target/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
TREEFILE=${BENCH_TREEFILE:-compose-tree/tests/fixtures/small/treefile.toml}
W=$(realpath -m "${BENCH_DIR:-target/bench}")
rm -rf "$W"; mkdir -p "$W"
cargo build --release -q -p compose-tree
BIN=$PWD/target/release/compose-tree
CACHE=$W/cache

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# The package list the treefile resolves to (includes merged), from our own parser.
echo "== warming our package cache (not timed)"
$BIN compose "$TREEFILE" --repo "$W/repo-warm" --cachedir "$CACHE" --json > "$W/warm.json"
PKGS=$(python3 -c 'import tomllib,sys,os
def load(p):
    d = tomllib.load(open(p, "rb"))
    out = []
    inc = d.get("include")
    for i in ([inc] if isinstance(inc, str) else inc or []):
        out += load(os.path.join(os.path.dirname(p), i))
    return out + d.get("packages", [])
print(",".join(dict.fromkeys(load(sys.argv[1]))))' "$TREEFILE")
SOURCES=$(ls -d "$CACHE"/apt/*/etc/sources.list.d/atoll.sources | head -1)

echo "== naive pipeline: mmdebstrap + dracut + ostree commit ($PKGS)"
t0=$(now)
mmdebstrap --mode=root --variant=minbase --include="$PKGS" bookworm "$W/naive" "$SOURCES" > "$W/naive.log" 2>&1
t1=$(now)
KVER=$(ls "$W/naive/usr/lib/modules" | head -1)
chroot "$W/naive" dracut --no-hostonly --add ostree --force "/boot/initramfs-$KVER.img" "$KVER" >> "$W/naive.log" 2>&1
rm -rf "$W/naive/dev/"*
t2=$(now)
ostree --repo="$W/repo-naive" init --mode=archive
ostree --repo="$W/repo-naive" commit --branch=naive "$W/naive" > /dev/null
t3=$(now)
NAIVE=$(secs "$t0" "$t3")

echo "== our full compose (--force, warm package cache)"
t0=$(now)
$BIN compose "$TREEFILE" --repo "$W/repo-ours" --cachedir "$CACHE" --force --json > "$W/ours.json"
t1=$(now)
OURS=$(secs "$t0" "$t1")
OURS_COMMIT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["timings"]["commit"])' "$W/ours.json")

echo "== commit phase on the same tree: ostree commit vs compose-tree commit (2 rounds each)"
tar -C "$W/naive" -cf /dev/null .   # page cache warm for both
best_ostree=999999; best_ours=999999
for round in 1 2; do
  rm -rf "$W/c-ostree" "$W/c-ours"
  ostree --repo="$W/c-ostree" init --mode=archive
  t0=$(now); ostree --repo="$W/c-ostree" commit --branch=bench "$W/naive" > /dev/null; t1=$(now)
  s=$(secs "$t0" "$t1"); best_ostree=$(awk -v a="$s" -v b="$best_ostree" 'BEGIN{print (a<b)?a:b}')
  t0=$(now); $BIN commit "$W/naive" --repo "$W/c-ours" --ref bench --json > /dev/null; t1=$(now)
  s=$(secs "$t0" "$t1"); best_ours=$(awk -v a="$s" -v b="$best_ours" 'BEGIN{print (a<b)?a:b}')
done

echo "== no-change re-compose"
t0=$(now); $BIN compose "$TREEFILE" --repo "$W/repo-ours" --cachedir "$CACHE" > /dev/null; t1=$(now)
NOOP=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
t0=$(now); $BIN compose "$TREEFILE" --repo "$W/repo-ours" --cachedir "$CACHE" --metadata-expire 0 > /dev/null; t1=$(now)
NOOP_REFRESH=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')

cat <<REPORT

compose benchmark ($(nproc) cores), package set: $PKGS
| measure                               | ours    | peer                     | ratio (target) |
| ------------------------------------- | ------- | ------------------------ | -------------- |
| full compose                          | ${OURS}s | ${NAIVE}s naive pipeline | $(ratio "$OURS" "$NAIVE") (<= 1.0) |
| commit phase, same tree (best of 2)   | ${best_ours}s | ${best_ostree}s ostree commit | $(ratio "$best_ours" "$best_ostree") (<= 1.0) |
| no-change re-compose (cached metadata)| ${NOOP}s | -                        | (<= 1 s)       |
| no-change re-compose (refresh, expire 0) | ${NOOP_REFRESH}s | -               | (<= 1 s)       |
our phase timings: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["timings"])' "$W/ours.json") (commit phase inside compose: ${OURS_COMMIT}s)
REPORT
