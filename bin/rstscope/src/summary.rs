//! The run summary: `reset_summary.json`, and the short table printed on stderr.

use std::collections::{BTreeMap, HashMap};

/// A hash map with hashbrown's default (foldhash) hasher.
type FastMap<K, V> = hashbrown::HashMap<K, V>;

use rstscope_flow::Cause;
use rstscope_zeeklog::escape_field;
use serde_json::{json, Value};

use crate::RunResult;

/// How many entries each "top" list keeps.
pub const TOP_N: usize = 10;

/// Counts of `key`, most frequent first, ties by key: the first `n` of that order, found
/// without sorting every distinct key.
fn top<'a, K: Ord + Clone + 'a>(
    counts: impl IntoIterator<Item = (&'a K, &'a u64)>,
    n: usize,
) -> Vec<(K, u64)> {
    let order = |a: &(&K, u64), b: &(&K, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
    let mut v: Vec<(&K, u64)> = counts.into_iter().map(|(k, c)| (k, *c)).collect();
    if v.len() > n && n > 0 {
        v.select_nth_unstable_by(n - 1, order);
    }
    v.truncate(n);
    v.sort_unstable_by(order);
    v.into_iter().map(|(k, c)| (k.clone(), c)).collect()
}

/// The entries of `counts` that can be among the `TOP_N` most frequent once rendered by
/// `name` (every entry counted at least as often as the `TOP_N`-th largest count), rendered.
/// `name` must give distinct keys distinct names (addresses, endpoints): counts of keys that
/// render alike would have to be merged before the cut.
fn rendered_top<K, F: Fn(&K) -> String>(counts: &FastMap<K, u64>, name: F) -> HashMap<String, u64> {
    let mut by_count: Vec<u64> = counts.values().copied().collect();
    let floor = if by_count.len() > TOP_N {
        *by_count
            .select_nth_unstable_by(TOP_N - 1, |a, b| b.cmp(a))
            .1
    } else {
        0
    };
    let mut out: HashMap<String, u64> = HashMap::new();
    let mut kept = 0;
    for (k, &n) in counts {
        if n >= floor {
            *out.entry(name(k)).or_default() += n;
            kept += 1;
        }
    }
    debug_assert_eq!(out.len(), kept, "two keys rendered alike");
    out
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
    let mut cause_counts = [0u64; Cause::ALL.len()];
    let mut injected = 0u64;
    // Counted by borrowed or plain keys, one entry per distinct value; rendered as text (and
    // merged where two values render the same) only once per distinct value below. The keys
    // come from captures, so from attackers: the maps use foldhash, seeded at random per
    // process (SipHash was a tenth of the run's end), and hold at most one entry per row.
    let mut seqs: FastMap<u32, u64> = FastMap::default();
    let mut payload_bytes: FastMap<&[u8], u64> = FastMap::default();
    let mut reason_strs: FastMap<&str, u64> = FastMap::default();
    let mut target_addrs: FastMap<(std::net::IpAddr, u16), u64> = FastMap::default();
    // Sources of refused or half-open attempts, counted once per connection.
    let mut scanner_conns: hashbrown::HashSet<(std::net::IpAddr, &str)> = Default::default();
    for e in events {
        let cause = e
            .cause
            .as_deref()
            .and_then(|c| Cause::ALL.iter().position(|k| k.name() == c));
        if let Some(i) = cause {
            cause_counts[i] += 1;
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
        match cause.map(|i| Cause::ALL[i]) {
            Some(Cause::Refused) => {
                *target_addrs.entry((e.resp_h, e.resp_p)).or_default() += 1;
                scanner_conns.insert((e.orig_h, &e.uid));
            }
            Some(Cause::HandshakeAbort) if e.is_orig => {
                scanner_conns.insert((e.orig_h, &e.uid));
            }
            _ => {}
        }
    }
    let by_cause: BTreeMap<&'static str, u64> = Cause::ALL
        .iter()
        .zip(cause_counts)
        .map(|(c, n)| (c.name(), n))
        .collect();
    let mut payloads: HashMap<String, u64> = HashMap::new();
    for (p, n) in payload_bytes {
        *payloads.entry(escape_field(p)).or_default() += n;
    }
    let reasons: HashMap<String, u64> = reason_strs
        .into_iter()
        .map(|(r, n)| (r.to_string(), n))
        .collect();
    // Only the most frequent targets are named; ties need the rendered names, so every
    // target counted as often as the last one kept is rendered.
    let targets: HashMap<String, u64> =
        rendered_top(&target_addrs, |(h, p)| endpoint(&h.to_string(), *p));
    let mut scanner_counts: FastMap<std::net::IpAddr, u64> = FastMap::default();
    for (h, _) in scanner_conns {
        *scanner_counts.entry(h).or_default() += 1;
    }
    let scanners: HashMap<String, u64> = rendered_top(&scanner_counts, |h| h.to_string());
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
