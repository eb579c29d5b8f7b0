use super::*;
use rstscope_pcapgen::{
    flags as f, gzip, gzip_members, zstd as zst, Endian, Interface, Link, PcapNgWriter, PcapWriter,
    Record, Tcp,
};

fn frames(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            Link::Ethernet.frame(
                &Tcp::new("10.0.0.1", 1000 + i as u16, "10.0.0.2", 80)
                    .flags(f::RST)
                    .seq(i as u32)
                    .to_ip(),
            )
        })
        .collect()
}

fn records(n: usize) -> Vec<Record> {
    frames(n)
        .into_iter()
        .enumerate()
        .map(|(i, fr)| Record::new(1_700_000_000_000_000_000 + i as i64 * 1_000_123_457, fr))
        .collect()
}

/// (frame, offset, ts_ns, linktype, orig_len, data) of every packet, and the report.
type Got = Vec<(u64, u64, i64, u16, u32, Vec<u8>)>;

fn read(bytes: &[u8]) -> (Got, ReadReport) {
    let mut got = Vec::new();
    let report = read_bytes(bytes, |p| {
        got.push((
            p.frame,
            p.offset,
            p.ts_ns,
            p.linktype,
            p.orig_len,
            p.data.to_vec(),
        ))
    });
    (got, report)
}

#[test]
fn pcap_all_magics_and_byte_orders() {
    let recs = records(3);
    for endian in [Endian::Little, Endian::Big] {
        for nanos in [false, true] {
            let w = PcapWriter::new(1).endian(endian).nanos(nanos);
            let bytes = w.write(&recs);
            let (got, report) = read(&bytes);
            assert!(
                report.error.is_none(),
                "{endian:?} {nanos}: {:?}",
                report.error
            );
            assert_eq!(report.format, Some(Format::Pcap));
            assert_eq!(got.len(), 3);
            for (i, g) in got.iter().enumerate() {
                assert_eq!(g.0, i as u64 + 1);
                let want_ts = recs[i].ts_ns;
                // µs files keep microseconds only
                let want_ts = if nanos {
                    want_ts
                } else {
                    want_ts / 1000 * 1000
                };
                assert_eq!(g.2, want_ts, "{endian:?} nanos={nanos}");
                assert_eq!(g.3, 1);
                assert_eq!(g.5, recs[i].data);
            }
            assert_eq!(got[0].1, 24);
        }
    }
}

#[test]
fn snap_length_cut_keeps_wire_length() {
    let recs: Vec<Record> = records(2).into_iter().map(|r| r.snap(40)).collect();
    let bytes = PcapWriter::new(1).snaplen(40).write(&recs);
    let (got, report) = read(&bytes);
    assert!(report.error.is_none());
    assert_eq!(got[0].4, 60);
    assert_eq!(got[0].5.len(), 40);
}

#[test]
fn linktype_high_bits_are_masked() {
    let bytes = PcapWriter::new(0x3000_0001).write(&records(1));
    let (got, _) = read(&bytes);
    assert_eq!(got[0].3, 1);
}

#[test]
fn truncated_last_record_keeps_earlier_packets_and_names_offset() {
    let bytes = PcapWriter::new(1).write(&records(3));
    // Cut in the middle of the third record's data.
    let cut = &bytes[..bytes.len() - 10];
    let (got, report) = read(cut);
    assert_eq!(got.len(), 2);
    let e = report.error.expect("truncation reported");
    let third = 24 + 2 * (16 + 60);
    assert_eq!(e.offset(), Some(third as u64));
    let msg = e.to_string();
    assert!(msg.contains("truncated pcap record"), "{msg}");
    assert!(msg.contains(&format!("byte offset {third}")), "{msg}");
    assert!(msg.contains("76 bytes needed, 66 left"), "{msg}");
    // Cut inside a record header.
    let (got, report) = read(&bytes[..24 + 76 + 5]);
    assert_eq!(got.len(), 1);
    assert!(report.error.unwrap().to_string().contains("record header"));
}

#[test]
fn big_endian_truncated_tail_is_reported_too() {
    let bytes = PcapWriter::new(1).endian(Endian::Big).write(&records(2));
    let (got, report) = read(&bytes[..bytes.len() - 1]);
    assert_eq!(got.len(), 1);
    assert!(matches!(report.error, Some(CaptureError::Truncated { .. })));
}

