use super::*;
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
fn refused_scan(n: u32) -> impl Iterator<Item = ResetEvent> {
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
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let s = from_parts(&rows, inputs());
        eprintln!("from_parts: {:?}", t.elapsed());
        assert_eq!(s.by_cause["refused"], 1_000_000);
    }
}
