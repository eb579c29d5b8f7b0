#!/usr/bin/env bash
# Archive benchmark: a generated archive of SIZE (default 2 GiB) in FILES files (default 20)
# spread over SENSORS sensor directories (default 2), as a nightly run sees it. Alternating
# rounds of
#   rstscope -j 1, rstscope -j 2, and tcpdump -nn -r FILE -w /dev/null 'tcp[tcpflags] & tcp-rst != 0'
#   summed over the files,
# with the median per-round ratios: (rstscope -j 2) / tcpdump (target <= 0.6) and
# (rstscope -j 1) / (rstscope -j 2) (target >= 1.7), and rstscope's peak RSS.
# Then the same archive zstd- and gzip-compressed (copies cached beside it): rstscope -j 2 over
# each against only decompressing it (`zstd -dc` / `gzip -dc` of every file to /dev/null, one
# after the other, and two at a time) in alternating rounds (target <= 1.3).
# Then peak RSS on one plain capture of BIG (default 4 GiB; 0 skips it) (target <= 256 MiB).
#
# The files are synced, dropped from the page cache and read back in before the rounds, as a
# nightly run reads them from disk (scripts/page-cache.sh); generated files are dated back ten
# minutes, so that rstscope maps them.
#
# Usage: bash scripts/bench-archive.sh [SIZE] [FILES] [SENSORS] [ROUNDS] [BIG]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/page-cache.sh
source scripts/page-cache.sh
SIZE=${1:-2GiB}
FILES=${2:-20}
SENSORS=${3:-2}
ROUNDS=${4:-3}
BIG=${5:-4GiB}
command -v tcpdump >/dev/null || apt-get install -y -qq tcpdump >/dev/null
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null
cargo build -q --release -p rstscope -p rstscope-gen
T=${CARGO_TARGET_DIR:-target}/release
WORK=${BENCH_DIR:-/tmp/rstscope-bench}/archive-$SIZE-$FILES-$SENSORS
if [ ! -e "$WORK/.complete" ]; then
    rm -rf "$WORK"
    per=$((FILES / SENSORS))
    bytes=$(python3 -c "import sys;s=sys.argv[1].lower();m={'gib':2**30,'mib':2**20};print(int(float(s[:-3])*m[s[-3:]]) if s[-3:] in m else int(s))" "$SIZE")
    for s in $(seq 1 "$SENSORS"); do
        "$T/rstscope-gen" bench "$WORK/sensor-$s" --bytes $((bytes / SENSORS)) --files "$per" --seed "$s" 2>/dev/null
    done
    mapfile -t GENERATED < <(find "$WORK" -name '*.pcap')
    date_back "${GENERATED[@]}"
    touch "$WORK/.complete"
fi
OUT=$WORK.out
mapfile -t CAPS < <(find "$WORK" -name '*.pcap' | sort)
TOTAL=$(du -cb "${CAPS[@]}" | tail -1 | cut -f1)
echo "archive: ${#CAPS[@]} files in $SENSORS sensors, $TOTAL bytes"
settle_cache "${CAPS[@]}"
now() { date +%s.%N; }
declare -a R1 R2 TD
for r in $(seq 1 "$ROUNDS"); do
    a=$(now); "$T/rstscope" -q -j 1 -o "$OUT/j1" "$WORK"; b=$(now)
    "$T/rstscope" -q -j 2 -o "$OUT/j2" "$WORK"; c=$(now)
    for f in "${CAPS[@]}"; do tcpdump -nn -r "$f" -w /dev/null 'tcp[tcpflags] & tcp-rst != 0' 2>/dev/null; done; d=$(now)
    R1+=("$(echo "$b - $a" | bc -l)"); R2+=("$(echo "$c - $b" | bc -l)"); TD+=("$(echo "$d - $c" | bc -l)")
    echo "round $r: -j1 ${R1[-1]} s, -j2 ${R2[-1]} s, tcpdump ${TD[-1]} s"
done
if cmp -s "$OUT/j1/reset.log" "$OUT/j2/reset.log"; then
    echo "reset.log identical for -j 1 and -j 2"
else
    echo "reset.log DIFFERS between -j 1 and -j 2"
