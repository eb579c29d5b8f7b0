//! Differential tests: the tracker against the one it replaced ([`crate::reference`]), on
//! random packet streams — time jumps over every timer, time going backwards, address reuse,
//! every flag combination, a connection table small enough to evict, IPv4, IPv6, a v4/v6
//! mix and a host talking to itself. Same rows in the same order, same counters, at every
//! step.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use rstscope_decode::{tcp_flags::*, Segment, TcpOptions};
use rstscope_reset::{EventOptions, ResetEvent};

use crate::{reference, FlowConfig, Tracker};

#[derive(Debug, Clone)]
struct Pk {
    conv: usize,
    reverse: bool,
    dt_ns: i64,
    flags: u16,
    seq: u32,
    ack: u32,
    win: u16,
    ttl: u8,
    ip_id: Option<u16>,
    payload: Vec<u8>,
    extra_len: u32,
    wscale: Option<u8>,
}

const CONVS: &[(&str, u16, &str, u16)] = &[
    ("10.0.0.1", 40000, "10.0.0.2", 80),
    ("10.0.0.1", 40001, "10.0.0.2", 80),
    ("10.0.0.3", 7000, "10.0.0.1", 50000),
    ("10.0.0.2", 502, "10.0.0.9", 502),
    ("2001:db8::1", 40000, "2001:db8::2", 443),
    ("2001:db8::2", 443, "2001:db8::1", 40000), // the same pair, listed the other way
    ("10.0.0.1", 40000, "::ffff:10.0.0.2", 80), // mixed families
    ("10.0.0.5", 1234, "10.0.0.5", 1234),       // a host talking to itself
    ("192.0.2.1", 22, "198.51.100.7", 61000),
];

fn seq_choice() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => prop::sample::select(vec![0u32, 1, 1000, 1001, 1002, 1006, 1500, 5000, 5001, 5002, 5018]),
        1 => prop::sample::select(vec![u32::MAX, u32::MAX - 1, 0x8000_0000, 7777, 7778]),
        1 => any::<u32>(),
    ]
}

fn pk() -> impl Strategy<Value = Pk> {
    let flags = prop_oneof![
        3 => Just(SYN),
        2 => Just(SYN | ACK),
        4 => Just(ACK),
        3 => Just(PSH | ACK),
        2 => Just(FIN | ACK),
        1 => Just(FIN),
        3 => Just(RST),
        3 => Just(RST | ACK),
        1 => Just(SYN | RST),
        1 => Just(FIN | RST | ACK),
        1 => Just(SYN | FIN),
        1 => Just(0u16),
        1 => any::<u16>().prop_map(|f| f & 0xfff),
    ];
    let dt_ms = prop_oneof![
        6 => Just(0i64),
        8 => 1i64..1000,
        2 => 1000i64..3000,
        1 => 4900i64..5100,
        1 => 59_000i64..61_000,
        1 => 299_000i64..301_000,
        1 => -7000i64..0,
        1 => -400_000i64..-100_000,
    ];
    let payload = prop_oneof![
        6 => Just(Vec::new()),
        3 => prop::collection::vec(any::<u8>(), 1..24),
        1 => (any::<u8>(), any::<u32>()).prop_map(|(code, pen)| {
            let mut v = vec![0x33, 0xaa, code];
            v.extend_from_slice(&pen.to_be_bytes()[1..]);
            v.push(0);
            v.truncate(8);
            v
        }),
    ];
    (
        (0..CONVS.len(), any::<bool>(), dt_ms, 0i64..1000, flags),
        (seq_choice(), seq_choice()),
        (
            prop::sample::select(vec![0u16, 0, 1000, 2304, 16384, 65535]),
            prop::sample::select(vec![64u8, 64, 64, 55, 55, 100, 101, 251, 45]),
            prop_oneof![
                1 => Just(None),
                3 => prop::sample::select(vec![0u16, 1, 2, 3, 4, 100, 101, 300, 40000, 65535]).prop_map(Some),
            ],
        ),
        (payload, prop_oneof![4 => Just(0u32), 1 => 1u32..2000]),
        prop_oneof![4 => Just(None), 1 => (0u8..20).prop_map(Some)],
    )
        .prop_map(
            |((conv, reverse, dt_ms, jitter, flags), (seq, ack), (win, ttl, ip_id), (payload, extra_len), wscale)| Pk {
                conv,
                reverse,
                dt_ns: dt_ms * 1_000_000 + jitter,
                flags,
                seq,
                ack,
                win,
                ttl,
                ip_id,
                payload,
                extra_len,
                wscale,
            },
        )
}

