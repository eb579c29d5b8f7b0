//! Byte sources the record loops parse from: a borrowed slice (a memory map, parsed in place)
//! or a decompressing stream read through a growable buffer.

use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{CaptureError, Compression, InflateCap, Offset, HARD_MAX_RECORD};

/// A window onto the capture bytes from the current position.
pub trait ByteSource {
    /// The bytes from the current position: at least `want` of them unless the input ends
    /// sooner (then all that is left; empty at the end).
    fn window(&mut self, want: usize) -> Result<&[u8], CaptureError>;
    /// Move the current position forward by `n` bytes (at most the last window's length).
    fn advance(&mut self, n: usize);
    /// Current position in the capture stream.
    fn position(&self) -> u64;
    /// True when positions count decompressed bytes.
    fn decompressed(&self) -> bool;
    fn offset(&self) -> Offset {
        Offset {
            offset: self.position(),
            decompressed: self.decompressed(),
        }
    }
}

impl<S: ByteSource + ?Sized> ByteSource for &mut S {
    #[inline]
    fn window(&mut self, want: usize) -> Result<&[u8], CaptureError> {
        (**self).window(want)
    }
    #[inline]
    fn advance(&mut self, n: usize) {
        (**self).advance(n)
    }
    fn position(&self) -> u64 {
        (**self).position()
    }
    fn decompressed(&self) -> bool {
        (**self).decompressed()
    }
}

/// How far ahead of the current position the CPU caches are asked for the capture bytes.
///
/// The record loop touches only a few cache lines of each record (its header and the packet
/// headers), at varying strides, so the hardware prefetchers do not keep up and every record
/// would otherwise start with a cache miss. A couple of KiB (a handful of records) hides that
/// latency; much further ahead the lines are evicted before they are used.
const PREFETCH_AHEAD: usize = 2048;
const CACHE_LINE: usize = 64;

/// Load the byte at `at` (when it is there) for its cache line's sake: the value is dropped, so
/// the load only starts the line on its way and the out-of-order core goes on meanwhile. In a
/// memory map it maps the page a little early, which the reader would do anyway.
#[inline(always)]
fn touch(bytes: &[u8], at: usize) {
    if let Some(b) = bytes.get(at) {
        std::hint::black_box(*b);
    }
}

/// The size of the pages [`prefetch_ahead`] touches one line of (x86_64's base page).
const PAGE: usize = 4096;

/// Ask for the cache line of `bytes[at]` (when it is there) without waiting for it.
///
/// On x86_64 a prefetch instruction: unlike [`touch`], it retires at once, so a line coming
/// from DRAM does not hold up the instructions after it (measured: 5–10 % of a run on a 1 GiB
/// capture, paired rounds against [`touch`]). A prefetch into a page not mapped yet is dropped,
/// though, so [`prefetch_ahead`] still touches the first line of every page. Elsewhere, a
/// touch.
#[inline(always)]
fn prefetch_line(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = bytes.get(at) {
        // SAFETY: a prefetch reads no value, writes nothing and never faults, whatever the
        // address (this one is inside `bytes` anyway); SSE, which it needs, is part of every
        // x86_64 target.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (b as *const u8).cast::<i8>(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    touch(bytes, at);
}

/// Ask for the cache lines of `bytes` up to `pos + PREFETCH_AHEAD`; `done` is how far earlier
/// calls got (whole cache lines from the start of `bytes`).
#[inline(always)]
fn prefetch_ahead(bytes: &[u8], pos: usize, done: &mut usize) {
    let target = (pos + PREFETCH_AHEAD).min(bytes.len());
    while *done < target {
        if done.is_multiple_of(PAGE) {
            touch(bytes, *done);
        } else {
            prefetch_line(bytes, *done);
        }
        *done += CACHE_LINE;
    }
}

/// Touch the start of the next record, `at` bytes into `window` (when it is there): its header
/// and the packet headers after it, two cache lines. Done before the current record is handed
/// to the visitor, so the lines arrive while the visitor works; on top of the stream of
/// [`prefetch_ahead`], this measured a few percent faster.
#[inline(always)]
pub(crate) fn prefetch_record(window: &[u8], at: usize) {
    touch(window, at);
    touch(window, at + CACHE_LINE);
}

/// Bytes already in memory: every window is a sub-slice, no copies.
pub struct SliceSource<'a> {
    bytes: &'a [u8],
    pos: usize,
    prefetched: usize,
}