#[test]
fn corrupt_record_length_is_an_error_not_an_allocation() {
    let mut bytes = PcapWriter::new(1).write(&records(2));
    // caplen of the second record := 0xfffffff0
    let second = 24 + 76;
    bytes[second + 8..second + 12].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let (got, report) = read(&bytes);
    assert_eq!(got.len(), 1);
    let e = report.error.unwrap();
    assert_eq!(e.offset(), Some(second as u64));
    assert!(e.to_string().contains("corrupt pcap record"), "{e}");
}

#[test]
fn empty_and_non_capture_inputs() {
    let (got, r) = read(b"");
    assert!(got.is_empty());
    assert!(matches!(r.error, Some(CaptureError::Empty)));
    let (_, r) = read(b"#fields\tts\n");
    let e = r.error.unwrap();
    assert_eq!(e.offset(), Some(0));
    assert!(e.to_string().contains("not a capture file"), "{e}");
    let (_, r) = read(&gzip(b"hello world, not a capture"));
    assert!(matches!(
        r.error,
        Some(CaptureError::CompressedNotCapture { .. })
    ));
    // Header only: zero packets, no error.
    let (got, r) = read(&PcapWriter::new(1).write(&[]));
    assert!(got.is_empty() && r.error.is_none());
    // Shorter than a file header.
    let (_, r) = read(&PcapWriter::new(1).write(&[])[..10]);
    assert!(matches!(r.error, Some(CaptureError::Truncated { .. })));
}

#[test]
fn pcapng_interfaces_resolutions_byte_orders_and_block_kinds() {
    let recs = records(4);
    for endian in [Endian::Little, Endian::Big] {
        let mut w = PcapNgWriter::new(
            endian,
            vec![
                Interface::new(1),
                Interface::new(101).tsresol(9),
                Interface::new(113).tsresol(0x80 | 20).tsoffset(10),
            ],
        );
        let raw_ip = Tcp::new("10.0.0.1", 1, "10.0.0.2", 2).flags(f::RST).to_ip();
        let sll = Link::LinuxSll.frame(&raw_ip);
        w.epb(0, &recs[0]);
        // A custom block (Wireshark numbers it as a frame) and an unknown one (skipped).
        w.unknown_block(0x0000_0bad, b"\0\0\0\x01ignore me");
        w.unknown_block(0x0000_0099, b"unknown");
        w.epb(1, &Record::new(recs[1].ts_ns, raw_ip.clone()));
        w.epb(2, &Record::new(recs[2].ts_ns, sll.clone()));
        w.spb(&recs[3]);
        let bytes = w.finish();
        let (got, report) = read(&bytes);
        assert!(report.error.is_none(), "{:?}", report.error);
        assert_eq!(report.format, Some(Format::PcapNg));
        assert_eq!(report.skipped_blocks, 2);
        let lts: Vec<u16> = got.iter().map(|g| g.3).collect();
        assert_eq!(lts, [1, 101, 113, 1]);
        let frames: Vec<u64> = got.iter().map(|g| g.0).collect();
        assert_eq!(frames, [1, 3, 4, 5]);
        assert_eq!(got[0].2, recs[0].ts_ns / 1000 * 1000);
        assert_eq!(got[1].2, recs[1].ts_ns);
        // 2^-20 s units: within one unit (~954 ns) of the original
        assert!(
            (got[2].2 - recs[2].ts_ns).abs() < 1000,
            "{}",
            got[2].2 - recs[2].ts_ns
        );
        assert_eq!(got[1].5, raw_ip);
        assert_eq!(got[2].5, sll);
        assert_eq!(got[3].5, recs[3].data);
        // SPB carries no time: it keeps the previous packet's
        assert_eq!(got[3].2, got[2].2);
    }
}

#[test]
fn pcapng_several_sections_of_different_byte_order() {
    let recs = records(2);
    let mut w = PcapNgWriter::new(Endian::Little, vec![Interface::new(1)]);
    w.epb(0, &recs[0]);
    w.new_section(Endian::Big, vec![Interface::new(1).tsresol(9)]);
    w.epb(0, &recs[1]);
    let (got, report) = read(&w.finish());
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].2, recs[1].ts_ns);
    assert_eq!(got[1].0, 2);
}

