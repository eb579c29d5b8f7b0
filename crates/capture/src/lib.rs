//! Capture readers: legacy pcap (µs/ns, either byte order, "modified") and pcapng (several
//! sections, interfaces with their own link type and timestamp resolution, EPB/SPB/OPB, unknown
//! blocks skipped), from plain files (memory-mapped, parsed zero-copy) or gzip/zstd streams
//! (decompressed on the fly, never to a temporary file).
//!
//! The reader hands every packet to a visitor as a [`Packet`] borrowing the capture bytes. It
//! never panics on bad input: a truncated tail, a corrupt length or a file that is not a capture
//! ends the read with a [`CaptureError`] naming the byte offset, and every packet before it has
//! already been delivered.
//!
//! pcap-parser's slice readers only parse little-endian pcap records and silently drop a
//! truncated tail, so this crate runs its own record loop over pcap-parser's per-record and
//! per-block parsers, checking lengths itself before asking for bytes.

mod peek;
mod range;
#[cfg(target_os = "linux")]
mod sigbus;
mod source;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pcap_parser::pcapng::{parse_block_be, parse_block_le, Block};

pub use peek::{first_packet_ts, stream_head};
pub use range::{
    layout, read_range, read_range_until, read_record_at, resync, Layout, RangeBytes, RangeReport,
};
pub use source::{ByteSource, MmapSource, SliceSource, StreamSource};

/// Largest record we accept when the file header does not announce a larger snap length:
/// libpcap's and Wireshark's maximum snap length.
pub const DEFAULT_MAX_CAPLEN: u32 = 262_144;
/// Hard ceiling for any record or block, whatever the header says: a length above this is
/// corruption, not a packet.
pub const HARD_MAX_RECORD: u32 = 64 * 1024 * 1024;

/// One packet as the capture stores it.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// 1-based packet number in the file (Wireshark's frame.number).
    pub frame: u64,
    /// Byte offset of the record in the (decompressed) capture stream.
    pub offset: u64,
    /// Timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// Link type, masked to its low 16 bits as libpcap does.
    pub linktype: u16,
    /// Length on the wire.
    pub orig_len: u32,
    /// The captured bytes (possibly fewer than `orig_len`).
    pub data: &'a [u8],
}

/// Container format of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
}

/// Compression wrapping a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "plain",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Capture(Format),
    Compressed(Compression),
}

/// Recognise a file by its magic bytes. Needs at least 4 bytes.
pub fn sniff(head: &[u8]) -> Option<Kind> {
    if head.len() < 4 {
        return None;
    }
    let m = [head[0], head[1], head[2], head[3]];
    match m {
        [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xc3, 0xd4]
        | [0x4d, 0x3c, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d]
        | [0x34, 0xcd, 0xb2, 0xa1] => Some(Kind::Capture(Format::Pcap)),
        [0x0a, 0x0d, 0x0d, 0x0a] => Some(Kind::Capture(Format::PcapNg)),
        [0x28, 0xb5, 0x2f, 0xfd] => Some(Kind::Compressed(Compression::Zstd)),
        // A zstd skippable frame first (pzstd writes one before its frames): zstd -d reads it.
        [0x50..=0x5f, 0x2a, 0x4d, 0x18] => Some(Kind::Compressed(Compression::Zstd)),
        [0x1f, 0x8b, _, _] => Some(Kind::Compressed(Compression::Gzip)),
        _ => None,
    }
}

/// Why reading a capture stopped early. Offsets are byte offsets in the capture stream
/// (after decompression for gzip/zstd files; `compressed` says which).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("empty file")]
    Empty,
    #[error("not a capture file (first bytes {0}); expected pcap, pcapng, or gzip/zstd of either")]
    NotCapture(String),
    #[error("{compression} data is not a capture (first bytes {head})")]
    CompressedNotCapture {
        compression: Compression,
        head: String,
    },
    #[error("truncated {what} at {where_}: {needed} bytes needed, {available} left")]
    Truncated {
        what: &'static str,
        where_: Offset,
        needed: u64,
        available: u64,
    },
    #[error("corrupt {what} at {where_}: {detail}")]
    Corrupt {
        what: &'static str,
        where_: Offset,
        detail: String,
    },
    #[error("{compression} decompression failed at {where_}: {source}")]
    Decompress {
        compression: Compression,
        where_: Offset,
        source: std::io::Error,
    },
    /// The decompressed data went past the [`InflateCap`]: `limit` bytes, the larger of
    /// `ratio` times `compressed` (the file's size, or for a stream the compressed bytes read
    /// so far) and the cap's floor. `where_` is the start of the first record not wholly
    /// within the limit: every record before it was delivered.
    #[error(
        "{compression} data decompresses to more than {limit} bytes, over {ratio} times its compressed size ({compressed} bytes): reading stopped at {where_}"
    )]
    Inflate {
        compression: Compression,
        ratio: u64,
        compressed: u64,
        limit: u64,
        where_: Offset,
    },
}

