#!/usr/bin/env bash
# `visor vm create` with a new 8G dynamic VHDX disk, side by side with `qemu-img create` of the
# same disk alone: what the VM model, validation, persistence and the API add.
source "$(dirname "$0")/lib/instance.sh"
start_daemon
n=0
hyperfine -N --warmup 2 --runs 20 --export-json "$BENCH_TMP/create.json" \
  --prepare "sh -c '\"$VISOR\" vm delete c1 >/dev/null 2>&1; rm -f $BENCH_TMP/d.vhdx'" \
  -n 'visor vm create' "$VISOR vm create c1 --disk-size 8G --memory 64M" \
  -n 'qemu-img create' "qemu-img create -q -f vhdx -o subformat=dynamic $BENCH_TMP/d.vhdx 8G" >&2
ours=$(median "$BENCH_TMP/create.json" 0); base=$(median "$BENCH_TMP/create.json" 1)
echo "vm-create: visor vm create median $(ms "$ours") ms; qemu-img create median $(ms "$base") ms; ratio $(ratio "$ours" "$base")"
