#!/usr/bin/env bash
# The large hostile captures, with time and peak RSS (the small ones are tests in
# bin/rstscope/tests/hostile.rs): a SYN flood of N distinct connections (default 10 M), run with
# the default connection cap (1 M) and with a small one.
#
# Usage: bash scripts/hostile.sh [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
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
