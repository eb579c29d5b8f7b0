//! The first packet's timestamp, read from the head of a file only: used to order the rotated
//! files of one sensor by time.

use std::io::Read;
use std::path::Path;

use crate::{read_bytes, sniff, Compression, Kind};

/// How much of a file (decompressed) is parsed to find its first packet: the pcapng section
/// and interface blocks plus one record fit easily.
const PEEK_BYTES: usize = 4 << 20;

/// Timestamp (ns) of the first packet of the capture at `path`, if it has one within its first
/// few MiB. Never fails loudly: unreadable or empty files give None.
pub fn first_packet_ts(path: &Path) -> Option<i64> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut head = Vec::with_capacity(PEEK_BYTES);
    (&mut f)
        .take(PEEK_BYTES as u64)
        .read_to_end(&mut head)
        .ok()?;
    let plain = match sniff(&head)? {
        Kind::Capture(_) => head,
        Kind::Compressed(c) => {
            let f = std::fs::File::open(path).ok()?;
            let mut out = Vec::with_capacity(PEEK_BYTES);
            let res = match c {
                Compression::Gzip => flate2::read::MultiGzDecoder::new(f)
                    .take(PEEK_BYTES as u64)
                    .read_to_end(&mut out),
                Compression::Zstd => zstd::stream::read::Decoder::new(f)
                    .ok()?
                    .take(PEEK_BYTES as u64)
                    .read_to_end(&mut out),
                Compression::None => return None,
            };
            // A truncated stream still gives the packets before the cut.
            let _ = res;
            out
        }
    };
    let mut first = None;
    read_bytes(&plain, |p| {
        if first.is_none() {
            first = Some(p.ts_ns);
        }
    });
    first
}
