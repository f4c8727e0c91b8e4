#!/usr/bin/env bash
# `npm start`: prepares the machine, starts visord with the web endpoint, and boots a demo VM.
# Idempotent: a daemon or demo VM that already runs is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '[start] %s\n' "$*" >&2; }

bash scripts/prepare.sh

export VISOR_HOME=${VISOR_HOME:-/var/lib/visor}
export VISOR_RUN=${VISOR_RUN:-/run/visor}
listen=${VISOR_LISTEN:-127.0.0.1:7380}
visor="$root/bin/visor"

ln -sf "$visor" /usr/local/bin/visor 2>/dev/null || true
mkdir -p "$VISOR_HOME" "$VISOR_RUN"

if ! "$visor" host info --json >/dev/null 2>&1 || ! curl -fsS -o /dev/null "http://$listen/healthz" 2>/dev/null; then
  if "$visor" host info --json >/dev/null 2>&1; then
    log "a daemon without the web endpoint runs; restarting it with --listen $listen (VMs keep running)"
    pkill -TERM -f "visor(d)? daemon" || true
    sleep 1
  fi
  log "starting visord (web endpoint on http://$listen)"
  setsid "$visor" daemon --listen "$listen" >>"$VISOR_RUN/visord.log" 2>&1 < /dev/null &
  for _ in $(seq 1 100); do
    "$visor" host info --json >/dev/null 2>&1 && break
    sleep 0.1
  done
fi

if ! "$visor" vm show demo --json >/dev/null 2>&1; then
  log "creating the demo VM from tiny-x64"
  "$visor" vm create demo --image tiny-x64 --memory 256M --notes "Demo VM created by npm start"
fi
state=$("$visor" vm show demo --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).state))')
if [ "$state" != running ]; then
  log "starting the demo VM"
  "$visor" vm start demo
fi
log "waiting for the demo VM's guest to be ready"
for _ in $(seq 1 120); do
  "$visor" vm exec demo -- true >/dev/null 2>&1 && break
  sleep 1
done
"$visor" vm exec demo -- uname -a

token=$(cat "$VISOR_HOME/api-token" 2>/dev/null || true)
cat <<MSG

Visor is running.
  Web Manager:  http://$listen/#token=$token
  CLI:          visor vm list        (also bin/visor in this checkout)
  Demo VM:      visor vm show demo;  visor vm serial demo  (Ctrl-] detaches)
  Daemon log:   $VISOR_RUN/visord.log
MSG
