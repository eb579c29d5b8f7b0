//! One sensor stream on several cores. The stream is cut into units (its files, in stream
//! order); every unit is tracked on a worker from a cold start, and the units are then stitched
//! in order: a connection still live at the end of the units before it (the stitched carry)
//! that has packets in this unit is replayed over just those packets from its carried state,
//! and its cold rows are replaced by the replay's. The rows are those of one tracker over the
//! whole stream, because a connection's rows depend only on its own packets
//! (`-j N` with per-worker trackers already relies on that).
//!
//! Which packets a replay needs is known only once the units before are stitched, so each unit
//! keeps, for the keys first seen less than the longest timeout (plus 2 s) after its first
//! packet, how far their packets reach. A carried connection cannot reach further: its deadline
//! is at most the inactivity timeout after the carried clock. Once one of its keys stays silent
//! for that timeout, cold and warm trackers have both forgotten it, and the cold rows after
//! that gap stand. Stitching reads the unit again up to the furthest carried key.
//!
//! Whenever exactness is in doubt the unit is read again in order, warm from the stitched
//! carry: a packet behind the stitched clock by a second or more (a cold tracker's expiries
//! would then differ from one run's), a connection table that had to evict, or a byte range
//! that does not continue the sequential read of its file exactly.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use std::sync::Arc;

use rstscope_capture::{
    read_range_until, Compression, Layout, Packet, PlainAccess, RangeReport, ReadReport,
};
use rstscope_decode::Segment;
use rstscope_flow::zeek::timers::INACTIVITY;
use rstscope_flow::{Carry, FlowStats, Tracker};

use crate::rows::{conn_key, ConnKey, Origin, UnitDrop, FRAME_SHIFT};
use crate::{
    process_file_until, DecodeStats, FileResult, InputFile, PacketTally, RunOptions, StreamEnd,
    StreamOutput, StreamSink,
};

/// How far a unit's oldest packet may be behind the stitched clock (timestamps going back
/// across a cut) before the unit is redone in order. A cold tracker's clock and one run's
/// agree on every expiry only while no packet is behind the stream's clock by as much as the
/// shortest timeout (5 s); one second keeps clear of it.
const BEHIND_NS: i64 = 1_000_000_000;

/// Added to the candidate window beyond the inactivity timeout (the longest): a carried
/// connection's deadline is at most that timeout after the stitched clock, which is at most
/// [`BEHIND_NS`] after the unit's first packet (else the unit is redone), so its packets in
/// the unit begin before the window ends; one second more keeps clear of the edge.
const SLACK_NS: i64 = BEHIND_NS + 1_000_000_000;

/// A cheap hash of a connection's endpoints, the same whichever way they are given (within
/// one run only): the sum of the two endpoints' hashes, so no ordering is needed per packet.
fn endpoints_hash(a: (IpAddr, u16), b: (IpAddr, u16)) -> u64 {
    fn one((ip, port): (IpAddr, u16)) -> u64 {
        let w = match ip {
            IpAddr::V4(v) => u32::from(v) as u64,
            IpAddr::V6(v) => {
                let x = u128::from(v);
                (x as u64) ^ ((x >> 64) as u64).rotate_left(17)
            }
        };
        let mut h = (w ^ (port as u64) << 48).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 31;
        h = h.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        h ^ (h >> 29)
    }
    one(a).wrapping_add(one(b))
}

/// Hashes an [`endpoints_hash`] value by using it as it is.
#[derive(Default)]
struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type ByKeyHash<V> = HashMap<u64, V, std::hash::BuildHasherDefault<PreHashed>>;

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

/// A stretch of a unit's packets that a carried connection may need replayed: from its key's
/// first packet in the unit (within the candidate window) to the last before a silence of the
/// inactivity timeout. A scan's unit has millions of keys in its window, so a span is packed
/// in 8 bytes: the index (among the unit's TCP segments) of its last packet (beyond u32, kept
/// as u32::MAX: stitching then reads further, never less far); its newest packet's time as
/// whole seconds after the unit's first packet, rounded up (so a span closes no earlier than
/// it would by the exact time); and whether it is closed.
#[derive(Clone, Copy)]
struct KeySpan(u64);

impl KeySpan {
    const CLOSED: u64 = 1 << 63;
    const SECONDS: u64 = (1 << 31) - 1;

    fn new(index: u64, newest_s: u64) -> Self {
        KeySpan(index.min(u32::MAX as u64) | newest_s.min(Self::SECONDS) << 32)
    }
    fn last(self) -> u64 {
        self.0 & u32::MAX as u64
    }
    fn newest_s(self) -> u64 {
        (self.0 >> 32) & Self::SECONDS
    }
    fn closed(self) -> bool {
        self.0 & Self::CLOSED != 0
    }
    /// Whether a packet at `ts` comes after a silence of the inactivity timeout.
    fn silent_before(self, base: i64, ts: i64) -> bool {
        let newest = base.saturating_add((self.newest_s() * 1_000_000_000) as i64);
        ts >= newest.saturating_add(INACTIVITY)
    }
}

