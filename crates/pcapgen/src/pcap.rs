//! Legacy libpcap file format.

use crate::{Endian, Record};

/// Legacy pcap writer: magic 0xa1b2c3d4 (µs) or 0xa1b23c4d (ns) written in the
/// chosen byte order, version 2.4, thiszone 0, sigfigs 0, snaplen, and the
/// link type as a full u32 (callers may set high bits, e.g. 0x3000_0001, to
/// test that readers mask them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapWriter {
    /// Byte order of every header field.
    pub endian: Endian,
    /// Nanosecond timestamps (magic 0xa1b23c4d) instead of microseconds.
    pub nanos: bool,
    /// Snap length written in the file header (records are not cut to it).
    pub snaplen: u32,
    /// Link type field, written as is.
    pub linktype: u32,
}

impl PcapWriter {
    /// Little-endian, microsecond timestamps, snaplen 262144.
    pub fn new(linktype: u32) -> Self {
        PcapWriter {
            endian: Endian::Little,
            nanos: false,
            snaplen: 262_144,
            linktype,
        }
    }

    /// Sets the byte order.
    pub fn endian(mut self, endian: Endian) -> Self {
        self.endian = endian;
        self
    }

    /// Selects nanosecond (true) or microsecond (false) timestamps.
    pub fn nanos(mut self, nanos: bool) -> Self {
        self.nanos = nanos;
        self
    }

    /// Sets the snap length in the file header.
    pub fn snaplen(mut self, snaplen: u32) -> Self {
        self.snaplen = snaplen;
        self
    }

    /// The 24-byte file header.
    pub fn header(&self) -> Vec<u8> {
        let e = self.endian;
        let magic: u32 = if self.nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut v = Vec::with_capacity(24);
        v.extend_from_slice(&e.u32(magic));
        v.extend_from_slice(&e.u16(2));
        v.extend_from_slice(&e.u16(4));
        v.extend_from_slice(&e.u32(0)); // thiszone
        v.extend_from_slice(&e.u32(0)); // sigfigs
        v.extend_from_slice(&e.u32(self.snaplen));
        v.extend_from_slice(&e.u32(self.linktype));
        v
    }

    /// One record: 16-byte header (seconds, µs or ns fraction, captured
    /// length, original length) and the captured bytes. The timestamp is
    /// split with floor semantics (a negative `ts_ns` gives a fraction in
    /// range and seconds that wrap as u32); µs fractions are truncated.
    ///
    /// # Panics
    /// If the captured data is longer than `u32::MAX` bytes.
    pub fn record(&self, rec: &Record) -> Vec<u8> {
        let e = self.endian;
        let secs = rec.ts_ns.div_euclid(1_000_000_000);
        let frac = rec.ts_ns.rem_euclid(1_000_000_000);
        let frac = if self.nanos { frac } else { frac / 1000 };
        let caplen = u32::try_from(rec.data.len()).expect("record longer than u32::MAX");
        let mut v = Vec::with_capacity(16 + rec.data.len());
        // Wrapping to u32 is the file format's limit; documented above.
        v.extend_from_slice(&e.u32(secs as u32));
        // frac < 1e9 fits in u32.
        v.extend_from_slice(&e.u32(frac as u32));
        v.extend_from_slice(&e.u32(caplen));
        v.extend_from_slice(&e.u32(rec.orig_len));
        v.extend_from_slice(&rec.data);
        v
    }

    /// The whole file: header then every record in order.
    pub fn write(&self, records: &[Record]) -> Vec<u8> {
        let mut v = self.header();
        for r in records {
            v.extend_from_slice(&self.record(r));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_le_us() {
        let h = PcapWriter::new(1).header();
        assert_eq!(
            h,
            vec![
                0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0
            ]
        );
    }

    #[test]
    fn header_be_ns_high_bits() {
        let w = PcapWriter {
            endian: Endian::Big,
            nanos: true,
            snaplen: 65535,
            linktype: 0x3000_0001,
        };
        assert_eq!(
            w.header(),
            vec![
                0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x30,
                0, 0, 1
            ]
        );
        let le_ns = PcapWriter::new(101).nanos(true).header();
        assert_eq!(&le_ns[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        let be_us = PcapWriter::new(101).endian(Endian::Big).header();
        assert_eq!(&be_us[..4], &[0xa1, 0xb2, 0xc3, 0xd4]);
    }

    #[test]
    fn record_header_bytes() {
        let rec = Record::new(1_700_000_000_123_456_789, vec![0xaa; 5]).snap(3);
        let us = PcapWriter::new(1).record(&rec);
        let mut want = Vec::new();
        want.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        want.extend_from_slice(&123_456u32.to_le_bytes());
        want.extend_from_slice(&3u32.to_le_bytes());
        want.extend_from_slice(&5u32.to_le_bytes());
        want.extend_from_slice(&[0xaa; 3]);
        assert_eq!(us, want);

        let ns = PcapWriter::new(1)
            .endian(Endian::Big)
            .nanos(true)
            .record(&rec);
        assert_eq!(&ns[..4], &1_700_000_000u32.to_be_bytes());
        assert_eq!(&ns[4..8], &123_456_789u32.to_be_bytes());
        assert_eq!(&ns[8..12], &3u32.to_be_bytes());
        assert_eq!(&ns[12..16], &5u32.to_be_bytes());
    }

    #[test]
    fn negative_timestamp_floors() {
        let rec = Record::new(-1, vec![]);
        let ns = PcapWriter::new(1).nanos(true).record(&rec);
        assert_eq!(&ns[..4], &u32::MAX.to_le_bytes());
        assert_eq!(&ns[4..8], &999_999_999u32.to_le_bytes());
    }

    #[test]
    fn whole_file() {
        let w = PcapWriter::new(101);
        let recs = vec![Record::new(0, vec![1, 2]), Record::new(1_000, vec![3])];
        let f = w.write(&recs);
        assert_eq!(f.len(), 24 + 16 + 2 + 16 + 1);
        assert_eq!(&f[24 + 16..24 + 18], &[1, 2]);
        assert_eq!(&f[24 + 18 + 4..24 + 18 + 8], &1u32.to_le_bytes());
        assert_eq!(f[f.len() - 1], 3);
    }
}
