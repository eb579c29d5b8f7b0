//! The rstscope run: find capture files, read and decode them in parallel, turn every TCP RST
//! into a reset event, and write the logs. Nothing here prints or exits; `main.rs` owns the
//! terminal and the exit status.

pub mod error;
pub mod inputs;
pub mod lock;
pub mod merge;
pub mod output;
pub mod report;
pub mod rows;
pub mod run;
pub mod spill;
pub mod state;
pub mod summary;
mod units;

pub use units::ParallelStats;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rstscope_capture::{
    read_path_until, CaptureError, InflateCap, PlainAccess, ReadOptions, ReadReport,
};
use rstscope_decode::{decode, Decoded, FrameInfo, Segment};
use rstscope_flow::{Carry, FlowConfig, FlowStats, StreamCarry, Tracker};
use rstscope_reset::ResetEvent;

pub use inputs::{
    assign_sensors, discover, discover_following, name_bytes, name_from_text, name_text, InputFile,
    InputProblem, SensorFrom,
};

/// `text` with its control characters (C0, DEL, C1) written `\xNN` (`\u{NN}` for C1), so
/// that it stays one line and cannot send terminal escape sequences; for messages that quote
/// file names and other input.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c as u32 {
            n @ (0..=0x1f | 0x7f) => out.push_str(&format!("\\x{n:02x}")),
            n @ 0x80..=0x9f => out.push_str(&format!("\\u{{{n:x}}}")),
            _ => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Counts of what decoding made of a file's packets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DecodeStats {
    pub packets: u64,
    pub tcp: u64,
    pub rst: u64,
    pub not_tcp: u64,
    pub non_first_fragments: u64,
    pub malformed: u64,
    /// Packets with IP under more tunnel layers than are followed.
    pub too_deep: u64,
    /// Packets per link type we do not decode.
    pub unknown_linktypes: BTreeMap<u16, u64>,
}

impl DecodeStats {
    pub fn add(&mut self, other: &DecodeStats) {
        self.packets += other.packets;
        self.tcp += other.tcp;
        self.rst += other.rst;
        self.not_tcp += other.not_tcp;
        self.non_first_fragments += other.non_first_fragments;
        self.malformed += other.malformed;
        self.too_deep += other.too_deep;
        for (k, v) in &other.unknown_linktypes {
            *self.unknown_linktypes.entry(*k).or_default() += v;
        }
    }
}

/// What one capture file gave.
#[derive(Debug)]
pub struct FileResult {
    pub input: InputFile,
    pub read: ReadReport,
    pub decode: DecodeStats,
    /// Earliest and latest packet timestamps (ns), when the file had packets.
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// Wall time spent reading and decoding it.
    pub seconds: f64,
}

impl FileResult {
    pub fn error(&self) -> Option<&CaptureError> {
        self.read.error.as_ref()
    }
}

/// Called as files are read: (index of the file, capture bytes read so far in it, whether the
/// file is done). Every file that is started gets exactly one call with `done` true, last.
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(usize, u64, bool) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// Settings of a run that shape results.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Progress reports (the CLI draws bars from them); no effect on results.
    pub progress: Option<Progress>,
    pub flow: FlowConfig,
    pub access: PlainAccess,
    /// The cap on how far a gzip or zstd capture may inflate (`--max-inflate`).
    pub inflate: InflateCap,
    /// Worker threads; 0 = all cores.
    pub threads: usize,
    /// Plain captures at least this large may be cut into byte ranges for threads
    /// (`--split-min`).
    pub split_min: u64,
    /// Memory for rows waiting to be sorted; past it they are spilled in sorted runs
    /// (`--sort-memory`).
    pub sort_memory: usize,
    /// Where spilled runs go (`--tmp-dir`); None: the system's temporary directory unless the
    /// run names one (the output directory).
    pub tmp_dir: Option<PathBuf>,
}

/// Give the memory the allocator holds free back to the system (glibc keeps freed memory of
/// the main arena; a tracker dropped before another is built would otherwise count twice in
/// the peak).
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator to the system; it has no
    // preconditions and touches no memory that is in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Default of [`RunOptions::sort_memory`].
pub const SORT_MEMORY: usize = 64 << 20;