/// Whole seconds from `base` to `ts`, rounded up (0 before `base`).
fn seconds_after(base: i64, ts: i64) -> u64 {
    let ns = ts.saturating_sub(base).max(0) as u64;
    ns.div_ceil(1_000_000_000)
}

/// What a unit's cold run gave.
/// (Its rows went to the stream's sink as cold rows of the unit.)
struct UnitOutput {
    results: Vec<PieceOut>,
    stats: FlowStats,
    /// Connections still live at the unit's end.
    live: Carry,
    /// The first packet's time, when it had one.
    first_ts: Option<i64>,
    /// The oldest packet time (i64::MAX without packets).
    oldest: i64,
    /// Candidate keys (see the module notes) by key hash.
    spans: ByKeyHash<KeySpan>,
    /// Stopped early: its connections outgrew what a unit may hold (see [`unit_live_limit`]);
    /// stitching redoes it in order.
    abandoned: bool,
}

/// Most connections a unit tracked from a cold start (not a stream's first) may hold live
/// before it stops and is left to be redone in order: a burst whose connections are all live
/// at once (a million refused SYNs within the close delay) would otherwise be held by a
/// tracker per unit in flight, each with its share, beside the stitched stream's. A quarter of
/// `--max-connections` (250 000 by default); ordinary traffic stays far below (the 1 GiB
/// benchmark capture peaks at 19 000).
fn unit_live_limit(opts: &RunOptions) -> u64 {
    (opts.flow.max_connections as u64 / 4).max(1)
}

/// A part of a unit: a whole file, or a byte range of a plain file cut for threads.
#[derive(Clone)]
enum Piece {
    File(usize),
    Range(Arc<Split>, usize),
}

impl Piece {
    /// The index of the piece's file in the stream.
    fn file(&self) -> usize {
        match self {
            Piece::File(i) => *i,
            Piece::Range(split, _) => split.file,
        }
    }
}

/// A unit: consecutive pieces of the stream.
type Unit = Vec<Piece>;

/// A plain capture cut into byte ranges at the record boundaries resynchronisation proposed.
/// Nothing is taken on trust: stitching checks that each range's walk ended exactly where the
/// next one started, and reads a range again in order when it did not.
struct Split {
    file: usize,
    map: memmap2::Mmap,
    layout: Layout,
    /// Range `i` is `bounds[i]..bounds[i + 1]`.
    bounds: Vec<u64>,
}

impl Split {
    fn ranges(&self) -> usize {
        self.bounds.len() - 1
    }

    /// Read records starting in `start..bounds[r + 1]` (`start` is `bounds[r]` unless stitching
    /// corrects it), frames numbered as [`FRAME_SHIFT`] says.
    fn read<F: FnMut(&Packet<'_>) -> bool>(&self, r: usize, start: u64, visit: F) -> RangeReport {
        read_range_until(&self.map, &self.layout, start, self.bounds[r + 1], visit)
    }
}

/// Cut plain file `files[i]` into `parts` byte ranges, or None when it cannot be (it is then
/// read whole).
fn split_file(
    files: &[InputFile],
    i: usize,
    parts: usize,
    opts: &RunOptions,
) -> Option<Arc<Split>> {
    let path = &files[i].path;
    if parts < 2 || opts.access != PlainAccess::Mmap || crate::recently_modified(path) {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    // SAFETY: as the sequential reader's map (read-only, private; a file truncated under it is
    // caught by the SIGBUS guard that reading a range through the map registers). Files
    // modified in the last two minutes are not mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    // Not a plain capture (compressed, or not a capture at all): read whole.
    let layout = rstscope_capture::layout(&map).ok()?;
    let mut bounds = vec![0u64];
    for k in 1..parts {
        let hint = size * k as u64 / parts as u64;
        if let Some(at) = rstscope_capture::resync(&map, &layout, hint) {
            if at > *bounds.last().unwrap_or(&0) && at < size {
                bounds.push(at);
            }
        }
    }
    bounds.push(size);
    (bounds.len() >= 3).then(|| {
        Arc::new(Split {
            file: i,
            map,
            layout,
            bounds,
        })
    })
}

/// The stream's pieces: every file, the large plain ones cut into byte ranges so that each of
/// `threads` units gets about its share of the bytes.
fn pieces(
    files: &[InputFile],
    threads: usize,
    opts: &RunOptions,
    end: StreamEnd,
) -> Vec<(Piece, u64)> {
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(&f.path).map_or(0, |m| m.len()).max(1))
        .collect();
    let share = (sizes.iter().sum::<u64>() / threads.max(1) as u64).max(1);
    let mut out = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        // A carried connection's rows keep their frame numbers to the next run, so byte ranges
        // (whose numbers are settled at the end) are for finished streams only.
        let parts = if size >= opts.split_min && end == StreamEnd::Finish {
            ((size + share / 2) / share).min(threads as u64) as usize
        } else {
            1
        };
        match split_file(files, i, parts, opts) {
            Some(split) => {
                for r in 0..split.ranges() {
                    let bytes = split.bounds[r + 1] - split.bounds[r];
                    out.push((Piece::Range(Arc::clone(&split), r), bytes));
                }
            }
            None => out.push((Piece::File(i), size)),
        }
    }
    out
}

