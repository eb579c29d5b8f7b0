//! Output bytes never depend on `--sort-memory`: with a sort buffer of one byte (every row
//! spilled, a new run whenever a row comes out of order) or of a few KiB (a few rows a run),
//! reset.log, conn_rst.log, the report and the summary (apart from what differs between any
//! two runs: the run record, peak RSS, seconds spent) are the bytes of a run with the default
//! 64 MiB — in TSV, JSON and CSV, plain and gzip, for -j 1/2/8, with files cut into byte ranges
//! (`--split-min`), joined with a conn.log, and as shards combined by `rstscope merge`.
//!
//! The inputs: the whole `testdata/` tree in one run (four sensors, bad files among them), each
//! testdata capture alone, and archives of generated long-lived connections (tests/common/
//! flows.rs) over many sensors whose packet times overlap, so a small buffer makes dozens of
//! runs (more than the 64 merged at once, forcing merge passes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use proptest::sample::Index;
use rstscope_pcapgen::{gzip, PcapWriter};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_rstscope");

/// What a run wrote that must not depend on the sort's memory.
#[derive(Debug, PartialEq)]
struct Outputs {
    status: Option<i32>,
    /// Every file of the output directory but the summary, the run record and the lock.
    files: BTreeMap<String, Vec<u8>>,
    /// The summary without what differs between any two runs.
    summary: serde_json::Value,
}

/// Run rstscope with `args` into `out` (which must not exist yet) and collect its outputs.
fn run(args: &[String], out: &Path) -> Outputs {
    assert!(!out.exists(), "{} is fresh", out.display());
    let r = Command::new(BIN)
        .arg("-q")
        .args(args)
        .arg("-o")
        .arg(out)
        .output()
        .expect("run rstscope");
    let status = r.status.code();
    assert!(
        matches!(status, Some(0 | 1)),
        "{args:?}: exit {status:?}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    outputs_in(out, status)
}

fn outputs_in(out: &Path, status: Option<i32>) -> Outputs {
    let mut files = BTreeMap::new();
    let mut summary = serde_json::Value::Null;
    for e in std::fs::read_dir(out).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(out.join(&name)).unwrap();
        match name.as_str() {
            ".rstscope.lock" | "rstscope_runs.log" => {}
            "reset_summary.json" => summary = comparable_summary(&bytes),
            // A spill file is unlinked as soon as it is made: none is ever seen here.
            _ => {
                assert!(!name.starts_with('.'), "{}: left {name}", out.display());
                files.insert(name, bytes);
            }
        }
    }
    Outputs {
        status,
        files,
        summary,
    }
}

/// The summary without the run record, peak RSS and the seconds each file and sensor took.
fn comparable_summary(bytes: &[u8]) -> serde_json::Value {
    let mut s: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let o = s.as_object_mut().unwrap();
    o.remove("run");
    o.remove("peak_rss_bytes");
    for list in ["files", "sensors"] {
        for entry in o
            .get_mut(list)
            .and_then(|l| l.as_array_mut())
            .into_iter()
            .flatten()
        {
            entry.as_object_mut().unwrap().remove("seconds");
        }
    }
    s
}

/// Where `got` differs from `want`, briefly: the first differing line of each file.
fn difference(got: &Outputs, want: &Outputs) -> String {
    let mut msg = Vec::new();
    if got.status != want.status {
        msg.push(format!("exit {:?}, want {:?}", got.status, want.status));
    }
    let names: std::collections::BTreeSet<&String> =
        got.files.keys().chain(want.files.keys()).collect();
    for name in names {
        match (got.files.get(name), want.files.get(name)) {
            (Some(g), Some(w)) if g != w => {
                let (g, w) = (String::from_utf8_lossy(g), String::from_utf8_lossy(w));
                let at = g.lines().zip(w.lines()).position(|(a, b)| a != b);
                let line = |t: &str, i: Option<usize>| {
                    i.and_then(|i| t.lines().nth(i))
                        .unwrap_or("(past the end)")
                        .chars()
                        .take(300)
                        .collect::<String>()
                };
                msg.push(format!(
                    "{name} differs at line {}:\n  got  {}\n  want {}",
                    at.map_or(0, |i| i + 1),
                    line(&g, at),
                    line(&w, at)
                ));
            }
            (Some(_), None) => msg.push(format!("{name} written, not by the default")),
            (None, Some(_)) => msg.push(format!("{name} missing")),
            _ => {}
        }
    }
    if got.summary != want.summary {
        let (g, w) = (&got.summary, &want.summary);
        let keys: Vec<&String> = w
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .filter(|k| g.get(k.as_str()) != w.get(k.as_str()))
            .collect();
        msg.push(format!("summary differs in {keys:?}"));
    }
    msg.join("\n")
}

