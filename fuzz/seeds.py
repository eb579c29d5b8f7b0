#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (used by scripts/fuzz.sh).

    seeds.py TARGET SRC_DIR|- DST_DIR

capture_framed, decode: SRC_DIR holds captures; their records (pcap) or blocks (pcapng) are
written in the targets' input layouts. conn_log, classifier, zeeklog_tsv: hand-made inputs.
"""
import glob
import json
import os
import random
import struct
import sys

# The link-type table of fuzz/harness/{capture,decode}.rs.
LT = [0, 1, 9, 10, 12, 14, 50, 51, 101, 104, 108, 113, 228, 229, 276, 147]


def pcap_packets(b):
    m = b[:4]
    if m in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        e = '<'
    elif m in (b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'):
        e = '>'
    else:
        return None
    if len(b) < 24:
        return None
    nanos = m in (b'\x4d\x3c\xb2\xa1', b'\xa1\xb2\x3c\x4d')
    lt = struct.unpack(e + 'I', b[20:24])[0] & 0xffff
    off, pk = 24, []
    while off + 16 <= len(b):
        _, _, cl, _ = struct.unpack(e + 'IIII', b[off:off + 16])
        if off + 16 + cl > len(b):
            break
        pk.append(b[off + 16:off + 16 + cl])
        off += 16 + cl
    return e, nanos, lt, pk, b[24:]


def framed_and_decode(target, src, dst):
    for f in sorted(glob.glob(os.path.join(src, '*'))):
        b = open(f, 'rb').read()
        base = os.path.basename(f)
        r = pcap_packets(b)
        if r:
            e, nanos, lt, pk, body = r
            if lt not in LT:
                continue
            li = LT.index(lt)
            sel = (1 if e == '>' else 0) | (0x10 if nanos else 0)
            if target == 'capture_framed':
                open(os.path.join(dst, base), 'wb').write(bytes([sel, li]) + body[:20000])
                open(os.path.join(dst, base + '.z'), 'wb').write(bytes([sel | 0x80, li]) + body[:4000])
            else:
                for i, p in enumerate(pk[:40]):
                    open(os.path.join(dst, '%s.%d' % (base, i)), 'wb').write(bytes([li]) + p)
        elif b[:4] == b'\x0a\x0d\x0d\x0a' and len(b) > 28 and target == 'capture_framed':
            e = '<' if b[8:12] == b'\x4d\x3c\x2b\x1a' else '>'
            shl = struct.unpack(e + 'I', b[4:8])[0]
            if shl + 10 > len(b):
                continue
            lt = struct.unpack(e + 'H', b[shl + 8:shl + 10])[0]
            li = LT.index(lt) if lt in LT else 1
            sel = 2 | (1 if e == '>' else 0)
            open(os.path.join(dst, base), 'wb').write(bytes([sel, li]) + b[shl:][:20000])


def conn_log(dst):
    hdr = ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
           "#open\t2011-03-13-06-13-20\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\t"
           "service\tduration\tconn_state\thistory\tcommunity_id\ttunnel_parents\n#types\ttime\tstring\taddr\t"
           "port\taddr\tport\tenum\tstring\tinterval\tstring\tstring\tstring\tset[string]\n")
    rows = [
        "1300000000.000000\tCx1\t10.0.0.1\t40000\t10.0.0.2\t80\ttcp\t-\t0.000100\tREJ\tSr\t1:LQU9qZlK+B5F3KDmev6m5PMibrg=\t(empty)",
        "1300000001.000000\tCx2\t10.0.0.2\t80\t10.0.0.1\t40000\ttcp\t-\t-\tREJ\tSr\t-\ta,b\\x2cc",
        "1300000099.500000\tCx3\t2001:db8::1\t443\t2001:db8::2\t55555\ttcp\thttp\t3.5\tRSTO\tShADadR\t1:3V71V58M3Ksw/yuFALMcW0LAHvc=\t-",
        "XXXXXXXXXX.XXXXXX\tCx4\t127.0.0.1\t40896\t127.0.0.1\t22\ttcp\t-\t0.001845\tRSTR\tShADadFr\t-\t-",
    ]
    open(os.path.join(dst, 'handmade.tsv'), 'w').write(hdr + "\n".join(rows) + "\n#close\t2011-03-13-06-13-21\n")
    js = [
        {"ts": 1300000000.0, "uid": "Cj1", "id.orig_h": "10.0.0.1", "id.orig_p": 40000, "id.resp_h": "10.0.0.2",
         "id.resp_p": 80, "proto": "tcp", "duration": 0.0001, "conn_state": "REJ", "history": "Sr",
         "community_id": "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "tunnel_parents": []},
        {"ts": "2011-03-13T07:08:19.500000Z", "uid": "Cj3", "id.orig_h": "2001:db8::1", "id.orig_p": 443,
         "id.resp_h": "2001:db8::2", "id.resp_p": 55555, "proto": "tcp", "duration": 3.5, "history": "ShADadR",
         "local_orig": True, "orig_bytes": 12, "x": {"y": 1}},
        {"uid": "Cj4", "id.orig_h": "127.0.0.1", "id.orig_p": 40896, "id.resp_h": "127.0.0.1", "id.resp_p": 22,
         "proto": "tcp", "history": "ShADadFr", "ts": 1.3e9},
    ]
    open(os.path.join(dst, 'handmade.json'), 'w').write("\n".join(json.dumps(j) for j in js) + "\n")
    open(os.path.join(dst, 'cut.tsv'), 'w').write(
        "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\thistory\n"
        "1300000000.0\tCc1\t10.0.0.1\t40000\t10.0.0.2\t80\tSr\n")
    open(os.path.join(dst, 'sep.tsv'), 'w').write(
        "#separator ,\n#set_separator,;\n#fields,ts,uid,id.orig_h,id.orig_p,id.resp_h,id.resp_p,duration,history\n"
        "#types,time,string,addr,port,addr,port,interval,string\n"
        "1300000000.0,Cs1,10.0.0.1,40000,10.0.0.2,80,1e3,Sr\n")


def classifier(dst):
    # Record layout: see fuzz/harness/classifier.rs.
    F, S, R, P, A = 1, 2, 4, 8, 16

    def rec(si, di, sp, dp, flags, seq=None, ack=None, dseq=0, dack=0, win=8192, ttl=64, ipid=1, plen=0,
            dt=1, scale=0, wopt=0):
        r1 = sp | (dp << 3)
        if seq is None:
            r1 |= 0x40
            seqb = struct.pack('>bxxx', dseq)
        else:
            seqb = struct.pack('>I', seq)
        if ack is None:
            r1 |= 0x80
            ackb = struct.pack('>bxxx', dack)
        else:
            ackb = struct.pack('>I', ack)
        w = (win & 0xff00) | wopt if wopt else win
        return bytes([si | (di << 3), r1]) + seqb + ackb + struct.pack(
            '>HHBHBH', flags, w, ttl, ipid, plen, (scale << 14) | dt)

    def c2s(flags, **k):
        return rec(0, 1, 3, 0, flags, **k)

    def s2c(flags, **k):
        return rec(1, 0, 0, 3, flags, **k)

    seeds = {
        'refused': [c2s(S, seq=1000, ack=0), s2c(R | A, seq=0, ack=1001)],
        'refused3': [c2s(S, seq=1000, ack=0), s2c(R | A, seq=0, ack=1001), c2s(S, seq=1000, ack=0, dt=3000),
                     s2c(R | A, seq=0, ack=1001), c2s(S, seq=1000, ack=0, dt=6000), s2c(R | A, seq=0, ack=1001)],
        'abort': [c2s(S, seq=1000, ack=0, wopt=0x37), s2c(S | A, seq=5000, dack=0, wopt=0x32),
                  c2s(A, dseq=0, dack=0), c2s(P | A, dseq=0, dack=0, plen=20), s2c(A, dseq=0, dack=0),
                  s2c(R | A, dseq=0, dack=0, win=0)],
        'after_close': [c2s(S, seq=1, ack=0), s2c(S | A, seq=9, dack=0), c2s(A, dseq=0, dack=0),
                        c2s(F | A, dseq=0, dack=0), s2c(F | A, dseq=0, dack=0), c2s(A, dseq=0, dack=0),
                        s2c(R, dseq=0, ack=0), s2c(R, dseq=0, ack=0, dt=10, scale=2)],
        'injected': [c2s(S, seq=1, ack=0), s2c(S | A, seq=9, dack=0, ttl=50), c2s(P | A, dseq=0, dack=0, plen=30),
                     s2c(R | A, dseq=0, dack=0, ttl=120, win=1000, plen=8), s2c(R | A, dseq=100, dack=0, ttl=121),
                     s2c(R | A, dseq=50, dack=5, ttl=122), s2c(P | A, dseq=0, dack=0, plen=40, ttl=50)],
        'unsolicited': [c2s(A, seq=77, ack=88), s2c(R, seq=88, ack=0)],
        'orphan_invalid': [s2c(R | S, seq=0, ack=0), c2s(R | F | A, seq=0, ack=0), rec(4, 5, 1, 2, R, seq=5, ack=0),
                           rec(6, 6, 4, 4, R | A, seq=0, ack=0, dt=0x3fff, scale=3)],
        'evict': [rec(i % 4, 1 + (i % 3), i % 8, (i * 3) % 8, S if i % 2 else R | A, seq=i * 1000, ack=0)
                  for i in range(24)],
        'storm': [c2s(S, seq=1, ack=0), s2c(S | A, seq=9, dack=0)] +
                 [s2c(R, seq=10 + i, ack=0, dt=5, scale=1) for i in range(12)],
        'timeouts': [c2s(S, seq=1, ack=0), s2c(S | A, seq=9, dack=0), c2s(A, dseq=0, dack=0),
                     c2s(A, dseq=0, dack=0, dt=400, scale=2), s2c(R, dseq=0, ack=0, dt=70, scale=2),
                     c2s(S, seq=1, ack=0, dt=3, scale=3), s2c(R | A, seq=0, dack=0)],
    }
    cfgs = [b'\x00\x00', b'\x07\x00', b'\x51\x09', b'\x63\xff', b'\x40\x00']
    for name, recs in seeds.items():
        for i, c in enumerate(cfgs):
            open(os.path.join(dst, '%s.%d' % (name, i)), 'wb').write(c + b''.join(recs))
    rnd = random.Random(1)
    for i in range(10):
        n = 2 + 20 * rnd.randrange(1, 30)
        open(os.path.join(dst, 'rand.%d' % i), 'wb').write(bytes(rnd.randrange(256) for _ in range(n)))


def zeeklog_tsv(dst):
    seeds = [
        b'reset\xffhello\tworld\xff-\xff(empty)\xff#fields\xff"quoted\xffa,b\xfec\xfe\xfe\xff\x00\x01\x02\xff'
        b'\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff\xc3\x28\\x41\\\\',
        b'\xff\xff\xff',
        b'#\xff\r\n\xff\x7f\xff\xe2\x82',
    ]
    for i, s in enumerate(seeds):
        open(os.path.join(dst, 's%d' % i), 'wb').write(s)


def main():
    target, src, dst = sys.argv[1:4]
    os.makedirs(dst, exist_ok=True)
    if target in ('capture_framed', 'decode'):
        framed_and_decode(target, src, dst)
    elif target == 'conn_log':
        conn_log(dst)
    elif target == 'classifier':
        classifier(dst)
    elif target == 'zeeklog_tsv':
        zeeklog_tsv(dst)
    else:
        sys.exit('seeds.py: unknown target ' + target)


if __name__ == '__main__':
    main()