/// Group the pieces into at most `n` units of consecutive pieces, of about equal bytes.
fn plan(pieces: Vec<(Piece, u64)>, n: usize) -> Vec<Unit> {
    let n = n.clamp(1, pieces.len().max(1));
    // prefix[i]: bytes of pieces[..i].
    let mut prefix = vec![0u64];
    for (_, s) in &pieces {
        prefix.push(prefix.last().copied().unwrap_or(0) + s);
    }
    let total = prefix[pieces.len()];
    let mut cuts = vec![0];
    for k in 1..n {
        let target = total as u128 * k as u128 / n as u128;
        let lo = cuts.last().copied().unwrap_or(0) + 1;
        let hi = pieces.len() - (n - k);
        // The cut nearest to the k-th share, leaving a piece for every unit still to come.
        let best = (lo..=hi)
            .min_by_key(|&c| (prefix[c] as u128).abs_diff(target))
            .unwrap_or(lo);
        cuts.push(best);
    }
    cuts.push(pieces.len());
    let mut pieces = pieces.into_iter().map(|(p, _)| p);
    cuts.windows(2)
        .map(|w| pieces.by_ref().take(w[1] - w[0]).collect())
        .collect()
}

/// What reading one piece gave.
enum PieceOut {
    File(FileResult),
    Range {
        split: Arc<Split>,
        range: usize,
        tally: PacketTally,
        report: RangeReport,
        /// Read from the head of the file (frames final, counters from the head).
        from_head: bool,
        seconds: f64,
    },
}

/// Read a piece, handing its TCP segments to `sink`, which may stop the read.
fn read_piece<F: FnMut(&Segment<'_>) -> bool>(
    files: &[InputFile],
    piece: &Piece,
    opts: &RunOptions,
    sink: F,
) -> PieceOut {
    match piece {
        Piece::File(i) => PieceOut::File(process_file_until(&files[*i], *i as u32, opts, sink)),
        Piece::Range(split, r) => read_range_piece(split, *r, split.bounds[*r], false, sink),
    }
}

