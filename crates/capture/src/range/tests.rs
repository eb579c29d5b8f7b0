use super::*;
use crate::{read_bytes, read_path, PlainAccess};
use rstscope_pcapgen::{Endian, Interface as If, Link, PcapNgWriter, PcapWriter, Record, Tcp};

fn rec(i: u32) -> Record {
    let ip = Tcp::new("10.0.0.1", 1000, "10.0.0.2", 80).seq(i).to_ip();
    Record::new(
        1_700_000_000_000_000_000 + i as i64 * 1_000_000,
        Link::Ethernet.frame(&ip),
    )
}

fn offsets(bytes: &[u8]) -> Vec<u64> {
    let mut v = Vec::new();
    let r = read_bytes(bytes, |p| v.push(p.offset));
    assert!(r.error.is_none());
    v
}

#[test]
fn layout_reads_the_pcap_header_and_the_pcapng_head() {
    let recs: Vec<Record> = (0..3).map(rec).collect();
    let pcap = PcapWriter::new(1)
        .endian(Endian::Big)
        .nanos(true)
        .write(&recs);
    let l = layout(&pcap).unwrap();
    assert_eq!(l.format, Format::Pcap);
    let h = l.pcap.unwrap();
    assert!(h.big_endian && h.nanos && !h.modified);
    assert_eq!((h.linktype, l.data_start), (1, 24));
    assert_eq!(l.first_ts_s, Some(1_700_000_000));

    let mut w = PcapNgWriter::new(Endian::Big, vec![If::new(1), If::new(101).tsresol(9)]);
    w.unknown_block(4, &[0, 0, 0, 0]);
    w.interface(If::new(228).tsoffset(7));
    let head_len = w.finish().len() as u64;
    w.epb(2, &recs[0]);
    w.interface(If::new(1));
    let ng = w.finish();
    let l = layout(&ng).unwrap();
    assert_eq!(l.format, Format::PcapNg);
    assert!(l.big_endian);
    assert_eq!(l.data_start, head_len);
    let got: Vec<(u16, u64, i64)> = l
        .interfaces
        .iter()
        .map(|i| (i.linktype, i.units, i.offset_s))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 1_000_000, 0),
            (101, 1_000_000_000, 0),
            (228, 1_000_000, 7)
        ]
    );

    assert!(matches!(layout(&[][..]), Err(CaptureError::Empty)));
    assert!(matches!(
        layout(&b"hello"[..]),
        Err(CaptureError::NotCapture(_))
    ));
    assert!(layout(&pcap[..20]).is_err());
}

#[test]
fn resync_at_the_edges() {
    let pcap = PcapWriter::new(1).write(&(0..20).map(rec).collect::<Vec<_>>());
    let l = layout(&pcap).unwrap();
    let len = pcap.len() as u64;
    assert_eq!(resync(&pcap, &l, 0), Some(24));
    assert_eq!(resync(&pcap, &l, 24), Some(24));
    assert_eq!(resync(&pcap, &l, len), Some(len));
    assert_eq!(resync(&pcap, &l, len + 1), None);
    let offs = offsets(&pcap);
    for w in offs.windows(2) {
        for h in w[0] + 1..=w[1] {
            assert_eq!(resync(&pcap, &l, h), Some(w[1]), "hint {h}");
        }
    }
    // Garbage after the records: no chain survives there, only the end of the file (the
    // range before stops at the garbage with the sequential reader's error)...
    let mut junk = pcap.clone();
    junk.extend([0xffu8; 5000]);
    assert_eq!(resync(&junk, &l, len + 10), Some(junk.len() as u64));
    // ... unless it is further than resync looks.
    junk.resize(len as usize + (6 << 20), 0xff);
    assert_eq!(resync(&junk, &l, len + 10), None);
}

#[test]
fn read_record_at_rereads_what_the_range_delivered() {
    let mut w = PcapNgWriter::new(Endian::Little, vec![If::new(1), If::new(101).tsresol(9)]);
    for i in 0..10 {
        w.epb(i % 2, &rec(i));
    }
    let ng = w.finish();
    let pcap = PcapWriter::new(1)
        .nanos(true)
        .write(&(0..10).map(rec).collect::<Vec<_>>());
    for bytes in [ng, pcap] {
        let l = layout(&bytes).unwrap();
        let mut n = 0;
        read_bytes(&bytes, |p| {
            let q = read_record_at(&bytes, &l, p.offset).unwrap();
            assert_eq!(
                (q.offset, q.ts_ns, q.linktype, q.orig_len, q.data),
                (p.offset, p.ts_ns, p.linktype, p.orig_len, p.data)
            );
            assert_eq!(q.frame, 1);
            n += 1;
        });
        assert_eq!(n, 10);
        assert!(read_record_at(&bytes, &l, l.data_start + 1).is_err());
        assert!(read_record_at(&bytes, &l, bytes.len() as u64 + 5).is_err());
    }
}

