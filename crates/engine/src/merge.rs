//! `rstscope merge`: combine the outputs of shard runs (`--shard I/N`) into what one run over
//! every input would have written. Shards own whole sensors, so their rows never overlap and
//! each row is already final; merging reads them back (Zeek TSV or JSON lines, CSV, plain or
//! .gz), orders them by (ts, source, frame), and sums the inputs' figures from the shard
//! summaries.
//!
//! Each shard's log is already in log order ([`ResetEvent::log_order`]), so the rows are
//! merged as they are read ([`MergedRows`], a k-way merge of one [`ShardRows`] reader per
//! shard): memory follows the number of shards, not of rows. A shard whose rows are not in
//! that order is an error naming the file and line, not sorted in memory: rstscope never
//! writes one (its logs are the contract's total order, whatever `-j`), so such a log was
//! edited or joined by hand, and sorting it would hold every row again.

use std::collections::{BTreeMap, BinaryHeap};
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rstscope_flow::{Evidence, FlowStats};
use rstscope_join::{parse_time, unescape};
use rstscope_reset::ResetEvent;
use serde_json::Value;

pub use crate::error::{RowAt, RowProblem, ShardError};
use crate::output::Format;
use crate::summary::RunInputs;

/// One shard's outputs, read back whole (the merge as it was: tests compare the streaming
/// merge with it).
#[cfg(test)]
pub struct Shard {
    pub dir: PathBuf,
    pub format: Format,
    pub gzip: bool,
    pub events: Vec<ResetEvent>,
    /// `#open`/`#close` as seconds (TSV), or None.
    pub open: Option<i64>,
    pub close: Option<i64>,
    pub summary: Value,
}

fn tcp_flags(text: &str) -> u16 {
    text.chars()
        .map(|c| match c {
            'F' => 0x001,
            'S' => 0x002,
            'R' => 0x004,
            'P' => 0x008,
            '.' => 0x010,
            'U' => 0x020,
            'E' => 0x040,
            'W' => 0x080,
            'e' => 0x100,
            _ => 0,
        })
        .fold(0, |a, b| a | b)
}

fn evidence_name(n: &str) -> Option<&'static str> {
    Evidence::NAMES
        .iter()
        .find(|(_, name)| *name == n)
        .map(|(_, name)| *name)
}

fn rotation_secs(s: &str) -> Option<i64> {
    let p: Vec<i64> = s.split('-').filter_map(|x| x.parse().ok()).collect();
    if p.len() != 6 {
        return None;
    }
    let month = time::Month::try_from(p[1] as u8).ok()?;
    let date = time::Date::from_calendar_date(p[0] as i32, month, p[2] as u8).ok()?;
    let t = date
        .with_hms(p[3] as u8, p[4] as u8, p[5] as u8)
        .ok()?
        .assume_utc();
    Some(t.unix_timestamp())
}

