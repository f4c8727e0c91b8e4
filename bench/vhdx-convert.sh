#!/usr/bin/env bash
# VHDX → raw conversion: Visor's convertToRaw against `qemu-img convert -O raw`, on the same
# dynamic VHDX (2 GiB virtual, ~1.3 GiB of real file data from /usr, made by qemu-img), run
# alternately in one run. Prints both throughputs (virtual bytes per second, median of the
# rounds) and ours/qemu-img. Uses hyperfine for the timing when it is installed.
#
#   bench/vhdx-convert.sh            # ROUNDS=7, work files in /var/tmp/visor-vhdx-bench
#   ROUNDS=3 BENCH_DIR=/tmp/b bench/vhdx-convert.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-/var/tmp/visor-vhdx-bench}
ROUNDS=${ROUNDS:-7}
CLI="$ROOT/dist/bench/vhdx-convert-cli.js"
IMG="$WORK/bench.vhdx"
OUT="$WORK/out.raw"
mkdir -p "$WORK"
command -v qemu-img >/dev/null || { echo "qemu-img is not installed" >&2; exit 1; }
[ -f "$CLI" ] || (cd "$ROOT" && npx tsc -p . >/dev/null || true)
[ -f "$CLI" ] || { echo "build failed: $CLI missing" >&2; exit 1; }

if [ ! -f "$IMG" ]; then
  echo "making the test image (once) ..."
  truncate -s 2G "$WORK/src.raw"
  # Real data: the bytes of installed files, 1.3 GiB of them, from 256 MiB on; the rest is a hole.
  tar cf - /usr/lib /usr/share 2>/dev/null | head -c 1300M |
    dd of="$WORK/src.raw" bs=4M seek=64 conv=notrunc iflag=fullblock status=none || true
  qemu-img convert -f raw -O vhdx -o subformat=dynamic "$WORK/src.raw" "$IMG"
  rm -f "$WORK/src.raw"
fi
SIZE=$(qemu-img info --output=json "$IMG" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)["virtual-size"]))')

# Same bytes first: a fast wrong answer is no answer.
qemu-img convert -f vhdx -O raw "$IMG" "$WORK/check-qemu.raw"
UV_THREADPOOL_SIZE=16 node "$CLI" "$IMG" "$WORK/check-ours.raw"
cmp "$WORK/check-qemu.raw" "$WORK/check-ours.raw" || { echo "outputs differ" >&2; exit 1; }
rm -f "$WORK/check-qemu.raw" "$WORK/check-ours.raw"

QEMU_CMD="qemu-img convert -f vhdx -O raw $IMG $OUT"
# libuv's pool must be sized before node starts: as many threads as requests in flight and more.
OURS_CMD="env UV_THREADPOOL_SIZE=16 node $CLI $IMG $OUT"
# Each run starts from no output file and no dirty page cache left by the previous one.
PREPARE="rm -f $OUT; sync"

time_one() { # prints seconds for one run of "$1"
  if command -v hyperfine >/dev/null; then
    hyperfine --runs 1 --style none --prepare "$PREPARE" --export-json "$WORK/h.json" "$1" >/dev/null 2>&1
    node -e 'console.log(require(process.argv[1]).results[0].mean)' "$WORK/h.json"
  else
    eval "$PREPARE"
    /usr/bin/time -f %e sh -c "$1" 2>&1 >/dev/null | tail -1
  fi
}

qemu_times=(); ours_times=(); node_times=()
for round in $(seq "$ROUNDS"); do
  if (( round % 2 )); then
    q=$(time_one "$QEMU_CMD"); o=$(time_one "$OURS_CMD")
  else
    o=$(time_one "$OURS_CMD"); q=$(time_one "$QEMU_CMD")
  fi
  n=$(time_one "node -e 0") # what Node.js itself costs to start, for reading the figures
  qemu_times+=("$q"); ours_times+=("$o"); node_times+=("$n")
  printf 'round %d: qemu-img %.3f s, visor %.3f s (node start-up %.3f s)\n' "$round" "$q" "$o" "$n"
done
rm -f "$OUT" "$WORK/h.json"

node -e '
const [size, q, o, n] = [Number(process.argv[1]), ...process.argv.slice(2, 5).map((a) => a.split(" ").map(Number))];
const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const mib = (t) => size / t / 2 ** 20;
const qm = median(q), om = median(o);
console.log(`image: ${(size / 2 ** 30).toFixed(1)} GiB virtual, ${q.length} alternating rounds, median times`);
console.log(`qemu-img convert -O raw: ${qm.toFixed(3)} s  ${mib(qm).toFixed(0)} MiB/s`);
console.log(`visor convertToRaw:      ${om.toFixed(3)} s  ${mib(om).toFixed(0)} MiB/s`);
console.log(`ratio ours/qemu-img:     ${(qm / om).toFixed(2)}x`);
console.log(`(Node.js start-up alone: ${median(n).toFixed(3)} s of the visor time; load average: ${require("os").loadavg()[0].toFixed(1)})`);
' "$SIZE" "${qemu_times[*]}" "${ours_times[*]}" "${node_times[*]}"
