#!/usr/bin/env python3
"""Check that carrying connections across runs (`--state`) loses and changes no row.

For every capture under the DIRs (recursively; names ending .pcap, .pcapng or .cap, read by
their magic bytes) with at least --min-rsts TCP RSTs (counted from the `F.rst.tsv` beside it,
else from one rstscope run over it):

1. cut it at random packet boundaries into K pieces (K random in --pieces), each a valid
   capture of the same format holding at least one packet: classic pcap gets the file header
   again, pcapng the section header and the interface (and other non-packet) blocks in force.
   Pieces stay ordered by their first packet's time, since rstscope orders a sensor's files
   by it: a cut that would give a piece an earlier first packet than the piece before it is
   moved forward to the next frame that keeps the order (or dropped);
2. deliver the pieces one per run into work/arch/ (mtime 10 minutes ago) and run
   `rstscope -q --state work/state.json -o work/out work/arch/`, with --finish on the last
   run; after each run, no log (reset.*, conn_rst.*) written by an earlier run may have
   changed or gone, and rstscope_runs.log must have grown by exactly one JSON object line
   (whose exit_status, when there, is the run's, and whose rows, when there, are the rows of
   the logs that run wrote);
3. run rstscope once over all the pieces: `rstscope -q -o work/one work/arch/`;
4. the rows of every delivered log (OUT/reset.*.log, .log.gz, .csv, .csv.gz) taken together
   must be the rows of work/one's log, as a multiset, every field.

A capture whose original rstscope run reports an error (exit status 1, e.g. truncated) is still
checked: the bytes from the error on go verbatim into the last piece, so the last incremental
run and the one run report it too. Captures the cutter cannot read the way rstscope does
(compressed, not a capture, a pcapng block it cannot walk) are skipped with a note.

--self-test checks the cutter instead, on every capture under the DIRs: the pieces parse as
valid captures, their packets in order are the original's (bytes, time, link type), the pieces
are in first-packet order; with --rstscope also that rstscope reads the pieces (named in order)
with the exit status it gives the original, and finds the same rows apart from source/frame.

Usage:
  scripts/carry-check.py --rstscope BIN [--seed N] [--min-rsts 8] [--pieces 2-4]
                         [--format tsv|json|csv] [--gzip] [-j N] [--keep] [-v] DIR...
  scripts/carry-check.py --self-test [--rstscope BIN] [--rounds N] [-v] DIR...

Exit status: 0 when every check passed, 1 when any failed, 2 on a usage error.
"""

import argparse
import collections
import csv
import dataclasses
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")
# Mirrors rstscope's capture reader (crates/capture/src/lib.rs).
DEFAULT_MAX_CAPLEN = 262_144
HARD_MAX_RECORD = 64 * 1024 * 1024
RUN_TIMEOUT = 300

PCAP_MAGICS = {
    # magic bytes: (big endian, nanoseconds, modified format)
    bytes.fromhex("d4c3b2a1"): (False, False, False),
    bytes.fromhex("a1b2c3d4"): (True, False, False),
    bytes.fromhex("4d3cb2a1"): (False, True, False),
    bytes.fromhex("a1b23c4d"): (True, True, False),
    bytes.fromhex("34cdb2a1"): (False, False, True),
}
PCAPNG_MAGIC = bytes.fromhex("0a0d0d0a")

SHB, IDB, PB_OBSOLETE, SPB, NRB, ISB, EPB, JOURNAL, DSB = 0x0A0D0D0A, 1, 2, 3, 4, 5, 6, 9, 0x0A
CUSTOM = (0x00000BAD, 0x40000BAD)
PACKET_BLOCKS = (EPB, SPB, PB_OBSOLETE)
# Blocks that rstscope (like Wireshark) counts as frames although they hold no packet: they are
# left where they fall, never repeated at the head of a later piece.
FRAME_BLOCKS = (JOURNAL,) + CUSTOM


class Unreadable(Exception):
    """The cutter cannot walk this file the way rstscope does."""


@dataclasses.dataclass
class Packet:
    start: int
    end: int
    ts_ns: int | None  # None: rstscope would not give it its own time (SPB, unknown interface)
    link: int | None
    # pcapng: (section index, number of repeated blocks of that section before this packet)
    head: tuple[int, int] | None = None


