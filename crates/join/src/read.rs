//! Streaming conn.log readers: Zeek ASCII TSV (driven by its `#` header lines, any column order
//! or subset, several header blocks per file) and Zeek JSON lines; plain or gzip. Malformed
//! lines are reported with their line number and skipped.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// A conn.log line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub path: PathBuf,
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: line {}: {}",
            self.path.display(),
            self.line,
            self.reason
        )
    }
}

/// The header of a TSV block.
#[derive(Debug, Clone, Default)]
pub struct TsvHeader {
    pub separator: Vec<u8>,
    pub set_separator: Vec<u8>,
    pub empty_field: Vec<u8>,
    pub unset_field: Vec<u8>,
    pub fields: Vec<String>,
    pub types: Vec<String>,
}

/// One conn.log row as read.
pub enum Row<'a> {
    Tsv {
        header: &'a TsvHeader,
        /// Cells as they appear in the file (still escaped).
        cells: Vec<&'a [u8]>,
    },
    Json(serde_json::Map<String, serde_json::Value>),
}

/// Decode Zeek's ASCII escapes (`\xNN`, `\\`).
pub fn unescape(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            if raw.get(i + 1) == Some(&b'x') && i + 3 < raw.len() {
                if let (Some(h), Some(l)) = (hex(raw[i + 2]), hex(raw[i + 3])) {
                    out.push(h << 4 | l);
                    i += 4;
                    continue;
                }
            }
            if raw.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    Cow::Owned(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl Row<'_> {
    /// A field's value as text, or None when absent or unset. Empty strings/sets are `""`.
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        match self {
            Row::Tsv { header, cells } => {
                let i = header.fields.iter().position(|f| f == name)?;
                let raw = *cells.get(i)?;
                if raw == header.unset_field.as_slice() {
                    return None;
                }
                if raw == header.empty_field.as_slice() {
                    return Some(Cow::Borrowed(""));
                }
                match unescape(raw) {
                    Cow::Borrowed(b) => Some(String::from_utf8_lossy(b)),
                    Cow::Owned(v) => Some(Cow::Owned(String::from_utf8_lossy(&v).into_owned())),
                }
            }
            Row::Json(map) => match map.get(name)? {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(Cow::Borrowed(s.as_str())),
                serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
                serde_json::Value::Bool(b) => Some(Cow::Borrowed(if *b { "T" } else { "F" })),
                other => Some(Cow::Owned(other.to_string())),
            },
        }
    }
}

/// What reading one conn.log gave.
#[derive(Debug, Default)]
pub struct ReadStats {
    pub rows: u64,
    pub malformed: Vec<Malformed>,
    /// The file could not be read to its end (I/O or decompression error).
    pub error: Option<String>,
}

fn open(path: &Path) -> std::io::Result<Box<dyn BufRead>> {
    let mut f = File::open(path)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic)?;
    let f = File::open(path)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(f),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
    }
}

/// Longest conn.log line read (1 MiB; Zeek's lines are a few hundred bytes): a longer one is
/// counted as malformed and skipped without being held (`/dev/zero` or a file without line
/// breaks cannot fill the memory).
pub const MAX_LINE: usize = 1 << 20;

/// Bytes without a line break after which a file is not a conn.log at all (`/dev/zero`): its
/// reading stops with an error.
const MAX_SKIP: usize = 64 << 20;

/// Read one line (through its `\n`) into `buf`, keeping at most `cap` bytes of it. Returns the
/// bytes consumed and whether the line was longer than `cap` (then `buf` holds only its start).
fn read_line_capped(
    r: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut overlong = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok((consumed, overlong));
        }
        let (chunk, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..=i], true),
            None => (avail, false),
        };
        let n = chunk.len();
        if !overlong && buf.len() + n <= cap {
            buf.extend_from_slice(chunk);
        } else {
            overlong = true;
        }
        r.consume(n);
        consumed += n;
        if done {
            return Ok((consumed, overlong));
        }
        if consumed > MAX_SKIP {
            return Err(std::io::Error::other(format!(
                "no line break in {MAX_SKIP} bytes: not a conn.log"
            )));
        }
    }
}