/// The last line of the run record in `out`.
fn run_record(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("rstscope_runs.log")).unwrap();
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

/// What the sort spilled, as the run record says: (sorted runs written, rows in them, rows).
fn spilled(out: &Path) -> (u64, u64, u64) {
    let r = run_record(out);
    let n = |k: &str| {
        r[k].as_u64()
            .unwrap_or_else(|| panic!("run record without {k}: {r}"))
    };
    (n("spill_runs"), n("spilled_rows"), n("rows"))
}

/// A run with each of `memories` as `--sort-memory` writes what a run with the default does.
/// The default keeps these small inputs in memory; one byte spills every row.
fn check(work: &Path, args: &[String], memories: &[&str], what: &str) {
    let stem = work.join(format!("out-{}", next_id()));
    let want = run(args, &stem.with_extension("default"));
    assert!(
        want.files.keys().any(|n| n.starts_with("reset.")),
        "{what}: a log is written: {:?}",
        want.files.keys()
    );
    let (runs, rows_spilled, _) = spilled(&stem.with_extension("default"));
    assert_eq!((runs, rows_spilled), (0, 0), "{what}: the default spilled");
    for m in memories {
        let mut a = args.to_vec();
        a.extend(["--sort-memory".to_string(), m.to_string()]);
        let out = stem.with_extension(format!("mem{m}"));
        let got = run(&a, &out);
        assert!(
            got == want,
            "{what}, --sort-memory {m} ({args:?}):\n{}",
            difference(&got, &want)
        );
        let (runs, rows_spilled, rows) = spilled(&out);
        // With threads, cold rows that stitching then drops were spilled too.
        if *m == "1" {
            assert!(
                runs >= 1 && rows_spilled >= rows,
                "{what}, --sort-memory 1: {runs} runs, {rows_spilled} of {rows} rows spilled"
            );
        }
    }
}

fn next_id() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static ID: AtomicUsize = AtomicUsize::new(0);
    ID.fetch_add(1, Ordering::Relaxed)
}

/// The options of one configuration.
#[derive(Clone, Copy, Debug)]
struct Opts {
    format: &'static str,
    gzip: bool,
    threads: u32,
    /// `--split-min`: plain files this large and up are cut into byte ranges for threads.
    split_min: Option<u64>,
}

impl Opts {
    fn args(self) -> Vec<String> {
        let mut a = vec![
            "--format".to_string(),
            self.format.to_string(),
            "-j".to_string(),
            self.threads.to_string(),
        ];
        if self.gzip {
            a.push("--gzip".into());
        }
        if let Some(s) = self.split_min {
            a.extend(["--split-min".to_string(), s.to_string()]);
        }
        a
    }

    /// Every format (JSON gzipped) with -j 1, -j 2 and -j 8, the threads cutting files into
    /// byte ranges.
    fn all() -> Vec<Opts> {
        let mut all = Vec::new();
        for format in ["tsv", "json", "csv"] {
            for threads in [1, 2, 8] {
                all.push(Opts {
                    format,
                    gzip: format == "json",
                    threads,
                    split_min: (threads > 1).then_some(1),
                });
            }
        }
        all
    }
}

