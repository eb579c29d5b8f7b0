use super::*;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use proptest::prelude::*;
use rstscope_reset::ResetEvent;

mod oracle;

/// Payloads rows repeat (hostile bytes, a reserved name, text that needs escaping).
const PAYLOADS: [&[u8]; 6] = [
    b"GET / HTTP/1.1",
    b"\x00\xff\\",
    br"\x00",
    b"-",
    b"</td><script>",
    b"quota exceeded",
];
const REASONS: [&str; 4] = ["quota", "\"quoted\" <b>&", "a", "b"];

/// A row's varying parts: ts (a fraction of the span), cause, is_orig, injected, seq, payload,
/// reason, orig_h, resp_h, resp_p, uid.
type Parts = (
    (u16, u8, bool, u8),
    u32,
    Option<Vec<u8>>,
    Option<String>,
    (u8, u8, u16, u8),
);

fn arb_parts() -> impl Strategy<Value = Parts> {
    (
        (any::<u16>(), 0u8..9, any::<bool>(), 0u8..3),
        prop_oneof![3 => 0u32..4, 1 => any::<u32>()],
        prop::option::of(prop_oneof![
            3 => (0..PAYLOADS.len()).prop_map(|i| PAYLOADS[i].to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..24),
        ]),
        prop::option::of(prop_oneof![
            3 => (0..REASONS.len()).prop_map(|i| REASONS[i].to_string()),
            1 => ".{0,12}",
        ]),
        (
            0u8..40,
            0u8..40,
            prop_oneof![3 => 0u16..4, 1 => any::<u16>()],
            0u8..30,
        ),
    )
}

/// Host `i` of a small pool of IPv4 and IPv6 addresses (names that sort unlike numbers).
fn host(i: u8) -> IpAddr {
    if i % 5 == 4 {
        IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16])
    } else {
        IpAddr::from([10, 0, 0, i])
    }
}

/// Packet-time spans the rows are spread over: none, seconds, an hour, days, centuries.
const SPANS_S: [i64; 5] = [0, 10, 3600, 3 * 86_400, 3_000_000_000];

fn event(base_ns: i64, span_s: i64, p: Parts) -> ResetEvent {
    let ((at, cause, is_orig, injected), seq, payload, reason, (orig, resp, resp_p, uid)) = p;
    let seg = rstscope_decode::Segment {
        ts_ns: base_ns + (span_s as i128 * 1_000_000_000 * at as i128 / 65_535) as i64,
        file: 0,
        frame: 1,
        src: host(resp),
        dst: host(orig),
        ttl: 60,
        ip_id: None,
        df: None,
        sport: resp_p,
        dport: 40_000,
        seq,
        ack: 1,
        flags: 0x014,
        window: 0,
        options: Default::default(),
        payload_len: 0,
        payload: &[],
        tunnel_depth: 0,
    };
    let mut e = ResetEvent::from_segment(&seg, b"x.pcap", &Default::default());
    e.cause = match cause as usize {
        i if i < rstscope_flow::Cause::ALL.len() => {
            Some(rstscope_flow::Cause::ALL[i].name().into())
        }
        7 => None,
        _ => Some("bogus".into()),
    };
    e.is_orig = is_orig;
    e.injected = [None, Some(false), Some(true)][injected as usize];
    e.payload = payload;
    e.reason = reason;
    e.uid = format!("C{uid}");
    e
}

/// Rows as a run could give them, in no particular order: small pools of every key (so lists
/// tie and overflow `TOP_N`), causes known, unset and unknown, any span of packet time.
pub(crate) fn arb_events(max_rows: usize) -> impl Strategy<Value = Vec<ResetEvent>> {
    (
        prop::collection::vec(arb_parts(), 0..max_rows),
        0..SPANS_S.len(),
        prop_oneof![
            Just(0i64),
            Just(-5_000_000_000),
            1_000_000_000_000_000_000i64..1_700_000_000_000_000_000
        ],
    )
        .prop_map(|(parts, span, base)| {
            parts
                .into_iter()
                .map(|p| event(base, SPANS_S[span], p))
                .collect()
        })
}

