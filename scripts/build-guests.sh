#!/usr/bin/env bash
# Builds Visor's tiny test guests from Debian packages into guests/out/:
#   tiny-x64.vhdx  x86_64, boots under SeaBIOS (generation 1) and OVMF (generation 2)
#   tiny-x86.vhdx  i686,   boots under SeaBIOS (generation 1)
# each with <name>.json beside it. See guests/README.md.
#
# Usage: scripts/build-guests.sh [--force] [name...]
#
# Packages are fetched with `apt-get download` (never installed), cached in guests/build/debs and
# unpacked with dpkg-deb. A second run with the same recipe and the same apt indexes is a no-op.
# The raw disk image is reproducible (fixed SOURCE_DATE_EPOCH, ids, UUIDs, sorted cpio); its
# sha256 is recorded as rawSha256 (the VHDX conversion itself adds random GUIDs).
# Host tools: apt-get, dpkg-deb, readelf (binutils), depmod/modprobe (kmod), cpio, zstd,
# sfdisk (fdisk), mkfs.fat (dosfstools), mtools, syslinux, syslinux-efi, mke2fs (e2fsprogs),
# qemu-img (qemu-utils). Root is not needed except for apt-get's index state (read only).
set -euo pipefail
shopt -s nullglob

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
G=$ROOT/guests
BUILD=$G/build
OUT=$G/out
SELF=$ROOT/scripts/build-guests.sh

export SOURCE_DATE_EPOCH=1700000000     # 2023-11-14 22:13:20 UTC: every timestamp in the image
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH
export LC_ALL=C TZ=UTC
umask 022

STEP=start
T0=$(date +%s%N)
log() { local t=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[build-guests %3d.%ds] %s\n' $((t / 1000)) $((t % 1000 / 100)) "$*" >&2; }
step() { STEP=$1; log "$1"; }
die() { printf '[build-guests] ERROR in step "%s": %s\n' "$STEP" "$*" >&2; exit 1; }
trap 'rc=$?; [ $rc -eq 0 ] || printf "[build-guests] FAILED in step \"%s\" (exit %s, line %s)\n" "$STEP" "$rc" "$LINENO" >&2' EXIT

# ---- recipe ------------------------------------------------------------------------------
ALL_IMAGES=(tiny-x64 tiny-x86)
image_vars() {   # sets the per-image variables for $1
  case $1 in
    tiny-x64)
      DEB_ARCH=amd64; ARCH_SUFFIX=""; TRIPLET=x86_64-linux-gnu; KFLAVOUR=amd64
      ARCH_NAME=x86_64; GENERATIONS='[1,2]'; WITH_EFI=1
      DESCRIPTION="Tiny x86_64 Linux test guest: Debian's amd64 kernel, a busybox initramfs with qemu-guest-agent; SYSLINUX boot for BIOS (generation 1) and UEFI (generation 2)" ;;
    tiny-x86)
      DEB_ARCH=i386; ARCH_SUFFIX=":i386"; TRIPLET=i386-linux-gnu; KFLAVOUR=686
      ARCH_NAME=i686; GENERATIONS='[1]'; WITH_EFI=0
      DESCRIPTION="Tiny 32-bit (i686) Linux test guest: Debian's 686 kernel, a busybox initramfs with qemu-guest-agent; SYSLINUX boot for BIOS (generation 1)" ;;
    *) die "unknown image '$1' (known: ${ALL_IMAGES[*]})" ;;
  esac
}
# Kernel modules wanted in the initramfs (their dependencies are added from modules.dep).
# Disk drivers first: their probing runs while the rest loads. '?name': only if the kernel has it
# (virtio_mem is x86_64-only).
MODULES=(
  ata_piix ata_generic ahci virtio_pci virtio_scsi virtio_blk sd_mod sr_mod cdrom isofs
  ext4 vfat
  virtio_net e1000 virtio_balloon virtio_console ?virtio_mem virtio_rng
  9pnet 9pnet_virtio netfs 9p
  button evdev
  bochs
)
# cryptomgr.notests: skip the crypto self-tests (~0.5 s of boot under TCG); mitigations=off: a
# throw-away test guest does not need them and TCG runs faster without.
KERNEL_CMDLINE="console=tty0 console=ttyS0,115200 cryptomgr.notests mitigations=off"
DISK_MIB=65          # whole disk
BOOT_START_MIB=1     # partition 1: FAT16 "VISORBOOT", type 0xEF, active: SYSLINUX + EFI\BOOT
BOOT_MIB=48
DATA_MIB=16          # partition 2: ext4 "VISORDATA", mounted at /data by the guest
DISK_ID=0x56495352                      # MBR disk identifier ("VISR")
FAT_ID=56495342                         # FAT volume id 5649-5342
DATA_UUID=5649534f-5244-4154-4100-000000000001
DATA_HASH_SEED=5649534f-5244-4154-4100-000000000002
RECIPE_FILES=("$SELF")
while IFS= read -r -d '' f; do RECIPE_FILES+=("$f"); done < <(find "$G/rootfs" "$G/boot" -type f -print0 | sort -z)