/// Default of [`RunOptions::split_min`]: below this a file is not worth cutting.
pub const SPLIT_MIN: u64 = 64 << 20;

impl RunOptions {
    /// Where the sort's runs go: `tmp_dir`, or the system's temporary directory.
    pub fn spill_dir(&self) -> PathBuf {
        self.tmp_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// Threads to use: `threads`, or all cores when it is 0.
    pub fn resolved_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Sort rows into log order ([`ResetEvent::log_order`]), on `threads` threads.
///
/// Rows are large (a few hundred bytes each), so a comparison sort that moves them would move
/// each one many times: the sort runs over small keys instead — (ts, rank of the source name,
/// frame, index), which decides all but rows naming the same packet — and the rows are then
/// put in place by following the permutation's cycles, each row moved once.
pub fn sort_rows(rows: &mut [ResetEvent], threads: usize) {
    sort_rows_with(rows, &mut [], threads)
}

/// [`sort_rows`], moving `tags[i]` (one per row, or none at all) with `rows[i]`.
pub(crate) fn sort_rows_with(rows: &mut [ResetEvent], tags: &mut [u64], threads: usize) {
    let with_tags = !tags.is_empty();
    if u32::try_from(rows.len()).is_err() {
        // Indexes are u32 (over 1.6 TB of rows): sort indexes of the rows themselves.
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by(|&a, &b| rows[a].log_order(&rows[b]).then(a.cmp(&b)));
        permute(rows, tags, with_tags, order);
        return;
    }
    // Rows of one file come in runs, and share its name (the same allocation, mostly, which
    // `Arc`'s equality checks before the bytes): the distinct names are collected run by run.
    let mut sources: Vec<&Arc<[u8]>> = Vec::new();
    for r in rows.iter() {
        if sources.last() != Some(&&r.source) {
            sources.push(&r.source);
        }
    }
    sources.sort_unstable();
    sources.dedup();
    let mut keys: Vec<(i64, u32, u64, u32)> = Vec::with_capacity(rows.len());
    let mut last: Option<(&Arc<[u8]>, u32)> = None;
    for (i, r) in rows.iter().enumerate() {
        let rank = match last {
            Some((l, rank)) if *l == r.source => rank,
            _ => {
                let rank = sources.binary_search(&&r.source).unwrap_or(0) as u32;
                last = Some((&r.source, rank));
                rank
            }
        };
        keys.push((r.ts_ns, rank, r.frame, i as u32));
    }
    let compare = |a: &(i64, u32, u64, u32), b: &(i64, u32, u64, u32)| {
        (a.0, a.1, a.2)
            .cmp(&(b.0, b.1, b.2))
            .then_with(|| rows[a.3 as usize].log_order(&rows[b.3 as usize]))
            .then(a.3.cmp(&b.3))
    };
    if threads > 1 && keys.len() > 1 << 14 {
        use rayon::prelude::*;
        match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            Ok(pool) => pool.install(|| keys.par_sort_unstable_by(compare)),
            Err(_) => keys.sort_unstable_by(compare),
        }
    } else {
        keys.sort_unstable_by(compare);
    }
    let order = keys.into_iter().map(|k| k.3 as usize).collect();
    permute(rows, tags, with_tags, order);
}

/// Put `rows[order[j]]` (and its tag) at `j`.
fn permute(rows: &mut [ResetEvent], tags: &mut [u64], with_tags: bool, mut order: Vec<usize>) {
    // rows[j] must become the row now at order[j]; a slot is done once order[j] == j.
    for start in 0..order.len() {
        let mut j = start;
        while order[j] != start {
            let k = order[j];
            rows.swap(j, k);
            if with_tags {
                tags.swap(j, k);
            }
            order[j] = j;
            j = k;
        }
        order[j] = j;
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            progress: None,
            flow: FlowConfig::default(),
            access: PlainAccess::Mmap,
            inflate: InflateCap::DEFAULT,
            split_min: SPLIT_MIN,
            threads: 0,
            sort_memory: SORT_MEMORY,
            tmp_dir: None,
        }
    }
}

