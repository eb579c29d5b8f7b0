#!/usr/bin/env python3
"""Cut a classic pcap into N files of (nearly) equal packet counts, as a sensor's rotation
would: each piece gets the global header and whole records, in order.

    cut-pcap.py CAPTURE DIR N [PREFIX]      -> DIR/PREFIX-000.pcap ... (PREFIX default "edge")
"""
import struct
import sys


def main():
    src, dst, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    prefix = sys.argv[4] if len(sys.argv) > 4 else "edge"
    with open(src, 'rb') as f:
        data = memoryview(f.read())
    magic = bytes(data[:4])
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        e = '<'
    elif magic in (b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'):
        e = '>'
    else:
        sys.exit(f"{src}: not a classic pcap")
    off, starts = 24, []
    while off + 16 <= len(data):
        starts.append(off)
        off += 16 + struct.unpack_from(e + 'I', data, off + 8)[0]
    n = len(starts)
    starts.append(min(off, len(data)))
    for i in range(k):
        a, b = starts[i * n // k], starts[(i + 1) * n // k]
        with open(f"{dst}/{prefix}-{i:03d}.pcap", 'wb') as out:
            out.write(data[:24])
            out.write(data[a:b])


if __name__ == '__main__':
    main()
