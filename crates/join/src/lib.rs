//! Joining reset events with a site's Zeek conn.log.
//!
//! The conn.log files are streamed twice at most and only the rows whose connection has a RST
//! are kept, so memory follows the number of RST connections, not the size of the logs nor the
//! number of RSTs: first the endpoints (and Community IDs) of the RSTs' connections are
//! collected from the rows streamed once ([`RstKeys`]), then every conn.log row is checked
//! against them, then the rows streamed again each take their row ([`Matches`]; [`join`] does
//! both over rows in memory); `--enrich-conn` streams the logs again to copy the joined rows
//! out with RST columns appended.

pub mod enrich;
pub mod read;
pub mod stream;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rstscope_reset::ResetEvent;

pub use read::{read_conn_log, unescape, Malformed, Row};
pub use stream::{Matches, RstKeys};

/// Zeek's `tcp_close_delay`: a RST up to this long after the row's last packet still belongs
/// to it.
pub const CLOSE_DELAY_NS: i64 = 5_000_000_000;
/// conn.log times are written to the microsecond: allow that much slack at the window's start.
pub(crate) const TS_SLACK_NS: i64 = 1_000;

/// Find conn.log files: files named on the command line, and in directories (recursively, in
/// name order) files whose name starts with `conn` and ends in `.log`, `.log.gz`, `.json` or
/// `.json.gz` (Zeek's rotated `conn.2026-11-24-00-00-00.log.gz`, zeekctl's
/// `conn.00:00:00-01:00:00.log.gz`) — except rstscope's own `conn_rst*` logs.
pub fn discover_conn_logs(paths: &[PathBuf]) -> ConnLogs {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut notices = Vec::new();
    fn walk(
        dir: &Path,
        out: &mut Vec<PathBuf>,
        problems: &mut Vec<String>,
        notices: &mut Vec<String>,
    ) {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                problems.push(format!("{}: cannot read directory: {e}", dir.display()));
                return;
            }
        };
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out, problems, notices);
            } else if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                let ends = [".log", ".log.gz", ".json", ".json.gz"]
                    .iter()
                    .any(|s| name.ends_with(s));
                // Never our own conn_rst.log (an output directory that is also the conn.log
                // directory would join it again every run), nor a hidden temporary.
                if name.starts_with("conn") && !name.starts_with("conn_rst") && ends {
                    // A FIFO (or socket, device) named like a log would block the run.
                    if std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
                        out.push(p);
                    } else {
                        notices.push(format!(
                            "{}: skipped, not a regular file (a FIFO, socket or device)",
                            p.display()
                        ));
                    }
                }
            }
        }
    }
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out, &mut problems, &mut notices);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            problems.push(format!("{}: no such conn.log", p.display()));
        }
    }
    // The same log reached twice (named twice, overlapping directories) would be joined twice.
    let mut seen = std::collections::HashSet::new();
    let mut logs = Vec::with_capacity(out.len());
    for p in out {
        let canonical = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if seen.insert(canonical) {
            logs.push(p);
        } else {
            notices.push(format!(
                "{}: skipped, the same conn log was already given",
                p.display()
            ));
        }
    }
    ConnLogs {
        logs,
        errors: problems,
        notices,
    }
}

/// What [`discover_conn_logs`] found.
#[derive(Debug, Default)]
pub struct ConnLogs {
    pub logs: Vec<PathBuf>,
    /// Paths that could not be read: errors.
    pub errors: Vec<String>,
    /// Files passed over (not regular files): notices.
    pub notices: Vec<String>,
}

/// Parse a conn.log time: `1071580904.891921` (TSV, or a JSON number's text) or ISO 8601
/// (`2008-07-09T16:13:30.005432Z`). None for masked or unparsable values.
pub fn parse_time(s: &str) -> Option<i64> {
    if s.contains('T') && s.contains('-') {
        let t =
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        return i64::try_from(t.unix_timestamp_nanos()).ok();
    }
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let exponent = s.contains(['e', 'E']);
    if !exponent && (int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    if exponent || !frac.bytes().all(|b| b.is_ascii_digit()) {
        // exponent forms from a JSON writer: go through f64, rounded to the microsecond
        let v: f64 = format!("{}{}", if neg { "-" } else { "" }, s)
            .parse()
            .ok()?;
        // (`as` saturates, so an out-of-range value is caught by the checked multiply)
        return ((v * 1e6).round() as i64).checked_mul(1000);
    }
    let secs: i64 = int.parse().ok()?;
    let mut digits = frac.as_bytes().to_vec();
    digits.resize(9, b'0');
    let ns: i64 = std::str::from_utf8(&digits[..9]).ok()?.parse().ok()?;
    let v = secs.checked_mul(1_000_000_000)?.checked_add(ns)?;
    Some(if neg { -v } else { v })
}

pub(crate) type Ep = (IpAddr, u16);

pub(crate) fn key5(a: Ep, b: Ep) -> (Ep, Ep) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// What the RSTs of one conn.log row were: the columns `--enrich-conn` appends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RstAggregate {
    pub count: u64,
    pub causes: BTreeSet<String>,
    pub injected: bool,
    pub evidence: BTreeSet<&'static str>,
    pub first_ts: i64,
    pub first_payload: Option<Vec<u8>>,
}

/// Per conn.log file: rows read, malformed lines, read error.
#[derive(Debug, Default)]
pub struct LogReport {
    pub path: PathBuf,
    pub rows: u64,
    pub malformed: u64,
    /// The first malformed lines (at most 20), with their line numbers.
    pub first_malformed: Vec<Malformed>,
    pub error: Option<String>,
}

/// What the join did.
#[derive(Debug, Default)]
pub struct JoinReport {
    pub logs: Vec<LogReport>,
    /// RSTs that got a conn.log uid, and those that kept rstscope's own.
    pub matched: u64,
    pub unmatched: u64,
    /// conn.log rows kept as candidates (rows of connections with a RST).
    pub candidates: u64,
    /// conn.log uid → the RSTs joined to it.
    pub joined: HashMap<String, RstAggregate>,
}

/// Longest conn.log uid joined (Zeek's are ~18 characters).
pub const MAX_UID: usize = 64;

/// Give every event the uid of its conn.log row. Events must be in the contract's row order.
///
/// A row is a candidate for an event when it has the event's Community ID (if the log has that
/// column) or the same endpoints in either direction. Among candidates with a timestamp, the
/// event takes the latest row that started no later than the RST and whose
/// `[ts, ts + duration + 5 s]` window holds it (so retried refused SYNs, one REJ row each, and
/// rows split by Zeek's close delay each get their own RSTs). Rows whose ts is masked or absent
/// are assigned per connection, in log order, preferring the row whose history continues
/// rstscope's history at the connection's last RST.
///
/// The two passes of [`RstKeys`] and [`Matches`] over rows held in memory.
pub fn join(events: &mut [ResetEvent], logs: &[PathBuf]) -> JoinReport {
    let mut keys = RstKeys::new();
    for e in events.iter() {
        keys.push(e);
    }
    let mut matches = keys.match_conn_logs(logs);
    for e in events.iter_mut() {
        matches.apply(e);
    }
    matches.into_report()
}

#[cfg(test)]
mod tests;
