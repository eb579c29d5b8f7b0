//! Writing reset.log (Zeek TSV or Zeek JSON lines) or reset.csv, atomically: the log is written
//! to a hidden temporary file in the output directory, synced, and renamed over the final name,
//! so a crashed or killed run never leaves a half-written log under that name.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rstscope_reset::{ResetEvent, RESET_FIELDS};
use rstscope_zeeklog::{escape_field, format_seconds, TsvWriter, Value};

/// Output format (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Tsv,
    Json,
    Csv,
}

impl Format {
    /// The file a format writes to, per the contract.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Tsv | Format::Json => "reset.log",
            Format::Csv => "reset.csv",
        }
    }
}

/// Write `events` to `dir` in `format`; returns the final path.
pub fn write_reset_log(
    dir: &Path,
    format: Format,
    events: &[ResetEvent],
    open_ns: i64,
    close_ns: i64,
) -> std::io::Result<PathBuf> {
    write_atomic(dir, format.file_name(), |out| match format {
        Format::Tsv => write_tsv(out, events, open_ns, close_ns),
        Format::Json => write_json(out, events),
        Format::Csv => write_csv(out, events),
    })
}

/// Write `dir/name` atomically: a hidden temporary file in the same directory, synced, then
/// renamed over the final name (and the directory synced).
pub fn write_atomic<F>(dir: &Path, name: &str, write: F) -> std::io::Result<PathBuf>
where
    F: FnOnce(&mut BufWriter<&std::fs::File>) -> std::io::Result<()>,
{
    std::fs::create_dir_all(dir)?;
    let final_path = dir.join(name);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempfile_in(dir)?;
    {
        let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
        write(&mut out)?;
        out.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(&final_path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(final_path)
}

/// Write the run summary as pretty JSON.
pub fn write_summary(dir: &Path, summary: &serde_json::Value) -> std::io::Result<PathBuf> {
    write_atomic(dir, "reset_summary.json", |out| {
        serde_json::to_writer_pretty(&mut *out, summary)?;
        out.write_all(b"\n")
    })
}

fn write_tsv<W: Write>(
    out: W,
    events: &[ResetEvent],
    open_ns: i64,
    close_ns: i64,
) -> std::io::Result<()> {
    let mut w = TsvWriter::new(out, "reset", &RESET_FIELDS, open_ns)?;
    for e in events {
        w.write_row(&e.values())?;
    }
    w.finish(close_ns)?;
    Ok(())
}

/// Zeek's JSON string policy (STRING_ESCAPE_POLICY_HEX): valid UTF-8 kept, control bytes other
/// than \b \f \n \r \t and bytes that are not UTF-8 as the literal text `\xNN`; the JSON encoder
/// then escapes the rest.
fn zeek_json_string(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            if b < 0x20 && !matches!(b, 0x08 | 0x0c | b'\n' | b'\r' | b'\t') || b == 0x7f {
                s.push_str(&format!("\\x{b:02x}"));
            } else {
                s.push(b as char);
            }
            i += 1;
            continue;
        }
        let len = match b {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        if len > 0 && i + len <= bytes.len() {
            if let Ok(c) = std::str::from_utf8(&bytes[i..i + len]) {
                s.push_str(c);
                i += len;
                continue;
            }
        }
        s.push_str(&format!("\\x{b:02x}"));
        i += 1;
    }
    s
}

/// A time or interval as Zeek's JSON writer prints a double: shortest round-trip form.
fn json_seconds(ns: i64) -> serde_json::Value {
    let us = ns.div_euclid(1000) + i64::from(ns.rem_euclid(1000) >= 500);
    let secs = us as f64 / 1e6;
    serde_json::Number::from_f64(secs)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

fn json_value(v: &Value<'_>) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match v {
        Value::Unset => return None,
        Value::Time(ns) | Value::Interval(ns) => json_seconds(*ns),
        Value::Str(b) => J::String(zeek_json_string(b)),
        Value::Addr(a) => J::String(a.to_string()),
        Value::Port(p) => J::from(*p),
        Value::Count(c) => J::from(*c),
        Value::Bool(b) => J::Bool(*b),
        Value::Set(items) => J::Array(
            items
                .iter()
                .map(|s| J::String(zeek_json_string(s.as_bytes())))
                .collect(),
        ),
    })
}

/// One JSON object per line, flat dotted keys in column order, unset fields omitted.
fn write_json<W: Write>(mut out: W, events: &[ResetEvent]) -> std::io::Result<()> {
    for e in events {
        let mut map = serde_json::Map::new();
        for (field, v) in RESET_FIELDS.iter().zip(e.values()) {
            if let Some(j) = json_value(&v) {
                map.insert(field.name.to_string(), j);
            }
        }
        serde_json::to_writer(&mut out, &serde_json::Value::Object(map))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// A CSV cell: Zeek's rendering (strings escaped as in TSV; unset and empty as empty cells),
/// with a leading `=`, `+`, `-`, `@`, tab or carriage return neutralised by a `'` prefix so a
/// spreadsheet never evaluates the cell as a formula.
fn csv_cell(v: &Value<'_>) -> String {
    let s = match v {
        Value::Unset => return String::new(),
        Value::Time(ns) | Value::Interval(ns) => return format_seconds(*ns),
        Value::Str([]) => return String::new(),
        Value::Str(b) => escape_field(b),
        Value::Set(items) => items
            .iter()
            .map(|s| escape_field(s.as_bytes()))
            .collect::<Vec<_>>()
            .join(","),
        other => rstscope_zeeklog::render_value(other),
    };
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{s}"),
        _ => s,
    }
}

fn write_csv<W: Write>(out: W, events: &[ResetEvent]) -> std::io::Result<()> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    let io = |e: csv::Error| std::io::Error::other(e.to_string());
    w.write_record(RESET_FIELDS.iter().map(|f| f.name))
        .map_err(io)?;
    for e in events {
        w.write_record(e.values().iter().map(csv_cell))
            .map_err(io)?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_follow_zeek_hex_policy() {
        assert_eq!(zeek_json_string(b"a\nb\x01\xff\xc3\xa9"), "a\nb\\x01\\xffé");
    }

    #[test]
    fn json_seconds_shortest_form() {
        assert_eq!(
            json_seconds(1_362_692_526_869_344_000).to_string(),
            "1362692526.869344"
        );
        assert_eq!(
            json_seconds(-315_619_200_000_000_000).to_string(),
            "-315619200.0"
        );
    }

    #[test]
    fn csv_cells_are_neutralised() {
        assert_eq!(
            csv_cell(&Value::Str(b"=cmd|' /C calc'!A0")),
            "'=cmd|' /C calc'!A0"
        );
        assert_eq!(csv_cell(&Value::Str(b"-")), "\\x2d");
        assert_eq!(csv_cell(&Value::Unset), "");
        assert_eq!(csv_cell(&Value::Str(b"a\"b,c")), "a\"b,c");
    }
}
