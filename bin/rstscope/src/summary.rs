//! The run summary: `reset_summary.json`, and the short table printed on stderr.

use std::collections::{BTreeMap, HashMap, HashSet};

use rstscope_flow::Cause;
use rstscope_zeeklog::escape_field;
use serde_json::{json, Value};

use crate::RunResult;

/// How many entries each "top" list keeps.
pub const TOP_N: usize = 10;

/// Counts of `key`, most frequent first, ties by key.
fn top<K: Ord + Clone>(counts: &HashMap<K, u64>, n: usize) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = counts.iter().map(|(k, c)| (k.clone(), *c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// Aggregates of a run, as the JSON summary carries them.
pub struct Summary {
    pub json: Value,
    pub by_cause: BTreeMap<&'static str, u64>,
    pub injected: u64,
    pub rsts: u64,
    pub top_seq: Vec<(u32, u64)>,
    pub top_targets: Vec<(String, u64)>,
    pub top_scanners: Vec<(String, u64)>,
}

/// Inputs of a run as the summary lists them (from a run, or from shard summaries).
pub struct RunInputs {
    pub files: Vec<Value>,
    pub sensors: Vec<Value>,
    pub flow: rstscope_flow::FlowStats,
    pub packets: u64,
    pub bytes: u64,
    pub files_with_errors: u64,
}

pub fn build(result: &RunResult) -> Summary {
    from_parts(&result.events, run_inputs(result))
}

/// The summary of a set of events and the inputs they came from.
pub fn from_parts(events: &[rstscope_reset::ResetEvent], inputs: RunInputs) -> Summary {
    let mut by_cause: BTreeMap<&'static str, u64> =
        Cause::ALL.iter().map(|c| (c.name(), 0)).collect();
    let mut injected = 0u64;
    // Counted by borrowed or plain keys, one entry per distinct value; rendered as text (and
    // merged where two values render the same) only once per distinct value below.
    let mut seqs: HashMap<u32, u64> = HashMap::new();
    let mut payload_bytes: HashMap<&[u8], u64> = HashMap::new();
    let mut reason_strs: HashMap<&str, u64> = HashMap::new();
    let mut target_addrs: HashMap<(std::net::IpAddr, u16), u64> = HashMap::new();
    // Sources of refused or half-open attempts, counted once per connection.
    let mut scanner_conns: HashSet<(std::net::IpAddr, &str)> = HashSet::new();
    for e in events {
        if let Some(c) = &e.cause {
            if let Some(n) = Cause::ALL
                .iter()
                .find(|k| k.name() == c)
                .and_then(|k| by_cause.get_mut(k.name()))
            {
                *n += 1;
            }
        }
        if e.injected == Some(true) {
            injected += 1;
        }
        *seqs.entry(e.seq).or_default() += 1;
        if let Some(p) = &e.payload {
            *payload_bytes.entry(p.as_slice()).or_default() += 1;
        }
        if let Some(r) = &e.reason {
            *reason_strs.entry(r.as_str()).or_default() += 1;
        }
        match e.cause.as_deref() {
            Some("refused") => {
                *target_addrs.entry((e.resp_h, e.resp_p)).or_default() += 1;
                scanner_conns.insert((e.orig_h, &e.uid));
            }
            Some("handshake_abort") if e.is_orig => {
                scanner_conns.insert((e.orig_h, &e.uid));
            }
            _ => {}
        }
    }
    let mut payloads: HashMap<String, u64> = HashMap::new();
    for (p, n) in payload_bytes {
        *payloads.entry(escape_field(p)).or_default() += n;
    }
    let reasons: HashMap<String, u64> = reason_strs
        .into_iter()
        .map(|(r, n)| (r.to_string(), n))
        .collect();
    let targets: HashMap<String, u64> = target_addrs
        .into_iter()
        .map(|((h, p), n)| (endpoint(&h.to_string(), p), n))
        .collect();
    let mut scanner_counts: HashMap<std::net::IpAddr, u64> = HashMap::new();
    for (h, _) in scanner_conns {
        *scanner_counts.entry(h).or_default() += 1;
    }
    let scanners: HashMap<String, u64> = scanner_counts
        .into_iter()
        .map(|(h, n)| (h.to_string(), n))
        .collect();
    let top_seq = top(&seqs, TOP_N);
    let top_targets = top(&targets, TOP_N);
    let top_scanners = top(&scanners, TOP_N);

    let rsts = events.len() as u64;
    let pairs = |v: &[(String, u64)], key: &str| -> Vec<Value> {
        v.iter()
            .map(|(k, c)| json!({ key: k, "count": c }))
            .collect()
    };
    let json = json!({
        "rsts": rsts,
        "by_cause": by_cause,
        "injected": injected,
        "top_seq": top_seq.iter().map(|(s, c)| json!({"seq": s, "count": c})).collect::<Vec<_>>(),
        "top_payloads": pairs(&top(&payloads, TOP_N), "payload"),
        "top_reasons": pairs(&top(&reasons, TOP_N), "reason"),
        "top_refused_targets": pairs(&top_targets, "target"),
        "top_scanners": pairs(&top_scanners, "source"),
        "connections": inputs.flow.connections,
        "connections_evicted": inputs.flow.evicted,
        "peak_connections": inputs.flow.peak_connections,
        "tcp_segments": inputs.flow.segments,
        "packets": inputs.packets,
        "bytes": inputs.bytes,
        "files": inputs.files,
        "sensors": inputs.sensors,
        "files_with_errors": inputs.files_with_errors,
    });
    Summary {
        json,
        by_cause,
        injected,
        rsts,
        top_seq,
        top_targets,
        top_scanners,
    }
}

/// The per-file and per-sensor parts of a run's summary.
pub fn run_inputs(result: &RunResult) -> RunInputs {
    let files: Vec<Value> = result
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.input.path.to_string_lossy(),
                "source": f.input.source,
                "format": f.read.format.map(|x| format!("{x:?}").to_lowercase()),
                "compression": f.read.compression.to_string(),
                "file_bytes": f.read.file_bytes,
                "capture_bytes": f.read.capture_bytes,
                "packets": f.decode.packets,
                "tcp_segments": f.decode.tcp,
                "rsts": f.decode.rst,
                "non_first_fragments": f.decode.non_first_fragments,
                "malformed": f.decode.malformed,
                "unknown_linktypes": f.decode.unknown_linktypes.iter()
                    .map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "error": f.error().map(|e| e.to_string()),
                "error_offset": f.error().and_then(|e| e.offset()),
                "sensor": f.input.sensor,
                "first_ts": f.first_ts.map(rstscope_zeeklog::format_seconds),
                "last_ts": f.last_ts.map(rstscope_zeeklog::format_seconds),
                "seconds": (f.seconds * 1e3).round() / 1e3,
            })
        })
        .collect();
    let sensors = result
        .sensors
        .iter()
        .map(|s| {
            json!({
                "sensor": s.sensor,
                "files": s.files,
                "packets": s.packets,
                "bytes": s.bytes,
                "rsts": s.rsts,
                "connections": s.flow.connections,
                "connections_evicted": s.flow.evicted,
                "peak_connections": s.flow.peak_connections,
                "tcp_segments": s.flow.segments,
                "seconds": (s.seconds * 1e3).round() / 1e3,
            })
        })
        .collect();
    RunInputs {
        files,
        sensors,
        flow: result.flow,
        packets: result.files.iter().map(|f| f.decode.packets).sum(),
        bytes: result.files.iter().map(|f| f.read.file_bytes).sum(),
        files_with_errors: result.files.iter().filter(|f| f.error().is_some()).count() as u64,
    }
}

fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Add the conn.log join's figures to the summary.
pub fn add_join(s: &mut Summary, j: &rstscope_join::JoinReport, conn_rst_rows: Option<u64>) {
    let logs: Vec<Value> = j
        .logs
        .iter()
        .map(|l| {
            json!({
                "path": l.path.to_string_lossy(),
                "rows": l.rows,
                "malformed_lines": l.malformed,
                "first_malformed": l.first_malformed.iter().map(|m| json!({"line": m.line, "reason": m.reason})).collect::<Vec<_>>(),
                "error": l.error,
            })
        })
        .collect();
    s.json["join"] = json!({
        "matched": j.matched,
        "unmatched": j.unmatched,
        "candidate_rows": j.candidates,
        "joined_conn_rows": j.joined.len(),
        "conn_rst_rows": conn_rst_rows,
        "conn_logs": logs,
    });
}

/// The human table for stderr.
pub fn table(s: &Summary) -> String {
    let mut out = String::new();
    out.push_str(&format!("RSTs: {}  injected: {}\n", s.rsts, s.injected));
    for (cause, n) in &s.by_cause {
        if *n > 0 {
            out.push_str(&format!("  {cause:<16}{n:>10}\n"));
        }
    }
    if !s.top_seq.is_empty() {
        let seqs: Vec<String> = s
            .top_seq
            .iter()
            .take(5)
            .map(|(q, n)| format!("{q} ({n})"))
            .collect();
        out.push_str(&format!("top RST seq: {}\n", seqs.join(", ")));
    }
    if !s.top_targets.is_empty() {
        let t: Vec<String> = s
            .top_targets
            .iter()
            .take(5)
            .map(|(q, n)| format!("{q} ({n})"))
            .collect();
        out.push_str(&format!("top refused targets: {}\n", t.join(", ")));
    }
    if !s.top_scanners.is_empty() {
        let t: Vec<String> = s
            .top_scanners
            .iter()
            .take(5)
            .map(|(q, n)| format!("{q} ({n} conns)"))
            .collect();
        out.push_str(&format!("top scanners: {}\n", t.join(", ")));
    }
    out
}
