# Sourced by benchmarks: an isolated Visor instance (own VISOR_HOME/VISOR_RUN, own daemon) that
# is torn down on exit, VMs included.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VISOR="$BENCH_ROOT/bin/visor"
BENCH_TMP=$(mktemp -d /tmp/visor-bench-XXXXXX)
export VISOR_HOME="$BENCH_TMP/home" VISOR_RUN="$BENCH_TMP/run" VISOR_IMAGE_PATH="$BENCH_ROOT/guests/out"
mkdir -p "$VISOR_HOME" "$VISOR_RUN"

bench_cleanup() {
  # The daemon's command line does not name BENCH_TMP (only its environment does): by pid.
  if [ -n "${DAEMON_PID:-}" ]; then kill -KILL "$DAEMON_PID" 2>/dev/null || true; fi
  pkill -KILL -f "$BENCH_TMP" 2>/dev/null || true   # QEMU and storage daemons of this instance
  sleep 0.2
  rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT

start_daemon() {
  setsid "$VISOR" daemon "$@" >>"$VISOR_RUN/visord.log" 2>&1 </dev/null &
  DAEMON_PID=$!
  for _ in $(seq 1 200); do "$VISOR" host info --json >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "daemon did not start: $(cat "$VISOR_RUN/visord.log")" >&2; exit 1
}

# median of a hyperfine JSON export's command N (0-based), in seconds
median() { node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1])).results[+process.argv[2]];console.log(r.median)' "$1" "$2"; }
ratio() { node -e 'console.log((+process.argv[1]/+process.argv[2]).toFixed(3))' "$1" "$2"; }
ms() { node -e 'console.log((+process.argv[1]*1000).toFixed(1))' "$1"; }
