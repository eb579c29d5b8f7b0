//! pcapng: section header, interface description, enhanced / simple packet
//! blocks and arbitrary blocks.

use crate::{Endian, Record};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const SPB: u32 = 0x0000_0003;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

const OPT_ENDOFOPT: u16 = 0;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// One interface description block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Link type (see [`crate::Link::linktype`]).
    pub linktype: u16,
    /// Snap length (0 = unlimited).
    pub snaplen: u32,
    /// Raw `if_tsresol` option byte: 6 = µs, 9 = ns, `0x80 | n` = 2^-n
    /// seconds. The option is written only when this is not 6.
    pub tsresol: u8,
    /// `if_tsoffset` option in seconds, written only when not 0. Packet
    /// timestamps are stored relative to it.
    pub tsoffset: i64,
}

impl Interface {
    /// Snaplen 262144, µs resolution (no option), no offset.
    pub fn new(linktype: u16) -> Interface {
        Interface {
            linktype,
            snaplen: 262_144,
            tsresol: 6,
            tsoffset: 0,
        }
    }

    /// Sets the snap length.
    pub fn snaplen(mut self, snaplen: u32) -> Interface {
        self.snaplen = snaplen;
        self
    }

    /// Sets the raw `if_tsresol` byte.
    pub fn tsresol(mut self, tsresol: u8) -> Interface {
        self.tsresol = tsresol;
        self
    }

    /// Sets the `if_tsoffset` seconds.
    pub fn tsoffset(mut self, tsoffset: i64) -> Interface {
        self.tsoffset = tsoffset;
        self
    }
}

/// Converts a timestamp in ns since the epoch into the 64-bit tick count an
/// EPB stores for an interface with `tsresol` / `tsoffset`:
/// floor((ts_ns / 1e9 - tsoffset) × units per second). A negative result is
/// stored in two's complement.
///
/// # Panics
/// If the result does not fit in 64 bits (e.g. an absurd resolution).
pub fn ts_to_units(ts_ns: i64, tsresol: u8, tsoffset: i64) -> u64 {
    const NS: i128 = 1_000_000_000;
    let t = i128::from(ts_ns) - i128::from(tsoffset) * NS;
    let n = u32::from(tsresol & 0x7f);
    let units = if tsresol & 0x80 != 0 {
        1i128
            .checked_shl(n)
            .filter(|_| n < 127)
            .and_then(|p| t.checked_mul(p))
            .map(|x| x.div_euclid(NS))
    } else if n <= 9 {
        Some(t.div_euclid(10i128.pow(9 - n)))
    } else {
        10i128.checked_pow(n - 9).and_then(|p| t.checked_mul(p))
    };
    units
        .and_then(|u| {
            u64::try_from(u)
                .ok()
                // Negative tick counts are stored as two's complement.
                .or_else(|| i64::try_from(u).ok().map(|v| v as u64))
        })
        .unwrap_or_else(|| {
            panic!("timestamp {ts_ns} ns does not fit 64 bits at tsresol {tsresol:#x}")
        })
}

/// pcapng writer: one section header block (byte order chosen) then one
/// interface description block per interface, then blocks in the order
/// added. Blocks are serialized as they are added.
#[derive(Clone, Debug)]
pub struct PcapNgWriter {
    endian: Endian,
    interfaces: Vec<Interface>,
    buf: Vec<u8>,
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

impl PcapNgWriter {
    /// A section header block in `endian` followed by one IDB per interface
    /// (interface ids 0, 1, ... in order).
    pub fn new(endian: Endian, interfaces: Vec<Interface>) -> Self {
        let mut w = PcapNgWriter {
            endian,
            interfaces: Vec::new(),
            buf: Vec::new(),
        };
        w.new_section(endian, interfaces);
        w
    }

    /// Byte order of the current section.
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// Appends one block: type, total length, body padded to 4, total length.
    fn block(&mut self, block_type: u32, body: &[u8]) {
        let e = self.endian;
        let padded = body.len().div_ceil(4) * 4;
        let total = u32::try_from(12 + padded).expect("block longer than u32::MAX");
        self.buf.extend_from_slice(&e.u32(block_type));
        self.buf.extend_from_slice(&e.u32(total));
        self.buf.extend_from_slice(body);
        pad4(&mut self.buf);
        self.buf.extend_from_slice(&e.u32(total));
    }