@dataclasses.dataclass
class Capture:
    kind: str  # "pcap" or "pcapng"
    data: bytes
    packets: list
    tail: int  # offset where reading stops with an error (len(data) when it does not)
    error: str | None
    sections: list  # pcapng: [(shb (start, end), [(start, end) of blocks to repeat])]

    def packet_bytes(self, p):
        return self.data[p.start:p.end]

    def ts_backwards(self):
        """Number of packets whose time is before the previous packet's."""
        n, last = 0, None
        for p in self.packets:
            if p.ts_ns is None:
                continue
            if last is not None and p.ts_ns < last:
                n += 1
            last = p.ts_ns
        return n


def parse_capture(data):
    if not data:
        raise Unreadable("empty file")
    magic = data[:4]
    if magic in PCAP_MAGICS:
        return parse_pcap(data)
    if magic == PCAPNG_MAGIC:
        return parse_pcapng(data)
    if magic[:2] == b"\x1f\x8b":
        raise Unreadable("gzip-compressed (the cutter reads plain captures only)")
    if magic == bytes.fromhex("28b52ffd"):
        raise Unreadable("zstd-compressed (the cutter reads plain captures only)")
    raise Unreadable("not a pcap or pcapng file (first bytes %s)" % magic.hex(" "))


def parse_pcap(data):
    big, nanos, modified = PCAP_MAGICS[data[:4]]
    if len(data) < 24:
        raise Unreadable("truncated pcap file header")
    e = ">" if big else "<"
    snaplen = struct.unpack_from(e + "I", data, 16)[0]
    linktype = struct.unpack_from(e + "I", data, 20)[0] & 0xFFFF
    max_caplen = max(DEFAULT_MAX_CAPLEN, min(snaplen, HARD_MAX_RECORD))
    rec_hdr = 24 if modified else 16
    re_ = ">" if big and not modified else "<"
    packets, off, error = [], 24, None
    while off < len(data):
        if len(data) - off < rec_hdr:
            error = "truncated pcap record header at byte offset %d" % off
            break
        ts_sec, ts_frac, caplen = struct.unpack_from(re_ + "III", data, off)
        if caplen > max_caplen:
            error = "corrupt pcap record at byte offset %d (captured length %d)" % (off, caplen)
            break
        need = rec_hdr + caplen
        if len(data) - off < need:
            error = "truncated pcap record at byte offset %d" % off
            break
        ts = ts_sec * 1_000_000_000 + (ts_frac if nanos else ts_frac * 1000)
        packets.append(Packet(off, off + need, ts, linktype))
        off += need
    return Capture("pcap", data, packets, off, error, [])


def ts_units(tsresol):
    n = tsresol & 0x7F
    if tsresol & 0x80 == 0:
        return 10**n if 10**n < 2**64 else None
    return 1 << n if n < 64 else None


def idb_interface(body, e):
    """(link type, units per second, offset seconds) of an interface description block body,
    read as pcap-parser and rstscope read it (the last if_tsresol, the first if_tsoffset)."""
    if len(body) < 8:
        raise ValueError("short interface description block")
    linktype = struct.unpack_from(e + "H", body, 0)[0]
    tsresol, tsoffset, off = 6, None, 8
    while len(body) - off >= 4:
        code, olen = struct.unpack_from(e + "HH", body, off)
        padded = (olen + 3) & ~3
        if len(body) - off - 4 < padded:
            break
        value = body[off + 4:off + 4 + padded]
        if code == 9 and value:
            tsresol = value[0]
        elif code == 14 and tsoffset is None and len(value) >= 8:
            tsoffset = struct.unpack_from(e + "q", value, 0)[0]
        off += 4 + padded
    units = ts_units(tsresol)
    if units is None:
        raise ValueError("unsupported if_tsresol 0x%02x" % tsresol)
    return linktype, units, tsoffset or 0


