//! Byte ranges of one plain capture file, read on their own, so that one big file can be
//! processed as several units on several threads (issue 16).
//!
//! * [`layout`] reads what a reader needs to start in the middle of the file: the pcap file
//!   header, or the pcapng section's byte order and the interfaces described at its head.
//! * [`resync`] proposes the first record (pcap) or block (pcapng) boundary at or after a byte
//!   offset, RAPCAP-style: a candidate must start a chain of plausible records that runs for
//!   [`PCAP_CHAIN`] records / [`PCAPNG_CHAIN`] blocks or ends exactly at the end of the file.
//!   It is only a proposal: a payload can hold something that looks like records.
//! * [`read_range`] reads the records that start in `[start, end)` with the same record loops
//!   as the sequential reader, and says where it stopped ([`RangeReport::next`]): the first
//!   record at or after `end` on the chain it walked. A caller that starts range 0 at the head
//!   of the file and accepts range k+1 only when its resync offset equals range k's `next`
//!   walks exactly the sequential reader's chain of records (by induction); on a mismatch it
//!   reads range k+1 again from range k's `next`.
//! * [`read_record_at`] reads one record again, for replaying a connection's packets.
//!
//! All of them take the capture bytes as a [`RangeBytes`]: a slice, or a memory map, which is
//! read with the truncation (SIGBUS) protection of [`MmapSource`] and whose pages already read
//! are released as the sequential reader does.

use crate::source::{MmapSource, SliceSource};
use crate::{
    corrupt, ng_next_block, pcap_header, pcap_records, pcapng_blocks, sniff, u32_at, ByteSource,
    CaptureError, Format, Interface, Kind, NgState, Offset, Packet, PcapHeader, Tally,
    DEFAULT_MAX_CAPLEN, EPB_TYPE, HARD_MAX_RECORD, IDB_TYPE, OPB_TYPE, SHB_TYPE, SPB_TYPE,
};

/// Records a pcap resync candidate must start a chain of (unless the file ends sooner).
pub const PCAP_CHAIN: usize = 16;
/// Blocks a pcapng resync candidate must start a chain of (unless the file ends sooner).
pub const PCAPNG_CHAIN: usize = 8;
/// Largest gap, in seconds, between the timestamps of two consecutive records of a pcap
/// resync chain (pcapfix's one day).
pub const PCAP_MAX_GAP_S: i64 = 86_400;
/// A pcap resync chain's timestamps must not lie more than this many seconds before the file's
/// first record; one cut short by the end of the file not more than this many after it either.
pub const PCAP_ANCHOR_S: i64 = 366 * 86_400;

/// The capture bytes a range is read from.
///
/// A memory map (`memmap2::Mmap`) is read through [`MmapSource`]: an access past the end of a
/// file truncated while it is mapped ends the read with an error instead of a SIGBUS, and the
/// pages already read are released. A slice (`[u8]`, `Vec<u8>`) is read in place: pass the
/// map itself, not `&map[..]`, to keep that protection.
pub trait RangeBytes {
    /// All the bytes of the capture.
    fn all_bytes(&self) -> &[u8];
    /// The map behind the bytes, when they are mapped.
    fn as_map(&self) -> Option<&memmap2::Mmap> {
        None
    }
}

impl RangeBytes for [u8] {
    fn all_bytes(&self) -> &[u8] {
        self
    }
}

impl RangeBytes for Vec<u8> {
    fn all_bytes(&self) -> &[u8] {
        self
    }
}

impl RangeBytes for memmap2::Mmap {
    fn all_bytes(&self) -> &[u8] {
        self
    }
    fn as_map(&self) -> Option<&memmap2::Mmap> {
        Some(self)
    }
}

/// Run `$body` with `$src` a [`ByteSource`] over `$bytes` from `$pos` on: the map's source
/// when the bytes are mapped, a slice's otherwise (the body is compiled for both).
macro_rules! with_source {
    ($bytes:expr, $pos:expr, |$src:ident| $body:expr) => {
        match $bytes.as_map() {
            Some(map) => {
                let mut s = MmapSource::at(map, $pos);
                let $src = &mut s;
                $body
            }
            None => {
                let mut s = SliceSource::at($bytes.all_bytes(), $pos);
                let $src = &mut s;
                $body
            }
        }
    };
}