    /// Appends a further section header block in `endian` and its IDBs;
    /// interface ids start again from 0.
    pub fn new_section(&mut self, endian: Endian, interfaces: Vec<Interface>) -> &mut Self {
        self.endian = endian;
        self.interfaces.clear();
        let e = endian;
        let mut body = Vec::with_capacity(16);
        body.extend_from_slice(&e.u32(BYTE_ORDER_MAGIC));
        body.extend_from_slice(&e.u16(1));
        body.extend_from_slice(&e.u16(0));
        body.extend_from_slice(&e.i64(-1)); // section length unknown
        self.block(SHB, &body);
        for iface in interfaces {
            self.interface(iface);
        }
        self
    }

    /// Appends an interface description block to the current section; it
    /// gets the next interface id.
    pub fn interface(&mut self, iface: Interface) -> &mut Self {
        let e = self.endian;
        let mut body = Vec::with_capacity(40);
        body.extend_from_slice(&e.u16(iface.linktype));
        body.extend_from_slice(&e.u16(0));
        body.extend_from_slice(&e.u32(iface.snaplen));
        let mut any_opt = false;
        if iface.tsresol != 6 {
            body.extend_from_slice(&e.u16(IF_TSRESOL));
            body.extend_from_slice(&e.u16(1));
            body.push(iface.tsresol);
            pad4(&mut body);
            any_opt = true;
        }
        if iface.tsoffset != 0 {
            body.extend_from_slice(&e.u16(IF_TSOFFSET));
            body.extend_from_slice(&e.u16(8));
            body.extend_from_slice(&e.i64(iface.tsoffset));
            any_opt = true;
        }
        if any_opt {
            body.extend_from_slice(&e.u16(OPT_ENDOFOPT));
            body.extend_from_slice(&e.u16(0));
        }
        self.block(IDB, &body);
        self.interfaces.push(iface);
        self
    }

    /// Appends an enhanced packet block for interface `if_id` (of the current
    /// section). The timestamp is converted from `rec.ts_ns` into that
    /// interface's units relative to its tsoffset (see [`ts_to_units`]); an
    /// `if_id` with no IDB is written as given, with µs units.
    pub fn epb(&mut self, if_id: u32, rec: &Record) -> &mut Self {
        let e = self.endian;
        let (tsresol, tsoffset) = usize::try_from(if_id)
            .ok()
            .and_then(|i| self.interfaces.get(i))
            .map_or((6, 0), |i| (i.tsresol, i.tsoffset));
        let ts = ts_to_units(rec.ts_ns, tsresol, tsoffset);
        let caplen = u32::try_from(rec.data.len()).expect("record longer than u32::MAX");
        let mut body = Vec::with_capacity(20 + rec.data.len() + 3);
        body.extend_from_slice(&e.u32(if_id));
        // High and low halves of the 64-bit tick count.
        body.extend_from_slice(&e.u32((ts >> 32) as u32));
        body.extend_from_slice(&e.u32(ts as u32));
        body.extend_from_slice(&e.u32(caplen));
        body.extend_from_slice(&e.u32(rec.orig_len));
        body.extend_from_slice(&rec.data);
        self.block(EPB, &body);
        self
    }

    /// Appends a simple packet block (implicitly interface 0): original
    /// length and the packet data. It has no timestamp and no captured
    /// length: readers take min(original length, interface 0 snaplen), so a
    /// record cut shorter than its `orig_len` should match that snaplen.
    pub fn spb(&mut self, rec: &Record) -> &mut Self {
        let e = self.endian;
        let mut body = Vec::with_capacity(4 + rec.data.len() + 3);
        body.extend_from_slice(&e.u32(rec.orig_len));
        body.extend_from_slice(&rec.data);
        self.block(SPB, &body);
        self
    }

