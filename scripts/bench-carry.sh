#!/usr/bin/env bash
# What carrying live connections across runs costs: the benchmark capture (rstscope-gen bench)
# cut into rotated files, one sensor; a run with --state over the first half of them leaves a
# carry; then, alternating round after round,
#   cold   rstscope -q -j THREADS -o OUT NEXT_FILE                    (no state)
#   warm   rstscope -q -j THREADS --state COPY -o OUT NEXT_FILE      (reads the carry, runs the
#                                                                    file, writes the new carry)
# with a fresh copy of the state and carry each round. Reported: the carry's size, connections
# and pending rows, the seconds rstscope spent reading and writing it (from its run record,
# rstscope_runs.log: carry_load_seconds, carry_save_seconds) against the cold run's wall time
# (target for the warm start, reading the carry: at most 0.05), and the median per-round ratio
# of the whole runs, warm / cold.
#
# Usage: bash scripts/bench-carry.sh [-s SIZE] [-f FILES] [-r REPS] [-j THREADS] [-d DIR] [--no-build]
#   SIZE default 1GiB, FILES (rotated pieces) default 8, REPS default 7, THREADS default 1,
#   DIR default /tmp/rstscope-bench-carry (the capture and its pieces are kept there and reused).
set -euo pipefail

die() { echo "bench-carry: error: $*" >&2; exit 2; }
note() { echo "bench-carry: $*" >&2; }

SIZE=1GiB
FILES=8
REPS=7
THREADS=1
WORK=/tmp/rstscope-bench-carry
NO_BUILD=0
while (($#)); do
    case $1 in
        -s | --size) SIZE=${2:?}; shift 2 ;;
        -f | --files) FILES=${2:?}; shift 2 ;;
        -r | --reps) REPS=${2:?}; shift 2 ;;
        -j | --threads) THREADS=${2:?}; shift 2 ;;
        -d | --dir) WORK=${2:?}; shift 2 ;;
        --no-build) NO_BUILD=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
((FILES >= 2)) || die "--files must be at least 2"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/page-cache.sh
source "$ROOT/scripts/page-cache.sh"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/rstscope
GEN=$TARGET_DIR/release/rstscope-gen
if [ "$NO_BUILD" = 0 ]; then
    (cd "$ROOT" && cargo build --release --quiet -p rstscope -p rstscope-gen)
fi
[ -x "$BIN" ] && [ -x "$GEN" ] || die "no release binaries in $TARGET_DIR/release"

CAP=$WORK/capture-$SIZE
mkdir -p "$CAP"
if [ ! -f "$CAP/bench-000.pcap" ]; then
    note "generating a $SIZE capture in $CAP"
    "$GEN" bench "$CAP" --bytes "$SIZE" --files 1 --seed 1 2>"$WORK/gen.log" ||
        { cat "$WORK/gen.log" >&2; die "rstscope-gen failed"; }
fi
PIECES=$WORK/pieces-$SIZE-$FILES
if [ ! -f "$PIECES/done" ]; then
    note "cutting it into $FILES rotated files (equal packet counts) in $PIECES"
    rm -rf "$PIECES"
    mkdir -p "$PIECES"
    python3 "$ROOT/scripts/cut-pcap.py" "$CAP/bench-000.pcap" "$PIECES" "$FILES"
    touch "$PIECES/done"
fi
date_back "$PIECES"/*.pcap
HALF=$((FILES / 2))
NEXT=$(printf '%s/edge-%03d.pcap' "$PIECES" "$HALF")

# The carry after the first half of the files.
BASE=$WORK/base
rm -rf "$BASE" "$WORK/next"
mkdir -p "$BASE/in" "$WORK/next"
for ((i = 0; i < HALF; i++)); do
    ln "$(printf '%s/edge-%03d.pcap' "$PIECES" "$i")" "$BASE/in/"
done
ln "$NEXT" "$WORK/next/"
"$BIN" -q -j "$THREADS" --state "$BASE/state.json" -o "$BASE/out" "$BASE/in"
carry=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['carry']['file'])" "$BASE/state.json")
settle_cache "$NEXT" "$BASE/$carry"

ms() { echo $(($(date +%s%N) / 1000000)); }
cold=()
warm=()
for ((r = 0; r < REPS; r++)); do
    rm -rf "$WORK/cold" "$WORK/warm"
    mkdir -p "$WORK/warm"
    cp "$BASE/state.json" "$BASE/$carry" "$WORK/warm/"
    t0=$(ms)
    "$BIN" -q -j "$THREADS" -o "$WORK/cold" "$WORK/next"
    t1=$(ms)
    "$BIN" -q -j "$THREADS" --state "$WORK/warm/state.json" -o "$WORK/warm/out" "$WORK/next"
    t2=$(ms)
    cold+=($((t1 - t0)))
    warm+=($((t2 - t1)))
done

python3 - "$BASE" "$WORK/warm/out/rstscope_runs.log" "$BASE/$carry" "${cold[*]}" "${warm[*]}" <<'PY'
import json, os, statistics, sys
base, runs, carry, cold, warm = sys.argv[1:6]
cold = [int(x) for x in cold.split()]
warm = [int(x) for x in warm.split()]
first = json.loads(open(os.path.join(base, 'out', 'rstscope_runs.log')).read().splitlines()[-1])
last = json.loads(open(runs).read().splitlines()[-1])
state = json.load(open(os.path.join(base, 'state.json')))
c = state['carry']
ratios = [w / k for w, k in zip(warm, cold)]
print(f"carry after {first['files_processed']} files: {c['bytes']} bytes, {c['connections']} connections, "
      f"{c['rows']} pending rows; written in {first.get('carry_save_seconds')} s (with the state), "
      f"read back in {last.get('carry_load_seconds')} s")
cold_ms = statistics.median(cold)
print(f"one rotated file: cold {cold_ms} ms, warm {statistics.median(warm)} ms (medians of {len(cold)} rounds)")
load = last.get('carry_load_seconds') or 0
save = first.get('carry_save_seconds') or 0
print(f"warm start (reading the carry) / cold run: {1000 * load / cold_ms:.3f}; "
      f"writing the next carry / cold run: {1000 * save / cold_ms:.3f}; target for the warm start <= 0.05")
print(f"whole warm run / cold run: median {statistics.median(ratios):.3f} (rounds: {' '.join(f'{x:.3f}' for x in ratios)}); "
      f"it also delivers the carried connections' rows and carries {c['connections']} on")
PY
