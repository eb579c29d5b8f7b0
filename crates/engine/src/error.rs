//! The errors of the run's own files (the output directory's lock, the `--state` file and its
//! carry, the shard directories `rstscope merge` reads), each naming the file it concerns and
//! the line or row where there is one. Capture errors are `rstscope_capture::CaptureError`
//! (with their byte offset). Nothing here prints: `main.rs`'s `messages` module does, and
//! decides the exit status.

use std::io;
use std::path::PathBuf;

/// Why the lock of the output directory (or of a state file) could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds it.
    #[error("another rstscope run holds {}", .0.display())]
    Held(PathBuf),
    #[error("cannot lock {}: {}", .0.display(), .1)]
    Io(PathBuf, #[source] io::Error),
}

/// Why a `--state` file cannot be used. (A missing one is an empty state, not an error.)
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: cannot read state: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Not JSON, or not of the state's shape: `what` says where it differs.
    #[error("{}: not a rstscope state file: {what}", path.display())]
    NotState { path: PathBuf, what: String },
    #[error(
        "{}: state version {version}, newer than this rstscope reads (2): use the rstscope that wrote it",
        path.display()
    )]
    Newer { path: PathBuf, version: u64 },
}

/// What to do about a carry that cannot be read: it is never dropped silently.
fn carry_advice(connections: u64) -> String {
    format!(
        "restore it from a backup, or run once with --discard-carry to start the streams cold \
         (rows of the {connections} connections it held are lost)"
    )
}

/// Why the carry of live connections a state names cannot be read. `connections` is how many
/// the state says it held (their rows are lost if it is discarded).
#[derive(Debug, thiserror::Error)]
pub enum CarryError {
    #[error(
        "{}: cannot read the carry of live connections: {source}; {}",
        path.display(),
        carry_advice(*connections)
    )]
    Read {
        path: PathBuf,
        connections: u64,
        source: io::Error,
    },
    /// Its size or checksum is not what the state recorded.
    #[error(
        "{}: the carry of live connections is not the one {} recorded ({bytes} bytes, expected {expected}); {}",
        path.display(),
        state.display(),
        carry_advice(*connections)
    )]
    NotRecorded {
        path: PathBuf,
        state: PathBuf,
        bytes: u64,
        expected: u64,
        connections: u64,
    },
    #[error(
        "{}: cannot read the carry of live connections: {source}; {}",
        path.display(),
        carry_advice(*connections)
    )]
    Decode {
        path: PathBuf,
        connections: u64,
        source: rstscope_reset::codec::DecodeError,
    },
}

/// Why a shard directory cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("{}: no reset.log in this directory", dir.display())]
    NoLog { dir: PathBuf },
    #[error(
        "{}: {count} logs named by window; merge directories of one run each",
        dir.display()
    )]
    SeveralLogs { dir: PathBuf, count: usize },
    /// The directory or its log cannot be read.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A CSV log whose header row cannot be read.
    #[error("{}: {source}", path.display())]
    CsvHeader { path: PathBuf, source: csv::Error },
    /// A row of the log that is not a row rstscope writes.
    #[error("{}: {at}: {problem}", path.display())]
    Row {
        path: PathBuf,
        at: RowAt,
        problem: RowProblem,
    },
}

/// Where in a log: a line (TSV, JSON lines) or a CSV row (the header is row 1), 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAt {
    Line(u64),
    Row(u64),
}

impl std::fmt::Display for RowAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowAt::Line(n) => write!(f, "line {n}"),
            RowAt::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// What is wrong with a row of a shard's log.
#[derive(Debug, thiserror::Error)]
pub enum RowProblem {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("bad {0}")]
    Bad(&'static str),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Csv(#[from] csv::Error),
    /// The row sorts before the one above it: the log is not in rstscope's row order.
    #[error(
        "sorts before the row above it: not in log order (ts, source, frame) as rstscope writes it; \
         was the log edited or joined by hand?"
    )]
    OutOfOrder,
}

/// What ends a run before it has done its work. Each says what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The output directory's lock: held by another run, or not to be taken.
    #[error("{0}")]
    Lock(LockError),
    /// The `--state` file's lock.
    #[error("the state: {0}")]
    StateLock(LockError),
    #[error("{0}")]
    State(StateError),
    #[error("{0}")]
    Carry(CarryError),
    #[error("no capture files found in the inputs given")]
    NoCaptures,
    #[error("none of the inputs could be read")]
    NothingRead,
    #[error("cannot write the logs in {}: {source} (exit status 74)", dir.display())]
    WriteLogs { dir: PathBuf, source: io::Error },
    #[error("cannot append the run record to {}: {source} (exit status 74)", path.display())]
    RunRecord { path: PathBuf, source: io::Error },
}

/// What ends `rstscope merge` before it has written the merged logs.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The output directory's lock: held by another run, or not to be taken.
    #[error("{0}")]
    Lock(LockError),
    #[error("{0}")]
    State(StateError),
    #[error("{0}")]
    Shard(ShardError),
    #[error("the shards were written in different formats")]
    MixedShards,
    #[error("cannot write the merged logs in {}: {source} (exit status 74)", dir.display())]
    Write { dir: PathBuf, source: io::Error },
}