/// Read one capture file, handing every TCP segment to `sink` in file order.
pub fn process_file<F: FnMut(&Segment<'_>)>(
    input: &InputFile,
    file_index: u32,
    opts: &RunOptions,
    mut sink: F,
) -> FileResult {
    process_file_until(input, file_index, opts, |seg| {
        sink(seg);
        true
    })
}

/// What decoding a file's (or a byte range's) packets found so far.
#[derive(Debug, Default)]
pub(crate) struct PacketTally {
    pub stats: DecodeStats,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
}

impl PacketTally {
    /// Count and decode one packet (its frame number `frame_base` on from the reader's), handing
    /// a TCP segment to `sink`; false when `sink` wants no more.
    #[inline]
    pub(crate) fn take<F: FnMut(&Segment<'_>) -> bool>(
        &mut self,
        pkt: &rstscope_capture::Packet<'_>,
        file_index: u32,
        frame_base: u64,
        sink: &mut F,
    ) -> bool {
        let stats = &mut self.stats;
        stats.packets += 1;
        self.first_ts = Some(self.first_ts.map_or(pkt.ts_ns, |t| t.min(pkt.ts_ns)));
        self.last_ts = Some(self.last_ts.map_or(pkt.ts_ns, |t| t.max(pkt.ts_ns)));
        let info = FrameInfo {
            ts_ns: pkt.ts_ns,
            file: file_index,
            frame: pkt.frame + frame_base,
        };
        match decode(pkt.linktype, pkt.data, info) {
            Decoded::Tcp(seg) => {
                stats.tcp += 1;
                if seg.is_rst() {
                    stats.rst += 1;
                }
                return sink(&seg);
            }
            Decoded::NotTcp => stats.not_tcp += 1,
            Decoded::NonFirstFragment => stats.non_first_fragments += 1,
            Decoded::Malformed(_) => stats.malformed += 1,
            Decoded::TooDeep => stats.too_deep += 1,
            Decoded::UnknownLinkType(lt) => *stats.unknown_linktypes.entry(lt).or_default() += 1,
        }
        true
    }
}