/// What a reader needs to start in the middle of a plain capture file, as the head of the file
/// says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub format: Format,
    /// pcap: the file header (byte order, "modified" records, timestamp resolution, link
    /// type, snap length). `None` for pcapng.
    pub pcap: Option<PcapHeader>,
    /// pcapng: byte order of the first section.
    pub big_endian: bool,
    /// pcapng: the interfaces the first section describes before its first packet block (link
    /// type, snap length, timestamp units and offset), by interface id.
    pub interfaces: Vec<Interface>,
    /// pcap: the seconds of the first record's timestamp, when there is one (anchors
    /// [`resync`]'s short chains at the end of the file).
    pub first_ts_s: Option<i64>,
    /// Offset of the first record after the head: pcap, 24; pcapng, the first block that is
    /// neither the section header nor one of the blocks before the first packet block (the
    /// first packet block, a second section header, or the end of the file). A range starting
    /// before it is read from the first byte of the file, as the sequential reader does.
    pub data_start: u64,
}

/// Read the head of a plain capture: the pcap file header, or the pcapng section header and
/// the blocks after it up to the first packet block (interface descriptions are collected,
/// other blocks stepped over). Errors are the sequential reader's for the same bytes.
pub fn layout<B: RangeBytes + ?Sized>(bytes: &B) -> Result<Layout, CaptureError> {
    let all = bytes.all_bytes();
    if all.is_empty() {
        return Err(CaptureError::Empty);
    }
    match sniff(all) {
        Some(Kind::Capture(Format::Pcap)) => {
            let header = with_source!(bytes, 0, |src| pcap_header(src))?;
            let first_ts_s = (all.len() >= PcapHeader::LEN + header.record_header_len())
                .then(|| u32_at(all, PcapHeader::LEN, header.records_big_endian()) as i64);
            Ok(Layout {
                first_ts_s,
                format: Format::Pcap,
                pcap: Some(header),
                big_endian: header.big_endian,
                interfaces: Vec::new(),
                data_start: PcapHeader::LEN as u64,
            })
        }
        Some(Kind::Capture(Format::PcapNg)) => with_source!(bytes, 0, |src| pcapng_head(src)),
        _ => Err(CaptureError::NotCapture(crate::hex_head(
            &all[..all.len().min(4)],
        ))),
    }
}

fn pcapng_head<S: ByteSource>(src: &mut S) -> Result<Layout, CaptureError> {
    let mut big_endian = false;
    let mut interfaces = Vec::new();
    let mut first = true;
    loop {
        let pos = src.position();
        let mut order = big_endian;
        let Some((block_type, here, block)) = ng_next_block(src, &mut order, first)? else {
            return Ok(ng_layout(big_endian, interfaces, pos));
        };
        if !first && (block_type == SHB_TYPE || is_packet_block(block_type)) {
            return Ok(ng_layout(big_endian, interfaces, pos));
        }
        first = false;
        big_endian = order;
        if block_type == IDB_TYPE {
            if let pcap_parser::pcapng::Block::InterfaceDescription(idb) =
                crate::ng_parse(block, block_type, big_endian, here)?
            {
                interfaces.push(crate::idb_interface(&idb, big_endian, here)?);
            }
        }
        let len = block.len();
        src.advance(len);
    }
}

fn ng_layout(big_endian: bool, interfaces: Vec<Interface>, data_start: u64) -> Layout {
    Layout {
        format: Format::PcapNg,
        pcap: None,
        first_ts_s: None,
        big_endian,
        interfaces,
        data_start,
    }
}

fn is_packet_block(block_type: u32) -> bool {
    matches!(block_type, EPB_TYPE | SPB_TYPE | OPB_TYPE)
}

/// What reading a byte range delivered, and where it stopped.
#[derive(Debug)]
pub struct RangeReport {
    /// Where the walk stopped: the start of the first record at or after `end` (the end of
    /// the file when there is none), or of the record the error is about. The next range is
    /// exact only if it starts here.
    pub next: u64,
    /// Records (pcap) or blocks (pcapng) of any kind read in the range.
    pub records: u64,
    /// Frame numbers the range used (the last packet's `frame`, or more when a pcapng range
    /// ends with blocks that take a frame number without being delivered): add them up to
    /// rebase the next range's frames.
    pub frames: u64,
    /// Packets delivered to the visitor.
    pub packets: u64,
    /// pcapng blocks skipped because their type is unknown or carries no packet.
    pub skipped_blocks: u64,
    /// Packets naming an interface that no IDB described (pcapng), skipped.
    pub packets_without_interface: u64,
    /// pcapng: a section header or an interface description block lies in the range (after
    /// the head of the file): the layout the following ranges would start with is stale.
    pub layout_changed: bool,
    /// pcapng: a simple packet block (which has no timestamp and takes the previous packet's)
    /// came before any timestamped packet of the range; its `ts_ns` is 0 here, where the
    /// sequential reader gives the timestamp of a packet before the range.
    pub untimed_start: bool,
    /// Why the walk stopped early: the sequential reader stops at the same record with the
    /// same error.
    pub error: Option<CaptureError>,
}