/// Inputs with a file or two, as the page shows them.
pub(crate) fn inputs() -> RunInputs {
    RunInputs {
        files: vec![
            json!({"source": "a.pcap", "sensor": null, "packets": 7, "rsts": 3,
                "unknown_linktypes": {"147": 2}, "error": null,
                "first_ts": "1.000000", "last_ts": "5.500000"}),
            json!({"source": "b\\xff<.pcap", "sensor": "s<1>", "packets": 1, "rsts": 0,
                "unknown_linktypes": {}, "error": "truncated <record>",
                "first_ts": null, "last_ts": null}),
        ],
        sensors: vec![json!({"sensor": null, "files": 2})],
        flow: rstscope_flow::FlowStats {
            segments: 11,
            connections: 5,
            evicted: 1,
            peak_connections: 4,
            carry_errors: 0,
        },
        parallel: crate::ParallelStats {
            units: 2,
            replayed_packets: 3,
            redone_units: 1,
        },
        packets: 8,
        bytes: 999,
        files_with_errors: 1,
    }
}

/// The summary matches the oracle's in every part.
pub(crate) fn assert_same_as_oracle(got: &Summary, events: &[ResetEvent]) {
    let want = oracle::from_parts(events, inputs());
    assert_eq!(got.json.to_string(), want.json.to_string());
    assert_eq!(got.by_cause, want.by_cause);
    assert_eq!(got.injected, want.injected);
    assert_eq!(got.rsts, want.rsts);
    assert_eq!(got.top_seq, want.top_seq);
    assert_eq!(got.top_targets, want.top_targets);
    assert_eq!(got.top_scanners, want.top_scanners);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn summary_is_the_oracles(events in arb_events(300)) {
        assert_same_as_oracle(&from_parts(&events, inputs()), &events);
    }
}

#[test]
fn addresses_and_endpoints_are_named_as_core_fmt_names_them() {
    let addrs = [
        "0.0.0.0",
        "10.0.0.1",
        "192.168.100.255",
        "255.255.255.255",
        "::",
        "::1",
        "2001:db8::8:800:200c:417a",
        "::ffff:192.0.2.1",
        "fe80::1:2:3:4",
    ];
    let text = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    };
    let mut longest = 0;
    for a in addrs
        .iter()
        .chain(&["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"])
    {
        let ip: IpAddr = a.parse().unwrap();
        assert_eq!(text(&|o| addr_text(&ip, o)), ip.to_string());
        for port in [0u16, 80, 65535] {
            let want = if ip.is_ipv6() {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            };
            let got = text(&|o| endpoint(&ip, port, o));
            assert_eq!(got, want);
            longest = longest.max(got.len());
            assert_eq!(ShortName::new(got.as_bytes()).to_string(), want);
        }
    }
    // Room for the longest endpoint (IPv4-mapped forms are shorter than 8 groups of 4).
    assert!(longest <= ShortName::MAX, "{longest}");
}

#[test]
fn rendered_top_keeps_the_most_frequent_then_the_smallest_names() {
    let mut counts: FastMap<IpAddr, u64> = FastMap::default();
    // 30 addresses tied at 1, three more frequent ones.
    for i in 0..30u8 {
        counts.insert(IpAddr::from([10, 0, 0, i]), 1);
    }
    counts.insert(IpAddr::from([9, 9, 9, 9]), 5);
    counts.insert(IpAddr::from([8, 8, 8, 8]), 3);
    counts.insert(IpAddr::from([1, 1, 1, 1]), 3);
    let got = rendered_top(&counts, addr_text);
    // Ties broken by the rendered name ("10.0.0.10" < "10.0.0.2"), as `top` orders them.
    let names: Vec<(&str, u64)> = got.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(
        names,
        [
            ("9.9.9.9", 5),
            ("1.1.1.1", 3),
            ("8.8.8.8", 3),
            ("10.0.0.0", 1),
            ("10.0.0.1", 1),
            ("10.0.0.10", 1),
            ("10.0.0.11", 1),
            ("10.0.0.12", 1),
            ("10.0.0.13", 1),
            ("10.0.0.14", 1),
        ]
    );
}

/// A scan's rows: `n` refused connections from four sources, each to a target of its own.
pub(crate) fn refused_scan(n: u32) -> impl Iterator<Item = ResetEvent> {
    let base = event(0, 0, ((0, 0, false, 0), 0, None, None, (0, 0, 0, 0)));
    (0..n).map(move |i| {
        let mut e = base.clone();
        e.ts_ns = i as i64 * 600_000;
        e.orig_h = IpAddr::from([192, 0, 2, (i % 4) as u8]);
        e.resp_h = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
        e.resp_p = [22, 80, 443][i as usize % 3];
        e.uid = format!("C{i:017}");
        e
    })
}