/// [`process_file`], stopping after the first segment for which `sink` returns false.
pub fn process_file_until<F: FnMut(&Segment<'_>) -> bool>(
    input: &InputFile,
    file_index: u32,
    opts: &RunOptions,
    mut sink: F,
) -> FileResult {
    let t0 = std::time::Instant::now();
    let progress = opts.progress.clone();
    let access = if opts.access == PlainAccess::Mmap && recently_modified(&input.path) {
        // A file still being written could be truncated under a memory map (SIGBUS): read it
        // through a buffer instead.
        PlainAccess::Read
    } else {
        opts.access
    };
    let size_before = std::fs::metadata(&input.path).map(|m| m.len()).ok();
    let read_opts = ReadOptions {
        access,
        inflate: opts.inflate,
    };
    let mut tally = PacketTally::default();
    let read = read_path_until(&input.path, read_opts, |pkt| {
        if tally.stats.packets % 8192 == 8191 {
            if let Some(p) = &progress {
                (p.0)(file_index as usize, pkt.offset, false);
            }
        }
        tally.take(pkt, file_index, 0, &mut sink)
    });
    let PacketTally {
        mut stats,
        first_ts,
        last_ts,
    } = tally;
    if let Some(p) = &progress {
        (p.0)(file_index as usize, read.capture_bytes, true);
    }
    // Packets on an interface no IDB described cannot be decoded (no link type): malformed.
    stats.malformed += read.packets_without_interface;
    let mut read = read;
    let size_after = std::fs::metadata(&input.path).map(|m| m.len()).ok();
    if read.error.is_none() && size_before != size_after {
        let (before, after) = (size_before.unwrap_or(0), size_after.unwrap_or(0));
        // A plain file read through to its new end lost nothing; otherwise say where it ended.
        let all_read =
            read.compression == rstscope_capture::Compression::None && read.capture_bytes >= after;
        let what = if all_read {
            "all of it was read, but it may still be being written (--min-age skips such files)"
                .to_string()
        } else if after < before {
            "it was truncated: packets past its new end may be lost".to_string()
        } else {
            format!(
                "packets after byte {} were not read (--min-age skips files still being written)",
                read.capture_bytes
            )
        };
        read.error = Some(CaptureError::Io(std::io::Error::other(format!(
            "the file changed size while it was read ({before} to {after} bytes); {what}"
        ))));
    }
    FileResult {
        input: input.clone(),
        read,
        decode: stats,
        first_ts,
        last_ts,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// Modified in the last two minutes: maybe still being written.
pub(crate) fn recently_modified(path: &std::path::Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .is_none_or(|age| age < std::time::Duration::from_secs(120))
}

/// Everything a run produced, before writing.
#[derive(Debug)]
pub struct RunResult {
    pub files: Vec<FileResult>,
    /// All rows, in the contract's order; an error when rows could not be spilled (a full
    /// disk).
    pub rows: std::io::Result<rows::Rows>,
    pub flow: FlowStats,
    pub sensors: Vec<SensorResult>,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// With [`StreamEnd::Carry`]: every sensor stream's carry (also of sensors with no new
    /// file this run), to continue from next run.
    pub carries: Vec<StreamCarry>,
    /// Indexes (in `files`) of late files: files whose first packet sorts at or before the last
    /// file their sensor's carried stream had read. Each was read as a stream of its own.
    pub late_files: Vec<usize>,
    /// How sensor streams cut into units were stitched (all zero when none was).
    pub parallel: ParallelStats,
}

/// How a run ends its sensor streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Every connection ends with the run (a run without `--state`, or with `--finish`).
    Finish,
    /// Connections still live are carried to the next run; only the rows of connections that
    /// ended (closed or timed out by packet time) are delivered.
    Carry,
}

/// Process the files as one stream per sensor, in the order given (connections that cross a
/// file boundary keep their state), each ended, and return the events in the contract's order.
///
/// With more than one thread, one thread reads and decodes while worker threads track
/// connections, each owning the connections whose endpoints hash to it (a symmetric, fixed
/// hash), so every connection sees its packets in capture order whatever the thread count and
/// the rows are the same bytes. (Only the connection cap is divided among the workers.)
pub fn process_all(files: &[InputFile], opts: &RunOptions) -> RunResult {
    process_streams(files, opts, Vec::new(), StreamEnd::Finish)
}

/// [`process_all`], continuing each sensor's stream from its carry (`carries`, from an
/// earlier run) and ending it as `end` says. A sensor with a carry and no new file passes its
/// carry on unchanged, or is finished with [`StreamEnd::Finish`].
pub fn process_streams(
    files: &[InputFile],
    opts: &RunOptions,
    carries: Vec<StreamCarry>,
    end: StreamEnd,
) -> RunResult {
    let threads = opts.resolved_threads();
    let mut carried: BTreeMap<Option<Vec<u8>>, StreamCarry> =
        carries.into_iter().map(|c| (c.sensor.clone(), c)).collect();
    // One stream per sensor: its files ordered by first packet time (then name).
    // (first packet time, index in `files`) of each sensor's files
    type Files = Vec<(Option<i64>, usize)>;
    let mut groups: BTreeMap<Option<Vec<u8>>, Files> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        let first = rstscope_capture::first_packet_ts(&f.path);
        groups.entry(f.sensor.clone()).or_default().push((first, i));
    }
    for k in carried.keys() {
        groups.entry(k.clone()).or_default();
    }
    let order_key = |x: &(Option<i64>, usize)| (x.0.unwrap_or(i64::MAX), files[x.1].source.clone());
    let mut pieces: Vec<(Piece, Carry)> = Vec::new();
    let mut late_files = Vec::new();
    for (sensor, mut g) in groups {
        g.sort_by_key(order_key);
        let carry = carried.remove(&sensor);
        // A file that sorts at or before the last one the carried stream read would have
        // been read before it in one run over everything: it cannot join the stream, so it
        // is a stream of its own, from a cold start.
        let (late, in_order): (Vec<_>, Vec<_>) =
            match carry.as_ref().and_then(|c| c.last_file.as_ref()) {
                Some(last) => g.iter().partition(|x| order_key(x) <= *last),
                None => (Vec::new(), g.iter().collect()),
            };
        for x in late {
            late_files.push(x.1);
            let piece = Piece {
                sensor: sensor.clone(),
                files: vec![x.1],
                last_file: None,
                end: StreamEnd::Finish,
            };
            pieces.push((piece, Carry::new()));
        }
        let last_file = in_order
            .last()
            .map(|x| order_key(x))
            .or_else(|| carry.as_ref().and_then(|c| c.last_file.clone()));
        let piece = Piece {
            sensor,
            files: in_order.iter().map(|x| x.1).collect(),
            last_file,
            end,
        };
        pieces.push((piece, carry.map(|c| c.carry).unwrap_or_default()));
    }
    let store = rows::RowStore::new(&opts.spill_dir(), opts.sort_memory, threads);
    let run_piece = |(stream, (piece, carry)): (usize, (Piece, Carry)), threads: usize| {
        let ordered: Vec<InputFile> = piece.files.iter().map(|&i| files[i].clone()).collect();
        // A stream numbers its files from 0; progress reports name them by their index in
        // `files`.
        let mut opts = opts.clone();
        if let Some(p) = opts.progress.take() {
            let global: Vec<usize> = piece.files.clone();
            opts.progress = Some(Progress(std::sync::Arc::new(move |i, bytes, done| {
                (p.0)(global.get(i).copied().unwrap_or(i), bytes, done)
            })));
        }
        let t0 = std::time::Instant::now();
        let sink = StreamSink {
            store: &store,
            stream: stream as u32,
            sensor: piece.sensor.as_deref().map(Arc::from),
        };
        let out = run_stream(&ordered, &opts, threads, carry, piece.end, &sink);
        (piece, out, t0.elapsed())
    };
    // Sensors are independent streams: with several, each gets a thread of its own, and maps
    // its plain files as a single reader does (buffered reads measured slower: the kernel's
    // copy was ~40 % of such a run).
    let busy = pieces.iter().filter(|(p, _)| !p.files.is_empty()).count();
    let outputs: Vec<_> = if busy > 1 && threads > 1 {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
        let go = || {
            use rayon::prelude::*;
            pieces
                .into_par_iter()
                .enumerate()
                .map(|w| run_piece(w, 1))
                .collect::<Vec<_>>()
        };
        match pool {
            Ok(p) => p.install(go),
            Err(_) => go(),
        }
    } else {
        pieces
            .into_iter()
            .enumerate()
            .map(|w| run_piece(w, threads))
            .collect()
    };
    let mut by_index: Vec<Option<FileResult>> = files.iter().map(|_| None).collect();
    let mut flow = FlowStats::default();
    let mut sensors: Vec<SensorResult> = Vec::new();
    let mut carries = Vec::new();
    let mut parallel = ParallelStats::default();
    for (piece, out, took) in outputs {
        let StreamOutput {
            results,
            stats: st,
            carry,
            parallel: par,
        } = out;
        parallel.units += par.units;
        parallel.replayed_packets += par.replayed_packets;
        parallel.redone_units += par.redone_units;
        // (Counted from the rows once stitching's decisions are applied.)
        let rsts = 0;
        flow.segments += st.segments;
        flow.connections += st.connections;
        flow.evicted += st.evicted;
        flow.peak_connections += st.peak_connections;
        flow.carry_errors += st.carry_errors;
        let packets: u64 = results.iter().map(|r| r.decode.packets).sum();
        let bytes: u64 = results.iter().map(|r| r.read.file_bytes).sum();
        for (r, &i) in results.into_iter().zip(&piece.files) {
            by_index[i] = Some(r);
        }
        // A sensor's late files and its stream are one entry of the per-sensor figures.
        match sensors.iter_mut().find(|s| s.sensor == piece.sensor) {
            Some(s) => {
                s.files += piece.files.len();
                s.packets += packets;
                s.bytes += bytes;
                s.rsts += rsts;
                s.flow.segments += st.segments;
                s.flow.connections += st.connections;
                s.flow.evicted += st.evicted;
                s.flow.peak_connections = s.flow.peak_connections.max(st.peak_connections);
                s.flow.carry_errors += st.carry_errors;
                s.seconds += took.as_secs_f64();
            }
            None => sensors.push(SensorResult {
                sensor: piece.sensor.clone(),
                files: piece.files.len(),
                packets,
                bytes,
                rsts,
                flow: st,
                seconds: took.as_secs_f64(),
            }),
        }
        if let Some(carry) = carry {
            carries.push(StreamCarry {
                sensor: piece.sensor,
                last_file: piece.last_file,
                carry,
            });
        }
    }
    let results: Vec<FileResult> = by_index.into_iter().flatten().collect();
    let rows = store.finish(threads);
    let first_ts = results.iter().filter_map(|r| r.first_ts).min();
    let last_ts = results.iter().filter_map(|r| r.last_ts).max();
    // (`rsts` are counted as the rows are read; a sensor with neither files nor rows is
    // left out of the summary then.)
    late_files.sort_unstable();
    RunResult {
        files: results,
        rows,
        flow,
        sensors,
        first_ts,
        last_ts,
        carries,
        late_files,
        parallel,
    }
}