impl CaptureError {
    /// The byte offset the error refers to, when it has one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            CaptureError::Truncated { where_, .. }
            | CaptureError::Corrupt { where_, .. }
            | CaptureError::Decompress { where_, .. }
            | CaptureError::Inflate { where_, .. } => Some(where_.offset),
            CaptureError::Empty | CaptureError::NotCapture(_) => Some(0),
            _ => None,
        }
    }
}

/// A byte offset, printed with whether it counts decompressed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    pub offset: u64,
    pub decompressed: bool,
}

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.decompressed {
            write!(f, "decompressed byte offset {}", self.offset)
        } else {
            write!(f, "byte offset {}", self.offset)
        }
    }
}

/// What a read delivered, and why it stopped if it stopped early.
#[derive(Debug)]
pub struct ReadReport {
    pub format: Option<Format>,
    pub compression: Compression,
    /// Packets delivered to the visitor.
    pub packets: u64,
    /// Bytes of the file on disk (compressed size for compressed files).
    pub file_bytes: u64,
    /// Capture bytes consumed (decompressed size for compressed files).
    pub capture_bytes: u64,
    /// pcapng blocks skipped because their type is unknown or carries no packet.
    pub skipped_blocks: u64,
    /// Packets naming an interface that no IDB described (pcapng), skipped.
    pub packets_without_interface: u64,
    pub error: Option<CaptureError>,
}

impl ReadReport {
    fn new(compression: Compression, file_bytes: u64) -> Self {
        ReadReport {
            format: None,
            compression,
            packets: 0,
            file_bytes,
            capture_bytes: 0,
            skipped_blocks: 0,
            packets_without_interface: 0,
            error: None,
        }
    }
}

/// How far a gzip or zstd capture may inflate: at most `ratio` times its compressed size, and
/// never less than `floor` bytes (so a small file is not cut short for compressing well).
/// Past it the file ends with [`CaptureError::Inflate`], as a truncated file does. A `ratio`
/// of 0 is no cap. Captures compress 3 to 20 times as a rule; a file of the same packet
/// repeated compresses thousands of times (17.7 KB of zstd, 3 M identical RSTs: 1.87 GB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InflateCap {
    pub ratio: u64,
    /// Bytes.
    pub floor: u64,
}

impl InflateCap {
    /// No cap.
    pub const NONE: InflateCap = InflateCap { ratio: 0, floor: 0 };
    /// The floor of [`InflateCap::ratio`]: 64 MiB.
    pub const DEFAULT_FLOOR: u64 = 64 << 20;
    /// rstscope's default: 1000 times, at least 64 MiB.
    pub const DEFAULT: InflateCap = InflateCap::ratio(1000);

    /// A cap of `ratio` (0: none) with the default floor.
    pub const fn ratio(ratio: u64) -> InflateCap {
        InflateCap {
            ratio,
            floor: InflateCap::DEFAULT_FLOOR,
        }
    }

    /// The most decompressed bytes allowed for `compressed` bytes; None when there is no cap.
    pub fn limit(&self, compressed: u64) -> Option<u64> {
        (self.ratio != 0).then(|| self.ratio.saturating_mul(compressed).max(self.floor))
    }
}

impl Default for InflateCap {
    fn default() -> Self {
        InflateCap::NONE
    }
}

/// How to read a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOptions {
    pub access: PlainAccess,
    /// The cap on gzip and zstd captures' decompressed size (default: none).
    pub inflate: InflateCap,
}

/// How to open plain files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlainAccess {
    /// Memory-map and parse in place (the default).
    #[default]
    Mmap,
    /// Read through a buffer (for files that may change while being read).
    Read,
}