    /// Appends a block of any type with `body` padded to 4 bytes.
    pub fn unknown_block(&mut self, block_type: u32, body: &[u8]) -> &mut Self {
        self.block(block_type, body);
        self
    }

    /// Appends raw bytes as they are (e.g. a truncated block at the end of a
    /// file, or garbage).
    pub fn raw_bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// The file bytes so far.
    pub fn finish(&self) -> Vec<u8> {
        self.buf.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], off: usize, e: Endian) -> u32 {
        let a = [b[off], b[off + 1], b[off + 2], b[off + 3]];
        match e {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        }
    }

    /// Walks the blocks, checking that every total length is repeated at the
    /// end and is a multiple of 4; returns (type, body) pairs.
    fn blocks(b: &[u8], e: Endian) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut off = 0;
        while off < b.len() {
            let t = u32_at(b, off, e);
            let len = u32_at(b, off + 4, e) as usize;
            assert_eq!(len % 4, 0);
            assert_eq!(u32_at(b, off + len - 4, e) as usize, len);
            out.push((t, b[off + 8..off + len - 4].to_vec()));
            off += len;
        }
        assert_eq!(off, b.len());
        out
    }

    #[test]
    fn shb_idb_exact_bytes_le() {
        let w = PcapNgWriter::new(Endian::Little, vec![Interface::new(1)]);
        let b = w.finish();
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            // SHB
            0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0,
            0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            28, 0, 0, 0,
            // IDB
            1, 0, 0, 0, 20, 0, 0, 0,
            1, 0, 0, 0, 0x00, 0x00, 0x04, 0x00,
            20, 0, 0, 0,
        ];
        assert_eq!(b, want);
    }

    #[test]
    fn shb_idb_with_options_be() {
        let w = PcapNgWriter::new(
            Endian::Big,
            vec![Interface::new(101).snaplen(65535).tsresol(9).tsoffset(-2)],
        );
        let b = w.finish();
        assert_eq!(&b[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
        assert_eq!(&b[8..12], &[0x1a, 0x2b, 0x3c, 0x4d]);
        assert_eq!(&b[12..16], &[0, 1, 0, 0]);
        #[rustfmt::skip]
        let idb: Vec<u8> = vec![
            0, 0, 0, 1, 0, 0, 0, 44,
            0, 101, 0, 0, 0, 0, 0xff, 0xff,
            0, 9, 0, 1, 9, 0, 0, 0,
            0, 14, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
            0, 0, 0, 0,
            0, 0, 0, 44,
        ];
        assert_eq!(&b[28..], &idb[..]);
    }

    #[test]
    fn epb_layout_and_padding() {
        let mut w = PcapNgWriter::new(Endian::Little, vec![Interface::new(1)]);
        let rec = Record::new(1_500_000_001_000, vec![1, 2, 3, 4, 5]).snap(5);
        w.epb(0, &rec);
        let b = w.finish();
        let epb = &b[48..];
        let ts: u64 = 1_500_000_001;
        let mut want = Vec::new();
        want.extend_from_slice(&6u32.to_le_bytes());
        want.extend_from_slice(&40u32.to_le_bytes());
        want.extend_from_slice(&0u32.to_le_bytes());
        want.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        want.extend_from_slice(&(ts as u32).to_le_bytes());
        want.extend_from_slice(&5u32.to_le_bytes());
        want.extend_from_slice(&5u32.to_le_bytes());
        want.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        want.extend_from_slice(&40u32.to_le_bytes());
        assert_eq!(epb, &want[..]);
    }

    #[test]
    fn spb_unknown_and_sections() {
        let mut w = PcapNgWriter::new(Endian::Big, vec![Interface::new(1), Interface::new(101)]);
        w.spb(&Record::new(0, vec![9; 6]))
            .unknown_block(0x0BAD_0001, &[1, 2, 3])
            .new_section(Endian::Little, vec![Interface::new(228)])
            .epb(0, &Record::new(7_000, vec![0x45]));
        let b = w.finish();
        // Second SHB starts after SHB(28) + 2 IDB(20) + SPB(12+4+8) + unknown(12+4).
        let second = 28 + 40 + 24 + 16;
        let first = blocks(&b[..second], Endian::Big);
        let types: Vec<u32> = first.iter().map(|(t, _)| *t).collect();
        assert_eq!(types, vec![SHB, IDB, IDB, SPB, 0x0BAD_0001]);
        assert_eq!(first[3].1, vec![0, 0, 0, 6, 9, 9, 9, 9, 9, 9, 0, 0]);
        assert_eq!(first[4].1, vec![1, 2, 3, 0]);
        let rest = blocks(&b[second..], Endian::Little);
        let types: Vec<u32> = rest.iter().map(|(t, _)| *t).collect();
        assert_eq!(types, vec![SHB, IDB, EPB]);
        assert_eq!(&rest[1].1[..2], &228u16.to_le_bytes());
        // 7 µs since the epoch.
        assert_eq!(&rest[2].1[4..12], &[0, 0, 0, 0, 7, 0, 0, 0]);
    }

    #[test]
    fn tsresol_conversion() {
        let t = 1_700_000_000_123_456_789i64;
        assert_eq!(ts_to_units(t, 6, 0), 1_700_000_000_123_456);
        assert_eq!(ts_to_units(t, 9, 0), 1_700_000_000_123_456_789);
        assert_eq!(ts_to_units(t, 3, 0), 1_700_000_000_123);
        assert_eq!(ts_to_units(t, 0, 0), 1_700_000_000);
        assert_eq!(ts_to_units(1_500, 10, 0), 15_000);
        // 2^-10 s: floor(1.5 s * 1024) = 1536.
        assert_eq!(ts_to_units(1_500_000_000, 0x80 | 10, 0), 1536);
        // 2^-30 s ticks for 1.7e9 s.
        assert_eq!(
            ts_to_units(t, 0x80 | 30, 0),
            ((i128::from(t) << 30) / 1_000_000_000) as u64
        );
        assert_eq!(ts_to_units(1_000_000_000, 0x80, 0), 1);
        // tsoffset is subtracted.
        assert_eq!(ts_to_units(t, 6, 1_700_000_000), 123_456);
        assert_eq!(ts_to_units(1_000_000_000, 9, 2), (-1_000_000_000i64) as u64);
    }

    #[test]
    fn epb_uses_interface_units() {
        let mut w = PcapNgWriter::new(
            Endian::Little,
            vec![
                Interface::new(1),
                Interface::new(1).tsresol(9),
                Interface::new(1).tsresol(0x80 | 20).tsoffset(1_000),
            ],
        );
        let rec = Record::new(1_234_567_891_000, vec![]);
        w.epb(0, &rec).epb(1, &rec).epb(2, &rec).epb(7, &rec);
        let b = w.finish();
        let bl = blocks(&b, Endian::Little);
        let ts = |body: &[u8]| {
            let hi = u32_at(body, 4, Endian::Little);
            let lo = u32_at(body, 8, Endian::Little);
            (u64::from(hi) << 32) | u64::from(lo)
        };
        assert_eq!(ts(&bl[4].1), 1_234_567_891);
        assert_eq!(ts(&bl[5].1), 1_234_567_891_000);
        assert_eq!(
            ts(&bl[6].1),
            ((234_567_891_000i128 << 20) / 1_000_000_000) as u64
        );
        // Unknown interface: written with its id, µs units.
        assert_eq!(u32_at(&bl[7].1, 0, Endian::Little), 7);
        assert_eq!(ts(&bl[7].1), 1_234_567_891);
    }

    #[test]
    #[should_panic(expected = "does not fit 64 bits")]
    fn absurd_resolution_panics() {
        let _ = ts_to_units(1_000_000_000, 0x80 | 100, 0);
    }

    #[test]
    fn raw_bytes_appended() {
        let mut w = PcapNgWriter::new(Endian::Little, vec![]);
        w.raw_bytes(&[6, 0, 0]);
        let b = w.finish();
        assert_eq!(b.len(), 28 + 3);
        assert_eq!(w.endian(), Endian::Little);
    }
}
