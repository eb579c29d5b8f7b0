#!/usr/bin/env python3
"""Check that the sort's memory never changes what a run writes, capture by capture.

For every capture under the DIRs (default: ../shared/captures beside the repository), one at a
time, and for each thread setting (-j 1, -j 2 --split-min 1, -j 8 --split-min 1): run
`rstscope -q` with the default --sort-memory, then with each of --memories (default 1 and 700
bytes: every row or nearly every row spilled, many sorted runs merged). reset.log (or
reset.csv, .gz), conn_rst.log and reset_report.html must be the same bytes as the default's,
the exit status the same, and reset_summary.json the same JSON apart from what differs between
any two runs ("run", "peak_rss_bytes", the "seconds" of each file and sensor); no hidden
temporary may be left in the output directory; and with --sort-memory 1 the run record must
say every row was spilled.

Usage:
  scripts/sort-check.py --rstscope BIN [--memories 1,700] [--format tsv|json|csv] [--gzip]
                        [-v] [DIR...]

Prints `sort-check: N captures, M failed`. Exit status: 0 when every check passed, 1 when any
failed, 2 on a usage error.
"""
import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("carry_check", os.path.join(HERE, "carry-check.py"))
cc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cc)

THREADS = [["-j", "1"], ["-j", "2", "--split-min", "1"], ["-j", "8", "--split-min", "1"]]
# Files of the output directory that are not outputs (the summary is compared as JSON).
NOT_COMPARED = {".rstscope.lock", "rstscope_runs.log", "reset_summary.json"}
RUN_TIMEOUT = 300


def comparable_summary(path):
    """The summary without the run record, peak RSS and the seconds files and sensors took."""
    try:
        with open(path) as f:
            s = json.load(f)
    except OSError:
        return None
    s.pop("run", None)
    s.pop("peak_rss_bytes", None)
    for key in ("files", "sensors"):
        for entry in s.get(key) or []:
            entry.pop("seconds", None)
    return s


def spilled(out):
    """(spill_runs, spilled_rows, rows) from the run record, or None (an older rstscope)."""
    try:
        with open(os.path.join(out, "rstscope_runs.log")) as f:
            r = json.loads(f.read().splitlines()[-1])
        return r["spill_runs"], r["spilled_rows"], r["rows"]
    except (OSError, IndexError, KeyError, ValueError):
        return None


def run(cmd, out):
    """Run rstscope into `out` (emptied first): (exit status, {file: bytes}, summary, stderr)."""
    shutil.rmtree(out, ignore_errors=True)
    try:
        p = subprocess.run(cmd + ["-o", out], capture_output=True, timeout=RUN_TIMEOUT)
        status, stderr = p.returncode, p.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        status, stderr = "timeout", ""
    files = {}
    if os.path.isdir(out):
        for name in sorted(os.listdir(out)):
            if name not in NOT_COMPARED:
                with open(os.path.join(out, name), "rb") as f:
                    files[name] = f.read()
    return status, files, comparable_summary(os.path.join(out, "reset_summary.json")), stderr


def first_difference(a, b):
    """The first differing line of two files, for the message."""
    la, lb = a.decode(errors="replace").splitlines(), b.decode(errors="replace").splitlines()
    for i, (x, y) in enumerate(zip(la, lb)):
        if x != y:
            return f"line {i + 1}: {x[:160]!r} vs {y[:160]!r}"
    return f"{len(la)} lines vs {len(lb)}"


def compare(base, got, label):
    """Differences of a run (`got`) from the default's (`base`), as messages."""
    (bs, bf, bj, _), (gs, gf, gj, gerr) = base, got
    bad = []
    if gs != bs:
        bad.append(f"{label}: exit {gs}, default {bs}: {gerr.strip()[:300]}")
    for name in sorted(set(bf) | set(gf)):
        if name.startswith("."):
            bad.append(f"{label}: {name} left in the output directory")
        elif name not in gf:
            bad.append(f"{label}: no {name}")
        elif name not in bf:
            bad.append(f"{label}: {name} written, not by the default")
        elif gf[name] != bf[name]:
            bad.append(f"{label}: {name} differs, {first_difference(gf[name], bf[name])}")
    if gj != bj:
        keys = sorted(k for k in set(bj or {}) | set(gj or {}) if (bj or {}).get(k) != (gj or {}).get(k))
        bad.append(f"{label}: summary differs in {keys}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rstscope", required=True)
    ap.add_argument("--memories", default="1,700")
    ap.add_argument("--format", default="tsv", choices=["tsv", "json", "csv"])
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("dirs", nargs="*")
    args = ap.parse_args()
    dirs = args.dirs or [os.path.join(HERE, "..", "..", "shared", "captures")]
    for d in dirs:
        if not os.path.exists(d):
            print(f"sort-check: {d}: no such file or directory", file=sys.stderr)
            return 2
    memories = [m for m in args.memories.split(",") if m]
    common = ["-q", "--format", args.format] + (["--gzip"] if args.gzip else [])
    checked = failed = 0
    with tempfile.TemporaryDirectory(prefix="sort-check.") as work:
        for path, rel in cc.find_captures(dirs):
            bad = []
            for threads in THREADS:
                cmd = [args.rstscope] + common + threads
                base = run(cmd + [path], os.path.join(work, "default"))
                for m in memories:
                    out = os.path.join(work, f"mem-{m}")
                    label = f"{' '.join(threads)} --sort-memory {m}"
                    bad += compare(base, run(cmd + ["--sort-memory", m, path], out), label)
                    # One byte holds no row: every row must have gone through a spill file
                    # (and with threads, cold rows that stitching then dropped went there too).
                    s = spilled(out)
                    if m == "1" and s and s[2] and (s[0] < 1 or s[1] < s[2]):
                        bad.append(f"{label}: {s[0]} runs, {s[1]} of {s[2]} rows spilled")
            checked += 1
            if bad:
                failed += 1
                print(f"FAIL {rel}:\n  " + "\n  ".join(bad))
            elif args.verbose:
                print(f"ok   {rel}")
    print(f"sort-check: {checked} captures, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
