//! Writing reset.log (Zeek TSV or Zeek JSON lines) or reset.csv, atomically: the log is written
//! to a hidden temporary file in the output directory, synced, and renamed over the final name,
//! so a crashed or killed run never leaves a half-written log under that name.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use rstscope_join::enrich::{self, csv_neutralise_bytes, json_seconds, zeek_json_string};
use rstscope_reset::{with_text_ahead, ResetEvent, RESET_FIELDS};
use rstscope_zeeklog::{escape_field_into, TsvWriter, Value};

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

/// Write `events` as `reset.log` (or `reset.csv`, `.gz`) in `dir`, up to its temporary file:
/// written and flushed, to be [`commit`](Staged::commit)ted. Rows are rendered on `threads`
/// threads, in chunks, and written in order.
pub fn stage_reset_log(
    dir: &Path,
    spec: &OutputSpec,
    events: &[ResetEvent],
    open_ns: i64,
    close_ns: i64,
    threads: usize,
) -> std::io::Result<Staged> {
    let batch = render_batch_rows(threads);
    stage_reset_log_batches(
        dir,
        spec,
        events.chunks(batch).map(Ok),
        open_ns,
        close_ns,
        threads,
    )
}

/// Rows taken at once from a stream of rows to render: what [`stage_reset_log`] renders in
/// parallel per batch.
pub fn render_batch_rows(threads: usize) -> usize {
    RENDER_CHUNK * threads.clamp(1, MAX_RENDER_THREADS) * 4
}

/// [`stage_reset_log`] of rows that come in batches (in order; of any size, best
/// [`render_batch_rows`]): rows streamed from the sort, never all in memory. An error of the
/// batches ends the writing with it.
pub fn stage_reset_log_batches<B, I>(
    dir: &Path,
    spec: &OutputSpec,
    batches: I,
    open_ns: i64,
    close_ns: i64,
    threads: usize,
) -> std::io::Result<Staged>
where
    B: AsRef<[ResetEvent]> + Send + Sync,
    I: Iterator<Item = std::io::Result<B>>,
{
    let iso8601 = spec.iso8601;
    stage(dir, &spec.file_name("reset"), spec.gzip, |out| {
        match spec.format {
            Format::Tsv => {
                let mut w = TsvWriter::new(out, "reset", &RESET_FIELDS, open_ns)?;
                for_each_rendered(batches, threads, render_tsv, |rows| w.write_rendered(rows))?;
                w.finish(close_ns)?;
                Ok(())
            }
            Format::Json => for_each_rendered(
                batches,
                threads,
                |rows| render_json(rows, iso8601),
                |rows| out.write_all(rows),
            ),
            Format::Csv => {
                let mut header = csv_writer(Vec::new());
                header
                    .write_record(RESET_FIELDS.iter().map(|f| f.name))
                    .map_err(csv_to_io)?;
                out.write_all(&header.into_inner().map_err(|e| e.into_error())?)?;
                for_each_rendered(batches, threads, render_csv, |rows| out.write_all(rows))
            }
        }
    })
}

/// Rows rendered per task.
const RENDER_CHUNK: usize = 2048;

/// Most threads rendering a log: bounds the text held in flight whatever `-j` says.
const MAX_RENDER_THREADS: usize = 8;