/// Read the records (pcap) or blocks (pcapng) that start in `[start, end)`, calling `visit`
/// for every packet, exactly as the sequential reader delivers them (same offset, ts_ns,
/// linktype, orig_len, data) except that frame numbers count from 1 within the range.
///
/// `start` must be a record boundary: range 0 starts at 0 (any offset before
/// `layout.data_start` reads from the head of the file), later ranges at [`resync`]'s proposal
/// (never before `data_start`), which only [`RangeReport::next`] of the range before confirms. Counters over consecutive ranges add
/// up to the sequential reader's.
pub fn read_range<B, F>(
    bytes: &B,
    layout: &Layout,
    start: u64,
    end: u64,
    mut visit: F,
) -> RangeReport
where
    B: RangeBytes + ?Sized,
    F: FnMut(&Packet<'_>),
{
    read_range_until(bytes, layout, start, end, |p| {
        visit(p);
        true
    })
}

/// [`read_range`], ending (as the file would) after the first packet for which `visit` returns
/// false; the report's `next` is then where it stopped.
pub fn read_range_until<B, F>(
    bytes: &B,
    layout: &Layout,
    start: u64,
    end: u64,
    mut visit: F,
) -> RangeReport
where
    B: RangeBytes + ?Sized,
    F: FnMut(&Packet<'_>) -> bool,
{
    let stop = std::cell::Cell::new(false);
    // A range starting before the first record reads the head of the file first, as the
    // sequential reader does; at `data_start` and after, the layout stands for the head.
    let from_head = start < layout.data_start;
    let pos = if from_head { 0 } else { to_usize(start) };
    let mut tally = Tally::default();
    let mut visit = |p: &Packet<'_>| {
        if !visit(p) {
            stop.set(true);
        }
    };
    let (result, next) = with_source!(bytes, pos, |src| {
        let mut src = crate::Until {
            inner: src,
            stop: &stop,
        };
        let r = walk(&mut src, layout, from_head, end, &mut tally, &mut visit);
        (r, src.position())
    });
    RangeReport {
        next,
        records: tally.records,
        frames: tally.frames,
        packets: tally.packets,
        skipped_blocks: tally.skipped_blocks,
        packets_without_interface: tally.packets_without_interface,
        layout_changed: tally.layout_changed,
        untimed_start: tally.untimed_start,
        error: result.err(),
    }
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn walk<S: ByteSource, F: FnMut(&Packet<'_>)>(
    src: &mut S,
    layout: &Layout,
    from_head: bool,
    end: u64,
    tally: &mut Tally,
    visit: &mut F,
) -> Result<(), CaptureError> {
    match layout.format {
        Format::Pcap => {
            let header = if from_head {
                pcap_header(src)?
            } else {
                layout.pcap.ok_or_else(no_header)?
            };
            pcap_records::<S, F, true>(src, &header, end, tally, visit)
        }
        Format::PcapNg => {
            let start = src.position();
            let mut state = if from_head {
                NgState {
                    head_end: layout.data_start,
                    ..NgState::file_start()
                }
            } else {
                NgState {
                    big_endian: layout.big_endian,
                    interfaces: layout.interfaces.clone(),
                    last_ts: 0,
                    // No packet comes before the first record after the head.
                    ts_known: start == layout.data_start,
                    first: false,
                    head_end: 0,
                }
            };
            pcapng_blocks::<S, F, true>(src, &mut state, end, tally, visit)
        }
    }
}

fn no_header() -> CaptureError {
    corrupt(
        Offset {
            offset: 0,
            decompressed: false,
        },
        "range layout",
        "a pcap layout without its file header".into(),
    )
}

/// Read the one record that starts at `offset` again (a packet a range delivered), borrowing
/// its bytes. Its `frame` is 1 and, for a pcapng simple packet block, `ts_ns` is 0 (such a
/// block takes the previous packet's timestamp, which is elsewhere). An offset where no packet
/// starts, or a record the reader rejects, is an error.
pub fn read_record_at<'a, B: RangeBytes + ?Sized>(
    bytes: &'a B,
    layout: &Layout,
    offset: u64,
) -> Result<Packet<'a>, CaptureError> {
    let all = bytes.all_bytes();
    let base = all.as_ptr() as usize;
    let mut got = None;
    let report = read_range(bytes, layout, offset, offset.saturating_add(1), |p| {
        if p.offset == offset {
            let at = p.data.as_ptr() as usize - base;
            got = Some((p.ts_ns, p.linktype, p.orig_len, at, p.data.len()));
        }
    });
    if let Some((ts_ns, linktype, orig_len, at, len)) = got {
        return Ok(Packet {
            frame: 1,
            offset,
            ts_ns,
            linktype,
            orig_len,
            data: &all[at..at + len],
        });
    }
    Err(report.error.unwrap_or_else(|| {
        corrupt(
            Offset {
                offset,
                decompressed: false,
            },
            "record",
            "no packet starts here".into(),
        )
    }))
}

