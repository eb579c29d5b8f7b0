//! rstscope: find every TCP reset in packet captures and write Zeek-style logs.

mod messages;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use rstscope_capture::{InflateCap, PlainAccess};
use rstscope_engine::output::{Format, OutputSpec};
use rstscope_engine::run::{Reporter, Run, Settings};
use rstscope_engine::{Progress, RunOptions, SensorFrom};
use rstscope_flow::FlowConfig;
use rstscope_reset::EventOptions;

use messages::{Fatal, Messages};

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

    /// Memory for rows waiting to be sorted (64M, 1G, 500K; bytes without a unit); past it,
    /// sorted runs go to temporary files and are merged when the logs are written. Output
    /// bytes never depend on it.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    sort_memory: u64,

    /// Directory for the sort's temporary files (default: the output directory). They are
    /// unnamed (deleted while open): a killed run leaves nothing behind.
    #[arg(long, value_name = "DIR")]
    tmp_dir: Option<PathBuf>,

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

fn run_merge(m: &MergeCli, msgs: &mut Messages) -> Result<(), Fatal> {
    let settings = rstscope_engine::merge::MergeSettings {
        dirs: m.dirs.clone(),
        out: m.out.clone(),
        state: m.state.clone(),
        from_state: m.from_state.clone(),
    };
    let (rows, shards) = rstscope_engine::merge::merge_shards(&settings, |n| msgs.notice(n))
        .map_err(Fatal::Merge)?;
    msgs.info(format_args!(
        "rstscope merge: {rows} RSTs from {shards} shards"
    ));
    Ok(())
}

/// Flags turned into what they mean for a run (ripgrep's low-level arguments → high-level
/// ones): the checks clap cannot make are made here, once.
fn settings(cli: &Cli) -> Settings {
    Settings {
        inputs: cli.inputs.clone(),
        follow: cli.follow,
        sensor_from: match cli.sensor_from {
            SensorArg::Dir => SensorFrom::Dir,
            SensorArg::Prefix => SensorFrom::Prefix,
            SensorArg::None => SensorFrom::None,
        },
        shard: cli.shard,
        out: cli.out.clone(),
        output: OutputSpec {
            format: match cli.format {
                FormatArg::Tsv => Format::Tsv,
                FormatArg::Json => Format::Json,
                FormatArg::Csv => Format::Csv,
            },
            gzip: cli.gzip,
            iso8601: matches!(cli.json_timestamps, JsonTimestamps::Iso8601),
            stamp: None,
        },
        archive_names: cli.archive_names,
        conn_log: cli.conn_log.clone(),
        enrich_conn: cli.enrich_conn,
        options: RunOptions {
            progress: None,
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
            sort_memory: usize::try_from(cli.sort_memory).unwrap_or(usize::MAX),
            tmp_dir: cli.tmp_dir.clone(),
        },
        state: cli.state.clone(),
        finish: cli.finish,
        retry_failed: cli.retry_failed,
        discard_carry: cli.discard_carry,
        min_age: cli.min_age,
    }
}

/// The run: its messages, its run record, and its exit status.
fn run(cli: &Cli, msgs: &mut Messages) -> u8 {
    let settings = settings(cli);
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut run = match Run::start(&settings, &args) {
        Ok(r) => r,
        Err(e) => return msgs.finish(Err(Fatal::Run(e))),
    };
    let draw = match cli.progress {
        ProgressArg::Never => false,
        ProgressArg::Always => true,
        ProgressArg::Auto => !cli.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let mut console = Console {
        msgs,
        draw,
        bar: None,
    };
    let result = run.process(&mut console);
    let status = msgs.finish(result.map_err(Fatal::Run));
    match run.finish(status) {
        Ok(()) => status,
        Err(e) => msgs.finish(Err(Fatal::Run(e))),
    }
}

/// The terminal side of a run: its messages, and progress bars while reading.
struct Console<'a> {
    msgs: &'a mut Messages,
    draw: bool,
    bar: Option<indicatif::MultiProgress>,
}

impl Reporter for Console<'_> {
    fn info(&mut self, text: &dyn std::fmt::Display) {
        self.msgs.info(text);
    }
    fn notice(&mut self, text: &dyn std::fmt::Display) {
        self.msgs.notice(text);
    }
    fn warning(&mut self, text: &dyn std::fmt::Display) {
        self.msgs.warning(text);
    }
    fn error(&mut self, text: &dyn std::fmt::Display) {
        self.msgs.error(text);
    }
    fn reading(&mut self, files: &[rstscope_engine::InputFile]) -> Option<Progress> {
        if !self.draw {
            return None;
        }
        let (multi, progress) = progress_bar(files);
        self.bar = Some(multi);
        Some(progress)
    }
    fn reading_done(&mut self) {
        if let Some(b) = self.bar.take() {
            let _ = b.clear();
        }
    }
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

/// Parse a size: `500K`, `64M`, `1G` (also `KiB`, `MiB`, `GiB`; powers of 1024), or bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix("ib").unwrap_or(&t);
    let (num, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        Some('b') => (&t[..t.len() - 1], 0),
        _ => (t, 0),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("invalid size {s:?} (examples: 500K, 64M, 1G)"))
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
    use super::{parse_duration, parse_size};
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("500k").unwrap(), 500 << 10);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