/// Render the rows of `batches` chunk by chunk with `render` and hand the bytes to `sink` in
/// row order; with more than one thread, a batch's chunks are rendered in parallel while the
/// batch before is written and the next one is taken (memory: two batches of text and rows).
fn for_each_rendered<B, I, R, S>(
    mut batches: I,
    threads: usize,
    render: R,
    mut sink: S,
) -> std::io::Result<()>
where
    B: AsRef<[ResetEvent]> + Send + Sync,
    I: Iterator<Item = std::io::Result<B>>,
    R: Fn(&[ResetEvent]) -> std::io::Result<Vec<u8>> + Sync,
    S: FnMut(&[u8]) -> std::io::Result<()>,
{
    let threads = threads.min(MAX_RENDER_THREADS);
    let first = match batches.next().transpose()? {
        Some(b) => b,
        None => return Ok(()),
    };
    let pool = if threads > 1 && first.as_ref().len() > RENDER_CHUNK {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .ok()
    } else {
        None
    };
    let Some(pool) = pool else {
        for batch in std::iter::once(Ok(first)).chain(batches) {
            for chunk in batch?.as_ref().chunks(RENDER_CHUNK) {
                sink(&render(chunk)?)?;
            }
        }
        return Ok(());
    };
    use rayon::prelude::*;
    let render_batch = |batch: B| -> Vec<std::io::Result<Vec<u8>>> {
        let rows: &[ResetEvent] = batch.as_ref();
        pool.install(|| rows.par_chunks(RENDER_CHUNK).map(&render).collect())
    };
    let rendered = |h: std::thread::ScopedJoinHandle<'_, Vec<std::io::Result<Vec<u8>>>>| {
        h.join()
            .map_err(|_| std::io::Error::other("rendering the log panicked"))
    };
    std::thread::scope(|scope| {
        let render_batch = &render_batch;
        let mut next = Some(scope.spawn(move || render_batch(first)));
        while let Some(handle) = next.take() {
            // The next batch is taken (and its rows visited) while this one renders.
            let taken = batches.next().transpose();
            let ready = rendered(handle)?;
            let taken = match taken {
                Ok(b) => b,
                Err(e) => return Err(e),
            };
            next = taken.map(|b| scope.spawn(move || render_batch(b)));
            let written = ready
                .into_iter()
                .try_for_each(|part| part.and_then(|bytes| sink(&bytes)));
            if let Err(e) = written {
                // The batch in flight is waited for here, so a panic in it cannot turn this
                // error into a panic of the scope.
                if let Some(h) = next.take() {
                    let _ = rendered(h);
                }
                return Err(e);
            }
        }
        Ok(())
    })
}

fn render_tsv(rows: &[ResetEvent]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(rows.len() * 256);
    for e in with_text_ahead(rows) {
        rstscope_zeeklog::render_row(&e.values(), &mut out);
    }
    Ok(out)
}

/// Stage `conn_rst.log`: the joined conn.log rows with their RSTs appended, in a temporary
/// file to [`commit`](Staged::commit). Returns it and the number of rows.
pub fn stage_conn_rst(
    dir: &Path,
    spec: &OutputSpec,
    logs: &[PathBuf],
    joined: &HashMap<String, rstscope_join::RstAggregate>,
    open_ns: i64,
    close_ns: i64,
) -> std::io::Result<(Staged, u64)> {
    let mut rows = 0;
    let staged = stage(dir, &spec.file_name("conn_rst"), spec.gzip, |out| {
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
    Ok((staged, rows))
}

/// Write `dir/name` atomically: a hidden temporary file in the same directory, synced, then
/// renamed over the final name (and the directory synced). With `gzip` the bytes are
/// compressed on the way.
pub fn write_atomic<F>(dir: &Path, name: &str, gzip: bool, write: F) -> std::io::Result<PathBuf>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    stage(dir, name, gzip, write)?.commit()
}

/// A file written to a hidden temporary name beside its final one. Dropped without
/// [`commit`](Staged::commit), the temporary is removed.
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    final_path: PathBuf,
}

impl Staged {
    /// Its temporary path and its final path.
    pub fn paths(&self) -> (PathBuf, PathBuf) {
        (self.tmp.path().to_path_buf(), self.final_path.clone())
    }

    /// Sync the file and rename it over its final name, then sync the directory.
    pub fn commit(self) -> std::io::Result<PathBuf> {
        Ok(commit_all(vec![self])?.remove(0))
    }
}

/// Commit several staged files: all synced, then renamed over their final names in the order
/// given (none renamed unless all could be synced), then each directory synced once. Returns
/// the final paths.
pub fn commit_all(files: Vec<Staged>) -> std::io::Result<Vec<PathBuf>> {
    commit_all_after(files, || Ok(()))
}

