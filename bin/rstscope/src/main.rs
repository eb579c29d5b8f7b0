//! rstscope: find every TCP reset in packet captures and write Zeek-style logs.

mod messages;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use rstscope_capture::{InflateCap, PlainAccess};
use rstscope_engine::output::{
    commit_all, commit_all_after, stage, stage_conn_rst, stage_reset_log, stage_summary, Format,
    OutputSpec,
};
use rstscope_engine::{summary, RunOptions};
use rstscope_flow::FlowConfig;
use rstscope_reset::EventOptions;

use messages::{Fatal, InputFailed, Messages};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SensorArg {
    /// the directory a file sits in under its INPUT (files at the top: the unnamed sensor)
    Dir,
    /// the file name up to a separator followed by a digit (edge1-20261124-0000.pcap: edge1)
    Prefix,
    /// one sensor for everything
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProgressArg {
    /// bars on a terminal, nothing otherwise (cron)
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    /// Zeek ASCII TSV (reset.log)
    Tsv,
    /// Zeek JSON lines (reset.log)
    Json,
    /// CSV with a header row (reset.csv)
    Csv,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum JsonTimestamps {
    /// seconds since the epoch, as a number (Zeek's default, JSON::TS_EPOCH)
    Epoch,
    /// ISO 8601 strings in UTC (JSON::TS_ISO8601)
    Iso8601,
}

#[derive(Debug, Parser)]
#[command(
    name = "rstscope",
    version,
    about = "Find every TCP reset in packet captures, explain it, and write Zeek-style logs.",
    after_help = "\
Examples:
  rstscope capture.pcap                     write ./reset.log (Zeek TSV)
  rstscope -o /var/log/rst /archive/2026-11-24/
                                            every capture under the directory, recursively
  rstscope --format json -o out a.pcap.gz b.pcapng.zst
  zeek-cut ts id.orig_h id.resp_h flags seq < reset.log

Inputs are recognised by their magic bytes (pcap, pcapng, or gzip/zstd of either), not names.
Files in a directory that are not captures are skipped with a notice.

Nightly cron (one stream across runs: live connections are carried to the next run beside the
state, each row is delivered once, in logs named by their packet-time window; every run appends
a JSON line to DIR/rstscope_runs.log):
  rstscope -q --state /var/lib/rstscope/state.json --min-age 5m --gzip \\
      --conn-log /var/log/zeek/2026-11-24 -o /var/log/rst /archive/2026-11-24/

Exit status:
  0   all inputs processed (or nothing new with --state / --min-age)
  1   finished, but some inputs had errors (each reported on stderr with file and offset)
  2   usage error, or nothing could be processed, or the --state file or its carry is unreadable
  74  the logs, the state or the run record could not be written (nothing is left under a final name)
  75  another rstscope run holds the lock on the output directory; retry later"
)]
struct Cli {
    /// Capture files or directories (searched recursively).
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// Directory for the logs.
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    out: PathBuf,

    /// Log format.
    #[arg(long, value_enum, default_value = "tsv")]
    format: FormatArg,

    /// Zeek conn.log to join with (TSV or JSON lines, plain or .gz; a directory is searched for
    /// conn*.log[.gz] files). Repeatable. Each RST gets the uid of its conn.log row.
    #[arg(long, value_name = "PATH")]
    conn_log: Vec<PathBuf>,

    /// Also write conn_rst.log: the joined conn.log rows that had RSTs, with rst_* columns.
    #[arg(long, requires = "conn_log")]
    enrich_conn: bool,

    /// Compress the logs (reset.log.gz, conn_rst.log.gz, reset.csv.gz).
    #[arg(long)]
    gzip: bool,

    /// How JSON logs write timestamps.
    #[arg(long, value_enum, default_value = "epoch")]
    json_timestamps: JsonTimestamps,

    /// Worker threads (default: all cores). Output bytes never depend on it.
    #[arg(short = 'j', long, value_name = "N")]
    threads: Option<usize>,

    /// Plain captures at least this many bytes may be cut into byte ranges tracked on several
    /// threads (for tests and measurements).
    #[arg(long, value_name = "BYTES", default_value_t = rstscope_engine::SPLIT_MIN, hide = true)]
    split_min: u64,

    /// Community ID seed.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    community_id_seed: u16,

