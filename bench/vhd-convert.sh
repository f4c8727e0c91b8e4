#!/usr/bin/env bash
# VHD → raw conversion: Visor's convertToRaw against `qemu-img convert -f vpc -O raw`, on the
# same 1 GiB dynamic VHD (made by qemu-img; ~700 MiB of real file data from /usr, the rest
# holes), side by side in one hyperfine run. Prints both throughputs (virtual bytes per second,
# median) and the ratio. Checks first that both produce the same bytes.
#
#   bench/vhd-convert.sh                 # RUNS=7, work files in /var/tmp/visor-vhd-bench
#   RUNS=3 BENCH_DIR=/tmp/b bench/vhd-convert.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-/var/tmp/visor-vhd-bench}
RUNS=${RUNS:-7}
CLI="$ROOT/dist/bench/vhd-convert-cli.js"
IMG="$WORK/bench.vhd"
OUT="$WORK/out.raw"
mkdir -p "$WORK"
for tool in qemu-img hyperfine; do command -v $tool >/dev/null || { echo "$tool is not installed" >&2; exit 1; }; done
[ -f "$CLI" ] || (cd "$ROOT" && npx tsc -p . >/dev/null || true)
[ -f "$CLI" ] || { echo "build failed: $CLI missing" >&2; exit 1; }

if [ ! -f "$IMG" ]; then
  echo "making the test image (once) ..." >&2
  truncate -s 1G "$WORK/src.raw"
  # Real data: the bytes of installed files, 700 MiB of them, from 128 MiB on; the rest is a hole.
  tar cf - /usr/lib /usr/share 2>/dev/null | head -c 700M |
    dd of="$WORK/src.raw" bs=4M seek=32 conv=notrunc iflag=fullblock status=none || true
  qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on "$WORK/src.raw" "$IMG"
  rm -f "$WORK/src.raw"
fi
SIZE=$(qemu-img info --output=json -f vpc "$IMG" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)["virtual-size"]))')

# Same bytes first: a fast wrong answer is no answer.
qemu-img convert -f vpc -O raw "$IMG" "$WORK/check-qemu.raw"
node "$CLI" "$IMG" "$WORK/check-ours.raw"
cmp "$WORK/check-qemu.raw" "$WORK/check-ours.raw" || { echo "outputs differ" >&2; exit 1; }
rm -f "$WORK/check-qemu.raw" "$WORK/check-ours.raw"

# Each run starts from no output file and no dirty page cache left by the previous one.
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$WORK/h.json" --prepare "sh -c 'rm -f $OUT; sync'" \
  -n 'visor convertToRaw' "node $CLI $IMG $OUT" \
  -n 'qemu-img convert -f vpc -O raw' "qemu-img convert -f vpc -O raw $IMG $OUT" >&2
rm -f "$OUT"

node -e '
const size = Number(process.argv[1]);
const [ours, qemu] = JSON.parse(require("fs").readFileSync(process.argv[2])).results;
const mib = (t) => (size / t / 2 ** 20).toFixed(0);
console.log(`vhd-convert: ${(size / 2 ** 30).toFixed(2)} GiB virtual dynamic VHD, ${ours.times.length} runs each, medians`);
const cpu = (r) => `(CPU user ${r.user.toFixed(3)} s + system ${r.system.toFixed(3)} s, mean)`;
console.log(`  visor convertToRaw:             ${ours.median.toFixed(3)} s  ${mib(ours.median)} MiB/s  ${cpu(ours)}`);
console.log(`  qemu-img convert -f vpc -O raw: ${qemu.median.toFixed(3)} s  ${mib(qemu.median)} MiB/s  ${cpu(qemu)}`);
console.log(`  ratio (qemu-img time / visor time; >1 means visor is faster): ${(qemu.median / ours.median).toFixed(2)}`);
' "$SIZE" "$WORK/h.json"
rm -f "$WORK/h.json"
