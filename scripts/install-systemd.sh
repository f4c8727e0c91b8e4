#!/usr/bin/env bash
# Installs visord and the VMs' host-shutdown step as systemd units running from this checkout.
# For hosts that boot with systemd (not needed for `npm start` or the tests).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v systemctl >/dev/null || [ ! -d /run/systemd/system ]; then
  echo "install-systemd: this host does not run systemd; start the daemon with 'npm start' instead." >&2
  exit 1
fi
for unit in visord.service visor-vms.service; do
  sed "s|@VISOR_ROOT@|$root|g" "$root/packaging/systemd/$unit" > "/etc/systemd/system/$unit"
done
systemctl daemon-reload
systemctl enable --now visord.service visor-vms.service
echo "install-systemd: visord and visor-vms enabled (VMs run their automatic stop action at host shutdown)."
