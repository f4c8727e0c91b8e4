#!/usr/bin/env bash
# Live storage move: a 1 GiB raw disk of the running tiny guest moved to a new file (QEMU's
# blockdev-mirror through engine/qemu moveStorage), against `cp` of the same file in the same
# run (both from a cold page cache, both synced). Then, with the guest writing (dd of 8 MiB
# chunks of random data, fsynced), the move again, and the guest's own write throughput during
# each move against before it. Medians of ROUNDS rounds. Prints the figures and the ratios.
# Goal: move >= 0.8x cp. Needs root (drop_caches) and guests/out/tiny-x64.vhdx.
#
#   bench/storage-move.sh                 # SIZE_MIB=1024 ROUNDS=3, work files in /var/tmp/visor-move-bench
#   SIZE_MIB=256 BENCH_DIR=/tmp/mb bench/storage-move.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-/var/tmp/visor-move-bench}
SIZE_MIB=${SIZE_MIB:-1024}
ROUNDS=${ROUNDS:-3}
RUNNER="$ROOT/dist/bench/storage-move-run.js"
[ -f "$ROOT/guests/out/tiny-x64.vhdx" ] || { echo "guests/out/tiny-x64.vhdx is not built (scripts/build-guests.sh)" >&2; exit 1; }
(cd "$ROOT" && npx tsc -p . >/dev/null) || true
[ -f "$RUNNER" ] || { echo "build failed: $RUNNER missing" >&2; exit 1; }
cd "$ROOT" && node "$RUNNER" "$WORK" "$SIZE_MIB" "$ROUNDS"