/// A part of a sensor stream read by one run: the sensor's new files in order (or one late
/// file), continued from a carry and ended as `end` says.
struct Piece {
    sensor: Option<Vec<u8>>,
    files: Vec<usize>,
    /// The ordering key of the last file the stream has read (this run's or an earlier one's).
    last_file: Option<(i64, Vec<u8>)>,
    end: StreamEnd,
}

/// Per-sensor figures of a run.
#[derive(Debug, Clone)]
pub struct SensorResult {
    /// The sensor's name (bytes, see [`InputFile::sensor`]); None for the unnamed sensor.
    pub sensor: Option<Vec<u8>>,
    pub files: usize,
    pub packets: u64,
    pub bytes: u64,
    pub rsts: u64,
    pub flow: FlowStats,
    pub seconds: f64,
}

/// Where a stream's rows go: the run's store, tagged with the stream, named by its sensor.
pub(crate) struct StreamSink<'a> {
    pub store: &'a rows::RowStore,
    pub stream: u32,
    pub sensor: Option<Arc<[u8]>>,
}

impl StreamSink<'_> {
    /// Hand over rows: final ones (`unit` 0), or a unit's cold rows (`unit` from 1).
    pub fn push(&self, mut rows: Vec<ResetEvent>, unit: u32) {
        for r in &mut rows {
            r.sensor.clone_from(&self.sensor);
        }
        self.store.push(
            rows,
            rows::Origin {
                stream: self.stream,
                unit,
            },
        );
    }
}

