#!/usr/bin/env python3
"""Feed rstscope's logs to readers that are not ours and check what they get back.

Runs rstscope on testdata/sample.pcap joined with a conn.log (so conn_rst.log is written too)
and on testdata/hostile.pcap (payloads with tabs, newlines, '#', quotes, commas, '=cmd|', ANSI
escapes, NUL, invalid UTF-8), in each format, then reads the outputs with:

  parsezeeklogs (read_zeek, TSV and JSON), zat (ZeekLogReader and LogToDataFrame, TSV),
  pandas.read_csv (CSV), and Python's json (JSON lines).

Every value a consumer returns is compared with the value in rstscope's own TSV output (decoded
with its #types), and for the hostile capture every consumer must see exactly one row per RST
with the fields it should have: nothing split, merged or forged.

Needs: pip install parsezeeklogs zat pandas
Usage: scripts/consumers.py [--rstscope BIN]      (from the repository root)
Exit status 0 when every check passes.
"""

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile

CHECKS = {"passed": 0, "failed": 0}


def check(cond, what):
    if cond:
        CHECKS["passed"] += 1
    else:
        CHECKS["failed"] += 1
        print("FAIL " + what)


def unescape(s):
    """Bytes of a Zeek ASCII string cell."""
    out = bytearray()
    raw = s.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        if raw[i:i + 2] == b"\\\\":
            out += b"\\"
            i += 2
        elif raw[i:i + 2] == b"\\x" and i + 4 <= len(raw):
            out.append(int(raw[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


def read_tsv(path):
    """Our own strict reading of a Zeek TSV log: (fields, types, rows of raw cells)."""
    fields = types = None
    rows = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            elif line.startswith("#types"):
                types = line.split("\t")[1:]
            elif not line.startswith("#"):
                cells = line.split("\t")
                check(len(cells) == len(fields), "%s: a row has %d cells" % (path, len(cells)))
                rows.append(cells)
    return fields, types, rows


def typed(cell, ty):
    """The value a Zeek TSV cell stands for (None when unset)."""
    if cell == "-":
        return None
    if ty.startswith("set[") or ty.startswith("vector["):
        return [] if cell == "(empty)" else [unescape(e).decode("utf-8", "replace") for e in cell.split(",")]
    if ty in ("count", "port", "int"):
        return int(cell)
    if ty in ("time", "interval", "double"):
        return float(cell)
    if ty == "bool":
        return cell == "T"
    if cell == "(empty)":
        return ""
    return unescape(cell)


def same_text(got, want_bytes):
    if isinstance(got, bytes):
        return got == want_bytes
    return got == want_bytes.decode("utf-8", "replace") or got == want_bytes.decode("utf-8", "surrogateescape") \
        or got.encode("utf-8", "surrogateescape") == want_bytes or got == want_bytes.decode("latin-1")


def same(got, want):
    if want is None:
        return got is None or (isinstance(got, float) and math.isnan(got)) or got == "" or got == "-"
    if isinstance(want, bytes):
        return isinstance(got, (str, bytes)) and same_text(got, want)
    if isinstance(want, str):
        return got == want
    if isinstance(want, float):
        if isinstance(got, datetime.datetime):
            got = got.replace(tzinfo=datetime.timezone.utc).timestamp() if got.tzinfo is None else got.timestamp()
        if isinstance(got, datetime.timedelta):
            got = got.total_seconds()
        return isinstance(got, (int, float)) and abs(got - want) < 2e-6
    if isinstance(want, list):
        return sorted(got or []) == sorted(want)
    return got == want


def run(rstscope, out, args):
    p = subprocess.run([rstscope, "-q", "-o", out] + args, capture_output=True, text=True)
    check(p.returncode == 0, "rstscope %s exited %d: %s" % (args, p.returncode, p.stderr[:300]))


CONN_LOG = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t"
    "conn_state\tlocal_orig\thistory\torig_pkts\ttunnel_parents\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tstring\tbool\tstring\t"
    "count\tset[string]\n"
    "1795478400.000000\tCrej1\t10.0.0.5\t40001\t10.0.0.80\t23\ttcp\t-\t0.000150\tREJ\tT\tSr\t1\t(empty)\n"
    "1795478401.000140\tCrej2\t10.0.0.5\t40001\t10.0.0.80\t23\ttcp\t-\t0.000140\tREJ\tT\tSr\t1\t(empty)\n"
    "1795478403.000290\tCrej3\t10.0.0.5\t40001\t10.0.0.80\t23\ttcp\t-\t0.000160\tREJ\tT\tSr\t1\t(empty)\n"
    "1795478403.010290\tCips\t10.0.0.5\t40002\t192.0.2.25\t25\ttcp\tsmtp\t0.025401\tRSTR\tT\tShAdrR\t2\tCtun1,Ctun2\n"
    "#close\t2026-11-24-00-00-10\n"
)


def reference(tsv_path):
    fields, types, rows = read_tsv(tsv_path)
    return fields, types, [{f: typed(c, t) for f, c, t in zip(fields, r, types)} for r in rows], rows


def json_policy(b):
    """Zeek's JSON string policy: what a byte string reads back as from its JSON writer."""
    out = []
    i = 0
    while i < len(b):
        c = b[i]
        if c < 0x80:
            out.append("\\x%02x" % c if (c < 0x20 and c not in (8, 9, 10, 12, 13)) or c == 0x7f else chr(c))
            i += 1
            continue
        n = 2 if 0xc2 <= c <= 0xdf else 3 if 0xe0 <= c <= 0xef else 4 if 0xf0 <= c <= 0xf4 else 0
        try:
            if n == 0:
                raise UnicodeDecodeError("utf-8", b, i, i + 1, "")
            out.append(b[i:i + n].decode("utf-8"))
            i += n
        except UnicodeDecodeError:
            out.append("\\x%02x" % c)
            i += 1
    return "".join(out)


def check_parsezeeklogs(path, ref, label):
    from parsezeeklogs import read_zeek
    fields, types, want, _ = ref
    if path.endswith(".log") and "JSON" in label:
        want = [{f: (json_policy(v) if isinstance(v, bytes) else v) for f, v in w.items()} for w in want]
    got = list(read_zeek(path))
    check(len(got) == len(want), "%s parsezeeklogs: %d rows, want %d" % (label, len(got), len(want)))
    for i, (g, w) in enumerate(zip(got, want)):
        for f in fields:
            check(same(g.get(f), w[f]), "%s parsezeeklogs row %d %s: %r, want %r" % (label, i, f, g.get(f), w[f]))


def check_zat(path, ref, label):
    from zat.zeek_log_reader import ZeekLogReader
    from zat.log_to_dataframe import LogToDataFrame
    fields, types, want, raw = ref
    rows = list(ZeekLogReader(path).readrows())
    check(len(rows) == len(want), "%s zat reader: %d rows, want %d" % (label, len(rows), len(want)))
    for i, (g, w, r) in enumerate(zip(rows, want, raw)):
        check(set(g) == set(fields), "%s zat reader row %d: fields %s" % (label, i, sorted(set(g) ^ set(fields))))
        for f, t, cell in zip(fields, types, r):
            v = g.get(f)
            if cell == "-":
                continue  # zat fills unset values with its own defaults
            if t in ("count", "port", "bool", "time", "interval"):
                check(same(v, w[f]), "%s zat reader row %d %s: %r, want %r" % (label, i, f, v, w[f]))
            else:
                # zat keeps strings and sets as they are written (escaped)
                check(v == cell, "%s zat reader row %d %s: %r, want %r" % (label, i, f, v, cell))
    df = LogToDataFrame().create_dataframe(path)
    check(len(df) == len(want), "%s zat dataframe: %d rows, want %d" % (label, len(df), len(want)))
    for f, t in zip(fields, types):
        if f == "ts" or t not in ("count", "port"):
            continue
        col = [None if x is None or (isinstance(x, float) and math.isnan(x)) else int(x) for x in df[f].astype(object).where(df[f].notna(), None)]
        exp = [w[f] for w in want]
        check(col == exp, "%s zat dataframe column %s: %r, want %r" % (label, f, col[:5], exp[:5]))


def csv_text(cell):
    if cell in ("-", "(empty)"):
        return ""
    if cell[:1] == "'":
        return "\\x27" + cell[1:]
    return "'" + cell if cell[:1] in ("=", "+", "-", "@") else cell


def check_pandas(path, ref, label):
    import pandas as pd
    fields, types, want, raw = ref
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    check(list(df.columns) == fields, "%s pandas: columns %s" % (label, list(df.columns)[:5]))
    check(len(df) == len(want), "%s pandas: %d rows, want %d" % (label, len(df), len(want)))
    for i, r in enumerate(raw):
        for f, cell in zip(fields, r):
            v = df.iloc[i][f] if i < len(df) else None
            check(v == csv_text(cell), "%s pandas row %d %s: %r, want %r" % (label, i, f, v, csv_text(cell)))


def check_json(path, ref, label, iso=False):
    fields, types, want, _ = ref
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    check(len(lines) == len(want), "%s json: %d lines, want %d" % (label, len(lines), len(want)))
    for i, (line, w) in enumerate(zip(lines, want)):
        obj = json.loads(line)
        check(isinstance(obj, dict), "%s json line %d is an object" % (label, i))
        check(set(obj) <= set(fields), "%s json line %d: unknown keys %s" % (label, i, set(obj) - set(fields)))
        for f, t in zip(fields, types):
            exp = w[f]
            if exp is None:
                check(f not in obj, "%s json line %d: unset %s present" % (label, i, f))
                continue
            v = obj.get(f)
            if t in ("count", "port", "int"):
                check(isinstance(v, int) and not isinstance(v, bool) and v == exp, "%s json %d %s: %r" % (label, i, f, v))
            elif t in ("time", "interval"):
                check(isinstance(v, (int, float)) and abs(v - exp) < 2e-6, "%s json %d %s: %r, want %r" % (label, i, f, v, exp))
            elif t == "bool":
                check(v is exp, "%s json %d %s: %r" % (label, i, f, v))
            elif t.startswith("set["):
                check(isinstance(v, list) and sorted(v) == sorted(exp), "%s json %d %s: %r" % (label, i, f, v))
            else:
                # Zeek's JSON string policy: invalid UTF-8 and control bytes as the text \\xNN
                check(v == json_policy(exp), "%s json %d %s: %r, want %r" % (label, i, f, v, json_policy(exp)))


def check_hostile(out_tsv, out_json, out_csv, n):
    """Every consumer sees exactly n rows, each with the full field set."""
    from parsezeeklogs import read_zeek
    from zat.zeek_log_reader import ZeekLogReader
    from zat.log_to_dataframe import LogToDataFrame
    import pandas as pd
    fields, _, rows = read_tsv(os.path.join(out_tsv, "reset.log"))
    check(len(rows) == n, "hostile: our TSV has %d rows, want %d" % (len(rows), n))
    p = list(read_zeek(os.path.join(out_tsv, "reset.log")))
    check(len(p) == n and all(set(r) == set(fields) for r in p), "hostile parsezeeklogs TSV: %d rows" % len(p))
    pj = list(read_zeek(os.path.join(out_json, "reset.log")))
    check(len(pj) == n, "hostile parsezeeklogs JSON: %d rows" % len(pj))
    z = list(ZeekLogReader(os.path.join(out_tsv, "reset.log")).readrows())
    check(len(z) == n and all(set(r) == set(fields) for r in z), "hostile zat reader: %d rows" % len(z))
    df = LogToDataFrame().create_dataframe(os.path.join(out_tsv, "reset.log"))
    check(len(df) == n, "hostile zat dataframe: %d rows" % len(df))
    check(all(str(s) == "hostile.pcap" for s in df["source"]), "hostile zat dataframe: a row was shifted")
    c = pd.read_csv(os.path.join(out_csv, "reset.csv"), dtype=str, keep_default_na=False)
    check(len(c) == n and list(c.columns) == fields, "hostile pandas CSV: %d rows" % len(c))
    check(all(s == "hostile.pcap" for s in c["source"]), "hostile pandas CSV: a row was shifted")
    check(not any(v.startswith(("=", "+", "-", "@")) for v in c["payload"]), "hostile pandas CSV: a formula cell")
    with open(os.path.join(out_json, "reset.log"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    objs = [json.loads(l) for l in lines]
    check(len(objs) == n and all(o.get("source") == "hostile.pcap" for o in objs), "hostile json: %d rows" % len(objs))
    # the payloads come back as sent where the reader decodes escapes
    first = p[0]["payload"]
    check(first == "x\tforged\tcolumns", "hostile parsezeeklogs payload 0: %r" % first)
    check(objs[1]["payload"] == "line one\nline two\r\n", "hostile json payload 1: %r" % objs[1]["payload"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rstscope", default=os.environ.get("RSTSCOPE", "target/debug/rstscope"))
    args = ap.parse_args()
    for mod in ("parsezeeklogs", "zat", "pandas"):
        try:
            __import__(mod)
        except ImportError:
            print("consumers: missing Python package %s (pip install parsezeeklogs zat pandas)" % mod)
            return 2
    with tempfile.TemporaryDirectory() as tmp:
        conn = os.path.join(tmp, "conn.log")
        with open(conn, "w") as f:
            f.write(CONN_LOG)
        outs = {}
        for fmt in ("tsv", "json", "csv"):
            outs[fmt] = os.path.join(tmp, fmt)
            run(args.rstscope, outs[fmt], ["--format", fmt, "--conn-log", conn, "--enrich-conn", "testdata/sample.pcap"])
        for name, csv_name in (("reset", "reset.csv"), ("conn_rst", "conn_rst.csv")):
            tsv = os.path.join(outs["tsv"], name + ".log")
            ref = reference(tsv)
            check(len(ref[2]) > 0, "%s.log has rows" % name)
            check_parsezeeklogs(tsv, ref, name + " TSV")
            check_parsezeeklogs(os.path.join(outs["json"], name + ".log"), ref, name + " JSON")
            check_zat(tsv, ref, name + " TSV")
            check_pandas(os.path.join(outs["csv"], csv_name), ref, name + " CSV")
            check_json(os.path.join(outs["json"], name + ".log"), ref, name + " JSON")
        hostile = {}
        for fmt in ("tsv", "json", "csv"):
            hostile[fmt] = os.path.join(tmp, "hostile-" + fmt)
            run(args.rstscope, hostile[fmt], ["--format", fmt, "testdata/hostile.pcap"])
        n = len(read_tsv(os.path.join(hostile["tsv"], "reset.log"))[2])
        check_hostile(hostile["tsv"], hostile["json"], hostile["csv"], n)
        # our own JSON and CSV against our TSV for the hostile capture
        ref = reference(os.path.join(hostile["tsv"], "reset.log"))
        check_json(os.path.join(hostile["json"], "reset.log"), ref, "hostile JSON")
        check_pandas(os.path.join(hostile["csv"], "reset.csv"), ref, "hostile CSV")
    print("consumers: %d passed, %d failed" % (CHECKS["passed"], CHECKS["failed"]))
    return 0 if CHECKS["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