/// Read range `r` of a split file from `start`, or with `from_head` the file from its head up to
/// the range's end, handing over only the packets from `start` on (with their final frame
/// numbers).
fn read_range_piece<F: FnMut(&Segment<'_>) -> bool>(
    split: &Arc<Split>,
    r: usize,
    start: u64,
    from_head: bool,
    mut sink: F,
) -> PieceOut {
    let t0 = std::time::Instant::now();
    let mut tally = PacketTally::default();
    let file = split.file as u32;
    let base = if r == 0 || from_head {
        0
    } else {
        (r as u64) << FRAME_SHIFT
    };
    let report = split.read(r, if from_head { 0 } else { start }, |pkt| {
        pkt.offset < start || tally.take(pkt, file, base, &mut sink)
    });
    PieceOut::Range {
        split: Arc::clone(split),
        range: r,
        tally,
        report,
        from_head,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// Track a unit from a cold start. `spans_wanted`: whether anything can be carried into it (the
/// first unit of a stream that starts cold needs no spans).
/// Its rows go to `sink` as cold rows of unit `number` (from 1).
fn run_unit(
    files: &[InputFile],
    unit: Unit,
    number: u32,
    opts: &RunOptions,
    spans_wanted: bool,
    sink: &StreamSink<'_>,
) -> UnitOutput {
    let mut tracker = Tracker::new(opts.flow);
    let mut first_ts = None;
    let mut oldest = i64::MAX;
    let mut window_end = i64::MAX;
    let mut spans: ByKeyHash<KeySpan> = ByKeyHash::default();
    let mut index = 0u64;
    let mut results = Vec::with_capacity(unit.len());
    let live_limit = unit_live_limit(opts);
    let mut abandoned = false;
    for piece in &unit {
        if abandoned {
            break;
        }
        let source = files[piece.file()].source.as_slice();
        results.push(read_piece(files, piece, opts, |seg| {
            let ts = seg.ts_ns;
            if first_ts.is_none() {
                first_ts = Some(ts);
                window_end = ts.saturating_add(INACTIVITY + SLACK_NS);
            }
            oldest = oldest.min(ts);
            if spans_wanted {
                let h = endpoints_hash((seg.src, seg.sport), (seg.dst, seg.dport));
                let base = first_ts.unwrap_or(ts);
                match spans.get_mut(&h) {
                    Some(s) if !s.closed() => {
                        if s.silent_before(base, ts) {
                            s.0 |= KeySpan::CLOSED;
                        } else {
                            let newest = s.newest_s().max(seconds_after(base, ts));
                            *s = KeySpan::new(index, newest);
                        }
                    }
                    Some(_) => {}
                    None if ts < window_end => {
                        spans.insert(h, KeySpan::new(index, seconds_after(base, ts)));
                    }
                    None => {}
                }
            }
            tracker.process(seg, source);
            if sink.tracked(&mut index, &mut tracker, number)
                && spans_wanted
                && tracker.live_connections() > live_limit
            {
                abandoned = true;
                return false;
            }
            true
        }));
    }
    if abandoned {
        // Redone in order: nothing of this run is used.
        drop(tracker);
        return UnitOutput {
            results,
            stats: FlowStats::default(),
            live: Carry::new(),
            first_ts,
            oldest,
            spans: ByKeyHash::default(),
            abandoned,
        };
    }
    let (rows, stats, live) = tracker.suspend(i64::MIN);
    sink.push(rows, number);
    UnitOutput {
        results,
        stats,
        live,
        first_ts,
        oldest,
        spans,
        abandoned,
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
    sink: &StreamSink<'_>,
) -> StreamOutput {
    // Stitching may read a unit again: a FIFO or device can be read only once, and a file
    // still being written would not read the same twice. Such a stream runs on one tracker.
    let rereadable = files.iter().all(|f| {
        std::fs::metadata(&f.path).is_ok_and(|m| m.is_file()) && !crate::recently_modified(&f.path)
    });
    if !rereadable {
        return crate::run_sequential(files, opts, carry, end, sink);
    }
    let units = plan(pieces(files, threads, opts, end), threads);
    if units.len() < 2 {
        // Nothing to run in parallel: one tracker, without the units' bookkeeping.
        return crate::run_sequential(files, opts, carry, end, sink);
    }
    run_units(files, opts, units, threads, carry, end, sink)
}

/// Track `units` on `threads` workers and stitch them.
fn run_units(
    files: &[InputFile],
    opts: &RunOptions,
    units: Vec<Unit>,
    threads: usize,
    carry: Carry,
    end: StreamEnd,
    sink: &StreamSink<'_>,
) -> StreamOutput {
    let cold_start = carry.is_empty();
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, UnitOutput)>();
    let mut stitch = Stitch {
        state: carry,
        sink,
        stats: FlowStats::default(),
        parallel: ParallelStats {
            units: units.len() as u64,
            ..ParallelStats::default()
        },
        results: Vec::with_capacity(files.len()),
        splits: HashMap::new(),
        progress: opts.progress.clone(),
        finish_after: (end == StreamEnd::Finish).then_some(units.len() as u32),
    };
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, units.len()) {
            let tx = tx.clone();
            let (next, units) = (&next, &units);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(unit) = units.get(i) else { break };
                let out = run_unit(
                    files,
                    unit.clone(),
                    i as u32 + 1,
                    opts,
                    i > 0 || !cold_start,
                    sink,
                );
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
                stitch.add(files, units[want].clone(), want as u32 + 1, out, opts);
                want += 1;
            }
        }
    });
    let state = std::mem::take(&mut stitch.state);
    let carry = match end {
        StreamEnd::Finish => {
            let st = Tracker::resume(opts.flow, state).finish_into(|rows| sink.push(rows, 0));
            add_stats(&mut stitch.stats, &st);
            None
        }
        StreamEnd::Carry => Some(state),
    };
    stitch.rebase(files);
    let Stitch {
        stats,
        parallel,
        results,
        ..
    } = stitch;
    StreamOutput {
        results,
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
struct Stitch<'s> {
    /// The live connections after the units stitched so far (the carry into the next).
    state: Carry,
    /// Where rows go, and stitching's decisions about the units' cold rows.
    sink: &'s StreamSink<'s>,
    stats: FlowStats,
    parallel: ParallelStats,
    results: Vec<FileResult>,
    /// Split files by file index: how far stitching has read them.
    splits: HashMap<usize, SplitProgress>,
    progress: Option<crate::Progress>,
    /// With [`StreamEnd::Finish`]: the last unit's number. A redo of it ends the stream with
    /// its own tracker, instead of writing its live connections to a carry only to read them
    /// back to end them (a burst all live at the end would hold both).
    finish_after: Option<u32>,
}