#[test]
fn pcapng_truncated_and_corrupt() {
    let recs = records(3);
    let mut w = PcapNgWriter::new(Endian::Little, vec![Interface::new(1)]);
    for r in &recs {
        w.epb(0, r);
    }
    let bytes = w.finish();
    let (got, report) = read(&bytes[..bytes.len() - 3]);
    assert_eq!(got.len(), 2);
    assert!(matches!(report.error, Some(CaptureError::Truncated { .. })));
    // A block length that is not a multiple of 4.
    let mut bad = bytes.clone();
    let last_block = bytes.len() - (32 + 60); // EPB: 28 header + 60 data + 4 trailer
    bad[last_block + 4] = 0x5d;
    let (got, report) = read(&bad);
    assert_eq!(got.len(), 2);
    let e = report.error.unwrap();
    assert!(e.to_string().contains("invalid total length"), "{e}");
    assert_eq!(e.offset(), Some(last_block as u64));
}

#[test]
fn gzip_multi_member_and_zstd_streams() {
    let recs = records(50);
    let plain = PcapWriter::new(1).write(&recs);
    for (name, bytes) in [
        ("gzip", gzip(&plain)),
        ("gzip x7", gzip_members(&plain, 7)),
        ("zstd", zst(&plain)),
    ] {
        let (got, report) = read(&bytes);
        assert!(report.error.is_none(), "{name}: {:?}", report.error);
        assert_eq!(got.len(), 50, "{name}");
        assert_eq!(got[49].5, recs[49].data);
        assert_eq!(report.capture_bytes, plain.len() as u64);
        assert_eq!(report.file_bytes, bytes.len() as u64);
    }
    // Truncated compressed file: the packets decompressed before the cut are kept.
    let gz = gzip(&plain);
    let (got, report) = read(&gz[..gz.len() / 2]);
    assert!(!got.is_empty() && got.len() < 50);
    let e = report.error.expect("error reported");
    assert!(e.to_string().contains("decompressed"), "{e}");
    let z = zst(&plain);
    let (got, report) = read(&z[..z.len() / 2]);
    assert!(got.len() < 50);
    assert!(report.error.is_some());
}

#[test]
fn read_path_maps_plain_files_and_streams_compressed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let plain = PcapWriter::new(1).write(&records(5));
    let p = dir.path().join("a.pcap");
    std::fs::write(&p, &plain).unwrap();
    let z = dir.path().join("a.bin");
    std::fs::write(&z, zst(&plain)).unwrap();
    for access in [PlainAccess::Mmap, PlainAccess::Read] {
        for path in [&p, &z] {
            let mut n = 0;
            let r = read_path(path, access, |_| n += 1);
            assert!(r.error.is_none());
            assert_eq!(n, 5);
        }
    }
    let missing = read_path(&dir.path().join("nope"), PlainAccess::Mmap, |_| {});
    assert!(matches!(missing.error, Some(CaptureError::Io(_))));
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        read_path(&empty, PlainAccess::Mmap, |_| {}).error,
        Some(CaptureError::Empty)
    ));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    /// Record headers read in place give what pcap-parser's per-record parsers give, in every
    /// byte order and in the "modified" format (24-byte record headers, always little-endian).
    #[test]
    fn records_match_pcap_parser(
        kind in 0usize..4,
        recs in proptest::collection::vec(
            (proptest::num::u32::ANY, proptest::num::u32::ANY, proptest::num::u32::ANY,
             proptest::collection::vec(proptest::num::u8::ANY, 0..80)),
            0..12,
        ),
    ) {
        // (magic as written, big-endian fields, modified)
        let (magic, be, modified): ([u8; 4], bool, bool) = match kind {
            0 => ([0xd4, 0xc3, 0xb2, 0xa1], false, false),
            1 => ([0xa1, 0xb2, 0xc3, 0xd4], true, false),
            2 => ([0x4d, 0x3c, 0xb2, 0xa1], false, false),
            _ => ([0x34, 0xcd, 0xb2, 0xa1], false, true),
        };
        let u16b = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let u32b = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut bytes = magic.to_vec();
        bytes.extend(u16b(2));
        bytes.extend(u16b(4));
        bytes.extend(u32b(0));
        bytes.extend(u32b(0));
        bytes.extend(u32b(65535));
        bytes.extend(u32b(1));
        let mut want = Vec::new();
        for (ts_sec, ts_frac, orig, data) in &recs {
            let at = bytes.len();
            bytes.extend(u32b(*ts_sec));
            bytes.extend(u32b(*ts_frac));
            bytes.extend(u32b(data.len() as u32));
            bytes.extend(u32b(*orig));
            if modified {
                bytes.extend([0u8; 8]);
            }
            bytes.extend(data);
            let parsed = if modified {
                pcap_parser::parse_pcap_frame_modified(&bytes[at..])
            } else if be {
                pcap_parser::parse_pcap_frame_be(&bytes[at..])
            } else {
                pcap_parser::parse_pcap_frame(&bytes[at..])
            };
            let (_, b) = parsed.unwrap();
            let frac = if kind == 2 { b.ts_usec as i64 } else { b.ts_usec as i64 * 1000 };
            want.push((at as u64, b.ts_sec as i64 * 1_000_000_000 + frac, b.origlen, b.data.to_vec()));
        }
        let (got, report) = read(&bytes);
        proptest::prop_assert!(report.error.is_none(), "{:?}", report.error);
        let got: Vec<_> = got.into_iter().map(|g| (g.1, g.2, g.4, g.5)).collect();
        proptest::prop_assert_eq!(got, want);
    }
}

