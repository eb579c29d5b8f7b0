//! The rows do not depend on how a capture is cut into files: the same packets split into
//! 1 … N pcap files in time order give identical reset.log rows apart from `source`/`frame`,
//! and the same bytes whatever the thread count.

mod common;

use std::path::Path;
use std::process::Command;

use rstscope_pcapgen::{PcapWriter, Record};

/// A generated capture with interleaved flows and many kinds of RST, as records.
fn records() -> Vec<Record> {
    let mut bytes = Vec::new();
    let spec = rstscope_gen::BenchSpec {
        bytes: 1_500_000,
        concurrent: 40,
        seed: 7,
    };
    rstscope_gen::write_bench(&mut bytes, spec, rstscope_gen::T0).unwrap();
    let mut out = Vec::new();
    let report = rstscope_capture::read_bytes(&bytes, |p| {
        out.push(Record {
            ts_ns: p.ts_ns,
            data: p.data.to_vec(),
            orig_len: p.orig_len,
        })
    });
    assert!(report.error.is_none());
    out
}

fn run(dir: &Path, threads: &str) -> String {
    let out = dir.join("out");
    let st = Command::new(env!("CARGO_BIN_EXE_rstscope"))
        .args(["-q", "-j", threads, "-o"])
        .arg(&out)
        .arg(dir.join("in"))
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    std::fs::read_to_string(out.join("reset.log")).unwrap()
}

/// Data rows without the source and frame columns.
fn rows_without_position(log: &str) -> Vec<String> {
    let fields: Vec<&str> = log
        .lines()
        .find(|l| l.starts_with("#fields"))
        .unwrap()
        .split('\t')
        .skip(1)
        .collect();
    let (s, f) = (
        fields.iter().position(|x| *x == "source").unwrap(),
        fields.iter().position(|x| *x == "frame").unwrap(),
    );
    log.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            l.split('\t')
                .enumerate()
                .filter(|(i, _)| *i != s && *i != f)
                .map(|(_, c)| c)
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect()
}

fn split_run(recs: &[Record], pieces: usize, threads: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let per = recs.len().div_ceil(pieces);
    let n = recs.chunks(per).count();
    for (i, chunk) in recs.chunks(per).enumerate() {
        let bytes = PcapWriter::new(1).write(chunk);
        // Names run against time: files are ordered by their first packet, not their name.
        std::fs::write(input.join(format!("piece-{:04}.pcap", n - i)), bytes).unwrap();
    }
    run(dir.path(), threads)
}

#[test]
fn rotated_pieces_give_the_same_rows() {
    let recs = records();
    let whole = split_run(&recs, 1, "2");
    let want = rows_without_position(&whole);
    assert!(
        want.len() > 50,
        "the capture has RSTs of every kind: {}",
        want.len()
    );
    for pieces in [2, 7, 50] {
        let got = split_run(&recs, pieces, "2");
        assert_eq!(rows_without_position(&got), want, "{pieces} pieces");
    }
}

#[test]
fn thread_count_does_not_change_bytes() {
    let recs = records();
    let a = split_run(&recs, 7, "1");
    let b = split_run(&recs, 7, "2");
    let c = split_run(&recs, 7, "8");
    assert_eq!(a, b);
    assert_eq!(a, c);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(6))]
    #[test]
    fn any_split_gives_the_same_rows(pieces in 1usize..=40) {
        let recs = records();
        let want = rows_without_position(&split_run(&recs, 1, "1"));
        let got = rows_without_position(&split_run(&recs, pieces, "1"));
        proptest::prop_assert_eq!(got, want);
    }
}

#[test]
fn sensors_are_tracked_separately_and_named() {
    let recs = records();
    let dir = tempfile::tempdir().unwrap();
    for sensor in ["edge-a", "edge-b"] {
        let d = dir.path().join("in").join(sensor);
        std::fs::create_dir_all(&d).unwrap();
        let per = recs.len().div_ceil(3);
        for (i, chunk) in recs.chunks(per).enumerate() {
            std::fs::write(d.join(format!("{i}.pcap")), PcapWriter::new(1).write(chunk)).unwrap();
        }
    }
    let log = run(dir.path(), "2");
    let single = split_run(&recs, 1, "1");
    let want = rows_without_position(&single);
    let rows = rows_without_position(&log);
    // every row twice, once per sensor, the same apart from the sensor column
    assert_eq!(rows.len(), 2 * want.len());
    for sensor in ["edge-a", "edge-b"] {
        let mine: Vec<String> = rows
            .iter()
            .filter(|r| r.ends_with(&format!("\t{sensor}")))
            .map(|r| r.rsplit_once('\t').unwrap().0.to_string())
            .collect();
        let base: Vec<String> = want
            .iter()
            .map(|r| r.rsplit_once('\t').unwrap().0.to_string())
            .collect();
        assert_eq!(mine, base, "{sensor}");
    }
}