#[test]
fn a_range_is_what_the_sequential_reader_gives_for_its_records() {
    let pcap = PcapWriter::new(1).write(&(0..30).map(rec).collect::<Vec<_>>());
    let l = layout(&pcap).unwrap();
    let offs = offsets(&pcap);
    let (start, end) = (offs[10], offs[20] - 3);
    let mut got = Vec::new();
    let r = read_range(&pcap, &l, start, end, |p| got.push((p.frame, p.offset)));
    assert!(r.error.is_none());
    let want: Vec<(u64, u64)> = (10..20).map(|i| (i as u64 - 9, offs[i])).collect();
    assert_eq!(got, want);
    assert_eq!(
        (r.next, r.records, r.frames, r.packets),
        (offs[20], 10, 10, 10)
    );
    assert!(!r.layout_changed && !r.untimed_start);
    // A corrupt record in the range: the sequential reader's error, at the same record.
    let mut bad = pcap.clone();
    bad[offs[15] as usize + 8..offs[15] as usize + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let seq = read_bytes(&bad, |_| {});
    let r = read_range(&bad, &l, start, end, |_| {});
    assert_eq!(r.packets, 5);
    assert_eq!(r.next, offs[15]);
    assert_eq!(
        r.error.map(|e| e.to_string()),
        seq.error.map(|e| e.to_string())
    );
}

#[test]
fn pcapng_ranges_flag_layout_changes_and_untimed_starts() {
    let mut w = PcapNgWriter::new(Endian::Little, vec![If::new(1)]);
    w.epb(0, &rec(0));
    let after_first = w.finish().len() as u64;
    w.spb(&rec(1));
    w.epb(0, &rec(2));
    let idb_at = w.finish().len() as u64;
    w.interface(If::new(101));
    w.epb(1, &rec(3));
    w.new_section(Endian::Big, vec![If::new(1)]);
    w.epb(0, &rec(4));
    let ng = w.finish();
    let l = layout(&ng).unwrap();
    // An SPB first: its time is the packet before's, unknown here.
    let r = read_range(&ng, &l, after_first, idb_at, |_| {});
    assert!(r.untimed_start && !r.layout_changed);
    // From the head: known (the sequential reader's), and the head's IDB is no change.
    let r = read_range(&ng, &l, 0, idb_at, |_| {});
    assert!(!r.untimed_start && !r.layout_changed);
    assert_eq!(r.packets, 3);
    // A range holding the mid-file IDB and SHB.
    let r = read_range(&ng, &l, idb_at, u64::MAX, |_| {});
    assert!(r.layout_changed && r.error.is_none());
    assert_eq!((r.packets, r.next), (2, ng.len() as u64));
}

/// Two ranges of one mapped file read while it is truncated: an error, not a SIGBUS, for the
/// range that reads past the new end (each range registers the map; every guard is told).
#[cfg(target_os = "linux")]
#[test]
fn ranges_of_a_map_truncated_under_them_end_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.pcap");
    let bytes = PcapWriter::new(1).write(&(0..20_000).map(rec).collect::<Vec<_>>());
    std::fs::write(&path, &bytes).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    // SAFETY: the test truncates the file on purpose; the guard turns that into an error.
    let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
    let l = layout(&map).unwrap();
    let mid = resync(&map, &l, map.len() as u64 / 2).unwrap();
    let mut n = 0;
    let first = read_range(&map, &l, 0, mid, |_| {
        n += 1;
        if n == 10 {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(8192)
                .unwrap();
        }
    });
    let second = read_range(&map, &l, mid, u64::MAX, |_| {});
    let e = first.error.expect("an error").to_string();
    assert!(e.contains("truncated while it was read"), "{e}");
    assert!(second.error.is_some());
    // read_path over another copy still works.
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(read_path(&path, PlainAccess::Mmap, |_| {}).packets, 20_000);
}