fi
python3 - "${R1[*]}" "${R2[*]}" "${TD[*]}" <<'PY'
import sys, statistics as st
r1, r2, td = ([float(x) for x in a.split()] for a in sys.argv[1:4])
print("median -j2 / tcpdump: %.2f (target <= 0.6)" % st.median(b / t for b, t in zip(r2, td)))
print("median -j1 / -j2 speedup: %.2f (target >= 1.7)" % st.median(a / b for a, b in zip(r1, r2)))
PY
/usr/bin/time -f "peak RSS -j 2: %M KB" "$T/rstscope" -q -j 2 -o "$OUT/j2" "$WORK"

# --- compressed archives -------------------------------------------------------------------
for kind in zst gz; do
    CW=$WORK-$kind
    if [ ! -e "$CW/.complete" ]; then
        rm -rf "$CW"
        for f in "${CAPS[@]}"; do
            rel=${f#"$WORK"/}
            mkdir -p "$CW/$(dirname "$rel")"
            if [ $kind = zst ]; then zstd -q -3 -c "$f" >"$CW/$rel.zst"; else gzip -6 -c "$f" >"$CW/$rel.gz"; fi
        done
        touch "$CW/.complete"
    fi
    mapfile -t ZF < <(find "$CW" -name "*.pcap.$kind" | sort)
    cat "${ZF[@]}" >/dev/null
    dc() { if [ $kind = zst ]; then zstd -dc "$1"; else gzip -dc "$1"; fi; }
    export -f dc; export kind
    declare -a RS=() D1=() D2=()
    for r in $(seq 1 "$ROUNDS"); do
        a=$(now); "$T/rstscope" -q -j 2 -o "$OUT/$kind" "$CW"; b=$(now)
        for f in "${ZF[@]}"; do dc "$f" >/dev/null; done; c=$(now)
        printf '%s\n' "${ZF[@]}" | xargs -P 2 -I{} bash -c 'dc "$1" >/dev/null' _ {}; d=$(now)
        RS+=("$(echo "$b - $a" | bc -l)"); D1+=("$(echo "$c - $b" | bc -l)"); D2+=("$(echo "$d - $c" | bc -l)")
        echo "$kind round $r: rstscope -j 2 ${RS[-1]} s, decompress only ${D1[-1]} s (two at a time ${D2[-1]} s)"
    done
    # the same rows as the plain archive's, apart from `source` (file names end in .zst/.gz)
    if diff -q <(grep -v '^#' "$OUT/$kind/reset.log" | sed -E "s/\.pcap\.$kind\t/.pcap\t/") \
        <(grep -v '^#' "$OUT/j2/reset.log") >/dev/null; then
        echo "$kind: the same rows as the plain archive's (apart from the file names)"
    else
        echo "$kind: rows DIFFER from the plain archive's"
    fi
    python3 - "$kind" "${RS[*]}" "${D1[*]}" "${D2[*]}" <<'PY'
import sys, statistics as st
k = sys.argv[1]
rs, d1, d2 = ([float(x) for x in a.split()] for a in sys.argv[2:5])
print("%s: median rstscope -j 2 / decompress-only: %.2f (target <= 1.3); / decompress two at a time: %.2f"
      % (k, st.median(a / b for a, b in zip(rs, d1)), st.median(a / b for a, b in zip(rs, d2))))
PY
done

# --- one big plain capture -------------------------------------------------------------------
if [ "$BIG" != 0 ]; then
    BW=${BENCH_DIR:-/tmp/rstscope-bench}/big-$BIG
    if [ ! -e "$BW/.complete" ]; then
        rm -rf "$BW"
        bytes=$(python3 -c "import sys;s=sys.argv[1].lower();m={'gib':2**30,'mib':2**20};print(int(float(s[:-3])*m[s[-3:]]) if s[-3:] in m else int(s))" "$BIG")
        "$T/rstscope-gen" bench "$BW" --bytes "$bytes" --files 1 --seed 7 2>/dev/null
        mapfile -t GENERATED < <(find "$BW" -name '*.pcap')
        date_back "${GENERATED[@]}"
        touch "$BW/.complete"
    fi
    BF=$(find "$BW" -name '*.pcap' | head -1)
    settle_cache "$BF"
    for j in 1 2; do
        /usr/bin/time -f "one $BIG capture, -j $j: %e s, peak RSS %M KB (target <= 262144 KB)" \
            "$T/rstscope" -q -j $j -o "$OUT/big" "$BF"
    done
fi