/// Stream the rows of one conn.log (TSV or JSON lines; plain or gzip).
pub fn read_conn_log<F: FnMut(&Row<'_>, u64)>(path: &Path, mut on_row: F) -> ReadStats {
    let mut stats = ReadStats::default();
    let mut reader = match open(path) {
        Ok(r) => r,
        Err(e) => {
            stats.error = Some(e.to_string());
            return stats;
        }
    };
    let mut header = TsvHeader {
        separator: b"\t".to_vec(),
        set_separator: b",".to_vec(),
        empty_field: b"(empty)".to_vec(),
        unset_field: b"-".to_vec(),
        ..Default::default()
    };
    let mut buf = Vec::with_capacity(4096);
    let mut line_no = 0u64;
    let bad = |stats: &mut ReadStats, line: u64, reason: String| {
        stats.malformed.push(Malformed {
            path: path.to_path_buf(),
            line,
            reason,
        })
    };
    loop {
        buf.clear();
        let overlong = match read_line_capped(&mut reader, &mut buf, MAX_LINE) {
            Ok((0, _)) => break,
            Ok((n, overlong)) => overlong.then_some(n),
            Err(e) => {
                stats.error = Some(format!("after line {line_no}: {e}"));
                break;
            }
        };
        line_no += 1;
        if let Some(n) = overlong {
            bad(
                &mut stats,
                line_no,
                format!("a line of {n} bytes, longer than the {MAX_LINE} a conn.log line may have"),
            );
            continue;
        }
        let mut line = buf.as_slice();
        if line.last() == Some(&b'\n') {
            line = &line[..line.len() - 1];
        }
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if line.is_empty() {
            continue;
        }
        if line[0] == b'{' || line[0] == b'[' {
            match serde_json::from_slice::<serde_json::Value>(line) {
                Ok(serde_json::Value::Object(map)) => {
                    stats.rows += 1;
                    on_row(&Row::Json(map), line_no);
                }
                Ok(_) => bad(&mut stats, line_no, "JSON line is not an object".into()),
                Err(e) => bad(&mut stats, line_no, format!("invalid JSON: {e}")),
            }
            continue;
        }
        if line[0] == b'#' {
            parse_header_line(line, &mut header);
            continue;
        }
        if header.fields.is_empty() {
            // `zeek-cut -m` output: the first line names the columns.
            let names: Vec<&[u8]> = split(line, &header.separator);
            let plain = |n: &&[u8]| {
                !n.is_empty()
                    && n.iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
            };
            if names.iter().all(plain) && names.iter().any(|n| *n == b"uid" || *n == b"ts") {
                header.fields = names
                    .iter()
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect();
                continue;
            }
            bad(
                &mut stats,
                line_no,
                "data line before any #fields header".into(),
            );
            continue;
        }
        let cells: Vec<&[u8]> = split(line, &header.separator);
        if cells.len() != header.fields.len() {
            bad(
                &mut stats,
                line_no,
                format!(
                    "{} fields, the #fields header has {}",
                    cells.len(),
                    header.fields.len()
                ),
            );
            continue;
        }
        stats.rows += 1;
        let row = Row::Tsv {
            header: &header,
            cells,
        };
        on_row(&row, line_no);
    }
    stats
}

fn split<'a>(line: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    if sep.len() == 1 {
        return line.split(|&b| b == sep[0]).collect();
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= line.len() {
        if &line[i..i + sep.len()] == sep {
            out.push(&line[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&line[start..]);
    out
}

fn parse_header_line(line: &[u8], h: &mut TsvHeader) {
    if let Some(rest) = line.strip_prefix(b"#separator ") {
        h.separator = unescape(rest).into_owned();
        if h.separator.is_empty() {
            h.separator = b"\t".to_vec();
        }
        return;
    }
    let parts = split(line, &h.separator);
    let values = || {
        parts[1..]
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
    };
    match parts[0] {
        b"#set_separator" if parts.len() > 1 => h.set_separator = unescape(parts[1]).into_owned(),
        b"#empty_field" if parts.len() > 1 => h.empty_field = unescape(parts[1]).into_owned(),
        b"#unset_field" if parts.len() > 1 => h.unset_field = unescape(parts[1]).into_owned(),
        b"#fields" => {
            h.fields = values();
            h.types.clear();
        }
        b"#types" => h.types = values(),
        _ => {}
    }
}