    /// Most payload bytes written per RST.
    #[arg(long, value_name = "BYTES", default_value_t = 256)]
    max_payload: usize,

    /// Most connections tracked at once; beyond it the connection closest to expiry is
    /// finished early (counted in the summary as connections_evicted).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    max_connections: usize,

    /// Most a gzip or zstd capture may decompress to, as a multiple of its compressed size
    /// (never less than 64 MiB); past it the file ends with an error, as a truncated one does,
    /// after its packets before. 0: no cap.
    #[arg(long, value_name = "RATIO", default_value_t = 1000)]
    max_inflate: u64,

    /// Read plain captures through a buffer instead of memory-mapping them (for files that may
    /// change while being read).
    #[arg(long)]
    no_mmap: bool,

    /// One stream across runs: remember processed inputs (path, size, mtime, hash of the first
    /// 64 KiB) in FILE and skip them later; carry each sensor's live connections to the next run
    /// (FILE.carry.N); deliver every row once, in logs named by their window (plus the run's
    /// number when an earlier run used the name). Runs sharing FILE take turns.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,

    /// With --state: end every connection at the end of this run and deliver its rows (the
    /// last run over an archive, or an ad-hoc run), instead of carrying live connections to
    /// the next run.
    #[arg(long, requires = "state")]
    finish: bool,

    /// With --state: read again the inputs an earlier run recorded as failed (otherwise a
    /// failed file is not read again until its size, mtime or first 64 KiB change).
    #[arg(long, requires = "state")]
    retry_failed: bool,

    /// With --state: start every sensor stream cold, dropping the carried connections (use
    /// when the carry file is lost or unreadable; their rows are lost).
    #[arg(long, requires = "state")]
    discard_carry: bool,

    /// Skip capture files modified less than this long ago (still being written): 90s, 5m, 1h.
    #[arg(long, value_name = "AGE", value_parser = parse_duration)]
    min_age: Option<std::time::Duration>,

    /// Name the logs by their packet-time window, Zeek-archive style:
    /// reset.2026-11-24-00-00-00_2026-11-24-23-59-59.log (UTC). Implied by --state.
    #[arg(long)]
    archive_names: bool,

    /// Follow symbolic links found in input directories (otherwise they are skipped with a
    /// notice).
    #[arg(short = 'L', long)]
    follow: bool,

    /// How capture files are grouped into sensors. Each sensor's files are one stream ordered by
    /// first packet time (connections cross file boundaries); sensors are tracked separately
    /// and named in the `sensor` column.
    #[arg(long, value_enum, default_value = "dir")]
    sensor_from: SensorArg,

    /// Process only shard I of N: whole sensors are assigned by a stable hash of their name, so
    /// every sensor's files stay together. `auto/N` takes I from JOB_COMPLETION_INDEX
    /// (Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID. Combine the shards' output directories
    /// with `rstscope merge`.
    #[arg(long, value_name = "I/N", value_parser = rstscope_engine::merge::parse_shard)]
    shard: Option<(u32, u32)>,

    /// Progress bars on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressArg,

    /// No summary on stderr (errors are still reported).
    #[arg(short, long)]
    quiet: bool,
}

/// `rstscope merge`: combine shard output directories.
#[derive(Debug, Parser)]
#[command(
    name = "rstscope merge",
    about = "Combine the output directories of `rstscope --shard I/N` runs into what one run over every input would have written (reset.log and reset_summary.json; TSV or JSON, plain or .gz).",
    after_help = "Example:\n  rstscope merge -o /var/log/rst/2026-11-24 shards/0 shards/1 shards/2 shards/3"
)]
struct MergeCli {
    /// Shard output directories.
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,

    /// Directory for the merged logs.
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    out: PathBuf,

    /// Write the union of the shards' --state files (given with --from-state) to FILE.
    #[arg(long, value_name = "FILE", requires = "from_state")]
    state: Option<PathBuf>,

    /// A shard's --state file (repeatable).
    #[arg(long, value_name = "FILE")]
    from_state: Vec<PathBuf>,
}