/// A row's fields by name, as text (None when unset); strings still escaped for TSV.
fn event_from(get: &dyn Fn(&str) -> Option<String>, tsv: bool) -> Result<ResetEvent, RowProblem> {
    let need = |n: &'static str| get(n).ok_or(RowProblem::Missing(n));
    let num = |n: &'static str| -> Result<u64, RowProblem> {
        need(n)?.parse::<u64>().map_err(|_| RowProblem::Bad(n))
    };
    let opt_num = |n: &str| -> Option<u64> { get(n).and_then(|v| v.parse().ok()) };
    let text = |n: &str| -> Option<Vec<u8>> {
        get(n).map(|v| {
            if tsv {
                if v == "(empty)" {
                    Vec::new()
                } else {
                    unescape(v.as_bytes()).into_owned()
                }
            } else {
                v.into_bytes()
            }
        })
    };
    let string = |n: &str| text(n).map(|b| String::from_utf8_lossy(&b).into_owned());
    // Capture file and sensor names are bytes, not necessarily UTF-8: kept whole (JSON wrote
    // them as `\xNN`, which is read back to the bytes).
    let name = |n: &str| -> Option<Vec<u8>> {
        if tsv {
            text(n)
        } else {
            get(n).map(|v| crate::inputs::name_from_text(&v).into_owned())
        }
    };
    let time = |n: &str| get(n).and_then(|v| parse_time(&v));
    let boolean = |n: &str| get(n).map(|v| v == "T" || v == "true");
    let addr = |n: &'static str| -> Result<IpAddr, RowProblem> {
        need(n)?.parse().map_err(|_| RowProblem::Bad(n))
    };
    let evidence = get("evidence").map(|v| {
        if tsv {
            if v == "(empty)" {
                Vec::new()
            } else {
                v.split(',').filter_map(evidence_name).collect()
            }
        } else {
            serde_json::from_str::<Vec<String>>(&v)
                .unwrap_or_default()
                .iter()
                .filter_map(|n| evidence_name(n))
                .collect()
        }
    });
    Ok(ResetEvent {
        ts_ns: time("ts").ok_or(RowProblem::Missing("ts"))?,
        uid: string("uid").ok_or(RowProblem::Missing("uid"))?,
        community_id: string("community_id").unwrap_or_default(),
        orig_h: addr("id.orig_h")?,
        orig_p: num("id.orig_p")? as u16,
        resp_h: addr("id.resp_h")?,
        resp_p: num("id.resp_p")? as u16,
        is_orig: boolean("is_orig").unwrap_or(false),
        cause: string("cause").map(Into::into),
        injected: boolean("injected"),
        evidence,
        flags: tcp_flags(&string("flags").unwrap_or_default()),
        seq: num("seq")? as u32,
        ack: num("ack")? as u32,
        win: num("win")? as u16,
        ttl: num("ttl")? as u8,
        ip_id: opt_num("ip_id").map(|v| v as u16),
        df: boolean("df"),
        payload_len: num("payload_len")? as u32,
        payload: text("payload"),
        reason: string("reason"),
        sender_ttl: opt_num("sender_ttl").map(|v| v as u8),
        initial_ttl: num("initial_ttl")? as u8,
        rst_count: opt_num("rst_count").map(|v| v as u32),
        history: string("history"),
        conn_state: string("conn_state").map(Into::into),
        duration_ns: time("duration"),
        idle_ns: time("idle"),
        orig_pkts: opt_num("orig_pkts"),
        resp_pkts: opt_num("resp_pkts"),
        source: name("source").unwrap_or_default().into(),
        frame: num("frame")?,
        sensor: name("sensor").map(Into::into),
    })
}

fn open_log(path: &Path) -> std::io::Result<Box<dyn BufRead>> {
    let mut f = std::fs::File::open(path)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic)?;
    let f = std::fs::File::open(path)?;
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(f)))
    } else {
        Box::new(BufReader::new(f))
    })
}

/// A shard directory's log: `reset.log` (`.csv`, `.gz`), or the one log named with an archive
/// stamp (`reset.<first>_<last>.log`, `--archive-names`). Returns its name, whether it is
/// gzip, and the stamp.
fn shard_log(dir: &Path) -> Result<(String, bool, Option<String>), ShardError> {
    const SUFFIXES: [(&str, bool); 4] = [
        (".log", false),
        (".log.gz", true),
        (".csv", false),
        (".csv.gz", true),
    ];
    for (suffix, gzip) in SUFFIXES {
        let name = format!("reset{suffix}");
        if dir.join(&name).exists() {
            return Ok((name, gzip, None));
        }
    }
    let mut stamped = Vec::new();
    for e in std::fs::read_dir(dir)
        .map_err(|source| ShardError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("reset.") else {
            continue;
        };
        for (suffix, gzip) in SUFFIXES {
            if let Some(stamp) = rest.strip_suffix(suffix).filter(|s| !s.contains('.')) {
                stamped.push((name.clone(), gzip, Some(stamp.to_string())));
            }
        }
    }
    match stamped.len() {
        1 => Ok(stamped.remove(0)),
        0 => Err(ShardError::NoLog {
            dir: dir.to_path_buf(),
        }),
        count => Err(ShardError::SeveralLogs {
            dir: dir.to_path_buf(),
            count,
        }),
    }
}

/// Read one shard directory whole: its reset.log (or .gz, or the one archive-named log) and
/// its summary. The rows are as the log has them ([`open_shard`] and [`MergedRows`] merge
/// shards without holding their rows).
#[cfg(test)]
pub fn read_shard(dir: &Path) -> Result<Shard, ShardError> {
    let mut rows = open_shard(dir)?;
    let events = rows.by_ref().collect::<Result<Vec<_>, _>>()?;
    // A log holding JSON lines anywhere is read as JSON, as before.
    let format = if rows.json_lines() {
        Format::Json
    } else {
        rows.format
    };
    Ok(Shard {
        format,
        gzip: rows.gzip,
        open: rows.open(),
        close: rows.close(),
        events,
        dir: rows.dir,
        summary: rows.summary,
    })
}

