//! rstscope's own capture writer.
//!
//! Tests and benchmarks use this crate to craft TCP packets (IPv4 / IPv6, every
//! header field settable), wrap them in tunnels and link-layer frames, and
//! write them as legacy pcap or pcapng files, optionally gzip- or
//! zstd-compressed. Everything is produced in memory as `Vec<u8>`;
//! [`write_file`] puts the bytes on disk.
//!
//! The functions here are test helpers: invalid input (an unparsable address,
//! mixed address families, a packet too big for its length field) is a bug in
//! the calling test, so they panic with a message instead of returning errors.
//!
//! ```
//! use rstscope_pcapgen::{flags, Link, PcapWriter, Record, Tcp};
//!
//! let syn = Tcp::new("10.0.0.1", 40000, "10.0.0.2", 80).seq(1).flags(flags::SYN);
//! let rst = syn.reply().ack(2).flags(flags::RST | flags::ACK);
//! let link = Link::Ethernet;
//! let records = vec![
//!     Record::new(1_000_000_000, link.frame(&syn.to_ip())),
//!     Record::new(1_000_500_000, link.frame(&rst.to_ip())),
//! ];
//! let file = PcapWriter::new(u32::from(link.linktype())).write(&records);
//! assert_eq!(&file[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
//! ```

#![forbid(unsafe_code)]

mod checksum;
mod compress;
mod link;
mod pcap;
mod pcapng;
mod tcp;
pub mod tunnel;

pub use compress::{gzip, gzip_members, write_file, zstd};
pub use link::{ethernet_frame, Link, MAC_DST, MAC_SRC};
pub use pcap::PcapWriter;
pub use pcapng::{ts_to_units, Interface, PcapNgWriter};
pub use tcp::{Tcp, TcpOpt};

/// TCP flag bits as in the 12-bit TCP flags field (data-offset byte's low
/// nibble followed by the flags byte).
pub mod flags {
    /// No more data from sender.
    pub const FIN: u16 = 0x001;
    /// Synchronize sequence numbers.
    pub const SYN: u16 = 0x002;
    /// Reset the connection.
    pub const RST: u16 = 0x004;
    /// Push function.
    pub const PSH: u16 = 0x008;
    /// Acknowledgment field significant.
    pub const ACK: u16 = 0x010;
    /// Urgent pointer field significant.
    pub const URG: u16 = 0x020;
    /// ECN-Echo.
    pub const ECE: u16 = 0x040;
    /// Congestion window reduced.
    pub const CWR: u16 = 0x080;
    /// Accurate ECN (formerly NS, the ECN nonce bit).
    pub const AE: u16 = 0x100;
    /// The three reserved bits (0x200, 0x400, 0x800).
    pub const RESERVED: u16 = 0xE00;
}

/// Byte order of a capture file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    /// Little-endian (what x86 hosts write).
    Little,
    /// Big-endian.
    Big,
}

impl Endian {
    pub(crate) fn u16(self, v: u16) -> [u8; 2] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }

    pub(crate) fn u32(self, v: u32) -> [u8; 4] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }

    pub(crate) fn i64(self, v: i64) -> [u8; 8] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
}

/// One packet record as a capture file stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Timestamp in nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// Captured bytes (the frame, possibly cut to a snap length).
    pub data: Vec<u8>,
    /// Length of the frame on the wire.
    pub orig_len: u32,
}

impl Record {
    /// A record holding the whole frame: `orig_len` = `frame.len()`.
    ///
    /// # Panics
    /// If the frame is longer than `u32::MAX` bytes.
    pub fn new(ts_ns: i64, frame: Vec<u8>) -> Record {
        let orig_len = u32::try_from(frame.len()).expect("frame longer than u32::MAX bytes");
        Record {
            ts_ns,
            data: frame,
            orig_len,
        }
    }

    /// Cuts the captured bytes to at most `snaplen`, keeping `orig_len`.
    pub fn snap(mut self, snaplen: usize) -> Record {
        self.data.truncate(snaplen);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_new_and_snap() {
        let r = Record::new(5, vec![1, 2, 3, 4, 5]);
        assert_eq!(r.orig_len, 5);
        let s = r.clone().snap(3);
        assert_eq!(s.data, vec![1, 2, 3]);
        assert_eq!(s.orig_len, 5);
        assert_eq!(s.ts_ns, 5);
        // A snap length above the data length changes nothing.
        assert_eq!(r.clone().snap(100), r);
    }

    #[test]
    fn flag_values() {
        use flags::*;
        let all = [FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, AE];
        for (i, f) in all.iter().enumerate() {
            assert_eq!(*f, 1 << i);
        }
        assert_eq!(RESERVED, 0x200 | 0x400 | 0x800);
    }

    #[test]
    fn endian_helpers() {
        assert_eq!(Endian::Little.u16(0x0102), [2, 1]);
        assert_eq!(Endian::Big.u16(0x0102), [1, 2]);
        assert_eq!(Endian::Little.u32(0x01020304), [4, 3, 2, 1]);
        assert_eq!(Endian::Big.u32(0x01020304), [1, 2, 3, 4]);
        assert_eq!(Endian::Big.i64(-1), [0xff; 8]);
        assert_eq!(Endian::Little.i64(1), [1, 0, 0, 0, 0, 0, 0, 0]);
    }
}
