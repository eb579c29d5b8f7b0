//! Harness for byte-range reading (`rstscope_capture::{layout, resync, read_range}`).
//!
//! Shared by the cargo-fuzz target `resync` (fuzz/fuzz_targets/resync.rs) and by the tests
//! `crates/capture/tests/ranges.rs` (property tests over generated and bundled captures) and
//! `crates/capture/tests/fuzz_regressions.rs` (inputs under `testdata/fuzz/resync/`): all
//! include this file with `#[path]`, so they run the same code.
//!
//! [`chained`] reads a capture the way the engine does: ranges cut at resync proposals, read
//! on their own, then stitched in order; a range whose start is not the `next` of the range
//! before is read again from that `next`; an error drops the later ranges; a range that
//! reports `layout_changed` (or `untimed_start`) ends the split: the rest of the file is read
//! from its head with the records before dropped. The result must be the sequential read's.

use rstscope_capture::{layout, read_bytes, read_range, resync, Layout, RangeBytes};

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

/// Everything a read delivered and counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub seen: Vec<Seen>,
    pub packets: u64,
    pub skipped_blocks: u64,
    pub packets_without_interface: u64,
    /// Capture bytes consumed (where the read stopped).
    pub bytes: u64,
    /// The error, as the CLI prints it.
    pub error: Option<String>,
}

/// How the stitching went (not part of the result).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stitch {
    /// Ranges the chained read was cut into.
    pub ranges: usize,
    /// Ranges read again because their resync offset was not the `next` of the range before.
    pub redone: usize,
    /// Splits given up (layout change, untimed start).
    pub fallbacks: usize,
}

/// The sequential reader's result.
pub fn sequential(bytes: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let report = read_bytes(bytes, |p| out.seen.push(seen(p, 0)));
    out.packets = report.packets;
    out.skipped_blocks = report.skipped_blocks;
    out.packets_without_interface = report.packets_without_interface;
    out.bytes = report.capture_bytes;
    out.error = report.error.map(|e| e.to_string());
    out
}

fn seen(p: &rstscope_capture::Packet<'_>, frame_base: u64) -> Seen {
    Seen {
        frame: frame_base + p.frame,
        offset: p.offset,
        ts_ns: p.ts_ns,
        linktype: p.linktype,
        orig_len: p.orig_len,
        data: p.data.to_vec(),
    }
}

struct Unit {
    seen: Vec<Seen>,
    report: rstscope_capture::RangeReport,
}

fn unit<B: RangeBytes + ?Sized>(bytes: &B, layout: &Layout, start: u64, end: u64) -> Unit {
    let mut seen_ = Vec::new();
    let report = read_range(bytes, layout, start, end, |p| seen_.push(seen(p, 0)));
    if let Some(first) = seen_.first() {
        assert!(
            first.offset >= start.min(layout.data_start),
            "a record before the range"
        );
    }
    for s in &seen_ {
        assert!(
            s.offset < end,
            "a record starting after the range end was delivered"
        );
    }
    assert!(report.next >= start.min(layout.data_start) || report.error.is_some());
    Unit {
        seen: seen_,
        report,
    }
}

/// Read `bytes` in ranges cut at the resync proposals for `hints`, as the engine does.
/// `None` when the head of the file gives no layout (the engine reads such a file
/// sequentially).
pub fn chained<B: RangeBytes + ?Sized>(bytes: &B, hints: &[u64]) -> Option<(Outcome, Stitch)> {
    let all = bytes.all_bytes();
    let layout = layout(bytes).ok()?;
    let mut hints = hints.to_vec();
    hints.sort_unstable();
    let mut starts = vec![0u64];
    for h in hints {
        let r = resync(bytes, &layout, h);
        if let Some(r) = r {
            assert!(r >= h.min(layout.data_start), "resync went back: {r} < {h}");
            assert!(r <= all.len() as u64, "resync past the end");
            if r > *starts.last().unwrap() {
                starts.push(r);
            }
        }
    }
    let end_of = |k: usize| starts.get(k + 1).copied().unwrap_or(u64::MAX);
    // Phase 1: every range on its own (in parallel in the engine).
    let units: Vec<Unit> = (0..starts.len())
        .map(|k| unit(bytes, &layout, starts[k], end_of(k)))
        .collect();
    // Phase 2: stitch in order.
    let mut stitch = Stitch {
        ranges: starts.len(),
        ..Stitch::default()
    };
    let mut out = Outcome::default();
    let mut expected = 0u64;
    let mut frame_base = 0u64;
    for (k, u) in units.into_iter().enumerate() {
        let u = if starts[k] == expected {
            u
        } else {
            stitch.redone += 1;
            unit(bytes, &layout, expected, end_of(k))
        };
        if u.report.untimed_start {
            // Its simple packet blocks need the timestamp of a packet before the range.
            stitch.fallbacks += 1;
            rest_from_head(bytes, &layout, expected, frame_base, &mut out);
            return Some((out, stitch));
        }
        out.seen.extend(u.seen.into_iter().map(|mut s| {
            s.frame += frame_base;
            s
        }));
        frame_base += u.report.frames;
        out.packets += u.report.packets;
        out.skipped_blocks += u.report.skipped_blocks;
        out.packets_without_interface += u.report.packets_without_interface;
        out.bytes = u.report.next;
        if let Some(e) = u.report.error {
            out.error = Some(e.to_string());
            return Some((out, stitch));
        }
        expected = u.report.next;
        if u.report.layout_changed && k + 1 < starts.len() {
            stitch.fallbacks += 1;
            rest_from_head(bytes, &layout, expected, frame_base, &mut out);
            return Some((out, stitch));
        }
    }
    Some((out, stitch))
}

