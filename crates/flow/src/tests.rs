//! Scenario tests: crafted packet sequences with the rows they must give.

use super::*;
use rstscope_decode::{tcp_flags::*, Segment, TcpOptions};
use rstscope_reset::ResetEvent;

/// A packet under construction.
#[derive(Clone)]
struct P {
    src: &'static str,
    sport: u16,
    dst: &'static str,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u16,
    win: u16,
    ttl: u8,
    ip_id: u16,
    payload: Vec<u8>,
    wscale: Option<u8>,
}

fn p(src: &'static str, sport: u16, dst: &'static str, dport: u16) -> P {
    P {
        src,
        sport,
        dst,
        dport,
        seq: 0,
        ack: 0,
        flags: ACK,
        win: 65535,
        ttl: 64,
        ip_id: 0,
        payload: Vec::new(),
        wscale: None,
    }
}

impl P {
    fn seq(mut self, v: u32) -> P {
        self.seq = v;
        self
    }
    fn ack(mut self, v: u32) -> P {
        self.ack = v;
        self
    }
    fn flags(mut self, v: u16) -> P {
        self.flags = v;
        self
    }
    fn win(mut self, v: u16) -> P {
        self.win = v;
        self
    }
    fn ttl(mut self, v: u8) -> P {
        self.ttl = v;
        self
    }
    fn id(mut self, v: u16) -> P {
        self.ip_id = v;
        self
    }
    fn data(mut self, v: &[u8]) -> P {
        self.payload = v.to_vec();
        self
    }
    fn wscale(mut self, v: u8) -> P {
        self.wscale = Some(v);
        self
    }
    fn reply(&self) -> P {
        p(self.dst, self.dport, self.src, self.sport)
    }
}

/// Feeds packets with a clock in milliseconds.
struct Sc {
    t: Tracker,
    ms: i64,
    frame: u64,
}

const T0: i64 = 1_700_000_000_000_000_000;

impl Sc {
    fn new() -> Sc {
        Sc::with(FlowConfig::default())
    }
    fn with(cfg: FlowConfig) -> Sc {
        Sc {
            t: Tracker::new(cfg),
            ms: 0,
            frame: 0,
        }
    }
    /// Advance `dt_ms` milliseconds, then send `pk`.
    fn at(&mut self, dt_ms: i64, pk: &P) -> &mut Sc {
        self.ms += dt_ms;
        self.frame += 1;
        let seg = Segment {
            ts_ns: T0 + self.ms * 1_000_000,
            file: 0,
            frame: self.frame,
            src: pk.src.parse().unwrap(),
            dst: pk.dst.parse().unwrap(),
            ttl: pk.ttl,
            ip_id: if pk.src.contains(':') {
                None
            } else {
                Some(pk.ip_id)
            },
            df: if pk.src.contains(':') {
                None
            } else {
                Some(true)
            },
            sport: pk.sport,
            dport: pk.dport,
            seq: pk.seq,
            ack: pk.ack,
            flags: pk.flags,
            window: pk.win,
            options: TcpOptions {
                window_scale: pk.wscale,
                ..Default::default()
            },
            payload_len: pk.payload.len() as u32,
            payload: &pk.payload,
            tunnel_depth: 0,
        };
        self.t.process(&seg, b"test.pcap");
        self
    }
    fn rows(self) -> Vec<ResetEvent> {
        let (mut ev, _) = self.t.finish();
        ev.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        ev
    }
}

fn cause(e: &ResetEvent) -> &str {
    e.cause.as_deref().unwrap()
}

fn ev(e: &ResetEvent) -> Vec<&'static str> {
    e.evidence.clone().unwrap()
}

fn has(e: &ResetEvent, name: &str) -> bool {
    ev(e).contains(&name)
}

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

/// A full handshake: client ISN 1000, server ISN 5000. Returns (client, server) templates.
fn handshake(sc: &mut Sc) -> (P, P) {
    let c = p(C, 40000, S, 80).ttl(64);
    let s = c.reply().ttl(55);
    sc.at(0, &c.clone().seq(1000).flags(SYN).id(1))
        .at(10, &s.clone().seq(5000).ack(1001).flags(SYN | ACK).id(100))
        .at(1, &c.clone().seq(1001).ack(5001).id(2));
    (c, s)
}