fn config() -> impl Strategy<Value = FlowConfig> {
    (
        prop::sample::select(vec![1_000_000usize, 1, 2, 3, 5]),
        prop::sample::select(vec![1000u32, 3]),
        prop::sample::select(vec![256usize, 4]),
        prop::sample::select(vec![0u16, 7]),
    )
        .prop_map(
            |(max_connections, storm_count, max_payload, seed)| FlowConfig {
                max_connections,
                storm_count,
                events: EventOptions {
                    community_id_seed: seed,
                    max_payload,
                },
                ..FlowConfig::default()
            },
        )
}

const T0: i64 = 1_700_000_000_000_000_000;

/// Run both trackers over the stream, comparing counters after every packet and the rows at
/// the end; and a second tracker (another random hash seed) must give the same bytes.
fn compare(cfg: FlowConfig, pks: &[Pk]) {
    let mut new = Tracker::new(cfg);
    let mut other_seed = Tracker::new(cfg);
    let mut old = reference::Tracker::new(cfg);
    for (i, seg) in stream(pks).iter().enumerate() {
        new.process(seg, b"diff.pcap");
        other_seed.process(seg, b"diff.pcap");
        old.process(seg, b"diff.pcap");
        assert_eq!(new.stats(), old.stats(), "counters after packet {i}");
        assert_eq!(
            new.live_connections(),
            old.live_connections(),
            "live connections after packet {i}"
        );
    }
    // Rows come out in no particular order (runs sort them): compared in the log's order.
    let (ev_new, st_new) = sorted(new.finish());
    let (ev_old, st_old) = sorted(old.finish());
    assert_eq!(st_new, st_old);
    assert_eq!(sorted(other_seed.finish()), (ev_new.clone(), st_new));
    assert_eq!(ev_new.len(), ev_old.len());
    for (i, (n, o)) in ev_new.iter().zip(&ev_old).enumerate() {
        assert_eq!(n, o, "row {i}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn same_rows_as_the_reference_tracker(cfg in config(), pks in prop::collection::vec(pk(), 1..300)) {
        compare(cfg, &pks);
    }
}

/// A tiny deterministic PRNG for the long streams below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Long streams over many connections: the table and the timer ring under load, with and
/// without a cap.
#[test]
fn long_streams_match_the_reference_tracker() {
    let flags = [
        SYN,
        SYN | ACK,
        ACK,
        PSH | ACK,
        FIN | ACK,
        RST,
        RST | ACK,
        ACK,
        PSH | ACK,
    ];
    for (seed, max_connections) in [(1u64, 1_000_000usize), (2, 100), (3, 7)] {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut t = T0;
        let mut new = Tracker::new(FlowConfig {
            max_connections,
            ..FlowConfig::default()
        });
        let mut old = reference::Tracker::new(FlowConfig {
            max_connections,
            ..FlowConfig::default()
        });
        let payload = [7u8; 64];
        for i in 0..60_000u64 {
            t += match rng.below(100) {
                0 => 6_000_000_000,
                1 => 70_000_000_000,
                2 => -3_000_000_000,
                3..=40 => 0,
                _ => rng.below(50_000_000) as i64,
            };
            let host = rng.below(400) as u32;
            let v6 = host.is_multiple_of(17);
            let (src, dst): (std::net::IpAddr, std::net::IpAddr) = if v6 {
                (
                    std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | host as u128).into(),
                    "2001:db8::80".parse().unwrap(),
                )
            } else {
                (
                    std::net::Ipv4Addr::from(0x0a00_0000 | host).into(),
                    "192.0.2.80".parse().unwrap(),
                )
            };
            let sport = 1024 + rng.below(3) as u16;
            let dport = [80u16, 443, 8081][rng.below(3) as usize];
            let reverse = rng.below(2) == 0;
            let f = flags[rng.below(flags.len() as u64) as usize];
            let plen = if f & PSH != 0 {
                rng.below(64) as usize
            } else {
                0
            };
            let seg = Segment {
                ts_ns: t,
                file: 0,
                frame: i + 1,
                src: if reverse { dst } else { src },
                dst: if reverse { src } else { dst },
                ttl: [64u8, 55, 120][rng.below(3) as usize],
                ip_id: (!v6).then(|| rng.below(5) as u16),
                df: (!v6).then_some(false),
                sport: if reverse { dport } else { sport },
                dport: if reverse { sport } else { dport },
                seq: 1000 + rng.below(4000) as u32,
                ack: 5000 + rng.below(4000) as u32,
                flags: f,
                window: [0u16, 512, 65535][rng.below(3) as usize],
                options: TcpOptions::default(),
                payload_len: plen as u32,
                payload: &payload[..plen],
                tunnel_depth: 0,
            };
            new.process(&seg, b"long.pcap");
            old.process(&seg, b"long.pcap");
            assert_eq!(new.stats(), old.stats(), "seed {seed}, packet {i}");
        }
        let (ev_new, st_new) = sorted(new.finish());
        let (ev_old, st_old) = sorted(old.finish());
        assert_eq!(st_new, st_old, "seed {seed}");
        assert!(st_new.connections > 1000, "{st_new:?}");
        if max_connections < 1000 {
            assert!(st_new.evicted > 100, "{st_new:?}");
        }
        assert_eq!(ev_new.len(), ev_old.len(), "seed {seed}");
        for (i, (n, o)) in ev_new.iter().zip(&ev_old).enumerate() {
            assert_eq!(n, o, "seed {seed}, row {i}");
        }
    }
}