def pcapng_ts(raw, units, offset_s):
    return (raw // units) * 1_000_000_000 + (raw % units) * 1_000_000_000 // units + offset_s * 1_000_000_000


def parse_pcapng(data):
    packets, sections, error = [], [], None
    e, interfaces, off = "<", [], 0
    while off < len(data):
        if len(data) - off < 12:
            error = "truncated pcapng block header at byte offset %d" % off
            break
        raw_type = struct.unpack_from("<I", data, off)[0]
        if raw_type == SHB:
            bom = data[off + 8:off + 12]
            if bom == bytes.fromhex("4d3c2b1a"):
                e = "<"
            elif bom == bytes.fromhex("1a2b3c4d"):
                e = ">"
            else:
                error = "bad byte-order magic at byte offset %d" % off
                break
        btype, blen = struct.unpack_from(e + "II", data, off)
        if blen < 12 or blen % 4 or blen > HARD_MAX_RECORD:
            error = "invalid block length %d at byte offset %d" % (blen, off)
            break
        if len(data) - off < blen:
            error = "truncated pcapng block at byte offset %d" % off
            break
        if struct.unpack_from(e + "I", data, off + blen - 4)[0] != blen:
            error = "trailing block length mismatch at byte offset %d" % off
            break
        body = data[off + 8:off + blen - 4]
        end = off + blen
        try:
            if btype == SHB:
                if len(body) < 16:
                    raise ValueError("short section header block")
                interfaces = []
                sections.append(((off, end), []))
            elif btype == IDB:
                interfaces.append(idb_interface(body, e))
                sections[-1][1].append((off, end))
            elif btype in PACKET_BLOCKS:
                if btype == SPB:
                    if len(body) < 4:
                        raise ValueError("short simple packet block")
                    if_id, raw = 0, None
                elif btype == EPB:
                    if len(body) < 20:
                        raise ValueError("short enhanced packet block")
                    if_id, hi, lo = struct.unpack_from(e + "III", body, 0)
                    raw = (hi << 32) | lo
                else:
                    if len(body) < 20:
                        raise ValueError("short packet block")
                    if_id = struct.unpack_from(e + "H", body, 0)[0]
                    hi, lo = struct.unpack_from(e + "II", body, 4)
                    # rstscope (pcap-parser reads an unknown block's type little-endian) does
                    # not see an obsolete packet block in a big-endian section: never cut there
                    raw = (hi << 32) | lo if e == "<" else None
                ts = link = None
                if if_id < len(interfaces):
                    link, units, offset_s = interfaces[if_id]
                    if raw is not None:
                        ts = pcapng_ts(raw, units, offset_s)
                packets.append(Packet(off, end, ts, link, (len(sections) - 1, len(sections[-1][1]))))
            elif btype not in FRAME_BLOCKS:
                # name resolution, decryption secrets, interface statistics, unknown blocks:
                # repeated at the head of every later piece of this section
                sections[-1][1].append((off, end))
        except ValueError as exc:
            error = "%s at byte offset %d" % (exc, off)
            break
        off = end
    if not sections:
        raise Unreadable(error or "no section header block")
    return Capture("pcapng", data, packets, off, error, sections)


def choose_cuts(cap, rng, lo, hi):
    """Packet indices at which pieces 1.. start, and (wanted, moved, dropped) counts."""
    n = len(cap.packets)
    k = min(rng.randint(lo, hi), n)
    if k < 2:
        return [], (0, 0, 0)
    wanted = sorted(rng.sample(range(1, n), k - 1))
    first_ts = cap.packets[0].ts_ns
    if first_ts is None:  # an SPB first: rstscope gives it time 0
        first_ts = 0
    cuts, moved, dropped = [], 0, 0
    for w in wanted:
        c = max(w, cuts[-1] + 1 if cuts else 1)
        while c < n and (cap.packets[c].ts_ns is None or cap.packets[c].ts_ns < first_ts):
            c += 1
        if c >= n:
            dropped += 1
            continue
        if c != w:
            moved += 1
        cuts.append(c)
        first_ts = cap.packets[c].ts_ns
    return cuts, (len(wanted), moved, dropped)


def cut_pieces(cap, cuts):
    """The bytes of each piece."""
    starts = [0] + cuts
    pieces = []
    for i, s in enumerate(starts):
        begin = cap.packets[s].start if i else 0
        end = cap.packets[starts[i + 1]].start if i + 1 < len(starts) else len(cap.data)
        if i == 0:
            head = b""
        elif cap.kind == "pcap":
            head = cap.data[:24]
        else:
            sec, nrep = cap.packets[s].head
            (shb_s, shb_e), rep = cap.sections[sec]
            head = cap.data[shb_s:shb_e] + b"".join(cap.data[a:b] for a, b in rep[:nrep])
        pieces.append(head + cap.data[begin:end])
    return pieces


def piece_name(path, i):
    ext = os.path.splitext(path)[1].lower()
    if ext not in CAPTURE_SUFFIXES:
        ext = ".pcap"
    return "piece-%02d%s" % (i, ext)


def find_captures(dirs):
    """(path, name relative to its DIR) of every capture file, in name order."""
    out = []
    for d in dirs:
        if os.path.isfile(d):
            out.append((d, os.path.basename(d)))
            continue
        for root, subdirs, files in os.walk(d):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))
            for f in sorted(files):
                if f.startswith(".") or not f.lower().endswith(CAPTURE_SUFFIXES):
                    continue
                p = os.path.join(root, f)
                out.append((p, os.path.relpath(p, d)))
    return out