# ---- arguments -----------------------------------------------------------------------------
FORCE=0; IMAGES=()
for a in "$@"; do
  case $a in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,16p' "$SELF"; exit 0 ;;
    -*) die "unknown option $a" ;;
    *) image_vars "$a"; IMAGES+=("$a") ;;
  esac
done
[ ${#IMAGES[@]} -gt 0 ] || IMAGES=("${ALL_IMAGES[@]}")

step "check host tools"
for t in apt-get apt-cache dpkg-deb readelf depmod modprobe cpio zstd sfdisk mkfs.fat mcopy mmd mlabel syslinux mke2fs qemu-img sha256sum; do
  command -v "$t" >/dev/null || die "missing host tool '$t' (run scripts/setup-host.sh)"
done
SYSLINUX_MBR=/usr/lib/SYSLINUX/mbr.bin
SYSLINUX_EFI=/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi
SYSLINUX_E64=/usr/lib/syslinux/modules/efi64/ldlinux.e64
for f in "$SYSLINUX_MBR" "$SYSLINUX_EFI" "$SYSLINUX_E64"; do [ -f "$f" ] || die "missing $f (packages syslinux, syslinux-efi)"; done
mkdir -p "$BUILD/debs" "$BUILD/x" "$BUILD/resolve" "$OUT"

# ---- package resolution (cached on the apt index state) ------------------------------------
apt_state() {
  { dpkg --print-architecture; dpkg --print-foreign-architectures
    stat -c '%n %s %Y' /var/lib/apt/lists/*_Packages* /var/lib/apt/lists/*Release 2>/dev/null
    printf '%s\n' "$@"; } | sha256sum | cut -c1-32
}

# Pick, for each package, the newest version from bookworm, bookworm-updates or bookworm-security:
# never backports, and never "whatever happens to be installed on the host" (apt's candidate can be
# a newer installed backport, which would make the image depend on the build host).
# stdin: apt-cache madison output; stdout: "pkg version"
pick_versions() {
  awk -F' [|] ' '{ gsub(/^ +| +$/, "", $1); gsub(/^ +| +$/, "", $2); p=$1; sub(/:i386$/, "", p) }
       $3 ~ /backports/ || $3 ~ /dpkg\/status/ { next }
       !(p in v) { v[p]=$2; order[++n]=p }
       END { for (i=1; i<=n; i++) print order[i], v[order[i]] }'
}

# resolve IMAGE -> file with lines "pkg arch version debfile sha256 size" (cached per apt index state)
resolve() {
  local img=$1 key file tmp meta metaver kpkg libs l
  image_vars "$img"
  key=$(apt_state resolve-v2 "$DEB_ARCH" "$KFLAVOUR")
  file=$BUILD/resolve/$img-$key.list
  if [ -s "$file" ]; then echo "$file"; return; fi
  step "$img: resolve packages with apt (linux-image-$KFLAVOUR, busybox-static, qemu-guest-agent and its libraries)"
  libs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
           --no-replaces --no-enhances --no-pre-depends "qemu-guest-agent$ARCH_SUFFIX" |
         grep -v '^ ' | sed 's/:i386$//' | grep '^lib' | sort -u)
  [ -n "$libs" ] || die "cannot resolve qemu-guest-agent's dependencies"
  tmp=$file.tmp.$$
  apt-cache madison "linux-image-$KFLAVOUR$ARCH_SUFFIX" "busybox-static$ARCH_SUFFIX" "qemu-guest-agent$ARCH_SUFFIX" \
      $(for l in $libs; do printf '%s%s ' "$l" "$ARCH_SUFFIX"; done) | pick_versions >"$tmp.v"
  meta=linux-image-$KFLAVOUR
  metaver=$(awk -v p="$meta" '$1 == p { print $2 }' "$tmp.v")
  [ -n "$metaver" ] || die "no bookworm version of $meta$ARCH_SUFFIX in apt's indexes (for i386: dpkg --add-architecture i386; then apt-get update)"
  kpkg=$(apt-cache show "$meta$ARCH_SUFFIX=$metaver" | sed -n 's/^Depends: \(linux-image-[0-9][^ ,:]*\).*/\1/p' | head -1)
  [ -n "$kpkg" ] || die "cannot find the kernel package behind $meta $metaver"
  # --print-uris: 'URI' file size SHA256:hash — exact versions, nothing downloaded yet
  apt-get download --print-uris "$kpkg$ARCH_SUFFIX" \
      $(awk -v m="$meta" -v s="$ARCH_SUFFIX" '$1 != m { printf "%s%s=%s ", $1, s, $2 }' "$tmp.v") |
    awk '{ f=$2; sub(/^SHA256:/, "", $4); n=split(f, p, "_"); v=p[2]; gsub(/%3a/, ":", v); a=p[3]; sub(/\.deb$/, "", a);
           print p[1], a, v, f, $4, $3 }' | sort >"$tmp"
  rm -f "$tmp.v"
  grep -q '^linux-image-' "$tmp" && grep -q '^qemu-guest-agent ' "$tmp" && grep -q '^busybox-static ' "$tmp" ||
    die "apt-get download --print-uris gave too little (see $tmp)"
  mv "$tmp" "$file"
  echo "$file"
}

# fetch debs named in a resolve list (cached; apt verifies hashes; retried when a mirror hiccups)
fetch_debs() {
  local list=$1 want=() pkg arch ver f sha size attempt
  while read -r pkg arch ver f sha size; do
    [ -f "$BUILD/debs/$f" ] || want+=("$pkg:$arch=$ver")
  done <"$list"
  [ ${#want[@]} -gt 0 ] || return 0
  step "download ${#want[@]} packages with apt-get download"
  local d; d=$(mktemp -d "$BUILD/debs/.dl.XXXXXX")
  for attempt in 1 2 3 4 5; do
    if (cd "$d" && apt-get download -q -o APT::Sandbox::User=root "${want[@]}" >"$d/.log" 2>&1); then break; fi
    [ $attempt -lt 5 ] || { cat "$d/.log" >&2; die "apt-get download failed 5 times"; }
    log "apt-get download failed (attempt $attempt), retrying in $((attempt * 3)) s"; tail -3 "$d/.log" >&2
    sleep $((attempt * 3))
  done
  while read -r pkg arch ver f sha size; do
    [ -f "$BUILD/debs/$f" ] && continue
    [ -f "$d/$f" ] || die "apt-get download did not produce $f"
    echo "$sha  $d/$f" | sha256sum -c --quiet - || die "checksum mismatch for $f"
    mv "$d/$f" "$BUILD/debs/$f"
  done <"$list"
  rm -rf "$d"
}

# unpack a deb once into $BUILD/x/<file stem>; prints the directory
unpack() {
  local f=$1 dir=$BUILD/x/${1%.deb}
  if [ ! -f "$dir/.unpacked" ]; then
    rm -rf "$dir" "$dir.tmp"; mkdir -p "$dir.tmp"
    dpkg-deb -x "$BUILD/debs/$f" "$dir.tmp" || die "dpkg-deb -x $f failed"
    touch "$dir.tmp/.unpacked"; mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

# ---- helpers for the initramfs ----------------------------------------------------------------
# copy ROOTFS-relative path $2 from tree $1 into $3, following symlinks inside the tree
copy_from_tree() {
  local src=$1 rel=${2#/} dst=$3 tgt
  [ -e "$dst/$rel" ] || [ -L "$dst/$rel" ] && return 0
  mkdir -p "$dst/$(dirname "$rel")"
  if [ -L "$src/$rel" ]; then
    cp -P "$src/$rel" "$dst/$rel"
    tgt=$(readlink "$src/$rel")
    case $tgt in /*) copy_from_tree "$src" "$tgt" "$dst" ;; *) copy_from_tree "$src" "$(dirname "$rel")/$tgt" "$dst" ;; esac
  else
    cp "$src/$rel" "$dst/$rel"
  fi
}

# newc cpio entry with no data (directories, device nodes); used for /dev/console
cpio_entry() {  # name mode(octal) nlink rdevmajor rdevminor ino
  local name=$1 mode=$((8#$2)) ns=$(( ${#1} + 1 )) pad
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    "$6" "$mode" 0 0 "$3" "$SOURCE_DATE_EPOCH" 0 0 0 "$4" "$5" "$ns" 0
  printf '%s\0' "$name"
  pad=$(( (4 - (110 + ns) % 4) % 4 )); head -c "$pad" /dev/zero
}

# ---- build one image ----------------------------------------------------------------------------
build_image() {
  local img=$1 list key json tmp pkg arch ver f sha size
  image_vars "$img"
  list=$(resolve "$img")
  key=$( { printf 'build-v1 %s\n' "$img"; cat "$list"; for f in "${RECIPE_FILES[@]}"; do printf '%s\n' "${f#$ROOT/}"; cat "$f"; done; } | sha256sum | cut -c1-64)
  json=$OUT/$img.json
  if [ $FORCE = 0 ] && [ -f "$OUT/$img.vhdx" ] && [ -f "$json" ] && grep -q "\"buildKey\": \"$key\"" "$json"; then
    log "$img: up to date (buildKey ${key:0:12})"
    return 0
  fi
  fetch_debs "$list"

  tmp=$(mktemp -d "$BUILD/tmp.$img.XXXXXX")
  TMPDIRS+=("$tmp")
  local R=$tmp/initramfs
  mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,run,tmp,root,data,lib/modules,var}
  ln -s ../run "$R/var/run"; ln -s ../tmp "$R/var/tmp"; ln -s ../run "$R/var/log"
  declare -A used=()
  local kdeb kdir kver bbdir qgadir
  kdeb=$(awk '$1 ~ /^linux-image-/ {print $4}' "$list")
  [ -n "$kdeb" ] || die "no kernel package in $list"
  step "$img: unpack packages"
  kdir=$(unpack "$kdeb")
  kver=$(cd "$kdir/lib/modules" && ls | head -1)
  [ -f "$kdir/boot/vmlinuz-$kver" ] || die "no vmlinuz-$kver in $kdeb"
  used[$(awk '$1 ~ /^linux-image-/ {print $1}' "$list")]=$(awk '$1 ~ /^linux-image-/ {print $3}' "$list")
  [ -f "$kdir/lib/modules/$kver/modules.dep" ] || depmod -b "$kdir" "$kver" || die "depmod on $kver failed"

  step "$img: kernel modules for $kver"
  local mods=$tmp/modules.order m line
  : >"$mods"
  for m in "${MODULES[@]}"; do
    if [[ $m == \?* ]]; then
      m=${m#\?}
      modprobe -d "$kdir" -S "$kver" --show-depends "$m" >"$tmp/dep.$m" 2>&1 || { log "$img: no module $m in $kver, skipped"; continue; }
    fi
    modprobe -d "$kdir" -S "$kver" --show-depends "$m" >"$tmp/dep.$m" 2>&1 || die "module $m not found in $kver: $(cat "$tmp/dep.$m")"
    while read -r line; do
      case $line in insmod\ *) f=${line#insmod }; f=${f%% *}; f=${f#$kdir/lib/modules/$kver/}
        grep -qxF "$f" "$mods" || echo "$f" >>"$mods" ;; esac
    done <"$tmp/dep.$m"
  done
  while read -r f; do
    mkdir -p "$R/lib/modules/$kver/$(dirname "$f")"
    cp "$kdir/lib/modules/$kver/$f" "$R/lib/modules/$kver/$f"
  done <"$mods"
  cp "$kdir/lib/modules/$kver/modules.builtin" "$kdir/lib/modules/$kver/modules.builtin.modinfo" "$R/lib/modules/$kver/"
  cp "$mods" "$R/lib/modules/$kver/modules.order"
  depmod -b "$R" "$kver" || die "depmod for the initramfs failed"
  sed -e 's|.*/||' -e 's|\.ko$||' "$mods" >"$R/etc/modules.list"   # names, dependency order
  log "$img: $(wc -l <"$mods") modules"

  step "$img: busybox"
  while read -r pkg arch ver f sha size; do
    case $pkg in busybox-static) bbdir=$(unpack "$f"); used[$pkg]=$ver ;; qemu-guest-agent) qgadir=$(unpack "$f"); used[$pkg]=$ver ;; esac
  done <"$list"
  cp "$bbdir/bin/busybox" "$R/bin/busybox"
  ln -s busybox "$R/bin/sh"
  ln -s bin/busybox "$R/init"

  step "$img: qemu-guest-agent and its libraries (readelf NEEDED, recursively)"
  local -a libdirs=() libpkgs=()
  while read -r pkg arch ver f sha size; do
    case $pkg in lib*) d=$(unpack "$f"); libdirs+=("$d"); libpkgs+=("$pkg=$ver") ;; esac
  done <"$list"
  cp "$qgadir/usr/sbin/qemu-ga" "$R/usr/sbin/qemu-ga"
  local interp queue=("usr/sbin/qemu-ga") seen=" " cur need found i d
  interp=$(readelf -lW "$R/usr/sbin/qemu-ga" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
  [ -n "$interp" ] || die "qemu-ga has no ELF interpreter?"
  for i in "${!libdirs[@]}"; do
    d=${libdirs[$i]}
    if [ -e "$d$interp" ] || [ -L "$d$interp" ]; then copy_from_tree "$d" "$interp" "$R"; used[${libpkgs[$i]%%=*}]=${libpkgs[$i]#*=}; fi
  done
  [ -e "$R$interp" ] || die "ELF interpreter $interp not found in the library packages"
  while [ ${#queue[@]} -gt 0 ]; do
    cur=${queue[0]}; queue=("${queue[@]:1}")
    for need in $(readelf -dW "$R/$cur" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      case $seen in *" $need "*) continue ;; esac
      seen="$seen$need "
      found=
      for i in "${!libdirs[@]}"; do
        d=${libdirs[$i]}
        for sub in lib/$TRIPLET usr/lib/$TRIPLET lib usr/lib; do
          if [ -e "$d/$sub/$need" ]; then
            copy_from_tree "$d" "$sub/$need" "$R"
            found=$sub/$need; used[${libpkgs[$i]%%=*}]=${libpkgs[$i]#*=}; break 2
          fi
        done
      done
      [ -n "$found" ] || die "library $need (needed by $cur) is in none of the downloaded packages"
      queue+=("$found")
    done
  done
  log "$img: qemu-ga needs:$seen"

  step "$img: initramfs tree and cpio"
  cp -R "$G/rootfs/." "$R/"
  cat >"$R/etc/visor-guest.conf" <<EOF
# written by scripts/build-guests.sh
KVER=$kver
GUEST_NAME=$img
LIBPATH=/lib/$TRIPLET:/usr/lib/$TRIPLET
EOF
  # normalise: modes from the executable bit only, fixed times
  find "$R" -type d -exec chmod 0755 {} +
  find "$R" -type f -perm /111 -exec chmod 0755 {} +
  find "$R" -type f ! -perm /111 -exec chmod 0644 {} +
  chmod 0755 "$R"/etc/init.d/* "$R"/etc/acpi/PWRF/*
  chmod 1777 "$R/tmp"; chmod 0700 "$R/root"
  find "$R" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  {
    cpio_entry dev 40755 2 0 0 1
    cpio_entry dev/console 20600 1 5 1 2
    cpio_entry TRAILER!!! 0 1 0 0 0
    (cd "$R" && find . -mindepth 1 -printf '%P\0' | sort -z |
       cpio --null --create --format=newc --reproducible --owner=0:0 --quiet)
  } | zstd -q -12 -T1 -c >"$tmp/initrd.img"   # -19 is 10x slower for 10% less
  log "$img: initramfs $(du -h --apparent-size "$tmp/initrd.img" | cut -f1) (zstd), tree $(du -sh --apparent-size "$R" | cut -f1)"

  step "$img: FAT boot partition (SYSLINUX$([ $WITH_EFI = 1 ] && echo ' + EFI\BOOT\BOOTX64.EFI'))"
  local boot=$tmp/boot.img stage=$tmp/bootfiles fw
  mkdir -p "$stage"
  cp "$kdir/boot/vmlinuz-$kver" "$stage/vmlinuz"
  cp "$tmp/initrd.img" "$stage/initrd.img"
  fw=BIOS; [ $WITH_EFI = 1 ] && fw="BIOS or UEFI"
  sed -e "s|@NAME@|$img|g" -e "s|@KVER@|$kver|g" -e "s|@CMDLINE@|$KERNEL_CMDLINE|g" -e "s|@FIRMWARE@|\$FW|g" \
    "$G/boot/syslinux.cfg.in" >"$tmp/syslinux.cfg.in"
  sed "s|\$FW|BIOS|" "$tmp/syslinux.cfg.in" >"$stage/syslinux.cfg"
  if [ $WITH_EFI = 1 ]; then
    mkdir -p "$stage/EFI/BOOT"
    cp "$SYSLINUX_EFI" "$stage/EFI/BOOT/BOOTX64.EFI"
    cp "$SYSLINUX_E64" "$stage/EFI/BOOT/ldlinux.e64"
    sed "s|\$FW|UEFI|" "$tmp/syslinux.cfg.in" >"$stage/EFI/BOOT/syslinux.cfg"
  fi
  find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  truncate -s $((BOOT_MIB << 20)) "$boot"
  mkfs.fat -F 16 -i "$FAT_ID" -h $((BOOT_START_MIB << 11)) "$boot" >/dev/null || die "mkfs.fat failed"
  mlabel -i "$boot" ::VISORBOOT
  (cd "$stage" && mcopy -i "$boot" -m -s -Q ./* ::/) || die "mcopy into the FAT partition failed"
  syslinux --install "$boot" || die "syslinux --install failed"

  step "$img: ext4 data partition VISORDATA"
  truncate -s "${DATA_MIB}M" "$tmp/data.img"
  mke2fs -q -F -t ext4 -L VISORDATA -U "$DATA_UUID" -E "hash_seed=$DATA_HASH_SEED,root_owner=0:0" \
    "$tmp/data.img" || die "mke2fs failed"

  step "$img: disk image (MBR, SYSLINUX mbr.bin) and VHDX"
  local raw=$tmp/$img.raw
  truncate -s $((DISK_MIB << 20)) "$raw"
  sfdisk -q --no-reread --no-tell-kernel "$raw" <<EOF || die "sfdisk failed"
label: dos
label-id: $DISK_ID
unit: sectors
start=$((BOOT_START_MIB << 11)), size=$((BOOT_MIB << 11)), type=ef, bootable
start=$(((BOOT_START_MIB + BOOT_MIB) << 11)), size=$((DATA_MIB << 11)), type=83
EOF
  dd if="$SYSLINUX_MBR" of="$raw" bs=440 count=1 conv=notrunc status=none
  dd if="$boot" of="$raw" bs=1M seek=$BOOT_START_MIB conv=notrunc,sparse status=none
  dd if="$tmp/data.img" of="$raw" bs=1M seek=$((BOOT_START_MIB + BOOT_MIB)) conv=notrunc,sparse status=none
  local rawsha; rawsha=$(sha256sum "$raw" | cut -d' ' -f1)
  qemu-img convert -q -f raw -O vhdx -o subformat=dynamic "$raw" "$tmp/$img.vhdx" || die "qemu-img convert to vhdx failed"
  qemu-img check -q -f vhdx "$tmp/$img.vhdx" || die "qemu-img check of the new vhdx failed"

  step "$img: metadata and publish"
  {
    printf '{\n'
    printf '  "name": "%s",\n' "$img"
    printf '  "description": "%s",\n' "$DESCRIPTION"
    printf '  "architecture": "%s",\n' "$ARCH_NAME"
    printf '  "format": "vhdx",\n'
    printf '  "generations": %s,\n' "$GENERATIONS"
    printf '  "readyLine": "VISOR-GUEST-READY",\n'
    printf '  "kernelVersion": "%s",\n' "$kver"
    printf '  "kernelCommandLine": "%s",\n' "$KERNEL_CMDLINE"
    printf '  "packages": {'
    local sep="" k
    for k in $(printf '%s\n' "${!used[@]}" | sort); do printf '%s\n    "%s": "%s"' "$sep" "$k" "${used[$k]}"; sep=","; done
    printf '\n  },\n'
    printf '  "diskBytes": %s,\n' $((DISK_MIB << 20))
    printf '  "rawSha256": "%s",\n' "$rawsha"
    printf '  "buildKey": "%s"\n' "$key"
    printf '}\n'
  } >"$tmp/$img.json"
  # publish: the image first, then the json that names its key (a crash in between leaves
  # a json that does not match, so the next run rebuilds)
  rm -f "$json"
  mv -f "$tmp/$img.vhdx" "$OUT/$img.vhdx"
  mv -f "$tmp/$img.json" "$json"
  rm -rf "$tmp"
  log "$img: done: guests/out/$img.vhdx rawSha256 ${rawsha:0:16}…"
}

TMPDIRS=()
cleanup() { local d; for d in "${TMPDIRS[@]}"; do rm -rf "$d"; done; }
trap 'rc=$?; cleanup; [ $rc -eq 0 ] || printf "[build-guests] FAILED in step \"%s\" (exit %s)\n" "$STEP" "$rc" >&2' EXIT

START=$(date +%s.%N)
for img in "${IMAGES[@]}"; do build_image "$img"; done
STEP=done
log "all done in $(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s"