/// Read the capture at `path`, calling `visit` for every packet in file order.
pub fn read_path<F>(path: &Path, access: PlainAccess, visit: F) -> ReadReport
where
    F: FnMut(&Packet<'_>),
{
    read_path_with(
        path,
        ReadOptions {
            access,
            inflate: InflateCap::NONE,
        },
        visit,
    )
}

/// [`read_path`] with all the settings.
pub fn read_path_with<F>(path: &Path, opts: ReadOptions, mut visit: F) -> ReadReport
where
    F: FnMut(&Packet<'_>),
{
    read_path_until(path, opts, |p| {
        visit(p);
        true
    })
}

/// [`read_path_with`], stopping (as at the end of the file, without an error) after the first
/// packet for which `visit` returns false.
pub fn read_path_until<F>(path: &Path, opts: ReadOptions, mut visit: F) -> ReadReport
where
    F: FnMut(&Packet<'_>) -> bool,
{
    let stop = std::cell::Cell::new(false);
    let mut visit = |p: &Packet<'_>| {
        if !visit(p) {
            stop.set(true);
        }
    };
    let stop = &stop;
    let access = opts.access;
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let mut r = ReadReport::new(Compression::None, 0);
            r.error = Some(CaptureError::Io(e));
            return r;
        }
    };
    let meta = file.metadata();
    if meta.as_ref().is_ok_and(|m| !m.is_file()) {
        // A FIFO or a device: one pass over a stream, which cannot be mapped, measured or
        // read again.
        return read_unseekable(file, opts.inflate, stop, &mut visit);
    }
    let len = meta.map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        let mut r = ReadReport::new(Compression::None, 0);
        r.error = Some(CaptureError::Empty);
        return r;
    }
    let mut head = [0u8; 4];
    let head_len = match read_head(&file, &mut head) {
        Ok(n) => n,
        Err(e) => {
            let mut r = ReadReport::new(Compression::None, len);
            r.error = Some(CaptureError::Io(e));
            return r;
        }
    };
    // The readers below start from the first byte again.
    let mut file = file;
    if let Err(e) = file.seek(SeekFrom::Start(0)) {
        let mut r = ReadReport::new(Compression::None, len);
        r.error = Some(CaptureError::Io(e));
        return r;
    }
    match sniff(&head[..head_len]) {
        Some(Kind::Compressed(c)) => read_compressed(file, len, c, opts.inflate, stop, &mut visit),
        Some(Kind::Capture(_)) if access == PlainAccess::Mmap => {
            // SAFETY: the map is read-only and private to this function. Another process may
            // still truncate the file while we read it: on Linux the access past the new end
            // is caught (`sigbus`) and ends this file with an error; callers that must survive
            // files still being written elsewhere use `PlainAccess::Read` or `--min-age`.
            match unsafe { memmap2::Mmap::map(&file) } {
                Ok(map) => {
                    #[cfg(unix)]
                    let _ = map.advise(memmap2::Advice::Sequential);
                    let mut report = ReadReport::new(Compression::None, len);
                    let mut src = Until {
                        inner: MmapSource::new(&map),
                        stop,
                    };
                    read_source(&mut src, &mut report, &mut visit);
                    report
                }
                Err(_) => read_stream(file, len, Compression::None, None, stop, &mut visit),
            }
        }
        Some(Kind::Capture(_)) => read_stream(file, len, Compression::None, None, stop, &mut visit),
        None => {
            let mut r = ReadReport::new(Compression::None, len);
            r.error = Some(CaptureError::NotCapture(hex_head(&head[..head_len])));
            r
        }
    }
}

/// Read a capture from a FIFO or a device, once: its first bytes decide the format and are
/// then read again from memory, followed by the rest of the stream.
fn read_unseekable<F: FnMut(&Packet<'_>)>(
    file: File,
    inflate: InflateCap,
    stop: &std::cell::Cell<bool>,
    visit: &mut F,
) -> ReadReport {
    let mut head = [0u8; 4];
    let n = match read_head(&file, &mut head) {
        Ok(n) => n,
        Err(e) => {
            let mut r = ReadReport::new(Compression::None, 0);
            r.error = Some(CaptureError::Io(e));
            return r;
        }
    };
    let stream = (&head[..n]).chain(file);
    match sniff(&head[..n]) {
        Some(Kind::Compressed(c)) => read_compressed(stream, 0, c, inflate, stop, visit),
        Some(Kind::Capture(_)) => read_stream(stream, 0, Compression::None, None, stop, visit),
        None if n == 0 => {
            let mut r = ReadReport::new(Compression::None, 0);
            r.error = Some(CaptureError::Empty);
            r
        }
        None => {
            let mut r = ReadReport::new(Compression::None, 0);
            r.error = Some(CaptureError::NotCapture(hex_head(&head[..n])));
            r
        }
    }
}

