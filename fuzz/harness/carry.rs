//! Fuzz harness for the carry reader (`rstscope_flow::read_carry_file`): the file a run saves
//! beside `--state` with every sensor's live connections, and the next run reads.
//!
//! Shared by the cargo-fuzz target `carry` and the regression test
//! `crates/flow/tests/fuzz_regressions.rs` (both include this file with `#[path]`).
//!
//! Any bytes must give an error or carries; carries must be written back to the same bytes
//! (also after a tracker resumed and suspended them untouched), and trackers resumed from them
//! must track more segments — decoding the connections they meet — and finish without
//! panicking (a connection that does not decode is dropped and counted).

use std::net::IpAddr;

use rstscope_decode::{Segment, TcpOptions};
use rstscope_flow::{read_carry_file, write_carry_file, FlowConfig, StreamCarry, Tracker};

pub fn fuzz_carry(data: &[u8]) {
    check(data);
    // The same bytes with the header's length and checksum made right, so that mutations
    // reach the decoder behind them (a fuzzer rarely guesses a CRC).
    if data.len() >= 24 {
        let mut fixed = data.to_vec();
        let len = (fixed.len() - 24) as u64;
        let crc = crc32fast::hash(&fixed[24..]);
        fixed[12..20].copy_from_slice(&len.to_le_bytes());
        fixed[20..24].copy_from_slice(&crc.to_le_bytes());
        check(&fixed);
    }
}

fn check(data: &[u8]) {
    let Ok(streams) = read_carry_file(data) else {
        return;
    };
    // Connections stay encoded until a tracker needs them: written back, the carry is the
    // same bytes; resumed and suspended with no packet in between, too.
    let once = write_carry_file(&streams);
    assert_eq!(
        once, data,
        "a carry written back is the bytes it was read from"
    );
    let untouched: Vec<StreamCarry> = read_carry_file(&once)
        .expect("a carry we wrote reads back")
        .into_iter()
        .map(|s| StreamCarry {
            carry: Tracker::resume(FlowConfig::default(), s.carry)
                .suspend(i64::MIN)
                .2,
            ..s
        })
        .collect();
    assert_eq!(
        write_carry_file(&untouched),
        once,
        "resumed and suspended untouched"
    );
    for s in streams {
        // The carried connections' own endpoints, so the segments below meet them.
        let eps: Vec<((IpAddr, u16), (IpAddr, u16))> = s.carry.endpoints().take(8).collect();
        let clock = s.carry.clock;
        let mut t = Tracker::resume(
            FlowConfig {
                max_connections: 4,
                ..FlowConfig::default()
            },
            s.carry,
        );
        for (i, (a, b)) in eps.iter().enumerate() {
            for (k, flags) in [0x010u16, 0x004, 0x011, 0x014, 0x002]
                .into_iter()
                .enumerate()
            {
                let (src, dst) = if k % 2 == 0 { (a, b) } else { (b, a) };
                let seg = Segment {
                    ts_ns: clock.saturating_add((i * 5 + k) as i64 * 1_000_000_000),
                    file: 0,
                    frame: (i * 5 + k) as u64 + 1,
                    src: src.0,
                    dst: dst.0,
                    ttl: 64,
                    ip_id: Some(k as u16),
                    df: Some(true),
                    sport: src.1,
                    dport: dst.1,
                    seq: 1000,
                    ack: 2000,
                    flags,
                    window: 0,
                    options: TcpOptions::default(),
                    payload_len: 0,
                    payload: &[],
                    tunnel_depth: 0,
                };
                t.process(&seg, b"fuzz.pcap");
            }
        }
        let _ = t.finish();
    }
}
