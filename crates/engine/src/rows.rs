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

use rstscope_reset::ResetEvent;

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
#[derive(Default)]
pub(crate) struct RowStore {
    inner: Mutex<StoreInner>,
}

#[derive(Default)]
struct StoreInner {
    rows: Vec<(ResetEvent, u64)>,
    drops: HashMap<Origin, UnitDrop>,
    bases: Bases,
    /// A range was read from its file's head: its frames were final while the rows of the
    /// ranges before it were provisional, so rows of one file and time are sorted again once
    /// rebased.
    regroup: bool,
}

impl RowStore {
    /// Store finished rows of `origin` (their sensor already set).
    pub fn push(&self, rows: Vec<ResetEvent>, origin: Origin) {
        if rows.is_empty() {
            return;
        }
        let tag = origin.tag();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.rows.extend(rows.into_iter().map(|r| (r, tag)));
    }

    /// Record what stitching replaced of a unit's cold rows.
    pub fn drop_cold(&self, origin: Origin, drop: UnitDrop) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.drops.insert(origin, drop);
    }

    /// Record the frame numbers before each range of a split file of `stream`.
    pub fn rebase(&self, stream: u32, source: Arc<[u8]>, bases: Vec<u64>, from_head: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.regroup |= from_head;
        inner.bases.insert((stream, source), bases);
    }

    /// The rows, sorted, with stitching's decisions applied.
    pub fn finish(self, threads: usize) -> Rows {
        let inner = self.inner.into_inner().unwrap_or_else(|p| p.into_inner());
        let StoreInner {
            rows,
            drops,
            bases,
            regroup,
        } = inner;
        let mut kept: Vec<ResetEvent> = Vec::with_capacity(rows.len());
        for (mut r, tag) in rows {
            let origin = Origin::of_tag(tag);
            if !keep(&drops, origin, &r) {
                continue;
            }
            rebase_row(&bases, origin.stream, &mut r);
            kept.push(r);
        }
        let _ = regroup;
        crate::sort_rows(&mut kept, threads);
        Rows { rows: kept }
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

/// A run's rows in the contract's order.
#[derive(Debug, Default)]
pub struct Rows {
    rows: Vec<ResetEvent>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// All of them, in memory.
    pub fn into_vec(self) -> Vec<ResetEvent> {
        self.rows
    }

    pub fn from_vec(rows: Vec<ResetEvent>) -> Self {
        Rows { rows }
    }

    /// Rows of one sensor.
    pub fn count_of_sensor(&self, sensor: Option<&[u8]>) -> u64 {
        self.rows
            .iter()
            .filter(|r| r.sensor.as_deref() == sensor)
            .count() as u64
    }
}
