//! Fuzz harness for the capture readers (`rstscope_capture::read_bytes`).
//!
//! Shared by the cargo-fuzz targets `capture` and `capture_framed` (fuzz/fuzz_targets/) and by
//! the regression test `crates/capture/tests/fuzz_regressions.rs`, which runs it over every file
//! in `testdata/fuzz/capture*/`: both include this file with `#[path]`, so they run the same code.

use rstscope_capture::{read_bytes, Compression, ReadReport, HARD_MAX_RECORD};
use rstscope_pcapgen::{Endian, Interface, PcapNgWriter, PcapWriter};

/// One delivered packet, copied out of the visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub frame: u64,
    pub offset: u64,
    pub ts_ns: i64,
    pub linktype: u16,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// Read `bytes`, check the reader's invariants, and return what it delivered.
pub fn read_checked(bytes: &[u8]) -> (Vec<Seen>, ReadReport) {
    let mut seen: Vec<Seen> = Vec::new();
    let report = read_bytes(bytes, |pkt| {
        if let Some(prev) = seen.last() {
            assert!(pkt.frame > prev.frame, "frame numbers must increase");
            assert!(pkt.offset > prev.offset, "record offsets must increase");
        } else {
            assert!(pkt.frame >= 1, "frame numbers are 1-based");
        }
        assert!(
            pkt.data.len() <= HARD_MAX_RECORD as usize,
            "a record larger than HARD_MAX_RECORD was delivered"
        );
        seen.push(Seen {
            frame: pkt.frame,
            offset: pkt.offset,
            ts_ns: pkt.ts_ns,
            linktype: pkt.linktype,
            orig_len: pkt.orig_len,
            data: pkt.data.to_vec(),
        });
    });
    assert_eq!(report.packets, seen.len() as u64, "report.packets");
    assert_eq!(report.file_bytes, bytes.len() as u64, "report.file_bytes");
    if report.compression == Compression::None {
        assert!(
            report.capture_bytes <= bytes.len() as u64,
            "consumed more bytes than the file has"
        );
    }
    if let Some(p) = seen.last() {
        assert!(p.offset < report.capture_bytes.max(1) || report.error.is_some());
    }
    if let Some(e) = &report.error {
        // Every error must render (the CLI prints it) and its offset must lie in the stream.
        let text = e.to_string();
        assert!(!text.is_empty());
        if let Some(off) = e.offset() {
            if report.compression == Compression::None {
                assert!(off <= bytes.len() as u64, "error offset {off} past the end");
            }
        }
    }
    (seen, report)
}

/// Target `capture`: the raw bytes as a file (plain, gzip or zstd; pcap or pcapng).
pub fn fuzz_capture(data: &[u8]) {
    let _ = read_checked(data);
}

const LINKTYPES: [u16; 16] = [
    0, 1, 9, 10, 12, 14, 50, 51, 101, 104, 108, 113, 228, 229, 276, 147,
];

/// Target `capture_framed`: a valid pcap or pcapng header (chosen by the first bytes) followed
/// by the fuzz data, so the fuzzer spends its time in the record loops. Inputs whose first byte
/// has its top bit set are also read gzip- (1 to 4 members) and zstd-compressed, and the
/// streamed read must deliver exactly what the in-memory read delivered.
pub fn fuzz_capture_framed(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let (sel, lt, rest) = (data[0], data[1], &data[2..]);
    let linktype = LINKTYPES[(lt & 0x0f) as usize];
    let endian = if sel & 1 == 0 {
        Endian::Little
    } else {
        Endian::Big
    };
    let mut file = if sel & 2 == 0 {
        // pcap: µs or ns, snap length default / tiny / huge, link type with FCS bits sometimes.
        let snaplen = match (sel >> 2) & 3 {
            0 => 262_144,
            1 => 64,
            2 => HARD_MAX_RECORD,
            _ => u32::MAX,
        };
        let lt32 = if lt & 0x10 != 0 {
            0x1000_0000 | linktype as u32
        } else {
            linktype as u32
        };
        PcapWriter::new(lt32)
            .endian(endian)
            .nanos(sel & 0x10 != 0)
            .snaplen(snaplen)
            .header()
    } else {
        // pcapng: a section header and one or two interfaces with various resolutions/offsets.
        let tsresol = match (sel >> 2) & 3 {
            0 => 6,
            1 => 9,
            2 => 0x80 | (lt >> 5),
            _ => lt >> 3,
        };
        let tsoffset = if sel & 0x10 != 0 {
            -1_000_000_000_000
        } else {
            0
        };
        let mut ifaces = vec![Interface::new(linktype)
            .tsresol(tsresol)
            .tsoffset(tsoffset)
            .snaplen(if sel & 0x20 != 0 { 16 } else { 0 })];
        if sel & 0x40 != 0 {
            ifaces.push(Interface::new(LINKTYPES[(lt >> 4) as usize]));
        }
        PcapNgWriter::new(endian, ifaces).finish()
    };
    file.extend_from_slice(rest);
    let (plain, plain_report) = read_checked(&file);
    if sel & 0x80 != 0 && rest.len() <= 1 << 16 {
        // gzip in 1 to 4 members (pigz, `cat a.gz b.gz`), and zstd.
        let members = 1 + usize::from(lt >> 6);
        for packed in [
            rstscope_pcapgen::gzip_members(&file, members),
            rstscope_pcapgen::zstd(&file),
        ] {
            let (streamed, report) = read_checked(&packed);
            assert_eq!(report.format, plain_report.format, "format differs");
            assert_eq!(
                streamed.len(),
                plain.len(),
                "compressed read delivered a different number of packets"
            );
            for (a, b) in streamed.iter().zip(&plain) {
                assert_eq!(a, b, "compressed read delivered a different packet");
            }
            assert_eq!(
                report.error.is_some(),
                plain_report.error.is_some(),
                "error differs: plain {:?}, compressed {:?}",
                plain_report.error,
                report.error
            );
            if let (Some(a), Some(b)) = (&report.error, &plain_report.error) {
                assert_eq!(a.offset(), b.offset(), "error offsets differ: {a} / {b}");
            }
            assert_eq!(report.capture_bytes, plain_report.capture_bytes);
        }
    }
}
