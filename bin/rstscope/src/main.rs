//! rstscope: find every TCP reset in packet captures and write Zeek-style logs.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use rstscope::output::{write_reset_log, write_summary, Format};
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
    let format = match cli.format {
        FormatArg::Tsv => Format::Tsv,
        FormatArg::Json => Format::Json,
        FormatArg::Csv => Format::Csv,
    };
    let open = result.first_ts.unwrap_or(0);
    let close = result.last_ts.unwrap_or(open);
    let summary = summary::build(&result);
    let written = write_reset_log(&cli.out, format, &result.events, open, close)
        .and_then(|path| write_summary(&cli.out, &summary.json).map(|_| path));
    match written {
        Ok(path) => {
            if !cli.quiet {
                let packets: u64 = result.files.iter().map(|f| f.decode.packets).sum();
                let _ = write!(err, "{}", summary::table(&summary));
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
                "rstscope: error: cannot write {}: {e}",
                cli.out.join(format.file_name()).display()
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
