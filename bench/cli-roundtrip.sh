#!/usr/bin/env bash
# A CLI command's round trip against a running daemon (`visor vm list` with 5 VMs defined),
# side by side with Node starting and doing nothing. Goal: visor <= 150 ms.
source "$(dirname "$0")/lib/instance.sh"
start_daemon
for i in 1 2 3 4 5; do "$VISOR" vm create "rt$i" --memory 64M >/dev/null; done
hyperfine -N --warmup 3 --runs 30 --export-json "$BENCH_TMP/rt.json" \
  -n 'visor vm list' "$VISOR vm list" \
  -n 'node (empty)' "node -e 0" >&2
ours=$(median "$BENCH_TMP/rt.json" 0); base=$(median "$BENCH_TMP/rt.json" 1)
echo "cli-roundtrip: visor vm list median $(ms "$ours") ms; node -e 0 median $(ms "$base") ms; ratio $(ratio "$ours" "$base") (goal: visor <= 150 ms)"