/// How far the ranges of a split file stitched so far reach, and what they found.
struct SplitProgress {
    /// Where the next range must start: where one sequential read would be.
    next: u64,
    /// Frame numbers used so far.
    frames: u64,
    /// An error ended the file: its later ranges are not read.
    stopped: bool,
    /// The layout changed inside the file (pcapng): later ranges are read from the head.
    from_head: bool,
    /// Frame numbers before each range stitched (its rows' frames are rebased by it).
    bases: Vec<u64>,
    /// The file's figures so far (taken when its last range is stitched).
    result: Option<FileResult>,
}

impl Stitch<'_> {
    /// Stitch unit `number` (from 1), tracked cold.
    fn add(
        &mut self,
        files: &[InputFile],
        unit: Unit,
        number: u32,
        out: UnitOutput,
        opts: &RunOptions,
    ) {
        // The unit's tracker is gone (its rows handed over, its live connections in a carry).
        crate::release_freed_memory();
        let cap = opts.flow.max_connections.max(1) as u64;
        let in_doubt = out.abandoned
            || self.state.clock > out.oldest.saturating_add(BEHIND_NS)
            || out.stats.evicted > 0
            || self.state.len() as u64 + out.stats.peak_connections > cap;
        if in_doubt || !self.ranges_meet(&out.results) {
            self.redo(files, unit, number, opts);
            return;
        }
        let UnitOutput {
            results,
            stats,
            live,
            first_ts,
            spans,
            ..
        } = out;
        // The unit's newest packet time: its tracker's clock, which the live carry keeps.
        let clock = live.clock;
        for r in results {
            self.push_piece(files, r);
        }
        add_stats(&mut self.stats, &stats);
        // The unit's first packet moves the stream's clock on: carried connections whose
        // deadline it passes end, as in one run, and cannot go on in this unit.
        if let Some(t) = first_ts.filter(|&t| t > self.state.clock && !self.state.is_empty()) {
            let (ended, st, state) =
                Tracker::resume(opts.flow, std::mem::take(&mut self.state)).suspend(t);
            self.stats.carry_errors += st.carry_errors;
            self.state = state;
            self.sink.push(ended, 0);
        }
        // The carried connections with packets in this unit, and how far into it they reach.
        let mut carried: HashSet<ConnKey> = HashSet::new();
        // Their key hashes: a cheap first test for every packet read again.
        let mut carried_hashes: ByKeyHash<()> = ByKeyHash::default();
        let mut reach = None;
        for (a, b) in self.state.endpoints() {
            let h = endpoints_hash(a, b);
            if let Some(span) = spans.get(&h) {
                reach = reach.max(Some(span.last()));
                carried.insert(conn_key(a, b));
                carried_hashes.insert(h, ());
            }
        }
        let Some(reach) = reach else {
            // No carried connection goes on here: the cold run is the warm one.
            self.state = Carry::merge(vec![std::mem::take(&mut self.state), live]);
            return;
        };
        // Read the unit again up to there, replaying those connections' packets up to each
        // one's first silence of the inactivity timeout (after which cold and warm trackers
        // agree again), from their carried state and from a cold start: the cold count of
        // connections is replaced by the warm one.
        struct Region {
            newest: i64,
            /// (file, frame) of the last packet replayed.
            last: (usize, u64),
            closed: bool,
        }
        let mut regions: HashMap<ConnKey, Region> = HashMap::new();
        // The files were reported read once already.
        let opts = &RunOptions {
            progress: None,
            ..opts.clone()
        };
        let mut warm = Tracker::resume(opts.flow, std::mem::take(&mut self.state));
        let mut cold = Tracker::new(opts.flow);
        let mut index = 0u64;
        let mut replayed = 0u64;
        for piece in &unit {
            if index > reach {
                break;
            }
            let i = piece.file();
            let source = files[i].source.as_slice();
            read_piece(files, piece, opts, |seg| {
                index += 1;
                let h = endpoints_hash((seg.src, seg.sport), (seg.dst, seg.dport));
                let k = carried_hashes
                    .contains_key(&h)
                    .then(|| seg_key(seg))
                    .filter(|k| carried.contains(k));
                if let Some(k) = k {
                    let r = regions.entry(k).or_insert(Region {
                        newest: seg.ts_ns,
                        last: (i, seg.frame),
                        closed: false,
                    });
                    if !r.closed {
                        if seg.ts_ns >= r.newest.saturating_add(INACTIVITY) {
                            r.closed = true;
                        } else {
                            r.newest = r.newest.max(seg.ts_ns);
                            r.last = (i, seg.frame);
                            warm.process(seg, source);
                            cold.process(seg, source);
                            replayed += 1;
                        }
                    }
                }
                index <= reach
            });
        }
        self.parallel.replayed_packets += replayed;
        let (warm_rows, warm_stats, warm_live) = warm.suspend(clock);
        // The replay's rows and live state replace the cold ones of those connections.
        // (Rows name their file by its source; a unit's files have distinct sources.)
        let position: HashMap<Arc<[u8]>, usize> = unit
            .iter()
            .map(|p| (Arc::from(files[p.file()].source.as_slice()), p.file()))
            .collect();
        self.sink.store.drop_cold(
            Origin {
                stream: self.sink.stream,
                unit: number,
            },
            UnitDrop::Replayed {
                last: regions.iter().map(|(k, reg)| (*k, reg.last)).collect(),
                position,
            },
        );
        // A cold connection begun within a replayed stretch is the replay's; one begun after
        // it (past the silence) stands.
        let (_, live) = live.partition(|a, b, start_ns| {
            regions
                .get(&conn_key(a, b))
                .is_some_and(|reg| start_ns <= reg.newest)
        });
        self.stats.connections = (self.stats.connections + warm_stats.connections)
            .saturating_sub(cold.stats().connections);
        self.stats.carry_errors += warm_stats.carry_errors;
        self.state = Carry::merge(vec![warm_live, live]);
        self.sink.push(warm_rows, 0);
    }

    /// Whether the unit's ranges continue the stitched reads of their files exactly: each
    /// starts where the read before it ended, with nothing that makes a range read on its own
    /// differ from the sequential read (an error before it, a layout change, a first packet
    /// without a time of its own).
    fn ranges_meet(&self, results: &[PieceOut]) -> bool {
        let mut next: HashMap<usize, (u64, bool)> = HashMap::new();
        for out in results {
            let PieceOut::Range {
                split,
                range,
                report,
                ..
            } = out
            else {
                continue;
            };
            let (at, ok) = next
                .get(&split.file)
                .copied()
                .or_else(|| {
                    self.splits
                        .get(&split.file)
                        .map(|p| (p.next, !p.stopped && !p.from_head))
                })
                .unwrap_or((0, true));
            if !ok || at != split.bounds[*range] || (*range > 0 && report.untimed_start) {
                return false;
            }
            let ok = report.error.is_none() && !report.layout_changed;
            next.insert(split.file, (report.next, ok));
        }
        true
    }

    /// A piece's figures: a file's as they are, a range's added to its file's (complete with
    /// its last range).
    fn push_piece(&mut self, files: &[InputFile], out: PieceOut) {
        let PieceOut::Range {
            split,
            range,
            tally,
            report,
            from_head,
            seconds,
        } = out
        else {
            if let PieceOut::File(r) = out {
                self.results.push(r);
            }
            return;
        };
        let p = self
            .splits
            .entry(split.file)
            .or_insert_with(|| SplitProgress {
                next: 0,
                frames: 0,
                stopped: false,
                from_head: false,
                bases: Vec::new(),
                result: Some(FileResult {
                    input: files[split.file].clone(),
                    read: ReadReport {
                        format: Some(split.layout.format),
                        compression: Compression::None,
                        packets: 0,
                        file_bytes: split.map.len() as u64,
                        capture_bytes: 0,
                        skipped_blocks: 0,
                        packets_without_interface: 0,
                        error: None,
                    },
                    decode: DecodeStats::default(),
                    first_ts: None,
                    last_ts: None,
                    seconds: 0.0,
                }),
            });
        p.bases.resize(range + 1, 0);
        p.bases[range] = if from_head { 0 } else { p.frames };
        let Some(f) = p.result.as_mut() else {
            return;
        };
        f.read.packets += tally.stats.packets;
        f.read.capture_bytes = report.next;
        if from_head {
            // The counters of a read from the head cover everything before too.
            f.read.skipped_blocks = report.skipped_blocks;
            f.decode.malformed += report
                .packets_without_interface
                .saturating_sub(f.read.packets_without_interface);
            f.read.packets_without_interface = report.packets_without_interface;
            p.frames = report.frames;
        } else {
            f.read.skipped_blocks += report.skipped_blocks;
            f.read.packets_without_interface += report.packets_without_interface;
            // Packets on an interface no IDB described cannot be decoded: malformed.
            f.decode.malformed += report.packets_without_interface;
            p.frames += report.frames;
        }
        f.decode.add(&tally.stats);
        f.first_ts = match (f.first_ts, tally.first_ts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        f.last_ts = f.last_ts.max(tally.last_ts);
        f.seconds += seconds;
        p.next = report.next;
        p.from_head |= report.layout_changed;
        if report.error.is_some() {
            p.stopped = true;
            f.read.error = report.error;
        }
        if range + 1 == split.ranges() {
            self.finish_split(&split);
        }
    }

    /// The last range of a split file is stitched (or skipped): its figures are complete.
    fn finish_split(&mut self, split: &Split) {
        if let Some(r) = self
            .splits
            .get_mut(&split.file)
            .and_then(|p| p.result.take())
        {
            if let Some(pr) = &self.progress {
                (pr.0)(split.file, r.read.capture_bytes, true);
            }
            self.results.push(r);
        }
    }

    /// Rows' frame numbers of ranges after the first of a split file, made final.
    fn rebase(&self, files: &[InputFile]) {
        for (&i, p) in &self.splits {
            self.sink.store.rebase(
                self.sink.stream,
                Arc::from(files[i].source.as_slice()),
                p.bases.clone(),
                p.from_head,
            );
        }
    }

    /// Track the unit again, warm from the stitched state, as one sequential run would.
    fn redo(&mut self, files: &[InputFile], unit: Unit, number: u32, opts: &RunOptions) {
        self.parallel.redone_units += 1;
        crate::release_freed_memory();
        self.sink.store.drop_cold(
            Origin {
                stream: self.sink.stream,
                unit: number,
            },
            UnitDrop::All,
        );
        let opts = &RunOptions {
            progress: None,
            ..opts.clone()
        };
        let mut warm = Tracker::resume(opts.flow, std::mem::take(&mut self.state));
        let sink = self.sink;
        let mut segments = 0u64;
        for piece in &unit {
            let out = match piece {
                Piece::File(i) => {
                    let source = files[*i].source.as_slice();
                    PieceOut::File(process_file_until(&files[*i], *i as u32, opts, |seg| {
                        warm.process(seg, source);
                        sink.tracked(&mut segments, &mut warm, 0);
                        true
                    }))
                }
                Piece::Range(split, r) => {
                    // Where one sequential read of the file has got to decides where this
                    // range starts (or whether it is read at all).
                    let (start, stopped, from_head) = self
                        .splits
                        .get(&split.file)
                        .map_or((0, false, false), |p| (p.next, p.stopped, p.from_head));
                    if stopped || start >= split.bounds[r + 1] {
                        if r + 1 == split.ranges() {
                            self.finish_split(split);
                        }
                        continue;
                    }
                    let source = files[split.file].source.as_slice();
                    read_range_piece(split, *r, start, from_head, |seg| {
                        warm.process(seg, source);
                        sink.tracked(&mut segments, &mut warm, 0);
                        true
                    })
                }
            };
            self.push_piece(files, out);
        }
        if self.finish_after == Some(number) {
            let stats = warm.finish_into(|rows| sink.push(rows, 0));
            add_stats(&mut self.stats, &stats);
            return;
        }
        let (rows, stats, live) = warm.suspend(i64::MIN);
        add_stats(&mut self.stats, &stats);
        self.state = live;
        self.sink.push(rows, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generated capture with connections crossing every cut (many interleaved flows).
    fn capture(dir: &std::path::Path) -> InputFile {
        let mut bytes = Vec::new();
        let spec = rstscope_gen::BenchSpec {
            bytes: 400_000,
            concurrent: 60,
            seed: 3,
        };
        rstscope_gen::write_bench(&mut bytes, spec, rstscope_gen::T0).unwrap();
        let path = dir.join("x.pcap");
        std::fs::write(&path, &bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(600))
            .unwrap();
        InputFile {
            path,
            source: b"x.pcap".to_vec(),
            sensor: None,
        }
    }

    /// The file cut at `bounds` (whatever they are), as units of `per_unit` ranges.
    fn units_at(files: &[InputFile], bounds: Vec<u64>, per_unit: usize) -> Vec<Unit> {
        let file = std::fs::File::open(&files[0].path).unwrap();
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let layout = rstscope_capture::layout(&map).unwrap();
        let split = Arc::new(Split {
            file: 0,
            map,
            layout,
            bounds,
        });
        let pieces: Vec<Piece> = (0..split.ranges())
            .map(|r| Piece::Range(Arc::clone(&split), r))
            .collect();
        pieces.chunks(per_unit).map(|c| c.to_vec()).collect()
    }

    /// A stream's output and its rows (in log order, as text), read in order or in `units`.
    fn stream(
        files: &[InputFile],
        opts: &RunOptions,
        units: Option<Vec<Unit>>,
    ) -> (StreamOutput, Vec<String>) {
        let store = crate::rows::RowStore::in_memory();
        let sink = StreamSink {
            store: &store,
            stream: 0,
            sensor: None,
        };
        let out = match units {
            None => crate::run_sequential(files, opts, Carry::new(), StreamEnd::Finish, &sink),
            Some(u) => run_units(files, opts, u, 2, Carry::new(), StreamEnd::Finish, &sink),
        };
        let rows = store.finish(1).unwrap().collect_vec().unwrap();
        (out, rows.iter().map(|e| format!("{e:?}")).collect())
    }

    /// A later unit whose live connections outgrow its share stops and is redone in order:
    /// the rows are one tracker's.
    #[test]
    fn a_unit_that_outgrows_its_share_is_redone_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        let spec = rstscope_gen::BenchSpec {
            bytes: 6_000_000,
            concurrent: 400,
            seed: 5,
        };
        rstscope_gen::write_bench(&mut bytes, spec, rstscope_gen::T0).unwrap();
        let path = dir.path().join("x.pcap");
        std::fs::write(&path, &bytes).unwrap();
        let files = vec![InputFile {
            path,
            source: b"x.pcap".to_vec(),
            sensor: None,
        }];
        let mut opts = RunOptions::default();
        let (free, _) = stream(&files, &opts, None);
        // Room for every connection, a quarter of which the capture's live ones outgrow.
        opts.flow.max_connections = free.stats.peak_connections as usize + 1;
        let (want, want_rows) = stream(&files, &opts, None);
        assert_eq!(want.stats.evicted, 0);
        assert!(want_rows.len() > 10);
        let size = bytes.len() as u64;
        let units = units_at(&files, vec![0, size / 2, size], 1);
        let (got, got_rows) = stream(&files, &opts, Some(units));
        assert_eq!(got.parallel.redone_units, 1);
        assert_eq!(got_rows, want_rows);
        assert_eq!(got.stats.connections, want.stats.connections);
    }

    /// Cuts in the middle of records, at record boundaries and past the end: the stitched rows
    /// and file figures are one tracker's, whatever resynchronisation would have proposed.
    #[test]
    fn wrong_cuts_are_read_again_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![capture(dir.path())];
        let opts = RunOptions::default();
        let (want, want_rows) = stream(&files, &opts, None);
        let size = std::fs::metadata(&files[0].path).unwrap().len();
        let mut redone = 0;
        for (k, cuts) in [
            vec![size / 3, 2 * size / 3],
            vec![25, 1000, 1001, size / 2],
            vec![size / 4 + 7, size / 2 + 3, 3 * size / 4 + 1],
            vec![size - 1],
        ]
        .into_iter()
        .enumerate()
        {
            let mut bounds = vec![0];
            bounds.extend(cuts);
            bounds.push(size);
            for per_unit in [1, 2] {
                let units = units_at(&files, bounds.clone(), per_unit);
                let (got, got_rows) = stream(&files, &opts, Some(units));
                assert_eq!(got_rows, want_rows, "cuts {k}, {per_unit} per unit");
                assert_eq!(got.results.len(), 1);
                let (g, w) = (&got.results[0], &want.results[0]);
                assert_eq!(g.decode, w.decode, "cuts {k}");
                assert_eq!(g.read.packets, w.read.packets, "cuts {k}");
                assert_eq!((g.first_ts, g.last_ts), (w.first_ts, w.last_ts), "cuts {k}");
                assert_eq!(got.stats.connections, want.stats.connections, "cuts {k}");
                redone += got.parallel.redone_units;
            }
        }
        assert!(redone > 0, "no cut was found wrong");
    }

    /// A corrupt record in the middle: the sequential read stops there, so the ranges after it
    /// are not read, whichever unit they were in; the file's error is the sequential one.
    #[test]
    fn ranges_after_a_corrupt_record_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![capture(dir.path())];
        let mut bytes = std::fs::read(&files[0].path).unwrap();
        // Walk the pcap records to one about 60 % in and give it an impossible length.
        let mut at = 24usize;
        while at < bytes.len() * 6 / 10 {
            let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            at += 16 + caplen as usize;
        }
        bytes[at + 8..at + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        std::fs::write(&files[0].path, &bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&files[0].path)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(600))
            .unwrap();
        let opts = RunOptions::default();
        let (want, want_rows) = stream(&files, &opts, None);
        let werr = want.results[0].error().map(|e| e.to_string());
        assert!(werr.is_some());
        let size = bytes.len() as u64;
        let map =
            unsafe { memmap2::Mmap::map(&std::fs::File::open(&files[0].path).unwrap()) }.unwrap();
        let layout = rstscope_capture::layout(&map).unwrap();
        let bounds: Vec<u64> = (1..5)
            .filter_map(|k| rstscope_capture::resync(&map, &layout, size * k / 5))
            .collect();
        for per_unit in [1, 2, 3] {
            let mut b = vec![0];
            b.extend(bounds.iter().copied());
            b.push(size);
            b.dedup();
            let units = units_at(&files, b, per_unit);
            let (got, got_rows) = stream(&files, &opts, Some(units));
            assert_eq!(got_rows, want_rows, "{per_unit} per unit");
            assert_eq!(got.results.len(), 1);
            let g = &got.results[0];
            assert_eq!(
                g.error().map(|e| e.to_string()),
                werr,
                "{per_unit} per unit"
            );
            assert_eq!(g.decode, want.results[0].decode);
            assert_eq!(g.read.capture_bytes, want.results[0].read.capture_bytes);
        }
    }
}