/// Rows in the log's order.
fn sorted<S>((mut rows, stats): (Vec<ResetEvent>, S)) -> (Vec<ResetEvent>, S) {
    rows.sort_by(|a, b| a.log_order(b));
    (rows, stats)
}

/// The segments of a generated stream, in order (payloads borrowed from the packets).
fn stream(pks: &[Pk]) -> Vec<Segment<'_>> {
    let mut t = T0;
    pks.iter()
        .enumerate()
        .map(|(i, pk)| {
            t += pk.dt_ns;
            let (a, ap, b, bp) = CONVS[pk.conv];
            let (src, sport, dst, dport) = if pk.reverse {
                (b, bp, a, ap)
            } else {
                (a, ap, b, bp)
            };
            let src: std::net::IpAddr = src.parse().unwrap();
            let dst: std::net::IpAddr = dst.parse().unwrap();
            let v4 = src.is_ipv4();
            Segment {
                ts_ns: t,
                file: 0,
                frame: i as u64 + 1,
                src,
                dst,
                ttl: pk.ttl,
                ip_id: if v4 { pk.ip_id } else { None },
                df: v4.then_some(true),
                sport,
                dport,
                seq: pk.seq,
                ack: pk.ack,
                flags: pk.flags,
                window: pk.win,
                options: TcpOptions {
                    window_scale: pk.wscale,
                    ..Default::default()
                },
                payload_len: pk.payload.len() as u32 + pk.extra_len,
                payload: &pk.payload,
                tunnel_depth: 0,
            }
        })
        .collect()
}

/// A carry written to bytes and read back.
fn through_bytes(carry: crate::Carry) -> crate::Carry {
    let file = crate::write_carry_file(&[crate::StreamCarry {
        carry,
        ..Default::default()
    }]);
    let mut back = crate::read_carry_file(&file).expect("carry reads back");
    assert_eq!(back.len(), 1);
    back.remove(0).carry
}

/// The stream cut into pieces at `cuts`, each piece run by `workers` trackers (a connection
/// always with the same one), the carry between pieces written to bytes and read back.
fn rows_in_pieces(
    cfg: FlowConfig,
    segs: &[Segment<'_>],
    cuts: &[usize],
    workers: usize,
) -> Vec<ResetEvent> {
    let owner = |a: (std::net::IpAddr, u16), b: (std::net::IpAddr, u16)| {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        (format!("{lo:?}{hi:?}").len() + lo.1 as usize + hi.1 as usize) % workers
    };
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(segs.len())).collect();
    bounds.sort_unstable();
    bounds.push(segs.len());
    let mut rows = Vec::new();
    let mut carry = crate::Carry::new();
    let mut start = 0;
    for (n, &end) in bounds.iter().enumerate() {
        let mut trackers: Vec<Tracker> = std::mem::take(&mut carry)
            .split(workers, owner)
            .into_iter()
            .map(|c| Tracker::resume(cfg, c))
            .collect();
        for s in &segs[start..end] {
            trackers[owner((s.src, s.sport), (s.dst, s.dport))].process(s, b"diff.pcap");
        }
        let clock = segs[..end]
            .iter()
            .map(|s| s.ts_ns)
            .max()
            .unwrap_or(i64::MIN);
        let last = n + 1 == bounds.len();
        let mut parts = Vec::new();
        for t in trackers {
            if last {
                rows.extend(t.finish().0);
            } else {
                let (done, _, c) = t.suspend(clock);
                rows.extend(done);
                parts.push(c);
            }
        }
        if !last {
            carry = through_bytes(crate::Carry::merge(parts));
        }
        start = end;
    }
    rows.sort_by(|a, b| a.log_order(b));
    rows
}

