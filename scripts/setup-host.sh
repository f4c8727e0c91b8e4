#!/usr/bin/env bash
# Installs what Visor needs from Debian's packages, once and idempotently.
# QEMU >= 8.2 comes from bookworm-backports (plain bookworm has 7.2).
# Safe to run again: it only adds what is missing.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "run as root (apt-get needs it)"; exit 1; }

HOST_PACKAGES=(
  qemu-system-x86 qemu-utils qemu-block-extra   # from backports, see below
  ovmf seabios ipxe-qemu swtpm swtpm-tools
  qemu-guest-agent busybox-static
  # guest image building
  syslinux syslinux-common syslinux-efi extlinux mtools dosfstools fdisk e2fsprogs
  cpio xz-utils zstd kmod binutils file
  # tests and benchmarks: libyal's VHD/VHDX reader as an oracle; real userspace storage servers
  # (NFS, sshfs share, iSCSI) for the remote-disk tests
  libvhdi-utils hyperfine socat iproute2 procps ca-certificates curl
  nfs-ganesha nfs-ganesha-vfs rpcbind sshfs openssh-server openssh-client tgt fuse3
)
BACKPORTS_PACKAGES=(qemu-system-x86 qemu-utils qemu-block-extra)
STAMP=/var/lib/visor-setup.stamp
WANT_STAMP="v2 ${HOST_PACKAGES[*]}"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT_STAMP" ] && command -v qemu-system-x86_64 >/dev/null; then
  log "host packages already installed"
  exit 0
fi

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
if [ "$codename" = bookworm ]; then
  src=/etc/apt/sources.list.d/visor-backports.sources
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding bookworm-backports to apt's sources"
    cat >"$src" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
fi
dpkg --print-foreign-architectures | grep -qx i386 || dpkg --add-architecture i386

# A mirror can be mid-sync on one index for a moment: retry, then check that what we need is
# installable instead of trusting apt-get update's exit code.
for attempt in 1 2 3 4 5; do
  if apt-get update -q >/tmp/visor-apt-update.log 2>&1; then break; fi
  log "apt-get update failed (attempt $attempt); retrying"
  sleep 2
done
for pkg in "${HOST_PACKAGES[@]}" linux-image-amd64 linux-image-686 busybox-static:i386 qemu-guest-agent:i386; do
  policy=$(apt-cache policy "$pkg" 2>/dev/null || true)   # grep -q on a pipe would SIGPIPE apt-cache
  if ! grep -q 'Candidate: [^(]' <<<"$policy"; then
    log "package $pkg is not installable from apt's sources (see /tmp/visor-apt-update.log)"; exit 1
  fi
done

log "installing packages (QEMU from bookworm-backports)"
if [ "$codename" = bookworm ]; then
  apt-get install -y -q --no-install-recommends -t bookworm-backports "${BACKPORTS_PACKAGES[@]}"
fi
apt-get install -y -q --no-install-recommends "${HOST_PACKAGES[@]}"

ver=$(qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9][0-9.]*\).*/\1/p')
if [ "$(printf '%s\n8.2\n' "$ver" | sort -V | head -n1)" != 8.2 ]; then
  log "QEMU $ver is older than 8.2: bookworm-backports did not provide QEMU 10"; exit 1
fi
log "QEMU $ver ready"
echo "$WANT_STAMP" >"$STAMP"
