#!/usr/bin/env bash
# Daemon memory with 50 VMs defined and 10 running (each with a VHDX disk served by its storage
# daemon; no OS, so the 10 do not compete for the CPU), against an idle Node process.
# Goal: visord <= 60 MiB resident.
source "$(dirname "$0")/lib/instance.sh"
start_daemon
for i in $(seq 1 50); do "$VISOR" vm create "m$i" --disk-size 1G --memory 64M >/dev/null; done
for i in $(seq 1 10); do "$VISOR" vm start "m$i" >/dev/null; done
sleep 5
# bin/visor execs node, so the pid start_daemon saw is the daemon's.
grep -q node "/proc/$DAEMON_PID/comm" || { echo "daemon pid $DAEMON_PID is not node" >&2; exit 1; }
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")
node -e 'setTimeout(()=>{},3000)' & base_pid=$!
sleep 1; base_kib=$(awk '/VmRSS/ {print $2}' /proc/$base_pid/status); wait $base_pid
running=$("$VISOR" vm list --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).filter(v=>v.state==="running").length))')
echo "daemon-memory: visord $((rss_kib / 1024)) MiB resident with 50 defined, $running running; idle node $((base_kib / 1024)) MiB; ratio $(ratio "$rss_kib" "$base_kib") (goal: visord <= 60 MiB)"
