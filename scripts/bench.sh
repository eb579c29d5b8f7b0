#!/usr/bin/env bash
# Throughput benchmark: rstscope vs tcpdump on the same generated capture.
#
# The machine this runs on is shared and noisy, so the numbers that matter are ratios measured
# in the same run: the commands are run alternately, round after round, and for every round the
# ratio rstscope/tcpdump is taken; the report gives the median of those per-round ratios (and
# the median wall times, for scale only).
#
# Commands compared (all on the same page-cached capture):
#   rstscope     rstscope -q -j THREADS -o OUT FILE...
#   tcpdump      tcpdump -nn -r FILE -w /dev/null 'tcp[tcpflags] & tcp-rst != 0'
#                (this BPF filter only sees untagged IPv4)
#   tcpdump-ext  the same with a filter that also catches IPv6 and 802.1Q-tagged RSTs
#
# Usage: bash scripts/bench.sh [options]      (from anywhere; Debian + Rust toolchain, as root
#                                              or with sudo if tcpdump/time must be installed)
#   -s, --size SIZE      capture size, e.g. 1GiB, 100MiB, 5000000 (env BENCH_SIZE, default 1GiB)
#   -r, --reps N         timed rounds                            (env BENCH_REPS, default 7)
#   -d, --dir DIR        work dir; captures are cached in it by size+seed+files and reused
#                        (env BENCH_DIR, default /tmp/rstscope-bench)
#   -j, --threads N      rstscope worker threads                 (env BENCH_THREADS, default 1)
#   -S, --seed S         generator seed                          (env BENCH_SEED, default 1)
#   -f, --files K        number of capture files                 (env BENCH_FILES, default 1)
#       --keep-cache     time on the page cache as it is, instead of dropping the capture
#                        from it and reading it back in once (see below)
#                                                                (env BENCH_KEEP_CACHE=1)
#       --no-build       use the existing target/release binaries (env BENCH_NO_BUILD=1)
#   -h, --help
#
# The page cache: both tools read the capture from memory (it is read once, untimed, before the
# rounds). By default the capture is first synced, dropped from the cache and read back in, as
# a nightly run reads yesterday's files from disk: how a file written a moment ago sits in the
# cache varies (scripts/page-cache.sh), and with it rstscope's page faults. --keep-cache skips
# that. A capture just generated is dated back ten minutes (rstscope does not map files
# modified in the last two minutes).
#
# Exit status: 0 when the benchmark ran (whether or not the target is met), non-zero on error.
set -euo pipefail

die() { echo "bench: error: $*" >&2; exit 2; }
note() { echo "bench: $*" >&2; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

SIZE=${BENCH_SIZE:-1GiB}
REPS=${BENCH_REPS:-7}
WORK=${BENCH_DIR:-/tmp/rstscope-bench}
THREADS=${BENCH_THREADS:-1}
SEED=${BENCH_SEED:-1}
FILES=${BENCH_FILES:-1}
NO_BUILD=${BENCH_NO_BUILD:-0}
KEEP_CACHE=${BENCH_KEEP_CACHE:-0}

while (($#)); do
    case $1 in
        -s | --size) SIZE=${2:?}; shift 2 ;;
        -r | --reps) REPS=${2:?}; shift 2 ;;
        -d | --dir) WORK=${2:?}; shift 2 ;;
        -j | --threads) THREADS=${2:?}; shift 2 ;;
        -S | --seed) SEED=${2:?}; shift 2 ;;
        -f | --files) FILES=${2:?}; shift 2 ;;
        --no-build) NO_BUILD=1; shift ;;
        --keep-cache) KEEP_CACHE=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer, not '$REPS'"
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, not '$THREADS'"
[[ $SEED =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, not '$SEED'"
[[ $FILES =~ ^[1-9][0-9]*$ ]] || die "--files must be a positive integer, not '$FILES'"

# Size in bytes, with the same suffixes rstscope-gen accepts (g/gib, m/mib, plain bytes).
size_bytes() {
    local s=${1,,} mult=1 num
    case $s in
        *gib) num=${s%gib}; mult=$((1 << 30)) ;;
        *g) num=${s%g}; mult=$((1 << 30)) ;;
        *mib) num=${s%mib}; mult=$((1 << 20)) ;;
        *m) num=${s%m}; mult=$((1 << 20)) ;;
        *) num=$s ;;
    esac
    [[ $num =~ ^[0-9]+$ ]] || die "cannot parse size '$1' (use e.g. 1GiB, 100MiB, 5000000)"
    echo $((num * mult))
}
BYTES=$(size_bytes "$SIZE")
((BYTES > 0)) || die "size must be positive"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/page-cache.sh
source "$ROOT/scripts/page-cache.sh"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RSTSCOPE=$TARGET_DIR/release/rstscope
GEN=$TARGET_DIR/release/rstscope-gen