/// Time to summarise a million refused rows (run with `--release -- --ignored --nocapture`).
#[test]
#[ignore]
fn time_a_million_refused_rows() {
    let rows: Vec<ResetEvent> = refused_scan(1_000_000).collect();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let s = from_parts(&rows, inputs());
        eprintln!("from_parts: {:?}", t.elapsed());
        assert_eq!(s.by_cause["refused"], 1_000_000);
    }
}

/// Kernel figures of this process, in KiB (`VmRSS`, `VmHWM`).
fn vm_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Memory of the builder over a million refused rows made one at a time (run alone, with
/// `--release -- --ignored --nocapture`): what it holds by count and size, and the growth of
/// the resident set.
#[test]
#[ignore]
fn memory_of_a_million_refused_rows() {
    let before = vm_kib("VmRSS:");
    let mut b = SummaryBuilder::default();
    let t = std::time::Instant::now();
    for e in refused_scan(1_000_000) {
        b.push(&e);
    }
    let pushed = t.elapsed();
    let (held, conns) = b.held();
    eprintln!(
        "pushed in {pushed:?} (making rows included); held {held:?}, {conns} connections \
         (slot {} B, ring {} KiB, index {} buckets); list maps: targets {} buckets of {} B",
        std::mem::size_of::<CountedConnection>(),
        b.scanner_conns.ring.capacity() * std::mem::size_of::<CountedConnection>() / 1024,
        b.scanner_conns.index.capacity(),
        b.targets.counts.capacity(),
        std::mem::size_of::<((IpAddr, u16), u64)>(),
    );
    eprintln!(
        "VmRSS grew by {} KiB (VmHWM {} KiB)",
        vm_kib("VmRSS:") - before,
        vm_kib("VmHWM:")
    );
    let t = std::time::Instant::now();
    let s = b.finish(inputs());
    eprintln!("finish: {:?}", t.elapsed());
    assert_eq!(s.rsts, 1_000_000);
}

/// A list of the summary's JSON as (name, count) pairs.
fn listed(s: &Summary, list: &str, key: &str) -> Vec<(String, u64)> {
    s.json[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let name = x[key]
                .as_str()
                .map_or_else(|| x[key].to_string(), str::to_string);
            (name, x["count"].as_u64().unwrap())
        })
        .collect()
}

/// A list's `max_undercount` (0 when the list is exact).
fn max_undercount(s: &Summary, list: &str) -> u64 {
    s.json["approximate_top_lists"][list]["max_undercount"]
        .as_u64()
        .unwrap_or(0)
}

/// Exact counts of each list by name: what the oracle counts before it cuts.
fn exact_counts(events: &[ResetEvent]) -> [(&'static str, &'static str, HashMap<String, u64>); 5] {
    let mut seqs = HashMap::new();
    let mut payloads = HashMap::new();
    let mut reasons = HashMap::new();
    let mut targets = HashMap::new();
    let mut conns = HashSet::new();
    for e in events {
        *seqs.entry(e.seq.to_string()).or_default() += 1;
        if let Some(p) = &e.payload {
            *payloads.entry(escape_field(p)).or_default() += 1;
        }
        if let Some(r) = &e.reason {
            *reasons.entry(r.clone()).or_default() += 1;
        }
        match e.cause.as_deref() {
            Some("refused") => {
                let mut name = Vec::new();
                endpoint(&e.resp_h, e.resp_p, &mut name);
                *targets.entry(String::from_utf8(name).unwrap()).or_default() += 1;
                conns.insert((e.orig_h, e.uid.clone()));
            }
            Some("handshake_abort") if e.is_orig => {
                conns.insert((e.orig_h, e.uid.clone()));
            }
            _ => {}
        }
    }
    let mut scanners = HashMap::new();
    for (h, _) in conns {
        *scanners.entry(h.to_string()).or_default() += 1;
    }
    [
        ("top_seq", "seq", seqs),
        ("top_payloads", "payload", payloads),
        ("top_reasons", "reason", reasons),
        ("top_refused_targets", "target", targets),
        ("top_scanners", "source", scanners),
    ]
}

