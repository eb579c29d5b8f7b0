use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use rstscope_decode::Segment;
use rstscope_flow::{Cause, Evidence, FlowConfig, Tracker};

use super::*;
use crate::sort_rows;

/// Names that repeat, some not UTF-8, one empty.
const NAMES: [&[u8]; 4] = [b"a.pcap", b"dir/b\xff\xfe.pcap", b"", b"c.pcap"];

fn name() -> impl Strategy<Value = Arc<[u8]>> {
    prop_oneof![
        4 => (0..NAMES.len()).prop_map(|i| Arc::from(NAMES[i])),
        1 => proptest::collection::vec(any::<u8>(), 0..20).prop_map(Arc::from),
    ]
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn uid() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (any::<u64>(), any::<u32>()).prop_map(|(h, l)| codec::tests::uid_text(h, l)),
        // Shapes that must stay text: leading zeros, other letters, too long, not "C".
        1 => "C0[0-9]{0,20}|[A-Z][0-9a-zA-Z]{0,25}|C[0-9a-z]{0,2}|.{0,10}",
    ]
}

fn community_id() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<[u8; 20]>().prop_map(|h| codec::tests::community_id_text(&h)),
        1 => "1:[A-Za-z0-9+/]{27}[A-Za-z0-9+/=]|1:.{0,30}|.{0,5}",
    ]
}

/// A cause or conn_state: a known name (borrowed, or owned as `rstscope merge` makes it) or
/// any text.
fn vocabulary_word(known: &'static [&'static str]) -> impl Strategy<Value = Cow<'static, str>> {
    prop_oneof![
        3 => (0..known.len()).prop_map(move |i| Cow::Borrowed(known[i])),
        1 => (0..known.len()).prop_map(move |i| Cow::Owned(known[i].to_string())),
        1 => ".{0,12}".prop_map(Cow::Owned),
    ]
}

fn causes() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| Cause::ALL.iter().map(|c| c.name()).collect())
}

fn evidence() -> impl Strategy<Value = Vec<&'static str>> {
    prop_oneof![
        // A set, as the tracker makes it.
        3 => any::<u16>().prop_map(|set| {
            (0..16)
                .filter(|i| set & 1 << i != 0)
                .map(|i| Evidence::NAMES[i].1)
                .collect()
        }),
        // Any list: out of order, repeated, names no classifier has.
        1 => proptest::collection::vec(
            prop_oneof![
                (0..16usize).prop_map(|i| Evidence::NAMES[i].1),
                Just("not_evidence"),
                Just(""),
            ],
            0..5,
        ),
    ]
}

