//! One run of rstscope over its inputs, as cron runs it every night: under the output
//! directory's lock, with the `--state` (what was read, the carried connections, a commit a
//! killed run left half done), finding and filtering the inputs, reading them, joining the
//! conn.log, staging every output and committing them together, and appending the run record.
//! The CLI turns its flags into [`Settings`], says what a [`Reporter`] is told, and decides the
//! exit status from the result; nothing here prints.

use std::fmt::Display;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::RunError;
use crate::output::{
    commit_all_after, stage, stage_conn_rst, stage_reset_log_batches, stage_summary, OutputSpec,
};
use crate::{summary, InputFile, Progress, RunOptions, SensorFrom};
use rstscope_capture::CaptureError;
use rstscope_reset::ResetEvent;

/// Everything a run needs, checked (the CLI's flags, turned into what they mean).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Capture files or directories.
    pub inputs: Vec<PathBuf>,
    /// Follow symbolic links found in input directories.
    pub follow: bool,
    pub sensor_from: SensorFrom,
    /// Only shard I of N (whole sensors, by a stable hash of their name).
    pub shard: Option<(u32, u32)>,
    /// The directory for the logs, the run record and the lock.
    pub out: PathBuf,
    /// The logs' format, compression and timestamps (`stamp` is decided by the run).
    pub output: OutputSpec,
    /// Name the logs by their packet-time window (implied by `state`).
    pub archive_names: bool,
    /// conn.log files or directories to join with.
    pub conn_log: Vec<PathBuf>,
    /// Also write conn_rst.log.
    pub enrich_conn: bool,
    /// What shapes the results (`progress` comes from the [`Reporter`]).
    pub options: RunOptions,
    /// The nightly state: inputs seen, carried connections, pending renames.
    pub state: Option<PathBuf>,
    /// With `state`: end every connection at the end of this run.
    pub finish: bool,
    /// With `state`: read again inputs recorded as failed.
    pub retry_failed: bool,
    /// With `state`: drop the carried connections.
    pub discard_carry: bool,
    /// Skip files modified less than this long ago.
    pub min_age: Option<std::time::Duration>,
}

/// What a run tells the user: the CLI decides how (stderr, escaped, `-q`) and when.
pub trait Reporter {
    /// What the run did (its summary, its last line).
    fn info(&mut self, text: &dyn Display);
    /// Something skipped or done on the way that needs no action.
    fn notice(&mut self, text: &dyn Display);
    /// Something that may make the logs incomplete or wrong.
    fn warning(&mut self, text: &dyn Display);
    /// An input (or a conn log, or carried state) that could not be used, or not wholly.
    fn error(&mut self, text: &dyn Display);
    /// Reading `files` starts: progress reports to draw, if any.
    fn reading(&mut self, _files: &[InputFile]) -> Option<Progress> {
        None
    }
    /// Reading is over (a progress display may be cleared).
    fn reading_done(&mut self) {}
}

/// The run's side of its [`Reporter`]: keeps the warnings for the run record.
struct Say<'a> {
    reporter: &'a mut dyn Reporter,
    warnings: Vec<String>,
}

impl Say<'_> {
    fn info(&mut self, text: impl Display) {
        self.reporter.info(&text);
    }
    fn notice(&mut self, text: impl Display) {
        self.reporter.notice(&text);
    }
    fn warning(&mut self, text: impl Display) {
        self.warnings.push(text.to_string());
        self.reporter.warning(&text);
    }
    fn error(&mut self, text: impl Display) {
        self.reporter.error(&text);
    }
}

/// A capture that could not be read to its end: the file, why (with the byte offset), and how
/// many of its packets were read (and used) before.
pub struct InputFailed<'a> {
    pub path: &'a std::path::Path,
    pub error: &'a CaptureError,
    pub packets: u64,
}

impl Display for InputFailed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)?;
        if self.packets > 0 {
            write!(f, " ({} packets before it were read)", self.packets)?;
        }
        if let CaptureError::Inflate { .. } = self.error {
            f.write_str("; a larger --max-inflate (0: no cap) reads further")?;
        }
        Ok(())
    }
}