#[test]
fn seed_refused_syn() {
    let mut sc = Sc::new();
    let c = p(C, 40000, S, 23);
    sc.at(0, &c.clone().seq(7777).flags(SYN))
        .at(1, &c.reply().seq(0).ack(7778).flags(RST | ACK).win(0));
    let r = sc.rows();
    assert_eq!(r.len(), 1);
    let e = &r[0];
    assert_eq!(cause(e), "refused");
    assert_eq!(ev(e), ["ack_syn", "seq_zero"]);
    assert_eq!(e.injected, Some(false));
    assert_eq!(e.conn_state.as_deref(), Some("REJ"));
    assert_eq!(e.history.as_deref(), Some("Sr"));
    assert_eq!((e.orig_h.to_string().as_str(), e.orig_p), (C, 40000));
    assert!(!e.is_orig);
    assert_eq!(
        (e.orig_pkts, e.resp_pkts, e.rst_count),
        (Some(1), Some(0), Some(1))
    );
    assert_eq!(e.sender_ttl, None);
    assert_eq!(e.idle_ns, Some(1_000_000));
}

#[test]
fn refused_syn_retried_gives_one_connection_each_and_no_injection() {
    let mut sc = Sc::new();
    let c = p(C, 40000, S, 23);
    for _ in 0..4 {
        sc.at(1000, &c.clone().seq(7777).flags(SYN))
            .at(1, &c.reply().seq(0).ack(7778).flags(RST | ACK).win(0));
    }
    let r = sc.rows();
    assert_eq!(r.len(), 4);
    let uids: std::collections::BTreeSet<_> = r.iter().map(|e| e.uid.clone()).collect();
    assert_eq!(
        uids.len(),
        4,
        "each retry is its own connection, as in Zeek"
    );
    for e in &r {
        assert_eq!(cause(e), "refused");
        assert_eq!(e.injected, Some(false));
        assert_eq!(e.conn_state.as_deref(), Some("REJ"));
        assert_eq!(e.rst_count, Some(1));
        assert!(!has(e, "burst"));
    }
}

#[test]
fn ips_reset_with_payload_to_both_ends_is_injected() {
    let mut sc = Sc::new();
    let (c, s) = handshake(&mut sc);
    sc.at(
        5,
        &s.clone()
            .seq(5001)
            .ack(1001)
            .flags(PSH | ACK)
            .data(b"220 mailgateway\r\n"),
    )
    .at(
        1,
        &s.clone()
            .seq(5018)
            .ack(1001)
            .flags(RST | ACK)
            .ttl(251)
            .win(16384)
            .data(b"220 mailgat"),
    )
    .at(
        0,
        &c.clone()
            .seq(1001)
            .ack(5018)
            .flags(RST | ACK)
            .ttl(251)
            .win(16384)
            .data(b"220 mailgat"),
    );
    let r = sc.rows();
    assert_eq!(r.len(), 2);
    for e in &r {
        assert_eq!(cause(e), "abort");
        assert!(
            has(e, "payload") && has(e, "ttl_mismatch") && has(e, "win_nonzero"),
            "{:?}",
            ev(e)
        );
        assert_eq!(e.injected, Some(true));
        assert_eq!(e.payload.as_deref(), Some(&b"220 mailgat"[..]));
    }
    assert_eq!(r[0].sender_ttl, Some(55));
    assert_eq!(r[1].sender_ttl, Some(64));
}

#[test]
fn nmap_half_open_scan() {
    let mut sc = Sc::new();
    for port in [22u16, 80, 443] {
        let sc_p = p("203.0.113.9", 61000, S, port).ttl(40);
        sc.at(1, &sc_p.clone().seq(0xdead).flags(SYN).win(1024))
            .at(1, &sc_p.reply().seq(9).ack(0xdeae).flags(SYN | ACK))
            .at(1, &sc_p.clone().seq(0xdeae).flags(RST).win(0));
    }
    let r = sc.rows();
    assert_eq!(r.len(), 3);
    for e in &r {
        assert_eq!(cause(e), "handshake_abort");
        assert!(e.is_orig);
        assert_eq!(e.history.as_deref(), Some("ShR"));
        assert_eq!(e.conn_state.as_deref(), Some("RSTO"));
        assert_eq!(e.injected, Some(false));
    }
}

