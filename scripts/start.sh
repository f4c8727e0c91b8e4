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

daemon_pid() {
  curl -fsS --unix-socket "$VISOR_RUN/visord.sock" http://visord/v1/daemon 2>/dev/null |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).pid)}catch{}})'
}
web_up() { curl -fsS -o /dev/null "http://$listen/" 2>/dev/null; }

if ! web_up; then
  pid=$(daemon_pid || true)
  if [ -n "$pid" ]; then
    log "a daemon without the web endpoint runs (pid $pid); restarting it with --listen $listen (VMs keep running)"
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  log "starting visord (web endpoint on http://$listen)"
  setsid "$visor" daemon --listen "$listen" >>"$VISOR_RUN/visord.log" 2>&1 < /dev/null &
  for _ in $(seq 1 100); do
    web_up && break
    sleep 0.1
  done
  web_up || { log "visord did not come up; see $VISOR_RUN/visord.log"; tail -5 "$VISOR_RUN/visord.log" >&2; exit 1; }
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