/// A plain file larger than several release steps of the memory-mapped reader (pages read are
/// released behind it) reads exactly as through a buffer and from memory: every packet, and the
/// same error at the same offset for a truncated tail.
#[test]
fn large_mapped_file_reads_like_a_buffered_one() {
    let w = PcapWriter::new(1);
    let mut bytes = w.header();
    let mut i = 0u32;
    while bytes.len() < 19 << 20 {
        // 60..=1559-byte frames of varying content
        let len = 60 + (i as usize * 7919) % 1500;
        let frame: Vec<u8> = (0..len).map(|k| (k as u32 ^ i) as u8).collect();
        bytes.extend(w.record(&Record::new(
            1_700_000_000_000_000_000 + i as i64 * 1000,
            frame,
        )));
        i += 1;
    }
    // cut the last record
    bytes.truncate(bytes.len() - 3);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.pcap");
    std::fs::write(&p, &bytes).unwrap();
    let collect = |access: Option<PlainAccess>| {
        let mut got: Got = Vec::new();
        let mut f = |p: &Packet<'_>| {
            got.push((
                p.frame,
                p.offset,
                p.ts_ns,
                p.linktype,
                p.orig_len,
                p.data.to_vec(),
            ))
        };
        let r = match access {
            Some(a) => read_path(&p, a, &mut f),
            None => read_bytes(&bytes, &mut f),
        };
        (got, r)
    };
    let (mapped, rm) = collect(Some(PlainAccess::Mmap));
    let (read, rr) = collect(Some(PlainAccess::Read));
    let (mem, rb) = collect(None);
    assert_eq!(mapped.len() as u32, i - 1);
    assert!(mapped == read && mapped == mem);
    for r in [&rm, &rr, &rb] {
        assert_eq!(r.packets, (i - 1) as u64);
        assert_eq!(r.capture_bytes, rm.capture_bytes);
        assert_eq!(
            r.error.as_ref().map(|e| e.to_string()),
            rm.error.as_ref().map(|e| e.to_string())
        );
    }
    assert!(matches!(rm.error, Some(CaptureError::Truncated { .. })));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
    /// Any prefix of a valid capture gives the packets wholly inside it, and at most one error.
    #[test]
    fn every_prefix_reads_whole_packets_only(cut in 0usize..1000, ng in proptest::bool::ANY) {
        let recs = records(8);
        let bytes = if ng {
            let mut w = PcapNgWriter::new(Endian::Big, vec![Interface::new(1)]);
            for r in &recs { w.epb(0, r); }
            w.finish()
        } else {
            PcapWriter::new(1).endian(Endian::Big).write(&recs)
        };
        let cut = cut.min(bytes.len());
        let (got, _) = read(&bytes[..cut]);
        for (i, g) in got.iter().enumerate() {
            proptest::prop_assert_eq!(&g.5, &recs[i].data);
        }
    }

    /// Arbitrary bytes after a valid header never panic.
    #[test]
    fn garbage_never_panics(junk in proptest::collection::vec(proptest::num::u8::ANY, 0..400), ng in proptest::bool::ANY) {
        let mut bytes = if ng {
            PcapNgWriter::new(Endian::Little, vec![Interface::new(1)]).finish()
        } else {
            PcapWriter::new(1).write(&[])
        };
        bytes.extend_from_slice(&junk);
        let _ = read(&bytes);
    }
}

