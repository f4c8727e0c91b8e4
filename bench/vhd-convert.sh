#!/usr/bin/env bash
# VHD → raw conversion: Visor's convertToRaw against `qemu-img convert -f vpc -O raw`, on the
# same dynamic VHD (1 GiB virtual, 700 MiB of real file data from /usr, made by qemu-img), run
# alternately in one run; prints both throughputs and ours/qemu-img. The method (and why it is
# fair) is in lib/convert-bench.sh.
#
#   bench/vhd-convert.sh             # ROUNDS=7, work files in /var/tmp/visor-vhd-bench
#   ROUNDS=3 BENCH_DIR=/tmp/b bench/vhd-convert.sh
NAME=vhd QEMU_FMT=vpc CREATE_OPTS=subformat=dynamic,force_size=on VIRTUAL=1G DATA_MIB=700 DATA_AT_MIB=128
source "$(dirname "$0")/lib/convert-bench.sh"
