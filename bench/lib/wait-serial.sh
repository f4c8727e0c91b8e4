#!/usr/bin/env bash
# wait-serial.sh FILE PATTERN [TIMEOUT_S]: returns once FILE has a line matching PATTERN.
file=$1 pattern=$2 limit=${3:-180}
end=$((SECONDS + limit))
until grep -q -- "$pattern" "$file" 2>/dev/null; do
  [ $SECONDS -lt $end ] || { echo "wait-serial: no '$pattern' in $file after ${limit}s" >&2; exit 1; }
  sleep 0.01
done