/// The documented bounds of every top list of `s`, summarised with lists of `capacity` keys
/// and no scanner connection forgotten: listed counts are low by at most the list's
/// `max_undercount`, which is at most its rows / (capacity / 2 + 1) (keys here are far
/// shorter than the byte budget's share); keys left out occur at most that much more often
/// than the last one listed; an exact list is the oracle's.
fn assert_within_bounds(s: &Summary, events: &[ResetEvent], capacity: usize) {
    let want = oracle::from_parts(events, inputs());
    for (list, key, truth) in exact_counts(events) {
        let got = listed(s, list, key);
        let slack = max_undercount(s, list);
        let rows: u64 = truth.values().sum();
        assert!(
            slack * (capacity as u64 / 2 + 1) <= rows,
            "{list}: max_undercount {slack}, {rows} rows"
        );
        for (name, n) in &got {
            let t = truth[name];
            assert!(
                *n <= t && t <= n + slack,
                "{list} {name}: {n} listed, {t} true, ±{slack}"
            );
        }
        // Ties by key: seq numbers as numbers, the others by name.
        let number = |k: &str| (list == "top_seq").then(|| k.parse::<u64>().unwrap());
        let order = |a: &(String, u64), b: &(String, u64)| {
            b.1.cmp(&a.1)
                .then(number(&a.0).cmp(&number(&b.0)))
                .then(a.0.cmp(&b.0))
        };
        assert!(
            got.is_sorted_by(|a, b| order(a, b).is_le()),
            "{list}: {got:?}"
        );
        let last = if got.len() == TOP_N {
            got[TOP_N - 1].1
        } else {
            0
        };
        for (name, t) in &truth {
            assert!(
                got.iter().any(|(k, _)| k == name) || *t <= last + slack,
                "{list}: {name} ({t}) left out, last listed {last}, ±{slack}"
            );
        }
        if slack == 0 {
            assert_eq!(got, listed_expected(&want.json, list, key), "{list}");
        }
    }
    assert_eq!(s.json["rsts"], want.json["rsts"]);
    assert_eq!(s.json["by_cause"], want.json["by_cause"]);
    assert_eq!(s.json["injected"], want.json["injected"]);
    let approximate = s.json.get("approximate_top_lists").is_some();
    let same_bytes =
        serde_json::to_vec(&s.json).unwrap() == serde_json::to_vec(&want.json).unwrap();
    assert_eq!(approximate, !same_bytes);
}

fn listed_expected(json: &Value, list: &str, key: &str) -> Vec<(String, u64)> {
    listed(
        &Summary {
            json: json.clone(),
            by_cause: BTreeMap::new(),
            injected: 0,
            rsts: 0,
            top_seq: vec![],
            top_targets: vec![],
            top_scanners: vec![],
        },
        list,
        key,
    )
}

