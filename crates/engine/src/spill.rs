//! An external sort of finished rows, so memory is bounded by a budget instead of the number
//! of resets: [`RowSorter`] takes rows in any order, keeps them while they fit the budget and
//! writes sorted runs to hidden temporary files beyond it; [`SortedRows`] gives them back in
//! [`ResetEvent::log_order`], exactly as [`sort_rows`](crate::sort_rows) orders them.
//!
//! When nothing was spilled (the common case) finishing is `sort_rows` over the buffer and no
//! file is made. Otherwise the runs and the sorted rest of the buffer are merged k ways; more
//! than [`MERGE_WIDTH`] inputs are first merged in passes into fewer, longer runs.
//!
//! Runs: a full buffer is sorted; if the run being written can go on with it (the buffer's
//! smallest row is not below the run's last), its lower half is appended to that run and the
//! upper half stays, to meet later rows; otherwise the whole buffer becomes a new run. Input in
//! order, or late by less than half a buffer (rows leave the tracker up to the close delay late),
//! therefore makes one run; input in random order makes runs of a buffer each.
//!
//! Ties: a row written earlier was pushed no later than any row it ties with in `log_order`
//! (a buffer is sorted stably and cut at a prefix), so merging ties by run age, the buffer
//! last, keeps `sort_rows`'s order among rows that tie but differ.
//!
//! Files: `.reset.spill.tmp-XXXXXX` in the given directory (the output directory, under its
//! lock), each unlinked as soon as it is created: the data lives as long as its open handle,
//! so neither an error, a drop nor a killed run leaves one behind (and one caught between the
//! two calls has the prefix [`crate::lock::remove_stale_temporaries`] removes). A file is the
//! magic `RSTSPIL1` and then frames (see [`codec`]).

mod codec;

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use rstscope_reset::ResetEvent;

use crate::sort_rows_with;
use codec::{RowDecoder, RowEncoder};

/// How spill files are named; the `.reset` stem and `.tmp-` are what
/// [`crate::lock::remove_stale_temporaries`] looks for.
pub const SPILL_PREFIX: &str = ".reset.spill.tmp-";

/// Most inputs merged at once; more runs are first merged in passes.
pub const MERGE_WIDTH: usize = 64;

const MAGIC: &[u8; 8] = b"RSTSPIL1";
const WRITE_BUFFER: usize = 256 << 10;
const MIN_READ_BUFFER: usize = 64 << 10;
const MAX_READ_BUFFER: usize = 1 << 20;

/// What spilling cost, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpillStats {
    /// Run files written when the buffer was full.
    pub runs: u64,
    /// Rows written to them (each row once).
    pub rows_spilled: u64,
    /// Bytes written to them.
    pub bytes_spilled: u64,
    /// Merge passes made before the final merge (each writes one longer run).
    pub merge_passes: u64,
    /// Rows those passes wrote again.
    pub rows_remerged: u64,
}

