//! Byte sources the record loops parse from: a borrowed slice (a memory map, parsed in place)
//! or a decompressing stream read through a growable buffer.

use std::io::{ErrorKind, Read};

use crate::{CaptureError, Compression, Offset, HARD_MAX_RECORD};

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

/// Bytes already in memory (a memory-mapped file): every window is a sub-slice, no copies.
pub struct SliceSource<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        SliceSource { bytes, pos: 0 }
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
    }
    fn position(&self) -> u64 {
        self.pos as u64
    }
    fn decompressed(&self) -> bool {
        false
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
                    Ok(n) => self.end += n,
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