#[test]
fn abort_by_either_side() {
    for client_aborts in [true, false] {
        let mut sc = Sc::new();
        let (c, s) = handshake(&mut sc);
        sc.at(
            5,
            &c.clone()
                .seq(1001)
                .ack(5001)
                .flags(PSH | ACK)
                .data(b"GET /"),
        );
        sc.at(5, &s.clone().seq(5001).ack(1006).data(b"HTTP/1.1 200"));
        if client_aborts {
            sc.at(5, &c.clone().seq(1006).ack(5013).flags(RST | ACK).win(0));
        } else {
            sc.at(5, &s.clone().seq(5013).ack(1006).flags(RST | ACK).win(0));
        }
        let r = sc.rows();
        let e = &r[0];
        assert_eq!(cause(e), "abort");
        assert_eq!(e.is_orig, client_aborts);
        assert_eq!(
            e.conn_state.as_deref(),
            Some(if client_aborts { "RSTO" } else { "RSTR" })
        );
        assert_eq!(
            e.history.as_deref(),
            Some(if client_aborts { "ShADdR" } else { "ShADdr" })
        );
        assert_eq!(
            ev(e),
            Vec::<&str>::new(),
            "an exact, genuine RST has no evidence"
        );
        assert_eq!(e.injected, Some(false));
        assert_eq!(e.sender_ttl, Some(if client_aborts { 64 } else { 55 }));
    }
}

#[test]
fn rst_after_fin_each_way() {
    for client_fin in [true, false] {
        let mut sc = Sc::new();
        let (c, s) = handshake(&mut sc);
        if client_fin {
            sc.at(5, &c.clone().seq(1001).ack(5001).flags(FIN | ACK))
                .at(5, &s.clone().seq(5001).ack(1002).flags(RST | ACK).win(0));
        } else {
            sc.at(5, &s.clone().seq(5001).ack(1001).flags(FIN | ACK))
                .at(5, &c.clone().seq(1001).ack(5002).flags(RST | ACK).win(0));
        }
        let r = sc.rows();
        let e = &r[0];
        assert_eq!(cause(e), "after_close");
        assert_eq!(
            e.conn_state.as_deref(),
            Some(if client_fin { "RSTR" } else { "RSTO" })
        );
        assert_eq!(
            e.history.as_deref(),
            Some(if client_fin { "ShAFr" } else { "ShAfR" })
        );
        assert_eq!(e.injected, Some(false));
    }
}

#[test]
fn ack_to_closed_port_answered_by_bare_rst_is_unsolicited() {
    let mut sc = Sc::new();
    let c = p("198.51.100.3", 5555, S, 8081);
    sc.at(0, &c.clone().seq(42).ack(0x1234_5678))
        .at(1, &c.reply().seq(0x1234_5678).flags(RST).win(0));
    let r = sc.rows();
    let e = &r[0];
    assert_eq!(cause(e), "unsolicited");
    assert!(!e.is_orig);
    assert_eq!(e.history.as_deref(), Some("Ar"));
    assert_eq!(e.conn_state.as_deref(), Some("RSTRH"));
    assert_eq!(e.injected, Some(false));
}

#[test]
fn capture_starting_mid_connection() {
    let mut sc = Sc::new();
    // The server's data is the first packet: Zeek flips (port 80 is a server port).
    let s = p(S, 80, C, 40001).ttl(55);
    let c = s.reply();
    sc.at(0, &s.clone().seq(9000).ack(300).data(b"more data"))
        .at(1, &c.clone().seq(300).ack(9009))
        .at(1, &c.clone().seq(300).ack(9009).flags(RST | ACK).win(0));
    let r = sc.rows();
    let e = &r[0];
    assert_eq!(cause(e), "abort");
    assert_eq!((e.orig_h.to_string().as_str(), e.orig_p), (C, 40001));
    assert!(e.is_orig);
    assert_eq!(e.history.as_deref(), Some("^dAR"));
    // Both sides partial, the originator reset: Zeek's OTH.
    assert_eq!(e.conn_state.as_deref(), Some("OTH"));
}

#[test]
fn orphan_and_invalid() {
    let mut sc = Sc::new();
    sc.at(0, &p(C, 1, S, 2).seq(5).flags(RST));
    sc.at(0, &p(C, 3, S, 4).seq(5).flags(SYN | RST));
    sc.at(0, &p(C, 5, S, 6).seq(5).flags(SYN));
    sc.at(1, &p(C, 5, S, 6).seq(6).flags(FIN | RST | ACK));
    let r = sc.rows();
    assert_eq!(cause(&r[0]), "orphan");
    assert_eq!(r[0].conn_state.as_deref(), Some("OTH"));
    assert_eq!(r[0].idle_ns, None);
    assert_eq!(cause(&r[1]), "invalid");
    assert_eq!(r[1].history.as_deref(), Some("Q"));
    assert_eq!(cause(&r[2]), "invalid");
    assert_eq!(r[2].history.as_deref(), Some("SI"));
}

