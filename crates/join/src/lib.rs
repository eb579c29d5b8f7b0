//! Joining reset events with a site's Zeek conn.log.
//!
//! The conn.log files are streamed twice at most and only the rows whose connection has a RST
//! are kept, so memory follows the number of RSTs, not the size of the logs: first the
//! endpoints (and Community IDs) of the RSTs are collected, then every conn.log row is checked
//! against them, then each RST picks its row (see [`join`]); `--enrich-conn` streams the logs
//! again to copy the joined rows out with RST columns appended.

pub mod enrich;
pub mod read;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rstscope_reset::ResetEvent;

pub use read::{read_conn_log, unescape, Malformed, Row};

/// Zeek's `tcp_close_delay`: a RST up to this long after the row's last packet still belongs
/// to it.
pub const CLOSE_DELAY_NS: i64 = 5_000_000_000;
/// conn.log times are written to the microsecond: allow that much slack at the window's start.
const TS_SLACK_NS: i64 = 1_000;

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

type Ep = (IpAddr, u16);

fn key5(a: Ep, b: Ep) -> (Ep, Ep) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// A conn.log row that may be the row of some RST.
#[derive(Debug, Clone)]
struct Candidate {
    uid: String,
    ts: Option<i64>,
    duration: Option<i64>,
    history: Option<String>,
    /// Global order of the row over all logs.
    order: u64,
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
pub fn join(events: &mut [ResetEvent], logs: &[PathBuf]) -> JoinReport {
    let mut report = JoinReport::default();
    let mut wanted: HashMap<(Ep, Ep), Vec<u32>> = HashMap::new();
    let mut wanted_cid: HashMap<String, Vec<u32>> = HashMap::new();
    for e in events.iter() {
        wanted
            .entry(key5((e.orig_h, e.orig_p), (e.resp_h, e.resp_p)))
            .or_default();
        wanted_cid.entry(e.community_id.clone()).or_default();
    }
    let mut cands: Vec<Candidate> = Vec::new();
    let mut order = 0u64;
    for path in logs {
        let mut lr = LogReport {
            path: path.clone(),
            ..Default::default()
        };
        // Rows read well but unusable: (line, why).
        let mut bad_rows: Vec<(u64, String)> = Vec::new();
        let stats = read_conn_log(path, |row, line| {
            order += 1;
            if let Some(p) = row.get("proto") {
                if p != "tcp" {
                    return;
                }
            }
            let cid = row.get("community_id");
            let by_cid = cid
                .as_deref()
                .and_then(|c| wanted_cid.get(c).map(|_| c.to_string()));
            let ends = (|| {
                let oh: IpAddr = row.get("id.orig_h")?.parse().ok()?;
                let op: u16 = row.get("id.orig_p")?.parse().ok()?;
                let rh: IpAddr = row.get("id.resp_h")?.parse().ok()?;
                let rp: u16 = row.get("id.resp_p")?.parse().ok()?;
                Some(key5((oh, op), (rh, rp)))
            })();
            if ends.is_none() {
                // Endpoints that are there but are no address or port (999.1.1.1, 99999999):
                // a malformed row, not one that simply has no match.
                let bad = ["id.orig_h", "id.resp_h"]
                    .iter()
                    .filter_map(|f| row.get(f).map(|v| (f, v)))
                    .find(|(_, v)| v.parse::<IpAddr>().is_err())
                    .or_else(|| {
                        ["id.orig_p", "id.resp_p"]
                            .iter()
                            .filter_map(|f| row.get(f).map(|v| (f, v)))
                            .find(|(_, v)| v.parse::<u16>().is_err())
                    });
                if let Some((field, value)) = bad {
                    let value: String = value.chars().take(40).collect();
                    bad_rows.push((line, format!("{field} {value:?} is not valid")));
                    return;
                }
            }
            let by_key = ends.filter(|k| wanted.contains_key(k));
            if by_cid.is_none() && by_key.is_none() {
                return;
            }
            // A row without a uid (unset, or an empty cell) cannot give an RST its uid; nor can
            // one whose uid is far longer than Zeek's (~18 characters): it would be copied into
            // every row of ours it joins.
            let Some(uid) = row.get("uid").filter(|u| !u.is_empty()) else {
                return;
            };
            if uid.len() > MAX_UID {
                bad_rows.push((line, format!("a uid longer than {MAX_UID} bytes")));
                return;
            }
            let idx = cands.len() as u32;
            cands.push(Candidate {
                uid: uid.into_owned(),
                ts: row.get("ts").and_then(|t| parse_time(&t)),
                duration: row.get("duration").and_then(|d| parse_time(&d)),
                history: row.get("history").map(|h| h.into_owned()),
                order,
            });
            if let Some(c) = by_cid {
                wanted_cid.get_mut(&c).expect("wanted").push(idx);
            }
            if let Some(k) = by_key {
                wanted.get_mut(&k).expect("wanted").push(idx);
            }
        });
        let mut malformed = stats.malformed;
        for (line, reason) in bad_rows {
            malformed.push(Malformed {
                path: path.clone(),
                line,
                reason,
            });
        }
        malformed.sort_by_key(|m| m.line);
        lr.rows = stats.rows;
        lr.malformed = malformed.len() as u64;
        lr.first_malformed = malformed.into_iter().take(20).collect();
        lr.error = stats.error;
        report.logs.push(lr);
    }
    report.candidates = cands.len() as u64;

    // Group events by rstscope's own connection (its uid), in order of first RST.
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        let g = *group_of.entry(e.uid.clone()).or_insert_with(|| {
            groups.push((e.uid.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    let mut used_untimed: BTreeSet<u32> = BTreeSet::new();
    let mut chosen: Vec<Option<u32>> = vec![None; events.len()];
    for (_, members) in &groups {
        let first = &events[members[0]];
        let list: &[u32] = match wanted_cid.get(&first.community_id) {
            Some(v) if !v.is_empty() => v,
            _ => wanted
                .get(&key5(
                    (first.orig_h, first.orig_p),
                    (first.resp_h, first.resp_p),
                ))
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        };
        if list.is_empty() {
            continue;
        }
        let mut untimed_needed = false;
        for &m in members {
            let ts = events[m].ts_ns;
            let mut best: Option<u32> = None;
            for &ci in list {
                let c = &cands[ci as usize];
                let Some(start) = c.ts else { continue };
                // Saturating: ts and duration come from the log and may be anything.
                let end = start
                    .saturating_add(c.duration.unwrap_or(0).max(0))
                    .saturating_add(CLOSE_DELAY_NS);
                if start <= ts.saturating_add(TS_SLACK_NS) && ts <= end.saturating_add(TS_SLACK_NS)
                {
                    let better = match best {
                        None => true,
                        Some(b) => {
                            let bc = &cands[b as usize];
                            (start, std::cmp::Reverse(c.order))
                                > (bc.ts.unwrap_or(i64::MIN), std::cmp::Reverse(bc.order))
                        }
                    };
                    if better {
                        best = Some(ci);
                    }
                }
            }
            match best {
                Some(b) => chosen[m] = Some(b),
                None => untimed_needed = true,
            }
        }
        if untimed_needed {
            let last_history = events[*members.last().expect("non-empty")]
                .history
                .clone()
                .unwrap_or_default();
            let untimed: Vec<u32> = list
                .iter()
                .copied()
                .filter(|ci| cands[*ci as usize].ts.is_none() && !used_untimed.contains(ci))
                .collect();
            let continues = |ci: &u32| {
                cands[*ci as usize].history.as_deref().is_some_and(|h| {
                    h.strip_prefix(last_history.as_str())
                        .is_some_and(|rest| !rest.contains(['R', 'r']))
                })
            };
            let has_rst = |ci: &u32| {
                cands[*ci as usize]
                    .history
                    .as_deref()
                    .is_some_and(|h| h.contains(['R', 'r']))
            };
            let pick = untimed
                .iter()
                .copied()
                .find(continues)
                .or_else(|| untimed.iter().copied().find(has_rst))
                .or_else(|| untimed.first().copied());
            if let Some(ci) = pick {
                used_untimed.insert(ci);
                for &m in members {
                    if chosen[m].is_none() {
                        chosen[m] = Some(ci);
                    }
                }
            }
        }
    }
    for (i, e) in events.iter_mut().enumerate() {
        match chosen[i] {
            Some(ci) => {
                let c = &cands[ci as usize];
                e.uid = c.uid.clone();
                report.matched += 1;
                let agg = report.joined.entry(c.uid.clone()).or_default();
                if agg.count == 0 {
                    agg.first_ts = e.ts_ns;
                }
                if agg.first_payload.is_none() {
                    agg.first_payload = e.payload.clone();
                }
                agg.count += 1;
                if let Some(cause) = &e.cause {
                    agg.causes.insert(cause.to_string());
                }
                agg.injected |= e.injected == Some(true);
                if let Some(ev) = &e.evidence {
                    agg.evidence.extend(ev.iter().copied());
                }
            }
            None => report.unmatched += 1,
        }
    }
    report
}

#[cfg(test)]
mod tests;