#[test]
fn first_packet_time_from_the_head_of_plain_and_compressed_files() {
    let dir = tempfile::tempdir().unwrap();
    let recs = records(3);
    let plain = PcapWriter::new(1).write(&recs);
    let mut ng = PcapNgWriter::new(Endian::Big, vec![Interface::new(1).tsresol(9)]);
    ng.epb(0, &recs[0]);
    for (name, bytes) in [
        ("a.pcap", plain.clone()),
        ("b.pcap.gz", gzip(&plain)),
        ("c.pcap.zst", zst(&plain)),
        ("d.pcapng", ng.finish()),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let want = if name.ends_with("pcapng") {
            recs[0].ts_ns
        } else {
            recs[0].ts_ns / 1000 * 1000
        };
        assert_eq!(first_packet_ts(&p), Some(want), "{name}");
    }
    // A first record larger than the first peek: found by the second, plain or compressed.
    let big = vec![Record::new(1_700_000_000_000_000_000, vec![7u8; 100_000])];
    let big = PcapWriter::new(1).write(&big);
    for (name, bytes) in [("f.pcap", big.clone()), ("f.pcap.gz", gzip(&big))] {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(
            first_packet_ts(&p),
            Some(1_700_000_000_000_000_000),
            "{name}"
        );
    }
    // Cut inside that record: no packet at all.
    let cut = dir.path().join("g.pcap");
    std::fs::write(&cut, &big[..80_000]).unwrap();
    assert_eq!(first_packet_ts(&cut), None);
    let empty = dir.path().join("e.pcap");
    std::fs::write(&empty, PcapWriter::new(1).write(&[])).unwrap();
    assert_eq!(first_packet_ts(&empty), None);
    assert_eq!(first_packet_ts(&dir.path().join("missing")), None);
}

#[test]
fn devices_are_read_as_streams_and_named_for_what_they_hold() {
    // /dev/zero is not "empty": it is a stream of zeros, not a capture.
    let r = crate::read_path(
        std::path::Path::new("/dev/zero"),
        crate::PlainAccess::Mmap,
        |_| {},
    );
    let e = r.error.expect("an error").to_string();
    assert!(
        e.contains("not a capture file (first bytes 00 00 00 00)"),
        "{e}"
    );
    let r = crate::read_path(
        std::path::Path::new("/dev/null"),
        crate::PlainAccess::Mmap,
        |_| {},
    );
    assert!(matches!(r.error, Some(crate::CaptureError::Empty)));
}

/// A pcapng block in the section's byte order: type, total length, body padded to 4, length.
fn ng_block(be: bool, block_type: u32, body: &[u8]) -> Vec<u8> {
    let u32b = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let pad = (4 - body.len() % 4) % 4;
    let len = (12 + body.len() + pad) as u32;
    let mut b = Vec::new();
    b.extend(u32b(block_type));
    b.extend(u32b(len));
    b.extend(body);
    b.extend(std::iter::repeat_n(0, pad));
    b.extend(u32b(len));
    b
}

/// Section header and one Ethernet interface, in the given byte order.
fn ng_head(be: bool) -> Vec<u8> {
    let u16b = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let u32b = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut shb = Vec::new();
    shb.extend(u32b(0x1a2b_3c4d));
    shb.extend(u16b(1));
    shb.extend(u16b(0));
    shb.extend([0xff; 8]);
    let mut idb = Vec::new();
    idb.extend(u16b(1));
    idb.extend(u16b(0));
    idb.extend(u32b(65535));
    let mut out = ng_block(be, 0x0a0d_0d0a, &shb);
    out.extend(ng_block(be, 1, &idb));
    out
}

