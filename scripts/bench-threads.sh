#!/usr/bin/env bash
# One sensor on several threads: `-j 1` against `-j J` on the same generated capture, as one
# file, as one sensor's rotated files, or those files zstd-compressed.
#
# The machine is shared and noisy, so the figure that matters is the ratio measured in the same
# run: the two commands alternate, round after round, and the report gives the median of the
# per-round ratios wall(-j 1) / wall(-j J) (and median wall times and peak RSS for scale). Every
# round also checks that reset.log is the same bytes for both.
#
# Usage: bash scripts/bench-threads.sh [options]
#   -s, --size SIZE      capture size (e.g. 1GiB, 256MiB; default 1GiB)
#   -f, --files K        rotated files of one sensor (default 1)
#   -z, --zstd           compress the files with zstd (needs the zstd tool)
#   -j, --threads J      threads compared with one (default 2)
#   -r, --reps N         timed rounds (default 5)
#   -x, --extra ARGS     more rstscope arguments for both commands (e.g. "--split-min 64MiB")
#   -d, --dir DIR        work dir, captures cached by size/files (default /tmp/rstscope-bench)
#       --no-build       use the existing target/release binaries
set -euo pipefail

die() { echo "bench-threads: error: $*" >&2; exit 2; }
SIZE=1GiB FILES=1 ZSTD=0 THREADS=2 REPS=5 EXTRA="" WORK=/tmp/rstscope-bench NO_BUILD=0
while (($#)); do
    case $1 in
        -s | --size) SIZE=${2:?}; shift 2 ;;
        -f | --files) FILES=${2:?}; shift 2 ;;
        -z | --zstd) ZSTD=1; shift ;;
        -j | --threads) THREADS=${2:?}; shift 2 ;;
        -r | --reps) REPS=${2:?}; shift 2 ;;
        -x | --extra) EXTRA=${2:?}; shift 2 ;;
        -d | --dir) WORK=${2:?}; shift 2 ;;
        --no-build) NO_BUILD=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown option $1" ;;
    esac
done
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $NO_BUILD == 1 ]] || cargo build --release --quiet -p rstscope -p rstscope-gen
BIN=$TARGET_DIR/release/rstscope
GEN=$TARGET_DIR/release/rstscope-gen
case ${SIZE,,} in
    *gib) BYTES=$(( ${SIZE%[gG]i[bB]} * 1073741824 )) ;;
    *mib) BYTES=$(( ${SIZE%[mM]i[bB]} * 1048576 )) ;;
    *) BYTES=$SIZE ;;
esac
mkdir -p "$WORK"
CAP=$WORK/threads-$BYTES-files$FILES
if [[ ! -d $CAP ]]; then
    "$GEN" bench "$CAP.tmp" --bytes "$BYTES" --files "$FILES" --seed 1 >/dev/null 2>&1 ||
        die "rstscope-gen failed"
    mv "$CAP.tmp" "$CAP"
fi
IN=$CAP
if [[ $ZSTD == 1 ]]; then
    command -v zstd >/dev/null || die "zstd is not installed"
    IN=$CAP-zst
    if [[ ! -d $IN ]]; then
        mkdir -p "$IN.tmp"
        for f in "$CAP"/*.pcap; do zstd -q -3 "$f" -o "$IN.tmp/$(basename "$f").zst"; done
        mv "$IN.tmp" "$IN"
    fi
fi
# Settled files: rstscope maps only files older than two minutes.
touch -d '10 minutes ago' "$IN"/*
cat "$IN"/* >/dev/null
OUT=$WORK/out-threads
ratios=() w1=() wj=() r1=() rj=()
run() { # THREADS OUTDIR -> "wall rss_kb"
    /usr/bin/time -f "%e %M" -o "$WORK/time.$$" "$BIN" -q -j "$1" $EXTRA -o "$2" "$IN" ||
        die "rstscope -j $1 failed"
    cat "$WORK/time.$$"
}
for ((i = 1; i <= REPS; i++)); do
    read -r a ra < <(run 1 "$OUT-1")
    read -r b rb < <(run "$THREADS" "$OUT-$THREADS")
    cmp -s "$OUT-1/reset.log" "$OUT-$THREADS/reset.log" || die "reset.log differs between -j 1 and -j $THREADS"
    ratios+=("$(echo "$a / $b" | bc -l)") w1+=("$a") wj+=("$b") r1+=("$ra") rj+=("$rb")
    printf 'round %d: -j 1 %.3f s, -j %d %.3f s, ratio %.3f\n' "$i" "$a" "$THREADS" "$b" "${ratios[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
par=$(python3 -c "import json;print(json.load(open('$OUT-$THREADS/reset_summary.json'))['parallel'])")
echo "input: $IN ($FILES file(s), $SIZE$([[ $ZSTD == 1 ]] && echo ', zstd'))"
printf 'median -j 1 / -j %d: %.3f (walls %.3f / %.3f s; peak RSS %d / %d KiB)\n' "$THREADS" \
    "$(median "${ratios[@]}")" "$(median "${w1[@]}")" "$(median "${wj[@]}")" \
    "$(median "${r1[@]}")" "$(median "${rj[@]}")"
echo "parallel (last -j $THREADS run): $par"
