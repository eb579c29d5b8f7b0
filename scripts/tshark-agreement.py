#!/usr/bin/env python3
"""Compare rstscope's reset.log with tshark's view of every RST in a set of captures.

Every capture F under the given directories that has an `F.rst.tsv` beside it (tshark's view:
frame ts src sport dst dport seq ack flags win len ttl ip_id payload_hex) is run through rstscope
on its own, and each RST is compared field for field: frame, ts (to the microsecond), sender and
receiver address and port, seq, ack, flags (tcpdump notation of tshark's flag bits), win,
payload_len, ttl, ip_id, payload bytes.

Prints one line per capture that disagrees, then the totals. Exit status 0 when the agreement
reaches --min-agreement (a fraction, default 1.0), else 1.

Usage: scripts/tshark-agreement.py [--rstscope BIN] [--min-agreement F] [-v] DIR...
"""

import argparse
import os
import subprocess
import sys
import tempfile

FLAG_ORDER = [(0x001, "F"), (0x002, "S"), (0x004, "R"), (0x008, "P"), (0x010, "."),
              (0x020, "U"), (0x040, "E"), (0x080, "W"), (0x100, "e")]


def tcpdump_flags(bits):
    s = "".join(c for b, c in FLAG_ORDER if bits & b)
    return s or "none"


def zeek_unescape(s):
    """Bytes of a Zeek ASCII string field."""
    if s == "-":
        return None
    if s == "(empty)":
        return b""
    out = bytearray()
    i = 0
    raw = s.encode("utf-8", "surrogateescape")
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


def ts_to_us(text):
    sec, _, frac = text.partition(".")
    frac = (frac + "000000000")[:9]
    neg = sec.startswith("-")
    ns = abs(int(sec)) * 10**9 + int(frac)
    us = (ns + 500) // 1000
    return -us if neg else us


def read_reset_log(path):
    rows = []
    fields = None
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
                continue
            if line.startswith("#"):
                continue
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


def ours_normalised(row):
    sender = ("orig" if row["is_orig"] == "T" else "resp")
    receiver = ("resp" if sender == "orig" else "orig")
    payload = zeek_unescape(row["payload"])
    return {
        "ts": ts_to_us(row["ts"]),
        "src": row["id.%s_h" % sender],
        "sport": row["id.%s_p" % sender],
        "dst": row["id.%s_h" % receiver],
        "dport": row["id.%s_p" % receiver],
        "seq": row["seq"],
        "ack": row["ack"],
        "flags": row["flags"],
        "win": row["win"],
        "len": row["payload_len"],
        "ttl": row["ttl"],
        "ip_id": "" if row["ip_id"] == "-" else row["ip_id"],
        "payload": (payload or b"").hex(),
    }


def tshark_normalised(cols):
    frame, ts, src, sport, dst, dport, seq, ack, flags, win, ln, ttl, ip_id = cols[:13]
    payload_hex = cols[13] if len(cols) > 13 else ""
    return frame, {
        "ts": ts_to_us(ts),
        "src": src,
        "sport": sport,
        "dst": dst,
        "dport": dport,
        "seq": seq,
        "ack": ack,
        "flags": tcpdump_flags(int(flags, 16)),
        "win": win,
        "len": ln,
        "ttl": ttl,
        "ip_id": ip_id,
        "payload": payload_hex.replace(":", "").lower(),
    }


def canonical_addr(a):
    import ipaddress
    try:
        return str(ipaddress.ip_address(a))
    except ValueError:
        return a


def compare(capture, rstscope, verbose):
    expected = {}
    with open(capture + ".rst.tsv", encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines[1:]:
        if not line.strip():
            continue
        frame, row = tshark_normalised(line.split("\t"))
        expected[frame] = row
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run([rstscope, "-q", "--max-payload", "65535", "-j", "1", "-o", out, capture],
                              capture_output=True, text=True)
        log = os.path.join(out, "reset.log")
        ours = {}
        if os.path.exists(log):
            for row in read_reset_log(log):
                ours[row["frame"]] = ours_normalised(row)
    problems = []
    for frame in sorted(set(expected) | set(ours), key=int):
        e, o = expected.get(frame), ours.get(frame)
        if e is None:
            problems.append("frame %s: rstscope reports a RST tshark does not" % frame)
            continue
        if o is None:
            problems.append("frame %s: missing (tshark: %s)" % (frame, e))
            continue
        for k in e:
            ev, ov = e[k], o[k]
            if k in ("src", "dst"):
                ev, ov = canonical_addr(ev), canonical_addr(ov)
            if ev != ov:
                problems.append("frame %s: %s tshark=%r rstscope=%r" % (frame, k, ev, ov))
    agreeing = sum(1 for fr in expected if fr in ours and not any(
        p.startswith("frame %s:" % fr) for p in problems))
    return len(expected), len(ours), agreeing, problems, proc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--rstscope", default=os.environ.get("RSTSCOPE", "target/release/rstscope"))
    ap.add_argument("--min-agreement", type=float, default=1.0)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    captures = []
    for d in args.dirs:
        for root, _, names in os.walk(d):
            for n in names:
                if n.endswith(".rst.tsv"):
                    captures.append(os.path.join(root, n[: -len(".rst.tsv")]))
    captures.sort()
    total_expected = total_ours = total_agree = 0
    bad_files = 0
    for cap in captures:
        n_exp, n_ours, n_agree, problems, proc = compare(cap, args.rstscope, args.verbose)
        total_expected += n_exp
        total_ours += n_ours
        total_agree += n_agree
        if problems:
            bad_files += 1
            print("DISAGREE %s: tshark %d RSTs, rstscope %d, agreeing %d" % (cap, n_exp, n_ours, n_agree))
            for p in problems[: (50 if args.verbose else 5)]:
                print("    " + p)
        elif args.verbose:
            print("ok       %s: %d RSTs" % (cap, n_exp))
        if proc.returncode not in (0, 1) or (args.verbose and proc.stderr.strip()):
            print("    rstscope exit %d: %s" % (proc.returncode, proc.stderr.strip()[:500]))
    denom = max(total_expected, total_ours)
    rate = total_agree / denom if denom else 1.0
    print("tshark agreement: %d captures, %d with differences; tshark %d RSTs, rstscope %d, "
          "identical field for field %d (%.2f %%)"
          % (len(captures), bad_files, total_expected, total_ours, total_agree, 100 * rate))
    return 0 if rate >= args.min_agreement else 1


if __name__ == "__main__":
    sys.exit(main())