impl StreamSink<'_> {
    /// Count a segment `tracker` tracked (in `segments`); every [`HANDOVER_SEGMENTS`], hand
    /// over its finished rows (of `unit`, as [`StreamSink::push`]). Whether it did.
    pub fn tracked(&self, segments: &mut u64, tracker: &mut Tracker, unit: u32) -> bool {
        *segments += 1;
        let due = segments.is_multiple_of(HANDOVER_SEGMENTS);
        if due {
            self.push(tracker.take_done(), unit);
        }
        due
    }
}

/// Segments between two hand-overs of a tracker's finished rows.
pub(crate) const HANDOVER_SEGMENTS: u64 = 8192;

/// What reading a piece of a stream gave (its rows went to its sink).
pub(crate) struct StreamOutput {
    pub results: Vec<FileResult>,
    pub stats: FlowStats,
    /// The carry, when the stream was not finished.
    pub carry: Option<Carry>,
    /// How a stream cut into units was stitched.
    pub parallel: ParallelStats,
}

/// One sensor's files, in order, as one stream continued from `carry`.
fn run_stream(
    files: &[InputFile],
    opts: &RunOptions,
    threads: usize,
    carry: Carry,
    end: StreamEnd,
    sink: &StreamSink<'_>,
) -> StreamOutput {
    if threads <= 1 {
        run_sequential(files, opts, carry, end, sink)
    } else {
        units::run(files, opts, threads, carry, end, sink)
    }
}

