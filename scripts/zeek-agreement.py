#!/usr/bin/env python3
"""Compare rstscope's connection semantics with Zeek's conn.log.

For every capture F in the given directories with a Zeek `F.conn.log` (or a `F.conn-cut.tsv`,
made by `zeek-cut -m`, with fewer columns) beside it, run rstscope on F and compare each
conn.log row whose history contains a RST (`R` or `r`) with the rstscope connection it belongs
to (its rows share a uid):

- the originator and responder (id.orig_h/p, id.resp_h/p), when the log has them;
- conn_state, when the log has it;
- history: rstscope's history at the connection's last RST must be where Zeek's history was
  at that moment, i.e. a prefix of Zeek's final history with no further R/r after it.

Rows are matched on the 5-tuple (either direction) and order, since Zeek's test logs mask ts.
Prints each disagreement and the agreement rate. Exit status 0 when the rate reaches
--min-agreement (default 0.95).

With --join, rstscope also joins each capture with the conn.log beside it (--conn-log), and
every RST of a matched connection must carry the uid of the Zeek row it was matched to; the
rate printed is then over RSTs.

Usage: scripts/zeek-agreement.py [--join] [--rstscope BIN] [--min-agreement F] [-v] DIR...
"""

import argparse
import os
import subprocess
import sys
import tempfile


def read_zeek(path):
    fields, rows = None, []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
                continue
            if line.startswith("#"):
                continue
            if fields is None:  # zeek-cut -m: the first line names the columns
                fields = line.split("\t")
                continue
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


def ours(capture, rstscope, conn_log=None):
    with tempfile.TemporaryDirectory() as out:
        extra = ["--conn-log", conn_log] if conn_log else []
        subprocess.run([rstscope, "-q", "-o", out] + extra + [capture], capture_output=True)
        log = os.path.join(out, "reset.log")
        rows = read_zeek(log) if os.path.exists(log) else []
    # One entry per connection: its last RST row, and how many RSTs it has. Rows are grouped by
    # rstscope's connection even after a join replaced uids (the 5-tuple plus the uid).
    conns, order, counts = {}, [], {}
    for r in rows:
        k = (r["uid"], key_of(r))
        if k not in conns:
            order.append(k)
        conns[k] = r
        counts[k] = counts.get(k, 0) + 1
    out = []
    for k in order:
        r = dict(conns[k])
        r["_rsts"] = counts[k]
        out.append(r)
    return out


def tuple_of(r):
    return (r.get("id.orig_h"), r.get("id.orig_p"), r.get("id.resp_h"), r.get("id.resp_p"))


def key_of(r):
    a = (r.get("id.orig_h"), r.get("id.orig_p"))
    b = (r.get("id.resp_h"), r.get("id.resp_p"))
    return tuple(sorted([a, b]))


def history_agrees(ours_h, zeek_h):
    if not zeek_h.startswith(ours_h):
        return False
    rest = zeek_h[len(ours_h):]
    return "R" not in rest and "r" not in rest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--rstscope", default=os.environ.get("RSTSCOPE", "target/release/rstscope"))
    ap.add_argument("--min-agreement", type=float, default=0.95)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--join", action="store_true", help="check the uids the conn.log join gives")
    args = ap.parse_args()

    logs = []
    for d in args.dirs:
        for root, _, names in os.walk(d):
            for n in names:
                for suffix in (".conn.log", ".conn-cut.tsv"):
                    if n.endswith(suffix):
                        logs.append((os.path.join(root, n[: -len(suffix)]), os.path.join(root, n)))
    logs.sort()
    total = agree = 0
    rst_total = rst_joined = rst_nokey = 0
    for capture, log in logs:
        zrows = [r for r in read_zeek(log) if "R" in r.get("history", "") or "r" in r.get("history", "")]
        if not zrows:
            continue
        mine = ours(capture, args.rstscope, log if args.join else None)
        has_tuple = "id.orig_h" in zrows[0]
        used = set()
        for z in zrows:
            total += 1
            match = None
            for i, o in enumerate(mine):
                if i in used:
                    continue
                if has_tuple and key_of(o) != key_of(z):
                    continue
                match = i
                break
            if match is None:
                print("MISS   %s: zeek %s %s %s has no rstscope connection"
                      % (os.path.basename(capture), tuple_of(z), z.get("conn_state", ""), z["history"]))
                continue
            used.add(match)
            o = mine[match]
            problems = []
            if has_tuple and tuple_of(o) != tuple_of(z):
                problems.append("orig/resp %s vs zeek %s" % (tuple_of(o), tuple_of(z)))
            if "conn_state" in z and o["conn_state"] != z["conn_state"]:
                problems.append("conn_state %s vs zeek %s" % (o["conn_state"], z["conn_state"]))
            if not history_agrees(o["history"], z["history"]):
                problems.append("history %s vs zeek %s" % (o["history"], z["history"]))
            if args.join and not has_tuple:
                # A zeek-cut extract without the endpoint columns: nothing to join on.
                rst_nokey += o["_rsts"]
            elif args.join:
                rst_total += o["_rsts"]
                if o["uid"] == z.get("uid"):
                    rst_joined += o["_rsts"]
                else:
                    problems.append("joined uid %s vs zeek %s" % (o["uid"], z.get("uid")))
            if problems:
                print("DIFFER %s %s: %s" % (os.path.basename(capture), tuple_of(z), "; ".join(problems)))
            else:
                agree += 1
                if args.verbose:
                    print("ok     %s %s %s %s" % (os.path.basename(capture), tuple_of(z),
                                                 z.get("conn_state", ""), z["history"]))
    if args.join:
        rate = rst_joined / rst_total if rst_total else 1.0
        print("conn.log join: %d RSTs in connections with a conn.log row, %d got that row's uid (%.1f %%); "
              "%d more RSTs are in zeek-cut extracts without endpoint columns (no join key)"
              % (rst_total, rst_joined, 100 * rate, rst_nokey))
        return 0 if rate >= args.min_agreement else 1
    rate = agree / total if total else 1.0
    print("zeek agreement: %d conn.log rows with a RST, %d agree on orig/resp, conn_state and history (%.1f %%)"
          % (total, agree, 100 * rate))
    return 0 if rate >= args.min_agreement else 1


if __name__ == "__main__":
    sys.exit(main())
