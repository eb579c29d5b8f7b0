//! Capture file and sensor names that are not UTF-8 (legal on Linux: a name is bytes) keep
//! their bytes end to end: written `\xNN` in the log's `source` and `sensor` columns in every
//! format and in the summary, and read back to the same bytes by `rstscope merge`.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use common::{rstscope, testdata};

/// The escaped form of the name `bad` 0xff 0xfe `.pcap`.
const BAD: &str = "bad\\xff\\xfe.pcap";

fn copy_sample_to(dir: &Path, name: &[u8]) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let to = dir.join(OsStr::from_bytes(name));
    std::fs::copy(testdata().join("sample.pcap"), &to).unwrap();
    to
}

/// The data rows of a TSV log, as cells, and the index of column `name`.
fn tsv_column(log: &str, name: &str) -> Vec<String> {
    let fields: Vec<&str> = log
        .lines()
        .find_map(|l| l.strip_prefix("#fields\t"))
        .expect("#fields")
        .split('\t')
        .collect();
    let i = fields.iter().position(|f| *f == name).expect(name);
    log.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').nth(i).unwrap().to_string())
        .collect()
}

#[test]
fn a_file_name_that_is_not_utf8_is_escaped_not_replaced_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let input = copy_sample_to(&dir.path().join("in"), b"bad\xff\xfe.pcap");
    let arg = input.as_os_str().to_str();
    assert!(arg.is_none(), "the name is not UTF-8");

    for format in ["tsv", "json", "csv"] {
        let out = dir.path().join(format!("out-{format}"));
        let run = Command::new(env!("CARGO_BIN_EXE_rstscope"))
            .args(["-q", "--format", format, "-o"])
            .arg(&out)
            .arg(&input)
            .output()
            .unwrap();
        assert_eq!(
            run.status.code(),
            Some(0),
            "{format}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let sources: Vec<String> = match format {
            "tsv" => {
                let log = std::fs::read_to_string(out.join("reset.log")).unwrap();
                assert!(!log.contains('\u{fffd}'), "{log}");
                tsv_column(&log, "source")
            }
            "json" => {
                let log = std::fs::read_to_string(out.join("reset.log")).unwrap();
                assert!(!log.contains('\u{fffd}'), "{log}");
                log.lines()
                    .map(|l| {
                        let v: serde_json::Value = serde_json::from_str(l).unwrap();
                        v["source"].as_str().unwrap().to_string()
                    })
                    .collect()
            }
            _ => {
                let text = std::fs::read_to_string(out.join("reset.csv")).unwrap();
                assert!(!text.contains('\u{fffd}'), "{text}");
                let mut r = csv::Reader::from_reader(text.as_bytes());
                let i = r
                    .headers()
                    .unwrap()
                    .iter()
                    .position(|h| h == "source")
                    .unwrap();
                r.records().map(|rec| rec.unwrap()[i].to_string()).collect()
            }
        };
        assert!(!sources.is_empty(), "{format}: rows");
        assert!(sources.iter().all(|s| s == BAD), "{format}: {sources:?}");

        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("reset_summary.json")).unwrap())
                .unwrap();
        let file = &summary["files"][0];
        assert_eq!(file["source"], BAD, "{format}: {summary}");
        assert!(
            file["path"].as_str().unwrap().ends_with(&format!("/{BAD}")),
            "{format}: {file}"
        );
    }
}

/// Two sensors named after directories whose names are not UTF-8 either: each shard's log,
/// read back by `rstscope merge`, gives the bytes one run over everything writes, in every
/// format, with the names escaped, never replaced.
#[test]
fn merged_shards_keep_names_that_are_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    copy_sample_to(
        &input.join(OsStr::from_bytes(b"edge\xfe")),
        b"bad\xff\xfe.pcap",
    );
    copy_sample_to(&input.join("core"), b"bad\xff\xfd.pcap");
    for format in ["tsv", "json", "csv"] {
        let log = if format == "csv" {
            "reset.csv"
        } else {
            "reset.log"
        };
        let one = dir.path().join(format!("one-{format}"));
        let run = rstscope(&["-q", "--format", format, input.to_str().unwrap()], &one);
        assert_eq!(
            run.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let whole = std::fs::read_to_string(one.join(log)).unwrap();
        assert!(!whole.contains('\u{fffd}'), "{whole}");
        // JSON text doubles the backslash of `\xNN`.
        let text = |s: &str| match format {
            "json" => s.replace('\\', "\\\\"),
            _ => s.to_string(),
        };
        assert!(
            whole.contains(&text("edge\\xfe/bad\\xff\\xfe.pcap")),
            "{whole}"
        );
        assert!(whole.contains(&text("core/bad\\xff\\xfd.pcap")), "{whole}");
        if format == "tsv" {
            let sensors = tsv_column(&whole, "sensor");
            assert!(sensors.iter().any(|s| s == "edge\\xfe"), "{sensors:?}");
        }
        let summary = std::fs::read_to_string(one.join("reset_summary.json")).unwrap();
        assert!(summary.contains(r#""sensor": "edge\\xfe""#), "{summary}");
        assert!(!summary.contains('\u{fffd}'), "{summary}");

        let mut split = false;
        for n in [2u32, 3, 4] {
            let mut dirs = Vec::new();
            for i in 0..n {
                let d = dir.path().join(format!("{format}-shard-{n}-{i}"));
                let run = rstscope(
                    &[
                        "-q",
                        "--format",
                        format,
                        "--shard",
                        &format!("{i}/{n}"),
                        input.to_str().unwrap(),
                    ],
                    &d,
                );
                assert_eq!(run.status.code(), Some(0));
                if d.join(log).exists() {
                    dirs.push(d);
                }
            }
            split |= dirs.len() == 2;
            let merged = dir.path().join(format!("{format}-merged-{n}"));
            let out = common::merge(&merged, &dirs);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{format}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                std::fs::read_to_string(merged.join(log)).unwrap(),
                whole,
                "{format}, {n} shards"
            );
            let s: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(merged.join("reset_summary.json")).unwrap(),
            )
            .unwrap();
            let mut sources: Vec<&str> = s["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["source"].as_str().unwrap())
                .collect();
            sources.sort();
            assert_eq!(
                sources,
                ["core/bad\\xff\\xfd.pcap", "edge\\xfe/bad\\xff\\xfe.pcap"],
                "{format}, {n} shards"
            );
        }
        assert!(
            split,
            "the two sensors fell into different shards at least once"
        );
    }
}