/// Read a capture held in memory (plain, gzip or zstd).
pub fn read_bytes<F>(bytes: &[u8], mut visit: F) -> ReadReport
where
    F: FnMut(&Packet<'_>),
{
    let len = bytes.len() as u64;
    if bytes.is_empty() {
        let mut r = ReadReport::new(Compression::None, 0);
        r.error = Some(CaptureError::Empty);
        return r;
    }
    match sniff(bytes) {
        Some(Kind::Compressed(c)) => {
            let go = std::cell::Cell::new(false);
            read_compressed(bytes, len, c, InflateCap::NONE, &go, &mut visit)
        }
        Some(Kind::Capture(_)) => {
            let mut report = ReadReport::new(Compression::None, len);
            let mut src = SliceSource::new(bytes);
            read_source(&mut src, &mut report, &mut visit);
            report
        }
        None => {
            let mut r = ReadReport::new(Compression::None, len);
            r.error = Some(CaptureError::NotCapture(hex_head(
                &bytes[..bytes.len().min(4)],
            )));
            r
        }
    }
}

fn read_head(mut file: &File, head: &mut [u8; 4]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn hex_head(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A reader that counts the bytes read through it (a decompressor's input), for
/// [`InflateCap`] on streams whose size is not known ahead.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Read a gzip or zstd capture: `file_bytes` is the compressed size (0 when unknown: a
/// stream), `inflate` the cap on what it may decompress to.
fn read_compressed<R: Read, F: FnMut(&Packet<'_>)>(
    input: R,
    file_bytes: u64,
    compression: Compression,
    inflate: InflateCap,
    stop: &std::cell::Cell<bool>,
    visit: &mut F,
) -> ReadReport {
    let count = Arc::new(AtomicU64::new(0));
    let limit = (inflate.ratio != 0).then(|| source::InflateLimit {
        cap: inflate,
        file_bytes,
        compressed_read: Arc::clone(&count),
    });
    let input = Counted {
        inner: input,
        count,
    };
    match compression {
        // MultiGzDecoder: pigz output and `cat a.gz b.gz` are several members.
        Compression::Gzip => read_stream(
            flate2::read::MultiGzDecoder::new(input),
            file_bytes,
            compression,
            limit,
            stop,
            visit,
        ),
        Compression::Zstd => match zstd::stream::read::Decoder::new(input) {
            Ok(dec) => read_stream(dec, file_bytes, compression, limit, stop, visit),
            Err(e) => {
                let mut r = ReadReport::new(compression, file_bytes);
                r.error = Some(CaptureError::Io(e));
                r
            }
        },
        Compression::None => read_stream(input, file_bytes, compression, None, stop, visit),
    }
}

fn read_stream<R: Read, F: FnMut(&Packet<'_>)>(
    input: R,
    file_bytes: u64,
    compression: Compression,
    limit: Option<source::InflateLimit>,
    stop: &std::cell::Cell<bool>,
    visit: &mut F,
) -> ReadReport {
    let mut report = ReadReport::new(compression, file_bytes);
    let mut src = StreamSource::new(input, compression);
    if let Some(limit) = limit {
        src = src.with_limit(limit);
    }
    let mut src = Until { inner: src, stop };
    read_source(&mut src, &mut report, visit);
    report
}

/// A source that ends, as the input would, once `stop` is set (by the visitor, between
/// records).
pub(crate) struct Until<'a, S> {
    pub(crate) inner: S,
    pub(crate) stop: &'a std::cell::Cell<bool>,
}

impl<S: ByteSource> ByteSource for Until<'_, S> {
    #[inline]
    fn window(&mut self, want: usize) -> Result<&[u8], CaptureError> {
        if self.stop.get() {
            return Ok(&[]);
        }
        self.inner.window(want)
    }
    #[inline]
    fn advance(&mut self, n: usize) {
        self.inner.advance(n)
    }
    fn position(&self) -> u64 {
        self.inner.position()
    }
    fn decompressed(&self) -> bool {
        self.inner.decompressed()
    }
}

/// Parse the capture behind `src`, whatever its format.
pub fn read_source<S: ByteSource, F: FnMut(&Packet<'_>)>(
    src: &mut S,
    report: &mut ReadReport,
    visit: &mut F,
) {
    let result = (|| -> Result<(), CaptureError> {
        let head = src.window(4)?;
        if head.is_empty() {
            return Err(if src.decompressed() {
                CaptureError::CompressedNotCapture {
                    compression: report.compression,
                    head: "(no data)".into(),
                }
            } else {
                CaptureError::Empty
            });
        }
        match sniff(head) {
            Some(Kind::Capture(Format::Pcap)) => {
                report.format = Some(Format::Pcap);
                read_pcap(src, report, visit)
            }
            Some(Kind::Capture(Format::PcapNg)) => {
                report.format = Some(Format::PcapNg);
                read_pcapng(src, report, visit)
            }
            _ => {
                let h = hex_head(&head[..head.len().min(4)]);
                Err(if src.decompressed() {
                    CaptureError::CompressedNotCapture {
                        compression: report.compression,
                        head: h,
                    }
                } else {
                    CaptureError::NotCapture(h)
                })
            }
        }
    })();
    report.capture_bytes = src.position();
    if let Err(e) = result {
        report.error = Some(e);
    }
}

fn u32_at(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn truncated(here: Offset, what: &'static str, needed: usize, available: usize) -> CaptureError {
    CaptureError::Truncated {
        what,
        where_: here,
        needed: needed as u64,
        available: available as u64,
    }
}

fn corrupt(here: Offset, what: &'static str, detail: String) -> CaptureError {
    CaptureError::Corrupt {
        what,
        where_: here,
        detail,
    }
}

/// What a pcap file header says, which every record of the file is read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcapHeader {
    /// Record header fields are big-endian (except in the "modified" format, see `rec_be`).
    pub big_endian: bool,
    /// Alexey Kuznetzov's "modified" format: 24-byte record headers.
    pub modified: bool,
    /// Nanosecond timestamps (else microseconds).
    pub nanos: bool,
    /// Link type, masked to its low 16 bits.
    pub linktype: u16,
    /// The snap length the header announces.
    pub snaplen: u32,
}

impl PcapHeader {
    /// Length of the file header.
    pub const LEN: usize = 24;

    /// The largest captured length the reader accepts in a record.
    pub fn max_caplen(&self) -> u32 {
        DEFAULT_MAX_CAPLEN.max(self.snaplen.min(HARD_MAX_RECORD))
    }
    /// Bytes of a record header.
    pub fn record_header_len(&self) -> usize {
        if self.modified {
            24
        } else {
            16
        }
    }
    /// Record header fields are in the file's byte order, except in the "modified" format,
    /// which pcap-parser (and so this reader) always reads little-endian.
    pub fn records_big_endian(&self) -> bool {
        self.big_endian && !self.modified
    }
}

/// Counters of one walk over records (a whole file or a byte range of one).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub packets: u64,
    /// Records (pcap) or blocks (pcapng) walked, of any kind.
    pub records: u64,
    /// Frame numbers used (packets, packets without an interface, custom blocks).
    pub frames: u64,
    pub skipped_blocks: u64,
    pub packets_without_interface: u64,
    /// A section header or an interface description at or after `NgState::head_end`.
    pub layout_changed: bool,
    /// A simple packet block delivered before any timestamped packet of the walk.
    pub untimed_start: bool,
}

impl Tally {
    fn add_to(&self, report: &mut ReadReport) {
        report.packets += self.packets;
        report.skipped_blocks += self.skipped_blocks;
        report.packets_without_interface += self.packets_without_interface;
    }
}

/// Parse the pcap file header at the current position and step over it.
pub(crate) fn pcap_header<S: ByteSource>(src: &mut S) -> Result<PcapHeader, CaptureError> {
    let here = src.offset();
    let w = src.window(24)?;
    if w.len() < 24 {
        return Err(truncated(here, "pcap file header", 24, w.len()));
    }
    let header = match pcap_parser::parse_pcap_header(w) {
        Ok((_, h)) => h,
        Err(_) => {
            return Err(corrupt(
                here,
                "pcap file header",
                "unrecognised magic or layout".into(),
            ))
        }
    };
    src.advance(24);
    Ok(PcapHeader {
        big_endian: header.is_bigendian(),
        modified: header.is_modified_format(),
        nanos: header.is_nanosecond_precision(),
        // The 32-bit link-type field carries FCS information in its upper bits
        // (LT_FCS_LENGTH); only the low 16 bits name the link type.
        linktype: (header.network.0 as u32 & 0xffff) as u16,
        snaplen: header.snaplen,
    })
}

fn read_pcap<S: ByteSource, F: FnMut(&Packet<'_>)>(
    src: &mut S,
    report: &mut ReadReport,
    visit: &mut F,
) -> Result<(), CaptureError> {
    let header = pcap_header(src)?;
    let mut tally = Tally::default();
    let r = pcap_records::<S, F, false>(src, &header, u64::MAX, &mut tally, visit);
    tally.add_to(report);
    r
}

/// The pcap record loop, from the current position (a record boundary) to the end of the input
/// or, when `RANGED`, to the first record starting at or after `end`. Frame numbers continue
/// from `tally.frames`.
#[inline(always)]
pub(crate) fn pcap_records<S: ByteSource, F: FnMut(&Packet<'_>), const RANGED: bool>(
    src: &mut S,
    header: &PcapHeader,
    end: u64,
    tally: &mut Tally,
    visit: &mut F,
) -> Result<(), CaptureError> {
    let nanos = header.nanos;
    let linktype = header.linktype;
    let max_caplen = header.max_caplen();
    let rec_hdr = header.record_header_len();
    let rec_be = header.records_big_endian();
    loop {
        let here = src.offset();
        if RANGED && here.offset >= end {
            return Ok(());
        }
        let w = src.window(rec_hdr)?;
        if w.is_empty() {
            return Ok(());
        }
        if w.len() < rec_hdr {
            return Err(truncated(here, "pcap record header", rec_hdr, w.len()));
        }
        let caplen = u32_at(w, 8, rec_be);
        if caplen > max_caplen {
            return Err(corrupt(
                here,
                "pcap record",
                format!("captured length {caplen} exceeds the maximum {max_caplen}"),
            ));
        }
        let need = rec_hdr + caplen as usize;
        let here = src.offset();
        let w = src.window(need)?;
        if w.len() < need {
            return Err(truncated(here, "pcap record", need, w.len()));
        }
        let offset = here.offset;
        // The whole record is in the window: read its header fields in place (what
        // pcap-parser's parse_pcap_frame* do, without a per-record call).
        let (ts_sec, ts_frac, orig_len) = (
            u32_at(w, 0, rec_be),
            u32_at(w, 4, rec_be),
            u32_at(w, 12, rec_be),
        );
        tally.frames += 1;
        tally.records += 1;
        let frac = if nanos {
            ts_frac as i64
        } else {
            ts_frac as i64 * 1000
        };
        let pkt = Packet {
            frame: tally.frames,
            offset,
            ts_ns: ts_sec as i64 * 1_000_000_000 + frac,
            linktype,
            orig_len,
            data: &w[rec_hdr..need],
        };
        source::prefetch_record(w, need);
        visit(&pkt);
        tally.packets += 1;
        src.advance(need);
    }
}

/// One interface of a pcapng section, as its interface description block says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    /// Link type, masked to its low 16 bits.
    pub linktype: u16,
    pub snaplen: u32,
    /// Timestamp units per second (from `if_tsresol`).
    pub units: u64,
    /// `if_tsoffset`, seconds.
    pub offset_s: i64,
}