def tsv_rst_count(path):
    """RSTs listed in the tshark F.rst.tsv beside a capture, or None without one."""
    try:
        with open(path + ".rst.tsv", encoding="utf-8", errors="replace") as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
    except OSError:
        return None
    # a header line ("frame\tts\t...") is not a RST
    return sum(1 for l in lines if l.split("\t", 1)[0].strip().isdigit())


def run(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
        return p.returncode, p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return None, "timed out after %d s" % RUN_TIMEOUT


# ---------------------------------------------------------------- logs


def is_delivered_log(name):
    return name.startswith("reset.") and name.endswith((".log", ".log.gz", ".csv", ".csv.gz"))


def is_log(name):
    return name.startswith(("reset.", "conn_rst."))


def read_text(path):
    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", "surrogateescape")


@dataclasses.dataclass
class Rows:
    header: tuple  # TSV: (#fields, #types) lines; CSV: the header row; JSON: ()
    rows: list  # hashable rows: str (TSV, JSON) or tuple of fields (CSV)


def read_log(path, fmt):
    text = read_text(path)
    if fmt == "csv":
        recs = list(csv.reader(io.StringIO(text, newline="")))
        return Rows(tuple(recs[0]) if recs else (), [tuple(r) for r in recs[1:]])
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if fmt == "json":
        return Rows((), [l for l in lines if l.strip()])
    header = tuple(l for l in lines if l.startswith(("#fields\t", "#types\t")))
    return Rows(header, [l for l in lines if not l.startswith("#")])


def row_fields(row, fmt, header):
    """The row as {field: value}, for a readable diff."""
    try:
        if fmt == "json":
            d = json.loads(row)
            return d if isinstance(d, dict) else None
        if fmt == "csv":
            return dict(zip(header, row))
        names = header[0].split("\t")[1:] if header else []
        return dict(zip(names, row.split("\t")))
    except ValueError:
        return None


def show_row(row):
    s = ",".join(row) if isinstance(row, tuple) else row
    s = s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return s if len(s) <= 400 else s[:400] + "…"


def describe_diff(only_inc, only_one, fmt, header, limit=10):
    """Lines describing two multisets of rows that differ: rows of the same RST (source,
    frame) on both sides are shown field by field, the others whole."""
    out = []

    def key(row):
        d = row_fields(row, fmt, header)
        if not d or "source" not in d or "frame" not in d:
            return None, d
        return (str(d["source"]), str(d["frame"])), d

    inc = [(row,) + key(row) for row in only_inc.elements()]
    one = [(row,) + key(row) for row in only_one.elements()]
    one_by_key = collections.defaultdict(list)
    for item in one:
        if item[1] is not None:
            one_by_key[item[1]].append(item)
    paired, rest_inc = [], []
    for item in inc:
        if item[1] is not None and one_by_key.get(item[1]):
            paired.append((item, one_by_key[item[1]].pop(0)))
        else:
            rest_inc.append(item)
    used = {id(b) for _, b in paired}
    rest_one = [item for item in one if id(item) not in used]
    if paired:
        out.append("  same RST, fields differ (%d):" % len(paired))
        for (ra, ka, da), (rb, kb, db) in paired[:limit]:
            diffs = ["%s: incremental %s, one run %s" % (f, da.get(f), db.get(f))
                     for f in list(da) + [f for f in db if f not in da] if da.get(f) != db.get(f)]
            out.append("    %s frame %s: %s" % (ka[0], ka[1], "; ".join(diffs)))
        if len(paired) > limit:
            out.append("    … %d more" % (len(paired) - limit))
    for label, items in (("only in the incremental runs' logs", rest_inc), ("only in the one run's log", rest_one)):
        if items:
            out.append("  %s (%d):" % (label, len(items)))
            for item in items[:limit]:
                out.append("    " + show_row(item[0]))
            if len(items) > limit:
                out.append("    … %d more" % (len(items) - limit))
    return out


def snapshot(out_dir):
    snap = {}
    for name in sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []:
        p = os.path.join(out_dir, name)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                data = f.read()
            snap[name] = (len(data), hashlib.sha256(data).hexdigest())
    return snap


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


# ---------------------------------------------------------------- the check


class Totals:
    def __init__(self):
        self.captures = self.cut_runs = self.rows = self.mismatches = self.modified = 0
        self.run_errors = self.below = self.skipped = 0
        self.cuts_wanted = self.cuts_moved = self.cuts_dropped = 0
        self.backwards = []


def log_opts(args):
    opts = ["--format", args.format]
    if args.gzip:
        opts.append("--gzip")
    if args.threads:
        opts += ["-j", str(args.threads)]
    return opts


def check_capture(args, path, rel, cap, cuts, counts, work, tot):
    """Run the incremental and the one run over the pieces of one capture; returns the lines
    describing its failures (empty when it passed)."""
    fails = []
    bin_ = args.rstscope
    opts = log_opts(args)
    jopts = ["-j", str(args.threads)] if args.threads else []
    pieces = cut_pieces(cap, cuts)
    pdir, arch = os.path.join(work, "pieces"), os.path.join(work, "arch")
    out, one, orig = (os.path.join(work, d) for d in ("out", "one", "orig"))
    for d in (pdir, arch, out):
        os.makedirs(d)
    names = [piece_name(path, i) for i in range(len(pieces))]
    for name, data in zip(names, pieces):
        with open(os.path.join(pdir, name), "wb") as f:
            f.write(data)

    # The original's exit status says whether the pieces may end in an error.
    orig_rc, orig_err = run([bin_, "-q", "-o", orig] + jopts + [path])
    if orig_rc not in (0, 1):
        return None, "rstscope exits %s on the original: %s" % (orig_rc, orig_err.strip()[:200])
    if (orig_rc == 1) != (cap.error is not None):
        return None, ("rstscope %s the original but the cutter %s (%s)" % (
            "reports an error in" if orig_rc else "reads all of",
            "finds an error: " + cap.error if cap.error else "reads it whole",
            orig_err.strip().splitlines()[0] if orig_err.strip() else "no message"))

    frozen = {}  # log name -> (size, sha256) when first seen
    flagged = set()
    state = os.path.join(work, "state.json")
    runs_log = os.path.join(out, "rstscope_runs.log")
    mtime = time.time() - 600
    for i, name in enumerate(names):
        dst = os.path.join(arch, name)
        shutil.copyfile(os.path.join(pdir, name), dst)
        os.utime(dst, (mtime, mtime))
        before = read_bytes(runs_log)
        cmd = [bin_, "-q", "--state", state, "-o", out] + opts
        if i == len(names) - 1:
            cmd.append("--finish")
        rc, err = run(cmd + [arch + os.sep])
        tot.cut_runs += 1
        want = 1 if (cap.error and i == len(names) - 1) else 0
        if rc != want:
            tot.run_errors += 1
            fails.append("  run %d (%s): exit status %s, expected %d%s" % (
                i, name, rc, want, (": " + err.strip().replace("\n", " | ")[:300]) if err.strip() else ""))
        snap = snapshot(out)
        for lname, sig in sorted(frozen.items()):
            if lname in flagged:
                continue
            if snap.get(lname) != sig:
                flagged.add(lname)
                tot.modified += 1
                fails.append("  run %d (%s): %s, written by an earlier run, was %s" % (
                    i, name, lname, "removed" if lname not in snap else "modified"))
        new_logs = [n for n in snap if is_delivered_log(n) and n not in frozen]
        for lname, sig in snap.items():
            if is_log(lname) and lname not in frozen:
                frozen[lname] = sig
        after = read_bytes(runs_log)
        problem = None
        if not after.startswith(before):
            problem = "earlier lines changed"
        else:
            grown = after[len(before):]
            if grown.count(b"\n") != 1 or not grown.endswith(b"\n"):
                problem = "grew by %d lines, not 1%s" % (
                    grown.count(b"\n"), "" if after else " (no rstscope_runs.log)")
            else:
                try:
                    obj = json.loads(grown)
                    if not isinstance(obj, dict):
                        problem = "new line is not a JSON object"
                    elif "exit_status" in obj and str(obj["exit_status"]) != str(rc):
                        problem = "new line has exit_status %r, the run exited %s" % (obj["exit_status"], rc)
                    elif isinstance(obj.get("rows"), int):
                        n = sum(len(read_log(os.path.join(out, x), args.format).rows) for x in new_logs)
                        if obj["rows"] != n:
                            problem = "new line says rows %d, the logs this run wrote (%s) hold %d" % (
                                obj["rows"], ", ".join(new_logs) or "none", n)
                except ValueError as exc:
                    problem = "new line is not JSON (%s)" % exc
        if problem:
            tot.run_errors += 1
            fails.append("  run %d (%s): rstscope_runs.log %s" % (i, name, problem))

    rc, err = run([bin_, "-q", "-o", one] + opts + [arch + os.sep])
    want = 1 if cap.error else 0
    if rc != want:
        tot.run_errors += 1
        fails.append("  one run: exit status %s, expected %d%s" % (
            rc, want, (": " + err.strip().replace("\n", " | ")[:300]) if err.strip() else ""))

    one_logs = [n for n in sorted(os.listdir(one)) if is_delivered_log(n)] if os.path.isdir(one) else []
    if len(one_logs) != 1:
        tot.mismatches += 1
        fails.append("  one run wrote %d logs (%s), expected 1" % (len(one_logs), ", ".join(one_logs) or "none"))
        return fails, None
    ref = read_log(os.path.join(one, one_logs[0]), args.format)
    tot.rows += len(ref.rows)
    delivered = [n for n in sorted(os.listdir(out)) if is_delivered_log(n)]
    got = collections.Counter()
    bad_header = []
    for n in delivered:
        r = read_log(os.path.join(out, n), args.format)
        got.update(r.rows)
        if r.header != ref.header:
            bad_header.append(n)
    want_rows = collections.Counter(ref.rows)
    if got != want_rows or bad_header:
        tot.mismatches += 1
        fails.append("  rows differ: incremental logs %s hold %d rows, the one run %d" % (
            ", ".join(delivered) or "(none)", sum(got.values()), len(ref.rows)))
        if bad_header:
            fails.append("  header (fields/types) differs from the one run's in: " + ", ".join(bad_header))
        fails += describe_diff(got - want_rows, want_rows - got, args.format, ref.header)
    return fails, None


def cut_summary(cap, cuts, counts):
    frames = ", ".join(str(c + 1) for c in cuts) or "none"
    wanted, moved, dropped = counts
    s = "K=%d, pieces start at packets 1, %s" % (len(cuts) + 1, frames) if cuts else "K=1 (no cut)"
    if moved or dropped:
        s += " (%d of %d cuts moved forward, %d dropped to keep first-packet order)" % (moved, wanted, dropped)
    return s


def file_rng(seed, rel):
    return random.Random(seed + zlib.crc32(rel.replace(os.sep, "/").encode("utf-8", "surrogateescape")))


def main_check(args):
    tot = Totals()
    lo, hi = args.pieces
    for path, rel in find_captures(args.dirs):
        try:
            with open(path, "rb") as f:
                cap = parse_capture(f.read())
        except (OSError, Unreadable) as exc:
            tot.skipped += 1
            print("note: %s skipped: %s" % (path, exc), file=sys.stderr)
            continue
        nrst = tsv_rst_count(path)
        if nrst is None:
            with tempfile.TemporaryDirectory(prefix="carry-check-count-") as tmp:
                rc, _ = run([args.rstscope, "-q", "-o", tmp, path])
                lp = os.path.join(tmp, "reset.log")
                nrst = len(read_log(lp, "tsv").rows) if rc in (0, 1) and os.path.exists(lp) else 0
        if nrst < args.min_rsts:
            tot.below += 1
            if args.verbose:
                print("%s: %d RSTs, below --min-rsts" % (path, nrst))
            continue
        if len(cap.packets) < 1:
            tot.skipped += 1
            print("note: %s skipped: no packet the cutter can read" % path, file=sys.stderr)
            continue
        cuts, counts = choose_cuts(cap, file_rng(args.seed, rel), lo, hi)
        tot.cuts_wanted += counts[0]
        tot.cuts_moved += counts[1]
        tot.cuts_dropped += counts[2]
        if cap.ts_backwards():
            tot.backwards.append((path, cap.ts_backwards()))
        work = tempfile.mkdtemp(prefix="carry-check-")
        try:
            fails, skip = check_capture(args, path, rel, cap, cuts, counts, work, tot)
        except Exception as exc:  # an unreadable log, say: report it, go on with the next capture
            tot.mismatches += 1
            fails, skip = ["  check raised %r" % exc], None
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        if skip:
            tot.skipped += 1
            print("note: %s skipped: %s" % (path, skip), file=sys.stderr)
            continue
        tot.captures += 1
        if fails or args.verbose:
            print("%s %s: %s%s" % ("FAIL" if fails else "ok", path, cut_summary(cap, cuts, counts),
                                   ", original has an error (%s)" % cap.error if cap.error else ""))
            if args.keep:
                print("  work dir: %s" % work)
            for line in fails:
                print(line)
    print("carry-check: skipped %d captures below --min-rsts and %d unreadable; %d cuts drawn, "
          "%d moved forward and %d dropped to keep first-packet order; %d captures with "
          "timestamps going backwards%s" % (
              tot.below, tot.skipped, tot.cuts_wanted, tot.cuts_moved, tot.cuts_dropped, len(tot.backwards),
              "" if not tot.backwards else " (%s)" % ", ".join(
                  "%s: %d" % (os.path.basename(p), n) for p, n in tot.backwards)))
    print("carry-check: %d captures, %d cut runs, %d rows, %d mismatches, %d log files modified, %d run errors"
          % (tot.captures, tot.cut_runs, tot.rows, tot.mismatches, tot.modified, tot.run_errors))
    return 1 if tot.mismatches or tot.modified or tot.run_errors else 0


# ---------------------------------------------------------------- self-test


def rows_without(path, drop=("source", "frame")):
    """Rows of a TSV reset.log with the given columns removed."""
    r = read_log(path, "tsv")
    names = r.header[0].split("\t")[1:] if r.header else []
    keep = [i for i, n in enumerate(names) if n not in drop]
    return collections.Counter("\t".join(f[i] for i in keep if i < len(f)) for f in (row.split("\t") for row in r.rows))


def self_test_one(args, path, rel, cap, rnd, stats):
    fails = []
    lo, hi = args.pieces
    cuts, counts = choose_cuts(cap, file_rng(args.seed + rnd, rel), lo, hi)
    stats["wanted"] += counts[0]
    stats["moved"] += counts[1]
    stats["dropped"] += counts[2]
    pieces = cut_pieces(cap, cuts)
    if len(pieces) != len(cuts) + 1:
        fails.append("%d pieces for %d cuts" % (len(pieces), len(cuts)))
    orig = [(cap.packet_bytes(p), p.ts_ns, p.link) for p in cap.packets]
    got, firsts = [], []
    for i, data in enumerate(pieces):
        try:
            pc = parse_capture(data)
        except Unreadable as exc:
            fails.append("piece %d does not parse: %s" % (i, exc))
            continue
        if pc.kind != cap.kind or data[:4] != cap.data[:4]:
            fails.append("piece %d is %s, not %s" % (i, pc.kind, cap.kind))
        if not pc.packets:
            fails.append("piece %d holds no packet" % i)
        else:
            t = pc.packets[0].ts_ns
            firsts.append(0 if t is None else t)
        last = i == len(pieces) - 1
        if pc.error and not last:
            fails.append("piece %d has an error: %s" % (i, pc.error))
        if last:
            if (pc.error is None) != (cap.error is None):
                fails.append("last piece error %r, original %r" % (pc.error, cap.error))
            if data[pc.tail:] != cap.data[cap.tail:]:
                fails.append("last piece's unread tail differs from the original's")
        got += [(pc.packet_bytes(p), p.ts_ns, p.link) for p in pc.packets]
    if got != orig:
        n = next((j for j, (a, b) in enumerate(zip(got, orig)) if a != b), min(len(got), len(orig)))
        fails.append("pieces' packets differ from the original's (%d vs %d packets, first difference at packet %d)"
                     % (len(got), len(orig), n + 1))
    if any(b < a for a, b in zip(firsts, firsts[1:])):
        fails.append("pieces out of first-packet order: %s" % firsts)
    if args.rstscope and not fails:
        with tempfile.TemporaryDirectory(prefix="carry-check-self-") as tmp:
            names = []
            for i, data in enumerate(pieces):
                p = os.path.join(tmp, piece_name(path, i))
                with open(p, "wb") as f:
                    f.write(data)
                names.append(p)
            rc_o, err_o = run([args.rstscope, "-q", "-o", os.path.join(tmp, "orig"), path])
            rc_p, err_p = run([args.rstscope, "-q", "-o", os.path.join(tmp, "pieces")] + names)
            stats["rstscope runs"] += 2
            if rc_o not in (0, 1):
                stats["rstscope cannot read"] += 1
                if args.verbose:
                    print("note: %s: rstscope exits %s on the original: %s" % (path, rc_o, err_o.strip()[:200]))
            elif rc_p != rc_o:
                fails.append("rstscope exits %s on the pieces, %s on the original: %s" % (
                    rc_p, rc_o, (err_p.strip() or err_o.strip()).replace("\n", " | ")[:300]))
            elif (rc_o == 1) != (cap.error is not None):
                fails.append("rstscope %s the original, the cutter %s" % (
                    "reports an error in" if rc_o else "reads all of", cap.error or "reads it whole"))
            else:
                a = rows_without(os.path.join(tmp, "orig", "reset.log"))
                b = rows_without(os.path.join(tmp, "pieces", "reset.log"))
                if a != b:
                    fails.append("rows apart from source/frame differ between the original and its pieces:")
                    fails += describe_diff(b - a, a - b, "raw", ())
    return cuts, counts, fails


def main_self_test(args):
    stats = collections.Counter()
    nfail = 0
    backwards = []
    t0 = time.monotonic()
    for path, rel in find_captures(args.dirs):
        try:
            with open(path, "rb") as f:
                cap = parse_capture(f.read())
        except (OSError, Unreadable) as exc:
            stats["unreadable"] += 1
            print("note: %s skipped: %s" % (path, exc), file=sys.stderr)
            continue
        if not cap.packets:
            stats["unreadable"] += 1
            print("note: %s skipped: no packet to cut%s" % (path, " (%s)" % cap.error if cap.error else ""),
                  file=sys.stderr)
            continue
        stats["captures"] += 1
        if cap.error:
            stats["with an error"] += 1
        if cap.ts_backwards():
            backwards.append((path, cap.ts_backwards()))
        for rnd in range(args.rounds):
            stats["cuts"] += 1
            try:
                cuts, counts, fails = self_test_one(args, path, rel, cap, rnd, stats)
            except Exception as exc:  # a cutter bug must not hide the other files
                cuts, counts, fails = [], (0, 0, 0), ["cutter raised %r" % exc]
            if fails or args.verbose:
                print("%s %s (round %d, %d packets, %s): %s" % (
                    "FAIL" if fails else "ok", path, rnd, len(cap.packets), cap.kind, cut_summary(cap, cuts, counts)))
                for f in fails:
                    print("  " + f if not f.startswith("  ") else f)
            if fails:
                nfail += 1
    for p, n in backwards:
        print("note: %s: %d packets earlier than the packet before them" % (p, n))
    print("carry-check self-test: %d captures (%d with a read error kept in the last piece), %d unreadable, "
          "%d cuttings, %d cuts drawn, %d moved forward, %d dropped, %d rstscope runs, %d failures, %.1f s"
          % (stats["captures"], stats["with an error"], stats["unreadable"], stats["cuts"], stats["wanted"],
             stats["moved"], stats["dropped"], stats["rstscope runs"], nfail, time.monotonic() - t0))
    return 1 if nfail else 0


def pieces_range(s):
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", s)
    if not m:
        raise argparse.ArgumentTypeError("expected N or LO-HI, e.g. 2-4")
    lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
    if lo < 1 or hi < lo:
        raise argparse.ArgumentTypeError("expected 1 <= LO <= HI")
    return lo, hi


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", metavar="DIR", help="directories searched recursively for captures")
    ap.add_argument("--rstscope", help="the rstscope binary (required unless --self-test)")
    ap.add_argument("--seed", type=int, default=0, help="random seed for the cuts (default 0)")
    ap.add_argument("--min-rsts", type=int, default=8, help="check captures with at least this many RSTs (default 8)")
    ap.add_argument("--pieces", type=pieces_range, default=(2, 4), help="pieces per capture, LO-HI (default 2-4)")
    ap.add_argument("--format", choices=("tsv", "json", "csv"), default="tsv", help="passed to rstscope")
    ap.add_argument("--gzip", action="store_true", help="passed to rstscope")
    ap.add_argument("-j", "--threads", type=int, help="passed to rstscope")
    ap.add_argument("--keep", action="store_true", help="keep each capture's work directory and print it")
    ap.add_argument("--self-test", action="store_true", help="check the cutter instead (see above)")
    ap.add_argument("--rounds", type=int, default=1, help="--self-test: cuttings per capture, seeds SEED.. (default 1)")
    ap.add_argument("-v", "--verbose", action="store_true", help="a line for every capture, not only failures")
    args = ap.parse_args()
    if args.rstscope:
        args.rstscope = os.path.abspath(args.rstscope)
        if not os.access(args.rstscope, os.X_OK):
            ap.error("--rstscope %s is not an executable" % args.rstscope)
    if args.self_test:
        return main_self_test(args)
    if not args.rstscope:
        ap.error("--rstscope is required (unless --self-test)")
    return main_check(args)


if __name__ == "__main__":
    sys.exit(main())
