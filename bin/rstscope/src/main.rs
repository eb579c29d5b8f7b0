//! rstscope: find every TCP reset in packet captures and write Zeek-style logs.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use rstscope::output::{write_conn_rst, write_reset_log, write_summary, Format, OutputSpec};
use rstscope::{discover, process_all, summary, RunOptions};
use rstscope_capture::PlainAccess;
use rstscope_flow::FlowConfig;
use rstscope_reset::EventOptions;

/// Exit statuses (also in README and --help).
const EXIT_OK: u8 = 0;
const EXIT_SOME_ERRORS: u8 = 1;
const EXIT_FAILED: u8 = 2;

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

Exit status:
  0  all inputs processed
  1  finished, but some inputs had errors (each reported on stderr with file and offset)
  2  usage error, nothing could be processed, or the log could not be written"
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

    /// Read plain captures through a buffer instead of memory-mapping them (for files that may
    /// change while being read).
    #[arg(long)]
    no_mmap: bool,

    /// No summary on stderr (errors are still reported).
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ExitCode::from(run(&cli))
}

fn run(cli: &Cli) -> u8 {
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let (files, problems) = discover(&cli.inputs);
    let mut had_errors = false;
    for p in &problems {
        if p.is_error() {
            had_errors = true;
            let _ = writeln!(err, "rstscope: error: {p}");
        } else if !cli.quiet {
            let _ = writeln!(err, "rstscope: notice: {p}");
        }
    }
    if files.is_empty() {
        let _ = writeln!(
            err,
            "rstscope: error: no capture files found in the inputs given"
        );
        return EXIT_FAILED;
    }
    let opts = RunOptions {
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
        threads: cli.threads.unwrap_or(0),
    };
    let result = process_all(&files, &opts);
    let mut any_read = false;
    for f in &result.files {
        if let Some(e) = f.error() {
            had_errors = true;
            let _ = writeln!(
                err,
                "rstscope: error: {}: {e}{}",
                f.input.path.display(),
                if f.read.packets > 0 {
                    format!(" ({} packets before it were read)", f.read.packets)
                } else {
                    String::new()
                }
            );
        }
        if f.read.packets > 0 || f.error().is_none() {
            any_read = true;
        }
        for (lt, n) in &f.decode.unknown_linktypes {
            let _ = writeln!(
                err,
                "rstscope: warning: {}: {n} packets of unsupported link type {lt} skipped",
                f.input.path.display()
            );
        }
    }
    if !any_read {
        let _ = writeln!(err, "rstscope: error: none of the inputs could be read");
        return EXIT_FAILED;
    }
    let spec = OutputSpec {
        format: match cli.format {
            FormatArg::Tsv => Format::Tsv,
            FormatArg::Json => Format::Json,
            FormatArg::Csv => Format::Csv,
        },
        gzip: cli.gzip,
        iso8601: matches!(cli.json_timestamps, JsonTimestamps::Iso8601),
    };
    let mut result = result;
    let open = result.first_ts.unwrap_or(0);
    let close = result.last_ts.unwrap_or(open);

    // Join with the site's conn.log.
    let mut join = None;
    let mut conn_logs = Vec::new();
    if !cli.conn_log.is_empty() {
        let (logs, problems) = rstscope_join::discover_conn_logs(&cli.conn_log);
        for p in &problems {
            had_errors = true;
            let _ = writeln!(err, "rstscope: error: {p}");
        }
        let report = rstscope_join::join(&mut result.events, &logs);
        for l in &report.logs {
            if let Some(e) = &l.error {
                had_errors = true;
                let _ = writeln!(err, "rstscope: error: {}: {e}", l.path.display());
            }
            for m in &l.first_malformed {
                let _ = writeln!(err, "rstscope: warning: {m}");
            }
            if l.malformed > l.first_malformed.len() as u64 {
                let _ = writeln!(
                    err,
                    "rstscope: warning: {}: {} malformed lines in all",
                    l.path.display(),
                    l.malformed
                );
            }
        }
        conn_logs = logs;
        join = Some(report);
    }

    let mut summary = summary::build(&result);
    let mut conn_rst_rows = None;
    let written = (|| -> std::io::Result<std::path::PathBuf> {
        let path = write_reset_log(&cli.out, &spec, &result.events, open, close)?;
        if let (true, Some(j)) = (cli.enrich_conn, &join) {
            let (_, rows) = write_conn_rst(&cli.out, &spec, &conn_logs, &j.joined, open, close)?;
            conn_rst_rows = Some(rows);
        }
        if let Some(j) = &join {
            summary::add_join(&mut summary, j, conn_rst_rows);
        }
        write_summary(&cli.out, &summary.json)?;
        Ok(path)
    })();
    match written {
        Ok(path) => {
            if !cli.quiet {
                let packets: u64 = result.files.iter().map(|f| f.decode.packets).sum();
                let _ = write!(err, "{}", summary::table(&summary));
                if let Some(j) = &join {
                    let _ = writeln!(
                        err,
                        "conn.log join: {} RSTs matched, {} kept rstscope's uid ({} conn.log rows read)",
                        j.matched,
                        j.unmatched,
                        j.logs.iter().map(|l| l.rows).sum::<u64>()
                    );
                }
                let _ = writeln!(
                    err,
                    "rstscope: {} RSTs in {} packets from {} files, {} connections -> {}",
                    result.events.len(),
                    packets,
                    result.files.len(),
                    result.flow.connections,
                    path.display()
                );
            }
        }
        Err(e) => {
            let _ = writeln!(
                err,
                "rstscope: error: cannot write the logs in {}: {e}",
                cli.out.display()
            );
            return EXIT_FAILED;
        }
    }
    if had_errors {
        EXIT_SOME_ERRORS
    } else {
        EXIT_OK
    }
}