PLAIN_FILTER='tcp[tcpflags] & tcp-rst != 0'
EXT_FILTER='(tcp[tcpflags] & tcp-rst != 0) or (ip6 and ip6[6] = 6 and ip6[53] & 4 != 0) or (vlan and ((tcp[tcpflags] & tcp-rst != 0) or (ip6 and ip6[6] = 6 and ip6[53] & 4 != 0)))'

# --- tools -------------------------------------------------------------------------------------
missing=()
command -v tcpdump >/dev/null 2>&1 || missing+=(tcpdump)
[[ -x /usr/bin/time ]] || missing+=(time)
if ((${#missing[@]})); then
    note "installing ${missing[*]}"
    SUDO=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: ${missing[*]}"
        SUDO=(sudo)
    fi
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
TCPDUMP=$(command -v tcpdump)
command -v cargo >/dev/null 2>&1 || die "cargo not found (install the Rust toolchain)"

# --- build -------------------------------------------------------------------------------------
if [[ $NO_BUILD != 1 ]]; then
    note "building release binaries (fat LTO: a few minutes the first time)"
    cargo build --release --quiet -p rstscope -p rstscope-gen
fi
[[ -x $RSTSCOPE && -x $GEN ]] || die "missing $RSTSCOPE or $GEN (run without --no-build)"

# --- capture (cached by size, seed and file count) ----------------------------------------------
mkdir -p "$WORK"
CAP=$WORK/capture-$BYTES-seed$SEED-files$FILES
STAMP=$CAP/.complete
capture_ok() {
    [[ -f $STAMP ]] || return 1
    local kind name want have
    while read -r kind name want; do
        [[ $kind == file ]] || continue
        have=$(stat -c %s "$CAP/$name" 2>/dev/null) || return 1
        [[ $have == "$want" ]] || return 1
    done <"$STAMP"
}
if capture_ok; then
    note "reusing capture $CAP"
else
    note "generating $SIZE capture ($BYTES bytes, seed $SEED, $FILES file(s)) in $CAP"
    rm -rf "$CAP" "$CAP.tmp"
    "$GEN" bench "$CAP.tmp" --bytes "$BYTES" --files "$FILES" --seed "$SEED" 2>"$WORK/gen.log" ||
        { cat "$WORK/gen.log" >&2; die "rstscope-gen failed"; }
    {
        echo "size $BYTES seed $SEED files $FILES"
        for f in "$CAP.tmp"/bench-*.pcap; do
            echo "file $(basename "$f") $(stat -c %s "$f")"
        done
    } >"$CAP.tmp/.stamp"
    sed "s|$CAP.tmp/|$CAP/|" "$WORK/gen.log" >"$CAP.tmp/gen.log"
    mv "$CAP.tmp/.stamp" "$CAP.tmp/.complete"
    date_back "$CAP.tmp"/bench-*.pcap
    mv "$CAP.tmp" "$CAP"
fi
CAPS=("$CAP"/bench-*.pcap)
[[ -f ${CAPS[0]} ]] || die "no capture files in $CAP"
TOTAL_BYTES=0
for f in "${CAPS[@]}"; do TOTAL_BYTES=$((TOTAL_BYTES + $(stat -c %s "$f"))); done

avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
if ((TOTAL_BYTES * 2 / 1024 > avail_kb)); then
    note "warning: capture ($((TOTAL_BYTES >> 20)) MiB) is over half the available memory" \
        "($((avail_kb >> 10)) MiB): runs may read from disk and the timings are not throughput"
fi

# --- scratch -----------------------------------------------------------------------------------
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/rstscope-bench-run.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
OUT=$SCRATCH/out
mkdir -p "$OUT"

# tcpdump reads one file with -r, several with -V LIST (one process either way).
if ((${#CAPS[@]} == 1)); then
    TCPDUMP_IN=(-r "${CAPS[0]}")
else
    printf '%s\n' "${CAPS[@]}" >"$SCRATCH/files.txt"
    TCPDUMP_IN=(-V "$SCRATCH/files.txt")
fi

# Used through the nameref in run().
# shellcheck disable=SC2034
CMD_rstscope=("$RSTSCOPE" -q -j "$THREADS" -o "$OUT" "${CAPS[@]}")
# shellcheck disable=SC2034
CMD_tcpdump=("$TCPDUMP" -nn "${TCPDUMP_IN[@]}" -w /dev/null "$PLAIN_FILTER")
# shellcheck disable=SC2034
CMD_tcpdump_ext=("$TCPDUMP" -nn "${TCPDUMP_IN[@]}" -w /dev/null "$EXT_FILTER")
NAMES=(rstscope tcpdump tcpdump_ext)

now() {
    if [[ -n ${EPOCHREALTIME:-} ]]; then echo "${EPOCHREALTIME/,/.}"; else date +%s.%N; fi
}

# run NAME ROUND: one timed run; appends "round wall user sys maxrss_kb" to $SCRATCH/NAME.tsv.
run() {
    local name=$1 round=$2 t0 t1 cpu
    local -n cmd="CMD_$name"
    rm -f "$OUT/reset.log"
    t0=$(now)
    /usr/bin/time -f '%U %S %M' -o "$SCRATCH/time.out" "${cmd[@]}" >/dev/null 2>"$SCRATCH/err.out" ||
        { cat "$SCRATCH/err.out" >&2; die "$name failed: ${cmd[*]}"; }
    t1=$(now)
    cpu=$(tail -n 1 "$SCRATCH/time.out")
    if [[ $name == rstscope && ! -s $OUT/reset.log ]]; then die "rstscope wrote no reset.log"; fi
    echo "$round $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", b - a}') $cpu" \
        >>"$SCRATCH/$name.tsv"
}

# --- warm-up -----------------------------------------------------------------------------------
if [[ $KEEP_CACHE == 1 ]]; then
    note "warming the page cache (keeping what is cached as it is)"
    cat -- "${CAPS[@]}" >/dev/null
else
    note "dropping the capture from the page cache and reading it back in (as from disk)"
    settle_cache "${CAPS[@]}"
fi
note "warm-up round (not timed)"
for name in "${NAMES[@]}"; do run "$name" 0; done
for name in "${NAMES[@]}"; do : >"$SCRATCH/$name.tsv"; done

# --- timed rounds: alternate, rotating the order so no command always goes first ---------------
for ((i = 1; i <= REPS; i++)); do
    order=()
    for ((k = 0; k < ${#NAMES[@]}; k++)); do
        order+=("${NAMES[(i - 1 + k) % ${#NAMES[@]}]}")
    done
    line="round $i/$REPS:"
    for name in "${order[@]}"; do
        run "$name" "$i"
        line+=" $name $(tail -n 1 "$SCRATCH/$name.tsv" | cut -d' ' -f2)s"
    done
    note "$line"
done

# --- counts and memory (untimed) ---------------------------------------------------------------
rm -f "$OUT/reset.log"
"${CMD_rstscope[@]}" >/dev/null
RST_OURS=$(grep -cv '^#' "$OUT/reset.log" || true)
RST_TCPDUMP=$("$TCPDUMP" -nn "${TCPDUMP_IN[@]}" "$EXT_FILTER" 2>/dev/null | wc -l)
RST_TCPDUMP_PLAIN=$("$TCPDUMP" -nn "${TCPDUMP_IN[@]}" "$PLAIN_FILTER" 2>/dev/null | wc -l)
RST_GEN=$(awk '/RSTs$/ {n += $(NF - 1)} END {print n + 0}' "$CAP/gen.log" 2>/dev/null || echo "?")

peak_rss() { # peak RSS in KiB of one run of the given command
    /usr/bin/time -v -o "$SCRATCH/timev.out" "$@" >/dev/null 2>&1 || die "failed: $*"
    awk -F': ' '/Maximum resident set size/ {print $2}' "$SCRATCH/timev.out"
}
RSS_OURS=$(peak_rss "${CMD_rstscope[@]}")
RSS_OURS_NOMMAP=$(peak_rss "$RSTSCOPE" -q -j "$THREADS" --no-mmap -o "$OUT" "${CAPS[@]}")
RSS_TCPDUMP=$(peak_rss "${CMD_tcpdump_ext[@]}")

# --- report ------------------------------------------------------------------------------------
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
col() { awk -v c="$2" '{print $c}' "$SCRATCH/$1.tsv"; }
# per-round ratio A/B of column 2 (wall) or of columns 3+4 (user+sys)
ratios() {
    awk -v cpu="$3" 'NR == FNR {a[$1] = cpu ? $3 + $4 : $2; next}
        ($1 in a) {b = cpu ? $3 + $4 : $2; if (b > 0) printf "%.6f\n", a[$1] / b}' \
        "$SCRATCH/$1.tsv" "$SCRATCH/$2.tsv"
}
minmax() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.3f-%.3f", lo, hi}'; }

declare -A MED CPU
for name in "${NAMES[@]}"; do
    MED[$name]=$(col "$name" 2 | median)
    CPU[$name]=$(awk '{print $3 + $4}' "$SCRATCH/$name.tsv" | median)
done
R_PLAIN=$(ratios rstscope tcpdump 0 | median)
R_EXT=$(ratios rstscope tcpdump_ext 0 | median)
R_PLAIN_RANGE=$(ratios rstscope tcpdump 0 | minmax)
R_EXT_RANGE=$(ratios rstscope tcpdump_ext 0 | minmax)
RC_PLAIN=$(ratios rstscope tcpdump 1 | median)
RC_EXT=$(ratios rstscope tcpdump_ext 1 | median)

mbps() { awk -v b="$TOTAL_BYTES" -v s="$1" 'BEGIN {if (s > 0) printf "%.0f", b / s / 1e6; else print "-"}'; }
f3() { awk -v x="$1" 'BEGIN {printf "%.3f", x}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f MiB", k / 1024}'; }

echo
echo "rstscope benchmark: ${#CAPS[@]} file(s), $TOTAL_BYTES bytes ($SIZE, seed $SEED) in $CAP"
if [[ $KEEP_CACHE == 1 ]]; then CACHE="page cache warm as left"; else CACHE="page cache warm, read back from disk"; fi
echo "$REPS alternating rounds after 1 warm-up round, $CACHE, rstscope -j $THREADS;" \
    "$(nproc) CPUs, $(uname -r)"
echo "rstscope $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(
    git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo ' (+uncommitted changes)')," \
    "$("$TCPDUMP" --version 2>&1 | head -n 1), $("$TCPDUMP" --version 2>&1 | sed -n 2p)"
echo
printf '%-22s %10s %8s %10s %16s %16s\n' command "median s" "MB/s" "cpu s" "ratio rst/this" "cpu ratio"
printf '%-22s %10s %8s %10s %16s %16s\n' "rstscope -j $THREADS" "$(f3 "${MED[rstscope]}")" \
    "$(mbps "${MED[rstscope]}")" "$(f3 "${CPU[rstscope]}")" "-" "-"
printf '%-22s %10s %8s %10s %16s %16s\n' "tcpdump (plain BPF)" "$(f3 "${MED[tcpdump]}")" \
    "$(mbps "${MED[tcpdump]}")" "$(f3 "${CPU[tcpdump]}")" "$(f3 "$R_PLAIN")" "$(f3 "$RC_PLAIN")"
printf '%-22s %10s %8s %10s %16s %16s\n' "tcpdump (ext BPF)" "$(f3 "${MED[tcpdump_ext]}")" \
    "$(mbps "${MED[tcpdump_ext]}")" "$(f3 "${CPU[tcpdump_ext]}")" "$(f3 "$R_EXT")" "$(f3 "$RC_EXT")"
echo
echo "ratio = median over rounds of rstscope wall / tcpdump wall in the same round" \
    "(range plain $R_PLAIN_RANGE, ext $R_EXT_RANGE);"
echo "cpu s = user+sys from /usr/bin/time (10 ms resolution), cpu ratio = median per-round ratio of it"
echo
echo "RSTs: rstscope reset.log rows $RST_OURS; tcpdump ext filter $RST_TCPDUMP" \
    "(plain filter $RST_TCPDUMP_PLAIN); generator reported $RST_GEN" \
    "-> $([[ $RST_OURS == "$RST_TCPDUMP" ]] && echo match || echo MISMATCH)"
echo "peak RSS: rstscope $(mib "$RSS_OURS") (mmap, includes mapped capture pages)," \
    "$(mib "$RSS_OURS_NOMMAP") with --no-mmap; tcpdump ext $(mib "$RSS_TCPDUMP")"
echo
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r <= t) ? "MET" : "NOT MET"}'; }
# Judged against the classifier issue's target (full classification within 1.5 x tcpdump) and
# the earlier foundation issue's (within 1.0 x).
if ((THREADS == 1)); then
    for t in 1.5 1.0; do
        echo "target 'ratio <= $t on one thread': $(verdict "$R_PLAIN" $t) vs plain tcpdump" \
            "($(f3 "$R_PLAIN")), $(verdict "$R_EXT" $t) vs extended-filter tcpdump ($(f3 "$R_EXT"))"
    done
else
    echo "targets 'ratio <= 1.5 / 1.0 on one thread': not judged (ran with -j $THREADS)"
fi