fn arg(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// An archive of `sensors` sensor directories, each with its own generated capture of `flows`
/// connections (packet times overlapping), cut into 1–3 files.
fn generated_archive(dir: &Path, seed: u64, sensors: usize, flows: usize) -> PathBuf {
    let arch = dir.join(format!("arch-{seed}-{sensors}"));
    for s in 0..sensors {
        let d = arch.join(format!("sensor-{s:02}"));
        std::fs::create_dir_all(&d).unwrap();
        let recs = common::flows::records(seed.wrapping_add(s as u64), flows);
        let pieces = 1 + (seed as usize + s) % 3;
        for (i, chunk) in recs.chunks(recs.len().div_ceil(pieces)).enumerate() {
            let bytes = PcapWriter::new(1).write(chunk);
            // One compressed file in each sensor cut in three: a gzip file is never cut into
            // byte ranges, so threads get whole files and ranges side by side.
            if i == 1 && pieces == 3 {
                std::fs::write(d.join(format!("{i}.pcap.gz")), gzip(&bytes)).unwrap();
            } else {
                std::fs::write(d.join(format!("{i}.pcap")), bytes).unwrap();
            }
        }
    }
    arch
}

/// A Zeek conn.log (TSV) for the rows of a reset.log (TSV): one row per connection (uid) that
/// had RSTs, from its start to its last RST, in uid order (not time order, as Zeek writes
/// when connections end); the connections of every fifth 5-tuple left out (their RSTs stay
/// unmatched, unless another connection's window takes them), every third connection written
/// responder first, and one row no RST belongs to.
fn conn_log_for(reset_log: &str) -> String {
    let fields: Vec<&str> = reset_log
        .lines()
        .find(|l| l.starts_with("#fields"))
        .expect("a TSV reset.log")
        .split('\t')
        .skip(1)
        .collect();
    let col = |name: &str| fields.iter().position(|f| *f == name).unwrap();
    let (ts, uid, dur, state, hist) = (
        col("ts"),
        col("uid"),
        col("duration"),
        col("conn_state"),
        col("history"),
    );
    let ids = [
        col("id.orig_h"),
        col("id.orig_p"),
        col("id.resp_h"),
        col("id.resp_p"),
    ];
    // By uid: the endpoints, start and last RST (µs), state and history.
    let mut conns: BTreeMap<String, (Vec<String>, i64, i64, String, String)> = BTreeMap::new();
    for line in reset_log.lines().filter(|l| !l.starts_with('#')) {
        let c: Vec<&str> = line.split('\t').collect();
        let t = micros(c[ts]);
        let start = t - if c[dur] == "-" { 0 } else { micros(c[dur]) };
        let e = conns.entry(c[uid].to_string()).or_insert_with(|| {
            (
                ids.iter().map(|&i| c[i].to_string()).collect(),
                start,
                t,
                c[state].to_string(),
                c[hist].to_string(),
            )
        });
        e.1 = e.1.min(start);
        e.2 = e.2.max(t);
        e.3 = c[state].to_string();
        e.4 = c[hist].to_string();
    }
    let mut out = String::from(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n\
         #fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\tconn_state\thistory\n\
         #types\ttime\tstring\taddr\tport\taddr\tport\tenum\tinterval\tstring\tstring\n",
    );
    let tuples: std::collections::BTreeSet<&[String]> =
        conns.values().map(|c| c.0.as_slice()).collect();
    let left_out: std::collections::BTreeSet<&[String]> =
        tuples.into_iter().skip(4).step_by(5).collect();
    let mut last = 0;
    for (i, (ids, start, end, state, hist)) in conns.values().enumerate() {
        last = last.max(*end);
        if left_out.contains(ids.as_slice()) {
            continue;
        }
        let (a, b) = if i % 3 == 1 {
            (&ids[2..], &ids[..2])
        } else {
            (&ids[..2], &ids[2..])
        };
        out += &format!(
            "{}\tCsortmem{i:010}\t{}\t{}\t{}\t{}\ttcp\t{}\t{state}\t{hist}\n",
            seconds(*start),
            a[0],
            a[1],
            b[0],
            b[1],
            seconds(end - start),
        );
    }
    out += &format!(
        "{}\tCsortmemnone\t198.51.100.1\t1\t198.51.100.2\t2\ttcp\t1.000000\tSF\tShADadFf\n",
        seconds(last)
    );
    out
}

/// A Zeek time or interval with six decimals, in µs (exactly: no float).
fn micros(s: &str) -> i64 {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<6}");
    whole.parse::<i64>().unwrap() * 1_000_000 + frac[..6].parse::<i64>().unwrap()
}

fn seconds(us: i64) -> String {
    format!(
        "{}.{:06}",
        us.div_euclid(1_000_000),
        us.rem_euclid(1_000_000)
    )
}

/// A conn.log in `dir` for what a default TSV run over `inputs` finds.
fn conn_log(dir: &Path, inputs: &[String]) -> PathBuf {
    let out = dir.join(format!("conn-source-{}", next_id()));
    let mut args = inputs.to_vec();
    args.extend(["--format".to_string(), "tsv".to_string()]);
    run(&args, &out);
    let log = std::fs::read_to_string(out.join("reset.log")).unwrap();
    let path = dir.join(format!("conn-{}.log", next_id()));
    std::fs::write(&path, conn_log_for(&log)).unwrap();
    path
}