/// Propose the first offset at or after `hint` where a record (pcap) or block (pcapng)
/// starts: the first candidate that starts a chain of [`PCAP_CHAIN`] plausible records /
/// [`PCAPNG_CHAIN`] plausible blocks, or a shorter one ending exactly at the end of the file.
/// A hint at or before the head gives `layout.data_start`; the end of the file is a boundary
/// too. `None` when no candidate survives within a few maximum record lengths (a corrupt or
/// truncated stretch, or a mapped file truncated meanwhile): read that stretch with the range
/// before.
///
/// pcap records are plausible when their captured length is at most what the reader accepts
/// and at most the length on the wire, which is not 0, the timestamp fraction is below 10^6 (µs) or 10^9
/// (ns), consecutive timestamps are at most [`PCAP_MAX_GAP_S`] apart and none is more than
/// [`PCAP_ANCHOR_S`] before the first record's; a chain cut short by the end of the file must
/// also not be more than that after it. pcapng blocks are
/// 4-aligned, have a valid length repeated in the trailer, a known type, and name an
/// interface of the head's table; a section header ends the chain as plausible (what follows
/// is read in its own byte order, and the range that holds it reports `layout_changed`).
pub fn resync<B: RangeBytes + ?Sized>(bytes: &B, layout: &Layout, hint: u64) -> Option<u64> {
    #[cfg(target_os = "linux")]
    let guard = bytes
        .as_map()
        .map(|m| crate::sigbus::Guard::register(m.as_ptr(), m.len()));
    let found = resync_in(bytes.all_bytes(), layout, hint);
    #[cfg(target_os = "linux")]
    if guard.as_ref().is_some_and(|g| g.fault().is_some()) {
        return None;
    }
    found
}

fn resync_in(b: &[u8], layout: &Layout, hint: u64) -> Option<u64> {
    let len = b.len() as u64;
    if hint <= layout.data_start {
        return Some(layout.data_start.min(len));
    }
    if hint >= len {
        return (hint == len).then_some(len);
    }
    let from = hint as usize;
    match layout.format {
        Format::Pcap => resync_pcap(b, &layout.pcap?, layout.first_ts_s, from),
        Format::PcapNg => resync_pcapng(b, layout, from),
    }
}

fn resync_pcap(b: &[u8], header: &PcapHeader, anchor: Option<i64>, from: usize) -> Option<u64> {
    let max_record = header.record_header_len() + header.max_caplen() as usize;
    // A true boundary lies within one record of any offset; its chain can fail the soft tests
    // (a long gap in time) for up to a chain's length of records.
    let limit = from
        .saturating_add(max_record.saturating_mul(PCAP_CHAIN + 1))
        .min(b.len());
    (from..=limit)
        .find(|&c| c == b.len() || pcap_chain(b, header, anchor, c))
        .map(|c| c as u64)
}

