//! The first packet's timestamp, read from the head of a file only: used to order the rotated
//! files of one sensor by time.

use std::io::Read;
use std::path::Path;

use crate::{read_bytes, sniff, Compression, Kind};

/// How much of a file (decompressed) is parsed to find its first packet at first: the
/// section and interface blocks plus one record almost always fit. Every file of a run is
/// peeked at before any is read (to order rotated files), so this is read twice per file per
/// run: 4 MiB each was ~3 % of a run over a 20-file archive, and decompressing that much of
/// every compressed file more.
const PEEK_FIRST: usize = 64 << 10;
/// How much is parsed when the first packet is not within [`PEEK_FIRST`] bytes (a pcapng with
/// many or large interface blocks, a large first record).
const PEEK_BYTES: usize = 4 << 20;

/// Timestamp (ns) of the first packet of the capture at `path`, if it has one within its first
/// few MiB. Never fails loudly: unreadable or empty files give None.
pub fn first_packet_ts(path: &Path) -> Option<i64> {
    // A FIFO or a device can be read only once: by the run, not by a peek.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    match peek(path, PEEK_FIRST)? {
        Peek::Found(ts) => Some(ts),
        Peek::NotWithin => match peek(path, PEEK_BYTES)? {
            Peek::Found(ts) => Some(ts),
            Peek::NotWithin | Peek::None => None,
        },
        Peek::None => None,
    }
}

enum Peek {
    Found(i64),
    /// No packet in the bytes read, and there are more.
    NotWithin,
    /// No packet in the whole (decompressed) file.
    None,
}

/// The first `n` bytes of the capture stream in `path`: the file's own, or for a gzip or zstd
/// file its first decompressed bytes (fewer when the stream is shorter or broken).
pub fn stream_head(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    std::fs::File::open(path)?
        .take(n as u64)
        .read_to_end(&mut head)?;
    let Some(Kind::Compressed(c)) = sniff(&head) else {
        return Ok(head);
    };
    let f = std::fs::File::open(path)?;
    let mut out = Vec::with_capacity(n);
    let _ = match c {
        Compression::Gzip => flate2::read::MultiGzDecoder::new(f)
            .take(n as u64)
            .read_to_end(&mut out),
        Compression::Zstd => zstd::stream::read::Decoder::new(f)?
            .take(n as u64)
            .read_to_end(&mut out),
        Compression::None => return Ok(head),
    };
    Ok(out)
}

/// The first packet's timestamp within the first `limit` (decompressed) bytes of `path`.
fn peek(path: &Path, limit: usize) -> Option<Peek> {
    let mut f = std::fs::File::open(path).ok()?;
    // One byte more than the limit tells whether the file goes on.
    let want = limit as u64 + 1;
    let mut head = Vec::with_capacity(limit.min(PEEK_FIRST) + 1);
    (&mut f).take(want).read_to_end(&mut head).ok()?;
    let plain = match sniff(&head)? {
        Kind::Capture(_) => head,
        Kind::Compressed(c) => {
            let f = std::fs::File::open(path).ok()?;
            let mut out = Vec::with_capacity(limit.min(PEEK_FIRST) + 1);
            let res = match c {
                Compression::Gzip => flate2::read::MultiGzDecoder::new(f)
                    .take(want)
                    .read_to_end(&mut out),
                Compression::Zstd => zstd::stream::read::Decoder::new(f)
                    .ok()?
                    .take(want)
                    .read_to_end(&mut out),
                Compression::None => return None,
            };
            // A truncated stream still gives the packets before the cut.
            let _ = res;
            out
        }
    };
    let more = plain.len() > limit;
    let mut first = None;
    read_bytes(&plain[..plain.len().min(limit)], |p| {
        if first.is_none() {
            first = Some(p.ts_ns);
        }
    });
    Some(match first {
        Some(ts) => Peek::Found(ts),
        None if more => Peek::NotWithin,
        None => Peek::None,
    })
}
