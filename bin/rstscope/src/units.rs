//! One sensor stream on several cores. The stream is cut into units (its files, in stream
//! order); every unit is tracked on a worker from a cold start, and the units are then stitched
//! in order: a connection still live at the end of the units before it (the stitched carry)
//! that has packets in this unit is replayed over just those packets from its carried state,
//! and its cold rows are replaced by the replay's. The rows are those of one tracker over the
//! whole stream, because a connection's rows depend only on its own packets
//! (`-j N` with per-worker trackers already relies on that).
//!
//! Which packets a replay needs is known only once the units before are stitched, so each unit
//! logs its *candidate* packets while it runs: those of connections first seen less than the
//! longest timeout (plus slack) after the unit's first packet. A carried connection cannot
//! reach further: its deadline is at most the inactivity timeout after the carried clock. Once
//! one of its keys stays silent for that timeout, cold and warm trackers have both forgotten it,
//! and the cold rows after that gap stand.
//!
//! Whenever exactness is in doubt the unit is redone sequentially from the stitched carry:
//! timestamps going back across the cut by more than the slack, or a connection table that had
//! to evict.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use rstscope_decode::Segment;
use rstscope_flow::zeek::timers::INACTIVITY;
use rstscope_flow::{Carry, FlowStats, Tracker};
use rstscope_reset::ResetEvent;

use crate::parallel::OwnedSegment;
use crate::{process_file, FileResult, InputFile, RunOptions, StreamEnd, StreamOutput};

/// How far a unit's first packet may be behind the stitched clock (timestamps going back
/// across a cut) before the unit is redone sequentially; also added to the candidate window.
const SLACK_NS: i64 = 60_000_000_000;

type Endpoint = (IpAddr, u16);
/// A connection's endpoints in canonical order (lower first), whichever way a packet goes.
type ConnKey = (Endpoint, Endpoint);

fn conn_key(a: Endpoint, b: Endpoint) -> ConnKey {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// A cheap hash of a connection key (within one run only).
fn key_hash(k: &ConnKey) -> u64 {
    fn word(a: &IpAddr) -> u64 {
        match a {
            IpAddr::V4(v) => u32::from(*v) as u64,
            IpAddr::V6(v) => {
                let x = u128::from(*v);
                (x as u64) ^ ((x >> 64) as u64).rotate_left(17)
            }
        }
    }
    let mut h = word(&k.0 .0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h = (h ^ word(&k.1 .0)).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    h = (h ^ ((k.0 .1 as u64) << 16 | k.1 .1 as u64)).wrapping_mul(0x1656_67b1_9e37_79f9);
    h ^ (h >> 29)
}

fn seg_key(s: &Segment<'_>) -> ConnKey {
    conn_key((s.src, s.sport), (s.dst, s.dport))
}

/// Figures of a stitched run, for the summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ParallelStats {
    /// Units the stream was cut into.
    pub units: u64,
    /// Packets of carried connections replayed while stitching.
    pub replayed_packets: u64,
    /// Units redone sequentially because stitching could not be proven exact.
    pub redone_units: u64,
}

/// What a unit's cold run gave.
struct UnitOutput {
    result: FileResult,
    rows: Vec<ResetEvent>,
    stats: FlowStats,
    /// Connections still live at the unit's end.
    live: Carry,
    /// The first packet's time, when it had one.
    first_ts: Option<i64>,
    /// The newest packet time.
    clock: i64,
    /// Candidate packets (see the module notes), in capture order, with their key hashes.
    log_hashes: Vec<u64>,
    log: Vec<OwnedSegment>,
}

fn run_unit(f: &InputFile, index: u32, opts: &RunOptions) -> UnitOutput {
    let mut tracker = Tracker::new(opts.flow);
    let source = f.source.as_str();
    let mut first_ts = None;
    let mut window_end = i64::MAX;
    let mut clock = i64::MIN;
    let mut log_hashes = Vec::new();
    let mut log = Vec::new();
    // Keys logged before the window closed: their later packets are logged too.
    let mut open: Option<HashSet<u64>> = None;
    let result = process_file(f, index, opts, |seg| {
        let ts = seg.ts_ns;
        if first_ts.is_none() {
            first_ts = Some(ts);
            window_end = ts.saturating_add(INACTIVITY + SLACK_NS);
        }
        clock = clock.max(ts);
        let h = key_hash(&seg_key(seg));
        let keep = if ts < window_end {
            if let Some(open) = &mut open {
                open.insert(h);
            }
            true
        } else {
            open.get_or_insert_with(|| log_hashes.iter().copied().collect())
                .contains(&h)
        };
        if keep {
            log_hashes.push(h);
            log.push(OwnedSegment::of(seg));
        }
        tracker.process(seg, source);
    });
    let (rows, stats, live) = tracker.suspend(i64::MIN);
    UnitOutput {
        result,
        rows,
        stats,
        live,
        first_ts,
        clock,
        log_hashes,
        log,
    }
}

/// Track one sensor's files (at least two) on `threads` workers and stitch them into the rows
/// of one tracker over the stream continued from `carry`.
pub(crate) fn run(
    files: &[InputFile],
    opts: &RunOptions,
    threads: usize,
    carry: Carry,
    end: StreamEnd,
) -> StreamOutput {
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, UnitOutput)>();
    let mut stitch = Stitch {
        state: carry,
        rows: Vec::new(),
        stats: FlowStats::default(),
        parallel: ParallelStats {
            units: files.len() as u64,
            ..ParallelStats::default()
        },
        results: Vec::with_capacity(files.len()),
    };
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(f) = files.get(i) else { break };
                let out = run_unit(f, i as u32, opts);
                if tx.send((i, out)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Stitch in unit order as the units finish.
        let mut waiting: HashMap<usize, UnitOutput> = HashMap::new();
        let mut want = 0;
        for (i, out) in rx {
            waiting.insert(i, out);
            while let Some(out) = waiting.remove(&want) {
                stitch.add(files, want, out, opts);
                want += 1;
            }
        }
    });
    let Stitch {
        state,
        mut rows,
        mut stats,
        parallel,
        results,
    } = stitch;
    let carry = match end {
        StreamEnd::Finish => {
            let (more, st) = Tracker::resume(opts.flow, state).finish();
            rows.push(more);
            add_stats(&mut stats, &st);
            None
        }
        StreamEnd::Carry => Some(state),
    };
    let events = crate::concat_rows(rows);
    StreamOutput {
        results,
        events,
        stats,
        carry,
        parallel,
    }
}