/// A run that holds the output directory's lock: [`Run::process`] does the work, then
/// [`Run::finish`] appends the run record with the exit status the caller decided.
pub struct Run<'s> {
    settings: &'s Settings,
    _lock: std::fs::File,
    record: serde_json::Map<String, serde_json::Value>,
    warnings: Vec<String>,
}

impl<'s> Run<'s> {
    /// Take the output directory's lock (overlapping runs — a slow night, a manual re-run —
    /// must not clobber each other's logs) and open the run record. `args` are the command
    /// line's, for the record.
    pub fn start(settings: &'s Settings, args: &[std::ffi::OsString]) -> Result<Self, RunError> {
        use serde_json::json;
        let lock = crate::lock::lock_output_dir(&settings.out).map_err(RunError::Lock)?;
        let mut record = serde_json::Map::new();
        record.insert(
            "version".into(),
            concat!("rstscope ", env!("CARGO_PKG_VERSION")).into(),
        );
        record.insert("start".into(), now_iso8601().into());
        record.insert(
            "args".into(),
            args.iter()
                .map(|a| crate::name_text(crate::name_bytes(a)).into_owned())
                .collect::<Vec<_>>()
                .into(),
        );
        // Every key is there in every record, whatever ends the run (a failed run: the defaults).
        for (k, v) in [
            ("files_processed", json!(0)),
            ("files_skipped", json!(0)),
            ("files_failed", json!([])),
            ("rows", json!(0)),
            ("carried_connections", json!(0)),
            ("carried_rows", json!(0)),
            ("late_files", json!([])),
            ("spill_runs", json!(0)),
            ("spilled_rows", json!(0)),
            ("outputs", json!([])),
            ("warnings", json!([])),
        ] {
            record.insert(k.into(), v);
        }
        Ok(Run {
            settings,
            _lock: lock,
            record,
            warnings: Vec::new(),
        })
    }

    /// Read the inputs and write the logs, telling `reporter` what happens.
    pub fn process(&mut self, reporter: &mut dyn Reporter) -> Result<(), RunError> {
        let mut say = Say {
            reporter,
            warnings: Vec::new(),
        };
        let result = run_locked(self.settings, &mut self.record, &mut say);
        self.warnings = say.warnings;
        result
    }

    /// Append the run record, with the run's exit status, to `OUT/rstscope_runs.log`: one
    /// whole line or none.
    pub fn finish(mut self, exit_status: u8) -> Result<(), RunError> {
        use serde_json::json;
        self.record
            .insert("warnings".into(), json!(std::mem::take(&mut self.warnings)));
        self.record.insert("end".into(), now_iso8601().into());
        self.record.insert("exit_status".into(), exit_status.into());
        let mut line = serde_json::Value::Object(self.record).to_string();
        line.push('\n');
        let path = self.settings.out.join(RUNS_LOG);
        let appended = (|| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            let before = f.metadata()?.len();
            // A write cut short (a full disk) is taken back.
            if let Err(e) = f.write_all(line.as_bytes()).and_then(|()| f.sync_data()) {
                let _ = f.set_len(before);
                return Err(e);
            }
            Ok(())
        })();
        appended.map_err(|source| RunError::RunRecord { path, source })
    }
}

/// The run record: one JSON line appended to `DIR/rstscope_runs.log` by every run that got
/// the output directory's lock, whatever its outcome.
const RUNS_LOG: &str = "rstscope_runs.log";

fn now_iso8601() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    rstscope_join::enrich::iso8601(now)
}

/// Output names an earlier run in `dir` used: files there now, and those the run records name.
fn names_used(dir: &std::path::Path) -> std::collections::HashSet<String> {
    let mut used = std::collections::HashSet::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            used.insert(e.file_name().to_string_lossy().into_owned());
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join(RUNS_LOG)) {
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                for o in v
                    .get("outputs")
                    .and_then(|o| o.as_array())
                    .into_iter()
                    .flatten()
                {
                    if let Some(name) = o.as_str() {
                        used.insert(name.to_string());
                    }
                }
            }
        }
    }
    used
}