fn main() -> ExitCode {
    // A file-size limit (`ulimit -f`) must be a write error like a full disk (EFBIG: exit 74,
    // temporaries removed), not a SIGXFSZ that kills the run and leaves a temporary file.
    #[cfg(unix)]
    // SAFETY: sets the disposition of one signal to "ignore" before any thread is started; no
    // handler code is installed.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Usage errors are clap's: it prints them and exits with status 2.
    let status = if args.get(1).is_some_and(|a| a == "merge") {
        args.remove(1);
        let m = MergeCli::parse_from(args);
        let mut msgs = Messages::stderr(false);
        let result = run_merge(&m, &mut msgs);
        msgs.finish(result)
    } else {
        let cli = Cli::parse();
        let mut msgs = Messages::stderr(cli.quiet);
        run(&cli, &mut msgs)
    };
    ExitCode::from(status)
}

/// Take the output directory's lock (held until the file is dropped): another run holding it
/// is exit status 75 (retry later), a lock that cannot be taken at all 74.
fn lock_out(dir: &std::path::Path) -> Result<std::fs::File, Fatal> {
    rstscope_engine::lock::lock_output_dir(dir).map_err(Fatal::Lock)
}

fn run_merge(m: &MergeCli, msgs: &mut Messages) -> Result<(), Fatal> {
    let _lock = lock_out(&m.out)?;
    let mut shards = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for d in &m.dirs {
        // A shard given twice would give its rows twice.
        if !seen.insert(std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())) {
            msgs.notice(format_args!(
                "{}: skipped, the same shard was already given",
                d.display()
            ));
            continue;
        }
        shards.push(rstscope_engine::merge::open_shard(d).map_err(Fatal::Shard)?);
    }
    let format = shards[0].format;
    let gzip = shards[0].gzip;
    if shards.iter().any(|s| s.format != format || s.gzip != gzip) {
        return Err(Fatal::MixedShards);
    }
    // The shards' state files are read before anything is written: one that cannot be read is
    // refused as a run refuses its --state (exit status 2), with the merged logs not written.
    let mut state = None;
    if m.state.is_some() {
        let mut st = rstscope_engine::state::State::default();
        for f in &m.from_state {
            st.files.extend(
                rstscope_engine::state::State::load(f)
                    .map_err(Fatal::State)?
                    .files,
            );
        }
        state = Some(st);
    }
    let inputs = rstscope_engine::merge::merged_inputs_of(shards.iter().map(|s| &s.summary));
    // Each shard's log is in log order: merged as read, not loaded and sorted.
    let mut merged = rstscope_engine::merge::MergedRows::new(shards);
    let events = merged
        .by_ref()
        .collect::<Result<Vec<_>, _>>()
        .map_err(Fatal::Shard)?;
    let threads = RunOptions::default().resolved_threads();
    let sec = 1_000_000_000i64;
    let open = merged.open().map(|t| t * sec);
    let close = merged.close().map(|t| t * sec);
    let open = open.or(events.first().map(|e| e.ts_ns)).unwrap_or(0);
    let close = close.or(events.last().map(|e| e.ts_ns)).unwrap_or(open);
    let summary = summary::from_parts(&events, inputs);
    let spec = OutputSpec {
        format,
        gzip,
        ..OutputSpec::default()
    };
    let written = (|| -> std::io::Result<()> {
        let log = stage_reset_log(&m.out, &spec, &events, open, close, threads)?;
        let summary_file = stage_summary(&m.out, &spec.summary_name(), &summary.json)?;
        let page = rstscope_engine::report::render(&events, &summary);
        let report_file = stage(&m.out, &spec.report_name(), false, |out| {
            out.write_all(page.as_bytes())
        })?;
        commit_all(vec![log, summary_file, report_file])?;
        if let (Some(st), Some(p)) = (&state, &m.state) {
            st.save(p)?;
        }
        Ok(())
    })();
    written.map_err(|source| Fatal::WriteMerged {
        dir: m.out.clone(),
        source,
    })?;
    msgs.info(format_args!(
        "rstscope merge: {} RSTs from {} shards",
        events.len(),
        merged.shards().len()
    ));
    Ok(())
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

