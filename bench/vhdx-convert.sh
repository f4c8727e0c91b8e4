#!/usr/bin/env bash
# VHDX → raw conversion: Visor's convertToRaw against `qemu-img convert -O raw`, on the same
# dynamic VHDX (2 GiB virtual, 1.3 GiB of real file data from /usr, made by qemu-img), run
# alternately in one run; prints both throughputs and ours/qemu-img. The method (and why it is
# fair) is in lib/convert-bench.sh.
#
#   bench/vhdx-convert.sh            # ROUNDS=7, work files in /var/tmp/visor-vhdx-bench
#   ROUNDS=3 BENCH_DIR=/tmp/b bench/vhdx-convert.sh
NAME=vhdx QEMU_FMT=vhdx CREATE_OPTS=subformat=dynamic VIRTUAL=2G DATA_MIB=1300 DATA_AT_MIB=256
source "$(dirname "$0")/lib/convert-bench.sh"