#[test]
fn shards_merged_equal_one_run() {
    for format in ["tsv", "json", "csv"] {
        shards_merged_equal_one_run_in(format);
    }
}

/// Three sensors; run once over everything, then as 2 and 3 shards merged: the same log bytes,
/// the same report page, the same summary figures.
fn shards_merged_equal_one_run_in(format: &str) {
    let recs = records();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    for (k, sensor) in ["edge-a", "edge-b", "core"].iter().enumerate() {
        let d = input.join(sensor);
        std::fs::create_dir_all(&d).unwrap();
        let part = &recs[k * recs.len() / 4..];
        for (i, chunk) in part.chunks(part.len().div_ceil(4)).enumerate() {
            std::fs::write(d.join(format!("{i}.pcap")), PcapWriter::new(1).write(chunk)).unwrap();
        }
    }
    let log = if format == "csv" {
        "reset.csv"
    } else {
        "reset.log"
    };
    let bin = env!("CARGO_BIN_EXE_rstscope");
    let one = dir.path().join("one");
    let st = Command::new(bin)
        .args(["-q", "--format", format, "-o"])
        .arg(&one)
        .arg(&input)
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    let whole = std::fs::read(one.join(log)).unwrap();
    let whole_report = std::fs::read_to_string(one.join("reset_report.html")).unwrap();
    let whole_summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(one.join("reset_summary.json")).unwrap())
            .unwrap();
    for n in [2u32, 3] {
        let mut dirs = Vec::new();
        for i in 0..n {
            let d = dir.path().join(format!("shard-{n}-{i}"));
            let st = Command::new(bin)
                .args([
                    "-q",
                    "--format",
                    format,
                    "--shard",
                    &format!("{i}/{n}"),
                    "-o",
                ])
                .arg(&d)
                .arg(&input)
                .status()
                .unwrap();
            assert_eq!(st.code(), Some(0));
            if d.join(log).exists() {
                dirs.push(d);
            }
        }
        let merged = dir.path().join(format!("merged-{n}"));
        let out = common::merge(&merged, &dirs);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            std::fs::read(merged.join(log)).unwrap() == whole,
            "{format}, {n} shards"
        );
        assert_eq!(
            std::fs::read_to_string(merged.join("reset_report.html")).unwrap(),
            whole_report,
            "{format}, {n} shards: report"
        );
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(merged.join("reset_summary.json")).unwrap(),
        )
        .unwrap();
        for k in [
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
            assert_eq!(s[k], whole_summary[k], "{format}, {n} shards: {k}");
        }
        assert_eq!(
            s["files"].as_array().unwrap().len(),
            whole_summary["files"].as_array().unwrap().len()
        );
    }
}

/// A shard log whose rows are not in log order (edited by hand) is refused, naming the file
/// and the line of the first row out of order; nothing is written.
#[test]
fn merge_refuses_a_shard_out_of_order_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_rstscope");
    let shard = dir.path().join("shard");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sample.pcap");
    let st = Command::new(bin)
        .args(["-q", "-o"])
        .arg(&shard)
        .arg(&sample)
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    let log = shard.join("reset.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let data: Vec<usize> = (0..lines.len())
        .filter(|&i| !lines[i].starts_with('#'))
        .collect();
    assert!(data.len() >= 3, "sample.pcap gives a few rows");
    let ts = |i: usize| lines[i].split('\t').next().unwrap().parse::<f64>().unwrap();
    // The last row first: the row after it (the second) sorts before it.
    assert!(ts(data[1]) < ts(*data.last().unwrap()));
    let last = *data.last().unwrap();
    lines.swap(data[0], last);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let merged = dir.path().join("merged");
    let out = Command::new(bin)
        .arg("merge")
        .arg("-o")
        .arg(&merged)
        .arg(&shard)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let at = format!("reset.log: line {}: ", data[1] + 1);
    assert!(
        stderr.contains(&at) && stderr.contains("not in log order"),
        "{stderr}"
    );
    assert!(!merged.join("reset.log").exists());
}
