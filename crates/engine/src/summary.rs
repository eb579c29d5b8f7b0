//! The run summary: `reset_summary.json`, and the short table printed on stderr.

use std::collections::BTreeMap;

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

/// The `TOP_N` most frequent entries of `counts` once rendered by `name`, in [`top`]'s order.
/// Only entries counted at least as often as the `TOP_N`-th largest count are rendered (ties
/// are decided by the rendered names, so every entry of that count is). `name` must give
/// distinct keys distinct names (addresses, endpoints): counts of keys that render alike
/// would have to be merged before the cut.
fn rendered_top<K, F: Fn(&K, &mut Vec<u8>)>(
    counts: &FastMap<K, u64>,
    name: F,
) -> Vec<(String, u64)> {
    let mut by_count: Vec<u64> = counts.values().copied().collect();
    let floor = if by_count.len() > TOP_N {
        *by_count
            .select_nth_unstable_by(TOP_N - 1, |a, b| b.cmp(a))
            .1
    } else {
        0
    };
    // A plain list of names held inline, not a map of strings: the names are distinct, and a
    // scan of a million refused targets has a million of them, all tied.
    let mut buf = Vec::with_capacity(ShortName::MAX);
    let kept: Vec<(ShortName, u64)> = counts
        .iter()
        .filter(|(_, &n)| n >= floor)
        .map(|(k, &n)| {
            buf.clear();
            name(k, &mut buf);
            (ShortName::new(&buf), n)
        })
        .collect();
    debug_assert_eq!(
        kept.iter()
            .map(|(k, _)| k)
            .collect::<hashbrown::HashSet<_>>()
            .len(),
        kept.len(),
        "two keys rendered alike"
    );
    top(kept.iter().map(|(k, n)| (k, n)), TOP_N)
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect()
}

/// A rendered address or endpoint, held without an allocation of its own. The longest is an
/// IPv6 endpoint, `[` + at most 39 characters + `]:65535`: 47 bytes (a test checks it).
#[derive(Clone, PartialEq, Eq, Hash)]
struct ShortName {
    len: u8,
    bytes: [u8; ShortName::MAX],
}

impl ShortName {
    const MAX: usize = 47;

    fn new(text: &[u8]) -> Self {
        debug_assert!(text.len() <= Self::MAX, "{} bytes", text.len());
        let len = text.len().min(Self::MAX);
        let mut bytes = [0; Self::MAX];
        bytes[..len].copy_from_slice(&text[..len]);
        ShortName {
            len: len as u8,
            bytes,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl Ord for ShortName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl PartialOrd for ShortName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for ShortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Addresses and ports render as ASCII.
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
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
    /// How sensor streams cut into units were stitched.
    pub parallel: crate::ParallelStats,
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
    // In a scan nearly every row is a refused attempt to a target of its own: these two grow
    // to a million entries, and growing by doubling rehashed them again and again (a third of
    // the summary's time). Sized from a count first.
    let refused_rows = events
        .iter()
        .filter(|e| e.cause.as_deref() == Some(Cause::Refused.name()))
        .count();
    let mut target_addrs: FastMap<(std::net::IpAddr, u16), u64> =
        FastMap::with_capacity(refused_rows);
    // Sources of refused or half-open attempts, counted once per connection.
    let mut scanner_conns: hashbrown::HashSet<(std::net::IpAddr, &str)> =
        hashbrown::HashSet::with_capacity(refused_rows);
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
    let mut payloads: FastMap<String, u64> = FastMap::default();
    for (p, n) in payload_bytes {
        *payloads.entry(escape_field(p)).or_default() += n;
    }
    let reasons: FastMap<String, u64> = reason_strs
        .into_iter()
        .map(|(r, n)| (r.to_string(), n))
        .collect();
    // Only the most frequent targets are named; ties need the rendered names, so every
    // target counted as often as the last one kept is rendered.
    let top_targets = rendered_top(&target_addrs, |(h, p), out| endpoint(h, *p, out));
    let mut scanner_counts: FastMap<std::net::IpAddr, u64> = FastMap::default();
    for (h, _) in scanner_conns {
        *scanner_counts.entry(h).or_default() += 1;
    }
    let top_scanners = rendered_top(&scanner_counts, addr_text);
    let top_seq = top(&seqs, TOP_N);

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
        "parallel": {
            "units": inputs.parallel.units,
            "replayed_packets": inputs.parallel.replayed_packets,
            "redone_units": inputs.parallel.redone_units,
        },
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
        .enumerate()
        .map(|(i, f)| {
            json!({
                // Names as the JSON log writes strings: bytes that are not UTF-8 as `\xNN`.
                "path": crate::name_text(crate::name_bytes(f.input.path.as_os_str())),
                "source": crate::name_text(&f.input.source),
                "format": f.read.format.map(|x| format!("{x:?}").to_lowercase()),
                "compression": f.read.compression.to_string(),
                "file_bytes": f.read.file_bytes,
                "capture_bytes": f.read.capture_bytes,
                "packets": f.decode.packets,
                "tcp_segments": f.decode.tcp,
                "rsts": f.decode.rst,
                "non_first_fragments": f.decode.non_first_fragments,
                "malformed": f.decode.malformed,
                "too_deep": f.decode.too_deep,
                "unknown_linktypes": f.decode.unknown_linktypes.iter()
                    .map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "error": f.error().map(|e| e.to_string()),
                "error_offset": f.error().and_then(|e| e.offset()),
                "sensor": f.input.sensor.as_deref().map(crate::name_text),
                "late": result.late_files.contains(&i),
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
                "sensor": s.sensor.as_deref().map(crate::name_text),
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
        parallel: result.parallel,
        packets: result.files.iter().map(|f| f.decode.packets).sum(),
        bytes: result.files.iter().map(|f| f.read.file_bytes).sum(),
        files_with_errors: result.files.iter().filter(|f| f.error().is_some()).count() as u64,
    }
}

/// An address as the logs write it (Zeek's writer's IPv4 path, not `core::fmt`: a scan names
/// a million distinct targets and sources here, all tied for the top lists).
fn addr_text(a: &std::net::IpAddr, out: &mut Vec<u8>) {
    rstscope_zeeklog::render_value_into(&rstscope_zeeklog::Value::Addr(*a), out);
}

/// `host:port`, the IPv6 host in brackets.
fn endpoint(host: &std::net::IpAddr, port: u16, out: &mut Vec<u8>) {
    if host.is_ipv6() {
        out.push(b'[');
    }
    rstscope_zeeklog::render_value_into(&rstscope_zeeklog::Value::Addr(*host), out);
    if host.is_ipv6() {
        out.push(b']');
    }
    out.push(b':');
    rstscope_zeeklog::render_value_into(&rstscope_zeeklog::Value::Port(port), out);
}

/// Add the conn.log join's figures to the summary.
pub fn add_join(s: &mut Summary, j: &rstscope_join::JoinReport, conn_rst_rows: Option<u64>) {
    let logs: Vec<Value> = j
        .logs
        .iter()
        .map(|l| {
            json!({
                "path": crate::name_text(crate::name_bytes(l.path.as_os_str())),
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

#[cfg(test)]
pub(crate) mod tests;
