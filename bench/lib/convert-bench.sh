# Sourced by vhdx-convert.sh and vhd-convert.sh: Visor's convertToRaw against `qemu-img convert
# -O raw` on one dynamic image with real data, alternating in one run. The caller sets:
#   NAME        vhdx | vhd (work folder, CLI dist/bench/convert-cli.js $NAME, image bench.$NAME)
#   QEMU_FMT    qemu-img's name for the format (vhdx, vpc)
#   CREATE_OPTS qemu-img create options for the image
#   VIRTUAL     virtual size (truncate syntax); DATA_MIB MiB of file bytes from /usr at DATA_AT_MIB
#
# Fairness: the same image and the same output path (so the same filesystem) for both; before
# every run the output is removed and `sync`ed, so no run pays for the previous one's dirty
# pages; the image is in the page cache for both (the byte check reads it first); the order
# flips every round and the figure is the median of the rounds. Both are timed the same way:
# bash's clock around fork+exec of the command, no shell in between. Ours runs the way visord
# runs it: the daemon's V8 flags (bin/visor) and libuv's default pool. Two figures for ours:
# the whole node process (Node.js start-up and module loading included: the conservative
# one), and the convertToRaw call inside it, opening the image included (what visord, which is
# already running, pays for a conversion; the CLI prints it). qemu-img is always the whole
# process, as visord would pay for running it.
#
#   ROUNDS=7 (default) BENCH_DIR=/var/tmp/visor-$NAME-bench
# Progress goes to stderr; the result lines to stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${BENCH_DIR:-/var/tmp/visor-$NAME-bench}
ROUNDS=${ROUNDS:-${RUNS:-7}}
CLI="$ROOT/dist/bench/convert-cli.js"
IMG="$WORK/bench.$NAME"
OUT="$WORK/out.raw"
# The V8 flags bin/visor gives the daemon, which is where conversions run.
DAEMON_FLAGS="--max-semi-space-size=1 --single-threaded --no-opt --no-maglev --no-sparkplug"
grep -q -- "$DAEMON_FLAGS" "$ROOT/bin/visor" || echo "note: bin/visor no longer runs the daemon with: $DAEMON_FLAGS" >&2

mkdir -p "$WORK"
command -v qemu-img >/dev/null || { echo "qemu-img is not installed" >&2; exit 1; }
[ -f "$CLI" ] || (cd "$ROOT" && npx tsc -p . >/dev/null || true)
[ -f "$CLI" ] || { echo "build failed: $CLI missing" >&2; exit 1; }

if [ ! -f "$IMG" ]; then
  echo "making the test image (once) ..." >&2
  truncate -s "$VIRTUAL" "$WORK/src.raw"
  # Real data: the bytes of installed files, from DATA_AT_MIB on; the rest is a hole.
  tar cf - /usr/lib /usr/share 2>/dev/null | head -c "${DATA_MIB}M" |
    dd of="$WORK/src.raw" bs=1M seek="$DATA_AT_MIB" conv=notrunc iflag=fullblock status=none || true
  qemu-img convert -f raw -O "$QEMU_FMT" -o "$CREATE_OPTS" "$WORK/src.raw" "$IMG"
  rm -f "$WORK/src.raw"
fi
SIZE=$(qemu-img info --output=json -f "$QEMU_FMT" "$IMG" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)["virtual-size"]))')

QEMU_CMD=(qemu-img convert -f "$QEMU_FMT" -O raw "$IMG" "$OUT")
# shellcheck disable=SC2206 # the flags are words
OURS_CMD=(node $DAEMON_FLAGS "$CLI" "$NAME" "$IMG" "$OUT")

# Same bytes first: a fast wrong answer is no answer.
"${QEMU_CMD[@]}" && mv "$OUT" "$WORK/check-qemu.raw"
"${OURS_CMD[@]}" >/dev/null && mv "$OUT" "$WORK/check-ours.raw"
cmp "$WORK/check-qemu.raw" "$WORK/check-ours.raw" || { echo "outputs differ" >&2; exit 1; }
rm -f "$WORK/check-qemu.raw" "$WORK/check-ours.raw"

time_one() { # prints the wall-clock seconds of one run of "$@" after the same preparation, then what it printed
  rm -f "$OUT"; sync
  local start=$EPOCHREALTIME said
  said=$("$@")
  local end=$EPOCHREALTIME
  echo "$(echo "$end - $start" | bc -l)${said:+ $said}"
}

qemu_times=(); ours_times=(); call_times=(); node_times=()
for round in $(seq "$ROUNDS"); do
  if (( round % 2 )); then
    q=$(time_one "${QEMU_CMD[@]}"); o=$(time_one "${OURS_CMD[@]}")
  else
    o=$(time_one "${OURS_CMD[@]}"); q=$(time_one "${QEMU_CMD[@]}")
  fi
  read -r o c <<<"$o" # the process, and the convertToRaw call inside it (the CLI prints that)
  # shellcheck disable=SC2086
  n=$(time_one node $DAEMON_FLAGS -e 0) # what Node.js itself costs to start, for reading the figures
  qemu_times+=("$q"); ours_times+=("$o"); call_times+=("$c"); node_times+=("$n")
  printf 'round %d: qemu-img %.3f s, visor %.3f s (its convertToRaw call %.3f s; node start-up %.3f s)\n' "$round" "$q" "$o" "$c" "$n" >&2
done
rm -f "$OUT"

node -e '
const [name, size, q, o, c, n] = [process.argv[1], Number(process.argv[2]), ...process.argv.slice(3, 7).map((a) => a.split(" ").map(Number))];
const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const mib = (t) => (size / t / 2 ** 20).toFixed(0);
const qm = median(q), om = median(o), cm = median(c);
const all = (a) => a.map((t) => t.toFixed(3)).join(" ");
console.log(`${name}-convert: ${(size / 2 ** 30).toFixed(2)} GiB virtual, ${q.length} alternating rounds, medians (virtual bytes / s)`);
console.log(`  qemu-img convert -O raw (process):  ${qm.toFixed(3)} s  ${mib(qm)} MiB/s   (rounds: ${all(q)})`);
console.log(`  visor convertToRaw (node process):  ${om.toFixed(3)} s  ${mib(om)} MiB/s   (rounds: ${all(o)})`);
console.log(`  ratio ours/qemu-img, processes:     ${(qm / om).toFixed(2)}x  (>= 1 means Visor is as fast or faster)`);
console.log(`  visor convertToRaw call alone:      ${cm.toFixed(3)} s  ${mib(cm)} MiB/s   (what visord, already running, pays)`);
console.log(`  ratio ours/qemu-img, call:          ${(qm / cm).toFixed(2)}x  (qemu-img still counted as a whole process)`);
console.log(`  Node.js start-up alone: ${median(n).toFixed(3)} s; load average ${require("os").loadavg()[0].toFixed(1)}`);
' "$NAME" "$SIZE" "${qemu_times[*]}" "${ours_times[*]}" "${call_times[*]}" "${node_times[*]}"