/// Open one shard directory for reading its rows one by one: its reset.log (or .gz, or the
/// one archive-named log), its format (told from the first row: JSON lines or Zeek TSV; CSV by
/// name), and its summary. The first row is read ahead: a log that cannot be opened or whose
/// first row is bad is an error here.
pub fn open_shard(dir: &Path) -> Result<ShardRows, ShardError> {
    let (name, gzip, stamp) = shard_log(dir)?;
    let path = dir.join(&name);
    let reader = open_log(&path).map_err(|source| ShardError::Io {
        path: path.clone(),
        source,
    })?;
    let mut rows = if name.contains(".csv") {
        RowReader::Csv(CsvRows::new(reader, path)?)
    } else {
        RowReader::Lines(LineRows::new(reader, path))
    };
    let ahead = rows.next_row().transpose()?;
    let format = match &rows {
        RowReader::Csv(_) => Format::Csv,
        RowReader::Lines(l) if l.json_lines => Format::Json,
        RowReader::Lines(_) => Format::Tsv,
    };
    Ok(ShardRows {
        dir: dir.to_path_buf(),
        format,
        gzip,
        summary: read_summary(dir, stamp.as_deref()),
        rows,
        ahead,
        at: RowAt::Line(0),
    })
}

/// One shard's rows, read one at a time in the order its log has them.
pub struct ShardRows {
    pub dir: PathBuf,
    pub format: Format,
    pub gzip: bool,
    pub summary: Value,
    rows: RowReader,
    /// The row read ahead by [`open_shard`], not yet handed out.
    ahead: Option<ResetEvent>,
    /// Where the row handed out last is.
    at: RowAt,
}

impl ShardRows {
    /// The log read.
    pub fn path(&self) -> &Path {
        match &self.rows {
            RowReader::Lines(l) => &l.path,
            RowReader::Csv(c) => &c.path,
        }
    }

    /// Where in the log the row handed out last is (line or CSV row).
    pub fn last_row_at(&self) -> RowAt {
        self.at
    }

    /// The log's `#open` as seconds (TSV; None for JSON and CSV), as far as read: rstscope
    /// writes it before the rows.
    pub fn open(&self) -> Option<i64> {
        match &self.rows {
            RowReader::Lines(l) => l.open,
            RowReader::Csv(_) => None,
        }
    }

    /// The log's `#close` as seconds (TSV; None for JSON and CSV), as far as read: rstscope
    /// writes it after the rows, so it is known once they are all read.
    pub fn close(&self) -> Option<i64> {
        match &self.rows {
            RowReader::Lines(l) => l.close,
            RowReader::Csv(_) => None,
        }
    }

    /// Whether a JSON line was read so far.
    #[cfg(test)]
    fn json_lines(&self) -> bool {
        matches!(&self.rows, RowReader::Lines(l) if l.json_lines)
    }
}

impl Iterator for ShardRows {
    type Item = Result<ResetEvent, ShardError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(row) = self.ahead.take() {
            self.at = self.rows.position();
            return Some(Ok(row));
        }
        let row = self.rows.next_row()?;
        self.at = self.rows.position();
        Some(row)
    }
}

/// A log's reader: TSV and JSON lines (one reader, told apart line by line), or CSV.
enum RowReader {
    Lines(LineRows),
    Csv(CsvRows),
}

impl RowReader {
    fn next_row(&mut self) -> Option<Result<ResetEvent, ShardError>> {
        match self {
            RowReader::Lines(l) => l.next_row(),
            RowReader::Csv(c) => c.next_row(),
        }
    }

    fn position(&self) -> RowAt {
        match self {
            RowReader::Lines(l) => RowAt::Line(l.line),
            RowReader::Csv(c) => RowAt::Row(c.rows + 1),
        }
    }
}

/// Rows of a Zeek TSV log or of JSON lines, with the TSV header's `#fields`, `#open` and
/// `#close` as they come.
struct LineRows {
    path: PathBuf,
    reader: Box<dyn BufRead>,
    buf: Vec<u8>,
    /// Lines read (the row handed out last is on this line).
    line: u64,
    fields: Vec<String>,
    open: Option<i64>,
    close: Option<i64>,
    json_lines: bool,
    /// A read error ended the log.
    failed: bool,
}