/// The run: its messages, its run record, and its exit status.
fn run(cli: &Cli, msgs: &mut Messages) -> u8 {
    use serde_json::json;
    // Overlapping runs (a slow night, a manual re-run) must not clobber each other's logs.
    let _lock = match lock_out(&cli.out) {
        Ok(l) => l,
        Err(f) => return msgs.finish(Err(f)),
    };
    let mut record = serde_json::Map::new();
    record.insert(
        "version".into(),
        concat!("rstscope ", env!("CARGO_PKG_VERSION")).into(),
    );
    record.insert("start".into(), now_iso8601().into());
    record.insert(
        "args".into(),
        std::env::args_os()
            .skip(1)
            .map(|a| rstscope_engine::name_text(rstscope_engine::name_bytes(&a)).into_owned())
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
        ("outputs", json!([])),
        ("warnings", json!([])),
    ] {
        record.insert(k.into(), v);
    }
    let result = run_locked(cli, &mut record, msgs);
    let status = msgs.finish(result);
    record.insert("warnings".into(), json!(msgs.warnings()));
    record.insert("end".into(), now_iso8601().into());
    record.insert("exit_status".into(), status.into());
    let mut line = serde_json::Value::Object(record).to_string();
    line.push('\n');
    let appended = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cli.out.join(RUNS_LOG))?;
        let before = f.metadata()?.len();
        // One whole line or none: a write cut short (a full disk) is taken back.
        if let Err(e) = f.write_all(line.as_bytes()).and_then(|()| f.sync_data()) {
            let _ = f.set_len(before);
            return Err(e);
        }
        Ok(())
    })();
    match appended {
        Ok(()) => status,
        Err(source) => msgs.finish(Err(Fatal::RunRecord {
            path: cli.out.join(RUNS_LOG),
            source,
        })),
    }
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