#[test]
fn obsolete_packet_blocks_are_read_in_big_endian_sections_too() {
    for be in [false, true] {
        let u16b = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let u32b = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let data = [0xaau8; 60];
        let mut opb = Vec::new();
        opb.extend(u16b(0)); // interface
        opb.extend(u16b(0)); // drops
        opb.extend(u32b(0));
        opb.extend(u32b(1_000_000));
        opb.extend(u32b(data.len() as u32));
        opb.extend(u32b(data.len() as u32));
        opb.extend(data);
        let mut file = ng_head(be);
        file.extend(ng_block(be, 2, &opb));
        let mut n = 0;
        let r = crate::read_bytes(&file, |p| {
            assert_eq!(p.data.len(), 60);
            assert_eq!(p.ts_ns, 1_000_000_000);
            n += 1;
        });
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!((n, r.skipped_blocks), (1, 0), "big-endian: {be}");
    }
}

#[test]
fn packets_on_an_undeclared_interface_are_counted() {
    let mut epb = Vec::new();
    epb.extend(5u32.to_le_bytes()); // interface 5: only interface 0 exists
    epb.extend(0u32.to_le_bytes());
    epb.extend(0u32.to_le_bytes());
    epb.extend(60u32.to_le_bytes());
    epb.extend(60u32.to_le_bytes());
    epb.extend([0u8; 60]);
    let mut file = ng_head(false);
    file.extend(ng_block(false, 6, &epb));
    let r = crate::read_bytes(&file, |_| panic!("no packet can be delivered"));
    assert_eq!((r.packets, r.packets_without_interface), (0, 1));
}

/// A mapped capture truncated while it is read (another process's `cp`, `rsync --inplace`)
/// ends that file with an error instead of a SIGBUS that kills the process.
#[cfg(target_os = "linux")]
#[test]
fn a_capture_truncated_under_its_map_is_an_error_not_a_sigbus() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.pcap");
    let bytes = PcapWriter::new(1).write(&records(20_000));
    assert!(bytes.len() > 1 << 20, "{}", bytes.len());
    std::fs::write(&path, &bytes).unwrap();
    let mut n = 0u64;
    let r = read_path(&path, PlainAccess::Mmap, |_| {
        n += 1;
        if n == 10 {
            // Truncate it under the map, as another process would.
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(8192)
                .unwrap();
        }
    });
    let e = r.error.expect("an error").to_string();
    assert!(e.contains("truncated while it was read"), "{e}");
    assert!((10..20_000).contains(&n), "{n}");
    // Reading goes on for other files.
    std::fs::write(&path, &bytes).unwrap();
    let r = read_path(&path, PlainAccess::Mmap, |_| {});
    assert!(r.error.is_none());
    assert_eq!(r.packets, 20_000);
}

/// A pcap of `n` copies of one RST (records of 16 + 60 bytes after the 24-byte header): it
/// compresses well over 1000 times.
fn repetitive_pcap(n: usize) -> Vec<u8> {
    let frame = frames(1).remove(0);
    let recs: Vec<Record> = (0..n)
        .map(|_| Record::new(1_700_000_000_000_000_000, frame.clone()))
        .collect();
    PcapWriter::new(1).write(&recs)
}

