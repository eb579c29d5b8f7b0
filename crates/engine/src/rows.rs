//! The finished rows of a run on their way to the writers. Every stream hands its rows over as
//! it reads (a tracker's finished rows, a batch at a time), never holding them to the end; the
//! store keeps them in sorted runs (in memory, spilled to disk past a budget) and gives them
//! back once, or more than once, in the contract's order.
//!
//! Stitching (units.rs) learns only after a unit is tracked which of its cold rows belong to a
//! connection carried into it, or that the whole unit must be redone in order. The cold rows
//! are stored at once, tagged with their unit; what stitching decides is recorded here as a
//! [`UnitDrop`] and applied as the rows come back. The frame numbers of byte ranges after a
//! split file's first are settled when the ranges before are stitched: rows keep the range's
//! provisional numbers (`range << 40 | number in range`, which order a file's rows as the
//! final ones do) and are rebased as they come back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use std::path::Path;

use rstscope_reset::ResetEvent;

use crate::spill::{RowSorter, SortedRows};

/// A connection's endpoints in canonical order (lower first).
pub(crate) type ConnKey = ((IpAddr, u16), (IpAddr, u16));

pub(crate) fn conn_key(a: (IpAddr, u16), b: (IpAddr, u16)) -> ConnKey {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// Where a row comes from: its stream, and for a unit's cold row that stitching may still
/// replace, the unit (numbered from 1; 0 for a row that is final as it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub stream: u32,
    pub unit: u32,
}

impl Origin {
    pub fn tag(self) -> u64 {
        (self.stream as u64) << 32 | self.unit as u64
    }
    pub fn of_tag(tag: u64) -> Self {
        Origin {
            stream: (tag >> 32) as u32,
            unit: tag as u32,
        }
    }
}

/// Which cold rows of a unit stitching replaced.
pub(crate) enum UnitDrop {
    /// The unit was redone in order: all of them.
    All,
    /// Rows of these connections up to the last packet replayed for each: (position of the
    /// file in the unit, frame); `position` gives a row's file position by its source.
    Replayed {
        last: HashMap<ConnKey, (usize, u64)>,
        position: HashMap<Arc<[u8]>, usize>,
    },
}

/// Frame numbers before each range of a split file, by (stream, source).
type Bases = HashMap<(u32, Arc<[u8]>), Vec<u64>>;

/// Frame numbers of ranges after the first carry the range here.
pub(crate) const FRAME_SHIFT: u32 = 40;
pub(crate) const FRAME_LOCAL: u64 = (1 << FRAME_SHIFT) - 1;

/// The rows of a run while its streams are read: shared by every stream's thread.
pub(crate) struct RowStore {
    inner: Mutex<StoreInner>,
}

struct StoreInner {
    /// None once a spill failed (the error is kept).
    sorter: Option<RowSorter>,
    error: Option<std::io::Error>,
    drops: HashMap<Origin, UnitDrop>,
    bases: Bases,
    /// A range was read from its file's head: its frames were final while the rows of the
    /// ranges before it were provisional, so rows of one file and time are sorted again once
    /// rebased.
    regroup: bool,
    /// The oldest and newest row time of each origin.
    times: HashMap<Origin, (i64, i64)>,
}

impl RowStore {
    /// A store holding about `budget` bytes of rows, spilling sorted runs to `dir` past it.
    pub fn new(dir: &Path, budget: usize, threads: usize) -> Self {
        RowStore {
            inner: Mutex::new(StoreInner {
                sorter: Some(RowSorter::new(dir, budget).threads(threads)),
                error: None,
                drops: HashMap::new(),
                bases: Bases::new(),
                regroup: false,
                times: HashMap::new(),
            }),
        }
    }