/// Any row. `tied` narrows time, names and frames to a few values, so rows tie on the sort
/// key and are ordered by what follows it.
pub(crate) fn any_row(tied: bool) -> impl Strategy<Value = ResetEvent> {
    let key = if tied {
        (
            (0..4i64).boxed(),
            (0..NAMES.len()).prop_map(|i| Arc::from(NAMES[i])).boxed(),
            (0..3u64).boxed(),
            proptest::option::of((0..2usize).prop_map(|i| Arc::from(NAMES[i]))).boxed(),
        )
    } else {
        (
            any::<i64>().boxed(),
            name().boxed(),
            any::<u64>().boxed(),
            proptest::option::of(name()).boxed(),
        )
    };
    let ids = (
        if tied {
            prop_oneof![Just("CaB".to_string()), Just("C1".to_string())].boxed()
        } else {
            uid().boxed()
        },
        community_id(),
        addr(),
        any::<u16>(),
        addr(),
        any::<u16>(),
        any::<bool>(),
    );
    let class = (
        proptest::option::of(vocabulary_word(causes())),
        proptest::option::of(any::<bool>()),
        proptest::option::of(evidence()),
        proptest::option::of(vocabulary_word(&codec::CONN_STATES)),
        proptest::option::of("[ShADadFfRr^TtWwIiQqGg]{0,12}|.{0,4}"),
    );
    let packet = (
        if tied {
            (0..2u16).boxed()
        } else {
            any::<u16>().boxed()
        },
        if tied {
            (0..2u32).boxed()
        } else {
            any::<u32>().boxed()
        },
        if tied {
            (0..2u32).boxed()
        } else {
            any::<u32>().boxed()
        },
        any::<u16>(),
        any::<u8>(),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<bool>()),
        any::<u32>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
        proptest::option::of(".{0,20}"),
    );
    let counts = (
        proptest::option::of(any::<u8>()),
        any::<u8>(),
        proptest::option::of(0..3u32),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
    );
    (key, ids, class, packet, counts).prop_map(
        |(
            (ts_ns, source, frame, sensor),
            (uid, community_id, orig_h, orig_p, resp_h, resp_p, is_orig),
            (cause, injected, evidence, conn_state, history),
            (flags, seq, ack, win, ttl, ip_id, df, payload_len, payload, reason),
            (
                sender_ttl,
                initial_ttl,
                small_count,
                any_count,
                duration_ns,
                idle_ns,
                orig_pkts,
                resp_pkts,
            ),
        )| ResetEvent {
            ts_ns,
            uid,
            community_id,
            orig_h,
            orig_p,
            resp_h,
            resp_p,
            is_orig,
            cause,
            injected,
            evidence,
            flags,
            seq,
            ack,
            win,
            ttl,
            ip_id,
            df,
            payload_len,
            payload,
            reason,
            sender_ttl,
            initial_ttl,
            rst_count: small_count.or(any_count),
            history,
            conn_state,
            duration_ns,
            idle_ns,
            orig_pkts,
            resp_pkts,
            source,
            frame,
            sensor,
        },
    )
}

/// Rows of a scan night: `n` refused connections (SYN, then RST+ACK from a closed port), one
/// every `spacing_ns`, as the tracker makes them.
pub(crate) fn refused_rows(n: u64, spacing_ns: i64) -> Vec<ResetEvent> {
    let mut tracker = Tracker::new(FlowConfig::default());
    let mut rows = Vec::with_capacity(n as usize);
    let scanner: IpAddr = "198.51.100.7".parse().unwrap();
    for i in 0..n {
        let target = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let ts = 1_790_000_000_000_000_000 + i as i64 * spacing_ns;
        let sport = 40_000 + (i % 20_000) as u16;
        let dport = [22, 23, 80, 443, 445, 3389, 8080][(i % 7) as usize];
        let isn = (i as u32).wrapping_mul(2_654_435_761);
        let syn = Segment {
            ts_ns: ts,
            file: 0,
            frame: 2 * i + 1,
            src: scanner,
            dst: target,
            ttl: 49,
            ip_id: Some(54_321),
            df: Some(false),
            sport,
            dport,
            seq: isn,
            ack: 0,
            flags: 0x002,
            window: 1024,
            options: Default::default(),
            payload_len: 0,
            payload: &[],
            tunnel_depth: 0,
        };
        let rst = Segment {
            ts_ns: ts + 180_000,
            frame: 2 * i + 2,
            src: target,
            dst: scanner,
            ttl: 64,
            ip_id: Some(0),
            df: Some(true),
            sport: dport,
            dport: sport,
            seq: 0,
            ack: isn.wrapping_add(1),
            flags: 0x014,
            window: 0,
            ..syn
        };
        tracker.process(&syn, b"scan/2026-12-01.pcap");
        tracker.process(&rst, b"scan/2026-12-01.pcap");
        if i % 4096 == 0 {
            rows.append(&mut tracker.take_done());
        }
    }
    rows.append(&mut tracker.finish().0);
    rows.iter_mut()
        .for_each(|r| r.sensor = Some(Arc::from(&b"edge-1"[..])));
    rows
}

