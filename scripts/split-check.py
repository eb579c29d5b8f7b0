#!/usr/bin/env python3
"""Check that a sensor stream tracked on several threads gives one thread's rows, byte for byte.

For every capture under the DIRs (as scripts/carry-check.py finds and cuts them) with at least
--min-rsts RSTs: cut it at random packet boundaries into K pieces (K random in --pieces), the
files of one sensor, and run `rstscope -q -j J --split-min SIZE -o OUT DIR` for J = 1 and each
of --threads; reset.log (and conn_rst.log when --conn-log is given) must be the same bytes for
every J, and so must the summary's rsts, connections, tcp_segments and packets. With --split-min small, the pieces are also cut into byte ranges within each file.

Usage:
  scripts/split-check.py --rstscope BIN [--seed N] [--min-rsts 1] [--pieces 1-6]
                         [--threads 2,8] [--split-min SIZE] [--format tsv|json|csv] [-v] DIR...

Exit status: 0 when every check passed, 1 when any failed, 2 on a usage error.
"""
import argparse
import filecmp
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("carry_check", os.path.join(HERE, "carry-check.py"))
cc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rstscope", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min-rsts", type=int, default=1)
    ap.add_argument("--pieces", type=cc.pieces_range, default=(1, 6))
    ap.add_argument("--threads", default="2,8")
    ap.add_argument("--split-min", default=None)
    ap.add_argument("--format", default="tsv", choices=["tsv", "json", "csv"])
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("dirs", nargs="+")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",") if t]
    checked = failed = skipped = 0
    old = time.time() - 600
    with tempfile.TemporaryDirectory(prefix="split-check.") as work:
        for path, rel in cc.find_captures(args.dirs):
            try:
                with open(path, "rb") as f:
                    cap = cc.parse_capture(f.read())
            except cc.Unreadable as e:
                skipped += 1
                if args.verbose:
                    print(f"skip {rel}: {e}")
                continue
            rsts = cc.tsv_rst_count(path)
            if rsts is not None and rsts < args.min_rsts:
                continue
            rng = cc.file_rng(args.seed, rel)
            cuts, _ = cc.choose_cuts(cap, rng, *args.pieces)
            arch = os.path.join(work, "arch")
            shutil.rmtree(arch, ignore_errors=True)
            os.makedirs(arch)
            for i, piece in enumerate(cc.cut_pieces(cap, cuts)):
                p = os.path.join(arch, cc.piece_name(path, i))
                with open(p, "wb") as f:
                    f.write(piece)
                os.utime(p, (old, old))
            outs = []
            for j in [1] + threads:
                out = os.path.join(work, f"out-{j}")
                shutil.rmtree(out, ignore_errors=True)
                cmd = [args.rstscope, "-q", "-j", str(j), "--format", args.format, "-o", out]
                if args.split_min:
                    cmd += ["--split-min", args.split_min]
                r = subprocess.run(cmd + [arch], capture_output=True)
                outs.append((j, out, r.returncode))
            base_j, base, base_rc = outs[0]
            bad = []
            for j, out, rc in outs[1:]:
                if rc != base_rc:
                    bad.append(f"-j {j} exit {rc}, -j 1 exit {base_rc}")
                for name in sorted(os.listdir(base)):
                    if not name.startswith(("reset.", "conn_rst.")):
                        continue
                    a, b = os.path.join(base, name), os.path.join(out, name)
                    if not os.path.exists(b) or not filecmp.cmp(a, b, shallow=False):
                        bad.append(f"-j {j}: {name} differs from -j 1")
                sa, sb = os.path.join(base, "reset_summary.json"), os.path.join(out, "reset_summary.json")
                if os.path.exists(sa) and os.path.exists(sb):
                    ja, jb = json.load(open(sa)), json.load(open(sb))
                    for k in ("rsts", "connections", "tcp_segments", "packets"):
                        if ja.get(k) != jb.get(k):
                            bad.append(f"-j {j}: summary {k} {jb.get(k)}, -j 1 {ja.get(k)}")
            checked += 1
            if bad:
                failed += 1
                print(f"FAIL {rel} ({len(cuts) + 1} pieces): " + "; ".join(bad))
                keep = os.path.join(tempfile.gettempdir(), "split-check-fail", rel.replace(os.sep, "_"))
                shutil.rmtree(keep, ignore_errors=True)
                shutil.copytree(work, keep)
                print(f"  kept in {keep}")
            elif args.verbose:
                print(f"ok   {rel} ({len(cuts) + 1} pieces)")
    print(f"split-check: {checked} captures, {failed} failed, {skipped} skipped (unreadable by the cutter)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