fn rows_in_one_piece(cfg: FlowConfig, segs: &[Segment<'_>]) -> Vec<ResetEvent> {
    let mut t = Tracker::new(cfg);
    for s in segs {
        t.process(s, b"diff.pcap");
    }
    sorted(t.finish()).0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// The one invariant of the carry: a stream cut anywhere, its carry saved and read back
    /// between the pieces, gives the rows of one run over the whole stream, every field —
    /// with time going backwards, every flag combination and every timer crossed at a cut.
    #[test]
    fn a_stream_cut_into_pieces_gives_the_rows_of_one_piece(
        cfg in config(),
        pks in prop::collection::vec(pk(), 1..200),
        cuts in prop::collection::vec(0usize..200, 0..5),
    ) {
        let cfg = FlowConfig { max_connections: 1_000_000, ..cfg };
        let segs = stream(&pks);
        prop_assert_eq!(rows_in_pieces(cfg, &segs, &cuts, 1), rows_in_one_piece(cfg, &segs));
    }

    /// The same with the connections divided among workers, their number changing from piece
    /// to piece (packet time going forward: workers see only their own packets' clock).
    #[test]
    fn workers_resume_the_carry_of_any_number_of_workers(
        pks in prop::collection::vec(pk(), 1..200),
        cuts in prop::collection::vec(0usize..200, 1..4),
        workers in 1usize..4,
    ) {
        let pks: Vec<Pk> = pks.into_iter().map(|p| Pk { dt_ns: p.dt_ns.abs(), ..p }).collect();
        let cfg = FlowConfig::default();
        let segs = stream(&pks);
        let one = rows_in_one_piece(cfg, &segs);
        prop_assert_eq!(rows_in_pieces(cfg, &segs, &cuts, workers), one);
    }
}

/// 150 packets drawn once from the strategy, the same on every run.
fn fixed_packets() -> Vec<Pk> {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    prop::collection::vec(pk(), 150)
        .new_tree(&mut runner)
        .unwrap()
        .current()
}

/// Carries of hostile bytes: every truncation of a real carry is an error; flipped bytes give
/// an error or a carry a tracker can resume from and run on without panicking.
#[test]
fn corrupt_carries_are_errors_or_harmless() {
    let pks = fixed_packets();
    let segs = stream(&pks);
    let mut t = Tracker::new(FlowConfig::default());
    for s in &segs[..100] {
        t.process(s, b"diff.pcap");
    }
    let (_, _, carry) = t.suspend(i64::MIN);
    assert!(!carry.is_empty());
    let file = crate::write_carry_file(&[crate::StreamCarry {
        carry,
        ..Default::default()
    }]);
    for n in 0..file.len() {
        assert!(
            crate::read_carry_file(&file[..n]).is_err(),
            "truncated to {n} bytes"
        );
    }
    // Bytes flipped behind a checksum made right again: errors when read, or connections
    // dropped and counted when decoded — never a panic.
    let mut dropped = 0;
    for i in (24..file.len()).step_by(3) {
        let mut b = file.clone();
        b[i] = b[i].wrapping_add(0x5b);
        let crc = crc32fast::hash(&b[24..]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        if let Ok(mut streams) = crate::read_carry_file(&b) {
            let mut t = Tracker::resume(FlowConfig::default(), streams.remove(0).carry);
            for s in &segs[100..] {
                t.process(s, b"diff.pcap");
            }
            dropped += t.finish().1.carry_errors;
        }
    }
    assert!(dropped > 0, "some flipped bytes reach the lazy decoder");
}

/// Capture file and sensor names that are not UTF-8 (legal on Linux) keep their bytes: in the
/// rows a tracker makes, in rows it carries, and in a stream's carried names.
#[test]
fn names_that_are_not_utf8_keep_their_bytes_through_a_carry() {
    let pks = fixed_packets();
    let segs = stream(&pks);
    let name: &[u8] = b"bad\xff\xfe.pcap";
    let mut t = Tracker::new(FlowConfig::default());
    for s in &segs[..100] {
        t.process(s, name);
    }
    let (mut rows, _, carry) = t.suspend(i64::MIN);
    let file = crate::write_carry_file(&[crate::StreamCarry {
        sensor: Some(b"edge\xc3(".to_vec()),
        last_file: Some((7, name.to_vec())),
        carry,
    }]);
    let mut back = crate::read_carry_file(&file).expect("carry reads back");
    let s = back.remove(0);
    assert_eq!(s.sensor.as_deref(), Some(&b"edge\xc3("[..]));
    assert_eq!(s.last_file, Some((7, name.to_vec())));
    let mut t = Tracker::resume(FlowConfig::default(), s.carry);
    for s in &segs[100..] {
        t.process(s, b"next.pcap");
    }
    rows.extend(t.finish().0);
    assert!(
        rows.iter().any(|r| &*r.source == name),
        "rows of the first file"
    );
    assert!(rows
        .iter()
        .all(|r| &*r.source == name || &*r.source == b"next.pcap"));
}