#[test]
fn a_capture_inflating_past_the_cap_ends_with_an_error_after_the_records_within_it() {
    const REC: u64 = 16 + 60;
    let plain = repetitive_pcap(100_000);
    assert_eq!(plain.len() as u64, 24 + 100_000 * REC);
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, compression) in [
        ("a.pcap.zst", zst(&plain), Compression::Zstd),
        ("a.pcap.gz", gzip(&plain), Compression::Gzip),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let len = bytes.len() as u64;
        let read = |inflate: InflateCap| {
            let mut n = 0u64;
            let mut last_end = 0u64;
            let r = read_path_with(
                &path,
                ReadOptions {
                    access: PlainAccess::Mmap,
                    inflate,
                },
                |p| {
                    n += 1;
                    last_end = p.offset + REC;
                },
            );
            (n, last_end, r)
        };
        // No cap, or one it stays under: every packet.
        for cap in [
            InflateCap::NONE,
            InflateCap::DEFAULT,
            InflateCap {
                ratio: plain.len() as u64 / len + 1,
                floor: 0,
            },
        ] {
            let (n, _, r) = read(cap);
            assert!(r.error.is_none(), "{name} {cap:?}: {:?}", r.error);
            assert_eq!(n, 100_000);
        }
        // The floor decides (10 times the file is less than 4 MiB), then the ratio.
        assert!(
            10 * len < 4 << 20 && 100 * len < plain.len() as u64,
            "{name}: {len}"
        );
        for (ratio, floor, limit) in [(10, 4 << 20, 4 << 20), (100, 0, 100 * len)] {
            let cap = InflateCap { ratio, floor };
            let (n, last_end, r) = read(cap);
            assert_eq!(n, (limit - 24) / REC, "{name} {cap:?}");
            match &r.error {
                Some(CaptureError::Inflate {
                    compression: c,
                    ratio: q,
                    compressed,
                    limit: l,
                    where_,
                }) => {
                    assert_eq!((*c, *q, *compressed, *l), (compression, ratio, len, limit));
                    // Stopped at the first record not wholly within the limit.
                    assert_eq!(
                        *where_,
                        Offset {
                            offset: last_end,
                            decompressed: true
                        }
                    );
                    assert!(last_end + REC > limit);
                }
                other => panic!("{name} {cap:?}: {other:?}"),
            }
            let e = r.error.unwrap().to_string();
            assert!(
                e.contains(&format!(
                    "data decompresses to more than {limit} bytes, over {ratio} times its compressed size ({len} bytes): reading stopped at decompressed byte offset {last_end}"
                )),
                "{e}"
            );
        }
        // A stream of unknown size (a FIFO): the cap counts the compressed bytes read.
        let mut n = 0u64;
        let r = read_compressed(
            &bytes[..],
            0,
            compression,
            InflateCap {
                ratio: 100,
                floor: 0,
            },
            &std::cell::Cell::new(false),
            &mut |_: &Packet<'_>| n += 1,
        );
        assert!(
            matches!(r.error, Some(CaptureError::Inflate { limit, .. }) if limit <= 100 * len),
            "{name}: {:?}",
            r.error
        );
        assert!(n > 0 && n < 100_000, "{name}: {n}");
    }
}

/// rstscope's default cap (1000 times) cuts none of the compressed captures in `testdata/`,
/// even without its 64 MiB floor.
#[test]
fn the_default_ratio_cuts_no_testdata_capture_even_without_its_floor() {
    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                files(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut all = Vec::new();
    files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata"),
        &mut all,
    );
    let cap = InflateCap {
        floor: 0,
        ..InflateCap::DEFAULT
    };
    let mut compressed = 0;
    for p in all {
        let mut head = [0u8; 4];
        let n = std::fs::File::open(&p)
            .and_then(|f| read_head(&f, &mut head))
            .unwrap();
        if !matches!(sniff(&head[..n]), Some(Kind::Compressed(_))) {
            continue;
        }
        compressed += 1;
        let r = read_path_with(
            &p,
            ReadOptions {
                access: PlainAccess::Mmap,
                inflate: cap,
            },
            |_| {},
        );
        assert!(
            !matches!(r.error, Some(CaptureError::Inflate { .. })),
            "{}: {:?}",
            p.display(),
            r.error
        );
    }
    assert!(compressed >= 4, "{compressed} compressed captures");
}

/// `read_path_until` ends a read between records when the visitor says so, without an error,
/// for a mapped file and a compressed one alike.
#[test]
fn a_read_stops_where_the_visitor_says() {
    let sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sample.pcap");
    let dir = tempfile::tempdir().unwrap();
    let zst = dir.path().join("sample.pcap.zst");
    std::fs::write(
        &zst,
        zstd::encode_all(&std::fs::read(&sample).unwrap()[..], 3).unwrap(),
    )
    .unwrap();
    for path in [sample.as_path(), zst.as_path()] {
        let all = read_path(path, PlainAccess::Mmap, |_| {}).packets;
        assert!(all > 5, "{path:?}");
        let mut frames = Vec::new();
        let opts = ReadOptions {
            access: PlainAccess::Mmap,
            inflate: InflateCap::NONE,
        };
        let r = crate::read_path_until(path, opts, |p| {
            frames.push(p.frame);
            p.frame < 3
        });
        assert!(r.error.is_none(), "{path:?}: {:?}", r.error);
        assert_eq!(frames, vec![1, 2, 3], "{path:?}");
        assert_eq!(r.packets, 3, "{path:?}");
    }
}