fn summarise(events: &[ResetEvent], top: usize, connections: usize) -> SummaryBuilder {
    let mut b = SummaryBuilder::with_capacity(top, connections);
    for e in events {
        b.push(e);
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn small_top_lists_keep_their_bounds(events in arb_events(400), capacity in 2usize..24) {
        let b = summarise(&events, capacity, 1 << 16);
        let (held, _) = b.held();
        prop_assert!(held.iter().all(|&n| n <= capacity), "{held:?}");
        assert_within_bounds(&b.finish(inputs()), &events, capacity);
    }
}

#[test]
fn heavy_keys_among_more_distinct_keys_than_the_capacity() {
    // 9 heavy targets (100, 200, ... 900 refusals) among 35,500 targets refused once, with
    // room for 1,024 keys: low by at most 40,000 / 513 = 77, the heavy ones are listed in
    // their order.
    let mut events: Vec<ResetEvent> = refused_scan(40_000).collect();
    for (i, e) in events.iter_mut().enumerate() {
        let heavy = i % 40;
        if heavy < 9 && i / 40 < 100 * (heavy + 1) {
            e.resp_h = IpAddr::from([198, 51, 100, 1]);
            e.resp_p = heavy as u16;
        }
    }
    let s = summarise(&events, 1_024, 1 << 16).finish(inputs());
    let slack = max_undercount(&s, "top_refused_targets");
    assert!(slack > 0 && slack <= 40_000 / 513, "{slack}");
    assert_within_bounds(&s, &events, 1_024);
    let got = listed(&s, "top_refused_targets", "target");
    let names: Vec<&str> = got.iter().take(9).map(|(k, _)| k.as_str()).collect();
    let want: Vec<String> = (0..9).rev().map(|p| format!("198.51.100.1:{p}")).collect();
    assert_eq!(names, want);
    // Scanners (four sources) stay exact: one connection per row.
    assert_eq!(
        listed(&s, "top_scanners", "source"),
        (0..4)
            .map(|i| (format!("192.0.2.{i}"), 10_000))
            .collect::<Vec<_>>()
    );
    assert!(s.json["approximate_top_lists"]
        .get("top_scanners")
        .is_none());
}

#[test]
fn long_payloads_are_held_within_the_byte_budget() {
    // Payloads of 1,000 bytes with room for 64 keys (a budget of 16,384 bytes): purged by
    // bytes, keeping at most 9 keys (Q = 9), before the count of keys is reached.
    let mut b = SummaryBuilder::with_capacity(64, 16);
    let rows = 3_000u64;
    for (i, mut e) in refused_scan(rows as u32).enumerate() {
        let mut p = vec![b'a'; 1_000];
        p[..8].copy_from_slice(&(if i % 3 == 0 { 7 } else { i } as u64).to_be_bytes());
        e.payload = Some(p);
        b.push(&e);
        assert!(
            b.payloads.key_bytes <= 16_384 + 1_000,
            "{}",
            b.payloads.key_bytes
        );
        assert!(b.payloads.counts.len() <= 17);
    }
    let s = b.finish(inputs());
    let slack = max_undercount(&s, "top_payloads");
    assert!(slack > 0 && slack * 9 <= rows, "{slack}");
    // The payload of every third row leads, low by at most the bound.
    let got = listed(&s, "top_payloads", "payload");
    assert!(got[0].1 <= 1_000 && 1_000 <= got[0].1 + slack, "{got:?}");
    assert!(
        got[0].0.starts_with(r"\x00\x00\x00\x00\x00\x00\x00\x07"),
        "{got:?}"
    );
}

#[test]
fn a_million_refused_targets_hold_at_most_the_capacities() {
    let mut b = SummaryBuilder::default();
    for (i, e) in refused_scan(1_000_000).enumerate() {
        b.push(&e);
        if i % 65_536 == 0 {
            let (held, conns) = b.held();
            assert!(held.iter().all(|&n| n <= TOP_CAPACITY), "{held:?}");
            assert!(conns <= CONNECTIONS_REMEMBERED, "{conns}");
        }
    }
    let (held, conns) = b.held();
    assert!(held.iter().all(|&n| n <= TOP_CAPACITY), "{held:?}");
    assert_eq!(conns, CONNECTIONS_REMEMBERED);
    let s = b.finish(inputs());
    assert_eq!(s.rsts, 1_000_000);
    assert_eq!(s.by_cause["refused"], 1_000_000);
    // Targets: a million, each refused once: listed at 1 (a lower bound), low by at most
    // 1,000,000 / 8,193.
    let slack = max_undercount(&s, "top_refused_targets");
    assert!(
        slack > 0 && slack <= 1_000_000 / (TOP_CAPACITY as u64 / 2 + 1),
        "{slack}"
    );
    // 600 µs apart, the ring covers 78 s of packet time: nothing forgotten early, and the
    // scanners are exact.
    assert!(s.json["approximate_top_lists"]
        .get("top_scanners")
        .is_none());
    assert_eq!(s.top_scanners[0], ("192.0.2.0".to_string(), 250_000));
}

#[test]
fn a_connection_counts_once_while_remembered() {
    let row = |uid: u32, ts_s: i64| {
        let mut e = refused_scan(1).next().unwrap();
        e.uid = format!("C{uid}");
        e.ts_ns = ts_s * 1_000_000_000;
        e
    };
    let scanners = |rows: &[ResetEvent]| {
        let s = summarise(rows, 64, 4).finish(inputs());
        (s.top_scanners[0].1, s.json["approximate_top_lists"].clone())
    };
    // Four connections fit: the second row of connection 0 is known.
    let rows: Vec<_> = [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1)]
        .map(|(u, t)| row(u, t))
        .into();
    assert_eq!(scanners(&rows), (4, Value::Null));
    // A fifth one forgets connection 0 within 10 s of its row: counted twice, and said so.
    let rows: Vec<_> = [(0, 0), (1, 0), (2, 0), (3, 0), (4, 1), (0, 2)]
        .map(|(u, t)| row(u, t))
        .into();
    assert_eq!(
        scanners(&rows),
        (
            6,
            json!({"top_scanners": {"max_undercount": 0, "connections_forgotten_early": 2}})
        )
    );
    // Forgotten after 10 s of silence, when the tracker has ended it: exact, nothing said.
    let rows: Vec<_> = [(0, 0), (1, 0), (2, 0), (3, 0), (4, 11), (5, 12)]
        .map(|(u, t)| row(u, t))
        .into();
    assert_eq!(scanners(&rows), (6, Value::Null));
    // uids longer than ours are keys too.
    let long = "C".repeat(40);
    let mut rows = vec![row(0, 0), row(0, 0)];
    rows[0].uid = long.clone();
    rows[1].uid = long;
    assert_eq!(scanners(&rows), (1, Value::Null));
}