/// The sequential fallback: everything from `from` on, read from the head of the file.
fn rest_from_head<B: RangeBytes + ?Sized>(
    bytes: &B,
    layout: &Layout,
    from: u64,
    frame_base: u64,
    out: &mut Outcome,
) {
    let before = unit(bytes, layout, 0, from);
    let whole = unit(bytes, layout, 0, u64::MAX);
    assert_eq!(
        before.report.next, from,
        "the head read does not reach {from}"
    );
    let skip = before.seen.len();
    assert_eq!(&whole.seen[..skip], &before.seen[..]);
    out.seen
        .extend(whole.seen.into_iter().skip(skip).map(|mut s| {
            s.frame = s.frame - before.report.frames + frame_base;
            s
        }));
    out.packets += whole.report.packets - before.report.packets;
    out.skipped_blocks += whole.report.skipped_blocks - before.report.skipped_blocks;
    out.packets_without_interface +=
        whole.report.packets_without_interface - before.report.packets_without_interface;
    out.bytes = whole.report.next;
    out.error = whole.report.error.map(|e| e.to_string());
}

/// Check that the chained read of `bytes` cut at `hints` is the sequential read; returns how
/// the stitching went (`None`: no layout, the file is read sequentially).
pub fn check<B: RangeBytes + ?Sized>(bytes: &B, hints: &[u64]) -> Option<Stitch> {
    let want = sequential(bytes.all_bytes());
    let (got, stitch) = chained(bytes, hints)?;
    assert_eq!(got.seen.len(), want.seen.len(), "packet count ({stitch:?})");
    for (g, w) in got.seen.iter().zip(&want.seen) {
        assert_eq!(g, w, "a different packet ({stitch:?})");
    }
    assert_eq!(got, want, "counters or error ({stitch:?})");
    Some(stitch)
}

/// Target `resync`: the first byte says whether the rest is the file itself or records behind a
/// generated pcap/pcapng header; the last bytes choose the hints. Chained reads must equal the
/// sequential read, and nothing may panic.
pub fn fuzz_resync(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let (sel, rest) = (data[0], &data[1..]);
    let file: Vec<u8> = match sel % 3 {
        0 => rest.to_vec(),
        1 => {
            let mut f = rstscope_pcapgen::PcapWriter::new(1)
                .endian(if sel & 0x10 == 0 {
                    rstscope_pcapgen::Endian::Little
                } else {
                    rstscope_pcapgen::Endian::Big
                })
                .nanos(sel & 0x20 != 0)
                .header();
            f.extend_from_slice(rest);
            f
        }
        _ => {
            let endian = if sel & 0x10 == 0 {
                rstscope_pcapgen::Endian::Little
            } else {
                rstscope_pcapgen::Endian::Big
            };
            let mut ifaces = vec![rstscope_pcapgen::Interface::new(1)];
            if sel & 0x20 != 0 {
                ifaces.push(rstscope_pcapgen::Interface::new(101).tsresol(9));
            }
            let mut f = rstscope_pcapgen::PcapNgWriter::new(endian, ifaces).finish();
            f.extend_from_slice(rest);
            f
        }
    };
    let len = file.len() as u64;
    if len == 0 {
        return;
    }
    // Hints from the trailing bytes: up to 6, each a u16 scaled to the file.
    let tail = &rest[rest.len().saturating_sub(12)..];
    let hints: Vec<u64> = tail
        .chunks(2)
        .map(|c| {
            let v = u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64;
            v * (len + 1) / 65536
        })
        .collect();
    if let Ok(l) = layout(&file) {
        for &h in &hints {
            let _ = resync(&file, &l, h);
            let _ = rstscope_capture::read_record_at(&file, &l, h);
        }
    }
    let _ = check(&file, &hints);
}