/// [`commit_all`], calling `before_rename` once every file is synced and before any is
/// renamed (to record the renames where a later run finds them, should this one be killed).
pub fn commit_all_after(
    files: Vec<Staged>,
    before_rename: impl FnOnce() -> std::io::Result<()>,
) -> std::io::Result<Vec<PathBuf>> {
    for f in &files {
        f.tmp.as_file().sync_all()?;
    }
    // What can be checked before the first rename is: a final name taken by a directory, or
    // by a file that cannot be replaced (immutable, read-only filesystem), would fail the set
    // half-way, with some of the new logs already in place.
    for f in &files {
        let p = &f.final_path;
        if p.is_dir() {
            return Err(named(p, std::io::Error::other("a directory has this name")));
        }
        if p.exists() {
            std::fs::OpenOptions::new()
                .append(true)
                .open(p)
                .map_err(|e| named(p, e))?;
        }
    }
    before_rename()?;
    let mut paths = Vec::with_capacity(files.len());
    for f in files {
        let p = f.final_path.clone();
        f.tmp.persist(&p).map_err(|e| named(&p, e.error))?;
        paths.push(p);
    }
    let mut dirs: Vec<&Path> = paths.iter().filter_map(|p| p.parent()).collect();
    dirs.dedup();
    for dir in dirs {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(paths)
}

/// `e`, naming the file it concerns.
fn named(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The first half of [`write_atomic`]: `dir/name`'s bytes in a temporary file, flushed.
pub fn stage<F>(dir: &Path, name: &str, gzip: bool, write: F) -> std::io::Result<Staged>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    stage_unnamed(dir, name, gzip, write).map_err(|e| named(&dir.join(name), e))
}

fn stage_unnamed<F>(dir: &Path, name: &str, gzip: bool, write: F) -> std::io::Result<Staged>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    std::fs::create_dir_all(dir)?;
    let final_path = dir.join(name);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempfile_in(dir)?;
    std::thread::scope(|scope| -> std::io::Result<()> {
        let file = EarlyWriteback {
            file: tmp.as_file(),
            unsynced: 0,
            syncing: None,
            scope,
        };
        let mut out = BufWriter::with_capacity(1 << 20, file);
        if gzip {
            let mut gz = flate2::write::GzEncoder::new(&mut out, flate2::Compression::default());
            write(&mut gz)?;
            gz.finish()?;
        } else {
            write(&mut out)?;
        }
        out.flush()?;
        out.into_inner().map_err(|e| e.into_error())?.finish()
    })?;
    // Temporary files are created 0600; logs are read by shippers running as other users.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(Staged { tmp, final_path })
}

/// Bytes written between two background syncs of a large output.
const WRITEBACK_STEP: usize = 8 << 20;

/// A file being written whose bytes are sent to the disk while more are written: every
/// [`WRITEBACK_STEP`] bytes, a thread syncs what is there so far (when the previous sync is
/// done), so the final sync before the rename has little left to wait for.
struct EarlyWriteback<'scope, 'env> {
    file: &'env std::fs::File,
    unsynced: usize,
    syncing: Option<std::thread::ScopedJoinHandle<'scope, std::io::Result<()>>>,
    scope: &'scope std::thread::Scope<'scope, 'env>,
}

impl EarlyWriteback<'_, '_> {
    /// Wait for a sync still running; its error is the write's error.
    fn finish(&mut self) -> std::io::Result<()> {
        match self.syncing.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("syncing an output panicked"))),
            None => Ok(()),
        }
    }
}

impl Write for EarlyWriteback<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = (&mut &*self.file).write(buf)?;
        self.unsynced += n;
        if self.unsynced >= WRITEBACK_STEP && self.syncing.as_ref().is_none_or(|h| h.is_finished())
        {
            self.finish()?;
            self.unsynced = 0;
            let file = self.file;
            self.syncing = Some(self.scope.spawn(move || file.sync_data()));
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&mut &*self.file).flush()
    }
}

