#!/usr/bin/env bash
# FPGA resources of the match pipeline, measured with yosys (Debian's
# package; not run in CI): synth_xilinx (7-series) at a few sizes, the LUT
# and flip-flop counts written to points.csv, and a least-squares model of
# them (model.toml) that `palisade plan --nic fpga` reads.
#
# The TCAM stage is synthesised in its flip-flop structure (FLOPS = 1:
# every entry its own registers, a match line per entry, a priority
# encoder), at N entries x W key bits; the other stages once, at the
# `fpga` profile's parameters (512-bit stream, 8 range checkers) and, for
# the action stage, at a few rule counts.
#
# Usage: rtl/synth/resources.sh  (from the repository root; about half an
# hour on two cores, under 1 GB of memory)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v yosys >/dev/null || { echo "yosys is not installed (apt-get install yosys)"; exit 1; }
OUT=rtl/synth
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# synth MODULE FILE "PARAMS" -> "luts ffs dsps lutram": LUTs used as logic,
# flip-flops, DSP48E1 slices, LUTs used as RAM (RAM32M/RAM64M: 4 LUTs each).
synth() {
  local top=$1 file=$2 params=$3 log=$TMP/$1.log
  yosys -q -l "$log" -p "read_verilog -defer -DSYNTHESIS $file; chparam $params $top; synth_xilinx -top $top -flatten -family xc7; stat" >/dev/null
  awk '
    /Number of cells:/ { cells = 1; luts = 0; ffs = 0; dsps = 0; ram = 0 }   # the last report counts
    cells && $1 ~ /^LUT[1-6]$/ { luts += $2 }
    cells && $1 ~ /^FD[A-Z]*$/ { ffs += $2 }
    cells && $1 ~ /^DSP48/ { dsps += $2 }
    cells && $1 ~ /^RAM(32|64)M$/ { ram += 4 * $2 }
    cells && $1 ~ /^RAM(32|64)X1[SD]$/ { ram += $2 }
    END { printf "%d %d %d %d\n", luts, ffs, dsps, ram }
  ' "$log"
}

# Points already in points.csv are kept (synthesis of the larger ones takes
# minutes each); FRESH=1 starts over.
if [ "${FRESH:-0}" = 1 ] || [ ! -s "$OUT/points.csv" ]; then
  echo "stage,n,w,luts,ffs,dsps,lutram" > "$OUT/points.csv"
fi
# point STAGE N W MODULE FILE "PARAMS"
point() {
  local stage=$1 n=$2 w=$3 top=$4 file=$5 params=$6 start=$SECONDS
  if grep -q "^$stage,$n,$w," "$OUT/points.csv"; then
    echo "$stage N=$n W=$w: measured already"
    return
  fi
  read -r luts ffs dsps ram < <(synth "$top" "$file" "$params")
  echo "$stage,$n,$w,$luts,$ffs,$dsps,$ram" | tee -a "$OUT/points.csv"
  echo "  ($((SECONDS - start)) s)"
}

# The TCAM at 32-128 entries of 64 and 128 bits, and at 32 and 64 entries
# of the fpga profile's 353 bits (128 x 353 takes yosys 0.23 over 20
# minutes; the model is linear in N x W).
for w in 64 128; do
  for n in 32 64 128; do
    point tcam $n $w palisade_tcam rtl/palisade_tcam.v "-set N $n -set W $w -set FLOPS 1"
  done
done
for n in 32 64; do
  point tcam $n 353 palisade_tcam rtl/palisade_tcam.v "-set N $n -set W 353 -set FLOPS 1"
done
point parser 0 512 palisade_parser rtl/palisade_parser.v "-set DATA_W 512 -set USER_W 64"
point ranges 0 8 palisade_ranges rtl/palisade_ranges.v "-set R 8"
for n in 16 32 64; do
  point action $n 0 palisade_action rtl/palisade_action.v "-set N $n -set RULES $n"
done

python3 rtl/synth/fit.py "$OUT/points.csv" > "$OUT/model.toml"
cat "$OUT/model.toml"