/// Units per second of an `if_tsresol` value: 10^n, or 2^n when the top bit is set.
/// (pcap-parser's own helper rejects every power-of-two resolution.)
fn ts_units_per_second(tsresol: u8) -> Option<u64> {
    let n = (tsresol & 0x7f) as u32;
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(n)
    } else {
        1u64.checked_shl(n).filter(|_| n < 64)
    }
}

/// `if_tsoffset` in the section's byte order (pcap-parser always reads it little-endian).
fn tsoffset(idb: &pcap_parser::InterfaceDescriptionBlock<'_>, big_endian: bool) -> i64 {
    idb.options
        .iter()
        .find(|o| o.code == pcap_parser::pcapng::OptionCode::IfTsoffset)
        .and_then(|o| o.value().get(..8))
        .map(|v| {
            let a = [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]];
            if big_endian {
                i64::from_be_bytes(a)
            } else {
                i64::from_le_bytes(a)
            }
        })
        .unwrap_or(0)
}

/// The interface an interface description block describes.
fn idb_interface(
    idb: &pcap_parser::InterfaceDescriptionBlock<'_>,
    big_endian: bool,
    here: Offset,
) -> Result<Interface, CaptureError> {
    let units = ts_units_per_second(idb.if_tsresol).ok_or_else(|| {
        corrupt(
            here,
            "pcapng interface description",
            format!("unsupported if_tsresol 0x{:02x}", idb.if_tsresol),
        )
    })?;
    Ok(Interface {
        linktype: (idb.linktype.0 as u32 & 0xffff) as u16,
        snaplen: idb.snaplen,
        units,
        offset_s: tsoffset(idb, big_endian),
    })
}