/// The run summary as pretty JSON, in its temporary file.
pub fn stage_summary(
    dir: &Path,
    name: &str,
    summary: &serde_json::Value,
) -> std::io::Result<Staged> {
    stage(dir, name, false, |out| {
        serde_json::to_writer_pretty(&mut *out, summary)?;
        out.write_all(b"\n")
    })
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
///
/// Written straight into the buffer, the bytes serde_json would write for a map of
/// `json_value`s (its compact form; values and keys are still escaped by serde_json): building
/// that map cost ~50 000 instructions a row, eight times the TSV row.
fn render_json(rows: &[ResetEvent], iso8601: bool) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(rows.len() * 512);
    for e in with_text_ahead(rows) {
        out.push(b'{');
        let mut first = true;
        for (field, v) in RESET_FIELDS.iter().zip(e.values()) {
            if v == Value::Unset {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut out, field.name)?;
            out.push(b':');
            write_json_value(&mut out, &v, iso8601)?;
        }
        out.extend_from_slice(b"}\n");
    }
    Ok(out)
}

/// A value other than `Unset`, serialized as [`json_value`] makes it.
fn write_json_value(out: &mut Vec<u8>, v: &Value<'_>, iso8601: bool) -> std::io::Result<()> {
    match v {
        // Addresses, ports, counts and booleans need no escaping and have one rendering.
        Value::Addr(_) => {
            out.push(b'"');
            rstscope_zeeklog::render_value_into(v, out);
            out.push(b'"');
        }
        Value::Port(_) | Value::Count(_) => rstscope_zeeklog::render_value_into(v, out),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Str(b) => serde_json::to_writer(&mut *out, zeek_json_string(b).as_str())?,
        Value::Set(items) => {
            out.push(b'[');
            for (i, s) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, zeek_json_string(s.as_bytes()).as_str())?;
            }
            out.push(b']');
        }
        other => {
            if let Some(j) = json_value(other, iso8601) {
                serde_json::to_writer(&mut *out, &j)?;
            }
        }
    }
    Ok(())
}

/// A CSV cell, into `out` (cleared first): Zeek's rendering (strings escaped as in TSV; unset
/// and empty as empty cells), with a leading `=`, `+`, `-`, `@`, tab or carriage return
/// neutralised by a `'` prefix so a spreadsheet never evaluates the cell as a formula (see
/// [`csv_neutralise_bytes`]). Rendered into buffers reused from row to row.
fn csv_cell_into(v: &Value<'_>, out: &mut Vec<u8>) {
    out.clear();
    match v {
        Value::Unset | Value::Str([]) => return,
        Value::Time(ns) | Value::Interval(ns) => {
            rstscope_zeeklog::format_seconds_into(*ns, out);
            return;
        }
        Value::Str(b) => escape_field_into(b, out),
        Value::Set(items) => {
            for (i, s) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                escape_field_into(s.as_bytes(), out);
            }
        }
        other => rstscope_zeeklog::render_value_into(other, out),
    }
    csv_neutralise_bytes(out);
}

fn csv_writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out)
}