/// About what a row takes in memory: the struct and what it owns (allocator rounding not
/// counted, but 16 bytes of bookkeeping per allocation are); shared names are not counted.
pub fn approx_row_bytes(e: &ResetEvent) -> usize {
    fn heap(capacity: usize) -> usize {
        if capacity == 0 {
            0
        } else {
            capacity + 16
        }
    }
    fn owned(c: &Option<std::borrow::Cow<'static, str>>) -> usize {
        match c {
            Some(std::borrow::Cow::Owned(s)) => heap(s.capacity()),
            _ => 0,
        }
    }
    std::mem::size_of::<ResetEvent>()
        + heap(e.uid.capacity())
        + heap(e.community_id.capacity())
        + e.evidence
            .as_ref()
            .map_or(0, |v| heap(v.capacity() * std::mem::size_of::<&str>()))
        + e.payload.as_ref().map_or(0, |p| heap(p.capacity()))
        + e.reason.as_ref().map_or(0, |s| heap(s.capacity()))
        + e.history.as_ref().map_or(0, |s| heap(s.capacity()))
        + owned(&e.cause)
        + owned(&e.conn_state)
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A new spill file in `dir`, already unlinked, and the name it had (for messages).
fn create_spill_file(dir: &Path) -> io::Result<(PathBuf, File)> {
    let tmp = tempfile::Builder::new()
        .prefix(SPILL_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| named(dir, e))?;
    let path = tmp.path().to_path_buf();
    Ok((path, tmp.into_file()))
}

/// Rows pushed in any order, given back sorted by [`ResetEvent::log_order`] with memory
/// bounded by a budget (see the module's documentation).
pub struct RowSorter {
    dir: PathBuf,
    budget: usize,
    threads: usize,
    rows: Vec<ResetEvent>,
    /// Each row's tag (see [`Self::push_tagged`]).
    tags: Vec<u64>,
    /// [`approx_row_bytes`] of `rows`.
    row_bytes: usize,
    /// Finished runs, oldest first.
    runs: Vec<Run>,
    /// The run being written, which a later buffer may go on.
    open: Option<RunWriter>,
    pushed: u64,
    stats: SpillStats,
    merge_width: usize,
    /// Makes spill files (tests swap in one that fails).
    create_file: fn(&Path) -> io::Result<(PathBuf, File)>,
}

impl RowSorter {
    /// A sorter keeping about `budget_bytes` of rows in memory (see [`approx_row_bytes`]) and
    /// spilling to `dir` beyond that; sorting on one thread until [`Self::threads`] says more.
    pub fn new(dir: &Path, budget_bytes: usize) -> RowSorter {
        RowSorter {
            dir: dir.to_path_buf(),
            budget: budget_bytes,
            threads: 1,
            rows: Vec::new(),
            tags: Vec::new(),
            row_bytes: 0,
            runs: Vec::new(),
            open: None,
            pushed: 0,
            stats: SpillStats::default(),
            merge_width: MERGE_WIDTH,
            create_file: create_spill_file,
        }
    }

    /// Sort full buffers on `n` threads.
    pub fn threads(mut self, n: usize) -> RowSorter {
        self.threads = n.max(1);
        self
    }

    /// Take a row; when the buffer goes over the budget, part of it is written out. An error
    /// (the disk is full) leaves the sorter unfit for more: drop it.
    pub fn push(&mut self, row: ResetEvent) -> io::Result<()> {
        self.push_tagged(row, 0)
    }

    /// [`Self::push`] a row with a tag the caller gives it (where it came from): the tag comes
    /// back with the row ([`SortedRows::next_tagged`]) and has no part in the order.
    pub fn push_tagged(&mut self, row: ResetEvent, tag: u64) -> io::Result<()> {
        self.row_bytes += approx_row_bytes(&row);
        self.rows.push(row);
        self.tags.push(tag);
        self.pushed += 1;
        if self.row_bytes > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Take a batch of rows (a tracker's finished rows): [`Self::push`] for each, but moved in
    /// at once, as a vector is appended to.
    pub fn append(&mut self, rows: &mut Vec<ResetEvent>) -> io::Result<()> {
        self.append_tagged(rows, 0)
    }

    /// [`Self::append`] rows that all have `tag`.
    pub fn append_tagged(&mut self, rows: &mut Vec<ResetEvent>, tag: u64) -> io::Result<()> {
        self.row_bytes += rows.iter().map(approx_row_bytes).sum::<usize>();
        self.pushed += rows.len() as u64;
        self.tags.extend(std::iter::repeat_n(tag, rows.len()));
        self.rows.append(rows);
        while self.row_bytes > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// [`Self::push`] each row.
    pub fn extend(&mut self, rows: impl IntoIterator<Item = ResetEvent>) -> io::Result<()> {
        rows.into_iter().try_for_each(|r| self.push(r))
    }

    /// What spilling has cost so far.
    pub fn stats(&self) -> SpillStats {
        self.stats
    }

    /// Rows pushed so far.
    pub fn len(&self) -> u64 {
        self.pushed
    }

    pub fn is_empty(&self) -> bool {
        self.pushed == 0
    }

    fn spill(&mut self) -> io::Result<()> {
        sort_rows_with(&mut self.rows, &mut self.tags, self.threads);
        let goes_on = match &self.open {
            Some(run) => run
                .last
                .as_ref()
                .is_none_or(|last| self.rows[0].log_order(last) != Ordering::Less),
            None => false,
        };
        // Out of order: rows below the open run's last need a run of their own anyway.
        let whole = self.open.is_some() && !goes_on;
        if !goes_on {
            if let Some(run) = self.open.take() {
                self.runs.push(run.finish()?);
            }
            self.open = Some(RunWriter::create(&self.dir, self.create_file)?);
            self.stats.runs += 1;
        }
        let run = self.open.as_mut().expect("a run is open");
        let n = if whole {
            self.rows.len()
        } else {
            (self.rows.len() / 2).max(1)
        };
        let bytes_before = run.bytes;
        let mut last = None;
        for (row, tag) in self.rows.drain(..n).zip(self.tags.drain(..n)) {
            self.row_bytes -= approx_row_bytes(&row);
            run.write(&row, tag)?;
            last = Some(row);
        }
        run.last = last;
        self.stats.rows_spilled += n as u64;
        self.stats.bytes_spilled += run.bytes - bytes_before;
        Ok(())
    }

    /// Every row pushed, in [`ResetEvent::log_order`] (ties as [`sort_rows`](crate::sort_rows) leaves them).
    /// When nothing was spilled this is `sort_rows` over the buffer on `threads` threads.
    pub fn finish(mut self, threads: usize) -> io::Result<SortedRows> {
        sort_rows_with(&mut self.rows, &mut self.tags, threads.max(1));
        let remaining = self.pushed;
        if self.runs.is_empty() && self.open.is_none() {
            return Ok(SortedRows {
                rows: Rows::Memory(self.memory_rows()),
                remaining,
                stats: self.stats,
            });
        }
        if let Some(run) = self.open.take() {
            self.runs.push(run.finish()?);
        }
        let width = self.merge_width.max(2);
        let read_buffer = (self.budget / 2 / width).clamp(MIN_READ_BUFFER, MAX_READ_BUFFER);
        // The rest of the buffer is one more input.
        let most_runs = width - !self.rows.is_empty() as usize;
        while self.runs.len() > most_runs {
            self.merge_pass(width, most_runs, read_buffer)?;
        }
        let mut inputs = Vec::with_capacity(self.runs.len() + 1);
        for run in std::mem::take(&mut self.runs) {
            inputs.push(Input::Run(RunReader::open(run, read_buffer)?));
        }
        inputs.push(Input::Memory(self.memory_rows()));
        Ok(SortedRows {
            rows: Rows::Merge(Merge::new(inputs)?),
            remaining,
            stats: self.stats,
        })
    }

    /// The buffer's rows (sorted) with their tags.
    fn memory_rows(&mut self) -> MemoryRows {
        MemoryRows {
            rows: std::mem::take(&mut self.rows).into_iter(),
            tags: std::mem::take(&mut self.tags).into_iter(),
        }
    }

    /// Merge at most `width` adjacent runs, the cheapest to merge, into one: as few as leave
    /// `most_runs` when this is the last pass.
    fn merge_pass(&mut self, width: usize, most_runs: usize, read_buffer: usize) -> io::Result<()> {
        let k = (self.runs.len() + 1 - most_runs).clamp(2, width);
        // Adjacent runs, so the new run's age among the others is that of each of its rows.
        let start = (0..=self.runs.len() - k)
            .min_by_key(|&i| self.runs[i..i + k].iter().map(|r| r.bytes).sum::<u64>())
            .expect("k <= runs");
        let mut inputs = Vec::with_capacity(k);
        for run in self.runs.drain(start..start + k) {
            inputs.push(Input::Run(RunReader::open(run, read_buffer)?));
        }
        let mut merge = Merge::new(inputs)?;
        let mut out = RunWriter::create(&self.dir, self.create_file)?;
        while let Some(row) = merge.next_row() {
            let (row, tag) = row?;
            out.write(&row, tag)?;
        }
        let run = out.finish()?;
        self.stats.merge_passes += 1;
        self.stats.rows_remerged += run.rows;
        self.runs.insert(start, run);
        Ok(())
    }
}

/// A finished run: an unlinked file, read from its start.
struct Run {
    path: PathBuf,
    file: File,
    rows: u64,
    /// The file's length.
    bytes: u64,
}

/// A run being written.
struct RunWriter {
    path: PathBuf,
    out: BufWriter<File>,
    encoder: RowEncoder,
    frames: Vec<u8>,
    rows: u64,
    bytes: u64,
    /// The last row written, when a later buffer may go on from it.
    last: Option<ResetEvent>,
}

impl RunWriter {
    fn create(
        dir: &Path,
        create_file: fn(&Path) -> io::Result<(PathBuf, File)>,
    ) -> io::Result<RunWriter> {
        let (path, file) = create_file(dir)?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        out.write_all(MAGIC).map_err(|e| named(&path, e))?;
        Ok(RunWriter {
            path,
            out,
            encoder: RowEncoder::default(),
            frames: Vec::new(),
            rows: 0,
            bytes: MAGIC.len() as u64,
            last: None,
        })
    }

    fn write(&mut self, row: &ResetEvent, tag: u64) -> io::Result<()> {
        self.frames.clear();
        self.encoder.encode(row, tag, &mut self.frames);
        self.out
            .write_all(&self.frames)
            .map_err(|e| named(&self.path, e))?;
        self.rows += 1;
        self.bytes += self.frames.len() as u64;
        Ok(())
    }

    fn finish(self) -> io::Result<Run> {
        let path = self.path;
        let file = self
            .out
            .into_inner()
            .map_err(|e| named(&path, e.into_error()))?;
        Ok(Run {
            path,
            file,
            rows: self.rows,
            bytes: self.bytes,
        })
    }
}

/// A run being read back.
struct RunReader {
    path: PathBuf,
    input: BufReader<File>,
    decoder: RowDecoder,
    body: Vec<u8>,
    /// Bytes read so far, and the file's length as written.
    offset: u64,
    bytes: u64,
    rows_left: u64,
}

impl RunReader {
    fn open(run: Run, buffer: usize) -> io::Result<RunReader> {
        let Run {
            path,
            mut file,
            rows,
            bytes,
        } = run;
        file.rewind().map_err(|e| named(&path, e))?;
        let mut r = RunReader {
            input: BufReader::with_capacity(buffer, file),
            path,
            decoder: RowDecoder::default(),
            body: Vec::new(),
            offset: 0,
            bytes,
            rows_left: rows,
        };
        let mut magic = [0u8; MAGIC.len()];
        match r.input.read_exact(&mut magic) {
            Ok(()) if magic == *MAGIC => {}
            Ok(()) => return Err(r.corrupt(0, "not a spill file")),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(r.corrupt(0, "truncated before its magic"))
            }
            Err(e) => return Err(named(&r.path, e)),
        }
        r.offset = MAGIC.len() as u64;
        Ok(r)
    }

    fn corrupt(&self, offset: u64, what: impl std::fmt::Display) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: corrupt spill file: {what} at byte offset {offset}",
                self.path.display()
            ),
        )
    }

    /// A frame header: its value and length.
    fn header(&mut self) -> io::Result<(u64, u64)> {
        let mut v = 0u64;
        let mut n = 0;
        loop {
            let b = match self.input.fill_buf() {
                Ok([]) => return Err(self.corrupt(self.offset, "truncated frame header")),
                Ok(buf) => buf[0],
                Err(e) => return Err(named(&self.path, e)),
            };
            self.input.consume(1);
            if n == 9 && b > 1 {
                return Err(self.corrupt(self.offset, "frame header over 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * n);
            n += 1;
            if b & 0x80 == 0 {
                return Ok((v, n));
            }
        }
    }

    /// The next row, or None at the end of the run.
    fn next_row(&mut self) -> io::Result<Option<Tagged>> {
        loop {
            if self.offset >= self.bytes {
                if self.rows_left != 0 {
                    return Err(
                        self.corrupt(self.offset, format!("ends {} rows short", self.rows_left))
                    );
                }
                return Ok(None);
            }
            let (header, header_len) = self.header()?;
            let body_at = self.offset + header_len;
            let len = header >> 1;
            if len > self.bytes.saturating_sub(body_at) {
                return Err(self.corrupt(
                    self.offset,
                    format!(
                        "a frame of {len} bytes with {} left",
                        self.bytes.saturating_sub(body_at)
                    ),
                ));
            }
            self.body.resize(len as usize, 0);
            if let Err(e) = self.input.read_exact(&mut self.body) {
                return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                    self.corrupt(body_at, "truncated frame")
                } else {
                    named(&self.path, e)
                });
            }
            self.offset = body_at + len;
            match self.decoder.frame(header & 1, &self.body) {
                Ok(None) => continue,
                Ok(Some(row)) => {
                    if self.rows_left == 0 {
                        return Err(self.corrupt(body_at, "more rows than were written"));
                    }
                    self.rows_left -= 1;
                    return Ok(Some(row));
                }
                Err(e) => return Err(self.corrupt(body_at + e.offset as u64, e.what)),
            }
        }
    }
}

/// A row and its tag.
type Tagged = (ResetEvent, u64);

/// Sorted rows in memory and their tags.
struct MemoryRows {
    rows: std::vec::IntoIter<ResetEvent>,
    tags: std::vec::IntoIter<u64>,
}

impl Iterator for MemoryRows {
    type Item = Tagged;
    fn next(&mut self) -> Option<Tagged> {
        Some((self.rows.next()?, self.tags.next().unwrap_or(0)))
    }
}

enum Input {
    Run(RunReader),
    Memory(MemoryRows),
}

impl Input {
    fn next_row(&mut self) -> io::Result<Option<Tagged>> {
        match self {
            Input::Run(r) => r.next_row(),
            Input::Memory(rows) => Ok(rows.next()),
        }
    }
}

/// A k-way merge of sorted inputs, ties to the earlier input. The heap holds input numbers,
/// not rows: sifting moves 4 bytes instead of a row's ~400.
struct Merge {
    inputs: Vec<Input>,
    /// Each input's current row (None once it has ended).
    heads: Vec<Option<Tagged>>,
    /// Inputs with a row, the smallest row (then the oldest input) first.
    heap: Vec<u32>,
    failed: bool,
}

impl Merge {
    fn new(mut inputs: Vec<Input>) -> io::Result<Merge> {
        let mut heads = Vec::with_capacity(inputs.len());
        for input in &mut inputs {
            heads.push(input.next_row()?);
        }
        let heap = (0..inputs.len() as u32)
            .filter(|&i| heads[i as usize].is_some())
            .collect();
        let mut merge = Merge {
            inputs,
            heads,
            heap,
            failed: false,
        };
        for i in (0..merge.heap.len() / 2).rev() {
            merge.sift_down(i);
        }
        Ok(merge)
    }

    fn before(&self, a: u32, b: u32) -> bool {
        let row = |i: u32| {
            &self.heads[i as usize]
                .as_ref()
                .expect("inputs in the heap have a row")
                .0
        };
        row(a).log_order(row(b)).then(a.cmp(&b)) == Ordering::Less
    }

    fn sift_down(&mut self, mut at: usize) {
        loop {
            let left = 2 * at + 1;
            if left >= self.heap.len() {
                return;
            }
            let right = left + 1;
            let child = if right < self.heap.len() && self.before(self.heap[right], self.heap[left])
            {
                right
            } else {
                left
            };
            if !self.before(self.heap[child], self.heap[at]) {
                return;
            }
            self.heap.swap(at, child);
            at = child;
        }
    }

    fn next_row(&mut self) -> Option<io::Result<Tagged>> {
        if self.failed {
            return None;
        }
        let top = *self.heap.first()? as usize;
        let next = match self.inputs[top].next_row() {
            Ok(next) => next,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        if next.is_none() {
            self.heap.swap_remove(0);
        }
        let row = std::mem::replace(&mut self.heads[top], next);
        self.sift_down(0);
        row.map(Ok)
    }
}

enum Rows {
    Memory(MemoryRows),
    Merge(Merge),
}

/// The rows of a [`RowSorter`], in order. After an error it yields nothing more. Dropping it
/// closes (and so frees) the spill files.
pub struct SortedRows {
    rows: Rows,
    remaining: u64,
    stats: SpillStats,
}

impl SortedRows {
    /// Rows already in [`ResetEvent::log_order`], given back as they are (not sorted again).
    pub fn in_order(rows: Vec<ResetEvent>) -> SortedRows {
        let tags = vec![0; rows.len()];
        SortedRows {
            remaining: rows.len() as u64,
            rows: Rows::Memory(MemoryRows {
                rows: rows.into_iter(),
                tags: tags.into_iter(),
            }),
            stats: SpillStats::default(),
        }
    }

    /// What spilling cost.
    pub fn stats(&self) -> SpillStats {
        self.stats
    }

    /// All the rows as one sorted vector, when nothing was spilled and none was taken yet (no
    /// copy; the iterator is then empty): callers that render slices keep doing so in the
    /// common case.
    pub fn take_vec(&mut self) -> Option<Vec<ResetEvent>> {
        self.take_vec_tagged().map(|(rows, _)| rows)
    }

    /// [`Self::take_vec`] with the rows' tags.
    pub fn take_vec_tagged(&mut self) -> Option<(Vec<ResetEvent>, Vec<u64>)> {
        match &mut self.rows {
            Rows::Memory(m) if m.rows.len() as u64 == self.remaining => {
                self.remaining = 0;
                Some((
                    std::mem::take(&mut m.rows).collect(),
                    std::mem::take(&mut m.tags).collect(),
                ))
            }
            _ => None,
        }
    }

    /// The next row and its tag.
    pub fn next_tagged(&mut self) -> Option<io::Result<(ResetEvent, u64)>> {
        let row = match &mut self.rows {
            Rows::Memory(rows) => rows.next().map(Ok),
            Rows::Merge(merge) => merge.next_row(),
        };
        match &row {
            Some(Ok(_)) => self.remaining = self.remaining.saturating_sub(1),
            Some(Err(_)) => self.remaining = 0,
            None => {}
        }
        row
    }

    /// Up to `max` next rows (fewer only at the end).
    pub fn next_chunk(&mut self, max: usize) -> io::Result<Vec<ResetEvent>> {
        let mut chunk = Vec::with_capacity(max.min(self.remaining as usize));
        for row in self.by_ref().take(max) {
            chunk.push(row?);
        }
        Ok(chunk)
    }
}

impl Iterator for SortedRows {
    type Item = io::Result<ResetEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_tagged().map(|r| r.map(|(row, _)| row))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // An error ends the rows early.
        (0, usize::try_from(self.remaining).ok())
    }
}

#[cfg(test)]
mod tests;