/// One sensor's files on one thread, one tracker.
pub(crate) fn run_sequential(
    files: &[InputFile],
    opts: &RunOptions,
    carry: Carry,
    end: StreamEnd,
    sink: &StreamSink<'_>,
) -> StreamOutput {
    {
        let mut tracker = Tracker::resume(opts.flow, carry);
        let mut segments = 0u64;
        let results: Vec<FileResult> = files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let source = f.source.as_slice();
                process_file(f, i as u32, opts, |seg| {
                    tracker.process(seg, source);
                    sink.tracked(&mut segments, &mut tracker, 0);
                })
            })
            .collect();
        let (events, stats, carry) = match end {
            StreamEnd::Finish => {
                let stats = tracker.finish_into(|rows| sink.push(rows, 0));
                (Vec::new(), stats, None)
            }
            StreamEnd::Carry => {
                let (events, stats, carry) = tracker.suspend(i64::MIN);
                (events, stats, Some(carry))
            }
        };
        sink.push(events, 0);
        StreamOutput {
            results,
            stats,
            carry,
            parallel: ParallelStats::default(),
        }
    }
}

/// Where outputs go and in which format.
#[derive(Debug, Clone)]
pub struct OutputOptions {
    pub dir: PathBuf,
    pub format: output::Format,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that grows between the reading and the check says exactly what was not read.
    #[test]
    fn a_file_growing_while_read_says_where_reading_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing.pcap");
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sample.pcap"),
        )
        .unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let appender = path.clone();
        let opts = RunOptions {
            // Called once the file is read, before its size is checked again: append to it.
            progress: Some(Progress(std::sync::Arc::new(move |_, _, done| {
                if done {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&appender)
                        .unwrap();
                    f.write_all(&[0u8; 100]).unwrap();
                }
            }))),
            access: PlainAccess::Read,
            ..RunOptions::default()
        };
        let input = InputFile {
            path: path.clone(),
            source: b"growing.pcap".to_vec(),
            sensor: None,
        };
        let r = process_file(&input, 0, &opts, |_| {});
        let e = r.error().expect("an error").to_string();
        let want = format!(
            "({} to {} bytes); packets after byte {} were not read",
            bytes.len(),
            bytes.len() + 100,
            bytes.len()
        );
        assert!(e.contains(&want), "{e}");
    }

    #[test]
    fn messages_quote_control_characters_escaped() {
        assert_eq!(terminal_safe("a.pcap: ok"), "a.pcap: ok");
        assert_eq!(
            terminal_safe("x\nrstscope: error: FORGED\u{1b}[2J\t\u{9b}31m\u{7f}"),
            "x\\x0arstscope: error: FORGED\\x1b[2J\\x09\\u{9b}31m\\x7f"
        );
    }

    #[test]
    fn sort_rows_agrees_with_log_order_on_any_thread_count() {
        let rows = crate::output::tests::many_rows(40_000);
        let mut expected = rows.clone();
        expected.sort_by(|a, b| a.log_order(b));
        for threads in [1, 2, 3] {
            let mut sorted = rows.clone();
            sort_rows(&mut sorted, threads);
            assert_eq!(sorted, expected, "{threads} threads");
        }
    }

    #[test]
    fn sort_rows_breaks_key_ties_like_log_order_whatever_the_thread_count() {
        let mut rows = crate::output::tests::many_rows(30_000);
        for (i, r) in rows.iter_mut().enumerate() {
            // Few distinct (ts, source, frame) keys, sources in runs: ties are decided by the
            // sensor, the uid and what the rows say.
            r.ts_ns = (i % 7) as i64;
            r.frame = (i % 3) as u64;
            r.source = format!("s{}.pcap", i / 5000).as_bytes().into();
            r.sensor = Some(format!("sensor-{}", i % 2).as_bytes().into());
            r.uid = format!("C{}", (i * 7919) % 1000);
        }
        let mut expected = rows.clone();
        expected.sort_by(|a, b| a.log_order(b));
        let mut first: Option<Vec<ResetEvent>> = None;
        for threads in [1, 2, 3] {
            let mut sorted = rows.clone();
            sort_rows(&mut sorted, threads);
            for (a, b) in sorted.iter().zip(&expected) {
                assert_eq!(
                    a.log_order(b),
                    std::cmp::Ordering::Equal,
                    "{threads} threads"
                );
            }
            match &first {
                Some(f) => assert_eq!(&sorted, f, "{threads} threads"),
                None => first = Some(sorted),
            }
        }
    }
}
