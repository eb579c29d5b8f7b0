//! Byte-range reading against the sequential reader: for generated captures (pcapgen: pcap
//! LE/BE, µs/ns; pcapng with several interfaces, several sections, EPB/SPB/OPB and non-packet
//! blocks; truncated or corrupted) and for every capture under testdata/, resync + chained
//! read_range cut at random hints give exactly the sequential packet list, counters and error
//! (the harness redoes a range whose resync offset is not the range before's `next`, as the
//! engine does). The harness is the fuzz target's (fuzz/harness/resync.rs).

#[allow(dead_code)]
#[path = "../../../fuzz/harness/resync.rs"]
mod harness;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use rstscope_capture::{layout, read_path, read_range, resync, PlainAccess};
use rstscope_pcapgen::{flags, Endian, Interface, Link, PcapNgWriter, PcapWriter, Record, Tcp};

fn frame(i: u32, payload: usize) -> Vec<u8> {
    let mut ip = Tcp::new("10.0.0.1", 1000 + (i % 500) as u16, "10.0.0.2", 80)
        .flags(if i.is_multiple_of(7) {
            flags::RST
        } else {
            flags::ACK
        })
        .seq(i)
        .to_ip();
    // Payload bytes that look like pcap record headers now and then (lengths, timestamps).
    ip.extend((0..payload).map(|k| (k as u32).wrapping_mul(i | 1).to_le_bytes()[k % 4]));
    Link::Ethernet.frame(&ip)
}

const T0: i64 = 1_700_000_000_000_000_000;

/// One pcapng block to write.
#[derive(Debug, Clone)]
enum Op {
    Epb(u32, usize),
    Spb(usize),
    Opb(usize),
    Nrb,
    Custom,
    Unknown,
    Idb,
    Section(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0u32..3, 0usize..300).prop_map(|(i, n)| Op::Epb(i, n)),
        2 => (0usize..200).prop_map(Op::Spb),
        2 => (0usize..200).prop_map(Op::Opb),
        1 => Just(Op::Nrb),
        1 => Just(Op::Custom),
        1 => Just(Op::Unknown),
        1 => Just(Op::Idb),
        1 => proptest::bool::ANY.prop_map(Op::Section),
    ]
}

fn endian(be: bool) -> Endian {
    if be {
        Endian::Big
    } else {
        Endian::Little
    }
}

fn interfaces(n: usize) -> Vec<Interface> {
    (0..n)
        .map(|k| match k {
            0 => Interface::new(1),
            1 => Interface::new(1).tsresol(9).snaplen(128),
            _ => Interface::new(101).tsresol(3).tsoffset(-5),
        })
        .collect()
}

fn pcapng(be: bool, nif: usize, ops: &[Op]) -> Vec<u8> {
    let mut w = PcapNgWriter::new(endian(be), interfaces(nif));
    let mut ts = T0;
    for (i, op) in ops.iter().enumerate() {
        ts += 1_234_567 * (i as i64 % 5 + 1);
        let rec = |n| Record::new(ts, frame(i as u32, n));
        match op {
            Op::Epb(if_id, n) => {
                let mut r = rec(*n);
                if *if_id == 1 {
                    r = r.snap(128);
                }
                w.epb(*if_id, &r);
            }
            Op::Spb(n) => {
                w.spb(&rec(*n));
            }
            Op::Opb(n) => {
                let r = rec(*n);
                let e = w.endian();
                let b = |v: u32| match e {
                    Endian::Little => v.to_le_bytes(),
                    Endian::Big => v.to_be_bytes(),
                };
                let mut body = Vec::new();
                body.extend_from_slice(&match e {
                    Endian::Little => [0u8, 0, 0, 0],
                    Endian::Big => [0, 0, 0, 0],
                });
                let us = (ts / 1000) as u64;
                body.extend_from_slice(&b((us >> 32) as u32));
                body.extend_from_slice(&b(us as u32));
                body.extend_from_slice(&b(r.data.len() as u32));
                body.extend_from_slice(&b(r.orig_len));
                body.extend_from_slice(&r.data);
                w.unknown_block(2, &body);
            }
            Op::Nrb => {
                w.unknown_block(4, &[0, 0, 0, 0]);
            }
            Op::Custom => {
                w.unknown_block(0xBAD, &[0x12, 0x34, 0, 0, 1, 2, 3, 4]);
            }
            Op::Unknown => {
                w.unknown_block(0x0000_7777, &[9; 12]);
            }
            Op::Idb => {
                w.interface(Interface::new(1).tsresol(9));
            }
            Op::Section(be2) => {
                w.new_section(endian(*be2), interfaces(nif));
            }
        }
    }
    w.finish()
}

fn pcap(be: bool, nanos: bool, sizes: &[(u16, usize)]) -> Vec<u8> {
    let mut ts = T0;
    let recs: Vec<Record> = sizes
        .iter()
        .enumerate()
        .map(|(i, &(gap, n))| {
            ts += gap as i64 * 1_000_003;
            Record::new(ts, frame(i as u32, n))
        })
        .collect();
    PcapWriter::new(1)
        .endian(endian(be))
        .nanos(nanos)
        .write(&recs)
}

/// Damage: none, a cut, or four bytes overwritten.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Cut(f64),
    Overwrite(f64, [u8; 4]),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => Just(Damage::None),
        1 => (0.0f64..1.0).prop_map(Damage::Cut),
        1 => (0.0f64..1.0, proptest::array::uniform4(proptest::num::u8::ANY))
            .prop_map(|(at, b)| Damage::Overwrite(at, b)),
    ]
}

