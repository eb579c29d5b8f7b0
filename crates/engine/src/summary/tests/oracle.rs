//! The summary as `from_parts` computed it before it streamed (every key held, in plain maps):
//! the oracle the streaming summary is compared with.

use std::collections::{BTreeMap, HashMap, HashSet};

use rstscope_flow::Cause;
use rstscope_reset::ResetEvent;
use rstscope_zeeklog::escape_field;
use serde_json::{json, Value};

use crate::summary::{RunInputs, TOP_N};

/// Counts of `key`, most frequent first, ties by key: the first `n`.
fn top<K: Ord + Clone>(counts: &HashMap<K, u64>, n: usize) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = counts.iter().map(|(k, c)| (k.clone(), *c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// Every key rendered, then [`top`] over the rendered names.
fn rendered_top<K>(counts: &HashMap<K, u64>, name: impl Fn(&K) -> String) -> Vec<(String, u64)> {
    let named: HashMap<String, u64> = counts.iter().map(|(k, n)| (name(k), *n)).collect();
    assert_eq!(named.len(), counts.len(), "two keys rendered alike");
    top(&named, TOP_N)
}

fn endpoint(h: &std::net::IpAddr, p: u16) -> String {
    if h.is_ipv6() {
        format!("[{h}]:{p}")
    } else {
        format!("{h}:{p}")
    }
}

/// What today's `Summary` holds, as plain values.
pub struct Expected {
    pub json: Value,
    pub by_cause: BTreeMap<&'static str, u64>,
    pub injected: u64,
    pub rsts: u64,
    pub top_seq: Vec<(u32, u64)>,
    pub top_targets: Vec<(String, u64)>,
    pub top_scanners: Vec<(String, u64)>,
}

pub fn from_parts(events: &[ResetEvent], inputs: RunInputs) -> Expected {
    let mut by_cause: BTreeMap<&'static str, u64> =
        Cause::ALL.iter().map(|c| (c.name(), 0)).collect();
    let mut injected = 0;
    let mut seqs: HashMap<u32, u64> = HashMap::new();
    let mut payloads: HashMap<String, u64> = HashMap::new();
    let mut reasons: HashMap<String, u64> = HashMap::new();
    let mut targets: HashMap<(std::net::IpAddr, u16), u64> = HashMap::new();
    let mut scanner_conns: HashSet<(std::net::IpAddr, String)> = HashSet::new();
    for e in events {
        let cause = Cause::ALL
            .iter()
            .copied()
            .find(|c| e.cause.as_deref() == Some(c.name()));
        if let Some(c) = cause {
            *by_cause.get_mut(c.name()).unwrap() += 1;
        }
        if e.injected == Some(true) {
            injected += 1;
        }
        *seqs.entry(e.seq).or_default() += 1;
        if let Some(p) = &e.payload {
            *payloads.entry(escape_field(p)).or_default() += 1;
        }
        if let Some(r) = &e.reason {
            *reasons.entry(r.clone()).or_default() += 1;
        }
        match cause {
            Some(Cause::Refused) => {
                *targets.entry((e.resp_h, e.resp_p)).or_default() += 1;
                scanner_conns.insert((e.orig_h, e.uid.clone()));
            }
            Some(Cause::HandshakeAbort) if e.is_orig => {
                scanner_conns.insert((e.orig_h, e.uid.clone()));
            }
            _ => {}
        }
    }
    let mut scanners: HashMap<std::net::IpAddr, u64> = HashMap::new();
    for (h, _) in scanner_conns {
        *scanners.entry(h).or_default() += 1;
    }
    let top_targets = rendered_top(&targets, |(h, p)| endpoint(h, *p));
    let top_scanners = rendered_top(&scanners, |h| h.to_string());
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
    Expected {
        json,
        by_cause,
        injected,
        rsts,
        top_seq,
        top_targets,
        top_scanners,
    }
}