/// The run, under the output directory's lock: fills the run record; its messages (and the
/// warnings, also printed with -q, for the record) go to `msgs`.
fn run_locked(
    cli: &Cli,
    record: &mut serde_json::Map<String, serde_json::Value>,
    msgs: &mut Messages,
) -> Result<(), Fatal> {
    use serde_json::json;
    // The state: locked for the whole run (runs sharing it take turns), then a commit a killed
    // run left half done is finished before stale temporaries are removed.
    let _state_lock = match &cli.state {
        Some(p) => match rstscope_engine::lock::lock_state(p, |lock| {
            msgs.notice(format_args!(
                "waiting for another run that holds {}",
                lock.display()
            ));
        }) {
            Ok(l) => Some(l),
            // (lock_state waits for a lock another run holds: only I/O errors come back.)
            Err(e) => return Err(Fatal::StateLock(e)),
        },
        None => None,
    };
    let mut state = match &cli.state {
        Some(p) => Some(rstscope_engine::state::State::load(p).map_err(Fatal::State)?),
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
    let stale = rstscope_engine::lock::remove_stale_temporaries(&cli.out);
    if stale > 0 {
        msgs.notice(format_args!(
            "removed {stale} temporary files an interrupted run left in {}",
            cli.out.display()
        ));
    }
    let carry_t0 = std::time::Instant::now();
    let carries = match (&state, &cli.state) {
        (Some(st), Some(p)) if !cli.discard_carry => st.load_carry(p).map_err(Fatal::Carry)?,
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
    if cli.state.is_some() {
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
    let (mut files, problems) = rstscope_engine::discover_following(&cli.inputs, cli.follow);
    rstscope_engine::assign_sensors(
        &mut files,
        match cli.sensor_from {
            SensorArg::Dir => rstscope_engine::SensorFrom::Dir,
            SensorArg::Prefix => rstscope_engine::SensorFrom::Prefix,
            SensorArg::None => rstscope_engine::SensorFrom::None,
        },
    );
    if let Some((i, n)) = cli.shard {
        files.retain(|f| rstscope_engine::merge::shard_of(f.sensor.as_deref(), n) == i);
        if files.is_empty() {
            msgs.info(format_args!("rstscope: shard {i}/{n} has no inputs"));
            return Ok(());
        }
    }
    let mut skipped_state = 0usize;
    let files: Vec<rstscope_engine::InputFile> = match &state {
        Some(st) => files
            .into_iter()
            .filter(|f| {
                let seen = st.seen(&f.path, cli.retry_failed);
                skipped_state += usize::from(seen);
                !seen
            })
            .collect(),
        None => files,
    };
    let (files, young) = match cli.min_age {
        Some(age) => rstscope_engine::inputs::split_by_age(files, age),
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
    let end = if cli.state.is_none() || cli.finish {
        rstscope_engine::StreamEnd::Finish
    } else {
        rstscope_engine::StreamEnd::Carry
    };
    let finishing_carry = end == rstscope_engine::StreamEnd::Finish && carried_in > 0;
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
        return Err(Fatal::NoCaptures);
    }
    let draw = match cli.progress {
        ProgressArg::Never => false,
        ProgressArg::Always => true,
        ProgressArg::Auto => !cli.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let bar = (draw && !files.is_empty()).then(|| progress_bar(&files));
    let opts = RunOptions {
        progress: bar.as_ref().map(|(_, p)| p.clone()),
        flow: FlowConfig {
            max_connections: cli.max_connections,
            events: EventOptions {
                community_id_seed: cli.community_id_seed,
                max_payload: cli.max_payload,
            },
            ..FlowConfig::default()
        },
        access: if cli.no_mmap {
            PlainAccess::Read
        } else {
            PlainAccess::Mmap
        },
        inflate: InflateCap::ratio(cli.max_inflate),
        threads: cli.threads.unwrap_or(0),
        split_min: cli.split_min.max(1),
    };
    let result = rstscope_engine::process_streams(&files, &opts, carries, end);
    if let Some((b, _)) = &bar {
        let _ = b.clear();
    }
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
            cli.state.as_deref().unwrap_or(std::path::Path::new("--state")).display(),
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
                        sensor.as_deref().map_or("(unnamed)".into(), rstscope_engine::name_text),
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
                    .map_or("(unnamed)".into(), rstscope_engine::name_text)
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
    record.insert("rows".into(), result.events.len().into());
    record.insert("carried_connections".into(), carried_out.into());
    record.insert("carried_rows".into(), carried_rows.into());
    record.insert("late_files".into(), late.into());
    if !any_read {
        return Err(Fatal::NothingRead);
    }
    let spec = OutputSpec {
        format: match cli.format {
            FormatArg::Tsv => Format::Tsv,
            FormatArg::Json => Format::Json,
            FormatArg::Csv => Format::Csv,
        },
        gzip: cli.gzip,
        iso8601: matches!(cli.json_timestamps, JsonTimestamps::Iso8601),
        stamp: None,
    };
    let mut result = result;
    // The window the logs cover: the packets read and the rows delivered (rows carried from
    // an earlier run may be older than this run's packets).
    let open = result
        .first_ts
        .into_iter()
        .chain(result.events.first().map(|e| e.ts_ns))
        .min()
        .or(carried_clock.filter(|&t| t != i64::MIN))
        .unwrap_or(0);
    let close = result
        .last_ts
        .into_iter()
        .chain(result.events.iter().map(|e| e.ts_ns).max())
        .max()
        .unwrap_or(open);
    // With --state every run delivers to files of its own: named by the window (as
    // --archive-names does), plus the run's number when an earlier run used the name.
    let stamp = (cli.archive_names || cli.state.is_some()).then(|| {
        let window = format!(
            "{}_{}",
            rstscope_zeeklog::format_rotation_time(open),
            rstscope_zeeklog::format_rotation_time(close)
        );
        match &state {
            Some(st) => {
                let used = names_used(&cli.out);
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
    if !cli.conn_log.is_empty() {
        let rstscope_join::ConnLogs {
            logs,
            errors: problems,
            notices,
        } = rstscope_join::discover_conn_logs(&cli.conn_log);
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
                    cli.conn_log
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            );
        }
        let report = rstscope_join::join(&mut result.events, &logs);
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
        join = Some(report);
    }

    // reset.log is rendered (on every thread, when there are several) while the summary is
    // counted, its bytes going to the disk as they are written; every output gets its final
    // name only once all are written and synced, in the order log, conn_rst.log, summary,
    // report — after the state (with the carry and the renames to come) is saved.
    let threads = opts.resolved_threads();
    let stage_log = || stage_reset_log(&cli.out, &spec, &result.events, open, close, threads);
    let (log, mut summary) = if threads > 1 {
        std::thread::scope(|scope| {
            let log = scope.spawn(stage_log);
            let summary = summary::build(&result);
            let log = log
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the log writer panicked")));
            (log, summary)
        })
    } else {
        (stage_log(), summary::build(&result))
    };
    record.insert("warnings".into(), json!(msgs.warnings()));
    let mut conn_rst_rows = None;
    let mut carry_save_seconds = None;
    let written = (|| -> std::io::Result<std::path::PathBuf> {
        let mut files = vec![log?];
        if let (true, Some(j)) = (cli.enrich_conn, &join) {
            let (staged, rows) =
                stage_conn_rst(&cli.out, &spec, &conn_logs, &j.joined, open, close)?;
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
        files.push(stage_summary(
            &cli.out,
            &spec.summary_name(),
            &summary.json,
        )?);
        let page = rstscope_engine::report::render(&result.events, &summary);
        files.push(stage(&cli.out, &spec.report_name(), false, |out| {
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
            if let (Some(st), Some(p)) = (state.as_mut(), &cli.state) {
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
                st.commit = Some(rstscope_engine::state::PendingCommit { renames });
                st.save(p)?;
                carry_save_seconds = Some(t0.elapsed().as_secs_f64());
            }
            Ok(())
        })?
        .remove(0);
        if let (Some(st), Some(p)) = (&state, &cli.state) {
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
            return Err(Fatal::WriteLogs {
                dir: cli.out.clone(),
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
    let carried = if cli.state.is_some() {
        format!(", {carried_out} carried to the next run")
    } else {
        String::new()
    };
    msgs.info(format_args!(
        "rstscope: {} RSTs in {} packets from {} files, {} connections{carried} -> {}",
        result.events.len(),
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
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Progress bars, fed from the reader threads through `RunOptions::progress`: an overall bar over
/// the capture bytes of all files, with rate and ETA, and below it one bar per file being read
/// (several at once when sensors are read in parallel), removed when the file is done.
fn progress_bar(
    files: &[rstscope_engine::InputFile],
) -> (indicatif::MultiProgress, rstscope_engine::Progress) {
    use std::collections::HashMap;
    use std::sync::Mutex;
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0))
        .collect();
    let total: u64 = sizes.iter().sum();
    let multi = indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr());
    let overall = multi.add(indicatif::ProgressBar::new(total));
    overall.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} ({msg})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    overall.set_message(format!("0/{} files", files.len()));
    let file_style =
        indicatif::ProgressStyle::with_template("  {bar:28} {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let names: Vec<String> = files
        .iter()
        .map(|f| rstscope_engine::name_text(&f.source).into_owned())
        .collect();
    let file_count = files.len();
    // Bytes counted so far per file (what the overall bar sums), bars of files being read,
    // and how many files are done.
    let state: Mutex<(Vec<u64>, HashMap<usize, indicatif::ProgressBar>, usize)> =
        Mutex::new((vec![0; files.len()], HashMap::new(), 0));
    let m = multi.clone();
    let cb = move |i: usize, done: u64, finished: bool| {
        let Ok(mut st) = state.lock() else { return };
        let (counted, bars, files_done) = &mut *st;
        let size = sizes.get(i).copied().unwrap_or(0);
        // Compressed files report decompressed bytes: cap at the file's size on disk; a file
        // that is done counts whole.
        let now = if finished { size } else { done.min(size) };
        if let Some(c) = counted.get_mut(i) {
            if now > *c {
                overall.inc(now - *c);
                *c = now;
            }
        }
        if finished {
            if let Some(b) = bars.remove(&i) {
                b.finish_and_clear();
                m.remove(&b);
            }
            *files_done += 1;
            overall.set_message(format!("{files_done}/{file_count} files"));
        } else {
            let b = bars.entry(i).or_insert_with(|| {
                let b = m.add(indicatif::ProgressBar::new(size));
                b.set_style(file_style.clone());
                b.set_message(
                    rstscope_engine::terminal_safe(names.get(i).map_or("", String::as_str))
                        .into_owned(),
                );
                b
            });
            b.set_position(now);
        }
    };
    (multi, rstscope_engine::Progress(std::sync::Arc::new(cb)))
}

/// A path as the run record writes it: bytes that are not UTF-8 as `\xNN` (as the summary and
/// the JSON logs write names), not replaced.
fn path_text(path: &std::path::Path) -> String {
    rstscope_engine::name_text(rstscope_engine::name_bytes(path.as_os_str())).into_owned()
}

/// Parse a duration: `90`, `90s`, `5m`, `2h`, `1d`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('d') => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| std::time::Duration::from_secs(n * mult))
        .map_err(|_| format!("invalid duration {s:?} (examples: 90s, 5m, 2h)"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("soon").is_err());
    }
}