    /// A store that never spills.
    #[cfg(test)]
    pub fn in_memory() -> Self {
        Self::new(&std::env::temp_dir(), usize::MAX, 1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store finished rows of `origin` (their sensor already set).
    pub fn push(&self, mut rows: Vec<ResetEvent>, origin: Origin) {
        if rows.is_empty() {
            return;
        }
        let lo = rows.iter().map(|r| r.ts_ns).min().unwrap_or(i64::MAX);
        let hi = rows.iter().map(|r| r.ts_ns).max().unwrap_or(i64::MIN);
        let mut inner = self.lock();
        let t = inner.times.entry(origin).or_insert((i64::MAX, i64::MIN));
        *t = (t.0.min(lo), t.1.max(hi));
        let Some(sorter) = inner.sorter.as_mut() else {
            return;
        };
        if let Err(e) = sorter.append_tagged(&mut rows, origin.tag()) {
            // The sorter is unfit for more: the run fails when it asks for the rows.
            inner.sorter = None;
            inner.error = Some(e);
        }
    }

    /// Record what stitching replaced of a unit's cold rows.
    pub fn drop_cold(&self, origin: Origin, drop: UnitDrop) {
        self.lock().drops.insert(origin, drop);
    }

    /// Record the frame numbers before each range of a split file of `stream`.
    pub fn rebase(&self, stream: u32, source: Arc<[u8]>, bases: Vec<u64>, from_head: bool) {
        let mut inner = self.lock();
        inner.regroup |= from_head;
        inner.bases.insert((stream, source), bases);
    }

    /// The rows, sorted, with stitching's decisions applied; or why they cannot be had (a
    /// spill failed: a full disk).
    pub fn finish(self, threads: usize) -> std::io::Result<Rows> {
        let inner = self.inner.into_inner().unwrap_or_else(|p| p.into_inner());
        let StoreInner {
            sorter,
            error,
            drops,
            bases,
            regroup,
            times,
        } = inner;
        if let Some(e) = error {
            return Err(e);
        }
        let sorted = sorter.expect("a sorter without an error").finish(threads)?;
        // The span of the rows kept: a unit redone in order gave the same packets' rows again
        // (the rows of a unit whose cold read was wrong, from a cut between records, may
        // have any time); a replayed connection's rows have the same times warm and cold.
        let (first_ts, last_ts) = times
            .iter()
            .filter(|(o, _)| !matches!(drops.get(o), Some(UnitDrop::All)))
            .fold((None, None), |(lo, hi), (_, &(a, b))| {
                (
                    Some(lo.map_or(a, |l: i64| l.min(a))),
                    Some(hi.map_or(b, |h: i64| h.max(b))),
                )
            });
        Ok(Rows {
            sorted: Some(sorted),
            drops,
            bases,
            regroup,
            group: std::collections::VecDeque::new(),
            ahead: None,
            first_ts,
            last_ts,
            threads,
        })
    }
}

/// Whether stitching kept a row.
fn keep(drops: &HashMap<Origin, UnitDrop>, origin: Origin, r: &ResetEvent) -> bool {
    if origin.unit == 0 {
        return true;
    }
    match drops.get(&origin) {
        None => true,
        Some(UnitDrop::All) => false,
        Some(UnitDrop::Replayed { last, position }) => {
            let k = conn_key((r.orig_h, r.orig_p), (r.resp_h, r.resp_p));
            last.get(&k).is_none_or(|&last| {
                let at = (
                    position.get(&r.source).copied().unwrap_or(usize::MAX),
                    r.frame,
                );
                at > last
            })
        }
    }
}

fn rebase_row(bases: &Bases, stream: u32, r: &mut ResetEvent) {
    let range = (r.frame >> FRAME_SHIFT) as usize;
    if range == 0 || bases.is_empty() {
        return;
    }
    if let Some(b) = bases.get(&(stream, Arc::clone(&r.source))) {
        r.frame = b.get(range).copied().unwrap_or(0) + (r.frame & FRAME_LOCAL);
    }
}

/// A run's rows in the contract's order, read once: from memory, or merged from the runs a
/// sort spilled.
pub struct Rows {
    /// None once taken whole.
    sorted: Option<SortedRows>,
    drops: HashMap<Origin, UnitDrop>,
    bases: Bases,
    regroup: bool,
    /// With `regroup`: rows of one time and file, sorted again once rebased.
    group: std::collections::VecDeque<ResetEvent>,
    /// With `regroup`: the first row of the next group.
    ahead: Option<ResetEvent>,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    threads: usize,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("first_ts", &self.first_ts)
            .field("last_ts", &self.last_ts)
            .finish_non_exhaustive()
    }
}

impl Rows {
    /// Rows in log order with nothing of stitching left to apply, and their time span.
    fn settled(sorted: SortedRows, span: (Option<i64>, Option<i64>), threads: usize) -> Self {
        Rows {
            sorted: Some(sorted),
            drops: HashMap::new(),
            bases: Bases::new(),
            regroup: false,
            group: std::collections::VecDeque::new(),
            ahead: None,
            first_ts: span.0,
            last_ts: span.1,
            threads,
        }
    }

