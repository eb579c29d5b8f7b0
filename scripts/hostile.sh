#!/usr/bin/env bash
# The large hostile captures, with time and peak RSS (the small ones are tests in
# bin/rstscope/tests/hostile.rs): a SYN flood of N distinct connections (default 10 M), run with
# the default connection cap (1 M) and with a small one; then RSTS resets in one capture
# (default 1 M; refused SYNs, a 256-byte payload on every tenth), checking the row count.
#
# Usage: bash scripts/hostile.sh [CONNECTIONS] [RSTS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
M=${2:-1000000}
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

F="$WORK/rsts-$M.pcap"
[ -s "$F" ] || "$T/rstscope-gen" rsts "$F" "$M"
echo "RSTs: $M refused SYNs, $(du -h "$F" | cut -f1)"
/usr/bin/time -f "%e s, peak RSS %M KB" -o "$WORK/time" "$T/rstscope" -q -j 2 -o "$WORK/out-rsts" "$F"
rows=$(grep -vc '^#' "$WORK/out-rsts/reset.log")
python3 - "$WORK/out-rsts/reset_summary.json" "$M" "$rows" "$(cat "$WORK/time")" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
want, rows = int(sys.argv[2]), int(sys.argv[3])
ok = rows == want and s["rsts"] == want and s["by_cause"]["refused"] == want
print("%d RSTs: %s; rows %d, refused %d, top seq %s -> %s"
      % (want, sys.argv[4], rows, s["by_cause"]["refused"], s["top_seq"][0], "ok" if ok else "WRONG COUNTS"))
sys.exit(0 if ok else 1)
PY

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
if [ "$status" = 1 ] && grep -q "big.pcap: the file was truncated while it was read" "$TR/err" \
    && grep -q "small.pcap" "$TR/out/reset.log"; then
    echo "truncated under the map: exit 1, a per-file error, the other file's rows"
elif [ "$status" = 0 ]; then
    echo "truncated under the map: the run finished before the truncation (exit 0); try again"
else
    echo "truncated under the map: FAILED (exit $status)"; cat "$TR/err"; exit 1
fi
