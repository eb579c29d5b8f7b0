#!/usr/bin/env bash
# Memory of the conn.log join: generate a conn.log of N rows (default 10 M) with a handful of
# rows for the sample capture's connections among them, join testdata/sample.pcap with it, and
# report rstscope's peak RSS and time next to a run without the join.
#
# Usage: bash scripts/join-memory.sh [ROWS]    (from anywhere; needs python3 and /usr/bin/time)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-10000000}
WORK=${JOIN_BENCH_DIR:-/tmp/rstscope-join-bench}
mkdir -p "$WORK"
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null
cargo build --release -p rstscope >/dev/null 2>&1 || cargo build --release -p rstscope
BIN=${CARGO_TARGET_DIR:-target}/release/rstscope
LOG="$WORK/conn-$ROWS.log"
if [ ! -s "$LOG" ]; then
    python3 - "$ROWS" "$LOG" <<'PY'
import sys
rows, path = int(sys.argv[1]), sys.argv[2]
head = ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
        "#open\t2026-11-24-00-00-00\n"
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t"
        "orig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\t"
        "orig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n"
        "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\t"
        "string\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n")
with open(path, "w") as f:
    f.write(head)
    t = 1795478000.0
    buf = []
    for i in range(rows):
        t += 0.0001
        a = "10.%d.%d.%d" % ((i >> 16) & 255, (i >> 8) & 255, i & 255)
        buf.append("%.6f\tC%015d\t%s\t%d\t192.0.2.%d\t443\ttcp\tssl\t1.250000\t500\t4000\tSF\tT\tF\t0\tShADadFf\t10\t900\t9\t4500\t(empty)\n"
                   % (t, i, a, 1024 + i % 60000, i % 250))
        if len(buf) >= 100000:
            f.write("".join(buf)); buf = []
    # the sample's refused connections
    buf.append("1795478400.000000\tCsampleREJ\t10.0.0.5\t40001\t10.0.0.80\t23\ttcp\t-\t0.000150\t0\t0\tREJ\tT\tT\t0\tSr\t1\t60\t1\t40\t(empty)\n")
    f.write("".join(buf))
    f.write("#close\t2026-11-24-01-00-00\n")
PY
fi
echo "conn.log: $ROWS rows, $(du -h "$LOG" | cut -f1)"
echo "without the join: $(/usr/bin/time -f "%e s  %M KB peak RSS" "$BIN" -q -o "$WORK/out" testdata/sample.pcap 2>&1 | tail -1)"
echo "with the join:    $(/usr/bin/time -f "%e s  %M KB peak RSS" "$BIN" -q -o "$WORK/out" --conn-log "$LOG" testdata/sample.pcap 2>&1 | tail -1)"
python3 -c "import json;j=json.load(open('$WORK/out/reset_summary.json'))['join'];print('matched', j['matched'], 'unmatched', j['unmatched'], 'rows read', sum(l['rows'] for l in j['conn_logs']))"
