//! Writing reset.log (Zeek TSV or Zeek JSON lines) or reset.csv, atomically: the log is written
//! to a hidden temporary file in the output directory, synced, and renamed over the final name,
//! so a crashed or killed run never leaves a half-written log under that name.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use rstscope_join::enrich::{self, csv_neutralise, json_seconds, zeek_json_string};
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

/// How logs are written: format, compression, JSON timestamp style.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutputSpec {
    pub format: Format,
    /// Write `.gz` files.
    pub gzip: bool,
    /// JSON `ts` as ISO 8601 strings (Zeek's `JSON::TS_ISO8601`) instead of epoch numbers.
    pub iso8601: bool,
    /// Archive naming: `reset.<first>_<last>.log` with the packet-time window (UTC).
    pub stamp: Option<String>,
}

impl OutputSpec {
    /// The file a log of this stem is written to: `reset.log`, `reset.csv`, `conn_rst.log.gz`…
    pub fn file_name(&self, stem: &str) -> String {
        let ext = match self.format {
            Format::Tsv | Format::Json => "log",
            Format::Csv => "csv",
        };
        let gz = if self.gzip { ".gz" } else { "" };
        match &self.stamp {
            Some(stamp) => format!("{stem}.{stamp}.{ext}{gz}"),
            None => format!("{stem}.{ext}{gz}"),
        }
    }

    /// The run summary's file: `reset_summary.json`, or with archive naming
    /// `reset_summary.<first>_<last>.json`.
    pub fn summary_name(&self) -> String {
        match &self.stamp {
            Some(stamp) => format!("reset_summary.{stamp}.json"),
            None => "reset_summary.json".to_string(),
        }
    }

    /// The HTML report's file: `reset_report.html` (with archive naming,
    /// `reset_report.<first>_<last>.html`).
    pub fn report_name(&self) -> String {
        match &self.stamp {
            Some(stamp) => format!("reset_report.{stamp}.html"),
            None => "reset_report.html".to_string(),
        }
    }

    fn join_format(&self) -> rstscope_join::enrich::OutFormat {
        match self.format {
            Format::Tsv => rstscope_join::enrich::OutFormat::Tsv,
            Format::Json => rstscope_join::enrich::OutFormat::Json {
                iso8601: self.iso8601,
            },
            Format::Csv => rstscope_join::enrich::OutFormat::Csv,
        }
    }
}

/// Write `events` to `dir` as `reset.log` (or `reset.csv`, `.gz`); returns the final path.
pub fn write_reset_log(
    dir: &Path,
    spec: &OutputSpec,
    events: &[ResetEvent],
    open_ns: i64,
    close_ns: i64,
) -> std::io::Result<PathBuf> {
    write_atomic(dir, &spec.file_name("reset"), spec.gzip, |out| {
        match spec.format {
            Format::Tsv => write_tsv(out, events, open_ns, close_ns),
            Format::Json => write_json(out, events, spec.iso8601),
            Format::Csv => write_csv(out, events),
        }
    })
}

/// Write `conn_rst.log`: the joined conn.log rows with their RSTs appended. Returns the path
/// and the number of rows.
pub fn write_conn_rst(
    dir: &Path,
    spec: &OutputSpec,
    logs: &[PathBuf],
    joined: &HashMap<String, rstscope_join::RstAggregate>,
    open_ns: i64,
    close_ns: i64,
) -> std::io::Result<(PathBuf, u64)> {
    let mut rows = 0;
    let path = write_atomic(dir, &spec.file_name("conn_rst"), spec.gzip, |out| {
        rows = rstscope_join::enrich::write_conn_rst(
            out,
            spec.join_format(),
            logs,
            joined,
            open_ns,
            close_ns,
        )?;
        Ok(())
    })?;
    Ok((path, rows))
}

/// Write `dir/name` atomically: a hidden temporary file in the same directory, synced, then
/// renamed over the final name (and the directory synced). With `gzip` the bytes are
/// compressed on the way.
pub fn write_atomic<F>(dir: &Path, name: &str, gzip: bool, write: F) -> std::io::Result<PathBuf>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    std::fs::create_dir_all(dir)?;
    let final_path = dir.join(name);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempfile_in(dir)?;
    {
        let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
        if gzip {
            let mut gz = flate2::write::GzEncoder::new(&mut out, flate2::Compression::default());
            write(&mut gz)?;
            gz.finish()?;
        } else {
            write(&mut out)?;
        }
        out.flush()?;
    }
    // Temporary files are created 0600; logs are read by shippers running as other users.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(&final_path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(final_path)
}

/// Write the run summary as pretty JSON.
pub fn write_summary(
    dir: &Path,
    name: &str,
    summary: &serde_json::Value,
) -> std::io::Result<PathBuf> {
    write_atomic(dir, name, false, |out| {
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

fn json_value(v: &Value<'_>, iso8601: bool) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match v {
        Value::Unset => return None,
        Value::Time(ns) if iso8601 => J::String(enrich::iso8601(*ns)),
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
fn write_json<W: Write>(mut out: W, events: &[ResetEvent], iso8601: bool) -> std::io::Result<()> {
    for e in events {
        let mut map = serde_json::Map::new();
        for (field, v) in RESET_FIELDS.iter().zip(e.values()) {
            if let Some(j) = json_value(&v, iso8601) {
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
    csv_neutralise(s)
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
        // a leading quote of the value itself is escaped: a leading `'` always means neutralised
        assert_eq!(csv_cell(&Value::Str(b"'=x")), "\\x27=x");
        assert_eq!(csv_cell(&Value::Str(b"a\"b,c")), "a\"b,c");
    }
}