fn pcap_chain(b: &[u8], header: &PcapHeader, anchor: Option<i64>, mut p: usize) -> bool {
    let rec_hdr = header.record_header_len();
    let be = header.records_big_endian();
    let max_caplen = header.max_caplen();
    let frac_limit = if header.nanos {
        1_000_000_000
    } else {
        1_000_000
    };
    let mut prev_sec: Option<i64> = None;
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for _ in 0..PCAP_CHAIN {
        if b.len() - p < rec_hdr {
            return false;
        }
        let sec = u32_at(b, p, be) as i64;
        let frac = u32_at(b, p + 4, be);
        let caplen = u32_at(b, p + 8, be);
        let orig_len = u32_at(b, p + 12, be);
        // (A record of nothing on the wire is no packet: zero padding would otherwise read
        // as a chain of empty records.)
        if frac >= frac_limit || caplen > max_caplen || caplen > orig_len || orig_len == 0 {
            return false;
        }
        if prev_sec.is_some_and(|prev| (sec - prev).abs() > PCAP_MAX_GAP_S) {
            return false;
        }
        // Not long before the first record: a chain read 4 bytes into true records (whose
        // captured and wire lengths are equal) takes their fractions for seconds, 1970's.
        if anchor.is_some_and(|a| sec < a - PCAP_ANCHOR_S) {
            return false;
        }
        prev_sec = Some(sec);
        (lo, hi) = (lo.min(sec), hi.max(sec));
        let need = rec_hdr + caplen as usize;
        if b.len() - p < need {
            return false;
        }
        p += need;
        if p == b.len() {
            // A short chain, ended by the end of the file: its times must also lie near the
            // file's first record's (payload bytes rarely look like this year's dates).
            return anchor.is_some_and(|a| a - lo <= PCAP_ANCHOR_S && hi - a <= PCAP_ANCHOR_S);
        }
    }
    true
}

fn resync_pcapng(b: &[u8], layout: &Layout, from: usize) -> Option<u64> {
    let snap = layout
        .interfaces
        .iter()
        .map(|i| {
            if i.snaplen == 0 {
                DEFAULT_MAX_CAPLEN
            } else {
                i.snaplen
            }
        })
        .max()
        .unwrap_or(DEFAULT_MAX_CAPLEN)
        .min(HARD_MAX_RECORD) as usize;
    let max_block = snap + 4096;
    let limit = from
        .saturating_add(max_block.saturating_mul(PCAPNG_CHAIN + 1))
        .min(b.len());
    let mut c = from.next_multiple_of(4);
    while c <= limit {
        if c == b.len() || pcapng_chain(b, layout, c) {
            return Some(c as u64);
        }
        c += 4;
    }
    None
}

fn pcapng_chain(b: &[u8], layout: &Layout, mut p: usize) -> bool {
    let be = layout.big_endian;
    let mut interfaces = layout.interfaces.len() as u64;
    for _ in 0..PCAPNG_CHAIN {
        if b.len() - p < 12 {
            return false;
        }
        let block_type = u32_at(b, p, be);
        if block_type == SHB_TYPE {
            // A new section, in its own byte order.
            let order = match [b[p + 8], b[p + 9], b[p + 10], b[p + 11]] {
                [0x4d, 0x3c, 0x2b, 0x1a] => false,
                [0x1a, 0x2b, 0x3c, 0x4d] => true,
                _ => return false,
            };
            return block_fits(b, p, order).is_some();
        }
        let Some(len) = block_fits(b, p, be) else {
            return false;
        };
        let body = &b[p + 8..p + len - 4];
        let ok = match block_type {
            IDB_TYPE => {
                interfaces += 1;
                body.len() >= 8
            }
            EPB_TYPE => {
                body.len() >= 20
                    && (u32_at(body, 0, be) as u64) < interfaces
                    && u32_at(body, 12, be) as usize <= body.len() - 20
            }
            OPB_TYPE if body.len() >= 20 => {
                let if_id = if be {
                    u16::from_be_bytes([body[0], body[1]])
                } else {
                    u16::from_le_bytes([body[0], body[1]])
                };
                (if_id as u64) < interfaces && u32_at(body, 12, be) as usize <= body.len() - 20
            }
            SPB_TYPE => body.len() >= 4 && interfaces > 0,
            // Interface statistics: an interface id and a timestamp.
            0x0000_0005 => body.len() >= 12 && (u32_at(body, 0, be) as u64) < interfaces,
            // Name resolution, systemd journal, decryption secrets, custom (copiable or not),
            // process information.
            0x0000_0004 | 0x0000_0009 | 0x0000_000A | 0x0000_0BAD | 0x4000_0BAD | 0x8000_0001 => {
                true
            }
            _ => false,
        };
        if !ok {
            return false;
        }
        p += len;
        if p == b.len() {
            return true;
        }
    }
    true
}

/// The length of the block at `p` when it is valid, fits in `b` and is repeated in its trailer.
fn block_fits(b: &[u8], p: usize, be: bool) -> Option<usize> {
    let len = u32_at(b, p + 4, be);
    if len < 12 || !len.is_multiple_of(4) || len > HARD_MAX_RECORD {
        return None;
    }
    let len = len as usize;
    if b.len() - p < len || u32_at(b, p + len - 4, be) as usize != len {
        return None;
    }
    Some(len)
}

#[cfg(test)]
mod tests;
