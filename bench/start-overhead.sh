#!/usr/bin/env bash
# Start overhead: `visor vm start` until the guest's readiness line, against the very same QEMU
# (and storage daemon) command lines started by hand, in one run. Goal: ratio <= 1.02.
source "$(dirname "$0")/lib/instance.sh"
start_daemon
runs=${RUNS:-8}
"$VISOR" vm create so --image tiny-x64 --memory 256M >/dev/null
id=$("$VISOR" vm show so --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).config.id))')
rundir="$VISOR_RUN/vms/$id"
wait_serial="$(dirname "$0")/lib/wait-serial.sh"

# One start through Visor to learn the exact command lines it uses.
"$VISOR" vm start so >/dev/null
"$wait_serial" "$rundir/serial.log" VISOR-GUEST-READY
tr '\0' '\n' < "/proc/$(cat "$rundir/qemu.pid")/cmdline" > "$BENCH_TMP/qemu.argv"
qsd_pid=$(cat "$rundir"/storage/*.pid 2>/dev/null | head -1)
[ -n "$qsd_pid" ] && tr '\0' '\n' < "/proc/$qsd_pid/cmdline" > "$BENCH_TMP/qsd.argv"
"$VISOR" vm stop so --force >/dev/null

cat > "$BENCH_TMP/by-hand.sh" <<SH
#!/usr/bin/env bash
set -e
mkdir -p "$rundir/storage"
[ -f "$BENCH_TMP/qsd.argv" ] && mapfile -t qsd < "$BENCH_TMP/qsd.argv" && "\${qsd[@]}"
mapfile -t qemu < "$BENCH_TMP/qemu.argv"
"\${qemu[@]}"
exec "$wait_serial" "$rundir/serial.log" VISOR-GUEST-READY
SH
cat > "$BENCH_TMP/stop-by-hand.sh" <<SH
#!/usr/bin/env bash
for f in "$rundir/qemu.pid" "$rundir"/storage/*.pid; do [ -f "\$f" ] && kill -9 "\$(cat "\$f")" 2>/dev/null; rm -f "\$f"; done
sleep 0.3; rm -f "$rundir/serial.log"
SH
cat > "$BENCH_TMP/visor-start.sh" <<SH
#!/usr/bin/env bash
set -e
"$VISOR" vm start so >/dev/null
exec "$wait_serial" "$rundir/serial.log" VISOR-GUEST-READY
SH
chmod +x "$BENCH_TMP"/*.sh

# Alternate the two (A B A B ...) so a drift in the machine's load hits both alike.
stop_all() { "$VISOR" vm stop so --force >/dev/null 2>&1 || true; "$BENCH_TMP/stop-by-hand.sh"; }
: > "$BENCH_TMP/a.txt"; : > "$BENCH_TMP/b.txt"
for i in $(seq 1 "$runs"); do
  for which in a b; do
    stop_all
    script="$BENCH_TMP/visor-start.sh"; [ "$which" = b ] && script="$BENCH_TMP/by-hand.sh"
    t0=$EPOCHREALTIME; "$script"; t1=$EPOCHREALTIME
    node -e 'console.log(+process.argv[2] - +process.argv[1])' "$t0" "$t1" >> "$BENCH_TMP/$which.txt"
  done
  echo "round $i: visor $(tail -1 "$BENCH_TMP/a.txt") s, by hand $(tail -1 "$BENCH_TMP/b.txt") s" >&2
done
stop_all
stats() { node -e 'const x=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(Number).sort((a,b)=>a-b);const m=x.length%2?x[(x.length-1)/2]:(x[x.length/2-1]+x[x.length/2])/2;console.log(m)' "$1"; }
ours=$(stats "$BENCH_TMP/a.txt"); base=$(stats "$BENCH_TMP/b.txt")
echo "start-overhead: visor vm start → ready median $(ms "$ours") ms; same QEMU by hand $(ms "$base") ms; ratio $(ratio "$ours" "$base") (goal <= 1.02)"