/// The run, under the output directory's lock: fills the run record; its messages go to
/// `msgs`.
fn run_locked(
    s: &Settings,
    record: &mut serde_json::Map<String, serde_json::Value>,
    msgs: &mut Say<'_>,
) -> Result<(), RunError> {
    use serde_json::json;
    // The state: locked for the whole run (runs sharing it take turns), then a commit a killed
    // run left half done is finished before stale temporaries are removed.
    let _state_lock = match &s.state {
        Some(p) => match crate::lock::lock_state(p, |lock| {
            msgs.notice(format_args!(
                "waiting for another run that holds {}",
                lock.display()
            ));
        }) {
            Ok(l) => Some(l),
            // (lock_state waits for a lock another run holds: only I/O errors come back.)
            Err(e) => return Err(RunError::StateLock(e)),
        },
        None => None,
    };
    let mut state = match &s.state {
        Some(p) => Some(crate::state::State::load(p).map_err(RunError::State)?),
        None => None,
    };
    if let Some(st) = state.as_mut() {
        for p in st.finish_pending_commit() {
            msgs.warning(format!(
                "{}: delivered now: the run that wrote it was stopped before renaming it",
                p.display()
            ));
        }
    }
    let stale = crate::lock::remove_stale_temporaries(&s.out);
    if stale > 0 {
        msgs.notice(format_args!(
            "removed {stale} temporary files an interrupted run left in {}",
            s.out.display()
        ));
    }
    let carry_t0 = std::time::Instant::now();
    let carries = match (&state, &s.state) {
        (Some(st), Some(p)) if !s.discard_carry => st.load_carry(p).map_err(RunError::Carry)?,
        (Some(st), Some(_)) => {
            if let Some(c) = &st.carry {
                msgs.warning(
                    format!(
                        "--discard-carry: {} carried connections and {} pending rows dropped; the streams start cold",
                        c.connections, c.rows
                    ),
                );
            }
            Vec::new()
        }
        _ => Vec::new(),
    };
    if s.state.is_some() {
        record.insert(
            "carry_load_seconds".into(),
            json!((carry_t0.elapsed().as_secs_f64() * 1e4).round() / 1e4),
        );
    }
    let carried_in: u64 = carries.iter().map(|c| c.carry.len() as u64).sum();
    let carried_clock = carries.iter().map(|c| c.carry.clock).max();
    // (sensor, clock, connections) of each carried stream, for the gap check after reading.
    let carried_clocks: Vec<(Option<Vec<u8>>, i64, usize)> = carries
        .iter()
        .map(|c| (c.sensor.clone(), c.carry.clock, c.carry.len()))
        .collect();
    let (mut files, problems) = crate::discover_following(&s.inputs, s.follow);
    crate::assign_sensors(&mut files, s.sensor_from);
    if let Some((i, n)) = s.shard {
        files.retain(|f| crate::merge::shard_of(f.sensor.as_deref(), n) == i);
        if files.is_empty() {
            msgs.info(format_args!("rstscope: shard {i}/{n} has no inputs"));
            return Ok(());
        }
    }
    let mut skipped_state = 0usize;
    let files: Vec<crate::InputFile> = match &state {
        Some(st) => files
            .into_iter()
            .filter(|f| {
                let seen = st.seen(&f.path, s.retry_failed);
                skipped_state += usize::from(seen);
                !seen
            })
            .collect(),
        None => files,
    };
    let (files, young) = match s.min_age {
        Some(age) => crate::inputs::split_by_age(files, age),
        None => (files, Vec::new()),
    };
    record.insert("files_skipped".into(), (skipped_state + young.len()).into());
    for f in &young {
        msgs.notice(format_args!(
            "{}: skipped, modified less than --min-age ago",
            f.path.display()
        ));
    }
    if skipped_state > 0 {
        msgs.notice(format_args!(
            "{skipped_state} inputs skipped, already processed (--state)"
        ));
    }
    for p in &problems {
        if p.is_error() {
            msgs.error(p);
        } else {
            msgs.notice(p);
        }
    }
    let end = if s.state.is_none() || s.finish {
        crate::StreamEnd::Finish
    } else {
        crate::StreamEnd::Carry
    };
    let finishing_carry = end == crate::StreamEnd::Finish && carried_in > 0;
    if files.is_empty() && !finishing_carry {
        record.insert("files_processed".into(), 0.into());
        record.insert("files_failed".into(), json!([]));
        record.insert("rows".into(), 0.into());
        record.insert("carried_connections".into(), carried_in.into());
        record.insert("late_files".into(), json!([]));
        record.insert("outputs".into(), json!([]));
        if skipped_state > 0 || !young.is_empty() {
            msgs.info("rstscope: nothing new to process");
            return Ok(());
        }
        return Err(RunError::NoCaptures);
    }
    let opts = RunOptions {
        progress: if files.is_empty() {
            None
        } else {
            msgs.reporter.reading(&files)
        },
        // Spilled rows go beside the logs unless told otherwise.
        tmp_dir: Some(s.options.tmp_dir.clone().unwrap_or_else(|| s.out.clone())),
        ..s.options.clone()
    };
    let mut result = crate::process_streams(&files, &opts, carries, end);
    let cannot_write = |source| RunError::WriteLogs {
        dir: s.out.clone(),
        source,
    };
    let rows = std::mem::replace(&mut result.rows, Err(std::io::Error::other("taken")));
    let mut rows = rows.map_err(cannot_write)?;
    let span = rows.time_span();
    // What --sort-memory cost: runs written to disk, and rows in them.
    let spilled = rows.spill_stats();
    record.insert("spill_runs".into(), spilled.runs.into());
    record.insert("spilled_rows".into(), spilled.rows_spilled.into());
    msgs.reporter.reading_done();
    let mut any_read = files.is_empty();
    let mut failed = Vec::new();
    for f in &result.files {
        if let Some(e) = f.error() {
            msgs.error(InputFailed {
                path: &f.input.path,
                error: e,
                packets: f.read.packets,
            });
            failed.push(json!({"file": path_text(&f.input.path), "error": e.to_string()}));
        }
        if f.read.packets > 0 || f.error().is_none() {
            any_read = true;
        }
        if f.decode.too_deep > 0 {
            msgs.warning(
                format!(
                    "{}: {} packets carry IP under more than {} tunnel layers; not looked into (a RST there is not in the log)",
                    f.input.path.display(),
                    f.decode.too_deep,
                    rstscope_decode::MAX_TUNNEL_DEPTH
                ),
            );
        }
        if f.read.packets_without_interface > 0 {
            msgs.warning(
                format!(
                    "{}: {} packets name a pcapng interface no interface block described; skipped, counted as malformed",
                    f.input.path.display(),
                    f.read.packets_without_interface
                ),
            );
        }
        for (lt, n) in &f.decode.unknown_linktypes {
            msgs.warning(format!(
                "{}: {n} packets of unsupported link type {lt} skipped",
                f.input.path.display()
            ));
        }
    }
    if result.flow.carry_errors > 0 {
        record.insert("carry_errors".into(), result.flow.carry_errors.into());
        msgs.error(format_args!(
            "{}: {} carried connections did not decode and were dropped (the carry file is damaged; their rows are lost)",
            s.state.as_deref().unwrap_or(std::path::Path::new("--state")).display(),
            result.flow.carry_errors
        ));
    }
    // A carried clock far behind a sensor's next packets: files missing in between? (The
    // files' first packet times come from the reading, not another peek at each file.)
    for (sensor, clock, conns) in &carried_clocks {
        let first_new = result
            .files
            .iter()
            .filter(|f| f.input.sensor == *sensor)
            .filter_map(|f| f.first_ts)
            .filter(|&t| t > *clock)
            .min();
        if let Some(first) = first_new {
            const DAY: i64 = 86_400 * 1_000_000_000;
            if *clock != i64::MIN && first.saturating_sub(*clock) > DAY {
                msgs.warning(
                    format!(
                        "sensor {}: the carried stream ends at {}, {:.1} days before its next file's first packet ({}): captures missing in between? ({conns} carried connections time out)",
                        sensor.as_deref().map_or("(unnamed)".into(), crate::name_text),
                        rstscope_join::enrich::iso8601(*clock),
                        (first - clock) as f64 / DAY as f64,
                        rstscope_join::enrich::iso8601(first),
                    ),
                );
            }
        }
    }
    let mut late = Vec::new();
    for &i in &result.late_files {
        let f = &result.files[i];
        late.push(path_text(&f.input.path));
        msgs.warning(
            format!(
                "{}: late file: its first packet sorts at or before the last file sensor {} already read; read as a stream of its own from a cold start (connections crossing into it are split)",
                f.input.path.display(),
                f.input
                    .sensor
                    .as_deref()
                    .map_or("(unnamed)".into(), crate::name_text)
            ),
        );
    }
    let carried_out: u64 = result.carries.iter().map(|c| c.carry.len() as u64).sum();
    let carried_rows: u64 = result
        .carries
        .iter()
        .map(|c| c.carry.pending_rows() as u64)
        .sum();
    record.insert("files_processed".into(), result.files.len().into());
    record.insert("files_failed".into(), failed.into());
    record.insert("carried_connections".into(), carried_out.into());
    record.insert("carried_rows".into(), carried_rows.into());
    record.insert("late_files".into(), late.into());
    if !any_read {
        return Err(RunError::NothingRead);
    }
    let spec = s.output.clone();
    // The window the logs cover: the packets read and the rows delivered (rows carried from
    // an earlier run may be older than this run's packets).
    let open = result
        .first_ts
        .into_iter()
        .chain(span.map(|(first, _)| first))
        .min()
        .or(carried_clock.filter(|&t| t != i64::MIN))
        .unwrap_or(0);
    let close = result
        .last_ts
        .into_iter()
        .chain(span.map(|(_, last)| last))
        .max()
        .unwrap_or(open);
    // With --state every run delivers to files of its own: named by the window (as
    // --archive-names does), plus the run's number when an earlier run used the name.
    let stamp = (s.archive_names || s.state.is_some()).then(|| {
        let window = format!(
            "{}_{}",
            rstscope_zeeklog::format_rotation_time(open),
            rstscope_zeeklog::format_rotation_time(close)
        );
        match &state {
            Some(st) => {
                let used = names_used(&s.out);
                let taken = |stamp: &str| {
                    let s = OutputSpec {
                        stamp: Some(stamp.to_string()),
                        ..spec.clone()
                    };
                    [
                        s.file_name("reset"),
                        s.file_name("conn_rst"),
                        s.summary_name(),
                        s.report_name(),
                    ]
                    .iter()
                    .any(|n| used.contains(n))
                };
                let mut stamp = window.clone();
                let mut seq = st.runs + 1;
                while taken(&stamp) {
                    stamp = format!("{window}.{seq}");
                    seq += 1;
                }
                stamp
            }
            None => window,
        }
    });
    let spec = OutputSpec { stamp, ..spec };

    // Join with the site's conn.log.
    let mut join = None;
    let mut conn_logs = Vec::new();
    if !s.conn_log.is_empty() {
        let rstscope_join::ConnLogs {
            logs,
            errors: problems,
            notices,
        } = rstscope_join::discover_conn_logs(&s.conn_log);
        for p in &problems {
            msgs.error(p);
        }
        for n in &notices {
            msgs.notice(n);
        }
        if logs.is_empty() && problems.is_empty() {
            msgs.warning(
                format!(
                    "--conn-log {}: no conn log there (conn*.log[.gz], conn*.json[.gz]); no RST was joined",
                    s.conn_log
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            );
        }
        // The first pass over the rows: the keys the conn.log rows are matched by.
        let mut keys = rstscope_join::RstKeys::new();
        rows = rows
            .tee(&opts.spill_dir(), opts.sort_memory, |r| keys.push(r))
            .map_err(cannot_write)?;
        let matches = keys.match_conn_logs(&logs);
        let report = matches.report();
        for l in &report.logs {
            if let Some(e) = &l.error {
                msgs.error(format_args!("{}: {e}", l.path.display()));
            }
            for m in &l.first_malformed {
                msgs.warning(m);
            }
            if l.malformed > l.first_malformed.len() as u64 {
                msgs.warning(format!(
                    "{}: {} malformed lines in all",
                    l.path.display(),
                    l.malformed
                ));
            }
        }
        let rows: u64 = report.logs.iter().map(|l| l.rows).sum();
        let total = report.matched + report.unmatched;
        record.insert("conn_log_rows".into(), rows.into());
        record.insert("join_matched".into(), report.matched.into());
        record.insert("join_total".into(), total.into());
        if !logs.is_empty() && total > 0 && report.matched * 2 < total {
            let cause = if rows == 0 {
                "the conn logs hold no rows"
            } else if report.candidates == 0 {
                "no conn.log row has the endpoints of any RST: the wrong sensor's or the wrong day's conn.log?"
            } else {
                "conn.log rows with the RSTs' endpoints exist but their times do not cover the RSTs: clock skew between the sensors, or masked/absent ts?"
            };
            msgs.warning(format!(
                "--conn-log matched only {} of {} RSTs ({:.0} %): {cause}",
                report.matched,
                total,
                100.0 * report.matched as f64 / total as f64
            ));
        }
        conn_logs = logs;
        join = Some(matches);
    }

    // One pass over the rows, a batch at a time as they leave the sort: each gets its conn.log
    // uid and is counted for the summary and the chart while the batch before is rendered
    // (on every thread, when there are several), its bytes going to the disk as they are
    // written. Every output gets its final name only once all are written and synced, in the
    // order log, conn_rst.log, summary, report — after the state (with the carry and the
    // renames to come) is saved.
    let threads = opts.resolved_threads();
    let mut counted = summary::SummaryBuilder::default();
    let mut timeline = span.map_or_else(Default::default, |(first, last)| {
        crate::report::Timeline::new(first, last)
    });
    let mut per_sensor: Vec<(Option<Arc<[u8]>>, u64)> = Vec::new();
    let mut count = 0u64;
    let mut visit = |r: &mut ResetEvent| {
        if let Some(m) = join.as_mut() {
            m.apply(r);
        }
        counted.push(r);
        timeline.push_event(r);
        count += 1;
        let same = |s: &Option<Arc<[u8]>>| match (s, &r.sensor) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            (a, b) => a.is_none() && b.is_none(),
        };
        match per_sensor.iter_mut().find(|(s, _)| same(s)) {
            Some((_, n)) => *n += 1,
            None => per_sensor.push((r.sensor.clone(), 1)),
        }
    };
    let batch = crate::output::render_batch_rows(threads);
    let log = match rows.take_vec() {
        Some(mut all) => {
            let batches = all.chunks_mut(batch).map(|b| {
                b.iter_mut().for_each(&mut visit);
                Ok(b)
            });
            stage_reset_log_batches(&s.out, &spec, batches, open, close, threads)
        }
        None => {
            let batches = std::iter::from_fn(|| {
                let mut b = Vec::with_capacity(batch);
                for r in rows.by_ref().take(batch) {
                    match r {
                        Ok(mut r) => {
                            visit(&mut r);
                            b.push(r);
                        }
                        Err(e) => return Some(Err(e)),
                    }
                }
                (!b.is_empty()).then_some(Ok(b))
            });
            stage_reset_log_batches(&s.out, &spec, batches, open, close, threads)
        }
    };
    for sr in &mut result.sensors {
        sr.rsts = per_sensor
            .iter()
            .find(|(s, _)| s.as_deref() == sr.sensor.as_deref())
            .map_or(0, |(_, n)| *n);
    }
    result.sensors.retain(|s| s.files > 0 || s.rsts > 0);
    let mut summary = counted.finish(summary::run_inputs(&result));
    let join = join.map(rstscope_join::Matches::into_report);
    record.insert("rows".into(), count.into());
    record.insert("warnings".into(), json!(msgs.warnings));
    let mut conn_rst_rows = None;
    let mut carry_save_seconds = None;
    let written = (|| -> std::io::Result<std::path::PathBuf> {
        let mut files = vec![log?];
        if let (true, Some(j)) = (s.enrich_conn, &join) {
            let (staged, rows) = stage_conn_rst(&s.out, &spec, &conn_logs, &j.joined, open, close)?;
            files.push(staged);
            conn_rst_rows = Some(rows);
        }
        if let Some(j) = &join {
            summary::add_join(&mut summary, j, conn_rst_rows);
        }
        if let Some(bytes) = peak_rss_bytes() {
            summary.json["peak_rss_bytes"] = bytes.into();
        }
        let outputs: Vec<String> = [
            Some(spec.file_name("reset")),
            conn_rst_rows.map(|_| spec.file_name("conn_rst")),
            Some(spec.summary_name()),
            Some(spec.report_name()),
        ]
        .into_iter()
        .flatten()
        .collect();
        record.insert("outputs".into(), json!(outputs));
        summary.json["run"] = serde_json::Value::Object(record.clone());
        files.push(stage_summary(&s.out, &spec.summary_name(), &summary.json)?);
        let page = crate::report::render_page(&timeline, &summary);
        files.push(stage(&s.out, &spec.report_name(), false, |out| {
            out.write_all(page.as_bytes())
        })?);
        // Absolute: the run that finishes them may start elsewhere.
        let renames: Vec<_> = files
            .iter()
            .map(|f| {
                let (tmp, fin) = f.paths();
                let abs = |p: std::path::PathBuf| std::path::absolute(&p).unwrap_or(p);
                (abs(tmp), abs(fin))
            })
            .collect();
        let path = commit_all_after(files, || {
            if let (Some(st), Some(p)) = (state.as_mut(), &s.state) {
                // Inputs read to their end, and those that failed (with their error: not
                // read again until they change); the carry; and the renames about to be
                // done, for a run that finds them undone.
                for f in &result.files {
                    st.record(&f.input.path, f.error().map(|e| e.to_string()));
                }
                st.runs += 1;
                st.prune(std::time::SystemTime::now());
                let t0 = std::time::Instant::now();
                st.stage_carry(p, &result.carries)?;
                st.commit = Some(crate::state::PendingCommit { renames });
                st.save(p)?;
                carry_save_seconds = Some(t0.elapsed().as_secs_f64());
            }
            Ok(())
        })?
        .remove(0);
        if let (Some(st), Some(p)) = (&state, &s.state) {
            st.remove_old_carries(p);
        }
        Ok(path)
    })();
    if let Some(t) = carry_save_seconds {
        record.insert("carry_save_seconds".into(), json!((t * 1e4).round() / 1e4));
    }
    let path = match written {
        Ok(path) => path,
        Err(source) => {
            record.insert("outputs".into(), json!([]));
            return Err(RunError::WriteLogs {
                dir: s.out.clone(),
                source,
            });
        }
    };
    let packets: u64 = result.files.iter().map(|f| f.decode.packets).sum();
    for line in summary::table(&summary).lines() {
        msgs.info(line);
    }
    if let Some(j) = &join {
        msgs.info(format_args!(
            "conn.log join: {} RSTs matched, {} kept rstscope's uid ({} conn.log rows read)",
            j.matched,
            j.unmatched,
            j.logs.iter().map(|l| l.rows).sum::<u64>()
        ));
    }
    let carried = if s.state.is_some() {
        format!(", {carried_out} carried to the next run")
    } else {
        String::new()
    };
    msgs.info(format_args!(
        "rstscope: {} RSTs in {} packets from {} files, {} connections{carried} -> {}",
        count,
        packets,
        result.files.len(),
        result.flow.connections,
        path.display()
    ));
    // The process ends now: freeing every event's strings one by one would only delay the
    // exit (tens of milliseconds on large runs); the OS takes the memory back at once.
    std::mem::forget(result);
    Ok(())
}