/// The join arguments, checking first that the conn.log matches some RSTs (and, when
/// `some_unmatched`, not all: an archive of a few connections may have no 5-tuple left out).
fn join_args(dir: &Path, inputs: &[String], some_unmatched: bool) -> Vec<String> {
    let conn = conn_log(dir, inputs);
    let mut a = inputs.to_vec();
    a.extend(["--conn-log".to_string(), arg(&conn), "--enrich-conn".into()]);
    let probe = run(&a, &dir.join(format!("join-probe-{}", next_id())));
    let join = &probe.summary["join"];
    assert!(join["matched"].as_u64().unwrap() > 0, "{join}");
    if some_unmatched {
        assert!(join["unmatched"].as_u64().unwrap() > 0, "{join}");
    }
    a
}

// ---------------------------------------------------------------------------------------------
// Tests

/// The whole testdata tree in one run (its sensors, good and bad files): every format, thread
/// count and byte-range cutting, joined with a conn.log; one byte and 2 KiB of sort memory.
#[test]
fn testdata_tree_is_the_same_with_any_sort_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = join_args(tmp.path(), &[arg(&common::testdata())], true);
    for opts in Opts::all() {
        let mut a = inputs.clone();
        a.extend(opts.args());
        check(tmp.path(), &a, &["1", "2K"], &format!("testdata, {opts:?}"));
    }
}

/// 70 sensors of generated connections, overlapping in packet time: a one-byte buffer makes
/// more runs than are merged at once.
#[test]
fn many_sensors_are_the_same_with_any_sort_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let arch = generated_archive(tmp.path(), 11, 70, 12);
    let inputs = join_args(tmp.path(), &[arg(&arch)], true);
    for opts in Opts::all() {
        let mut a = inputs.clone();
        a.extend(opts.args());
        check(
            tmp.path(),
            &a,
            &["1", "700", "8K"],
            &format!("70 sensors, {opts:?}"),
        );
    }
}

/// A one-byte buffer over many sensors whose packet times overlap makes more sorted runs
/// than one merge takes (64), so merge passes run; a few KiB still make many.
#[test]
fn many_sensors_make_more_runs_than_one_merge_takes() {
    let tmp = tempfile::tempdir().unwrap();
    let arch = generated_archive(tmp.path(), 11, 70, 12);
    for (memory, least) in [("1", 65), ("8K", 10)] {
        let out = tmp.path().join(format!("out-{memory}"));
        let args = ["-j", "1", "--sort-memory", memory].map(String::from);
        run(&[&args[..], &[arg(&arch)]].concat(), &out);
        let (runs, rows_spilled, rows) = spilled(&out);
        assert!(
            runs >= least && rows_spilled > rows / 2,
            "--sort-memory {memory}: {runs} runs, {rows_spilled} of {rows} rows spilled"
        );
    }
}

/// The spill files go to --tmp-dir: one that is not there fails a run that spills as a failed
/// write (74), with no log, and does not matter to one that keeps its rows in memory.
#[test]
fn a_small_sort_memory_spills_to_the_tmp_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let arch = generated_archive(tmp.path(), 5, 4, 40);
    let missing = tmp.path().join("no-such-dir");
    for (memory, want) in [("64M", Some(0)), ("8K", Some(74)), ("1", Some(74))] {
        let out = tmp.path().join(format!("out-{memory}"));
        let r = Command::new(BIN)
            .args(["-q", "--sort-memory", memory, "--tmp-dir"])
            .arg(&missing)
            .arg("-o")
            .arg(&out)
            .arg(&arch)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), want, "--sort-memory {memory}: {stderr}");
        if want == Some(74) {
            assert!(stderr.contains("no-such-dir"), "{stderr}");
            assert!(!out.join("reset.log").exists());
            assert!(!out.join("reset_summary.json").exists());
        }
    }
}