#[test]
fn gfw_type1_bare_rst_window_nonzero_ttl_off() {
    let mut sc = Sc::new();
    let (c, s) = handshake(&mut sc);
    sc.at(
        5,
        &c.clone()
            .seq(1001)
            .ack(5001)
            .flags(PSH | ACK)
            .data(b"GET /blocked"),
    );
    // Type-1: RST only, window != 0, a TTL unlike the server's.
    sc.at(1, &s.clone().seq(5001).flags(RST).win(2304).ttl(104));
    let r = sc.rows();
    let e = &r[0];
    assert!(
        has(e, "win_nonzero") && has(e, "ttl_mismatch"),
        "{:?}",
        ev(e)
    );
    assert_eq!(e.injected, Some(true));
}

#[test]
fn gfw_type2_three_rst_ack_with_rising_ttl_and_window() {
    let mut sc = Sc::new();
    let (c, s) = handshake(&mut sc);
    sc.at(
        5,
        &c.clone()
            .seq(1001)
            .ack(5001)
            .flags(PSH | ACK)
            .data(b"GET /blocked"),
    );
    for i in 0..3u16 {
        sc.at(
            0,
            &s.clone()
                .seq(5001)
                .ack(1013)
                .flags(RST | ACK)
                .ttl(100 + i as u8)
                .win(1000 + i * 100),
        );
    }
    let r = sc.rows();
    assert_eq!(r.len(), 3);
    for e in &r {
        for name in ["burst", "ttl_varies", "ttl_mismatch", "win_nonzero"] {
            assert!(has(e, name), "{name}: {:?}", ev(e));
        }
        assert_eq!(e.injected, Some(true));
    }
    assert_eq!(
        r.iter().map(|e| e.rst_count.unwrap()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // Retransmitted RSTs (same seq) give one R in the history.
    assert_eq!(r[2].history.as_deref(), Some("ShADr"));
}

#[test]
fn weaver_rst_seq_data_race() {
    // The injected RST races the real server, which keeps sending data after it.
    let mut sc = Sc::new();
    let (c, s) = handshake(&mut sc);
    sc.at(
        5,
        &c.clone()
            .seq(1001)
            .ack(5001)
            .flags(PSH | ACK)
            .data(b"GET /"),
    )
    .at(1, &s.clone().seq(5001).ack(1006).flags(RST | ACK).win(0))
    .at(2, &s.clone().seq(5001).ack(1006).data(b"HTTP/1.1 200 OK"));
    let r = sc.rows();
    assert!(has(&r[0], "data_after_rst"), "{:?}", ev(&r[0]));
    assert_eq!(r[0].injected, Some(true));
}

#[test]
fn weaver_rst_seq_change_race() {
    // Several RSTs with rising seq beyond anything the server sent (Clayton: +1460, +4380).
    let mut sc = Sc::new();
    let (c, s) = handshake(&mut sc);
    sc.at(
        5,
        &c.clone()
            .seq(1001)
            .ack(5001)
            .flags(PSH | ACK)
            .data(b"GET /"),
    );
    for off in [0u32, 1460, 4380] {
        sc.at(0, &s.clone().seq(5001 + off).flags(RST).win(0));
    }
    let r = sc.rows();
    assert!(!has(&r[0], "seq_change"));
    assert!(has(&r[1], "seq_change") && has(&r[2], "seq_change"));
    assert_eq!(r[1].injected, Some(true));
    assert_eq!(r[2].history.as_deref(), Some("ShADrrr"));
}

#[test]
fn weaver_rst_ack_change_race() {
    let mut sc = Sc::new();
    let (c, s) = handshake(&mut sc);
    sc.at(
        5,
        &c.clone()
            .seq(1001)
            .ack(5001)
            .flags(PSH | ACK)
            .data(b"GET /"),
    )
    .at(1, &s.clone().seq(5001).ack(1006).flags(RST | ACK).win(0))
    .at(0, &s.clone().seq(5001).ack(2006).flags(RST | ACK).win(0));
    let r = sc.rows();
    assert!(has(&r[1], "ack_change"), "{:?}", ev(&r[1]));
    assert_eq!(r[1].injected, Some(true));
    assert!(!has(&r[0], "ack_change"));
}

#[test]
fn weaver_data_seq_rst_race() {
    // A RST computed from a stale packet: behind data the server already sent.
    let mut sc = Sc::new();
    let (c, s) = handshake(&mut sc);
    sc.at(
        5,
        &c.clone()
            .seq(1001)
            .ack(5001)
            .flags(PSH | ACK)
            .data(b"GET /"),
    )
    .at(1, &s.clone().seq(5001).ack(1006).data(&[b'x'; 1000]))
    .at(1, &s.clone().seq(5001).ack(1006).flags(RST | ACK).win(0));
    let r = sc.rows();
    assert!(has(&r[0], "seq_behind"), "{:?}", ev(&r[0]));
    assert_eq!(r[0].injected, Some(true));
}

#[test]
fn rfc5961_challenge_ack_exchange_is_not_injected() {
    // Linux: a RST inside the window but not exact gets a challenge ACK; the peer answers it
    // with the exact RST. Both RSTs are the real client's.
    let mut sc = Sc::new();
    let (c, s) = handshake(&mut sc);
    sc.at(5, &s.clone().seq(5001).ack(1001).data(&[b'y'; 100]));
    sc.at(1, &c.clone().seq(1001).ack(5101));
    // inexact: 500 bytes into the server's window
    sc.at(1, &c.clone().seq(1501).flags(RST).win(0))
        // challenge ACK from the server, carrying its rcv_nxt
        .at(1, &s.clone().seq(5101).ack(1001))
        // the exact RST
        .at(1, &c.clone().seq(1001).flags(RST).win(0));
    let r = sc.rows();
    assert_eq!(r.len(), 2);
    assert!(has(&r[0], "inexact_seq"), "{:?}", ev(&r[0]));
    assert!(!has(&r[1], "inexact_seq") && !has(&r[1], "out_of_window"));
    for e in &r {
        assert_eq!(e.injected, Some(false), "{:?}", ev(e));
    }
    assert_eq!(r[1].history.as_deref(), Some("ShAdRaR"));
}

#[test]
fn out_of_window_rst() {
    let mut sc = Sc::new();
    let (c, s) = handshake(&mut sc);
    sc.at(5, &c.clone().seq(1001).ack(5001).win(1000));
    sc.at(1, &s.clone().seq(5001 + 50_000).flags(RST).win(0));
    let r = sc.rows();
    assert!(has(&r[0], "out_of_window"), "{:?}", ev(&r[0]));
    assert_eq!(r[0].injected, Some(false));
}

#[test]
fn window_scale_widens_the_window() {
    let mut sc = Sc::new();
    let c = p(C, 40000, S, 80);
    let s = c.reply();
    sc.at(0, &c.clone().seq(1000).flags(SYN).wscale(7))
        .at(1, &s.clone().seq(5000).ack(1001).flags(SYN | ACK).wscale(7))
        .at(1, &c.clone().seq(1001).ack(5001).win(1000))
        .at(1, &s.clone().seq(5001 + 50_000).flags(RST).win(0));
    let r = sc.rows();
    assert!(
        has(&r[0], "inexact_seq"),
        "1000 << 7 covers it: {:?}",
        ev(&r[0])
    );
}

#[test]
fn ipid_mismatch() {
    let mut sc = Sc::new();
    let c = p(C, 40000, S, 80);
    let s = c.reply().ttl(55);
    sc.at(0, &c.clone().seq(1000).flags(SYN).id(10))
        .at(1, &s.clone().seq(5000).ack(1001).flags(SYN | ACK).id(300))
        .at(1, &c.clone().seq(1001).ack(5001).id(11))
        .at(1, &s.clone().seq(5001).ack(1001).data(b"x").id(301))
        .at(1, &s.clone().seq(5002).ack(1001).data(b"y").id(302))
        .at(
            1,
            &s.clone().seq(5003).ack(1001).flags(RST).id(40000).win(0),
        );
    let r = sc.rows();
    assert!(has(&r[0], "ipid_mismatch"), "{:?}", ev(&r[0]));
    // ID 0 alone is not a mismatch.
    let mut sc = Sc::new();
    sc.at(0, &c.clone().seq(1000).flags(SYN).id(10))
        .at(1, &s.clone().seq(5000).ack(1001).flags(SYN | ACK).id(300))
        .at(1, &s.clone().seq(5001).ack(1001).data(b"x").id(301))
        .at(1, &s.clone().seq(5002).ack(1001).flags(RST).id(0).win(0));
    assert!(!has(&sc.rows()[0], "ipid_mismatch"));
}

#[test]
fn host_changing_ttl_on_all_packets_is_not_injected() {
    let mut sc = Sc::new();
    let (c, s) = handshake(&mut sc);
    for i in 0..5u32 {
        sc.at(1, &s.clone().seq(5001 + i).ack(1001).data(b"a"));
    }
    // A route change: every packet from now on has TTL 45, the RST too.
    for i in 5..8u32 {
        sc.at(1, &s.clone().seq(5001 + i).ack(1001).data(b"b").ttl(45));
    }
    sc.at(
        1,
        &s.clone()
            .seq(5009)
            .ack(1001)
            .flags(RST | ACK)
            .ttl(45)
            .win(0),
    );
    let _ = c;
    let r = sc.rows();
    assert!(!has(&r[0], "ttl_mismatch"), "{:?}", ev(&r[0]));
    assert_eq!(r[0].injected, Some(false));
}

#[test]
fn rst_storm() {
    let mut sc = Sc::new();
    let c = p(C, 40000, S, 80);
    sc.at(0, &c.clone().seq(1000).flags(SYN));
    let s = c.reply();
    sc.at(1, &s.clone().seq(5000).ack(1001).flags(SYN | ACK));
    // 1100 RSTs from the client 1 ms apart, walking seq (one R each).
    for i in 0..1100u32 {
        sc.at(1, &c.clone().seq(1001 + i).flags(RST).win(0));
    }
    let r = sc.rows();
    assert_eq!(r.len(), 1100);
    assert!(
        r.iter().all(|e| has(e, "storm")),
        "every RST of the run is part of the storm"
    );
    assert_eq!(r[1099].rst_count, Some(1100));
}

#[test]
fn slow_rsts_are_not_a_storm_or_burst() {
    let mut sc = Sc::new();
    let c = p(C, 40000, S, 80);
    for i in 0..3u32 {
        // 2 s apart: each its own connection after the close delay? no: within 5 s
        sc.at(2000, &c.clone().seq(1 + i).flags(RST));
    }
    let r = sc.rows();
    assert!(r.iter().all(|e| !has(e, "storm") && !has(e, "burst")));
}

#[test]
fn traffic_after_close_delay_is_a_new_connection() {
    // modbus-and-non-modbus-p502: data plus RST 15 s after a half-open scan is a new "Dr".
    let mut sc = Sc::new();
    let c = p("198.74.56.135", 60293, "192.168.10.111", 502);
    sc.at(0, &c.clone().seq(1).flags(SYN))
        .at(1, &c.reply().seq(9).ack(2).flags(SYN | ACK))
        .at(1, &c.clone().seq(2).flags(RST).win(0))
        .at(
            15_000,
            &c.clone().seq(2).ack(10).flags(PSH | ACK).data(b"\x00\x01"),
        )
        .at(1, &c.reply().seq(10).flags(RST).win(0));
    let r = sc.rows();
    assert_eq!(r.len(), 2);
    assert_ne!(r[0].uid, r[1].uid);
    assert_eq!(r[0].conn_state.as_deref(), Some("RSTO"));
    assert_eq!(r[1].history.as_deref(), Some("Dr"));
    assert_eq!(r[1].conn_state.as_deref(), Some("RSTRH"));
    assert_eq!(cause(&r[1]), "unsolicited");
}

#[test]
fn unanswered_syn_times_out_into_a_new_connection() {
    // ssh.client-side-half-duplex: SYN, ACK, data; 5 s later the rest is a new connection.
    let mut sc = Sc::new();
    let c = p(C, 51880, S, 22);
    sc.at(0, &c.clone().seq(1).flags(SYN))
        .at(100, &c.clone().seq(2).ack(100))
        .at(100, &c.clone().seq(2).ack(100).data(b"SSH-2.0"))
        .at(6000, &c.clone().seq(9).ack(100).data(b"more"))
        .at(1, &c.reply().seq(100).flags(RST).win(0));
    let r = sc.rows();
    assert_eq!(r[0].history.as_deref(), Some("Dr"));
}

#[test]
fn second_packet_flip_and_syn_synack_reversal() {
    // SYN-ACK first from a non-server port, then the ACK: Zeek flips to ^h.
    let mut sc = Sc::new();
    let s = p(S, 7000, C, 50000);
    sc.at(0, &s.clone().seq(5000).ack(1001).flags(SYN | ACK))
        .at(1, &s.reply().seq(1001).ack(5001))
        .at(1, &s.reply().seq(1001).ack(5001).flags(RST).win(0));
    let r = sc.rows();
    assert_eq!(r[0].history.as_deref(), Some("^hAR"));
    assert_eq!((r[0].orig_h.to_string().as_str(), r[0].orig_p), (C, 50000));
    assert!(r[0].is_orig);
    // SYN-ACK seen before the SYN (reordered capture): Hs^ then the rest.
    let mut sc = Sc::new();
    sc.at(0, &s.clone().seq(5000).ack(1001).flags(SYN | ACK))
        .at(1, &s.reply().seq(1000).flags(SYN))
        .at(1, &s.reply().seq(1001).ack(5001))
        .at(1, &s.reply().seq(1001).ack(5001).flags(RST).win(0));
    let r = sc.rows();
    assert_eq!(r[0].history.as_deref(), Some("Hs^AR"));
    assert_eq!(r[0].conn_state.as_deref(), Some("RSTO"));
}

#[test]
fn connection_cap_evicts_and_counts() {
    let mut sc = Sc::with(FlowConfig {
        max_connections: 10,
        ..FlowConfig::default()
    });
    for i in 0..100u16 {
        sc.at(1, &p(C, 1000 + i, S, 80).seq(1).flags(SYN));
    }
    let stats = sc.t.stats();
    assert_eq!(stats.connections, 100);
    assert_eq!(stats.evicted, 90);
    assert_eq!(stats.peak_connections, 10);
    assert!(sc.t.live_connections() <= 10);
}

#[test]
fn memory_is_bounded_by_concurrent_connections() {
    // 100 000 short refused connections over ~28 hours of packet time: expiry keeps the
    // table small without any cap.
    let mut sc = Sc::new();
    for i in 0..100_000u32 {
        let c = p(C, (i % 60000) as u16 + 1024, S, 23);
        sc.at(1000, &c.clone().seq(i).flags(SYN))
            .at(0, &c.reply().seq(0).ack(i + 1).flags(RST | ACK).win(0));
    }
    let st = sc.t.stats();
    assert_eq!(st.connections, 100_000);
    assert_eq!(st.evicted, 0);
    assert!(st.peak_connections < 10, "{}", st.peak_connections);
}

#[test]
fn rst_answering_a_segment_after_an_abortive_close_is_not_seq_behind() {
    // The server closes with SO_LINGER 0 while its response is in flight (R. at the end of
    // what it sent); the client's ACK for part of it then meets no socket, and the server's
    // stack answers with a RST whose seq is that ACK (RFC 9293 §3.5.2) — behind the data the
    // server sent, and genuine.
    let body = vec![b'x'; 1000];
    let mut sc = Sc::new();
    let (c, s) = handshake(&mut sc);
    let get = c
        .clone()
        .seq(1001)
        .ack(5001)
        .flags(PSH | ACK)
        .data(b"GET /");
    let reply = s.clone().ack(1006);
    sc.at(5, &get.clone().id(3))
        .at(5, &reply.clone().seq(5001).data(&body).id(101))
        .at(0, &reply.clone().seq(6001).data(&body).id(102))
        .at(0, &reply.clone().seq(7001).data(&body).id(103))
        .at(0, &reply.clone().seq(8001).flags(RST | ACK).win(0).id(104))
        .at(20, &c.clone().seq(1006).ack(7001).id(4))
        .at(0, &s.clone().seq(7001).flags(RST).win(0).id(105));
    let r = sc.rows();
    assert_eq!(r.len(), 2);
    for e in &r {
        assert!(!has(e, "seq_behind"), "{:?}", ev(e));
        assert_eq!(e.injected, Some(false), "{:?}", ev(e));
    }
    // A RST before data the sender already sent, not answering anything, still is.
    let mut sc = Sc::new();
    handshake(&mut sc);
    sc.at(5, &get.id(3))
        .at(5, &reply.clone().seq(5001).data(&body).id(101))
        .at(1, &reply.seq(5501).flags(RST | ACK).win(0).id(102));
    let r = sc.rows();
    assert!(has(&r[0], "seq_behind"), "{:?}", ev(&r[0]));
    assert_eq!(r[0].injected, Some(true));
}

#[test]
fn syn_with_data_answered_by_a_rst_is_refused() {
    // TCP Fast Open, or a SYN flood's filler: the payload does not finish the handshake.
    let mut sc = Sc::new();
    let c = p(C, 40000, S, 23);
    sc.at(0, &c.clone().seq(7777).flags(SYN).data(b"hello"))
        .at(1, &c.reply().seq(0).ack(7783).flags(RST | ACK).win(0));
    let r = sc.rows();
    assert_eq!(cause(&r[0]), "refused");
    assert_eq!(r[0].conn_state.as_deref(), Some("REJ"));
}

#[test]
fn syn_ack_then_ack_establishes_a_connection_whose_syn_was_missed() {
    // Zeek's UpdateInactiveState: an ACK from an inactive endpoint whose peer is established
    // (by its SYN-ACK) establishes it too, instead of a partial connection.
    let mut sc = Sc::new();
    let s = p(S, 80, C, 40000);
    let c = s.reply();
    let ack = c.clone().seq(1001).ack(5001);
    sc.at(0, &s.clone().seq(5000).ack(1001).flags(SYN | ACK))
        .at(1, &ack)
        .at(1, &ack.clone().flags(PSH | ACK).data(b"GET /"))
        .at(1, &s.clone().seq(5001).ack(1006).flags(RST | ACK).win(0));
    let r = sc.rows();
    assert_eq!(r[0].history.as_deref(), Some("^hADr"));
    assert_eq!(r[0].conn_state.as_deref(), Some("RSTR"));
}

#[test]
fn a_new_syn_on_a_connection_first_seen_mid_stream_starts_a_new_one() {
    // Zeek's IsReuse compares a SYN with the originator's initial sequence number; one seen
    // only mid-stream has none to match.
    let mut sc = Sc::new();
    let c = p(C, 40000, S, 8081);
    let s = c.reply();
    sc.at(0, &c.clone().seq(100).ack(900).data(b"abc"))
        .at(1, &s.clone().seq(900).ack(103))
        .at(10_000, &c.clone().seq(777_777).flags(SYN))
        .at(1, &s.clone().seq(0).ack(777_778).flags(RST | ACK).win(0));
    let r = sc.rows();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].history.as_deref(), Some("Sr"));
    assert_eq!(r[0].conn_state.as_deref(), Some("REJ"));
    assert_eq!(cause(&r[0]), "refused");
    // A retransmitted SYN (same ISN) stays in its connection; another ISN starts a new one.
    let mut sc = Sc::new();
    sc.at(0, &c.clone().seq(5).flags(SYN))
        .at(1000, &c.clone().seq(5).flags(SYN))
        .at(1000, &c.clone().seq(6000).flags(SYN))
        .at(1, &s.clone().seq(0).ack(6001).flags(RST | ACK).win(0));
    assert_eq!(sc.t.stats().connections, 2);
    let r = sc.rows();
    assert_eq!(r[0].history.as_deref(), Some("Sr"));
    assert_eq!(r[0].rst_count, Some(1));
}

