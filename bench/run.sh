#!/usr/bin/env bash
# Runs every benchmark, each side by side with its baseline, and prints one line of figures each.
# `npm run bench` (after `npm test` or `npm run prepare-host` built everything). ONLY=name runs one.
set -uo pipefail
cd "$(dirname "$0")"
benches=(control-plane cli-roundtrip vm-create start-overhead daemon-memory vhdx-convert vhd-convert storage-move)
status=0
for name in "${benches[@]}"; do
  [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ] && continue
  printf '== %s\n' "$name" >&2
  if [ "$name" = control-plane ]; then node ../dist/bench/control-plane.js || status=1
  else bash "./$name.sh" 2>>"/tmp/visor-bench-$name.log" || { echo "$name failed: see /tmp/visor-bench-$name.log"; status=1; }
  fi
done
exit $status