pub(crate) const SHB_TYPE: u32 = 0x0A0D_0D0A;
pub(crate) const IDB_TYPE: u32 = 0x0000_0001;
pub(crate) const OPB_TYPE: u32 = 0x0000_0002;
pub(crate) const SPB_TYPE: u32 = 0x0000_0003;
pub(crate) const EPB_TYPE: u32 = 0x0000_0006;

fn pcapng_ts(raw: u64, iface: &Interface) -> i64 {
    let units = iface.units.max(1) as i128;
    let raw = raw as i128;
    let ns = (raw / units) * 1_000_000_000
        + (raw % units) * 1_000_000_000 / units
        + iface.offset_s as i128 * 1_000_000_000;
    ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// What the pcapng block loop carries from block to block.
pub(crate) struct NgState {
    /// Byte order of the current section.
    pub big_endian: bool,
    pub interfaces: Vec<Interface>,
    /// Timestamp of the last packet delivered (a simple packet block takes it).
    pub last_ts: i64,
    /// `last_ts` is known (false at the start of a range: the packet before is elsewhere).
    pub ts_known: bool,
    /// The next block is the first of the file (it must be a section header).
    pub first: bool,
    /// Section headers and interface descriptions from this offset on change the layout.
    pub head_end: u64,
}

impl NgState {
    /// The state at the first byte of a file.
    pub fn file_start() -> NgState {
        NgState {
            big_endian: false,
            interfaces: Vec::new(),
            last_ts: 0,
            ts_known: true,
            first: true,
            head_end: u64::MAX,
        }
    }
}

/// A pcapng block: its type in the section's byte order, its offset, its bytes.
pub(crate) type NgBlock<'a> = (u32, Offset, &'a [u8]);

