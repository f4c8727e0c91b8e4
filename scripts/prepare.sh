#!/usr/bin/env bash
# Everything `npm start` and `npm test` need on a fresh Debian 12 machine, once and idempotently:
# host packages (QEMU 10 from bookworm-backports and the rest), npm dependencies, the build,
# and the guest images. A second run with nothing changed takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[prepare] %s\n' "$*" >&2; }

bash scripts/setup-host.sh

lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f node_modules/.visor-lock-hash ] || [ "$(cat node_modules/.visor-lock-hash)" != "$lock_hash" ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.visor-lock-hash
fi

log "building"
npx tsc -p tsconfig.json

bash scripts/build-guests.sh