/// This process's peak resident memory so far (Linux: VmHWM), for the summary: nightly runs
/// are watched for it, and the hostile-capture tests bound it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A path as the run record writes it: bytes that are not UTF-8 as `\xNN` (as the summary and
/// the JSON logs write names), not replaced.
fn path_text(path: &std::path::Path) -> String {
    crate::name_text(crate::name_bytes(path.as_os_str())).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a run told its reporter, by kind.
    #[derive(Default)]
    struct Told {
        lines: Vec<(&'static str, String)>,
        reading: Vec<usize>,
    }

    impl Reporter for Told {
        fn info(&mut self, text: &dyn Display) {
            self.lines.push(("info", text.to_string()));
        }
        fn notice(&mut self, text: &dyn Display) {
            self.lines.push(("notice", text.to_string()));
        }
        fn warning(&mut self, text: &dyn Display) {
            self.lines.push(("warning", text.to_string()));
        }
        fn error(&mut self, text: &dyn Display) {
            self.lines.push(("error", text.to_string()));
        }
        fn reading(&mut self, files: &[InputFile]) -> Option<Progress> {
            self.reading.push(files.len());
            None
        }
    }

    fn settings(inputs: Vec<PathBuf>, out: PathBuf) -> Settings {
        Settings {
            inputs,
            follow: false,
            sensor_from: SensorFrom::Dir,
            shard: None,
            out,
            output: OutputSpec::default(),
            archive_names: false,
            conn_log: Vec::new(),
            enrich_conn: false,
            options: RunOptions {
                threads: 1,
                ..RunOptions::default()
            },
            state: None,
            finish: false,
            retry_failed: false,
            discard_carry: false,
            min_age: None,
        }
    }

    fn records(out: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(out.join(RUNS_LOG))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_run_writes_its_logs_tells_the_reporter_and_records_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let sample =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sample.pcap");
        let bad = dir.path().join("notes.pcap");
        std::fs::write(&bad, b"not a capture at all, but named like one").unwrap();
        let s = settings(vec![sample, bad], dir.path().join("out"));
        let mut run = Run::start(&s, &["x.pcap".into()]).unwrap();
        let mut told = Told::default();
        run.process(&mut told).unwrap();
        run.finish(1).unwrap();
        assert_eq!(told.reading, [2]);
        let log = std::fs::read_to_string(dir.path().join("out/reset.log")).unwrap();
        let rows = log.lines().filter(|l| !l.starts_with('#')).count();
        assert!(rows > 0, "{log}");
        assert!(
            told.lines
                .iter()
                .any(|(k, t)| *k == "error" && t.contains("notes.pcap")),
            "{:?}",
            told.lines
        );
        let last = told.lines.last().unwrap();
        assert!(
            last.0 == "info" && last.1.contains(&format!("{rows} RSTs")),
            "{last:?}"
        );
        let rec = records(&s.out);
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0]["exit_status"], 1);
        assert_eq!(rec[0]["rows"], rows);
        assert_eq!(rec[0]["args"], serde_json::json!(["x.pcap"]));
        assert_eq!(rec[0]["files_failed"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_run_without_captures_fails_and_still_records_itself() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let s = settings(vec![empty], dir.path().join("out"));
        let mut run = Run::start(&s, &[]).unwrap();
        let err = run.process(&mut Told::default()).unwrap_err();
        assert!(matches!(err, RunError::NoCaptures), "{err}");
        run.finish(2).unwrap();
        let rec = records(&s.out);
        assert_eq!(rec[0]["exit_status"], 2);
        assert_eq!(rec[0]["outputs"], serde_json::json!([]));
        // A second run while the first holds the lock is refused.
        let first = Run::start(&s, &[]).unwrap();
        assert!(matches!(
            Run::start(&s, &[]),
            Err(RunError::Lock(crate::error::LockError::Held(_)))
        ));
        drop(first);
    }
}