/// The next pcapng block at the current position, whole and with its lengths checked, without
/// moving past it: (its type in the section's byte order, its offset, its bytes); `None` at the
/// end of the input. A section header block sets `big_endian` from its byte-order magic.
#[inline(always)]
pub(crate) fn ng_next_block<'s, S: ByteSource>(
    src: &'s mut S,
    big_endian: &mut bool,
    first: bool,
) -> Result<Option<NgBlock<'s>>, CaptureError> {
    let here = src.offset();
    let w = src.window(12)?;
    if w.is_empty() {
        return Ok(None);
    }
    if w.len() < 12 {
        return Err(truncated(here, "pcapng block header", 12, w.len()));
    }
    let raw_type = u32_at(w, 0, false);
    if raw_type == SHB_TYPE {
        // The byte-order magic decides how this section (its SHB included) is read.
        *big_endian = match [w[8], w[9], w[10], w[11]] {
            [0x4d, 0x3c, 0x2b, 0x1a] => false,
            [0x1a, 0x2b, 0x3c, 0x4d] => true,
            other => {
                return Err(corrupt(
                    here,
                    "pcapng section header",
                    format!("bad byte-order magic {}", hex_head(&other)),
                ))
            }
        };
    } else if first {
        return Err(corrupt(
            here,
            "pcapng file",
            "does not start with a section header block".into(),
        ));
    }
    let big_endian = *big_endian;
    let block_type = u32_at(w, 0, big_endian);
    let len = u32_at(w, 4, big_endian);
    if len < 12 || !len.is_multiple_of(4) || len > HARD_MAX_RECORD {
        return Err(corrupt(
            here,
            "pcapng block",
            format!("block type 0x{block_type:08x} has invalid total length {len}"),
        ));
    }
    let len = len as usize;
    let here = src.offset();
    let w = src.window(len)?;
    if w.len() < len {
        return Err(truncated(here, "pcapng block", len, w.len()));
    }
    let block_bytes = &w[..len];
    source::prefetch_record(w, len);
    if u32_at(block_bytes, len - 4, big_endian) as usize != len {
        return Err(corrupt(
            here,
            "pcapng block",
            format!("block type 0x{block_type:08x}: trailing length does not match {len}"),
        ));
    }
    Ok(Some((block_type, here, block_bytes)))
}

/// Parse a whole block (lengths already checked) with pcap-parser.
#[inline(always)]
fn ng_parse(
    block_bytes: &[u8],
    block_type: u32,
    big_endian: bool,
    here: Offset,
) -> Result<Block<'_>, CaptureError> {
    let parsed = if big_endian {
        parse_block_be(block_bytes)
    } else {
        parse_block_le(block_bytes)
    };
    match parsed {
        Ok((_, b)) => Ok(b),
        Err(_) => Err(corrupt(
            here,
            "pcapng block",
            format!("malformed block of type 0x{block_type:08x}"),
        )),
    }
}

fn read_pcapng<S: ByteSource, F: FnMut(&Packet<'_>)>(
    src: &mut S,
    report: &mut ReadReport,
    visit: &mut F,
) -> Result<(), CaptureError> {
    let mut state = NgState::file_start();
    let mut tally = Tally::default();
    let r = pcapng_blocks::<S, F, false>(src, &mut state, u64::MAX, &mut tally, visit);
    tally.add_to(report);
    r
}