impl LineRows {
    fn new(reader: Box<dyn BufRead>, path: PathBuf) -> Self {
        LineRows {
            path,
            reader,
            buf: Vec::new(),
            line: 0,
            fields: Vec::new(),
            open: None,
            close: None,
            json_lines: false,
            failed: false,
        }
    }

    fn next_row(&mut self) -> Option<Result<ResetEvent, ShardError>> {
        while !self.failed {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    self.failed = true;
                    return Some(Err(ShardError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            }
            self.line += 1;
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
            }
            let line = String::from_utf8_lossy(&self.buf);
            if line.is_empty() {
                continue;
            }
            let bad = |problem: RowProblem| ShardError::Row {
                path: self.path.clone(),
                at: RowAt::Line(self.line),
                problem,
            };
            if line.starts_with('{') {
                self.json_lines = true;
                let v: serde_json::Map<String, Value> = match serde_json::from_str(&line) {
                    Ok(v) => v,
                    Err(e) => return Some(Err(bad(e.into()))),
                };
                let get = |n: &str| -> Option<String> {
                    match v.get(n)? {
                        Value::String(s) => Some(s.clone()),
                        Value::Bool(b) => Some(if *b { "T" } else { "F" }.into()),
                        other => Some(other.to_string()),
                    }
                };
                return Some(event_from(&get, false).map_err(bad));
            } else if let Some(rest) = line.strip_prefix('#') {
                let cells: Vec<&str> = rest.split('\t').collect();
                match cells[0] {
                    "fields" => self.fields = cells[1..].iter().map(|s| s.to_string()).collect(),
                    "open" => self.open = cells.get(1).and_then(|s| rotation_secs(s)),
                    "close" => self.close = cells.get(1).and_then(|s| rotation_secs(s)),
                    _ => {}
                }
            } else {
                let cells: Vec<&str> = line.split('\t').collect();
                let fields = &self.fields;
                let get = |n: &str| -> Option<String> {
                    let i = fields.iter().position(|f| f == n)?;
                    let c = *cells.get(i)?;
                    (c != "-").then(|| c.to_string())
                };
                return Some(event_from(&get, true).map_err(bad));
            }
        }
        None
    }
}

fn read_summary(dir: &Path, stamp: Option<&str>) -> Value {
    let name = match stamp {
        Some(s) => format!("reset_summary.{s}.json"),
        None => "reset_summary.json".to_string(),
    };
    std::fs::read_to_string(dir.join(name))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// reset.csv rows back to events. Cells hold the TSV rendering, with an empty cell for unset
/// and empty values (which render the same) and the `'` of formula neutralisation in front of
/// a cell starting with `=`, `+`, `-` or `@` (a cell that itself starts with `'` is written
/// `\x27…`, so the prefix is never ambiguous).
struct CsvRows {
    path: PathBuf,
    csv: csv::Reader<Box<dyn BufRead>>,
    fields: Vec<String>,
    record: csv::StringRecord,
    /// Records read (the header is row 1, so the one handed out last is row `rows + 1`).
    rows: u64,
    failed: bool,
}

impl CsvRows {
    fn new(reader: Box<dyn BufRead>, path: PathBuf) -> Result<Self, ShardError> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(reader);
        let fields: Vec<String> = match csv.headers() {
            Ok(h) => h.iter().map(str::to_string).collect(),
            Err(source) => return Err(ShardError::CsvHeader { path, source }),
        };
        Ok(CsvRows {
            path,
            csv,
            fields,
            record: csv::StringRecord::new(),
            rows: 0,
            failed: false,
        })
    }

    fn next_row(&mut self) -> Option<Result<ResetEvent, ShardError>> {
        if self.failed {
            return None;
        }
        let read = self.csv.read_record(&mut self.record);
        if let Ok(false) = read {
            return None;
        }
        self.rows += 1;
        let bad = |problem: RowProblem| ShardError::Row {
            path: self.path.clone(),
            at: RowAt::Row(self.rows + 1),
            problem,
        };
        if let Err(e) = read {
            // The csv reader may go on after a bad record; the old reader stopped at the first.
            self.failed = true;
            return Some(Err(bad(e.into())));
        }
        let (fields, record) = (&self.fields, &self.record);
        let get = |n: &str| -> Option<String> {
            let c = record.get(fields.iter().position(|f| f == n)?)?;
            if c.is_empty() {
                return None;
            }
            let c = match c.strip_prefix('\'') {
                Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
                _ => c,
            };
            Some(c.to_string())
        };
        Some(event_from(&get, true).map_err(bad))
    }
}