fn sorted(rows: &[ResetEvent]) -> Vec<ResetEvent> {
    let mut rows = rows.to_vec();
    sort_rows(&mut rows, 1);
    rows
}

/// Push `rows`, finish, and return what comes out with the cost.
fn sort_through(
    dir: &Path,
    rows: &[ResetEvent],
    budget: usize,
    merge_width: usize,
) -> (Vec<ResetEvent>, SpillStats) {
    let mut sorter = RowSorter::new(dir, budget);
    sorter.merge_width = merge_width;
    // Half one by one, half in batches.
    let (one_by_one, batches) = rows.split_at(rows.len() / 2);
    sorter.extend(one_by_one.iter().cloned()).unwrap();
    for batch in batches.chunks(7) {
        sorter.append(&mut batch.to_vec()).unwrap();
    }
    assert_eq!(sorter.len(), rows.len() as u64);
    let out = sorter.finish(2).unwrap();
    let stats = out.stats();
    (out.map(Result::unwrap).collect(), stats)
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the budget (one run, a few, many, more than one merge takes), the rows come
    /// out exactly as `sort_rows` orders them, ties and all.
    #[test]
    fn spilled_rows_come_back_as_sort_rows_orders_them(
        mut rows in proptest::collection::vec(any_row(true), 1..120),
        copies in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..40),
        budget_rows in prop_oneof![Just(0usize), 1..8usize, 8..60usize, Just(1000)],
        merge_width in prop_oneof![Just(2usize), 3..6usize, Just(MERGE_WIDTH)],
    ) {
        // Rows that tie in `log_order` but differ: `sort_rows` keeps them in the order pushed.
        for (i, ttl) in copies {
            let mut copy = i.get(&rows).clone();
            copy.ttl = ttl;
            copy.payload = Some(vec![ttl]);
            rows.push(copy);
        }
        let dir = tempfile::tempdir().unwrap();
        let budget = budget_rows * (std::mem::size_of::<ResetEvent>() + 120);
        let (out, stats) = sort_through(dir.path(), &rows, budget, merge_width);
        prop_assert_eq!(out, sorted(&rows));
        prop_assert!(stats.rows_spilled <= rows.len() as u64);
        prop_assert!(files_in(dir.path()).is_empty());
    }

    #[test]
    fn random_rows_with_any_values_sort_through_files(
        rows in proptest::collection::vec(any_row(false), 0..60),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (out, stats) = sort_through(dir.path(), &rows, 0, 3);
        prop_assert_eq!(out, sorted(&rows));
        prop_assert_eq!(stats.rows_spilled, rows.len() as u64);
    }
}

#[test]
fn more_runs_than_one_merge_takes_are_merged_in_passes() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let rows: Vec<ResetEvent> = (0..400)
        .map(|_| any_row(true).new_tree(&mut runner).unwrap().current())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    // A budget of nothing: every row is spilled, and rows out of order start runs.
    let (out, stats) = sort_through(dir.path(), &rows, 0, MERGE_WIDTH);
    assert!(stats.runs > MERGE_WIDTH as u64, "{stats:?}");
    assert!(stats.merge_passes >= 1, "{stats:?}");
    assert_eq!(out, sorted(&rows));
}

