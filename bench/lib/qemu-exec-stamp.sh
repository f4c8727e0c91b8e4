#!/bin/bash
# A stand-in for qemu-system-x86_64 that notes the wall-clock time of its exec (bash's
# EPOCHREALTIME: no fork), then becomes the real QEMU. Used to time the control plane.
if [ -n "${VISOR_EXEC_STAMP:-}" ] && [ "${1:-}" != "--version" ] && [ "${1:-}" != "-version" ]; then
  echo "$EPOCHREALTIME" >> "$VISOR_EXEC_STAMP"
fi
[ "${1:-}" = "--stamp-only" ] && exit 0   # to time this wrapper's own start
exec /usr/bin/qemu-system-x86_64 "$@"