fn apply(mut bytes: Vec<u8>, d: &Damage) -> Vec<u8> {
    let len = bytes.len();
    match *d {
        Damage::None => {}
        Damage::Cut(at) => bytes.truncate((len as f64 * at) as usize),
        Damage::Overwrite(at, b) => {
            let p = ((len as f64 * at) as usize).min(len.saturating_sub(4));
            for (k, v) in b.iter().enumerate() {
                if let Some(x) = bytes.get_mut(p + k) {
                    *x = *v;
                }
            }
        }
    }
    bytes
}

fn hints_for(len: usize, fractions: &[f64]) -> Vec<u64> {
    fractions.iter().map(|f| (len as f64 * f) as u64).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn chained_ranges_read_generated_pcap_like_the_sequential_reader(
        be in proptest::bool::ANY,
        nanos in proptest::bool::ANY,
        sizes in proptest::collection::vec((0u16..3000, 0usize..400), 0..80),
        dmg in damage(),
        fractions in proptest::collection::vec(0.0f64..1.0, 0..8),
    ) {
        let bytes = apply(pcap(be, nanos, &sizes), &dmg);
        let hints = hints_for(bytes.len(), &fractions);
        let stitch = harness::check(&bytes, &hints);
        if matches!(dmg, Damage::None) {
            // Well-formed and no pcap-in-pcap: every resync finds the true boundary.
            let s = stitch.expect("a layout");
            prop_assert_eq!(s.redone, 0, "{:?}", s);
        }
    }

    #[test]
    fn chained_ranges_read_generated_pcapng_like_the_sequential_reader(
        be in proptest::bool::ANY,
        nif in 0usize..4,
        ops in proptest::collection::vec(op(), 0..60),
        dmg in damage(),
        fractions in proptest::collection::vec(0.0f64..1.0, 0..8),
    ) {
        let bytes = apply(pcapng(be, nif, &ops), &dmg);
        let hints = hints_for(bytes.len(), &fractions);
        harness::check(&bytes, &hints);
    }
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// Plain captures under testdata/ (compressed ones are one unit, never split).
fn plain_captures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![testdata()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("golden") {
                    stack.push(p);
                }
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            ) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every plain capture under testdata/, memory-mapped as the engine maps it, cut at every byte
/// offset (one hint at a time) and at pairs of offsets: the same packets, counters and error
/// as `read_path` with a map.
#[test]
fn every_testdata_capture_cut_anywhere_reads_like_read_path() {
    let files = plain_captures();
    assert!(files.len() > 20, "testdata/ captures not found");
    let mut redone = 0;
    let mut ranges = 0;
    for path in files {
        let file = std::fs::File::open(&path).unwrap();
        if file.metadata().unwrap().len() == 0 {
            continue;
        }
        // SAFETY: a test file nobody else writes.
        let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
        // The harness's sequential read (read_bytes) is read_path's with a map.
        let want = harness::sequential(&map);
        let mut n = 0u64;
        let r = read_path(&path, PlainAccess::Mmap, |_| n += 1);
        assert_eq!((r.packets, n), (want.packets, want.seen.len() as u64));
        assert_eq!(r.error.map(|e| e.to_string()), want.error);
        let len = map.len() as u64;
        for h in 0..=len {
            if let Some(s) = harness::check(&map, &[h]) {
                redone += s.redone;
                ranges += s.ranges;
            }
        }
        for h in (0..len).step_by(97) {
            harness::check(&map, &[h, len - h / 3, h / 2]);
        }
    }
    eprintln!("{ranges} ranges, {redone} redone");
}

/// resync at each record boundary returns it, and from any offset the next boundary.
#[test]
fn resync_finds_the_next_record_of_testdata_captures() {
    for path in plain_captures() {
        let bytes = std::fs::read(&path).unwrap();
        let Ok(l) = layout(&bytes) else { continue };
        let mut bounds = Vec::new();
        let r = read_range(&bytes, &l, 0, u64::MAX, |p| bounds.push(p.offset));
        if r.error.is_some() || r.skipped_blocks > 0 {
            continue;
        }
        bounds.push(bytes.len() as u64);
        let mut misses = 0;
        for h in l.data_start..=bytes.len() as u64 {
            let want = *bounds.iter().find(|&&b| b >= h).unwrap();
            if resync(&bytes, &l, h) != Some(want) {
                misses += 1;
            }
        }
        // (hostile.pcap holds records whose captured length exceeds the wire length, which
        // resync does not take for a record start: the engine redoes such ranges.)
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name != "hostile.pcap" {
            assert_eq!(misses, 0, "{name}");
        }
    }
}

/// resync is cheap: a hint in a large file costs well under a millisecond (debug build: a
/// loose bound).
#[test]
fn resync_in_a_large_capture_is_cheap() {
    let sizes: Vec<(u16, usize)> = (0..60_000).map(|i| (1, (i * 37) % 1400)).collect();
    let bytes = pcap(false, false, &sizes);
    assert!(bytes.len() > 40 << 20, "{}", bytes.len());
    let l = layout(&bytes).unwrap();
    let t = std::time::Instant::now();
    let n = 200;
    for k in 0..n {
        let h = bytes.len() as u64 / (n + 1) * (k + 1) + k * 7;
        assert!(resync(&bytes, &l, h).is_some());
    }
    let per = t.elapsed() / n as u32;
    assert!(
        per < std::time::Duration::from_millis(5),
        "{per:?} per resync"
    );
}