/// The pcapng block loop, from the current position (a block boundary, with `state` as it is
/// there) to the end of the input or, when `RANGED`, to the first block starting at or after
/// `end`. Frame numbers continue from `tally.frames`.
#[inline(always)]
pub(crate) fn pcapng_blocks<S: ByteSource, F: FnMut(&Packet<'_>), const RANGED: bool>(
    src: &mut S,
    state: &mut NgState,
    end: u64,
    tally: &mut Tally,
    visit: &mut F,
) -> Result<(), CaptureError> {
    loop {
        if RANGED && src.position() >= end {
            return Ok(());
        }
        let first = state.first;
        let Some((block_type, here, block_bytes)) =
            ng_next_block(src, &mut state.big_endian, first)?
        else {
            return Ok(());
        };
        state.first = false;
        let big_endian = state.big_endian;
        let len = block_bytes.len();
        let offset = here.offset;
        let block = ng_parse(block_bytes, block_type, big_endian, here)?;
        tally.records += 1;
        // (interface, ts, orig_len, data) of a packet block
        let mut packet: Option<(usize, Option<u64>, u32, &[u8])> = None;
        match &block {
            Block::SectionHeader(_) => {
                state.interfaces.clear();
                tally.layout_changed |= offset >= state.head_end;
            }
            Block::InterfaceDescription(idb) => {
                state.interfaces.push(idb_interface(idb, big_endian, here)?);
                tally.layout_changed |= offset >= state.head_end;
            }
            Block::EnhancedPacket(epb) => {
                let caplen = (epb.caplen as usize).min(epb.data.len());
                let ts = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                packet = Some((
                    epb.if_id as usize,
                    Some(ts),
                    epb.origlen,
                    &epb.data[..caplen],
                ));
            }
            Block::SimplePacket(spb) => {
                let snap = state
                    .interfaces
                    .first()
                    .map(|i| i.snaplen as usize)
                    .filter(|&s| s > 0)
                    .unwrap_or(usize::MAX);
                let caplen = (spb.origlen as usize).min(spb.data.len()).min(snap);
                packet = Some((0, None, spb.origlen, &spb.data[..caplen]));
            }
            // (The type as the block's own byte order says: pcap-parser reads an unknown
            // block's type little-endian, so a big-endian section's would never match.)
            Block::Unknown(ub) if block_type == OPB_TYPE => {
                // Obsolete Packet Block: if_id(2) drops(2) ts_high ts_low caplen origlen data
                let d = ub.data;
                if d.len() < 20 {
                    return Err(corrupt(here, "pcapng packet block", "too short".into()));
                }
                let if_id = if big_endian {
                    u16::from_be_bytes([d[0], d[1]])
                } else {
                    u16::from_le_bytes([d[0], d[1]])
                } as usize;
                let ts =
                    ((u32_at(d, 4, big_endian) as u64) << 32) | u32_at(d, 8, big_endian) as u64;
                let caplen = (u32_at(d, 12, big_endian) as usize).min(d.len() - 20);
                let origlen = u32_at(d, 16, big_endian);
                packet = Some((if_id, Some(ts), origlen, &d[20..20 + caplen]));
            }
            // Wireshark shows custom and systemd-journal blocks as frames of their own, so they
            // take a frame number even though they carry no packet.
            Block::Custom(_) | Block::SystemdJournalExport(_) => {
                tally.frames += 1;
                tally.skipped_blocks += 1;
            }
            _ => tally.skipped_blocks += 1,
        }
        if let Some((if_id, ts, orig_len, data)) = packet {
            tally.frames += 1;
            match state.interfaces.get(if_id) {
                Some(iface) => {
                    // A simple packet block has no timestamp: keep the previous packet's, so
                    // the packet stays in place in time order.
                    let ts_ns = match ts {
                        Some(t) => {
                            state.ts_known = true;
                            pcapng_ts(t, iface)
                        }
                        None => {
                            tally.untimed_start |= !state.ts_known;
                            state.last_ts
                        }
                    };
                    state.last_ts = ts_ns;
                    let pkt = Packet {
                        frame: tally.frames,
                        offset,
                        ts_ns,
                        linktype: iface.linktype,
                        orig_len,
                        data,
                    };
                    visit(&pkt);
                    tally.packets += 1;
                }
                None => tally.packets_without_interface += 1,
            }
        }
        src.advance(len);
    }
}

#[cfg(test)]
mod tests;