/// The rows of several shards in log order: a k-way merge of their readers, holding one row
/// per shard. Rows equal in log order (the same packet read twice) come in the order the
/// shards were given. A shard whose next row sorts before its row handed out last is an error
/// ([`RowProblem::OutOfOrder`]) naming its log and line; after an error the merge ends.
pub struct MergedRows {
    shards: Vec<ShardRows>,
    /// Each shard's next row, the least on top.
    heads: BinaryHeap<Head>,
    started: bool,
    failed: bool,
}

/// A shard's next row in the merge.
struct Head {
    row: ResetEvent,
    shard: usize,
}

impl Ord for Head {
    /// Reversed, so that the max-heap pops the least row (the first shard's among equals).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .row
            .log_order(&self.row)
            .then(other.shard.cmp(&self.shard))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Head {}

impl MergedRows {
    pub fn new(shards: Vec<ShardRows>) -> Self {
        MergedRows {
            heads: BinaryHeap::with_capacity(shards.len()),
            shards,
            started: false,
            failed: false,
        }
    }

    /// The shards merged (their summaries, formats; `open`/`close` once read).
    pub fn shards(&self) -> &[ShardRows] {
        &self.shards
    }

    /// The earliest `#open` of the shards' logs, as seconds.
    pub fn open(&self) -> Option<i64> {
        self.shards.iter().filter_map(ShardRows::open).min()
    }

    /// The latest `#close` of the shards' logs, as seconds: known once all rows are read.
    pub fn close(&self) -> Option<i64> {
        self.shards.iter().filter_map(ShardRows::close).max()
    }