fn add_stats(into: &mut FlowStats, st: &FlowStats) {
    into.segments += st.segments;
    into.connections += st.connections;
    into.evicted += st.evicted;
    into.peak_connections = into.peak_connections.max(st.peak_connections);
    into.carry_errors += st.carry_errors;
}

/// The stream stitched so far.
struct Stitch {
    /// The live connections after the units stitched so far (the carry into the next).
    state: Carry,
    rows: Vec<Vec<ResetEvent>>,
    stats: FlowStats,
    parallel: ParallelStats,
    results: Vec<FileResult>,
}

impl Stitch {
    fn add(&mut self, files: &[InputFile], index: usize, out: UnitOutput, opts: &RunOptions) {
        let cap = opts.flow.max_connections.max(1) as u64;
        let in_doubt = out
            .first_ts
            .is_some_and(|t| self.state.clock > t.saturating_add(SLACK_NS))
            || out.stats.evicted > 0
            || self.state.len() as u64 + out.stats.peak_connections > cap;
        if in_doubt {
            self.redo(files, index, opts);
            return;
        }
        let UnitOutput {
            result,
            mut rows,
            stats,
            live,
            clock,
            log_hashes,
            log,
            ..
        } = out;
        self.results.push(result);
        add_stats(&mut self.stats, &stats);
        if self.state.is_empty() {
            // Nothing carried: the cold run is the warm one.
            self.state = Carry::merge(vec![std::mem::take(&mut self.state), live]);
            self.rows.push(rows);
            return;
        }
        // The carried connections' packets in this unit, up to each one's first silence of the
        // inactivity timeout (after which cold and warm trackers agree again).
        let carried: HashSet<ConnKey> = self
            .state
            .endpoints()
            .map(|(a, b)| conn_key(a, b))
            .collect();
        let carried_hashes: HashSet<u64> = carried.iter().map(key_hash).collect();
        struct Region {
            newest: i64,
            last_frame: u64,
            closed: bool,
        }
        let mut regions: HashMap<ConnKey, Region> = HashMap::new();
        let mut replay: Vec<&OwnedSegment> = Vec::new();
        for (h, s) in log_hashes.iter().zip(&log) {
            if !carried_hashes.contains(h) {
                continue;
            }
            let seg = s.as_segment();
            let k = seg_key(&seg);
            if !carried.contains(&k) {
                continue;
            }
            let r = regions.entry(k).or_insert(Region {
                newest: seg.ts_ns,
                last_frame: seg.frame,
                closed: false,
            });
            if r.closed {
                continue;
            }
            if seg.ts_ns >= r.newest.saturating_add(INACTIVITY) {
                r.closed = true;
                continue;
            }
            r.newest = r.newest.max(seg.ts_ns);
            r.last_frame = seg.frame;
            replay.push(s);
        }
        if regions.is_empty() {
            self.state = Carry::merge(vec![std::mem::take(&mut self.state), live]);
            self.rows.push(rows);
            return;
        }
        self.parallel.replayed_packets += replay.len() as u64;
        let mut warm = Tracker::resume(opts.flow, std::mem::take(&mut self.state));
        // The same packets from a cold start count the connections the unit's cold run made of
        // them, which the warm replay's count replaces.
        let mut cold = Tracker::new(opts.flow);
        for s in &replay {
            let seg = s.as_segment();
            let source = files[s.file as usize].source.as_str();
            warm.process(&seg, source);
            cold.process(&seg, source);
        }
        let (warm_rows, warm_stats, warm_live) = warm.suspend(clock);
        let cold_connections = cold.stats().connections;
        // The replay's rows and live state replace the cold ones of those connections.
        rows.retain(|r| {
            let k = conn_key((r.orig_h, r.orig_p), (r.resp_h, r.resp_p));
            regions.get(&k).is_none_or(|reg| r.frame > reg.last_frame)
        });
        let (_, live) =
            live.partition(|a, b| regions.get(&conn_key(a, b)).is_some_and(|reg| !reg.closed));
        self.stats.connections =
            (self.stats.connections + warm_stats.connections).saturating_sub(cold_connections);
        self.stats.carry_errors += warm_stats.carry_errors;
        self.state = Carry::merge(vec![warm_live, live]);
        self.rows.push(rows);
        self.rows.push(warm_rows);
    }

    /// Track unit `index` again, warm from the stitched state, as one sequential run would.
    fn redo(&mut self, files: &[InputFile], index: usize, opts: &RunOptions) {
        self.parallel.redone_units += 1;
        let f = &files[index];
        let source = f.source.as_str();
        let mut warm = Tracker::resume(opts.flow, std::mem::take(&mut self.state));
        let result = process_file(f, index as u32, opts, |seg| warm.process(seg, source));
        let (rows, stats, live) = warm.suspend(i64::MIN);
        self.results.push(result);
        add_stats(&mut self.stats, &stats);
        self.state = live;
        self.rows.push(rows);
    }
}