impl<'a> SliceSource<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        SliceSource {
            bytes,
            pos: 0,
            prefetched: 0,
        }
    }

    /// Bytes in memory read from `pos` on (a record boundary found by [`crate::resync`]).
    pub fn at(bytes: &'a [u8], pos: usize) -> Self {
        let pos = pos.min(bytes.len());
        SliceSource {
            bytes,
            pos,
            prefetched: pos & !(CACHE_LINE - 1),
        }
    }
}

impl ByteSource for SliceSource<'_> {
    #[inline]
    fn window(&mut self, _want: usize) -> Result<&[u8], CaptureError> {
        Ok(&self.bytes[self.pos..])
    }
    #[inline]
    fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.bytes.len());
        prefetch_ahead(self.bytes, self.pos, &mut self.prefetched);
    }
    fn position(&self) -> u64 {
        self.pos as u64
    }
    fn decompressed(&self) -> bool {
        false
    }
}

/// Pages of a memory map that were read are released in steps of this many bytes.
#[cfg(unix)]
const RELEASE_STEP: usize = 4 << 20;

/// A memory-mapped capture file, parsed in place like [`SliceSource`] (with the same software
/// prefetch ahead), that also releases the pages already read: the resident set stays a few
/// MiB whatever the size of the file, instead of growing to the whole file.
///
/// Pages are not populated ahead (`MADV_POPULATE_READ`): the kernel maps a file page-cache
/// window per fault (fault-around) more cheaply than it populates page by page.
pub struct MmapSource<'a> {
    map: &'a memmap2::Mmap,
    pos: usize,
    prefetched: usize,
    /// The map's protection against the file being truncated under it (see `sigbus`).
    #[cfg(target_os = "linux")]
    guard: crate::sigbus::Guard,
    /// Bytes from the start of the map released so far (a multiple of [`RELEASE_STEP`]).
    #[cfg(unix)]
    released: usize,
}

impl<'a> MmapSource<'a> {
    pub fn new(map: &'a memmap2::Mmap) -> Self {
        MmapSource {
            map,
            pos: 0,
            prefetched: 0,
            #[cfg(target_os = "linux")]
            guard: crate::sigbus::Guard::register(map.as_ptr(), map.len()),
            #[cfg(unix)]
            released: 0,
        }
    }

    /// A map read from `pos` on (a record boundary found by [`crate::resync`]), protected
    /// against truncation like [`MmapSource::new`]; the pages it has read are released as it
    /// goes, never those before `pos` (another range's).
    pub fn at(map: &'a memmap2::Mmap, pos: usize) -> Self {
        let pos = pos.min(map.len());
        MmapSource {
            map,
            pos,
            prefetched: pos & !(CACHE_LINE - 1),
            #[cfg(target_os = "linux")]
            guard: crate::sigbus::Guard::register(map.as_ptr(), map.len()),
            #[cfg(unix)]
            released: pos.div_ceil(RELEASE_STEP) * RELEASE_STEP,
        }
    }

    /// Release the pages more than one step behind the current position.
    #[inline]
    fn release_behind(&mut self) {
        #[cfg(unix)]
        if self.pos >= self.released + 2 * RELEASE_STEP {
            let n = (self.pos - self.released - RELEASE_STEP) & !(RELEASE_STEP - 1);
            // SAFETY: the map is read-only (PROT_READ) and private, so no page in it was ever
            // written: MADV_DONTNEED only drops the page-table entries, and a later access
            // would map the same file pages again, with the same contents. The range is
            // page-aligned (the map starts on a page boundary and RELEASE_STEP is a multiple of
            // any page size), inside the map, and entirely before the current position; no
            // slice of it is alive, since every window borrows `self` mutably and ends before
            // `advance` is called. A failure only keeps the pages resident.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    self.released,
                    n,
                )
            };
            self.released += n;
        }
    }
}

impl ByteSource for MmapSource<'_> {
    #[inline]
    fn window(&mut self, _want: usize) -> Result<&[u8], CaptureError> {
        #[cfg(target_os = "linux")]
        if let Some(at) = self.guard.fault() {
            return Err(truncated_under_map(at));
        }
        Ok(&self.map[self.pos..])
    }
    #[inline]
    fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.map.len());
        prefetch_ahead(self.map, self.pos, &mut self.prefetched);
        self.release_behind();
    }
    fn position(&self) -> u64 {
        self.pos as u64
    }
    fn decompressed(&self) -> bool {
        false
    }
}

