#!/usr/bin/env bash
# The large hostile captures, with time and peak RSS (the small ones are tests in
# bin/rstscope/tests/hostile.rs): a SYN flood of N distinct connections (default 10 M), run with
# the default connection cap (1 M) and with a small one; then refused SYNs (a 256-byte payload
# on every tenth), checking the row count: RSTS resets within 2 s of packet time (default 1 M,
# every row waiting in a live connection until the end), and SPREAD resets over SECONDS
# (default 5 M over 600 s, issue 17's scan night: few live at a time, rows finished as it goes).
#
# Usage: bash scripts/hostile.sh [CONNECTIONS] [RSTS] [SPREAD] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
M=${2:-1000000}
S=${3:-5000000}
SECS=${4:-600}
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null
cargo build -q --release -p rstscope -p rstscope-gen
T=${CARGO_TARGET_DIR:-target}/release
WORK=${HOSTILE_DIR:-/tmp/rstscope-hostile}
mkdir -p "$WORK"
F="$WORK/synflood-$N.pcap"
[ -s "$F" ] || "$T/rstscope-gen" synflood "$F" "$N"
echo "SYN flood: $N connections, $(du -h "$F" | cut -f1)"
for cap in 1000000 100000; do
    /usr/bin/time -f "%e s, peak RSS %M KB" -o "$WORK/time" "$T/rstscope" -q -j 2 --no-mmap \
        --max-connections "$cap" -o "$WORK/out" "$F"
    python3 - "$WORK/out/reset_summary.json" "$cap" "$(cat "$WORK/time")" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print("cap %s: %s; connections %d, evicted %d, peak tracked %d"
      % (sys.argv[2], sys.argv[3], s["connections"], s["connections_evicted"], s["peak_connections"]))
PY
done

# rsts FILE COUNT LABEL: run -j 2 over FILE, check its COUNT refused rows (and that they are in
# time order), print time and peak RSS.
rsts() {
    local f=$1 want=$2 label=$3 out="$WORK/out-rsts"
    # As an archived capture: a file modified in the last two minutes is read as one that may
    # still be written (no memory map, no byte ranges), which -j 2 would then not split.
    touch -m -d '10 minutes ago' "$f"
    echo "$label: $(du -h "$f" | cut -f1)"
    /usr/bin/time -f "%e s, peak RSS %M KB" -o "$WORK/time" "$T/rstscope" -q -j 2 -o "$out" "$f"
    read -r rows ordered < <(awk '!/^#/ { n++; if (n > 1 && $1 + 0 < last) late++; last = $1 + 0 }
        END { print n + 0, (late ? "no" : "yes") }' "$out/reset.log")
    python3 - "$out/reset_summary.json" "$want" "$rows" "$(cat "$WORK/time")" "$ordered" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
want, rows = int(sys.argv[2]), int(sys.argv[3])
ok = rows == want and s["rsts"] == want and s["by_cause"]["refused"] == want and sys.argv[5] == "yes"
print("%d RSTs: %s; rows %d (in time order: %s), refused %d, top seq %s -> %s"
      % (want, sys.argv[4], rows, sys.argv[5], s["by_cause"]["refused"], s["top_seq"][0],
         "ok" if ok else "WRONG COUNTS OR ORDER"))
sys.exit(0 if ok else 1)
PY
}

F="$WORK/rsts-$M.pcap"
[ -s "$F" ] || "$T/rstscope-gen" rsts "$F" "$M"
rsts "$F" "$M" "RSTs: $M refused SYNs within 2 s"
F="$WORK/rsts-$S-over-$SECS.pcap"
[ -s "$F" ] || "$T/rstscope-gen" rsts "$F" "$S" --over "$SECS"
rsts "$F" "$S" "RSTs: $S refused SYNs over $SECS s"

# A capture truncated while it is memory-mapped (cp new old, rsync --inplace): the truncated
# file gets a per-file error (exit status 1), every other input its rows; no SIGBUS.
TR="$WORK/truncate"
rm -rf "$TR" && mkdir -p "$TR/in"
"$T/rstscope-gen" bench "$TR/gen" --bytes 300MiB --seed 5 >/dev/null 2>&1
mv "$TR/gen/bench-000.pcap" "$TR/in/big.pcap"
cp testdata/sample.pcap "$TR/in/small.pcap"
touch -m -d '10 minutes ago' "$TR/in"/*.pcap
cat "$TR/in/big.pcap" >/dev/null
status=0
"$T/rstscope" -q -j 2 -o "$TR/out" "$TR/in" 2>"$TR/err" &
pid=$!
sleep 0.2
truncate -s 100000000 "$TR/in/big.pcap"
wait "$pid" || status=$?
if [ "$status" = 1 ] && grep -q "big.pcap: .*the file was truncated while it was read" "$TR/err" \
    && grep -q "small.pcap" "$TR/out/reset.log"; then
    echo "truncated under the map: exit 1, a per-file error, the other file's rows"
elif [ "$status" = 0 ]; then
    echo "truncated under the map: the run finished before the truncation (exit 0); try again"
else
    echo "truncated under the map: FAILED (exit $status)"; cat "$TR/err"; exit 1
fi
