//! Fuzz harness for connection tracking and RST classification (`rstscope_flow::Tracker`).
//!
//! Shared by the cargo-fuzz target `classifier` and the regression test
//! `crates/flow/tests/fuzz_regressions.rs` (both include this file with `#[path]`).
//!
//! Input layout: 2 bytes of configuration, then records of [`RECORD`] bytes, one segment each.
//! Addresses and ports come from small pools so that connections collide, sequence and
//! acknowledgment numbers can be taken relative to what the peers sent (so the in-window and
//! exact-sequence branches are reachable), and time mostly moves forward, by anything from
//! nothing to hours, and sometimes goes backwards.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rstscope_decode::{Segment, TcpOptions};
use rstscope_flow::{injected_rule, Cause, Evidence, FlowConfig, Tracker};
use rstscope_reset::ResetEvent;

/// Bytes per segment record.
pub const RECORD: usize = 20;

const RST: u16 = 0x004;

fn addr(i: u8) -> IpAddr {
    match i & 7 {
        0 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        1 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        2 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        3 => IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)),
        4 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        5 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::new(255, 255, 255, 255)),
    }
}

const PORTS: [u16; 8] = [80, 443, 1234, 49152, 0, 22, 65535, 6667];

/// Payload bytes: a registry RST diagnostic payload first, then text.
static PAYLOAD: [u8; 64] = *b"\x33\xaa\x00\x04\x00\x00\x00\x00220 mailgate ready\r\nHTTP/1.1 403 Forbidden\r\n\r\n#\t-\x00\xff.....";