#[test]
fn nothing_spilled_is_sort_rows_and_makes_no_file() {
    let rows = crate::output::tests::many_rows(5000);
    let dir = tempfile::tempdir().unwrap();
    let mut sorter = RowSorter::new(dir.path(), usize::MAX);
    sorter.extend(rows.iter().cloned()).unwrap();
    let mut out = sorter.finish(2).unwrap();
    assert_eq!(out.stats(), SpillStats::default());
    let vec = out
        .take_vec()
        .expect("rows held in memory come back as a vector");
    assert_eq!(vec, sorted(&rows));
    assert!(out.next().is_none());
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn spilled_rows_do_not_come_back_as_a_vector() {
    let rows = crate::output::tests::many_rows(100);
    let dir = tempfile::tempdir().unwrap();
    let mut sorter = RowSorter::new(dir.path(), 0);
    sorter.extend(rows.iter().cloned()).unwrap();
    let mut out = sorter.finish(1).unwrap();
    assert!(out.take_vec().is_none());
    assert_eq!(out.size_hint(), (0, Some(100)));
    let mut all = out.next_chunk(30).unwrap();
    assert_eq!(all.len(), 30);
    all.extend(out.next_chunk(1000).unwrap());
    assert_eq!(all, sorted(&rows));
    assert!(out.next_chunk(10).unwrap().is_empty());
}

/// Rows in order, or late by less than half a buffer (as rows leave the tracker), make one run.
#[test]
fn rows_nearly_in_order_make_one_run() {
    // One refused connection a millisecond: most rows leave the tracker as their connections
    // end, the last close delay's worth (5 s) when it finishes.
    let rows = refused_rows(20_000, 1_000_000);
    let budget = 4000 * approx_row_bytes(&rows[0]);
    let dir = tempfile::tempdir().unwrap();
    // The tracker's order: rows leave when their connection ends.
    let (out, stats) = sort_through(dir.path(), &rows, budget, MERGE_WIDTH);
    assert_eq!(stats.runs, 1, "{stats:?}");
    assert_eq!(out, sorted(&rows));
    // Sorted input.
    let (out, stats) = sort_through(dir.path(), &sorted(&rows), budget, MERGE_WIDTH);
    assert_eq!(stats.runs, 1, "{stats:?}");
    assert_eq!(out, sorted(&rows));
    // Reversed input makes a run per buffer.
    let mut reversed = sorted(&rows);
    reversed.reverse();
    let (out, stats) = sort_through(dir.path(), &reversed, budget, MERGE_WIDTH);
    assert!(stats.runs >= 4, "{stats:?}");
    assert_eq!(out, sorted(&rows));
}

#[test]
fn spill_files_are_unlinked_at_once_and_a_leftover_is_removed_under_the_lock() {
    let rows = crate::output::tests::many_rows(2000);
    let dir = tempfile::tempdir().unwrap();
    let mut sorter = RowSorter::new(dir.path(), 100 * approx_row_bytes(&rows[0]));
    sorter.extend(rows.iter().cloned()).unwrap();
    assert!(sorter.stats().runs > 1);
    assert!(files_in(dir.path()).is_empty());
    let mut out = sorter.finish(1).unwrap();
    out.next().unwrap().unwrap();
    drop(out);
    assert!(files_in(dir.path()).is_empty());
    // One caught between creation and unlinking, by a kill: it has the name the cleanup looks
    // for.
    let (_, leftover) = tempfile::Builder::new()
        .prefix(SPILL_PREFIX)
        .tempfile_in(dir.path())
        .unwrap()
        .keep()
        .unwrap();
    drop(leftover);
    assert_eq!(files_in(dir.path()).len(), 1);
    assert_eq!(crate::lock::remove_stale_temporaries(dir.path()), 1);
    assert!(files_in(dir.path()).is_empty());
}

/// A spill file on a full disk: the kernel's "no space left" comes back (the caller exits 74).
#[test]
fn a_full_disk_is_an_error_naming_the_file() {
    fn dev_full(_: &Path) -> io::Result<(PathBuf, File)> {
        let path = PathBuf::from("/dev/full");
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        Ok((path, file))
    }
    if !Path::new("/dev/full").exists() {
        return;
    }
    let rows = crate::output::tests::many_rows(3000);
    let dir = tempfile::tempdir().unwrap();
    let mut sorter = RowSorter::new(dir.path(), 10 * approx_row_bytes(&rows[0]));
    sorter.create_file = dev_full;
    // Buffered writes fail when the buffer is written out: while pushing, or when finishing.
    let e = match sorter.extend(rows) {
        Err(e) => e,
        Ok(()) => sorter.finish(1).err().expect("an error"),
    };
    assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
    assert!(e.to_string().starts_with("/dev/full: "), "{e}");
}

#[test]
fn a_spill_directory_that_is_not_there_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone");
    let mut sorter = RowSorter::new(&gone, 0);
    let e = sorter
        .extend(crate::output::tests::many_rows(3))
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("gone"), "{e}");
}