    /// The oldest and the newest row's time (None without rows).
    pub fn time_span(&self) -> Option<(i64, i64)> {
        self.first_ts.zip(self.last_ts)
    }

    /// What spilling cost.
    pub fn spill_stats(&self) -> crate::spill::SpillStats {
        self.sorted.as_ref().map(|s| s.stats()).unwrap_or_default()
    }

    /// All the rows in one vector when nothing was spilled (and none taken yet): writers render
    /// slices of it on several threads.
    pub fn take_vec(&mut self) -> Option<Vec<ResetEvent>> {
        let (rows, tags) = self.sorted.as_mut()?.take_vec_tagged()?;
        let mut kept = Vec::with_capacity(rows.len());
        for (mut r, tag) in rows.into_iter().zip(tags) {
            let origin = Origin::of_tag(tag);
            if keep(&self.drops, origin, &r) {
                rebase_row(&self.bases, origin.stream, &mut r);
                kept.push(r);
            }
        }
        if self.regroup {
            crate::sort_rows(&mut kept, self.threads);
        }
        Some(kept)
    }

    /// A first pass over the rows (the conn.log join's keys), keeping them for a second: in
    /// memory when nothing was spilled, else written again as one sorted run (with
    /// stitching's decisions applied) to `dir`, past `budget` bytes.
    pub fn tee(
        mut self,
        dir: &Path,
        budget: usize,
        mut visit: impl FnMut(&ResetEvent),
    ) -> std::io::Result<Rows> {
        let span = (self.first_ts, self.last_ts);
        let threads = self.threads;
        let rows = match self.take_vec() {
            Some(rows) => {
                rows.iter().for_each(&mut visit);
                return Ok(Rows::settled(SortedRows::in_order(rows), span, threads));
            }
            None => self,
        };
        // In order: one run, plus what is left in memory.
        let mut again = RowSorter::new(dir, budget);
        for r in rows {
            let r = r?;
            visit(&r);
            again.push(r)?;
        }
        Ok(Rows::settled(again.finish(threads)?, span, threads))
    }

    /// Every row, in memory (tests, small runs).
    pub fn collect_vec(mut self) -> std::io::Result<Vec<ResetEvent>> {
        match self.take_vec() {
            Some(v) => Ok(v),
            None => self.collect(),
        }
    }

    /// The next row kept, rebased.
    fn next_kept(&mut self) -> Option<std::io::Result<ResetEvent>> {
        let sorted = self.sorted.as_mut()?;
        loop {
            let (mut r, tag) = match sorted.next_tagged()? {
                Ok(x) => x,
                Err(e) => return Some(Err(e)),
            };
            let origin = Origin::of_tag(tag);
            if keep(&self.drops, origin, &r) {
                rebase_row(&self.bases, origin.stream, &mut r);
                return Some(Ok(r));
            }
        }
    }
}

impl Iterator for Rows {
    type Item = std::io::Result<ResetEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.regroup {
            return self.next_kept();
        }
        if let Some(r) = self.group.pop_front() {
            return Some(Ok(r));
        }
        // Gather the rows of one (time, file), then give them in log order.
        let first = match self.ahead.take() {
            Some(r) => r,
            None => match self.next_kept()? {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            },
        };
        let (ts, source) = (first.ts_ns, Arc::clone(&first.source));
        self.group.push_back(first);
        loop {
            match self.next_kept() {
                Some(Ok(r)) if r.ts_ns == ts && r.source == source => self.group.push_back(r),
                Some(Ok(r)) => {
                    // It starts the next group.
                    self.ahead = Some(r);
                    break;
                }
                Some(Err(e)) => return Some(Err(e)),
                None => break,
            }
        }
        self.group.make_contiguous().sort_by(|a, b| a.log_order(b));
        self.group.pop_front().map(Ok)
    }
}
