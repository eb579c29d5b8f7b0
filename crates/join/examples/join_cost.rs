//! What the join costs: the old join (every row held, `src/tests/before.rs`) against the two
//! passes ([`RstKeys`], [`Matches`]) on generated rows and a conn.log with one row per RST
//! connection. Prints heap bytes per row (a counting allocator) and wall times.
//!
//! `cargo run --release -p rstscope-join --example join_cost -- [ROWS] [RSTS_PER_CONNECTION]`

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use rstscope_join::{
    parse_time, read_conn_log, JoinReport, LogReport, Malformed, RstKeys, CLOSE_DELAY_NS, MAX_UID,
};
use rstscope_reset::ResetEvent;

const TS_SLACK_NS: i64 = 1_000;
type Ep = (IpAddr, u16);
fn key5(a: Ep, b: Ep) -> (Ep, Ep) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

#[path = "../src/tests/before.rs"]
mod before;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Relaxed)
}
/// Reset the peak to now; returns the live bytes.
fn mark() -> usize {
    let l = live();
    PEAK.store(l, Relaxed);
    l
}

const T0: i64 = 1_700_000_000_000_000_000;

/// Row `i`: connection `i / per`, RSTs 2 µs apart (a scan's rate).
fn event(i: u64, per: u64) -> ResetEvent {
    let c = i / per;
    let o = IpAddr::from([10, (c >> 16) as u8, (c >> 8) as u8, c as u8]);
    let r = IpAddr::from([192, 0, 2, 1]);
    ResetEvent {
        ts_ns: T0 + i as i64 * 2_000,
        uid: format!("C{c:017}"),
        community_id: format!("1:{c:028}"),
        orig_h: o,
        orig_p: 40000 + (c % 20000) as u16,
        resp_h: r,
        resp_p: 23,
        is_orig: false,
        cause: Some("refused".into()),
        injected: Some(false),
        evidence: Some(vec!["ack_syn", "seq_zero"]),
        flags: 0x14,
        seq: 0,
        ack: 1,
        win: 0,
        ttl: 64,
        ip_id: Some(0),
        df: Some(true),
        payload_len: 0,
        payload: None,
        reason: None,
        sender_ttl: None,
        initial_ttl: 64,
        rst_count: Some(1),
        history: Some("Sr".into()),
        conn_state: Some("REJ".into()),
        duration_ns: Some(0),
        idle_ns: Some(0),
        orig_pkts: Some(1),
        resp_pkts: Some(0),
        source: b"scan.pcap".as_slice().into(),
        frame: i + 1,
        sensor: None,
    }
}

fn conn_log(path: &std::path::Path, rows: u64, per: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\thistory\tcommunity_id").unwrap();
    for c in 0..rows.div_ceil(per) {
        let e = event(c * per, per);
        writeln!(
            out,
            "{}\tZ{c:017}\t{}\t{}\t{}\t{}\ttcp\t0.000150\tSr\t{}",
            rstscope_zeeklog::format_seconds(e.ts_ns - 100_000),
            e.orig_h,
            e.orig_p,
            e.resp_h,
            e.resp_p,
            e.community_id
        )
        .unwrap();
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let per: u64 = args.next().map_or(1, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("conn.log");
    conn_log(&log, rows, per);
    let logs = vec![log];
    println!("{rows} rows, {per} per connection");
    println!(
        "size_of: ResetEvent {} B",
        std::mem::size_of::<ResetEvent>()
    );

    let base = mark();
    let mut events: Vec<ResetEvent> = (0..rows).map(|i| event(i, per)).collect();
    let held = live() - base;
    println!("rows held whole: {:.0} B/row", held as f64 / rows as f64);

    // Before: the rows are there already; the join's own memory is the peak above them.
    let base = mark();
    let t = Instant::now();
    let want = before::join_before(&mut events, &logs);
    let before_time = t.elapsed();
    let before_extra = PEAK.load(Relaxed) - base;
    let want_uids: Vec<String> = events.iter().map(|e| e.uid.clone()).collect();
    drop(events);
    println!(
        "before: {:.2} s, {:.0} B/row above the rows (matched {})",
        before_time.as_secs_f64(),
        before_extra as f64 / rows as f64,
        want.matched
    );
    drop(want);

    // Two passes, the rows made one at a time (as a stream gives them). Row-making time is
    // measured alone and taken off.
    let t = Instant::now();
    for i in 0..rows {
        std::hint::black_box(event(i, per));
    }
    let making = t.elapsed();
    let base = mark();
    let t = Instant::now();
    let mut keys = RstKeys::new();
    for i in 0..rows {
        keys.push(&event(i, per));
    }
    let push_time = t.elapsed().saturating_sub(making);
    let pass1 = live() - base;
    let row_bytes = keys.row_bytes();
    let t = Instant::now();
    let mut matches = keys.match_conn_logs(&logs);
    let match_time = t.elapsed();
    let peak = PEAK.load(Relaxed) - base;
    let pass2 = live() - base;
    let t = Instant::now();
    let mut same = true;
    for (i, want) in want_uids.iter().enumerate() {
        let mut e = event(i as u64, per);
        matches.apply(&mut e);
        same &= e.uid == *want;
    }
    let apply_time = t.elapsed().saturating_sub(making);
    let got = matches.into_report();
    println!(
        "two passes: push {:.2} s, conn.log {:.2} s, apply {:.2} s = {:.2} s; identical uids: {same} (matched {})",
        push_time.as_secs_f64(),
        match_time.as_secs_f64(),
        apply_time.as_secs_f64(),
        (push_time + match_time + apply_time).as_secs_f64(),
        got.matched
    );
    println!(
        "two passes: after pass 1 {:.1} B/row ({:.2} B/row the row stream, the rest per connection); \
         pass 2 holds {:.1} B/row; peak {:.1} B/row",
        pass1 as f64 / rows as f64,
        row_bytes as f64 / rows as f64,
        pass2 as f64 / rows as f64,
        peak as f64 / rows as f64,
    );
}