/// A run written and its bytes, to damage.
fn written_run(rows: &[ResetEvent]) -> (tempfile::TempDir, Run, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = RunWriter::create(dir.path(), create_spill_file).unwrap();
    for (i, r) in rows.iter().enumerate() {
        w.write(r, i as u64 * 1000).unwrap();
    }
    let mut run = w.finish().unwrap();
    let mut bytes = Vec::new();
    run.file.rewind().unwrap();
    run.file.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len() as u64, run.bytes);
    (dir, run, bytes)
}

fn read_run(run: Run) -> io::Result<Vec<ResetEvent>> {
    let mut r = RunReader::open(run, MIN_READ_BUFFER)?;
    let mut rows = Vec::new();
    while let Some((row, _)) = r.next_row()? {
        rows.push(row);
    }
    Ok(rows)
}

#[test]
fn tags_come_back_with_their_rows_through_files_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = crate::output::tests::many_rows(3000);
    for (i, r) in rows.iter_mut().enumerate() {
        r.ts_ns = (i * 7919 % 3000) as i64;
        r.frame = i as u64;
    }
    for budget in [1 << 12, 1 << 30] {
        let mut sorter = RowSorter::new(dir.path(), budget);
        for r in &rows {
            sorter.push_tagged(r.clone(), r.frame * 3 + 1).unwrap();
        }
        let mut sorted = sorter.finish(2).unwrap();
        let mut n = 0;
        while let Some(row) = sorted.next_tagged() {
            let (row, tag) = row.unwrap();
            assert_eq!(tag, row.frame * 3 + 1);
            n += 1;
        }
        assert_eq!(n, rows.len());
    }
}

#[test]
fn a_damaged_run_is_an_error_naming_the_file_and_offset_never_a_panic() {
    let rows = sorted(&crate::output::tests::many_rows(6));
    let (_dir, run, bytes) = written_run(&rows);
    let path = run.path.display().to_string();
    // The run with other bytes (through its handle: the file is unlinked), read by a reader
    // that expects `expected` bytes.
    let read = |b: &[u8], expected: u64| {
        let mut file = run.file.try_clone().unwrap();
        file.set_len(0).unwrap();
        file.rewind().unwrap();
        file.write_all(b).unwrap();
        read_run(Run {
            path: run.path.clone(),
            file,
            rows: run.rows,
            bytes: expected,
        })
    };
    assert_eq!(read(&bytes, bytes.len() as u64).unwrap(), rows);
    // Cut anywhere (the file shorter than written, or cut where a frame ends): an error, with
    // the file's name and an offset within what is there.
    for n in 0..bytes.len() {
        for expected in [bytes.len() as u64, n as u64] {
            let e = read(&bytes[..n], expected).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("{path}: corrupt spill file: ")),
                "{msg}"
            );
            let offset: usize = msg.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(offset <= n, "{msg}");
        }
    }
    // Any byte changed: rows or an error.
    for i in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            let _ = read(&b, b.len() as u64);
        }
    }
}

#[test]
fn a_damaged_run_ends_the_merge_with_its_error() {
    let rows = crate::output::tests::many_rows(500);
    let dir = tempfile::tempdir().unwrap();
    let mut sorter = RowSorter::new(dir.path(), 50 * approx_row_bytes(&rows[0]));
    sorter.extend(rows).unwrap();
    let run = sorter.open.take().unwrap().finish().unwrap();
    // Its last byte is cut off.
    run.file.set_len(run.bytes - 1).unwrap();
    sorter.runs.push(run);
    let out: Vec<io::Result<ResetEvent>> = sorter.finish(1).unwrap().collect();
    let e = out.last().unwrap().as_ref().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    assert_eq!(out.iter().filter(|r| r.is_err()).count(), 1);
}