fn csv_to_io(e: csv::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn render_csv(rows: &[ResetEvent]) -> std::io::Result<Vec<u8>> {
    let mut w = csv_writer(Vec::with_capacity(rows.len() * 256));
    let mut cells: Vec<Vec<u8>> = vec![Vec::new(); RESET_FIELDS.len()];
    for e in with_text_ahead(rows) {
        for (cell, v) in cells.iter_mut().zip(e.values().iter()) {
            csv_cell_into(v, cell);
        }
        w.write_record(&cells).map_err(csv_to_io)?;
    }
    w.into_inner().map_err(|e| e.into_error())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rstscope_join::enrich::csv_neutralise;
    use rstscope_zeeklog::{escape_field, format_seconds};

    /// Rows enough for several render chunks, with hostile payloads, varied times, sources and
    /// sensors, in no particular order.
    pub(crate) fn many_rows(n: u64) -> Vec<ResetEvent> {
        (0..n)
            .map(|i| {
                let payload = format!("x\t{i}\n#fields\u{1b}").into_bytes();
                let seg = rstscope_decode::Segment {
                    ts_ns: ((i * 7919) % 5000) as i64 * 1_000_000,
                    file: 0,
                    frame: i % 13,
                    src: std::net::IpAddr::from([10, 0, (i >> 8) as u8, i as u8]),
                    dst: "1.2.3.4".parse().unwrap(),
                    ttl: 60,
                    ip_id: (i % 2 == 0).then_some(i as u16),
                    df: Some(true),
                    sport: 1000 + (i % 50) as u16,
                    dport: 80,
                    seq: (i * 31) as u32,
                    ack: 1,
                    flags: 0x014,
                    window: 0,
                    options: Default::default(),
                    payload_len: payload.len() as u32,
                    payload: if i % 3 == 0 { &payload } else { &[] },
                    tunnel_depth: 0,
                };
                let source = format!("f{}.pcap", i % 4);
                let mut e = ResetEvent::from_segment(&seg, source.as_bytes(), &Default::default());
                e.sensor = (i % 5 == 0).then(|| b"s1".as_slice().into());
                e
            })
            .collect()
    }

    fn staged_bytes(spec: &OutputSpec, rows: &[ResetEvent], threads: usize) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = stage_reset_log(dir.path(), spec, rows, 0, 1, threads)
            .unwrap()
            .commit()
            .unwrap();
        std::fs::read(path).unwrap()
    }

    /// reset.log in JSON as first written: a serde_json map per row.
    fn render_json_reference(rows: &[ResetEvent], iso8601: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for e in rows {
            let mut map = serde_json::Map::new();
            for (field, v) in RESET_FIELDS.iter().zip(e.values()) {
                if let Some(j) = json_value(&v, iso8601) {
                    map.insert(field.name.to_string(), j);
                }
            }
            serde_json::to_writer(&mut out, &serde_json::Value::Object(map)).unwrap();
            out.push(b'\n');
        }
        out
    }

    #[test]
    fn json_rows_are_the_bytes_of_a_serde_json_map() {
        let mut rows = many_rows(300);
        // Every kind of value: unset and set options, IPv6, sets, hostile bytes, extremes.
        for (i, e) in rows.iter_mut().enumerate() {
            if i % 4 == 1 {
                e.orig_h = "2001:db8::1".parse().unwrap();
                e.resp_h = "::ffff:192.0.2.1".parse().unwrap();
            }
            if i % 3 == 2 {
                e.evidence = Some(vec!["payload", "ttl_mismatch"]);
                e.injected = Some(true);
                e.reason = Some("\"quoted\" \\ \u{7f}\u{1}é".to_string());
                e.history = Some("ShAdR".to_string());
                e.duration_ns = Some(-1_500);
                e.orig_pkts = Some(u64::MAX);
            }
            if i % 7 == 0 {
                e.evidence = Some(vec![]);
                e.payload = Some(b"\x00\xff\xc3\xa9\"\\\n\t\r\x08\x0c</script>".to_vec());
                e.ts_ns = i64::MIN / 2 + i as i64;
            }
        }
        for iso8601 in [false, true] {
            assert_eq!(
                String::from_utf8_lossy(&render_json(&rows, iso8601).unwrap()),
                String::from_utf8_lossy(&render_json_reference(&rows, iso8601)),
                "iso8601 {iso8601}"
            );
        }
    }

    #[test]
    fn rows_rendered_on_several_threads_give_the_same_bytes() {
        // More than two batches at 2 and 3 threads (a batch is RENDER_CHUNK × threads × 4
        // rows), so batches are rendered while others are written.
        let rows = many_rows(2 * RENDER_CHUNK as u64 * 3 * 4 + 17);
        for format in [Format::Tsv, Format::Json, Format::Csv] {
            let spec = OutputSpec {
                format,
                ..Default::default()
            };
            let one = staged_bytes(&spec, &rows, 1);
            for threads in [2, 3] {
                assert_eq!(one, staged_bytes(&spec, &rows, threads), "{format:?}");
            }
            // every row is there, once
            let text = String::from_utf8(one.clone()).unwrap();
            let lines = text.lines().filter(|l| !l.starts_with('#')).count();
            let header = usize::from(format == Format::Csv);
            assert_eq!(lines, rows.len() + header, "{format:?}");
            if format == Format::Tsv {
                // the same bytes as the Zeek writer row by row
                let mut w = TsvWriter::new(Vec::new(), "reset", &RESET_FIELDS, 0).unwrap();
                for e in &rows {
                    w.write_row(&e.values()).unwrap();
                }
                assert_eq!(one, w.finish(1).unwrap());
            }
        }
    }

    #[test]
    fn a_failing_sink_is_an_error_on_any_thread_count() {
        let rows = many_rows(2 * RENDER_CHUNK as u64 * 2 * 4 + 1);
        for threads in [1, 2, 3] {
            let mut calls = 0;
            let batches = rows.chunks(render_batch_rows(threads)).map(Ok);
            let r = for_each_rendered(batches, threads, render_tsv, |_| {
                calls += 1;
                if calls == 2 {
                    Err(std::io::Error::other("disk full"))
                } else {
                    Ok(())
                }
            });
            assert_eq!(r.unwrap_err().to_string(), "disk full", "{threads} threads");
            assert_eq!(calls, 2);
        }
    }

    #[test]
    fn an_error_of_the_rows_ends_the_log_with_it() {
        let rows = many_rows(3 * RENDER_CHUNK as u64);
        for threads in [1, 2] {
            let batches = rows.chunks(RENDER_CHUNK).enumerate().map(|(i, b)| match i {
                2 => Err(std::io::Error::other("spill file damaged")),
                _ => Ok(b),
            });
            let mut written = 0;
            let r = for_each_rendered(batches, threads, render_tsv, |_| {
                written += 1;
                Ok(())
            });
            assert_eq!(r.unwrap_err().to_string(), "spill file damaged");
            assert!(written <= 2, "{written}");
        }
    }

    #[test]
    fn staged_file_has_no_final_name_until_committed() {
        let dir = tempfile::tempdir().unwrap();
        let staged = stage(dir.path(), "x.log", false, |out| out.write_all(b"a\n")).unwrap();
        assert!(!dir.path().join("x.log").exists());
        drop(staged);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let path = stage(dir.path(), "x.log", false, |out| out.write_all(b"a\n"))
            .unwrap()
            .commit()
            .unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"a\n");
    }

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

    /// The CSV cell as first written, one `String` per cell: Zeek's rendering (strings escaped
    /// as in TSV; unset and empty as empty cells), with a leading `=`, `+`, `-`, `@`, tab or
    /// carriage return neutralised by a `'` prefix so a spreadsheet never evaluates the cell as
    /// a formula.
    fn csv_cell_reference(v: &Value<'_>) -> String {
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

    fn csv_cell(v: &Value<'_>) -> String {
        let mut out = Vec::new();
        csv_cell_into(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_cells_are_the_first_writer_s() {
        let mut rows = many_rows(200);
        for (i, e) in rows.iter_mut().enumerate() {
            if i % 3 == 0 {
                e.evidence = Some(vec!["payload", "a,b"]);
                e.reason = Some("=1+1".to_string());
                e.history = Some("'x".to_string());
                e.duration_ns = Some(-2_500_000);
                e.orig_h = "2001:db8::1".parse().unwrap();
            }
            if i % 5 == 0 {
                e.evidence = Some(vec![]);
                e.payload = Some(b"@\r\t\"\x00\xff".to_vec());
                e.sensor = Some(b"-s".as_slice().into());
            }
        }
        for e in &rows {
            for v in e.values() {
                assert_eq!(csv_cell(&v), csv_cell_reference(&v), "{v:?}");
            }
        }
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