#[test]
fn the_long_inactivity_timeout_starts_when_either_side_leaves_the_handshake() {
    // Only the server's direction is captured: its data makes it the (partial) responder,
    // the originator stays inactive. Zeek's timeout is then 5 min, not 1: a RST 90 s later
    // belongs to the same connection.
    let mut sc = Sc::new();
    let s = p(S, 80, C, 40000);
    let s = s.ack(300);
    sc.at(0, &s.clone().seq(9000).data(b"data"))
        .at(90_000, &s.seq(9004).flags(RST | ACK).win(0));
    assert_eq!(sc.t.stats().connections, 1);
    let r = sc.rows();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].history.as_deref(), Some("^dr"));
    assert_ne!(cause(&r[0]), "orphan");
}

#[test]
fn zero_windows_count_on_syns_but_not_after_the_peers_fin() {
    // Zeek's update_window: a SYN with window 0 is a zero window; one sent after the peer
    // closed (its FIN) is not.
    let mut sc = Sc::new();
    let c = p(C, 40000, S, 80);
    sc.at(0, &c.clone().seq(1).flags(SYN).win(0))
        .at(1, &c.reply().seq(0).ack(2).flags(RST | ACK).win(0));
    assert_eq!(sc.rows()[0].history.as_deref(), Some("SWr"));
    let mut sc = Sc::new();
    let (c, s) = handshake(&mut sc);
    sc.at(1, &s.clone().seq(5001).ack(1001).flags(FIN | ACK))
        .at(1, &c.clone().seq(1001).ack(5002).win(0))
        .at(1, &c.clone().seq(1001).ack(5002).flags(RST | ACK).win(0));
    let r = sc.rows();
    assert_eq!(r[0].history.as_deref(), Some("ShAfR"));
}

#[test]
fn only_a_plain_fin_turns_the_peers_fin_then_rst_back_into_a_close() {
    // Zeek's UpdateEstablishedState: the peer sent FIN then RST; a later plain FIN from an
    // established endpoint makes that a normal close again (SF), a FIN+RST does not.
    let run = |last: u16| {
        let mut sc = Sc::new();
        let (c, s) = handshake(&mut sc);
        sc.at(1, &c.clone().seq(1001).ack(5001).flags(FIN | ACK))
            .at(1, &c.clone().seq(1002).ack(5001).flags(RST | ACK).win(0))
            .at(1, &s.clone().seq(5001).ack(1002).flags(last));
        sc.rows()[0].conn_state.clone().unwrap()
    };
    assert_eq!(run(FIN | ACK), "SF");
    // Both sides reset, no data: Zeek's conn_state() calls that REJ (RSTR when the FIN+RST
    // turned the first side back into a close).
    assert_eq!(run(FIN | RST | ACK), "REJ");
}