/// Run a tracker over the records in `data`; check its invariants; return its events.
pub fn run(data: &[u8]) -> Vec<ResetEvent> {
    if data.len() < 2 {
        return Vec::new();
    }
    let (cfg_bytes, mut recs) = data.split_at(2);
    let mut cfg = FlowConfig::default();
    if cfg_bytes[0] & 1 != 0 {
        cfg.max_connections = 1 + (cfg_bytes[0] >> 1 & 7) as usize;
    }
    if cfg_bytes[0] & 0x10 != 0 {
        // Small thresholds so storms and bursts are reachable in a short input.
        cfg.storm_count = 2 + u32::from(cfg_bytes[1] & 7);
        cfg.burst_count = 2 + u32::from(cfg_bytes[1] >> 3 & 3);
    }
    if cfg_bytes[0] & 0x20 != 0 {
        cfg.events.max_payload = usize::from(cfg_bytes[1] >> 5);
    }
    cfg.events.community_id_seed = u16::from(cfg_bytes[1]);
    let take_done_often = cfg_bytes[0] & 0x40 != 0;
    let max_live = cfg.max_connections as u64;

    let mut tracker = Tracker::new(cfg);
    let mut events: Vec<ResetEvent> = Vec::new();
    let mut rst_frames: Vec<u64> = Vec::new();
    // Time starts in 2023, or (a crafted pcapng can say so) at the ends of the i64 range.
    let mut ts: i64 = match (cfg_bytes[0] & 0x80 != 0, cfg_bytes[1] & 1 != 0) {
        (false, _) => 1_700_000_000_000_000_000,
        (true, false) => i64::MAX - 200_000_000_000,
        (true, true) => i64::MIN + 1,
    };
    // Last seq+len sent and last ack sent by each address of the pool.
    let mut next_seq = [0u32; 8];
    let mut last_ack = [0u32; 8];
    let mut frame = 0u64;
    while recs.len() >= RECORD {
        let (r, tail) = recs.split_at(RECORD);
        recs = tail;
        frame += 1;
        let si = r[0] & 7;
        let di = (r[0] >> 3) & 7;
        let sport = PORTS[(r[1] & 7) as usize];
        let dport = PORTS[(r[1] >> 3 & 7) as usize];
        let raw_seq = u32::from_be_bytes([r[2], r[3], r[4], r[5]]);
        let raw_ack = u32::from_be_bytes([r[6], r[7], r[8], r[9]]);
        // Relative numbers: small signed offsets from what the peers sent.
        let seq = if r[1] & 0x40 != 0 {
            next_seq[si as usize].wrapping_add(i32::from(r[2] as i8) as u32)
        } else {
            raw_seq
        };
        let ack = if r[1] & 0x80 != 0 {
            next_seq[di as usize].wrapping_add(i32::from(r[6] as i8) as u32)
        } else {
            raw_ack
        };
        let flags = u16::from_be_bytes([r[10], r[11]]) & 0x0fff;
        let window = u16::from_be_bytes([r[12], r[13]]);
        let ttl = r[14];
        let ip_id = u16::from_be_bytes([r[15], r[16]]);
        let payload_len = u32::from(r[17] & 0x3f);
        let captured = (payload_len as usize).min(PAYLOAD.len()) >> (r[17] >> 6);
        let dt = u16::from_be_bytes([r[18], r[19]]);
        // Time: top 2 bits of the delta choose the scale.
        let step = i64::from(dt & 0x3fff);
        ts = match dt >> 14 {
            0 => ts.saturating_add(step * 1_000),      // up to 16 ms, in µs
            1 => ts.saturating_add(step * 10_000_000), // up to 164 s
            2 => ts.saturating_add(step * 1_000_000_000), // up to 4.5 h
            // A crafted pcapng can jump between the ends of the i64 range.
            _ if step >> 8 == 0x3f => {
                if ts >= 0 {
                    i64::MIN + 1 + (step & 0xff) * 1_000_000_000
                } else {
                    i64::MAX - (step & 0xff) * 1_000_000_000
                }
            }
            _ => ts.saturating_sub((step & 0xff) * 1_000_000), // backwards, up to 255 ms
        };
        let v4 = matches!(addr(si), IpAddr::V4(_));
        let options = TcpOptions {
            mss: (flags & 0x002 != 0).then_some(1460),
            window_scale: (r[13] & 0x10 != 0).then_some(r[13] & 0x0f),
            sack_permitted: r[13] & 0x20 != 0,
            timestamp: (r[13] & 0x40 != 0).then_some((raw_seq, raw_ack)),
        };
        let seg = Segment {
            ts_ns: ts,
            file: 0,
            frame,
            src: addr(si),
            dst: addr(if matches!(addr(di), IpAddr::V4(_)) == v4 {
                di
            } else {
                di ^ 4
            }),
            ttl,
            ip_id: v4.then_some(ip_id),
            df: v4.then_some(r[14] & 1 != 0),
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
            options,
            payload_len,
            payload: &PAYLOAD[..captured],
            tunnel_depth: 0,
        };
        if flags & RST != 0 {
            rst_frames.push(frame);
        } else {
            let used = payload_len + u32::from(flags & 0x003 != 0);
            next_seq[si as usize] = seq.wrapping_add(used);
            last_ack[si as usize] = ack;
        }
        tracker.process(&seg, b"fuzz.pcap");
        assert!(
            tracker.live_connections() <= max_live,
            "{} connections live, limit {max_live}",
            tracker.live_connections()
        );
        if take_done_often {
            events.extend(tracker.take_done());
        }
    }
    let (rest, stats) = tracker.finish();
    events.extend(rest);
    assert_eq!(stats.segments, frame, "segments counted");
    assert!(stats.peak_connections <= max_live);

    // Every RST gives exactly one event, and every event is a RST that was fed.
    assert_eq!(
        events.len(),
        rst_frames.len(),
        "{} RSTs gave {} events",
        rst_frames.len(),
        events.len()
    );
    let got: BTreeSet<u64> = events.iter().map(|e| e.frame).collect();
    assert_eq!(got.len(), events.len(), "two events for one RST");
    assert_eq!(got, rst_frames.iter().copied().collect::<BTreeSet<u64>>());

    let causes: Vec<&str> = Cause::ALL.iter().map(|c| c.name()).collect();
    for e in &events {
        let cause = e.cause.as_deref().expect("every event has a cause");
        assert!(causes.contains(&cause), "unknown cause {cause}");
        let names = e.evidence.as_ref().expect("every event has evidence");
        let mut ev = Evidence(0);
        for n in names {
            let (bit, _) = Evidence::NAMES
                .iter()
                .find(|(_, name)| name == n)
                .unwrap_or_else(|| panic!("unknown evidence {n}"));
            ev.add(*bit);
        }
        assert!(names.windows(2).all(|w| w[0] < w[1]), "evidence not sorted");
        assert_eq!(e.injected, Some(injected_rule(ev)), "injected rule");
        if e.flags & 0x003 != 0 {
            assert_eq!(cause, "invalid", "RST with SYN or FIN");
        }
        assert!(e.flags & RST != 0);
        assert!(e.rst_count.unwrap_or(0) >= 1, "rst_count");
        let hist = e.history.as_deref().expect("history");
        assert!(!hist.is_empty());
        assert!(e.conn_state.is_some(), "conn_state");
        assert!(e.uid.starts_with('C') && e.uid.len() > 1, "uid {}", e.uid);
        assert!(e.community_id.starts_with("1:"));
        if let Some(p) = &e.payload {
            assert!(p.len() <= cfg.events.max_payload);
        }
        // The row renders.
        let _ = e.values();
    }
    events
}

/// Target `classifier`.
pub fn fuzz_classifier(data: &[u8]) {
    let _ = run(data);
}