    /// Shard `shard`'s next row into the heap; `after` is its row handed out last.
    fn refill(&mut self, shard: usize, after: Option<&ResetEvent>) -> Result<(), ShardError> {
        let rows = &mut self.shards[shard];
        let Some(row) = rows.next().transpose()? else {
            return Ok(());
        };
        if after.is_some_and(|a| row.log_order(a).is_lt()) {
            return Err(ShardError::Row {
                path: rows.path().to_path_buf(),
                at: rows.last_row_at(),
                problem: RowProblem::OutOfOrder,
            });
        }
        self.heads.push(Head { row, shard });
        Ok(())
    }
}

impl Iterator for MergedRows {
    type Item = Result<ResetEvent, ShardError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if !self.started {
            self.started = true;
            for shard in 0..self.shards.len() {
                if let Err(e) = self.refill(shard, None) {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        let Head { row, shard } = self.heads.pop()?;
        if let Err(e) = self.refill(shard, Some(&row)) {
            self.failed = true;
            return Some(Err(e));
        }
        Some(Ok(row))
    }
}

/// The inputs' figures of all shards together, from their summaries.
pub fn merged_inputs<'a>(summaries: impl IntoIterator<Item = &'a Value>) -> RunInputs {
    let mut files: Vec<Value> = Vec::new();
    let mut sensors: Vec<Value> = Vec::new();
    let mut flow = FlowStats::default();
    let mut parallel = crate::ParallelStats::default();
    let (mut packets, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let u = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    for j in summaries {
        files.extend(j["files"].as_array().cloned().unwrap_or_default());
        sensors.extend(j["sensors"].as_array().cloned().unwrap_or_default());
        flow.connections += u(j, "connections");
        flow.evicted += u(j, "connections_evicted");
        flow.peak_connections += u(j, "peak_connections");
        flow.segments += u(j, "tcp_segments");
        let par = &j["parallel"];
        parallel.units += u(par, "units");
        parallel.replayed_packets += u(par, "replayed_packets");
        parallel.redone_units += u(par, "redone_units");
        packets += u(j, "packets");
        bytes += u(j, "bytes");
        errors += u(j, "files_with_errors");
    }
    // the order one run lists them in: by path, sensors by name (the names' bytes, which the
    // summary writes as text with `\xNN` for bytes that are not UTF-8)
    let name_of = |v: &Value| {
        v.as_str()
            .map(|s| crate::inputs::name_from_text(s).into_owned())
    };
    files.sort_by_cached_key(|f| name_of(&f["path"]));
    let key = |v: &Value| name_of(&v["sensor"]);
    sensors.sort_by_key(key);
    let mut seen = BTreeMap::new();
    sensors.retain(|s| seen.insert(key(s), ()).is_none());
    RunInputs {
        files,
        sensors,
        flow,
        parallel,
        packets,
        bytes,
        files_with_errors: errors,
    }
}

/// Stable shard of a sensor: FNV-1a of its name (the unnamed sensor is the empty name).
pub fn shard_of(sensor: Option<&[u8]>, n: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in sensor.unwrap_or(b"") {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % n.max(1) as u64) as u32
}

/// Parse `I/N`; `auto/N` takes I from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or
/// SLURM_ARRAY_TASK_ID (Slurm array).
pub fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("--shard {s:?}: expected I/N, e.g. 3/8"))?;
    let n: u32 = n
        .parse()
        .map_err(|_| format!("--shard {s:?}: N must be a number"))?;
    let i: u32 = if i == "auto" {
        std::env::var("JOB_COMPLETION_INDEX")
            .or_else(|_| std::env::var("SLURM_ARRAY_TASK_ID"))
            .map_err(|_| {
                "--shard auto/N: neither JOB_COMPLETION_INDEX nor SLURM_ARRAY_TASK_ID is set"
                    .to_string()
            })?
            .parse()
            .map_err(|_| "--shard auto/N: the index variable is not a number".to_string())?
    } else {
        i.parse()
            .map_err(|_| format!("--shard {s:?}: I must be a number"))?
    };
    if n == 0 || i >= n {
        return Err(format!("--shard {i}/{n}: need 0 <= I < N"));
    }
    Ok((i, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{stage_reset_log, OutputSpec};
    use proptest::prelude::*;

    /// Write `rows` as shard directory `dir`'s log.
    fn write_shard(dir: &Path, rows: &[ResetEvent], format: Format, gzip: bool, open: i64) {
        std::fs::create_dir_all(dir).unwrap();
        let spec = OutputSpec {
            format,
            gzip,
            ..OutputSpec::default()
        };
        let sec = 1_000_000_000;
        stage_reset_log(dir, &spec, rows, open * sec, (open + 7) * sec, 1)
            .unwrap()
            .commit()
            .unwrap();
    }

    /// The merge as it was: every shard read whole, the rows put together and sorted.
    fn load_and_sort(dirs: &[PathBuf]) -> (Vec<ResetEvent>, Option<i64>, Option<i64>) {
        let mut shards: Vec<Shard> = dirs.iter().map(|d| read_shard(d).unwrap()).collect();
        let open = shards.iter().filter_map(|s| s.open).min();
        let close = shards.iter().filter_map(|s| s.close).max();
        let mut rows: Vec<ResetEvent> = shards
            .iter_mut()
            .flat_map(|s| std::mem::take(&mut s.events))
            .collect();
        crate::sort_rows(&mut rows, 1);
        (rows, open, close)
    }

    fn streamed(dirs: &[PathBuf]) -> Result<(Vec<ResetEvent>, MergedRows), ShardError> {
        let shards = dirs
            .iter()
            .map(|d| open_shard(d))
            .collect::<Result<_, _>>()?;
        let mut merged = MergedRows::new(shards);
        let rows = merged.by_ref().collect::<Result<Vec<_>, _>>()?;
        Ok((rows, merged))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Rows spread over shards (each in log order, as a run writes it), in every format:
        /// the streaming merge gives the rows, #open and #close the load-and-sort gave.
        #[test]
        fn the_streaming_merge_gives_what_load_and_sort_gave(
            spread in proptest::collection::vec(0usize..4, 0..160),
            ties in any::<bool>(),
            format in prop_oneof![Just(Format::Tsv), Just(Format::Json), Just(Format::Csv)],
            gzip in any::<bool>(),
        ) {
            let mut rows = crate::output::tests::many_rows(spread.len() as u64);
            if ties {
                // Few distinct times: rows of a shard and across shards share them.
                for (i, r) in rows.iter_mut().enumerate() {
                    r.ts_ns = (i % 7) as i64 * 1_000_000;
                }
            }
            let dir = tempfile::tempdir().unwrap();
            let shards = spread.iter().copied().max().map_or(1, |m| m + 1);
            let dirs: Vec<PathBuf> =
                (0..shards).map(|s| dir.path().join(format!("shard-{s}"))).collect();
            for (s, d) in dirs.iter().enumerate() {
                let mut mine: Vec<ResetEvent> = rows
                    .iter()
                    .zip(&spread)
                    .filter(|(_, &t)| t == s)
                    .map(|(r, _)| r.clone())
                    .collect();
                mine.sort_by(|a, b| a.log_order(b));
                write_shard(d, &mine, format, gzip, 1_700_000_000 + s as i64);
            }
            let (want, open, close) = load_and_sort(&dirs);
            let (got, merged) = streamed(&dirs).unwrap();
            prop_assert_eq!(got.len(), rows.len());
            prop_assert_eq!(got, want);
            prop_assert_eq!(merged.open(), open);
            prop_assert_eq!(merged.close(), close);
            // (an empty JSON log reads as TSV, as before)
            let formats = merged.shards().iter().zip(&dirs).enumerate();
            for (s, (rows, d)) in formats {
                if spread.contains(&s) {
                    prop_assert_eq!(rows.format, format, "{}", d.display());
                }
            }
        }
    }

    /// A log not in log order is an error naming it and the line (or CSV row) of the row that
    /// sorts too early; the rows before it were handed out in order.
    #[test]
    fn a_shard_out_of_order_is_an_error_naming_file_and_line() {
        let mut rows = crate::output::tests::many_rows(3);
        rows.sort_by(|a, b| a.log_order(b));
        rows.swap(1, 2);
        for (format, at) in [
            // the third row: after 8 header lines, on the third line, after the header row
            (Format::Tsv, RowAt::Line(11)),
            (Format::Json, RowAt::Line(3)),
            (Format::Csv, RowAt::Row(4)),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (a, b) = (dir.path().join("a"), dir.path().join("b"));
            write_shard(&a, &rows[..1], format, false, 0);
            write_shard(&b, &rows, format, false, 0);
            let shards = vec![open_shard(&a).unwrap(), open_shard(&b).unwrap()];
            let mut merged = MergedRows::new(shards);
            let mut handed = 0;
            let err = loop {
                match merged.next() {
                    Some(Ok(_)) => handed += 1,
                    Some(Err(e)) => break e,
                    None => panic!("{format:?}: no error"),
                }
            };
            assert!(merged.next().is_none(), "the merge ends after an error");
            assert!(handed <= 2, "{format:?}: {handed} rows before the error");
            match &err {
                ShardError::Row {
                    path,
                    at: got,
                    problem: RowProblem::OutOfOrder,
                } => {
                    assert!(path.starts_with(&b), "{}", path.display());
                    assert_eq!(*got, at, "{format:?}");
                }
                other => panic!("{format:?}: {other}"),
            }
            let text = err.to_string();
            assert!(text.contains("not in log order"), "{text}");
        }
    }

    /// A bad row is reported where it is, by the streaming reader as by the whole read.
    #[test]
    fn a_bad_row_is_an_error_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = crate::output::tests::many_rows(3);
        rows.sort_by(|a, b| a.log_order(b));
        write_shard(dir.path(), &rows, Format::Json, false, 0);
        let log = dir.path().join("reset.log");
        let text = std::fs::read_to_string(&log).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[1] = "{\"ts\": 1}";
        std::fs::write(&log, lines.join("\n")).unwrap();
        let whole = read_shard(dir.path()).err().expect("an error").to_string();
        let err = streamed(&[dir.path().to_path_buf()])
            .err()
            .expect("an error")
            .to_string();
        assert_eq!(err, whole);
        assert!(err.contains("line 2: missing uid"), "{err}");
    }

    #[test]
    fn shard_parsing() {
        assert_eq!(parse_shard("3/8").unwrap(), (3, 8));
        assert!(parse_shard("8/8").is_err());
        assert!(parse_shard("x").is_err());
    }

    #[test]
    fn rotation_time_round_trip() {
        assert_eq!(rotation_secs("2026-11-24-00-00-05"), Some(1_795_478_405));
        assert_eq!(rotation_secs("1970-01-01-00-00-00"), Some(0));
    }
}

/// What `rstscope merge` combines, and where to.
#[derive(Debug, Clone)]
pub struct MergeSettings {
    /// Shard output directories.
    pub dirs: Vec<PathBuf>,
    /// Where the merged logs go.
    pub out: PathBuf,
    /// Write the union of `from_state` here.
    pub state: Option<PathBuf>,
    /// The shards' `--state` files.
    pub from_state: Vec<PathBuf>,
}

/// Combine shard output directories into what one run over every input would have written:
/// reset.log, the summary and the report, streamed from the shards' logs (each in log order)
/// in two passes — the first finds the rows' time span, the page's chart needs it first —
/// holding one row per shard. Returns the number of rows and of shards merged; notices go to
/// `notice`.
pub fn merge_shards(
    m: &MergeSettings,
    mut notice: impl FnMut(&dyn std::fmt::Display),
) -> Result<(u64, usize), crate::error::MergeError> {
    use crate::error::MergeError;
    use crate::output::{commit_all, stage, stage_reset_log_batches, stage_summary, OutputSpec};
    let _lock = crate::lock::lock_output_dir(&m.out).map_err(MergeError::Lock)?;
    let mut dirs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for d in &m.dirs {
        // A shard given twice would give its rows twice.
        if !seen.insert(std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())) {
            notice(&format_args!(
                "{}: skipped, the same shard was already given",
                d.display()
            ));
            continue;
        }
        dirs.push(d.clone());
    }
    let open_all = || -> Result<Vec<ShardRows>, MergeError> {
        dirs.iter()
            .map(|d| open_shard(d).map_err(MergeError::Shard))
            .collect()
    };
    let shards = open_all()?;
    let format = shards[0].format;
    let gzip = shards[0].gzip;
    if shards.iter().any(|s| s.format != format || s.gzip != gzip) {
        return Err(MergeError::MixedShards);
    }
    // The shards' state files are read before anything is written: one that cannot be read is
    // refused as a run refuses its --state, with the merged logs not written.
    let mut state = None;
    if m.state.is_some() {
        let mut st = crate::state::State::default();
        for f in &m.from_state {
            st.files.extend(
                crate::state::State::load(f)
                    .map_err(MergeError::State)?
                    .files,
            );
        }
        state = Some(st);
    }
    let inputs = merged_inputs(shards.iter().map(|s| &s.summary));
    let shard_count = shards.len();
    // Pass 1: every row is read (and checked) once; the span of the rows and the logs' window.
    let mut first_pass = MergedRows::new(shards);
    let mut span: Option<(i64, i64)> = None;
    for r in first_pass.by_ref() {
        let ts = r.map_err(MergeError::Shard)?.ts_ns;
        span = Some(span.map_or((ts, ts), |(a, _)| (a, ts)));
    }
    let sec = 1_000_000_000i64;
    let open = first_pass.open().map(|t| t * sec);
    let close = first_pass.close().map(|t| t * sec);
    let open = open.or(span.map(|s| s.0)).unwrap_or(0);
    let close = close.or(span.map(|s| s.1)).unwrap_or(open);
    drop(first_pass);
    // Pass 2: rows counted and written as they are merged.
    let threads = crate::RunOptions::default().resolved_threads();
    let mut counted = crate::summary::SummaryBuilder::default();
    let mut timeline = span.map_or_else(Default::default, |(first, last)| {
        crate::report::Timeline::new(first, last)
    });
    let mut rows = MergedRows::new(open_all()?);
    let mut count = 0u64;
    let mut shard_error = None;
    let batch = crate::output::render_batch_rows(threads);
    let spec = OutputSpec {
        format,
        gzip,
        ..OutputSpec::default()
    };
    let written = (|| -> std::io::Result<()> {
        let batches = std::iter::from_fn(|| {
            let mut b = Vec::with_capacity(batch);
            for r in rows.by_ref().take(batch) {
                match r {
                    Ok(r) => {
                        counted.push(&r);
                        timeline.push_event(&r);
                        count += 1;
                        b.push(r);
                    }
                    Err(e) => {
                        let io = std::io::Error::other(e.to_string());
                        shard_error = Some(e);
                        return Some(Err(io));
                    }
                }
            }
            (!b.is_empty()).then_some(Ok(b))
        });
        let log = stage_reset_log_batches(&m.out, &spec, batches, open, close, threads)?;
        let summary = counted.finish(inputs);
        let summary_file = stage_summary(&m.out, &spec.summary_name(), &summary.json)?;
        let page = crate::report::render_page(&timeline, &summary);
        let report_file = stage(&m.out, &spec.report_name(), false, |out| {
            out.write_all(page.as_bytes())
        })?;
        commit_all(vec![log, summary_file, report_file])?;
        if let (Some(st), Some(p)) = (&state, &m.state) {
            st.save(p)?;
        }
        Ok(())
    })();
    if let Some(e) = shard_error {
        // (A shard changed between the passes.)
        return Err(MergeError::Shard(e));
    }
    written.map_err(|source| MergeError::Write {
        dir: m.out.clone(),
        source,
    })?;
    Ok((count, shard_count))
}