#[cfg(target_os = "linux")]
#[cold]
#[inline(never)]
fn truncated_under_map(at: usize) -> CaptureError {
    CaptureError::Io(std::io::Error::other(format!(
        "the file was truncated while it was read: its bytes from offset {at} on are gone"
    )))
}

/// The most a decompressing stream may give: `cap` of the compressed size, which is the
/// file's (`file_bytes`) or, for a stream of unknown size, the compressed bytes read so far.
pub(crate) struct InflateLimit {
    pub(crate) cap: InflateCap,
    pub(crate) file_bytes: u64,
    pub(crate) compressed_read: Arc<AtomicU64>,
}

impl InflateLimit {
    /// (compressed size, most decompressed bytes) now.
    fn now(&self) -> (u64, Option<u64>) {
        let compressed = self
            .file_bytes
            .max(self.compressed_read.load(Ordering::Relaxed));
        (compressed, self.cap.limit(compressed))
    }
}

/// A reader (usually a decompressor) behind a buffer that grows to the largest record asked for.
pub struct StreamSource<R: Read> {
    inner: R,
    compression: Compression,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    consumed: u64,
    eof: bool,
    limit: Option<InflateLimit>,
    /// Set when the stream went past the limit: it was cut there, and asking for bytes past
    /// the cut is an error. (compressed size, limit) at the cut.
    cut: Option<(u64, u64)>,
}

const CHUNK: usize = 1 << 20;

impl<R: Read> StreamSource<R> {
    pub fn new(inner: R, compression: Compression) -> Self {
        StreamSource {
            inner,
            compression,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            consumed: 0,
            eof: false,
            limit: None,
            cut: None,
        }
    }

    /// Stop at `limit` decompressed bytes.
    pub(crate) fn with_limit(mut self, limit: InflateLimit) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Cut the buffered bytes at the limit, if they went past it (`start` is 0: called while
    /// filling).
    fn enforce_limit(&mut self) {
        let Some(limit) = &self.limit else { return };
        let (compressed, max) = limit.now();
        let Some(max) = max else { return };
        let produced = self.consumed + self.end as u64;
        if produced > max {
            // (`consumed` is within the limit: the limit only grows, and was not passed.)
            self.end = max.saturating_sub(self.consumed) as usize;
            self.eof = true;
            self.cut = Some((compressed, max));
        }
    }

    #[cold]
    #[inline(never)]
    fn cut_error(&self, compressed: u64, limit: u64) -> CaptureError {
        CaptureError::Inflate {
            compression: self.compression,
            ratio: self.limit.as_ref().map_or(0, |l| l.cap.ratio),
            compressed,
            limit,
            where_: Offset {
                offset: self.consumed,
                decompressed: true,
            },
        }
    }
}

impl<R: Read> ByteSource for StreamSource<R> {
    fn window(&mut self, want: usize) -> Result<&[u8], CaptureError> {
        let want = want.min(HARD_MAX_RECORD as usize + 64);
        if self.end - self.start < want && !self.eof {
            // Move what is left to the front, grow if one record needs more, then fill.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() < want {
                self.buf.resize(want.max(CHUNK), 0);
            }
            while self.end < want && !self.eof {
                match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        self.end += n;
                        self.enforce_limit();
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(if self.compression == Compression::None {
                            CaptureError::Io(e)
                        } else {
                            CaptureError::Decompress {
                                compression: self.compression,
                                where_: Offset {
                                    offset: self.consumed + self.end as u64 - self.start as u64,
                                    decompressed: true,
                                },
                                source: e,
                            }
                        })
                    }
                }
            }
        }
        if let Some((compressed, limit)) = self.cut {
            // Bytes past the cut are wanted: the capture goes on beyond the limit.
            if self.end - self.start < want {
                return Err(self.cut_error(compressed, limit));
            }
        }
        Ok(&self.buf[self.start..self.end])
    }
    fn advance(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.consumed += n as u64;
    }
    fn position(&self) -> u64 {
        self.consumed
    }
    fn decompressed(&self) -> bool {
        self.compression != Compression::None
    }
}