/// Shards run with a one-byte or small sort buffer and merged: the bytes of one run with the
/// default.
#[test]
fn shards_with_a_small_sort_memory_merge_into_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let arch = generated_archive(tmp.path(), 23, 9, 30);
    for (k, format) in ["tsv", "json", "csv"].into_iter().enumerate() {
        let base = vec![arg(&arch), "--format".into(), format.into()];
        let whole = run(&base, &tmp.path().join(format!("whole-{format}")));
        for (n, memory) in [(2u32, "1"), (3, "3K")] {
            let mut dirs = Vec::new();
            for i in 0..n {
                let d = tmp.path().join(format!("shard-{format}-{n}-{i}"));
                let mut a = base.clone();
                a.extend([
                    "--shard".to_string(),
                    format!("{i}/{n}"),
                    "--sort-memory".into(),
                    memory.into(),
                    "-j".into(),
                    ["1", "2", "8"][(k + i as usize) % 3].into(),
                ]);
                // A shard given no sensor writes no log and is not merged.
                if run(&a, &d).files.keys().any(|n| n.starts_with("reset.")) {
                    dirs.push(d);
                }
            }
            let merged = tmp.path().join(format!("merged-{format}-{n}"));
            let r = common::merge(&merged, &dirs);
            assert_eq!(
                r.status.code(),
                Some(0),
                "{format}: {}",
                String::from_utf8_lossy(&r.stderr)
            );
            let got = outputs_in(&merged, Some(0));
            let what = format!("{format}, {n} shards, --sort-memory {memory}");
            assert_eq!(
                got.files.keys().collect::<Vec<_>>(),
                whole.files.keys().collect::<Vec<_>>(),
                "{what}"
            );
            assert!(
                got.files == whole.files,
                "{what}:\n{}",
                difference(&got, &whole)
            );
            for key in [
                "rsts",
                "by_cause",
                "injected",
                "top_seq",
                "top_payloads",
                "top_reasons",
                "top_refused_targets",
                "top_scanners",
                "connections",
                "packets",
                "bytes",
            ] {
                assert_eq!(
                    got.summary[key], whole.summary[key],
                    "{what}: summary {key}"
                );
            }
        }
    }
}

/// Every testdata capture (not the bad ones), one at a time.
fn testdata_captures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["", "formats", "links"] {
        let mut names: Vec<PathBuf> = std::fs::read_dir(common::testdata().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        out.extend(names);
    }
    assert!(out.len() >= 13, "testdata captures: {}", out.len());
    out
}

fn opts_strategy() -> impl Strategy<Value = Opts> {
    (
        prop::sample::select(vec!["tsv", "json", "csv"]),
        any::<bool>(),
        prop::sample::select(vec![1u32, 2, 8]),
        prop::option::of(1u64..100_000),
    )
        .prop_map(|(format, gzip, threads, split_min)| Opts {
            format,
            gzip,
            threads,
            split_min,
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10,
        // Each case is a few runs of the binary: keep a failing case's shrinking short.
        max_shrink_iters: 16,
        ..ProptestConfig::default()
    })]

    /// Generated sensors (any number, seed and size), any options, with and without a
    /// conn.log, and any sort memory from one byte to 64 KiB.
    #[test]
    fn generated_archives_are_the_same_with_any_sort_memory(
        seed in any::<u64>(),
        sensors in 1usize..=12,
        flows in 5usize..=60,
        opts in opts_strategy(),
        join in any::<bool>(),
        memory in 1u64..=65_536,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let arch = generated_archive(tmp.path(), seed, sensors, flows);
        let mut a = if join {
            join_args(tmp.path(), &[arg(&arch)], false)
        } else {
            vec![arg(&arch)]
        };
        a.extend(opts.args());
        let what = format!("seed {seed}, {sensors} sensors of {flows} connections, {opts:?}");
        check(tmp.path(), &a, &["1", &memory.to_string()], &what);
    }

    /// One testdata capture, any options, any sort memory.
    #[test]
    fn a_testdata_capture_is_the_same_with_any_sort_memory(
        which in any::<Index>(),
        opts in opts_strategy(),
        memory in 1u64..=16_384,
    ) {
        let caps = testdata_captures();
        let cap = which.get(&caps);
        let tmp = tempfile::tempdir().unwrap();
        let mut a = vec![arg(cap)];
        a.extend(opts.args());
        let what = format!("{}, {opts:?}", cap.display());
        check(tmp.path(), &a, &["1", &memory.to_string()], &what);
    }
}

#[test]
fn conn_log_times_are_exact() {
    assert_eq!(micros("1795478400.000150"), 1_795_478_400_000_150);
    assert_eq!(micros("0.5"), 500_000);
    assert_eq!(micros("3"), 3_000_000);
    assert_eq!(seconds(1_795_478_400_000_150), "1795478400.000150");
}