/// Figures (run by hand, optimised; `SPILL_ROWS`, `SPILL_CASES=0,2` choose):
/// `cargo test --release -p rstscope-engine spill::tests::measure -- --ignored --nocapture`
#[test]
#[ignore]
fn measure() {
    let var = |name: &str| std::env::var(name).ok();
    let n: u64 = var("SPILL_ROWS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let cases: Option<Vec<usize>> =
        var("SPILL_CASES").map(|v| v.split(',').filter_map(|c| c.parse().ok()).collect());
    let t = std::time::Instant::now();
    let rows = refused_rows(n, 120_000);
    eprintln!(
        "{} rows made by the tracker in {:.2?}; a ResetEvent is {} bytes",
        rows.len(),
        t.elapsed(),
        std::mem::size_of::<ResetEvent>()
    );
    let in_memory: usize = rows.iter().map(approx_row_bytes).sum();
    let dir = tempfile::tempdir().unwrap();
    let cpu = || {
        // SAFETY: getrusage writes the struct it is given, nothing else.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(u.ru_utime) + secs(u.ru_stime)
    };
    let all = [
        ("tracker order, 64 MiB", false, 64 << 20),
        ("tracker order, 4 MiB", false, 4 << 20),
        ("shuffled, 4 MiB", true, 4 << 20),
        ("tracker order, all in memory", false, usize::MAX),
        ("shuffled, all in memory", true, usize::MAX),
    ];
    for (i, (what, shuffle, budget)) in all.into_iter().enumerate() {
        if cases.as_ref().is_some_and(|c| !c.contains(&i)) {
            continue;
        }
        let input = if shuffle {
            shuffled(&rows)
        } else {
            rows.clone()
        };
        // In batches, as a tracker's finished rows come.
        let mut batches: Vec<Vec<ResetEvent>> = input.chunks(4096).map(<[_]>::to_vec).collect();
        drop(input);
        let (t, cpu0) = (std::time::Instant::now(), cpu());
        let mut sorter = RowSorter::new(dir.path(), budget).threads(2);
        for batch in &mut batches {
            sorter.append(batch).unwrap();
        }
        let pushed = t.elapsed();
        let mut out = sorter.finish(2).unwrap();
        let stats = out.stats();
        let mut count = 0u64;
        let mut last_ts = i64::MIN;
        for row in out.by_ref() {
            let row = row.unwrap();
            assert!(row.ts_ns >= last_ts);
            last_ts = row.ts_ns;
            count += 1;
        }
        let (total, cpu_total) = (t.elapsed(), cpu() - cpu0);
        assert_eq!(count, n);
        eprintln!(
            "{what}: push+spill {pushed:.2?}, total {total:.2?} (cpu {cpu_total:.2} s) = {:.0} rows/s; \
             {} runs, {} passes, {} rows spilled, {:.1} B/row on disk ({:.0} B/row in memory)",
            n as f64 / total.as_secs_f64(),
            stats.runs,
            stats.merge_passes,
            stats.rows_spilled,
            stats.bytes_spilled as f64 / stats.rows_spilled.max(1) as f64,
            in_memory as f64 / n as f64,
        );
    }
}

fn shuffled(rows: &[ResetEvent]) -> Vec<ResetEvent> {
    let mut rows = rows.to_vec();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..rows.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rows.swap(i, (x % (i as u64 + 1)) as usize);
    }
    rows
}

/// The engine may fill a sorter on one thread and read it on another.
#[test]
fn sorters_and_their_rows_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<RowSorter>();
    send::<SortedRows>();
}
