//! Nightly runs with `--state`: late files, failed files, a carry that cannot be read, runs
//! sharing a state, names that collide, and the run record. (The invariant itself — any cut
//! into runs gives the rows of one run — is `carry.rs`.)

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{rstscope, testdata};
use rstscope_pcapgen::{PcapWriter, Record};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A capture's packets as records.
fn records(path: &Path) -> Vec<Record> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    rstscope_capture::read_bytes(&bytes, |p| {
        out.push(Record {
            ts_ns: p.ts_ns,
            data: p.data.to_vec(),
            orig_len: p.orig_len,
        })
    });
    out
}

/// Write records as a pcap dated ten minutes back (settled, as an archive's files are).
fn write_pcap(path: &Path, recs: &[Record]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, PcapWriter::new(1).write(recs)).unwrap();
    age(path);
}

fn age(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(600))
        .unwrap();
}

/// Data rows of every log in `dir` (TSV), sorted.
fn delivered(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("reset.") && name.ends_with(".log") {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap();
            rows.extend(
                text.lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(str::to_string),
            );
        }
    }
    rows.sort();
    rows
}

fn run_records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("rstscope_runs.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a run record is one JSON object per line"))
        .collect()
}

fn column(row: &str, log_dir: &Path, name: &str) -> String {
    let any = std::fs::read_dir(log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("reset.") && n.ends_with(".log")
        })
        .unwrap();
    let text = std::fs::read_to_string(any).unwrap();
    let fields: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("#fields"))
        .unwrap()
        .split('\t')
        .skip(1)
        .collect();
    let i = fields.iter().position(|f| *f == name).unwrap();
    row.split('\t').nth(i).unwrap().to_string()
}

/// A file whose packets sort before what the sensor's stream already read is read on its own,
/// from a cold start, with a warning (also under -q) that names it, in the run record and in
/// the summary; the stream's carry is untouched by it.
#[test]
fn a_late_file_is_read_cold_with_a_warning_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let recs = records(&testdata().join("sample.pcap"));
    let third = recs.len() / 3;
    let arch = dir.path().join("arch");
    let state = dir.path().join("state.json");
    let out = dir.path().join("out");
    write_pcap(&arch.join("b.pcap"), &recs[third..2 * third]);
    write_pcap(&arch.join("c.pcap"), &recs[2 * third..]);
    let args = [
        "-q",
        "--state",
        state.to_str().unwrap(),
        arch.to_str().unwrap(),
    ];
    let r = rstscope(&args, &out);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(r.stderr.is_empty(), "{}", stderr(&r));
    // The first third arrives late.
    write_pcap(&arch.join("a.pcap"), &recs[..third]);
    let r = rstscope(&args, &out);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let err = stderr(&r);
    assert!(
        err.contains("a.pcap: late file") && err.contains("cold start"),
        "{err}"
    );
    let runs = run_records(&out);
    assert_eq!(runs.len(), 2);
    let late = runs[1]["late_files"].as_array().unwrap();
    assert_eq!(late.len(), 1);
    assert!(late[0].as_str().unwrap().ends_with("a.pcap"));
    assert_eq!(runs[1]["warnings"].as_array().unwrap().len(), 1);
    let summary_name = runs[1]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .find(|o| o.starts_with("reset_summary"))
        .unwrap()
        .to_string();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(summary_name)).unwrap()).unwrap();
    assert_eq!(summary["run"]["late_files"].as_array().unwrap().len(), 1);
    let files = summary["inputs"]["files"]
        .as_array()
        .or(summary["files"].as_array())
        .cloned()
        .unwrap_or_default();
    if !files.is_empty() {
        assert!(files.iter().any(|f| f["late"] == true), "{files:?}");
    }
    // The late file's rows are its own connections' (a cold start: no row of it names a
    // connection the stream's files carry on), and they are delivered by this run.
    let second: Vec<String> = delivered(&out);
    assert!(second
        .iter()
        .any(|row| column(row, &out, "source") == "a.pcap"));
}

/// A capture that fails part-way delivers the rows before its error once, is recorded with its
/// error, and is not read again until it changes (or with --retry-failed).
#[test]
fn a_failed_file_is_delivered_once_and_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    std::fs::create_dir_all(&arch).unwrap();
    std::fs::copy(testdata().join("bad/truncated.pcap"), arch.join("t.pcap")).unwrap();
    age(&arch.join("t.pcap"));
    let state = dir.path().join("state.json");
    let out = dir.path().join("out");
    let args = [
        "-q",
        "--finish",
        "--state",
        state.to_str().unwrap(),
        arch.to_str().unwrap(),
    ];
    let r = rstscope(&args, &out);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        stderr(&r).contains("truncated pcap record"),
        "{}",
        stderr(&r)
    );
    let first = delivered(&out);
    assert!(!first.is_empty());
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let entry = st["files"].as_object().unwrap().values().next().unwrap();
    assert!(entry["error"].as_str().unwrap().contains("truncated"));
    // Not read again: nothing new, silent, status 0.
    let r = rstscope(&args, &out);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(r.stderr.is_empty(), "{}", stderr(&r));
    assert_eq!(delivered(&out), first, "its rows were delivered once");
    let runs = run_records(&out);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["exit_status"], 1);
    assert_eq!(runs[0]["files_failed"].as_array().unwrap().len(), 1);
    assert_eq!(runs[1]["exit_status"], 0);
    assert_eq!(runs[1]["files_skipped"], 1);
    // --retry-failed reads it again (and says so with its error).
    let mut retry = args.to_vec();
    retry.insert(1, "--retry-failed");
    let r = rstscope(&retry, &out);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(run_records(&out)[2]["files_processed"], 1);
}

/// A carry that cannot be read is an error naming it and saying what to do; no run starts
/// cold by itself. --discard-carry starts cold on purpose, with a warning.
#[test]
fn an_unreadable_carry_is_an_error_never_a_silent_cold_start() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    let recs = records(&testdata().join("sample.pcap"));
    let half = recs.len() / 2;
    write_pcap(&arch.join("a.pcap"), &recs[..half]);
    let state = dir.path().join("state.json");
    let out = dir.path().join("out");
    let args = [
        "-q",
        "--state",
        state.to_str().unwrap(),
        arch.to_str().unwrap(),
    ];
    assert_eq!(rstscope(&args, &out).status.code(), Some(0));
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let carry = dir.path().join(st["carry"]["file"].as_str().unwrap());
    assert!(st["carry"]["connections"].as_u64().unwrap() > 0, "{st}");
    let mut bytes = std::fs::read(&carry).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&carry, &bytes).unwrap();
    write_pcap(&arch.join("b.pcap"), &recs[half..]);
    let r = rstscope(&args, &out);
    assert_eq!(r.status.code(), Some(2));
    let err = stderr(&r);
    assert!(
        err.contains(carry.file_name().unwrap().to_str().unwrap())
            && err.contains("--discard-carry"),
        "{err}"
    );
    assert_eq!(run_records(&out).last().unwrap()["exit_status"], 2);
    let mut discard = args.to_vec();
    discard.insert(1, "--discard-carry");
    let r = rstscope(&discard, &out);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(stderr(&r).contains("--discard-carry"), "{}", stderr(&r));
}

/// Two runs sharing one state file (two sensors' jobs writing to two directories) take turns:
/// neither loses the other's files or carry.
#[test]
fn runs_sharing_a_state_keep_each_others_updates() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut children = Vec::new();
    for (i, name) in ["sample.pcap", "sample-vlan.pcap", "tunnels.pcap"]
        .iter()
        .enumerate()
    {
        // One state holds one stream per sensor name: jobs sharing it read different sensors.
        let arch = dir.path().join(format!("arch{i}"));
        let sensor = arch.join(format!("edge{i}"));
        std::fs::create_dir_all(&sensor).unwrap();
        std::fs::copy(testdata().join(name), sensor.join(name)).unwrap();
        children.push(
            Command::new(env!("CARGO_BIN_EXE_rstscope"))
                .args(["-q", "--state", state.to_str().unwrap(), "-o"])
                .arg(dir.path().join(format!("out{i}")))
                .arg(&arch)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0));
        assert!(o.stderr.is_empty(), "{}", stderr(&o));
    }
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(st["files"].as_object().unwrap().len(), 3, "{st}");
    assert_eq!(st["runs"], 3);
    assert_eq!(st["carry"]["sensors"], 3, "{st}");
}

/// With --state --archive-names, a later run whose packet window has the same name as an
/// earlier run's (another sensor's file of the same hour) writes beside it, never over it.
#[test]
fn a_colliding_window_gets_the_run_number_and_replaces_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    let state = dir.path().join("state.json");
    let out = dir.path().join("out");
    let args = [
        "-q",
        "--archive-names",
        "--finish",
        "--state",
        state.to_str().unwrap(),
        arch.to_str().unwrap(),
    ];
    let recs = records(&testdata().join("sample.pcap"));
    write_pcap(&arch.join("edge1/a.pcap"), &recs);
    assert_eq!(rstscope(&args, &out).status.code(), Some(0));
    let before: Vec<(String, Vec<u8>)> = logs(&out);
    assert_eq!(before.len(), 1);
    write_pcap(&arch.join("edge2/a.pcap"), &recs);
    assert_eq!(rstscope(&args, &out).status.code(), Some(0));
    let after = logs(&out);
    assert_eq!(
        after.len(),
        2,
        "{:?}",
        after.iter().map(|l| &l.0).collect::<Vec<_>>()
    );
    assert!(
        after.contains(&before[0]),
        "the first run's log is unchanged"
    );
    let second = &after.iter().find(|l| *l != &before[0]).unwrap().0;
    assert_eq!(
        second,
        &before[0].0.replace(".log", ".2.log"),
        "the window plus the run's number"
    );
}

fn logs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("reset.") && n.ends_with(".log")
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A run killed after saving the state and before renaming its logs: the next run gives them
/// their names (they are in the state as delivered), so no row is lost or read twice.
#[test]
fn renames_a_killed_run_left_undone_are_finished_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    let state = dir.path().join("state.json");
    let out = dir.path().join("out");
    write_pcap(
        &arch.join("a.pcap"),
        &records(&testdata().join("sample.pcap")),
    );
    let args = [
        "-q",
        "--finish",
        "--state",
        state.to_str().unwrap(),
        arch.to_str().unwrap(),
    ];
    assert_eq!(rstscope(&args, &out).status.code(), Some(0));
    let delivered_before = delivered(&out);
    // Undo the renames the state records, as if the run had died just before them.
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let renames = st["commit"]["renames"].as_array().unwrap();
    assert!(!renames.is_empty());
    for r in renames {
        std::fs::rename(r[1].as_str().unwrap(), r[0].as_str().unwrap()).unwrap();
    }
    assert!(delivered(&out).is_empty());
    let r = rstscope(&args, &out);
    assert_eq!(r.status.code(), Some(0));
    assert!(stderr(&r).contains("delivered now"), "{}", stderr(&r));
    assert_eq!(delivered(&out), delivered_before);
    let hidden: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

/// The Kubernetes recipe: shards written with --archive-names are merged from their
/// window-named logs into the rows one run over everything writes.
#[test]
fn archive_named_shards_merge() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    for (sensor, name) in [("edge1", "sample.pcap"), ("edge2", "sample-vlan.pcap")] {
        write_pcap(
            &arch.join(sensor).join(name),
            &records(&testdata().join(name)),
        );
    }
    let one = dir.path().join("one");
    assert_eq!(
        rstscope(&["-q", arch.to_str().unwrap()], &one)
            .status
            .code(),
        Some(0)
    );
    let mut shards = Vec::new();
    for i in 0..2 {
        let d = dir.path().join(format!("shard{i}"));
        let shard = format!("{i}/2");
        let r = rstscope(
            &[
                "-q",
                "--archive-names",
                "--shard",
                &shard,
                arch.to_str().unwrap(),
            ],
            &d,
        );
        assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
        if !logs(&d).is_empty() {
            shards.push(d);
        }
    }
    let merged = dir.path().join("merged");
    // Each shard given twice: merged once.
    let out = Command::new(env!("CARGO_BIN_EXE_rstscope"))
        .arg("merge")
        .arg("-o")
        .arg(&merged)
        .args(&shards)
        .args(&shards)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("the same shard was already given"));
    let data = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        data(&merged.join("reset.log")),
        data(&one.join("reset.log"))
    );
}

/// A shard's --state that cannot be read is refused before anything is written, as a run
/// refuses its own (exit status 2, the file named), not reported as a write error after the
/// merged logs were put in place.
#[test]
fn merge_refuses_an_unreadable_shard_state_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let shard = dir.path().join("shard0");
    let r = rstscope(
        &["-q", testdata().join("sample.pcap").to_str().unwrap()],
        &shard,
    );
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let bad = dir.path().join("shard0.state");
    std::fs::write(&bad, "{\"files\": {}}").unwrap();
    let merged = dir.path().join("merged");
    let out = Command::new(env!("CARGO_BIN_EXE_rstscope"))
        .arg("merge")
        .arg("-o")
        .arg(&merged)
        .arg("--state")
        .arg(dir.path().join("state.json"))
        .arg("--from-state")
        .arg(&bad)
        .arg(&shard)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("shard0.state: not a rstscope state file: no version"),
        "{}",
        stderr(&out)
    );
    assert!(!merged.join("reset.log").exists());
    assert!(!dir.path().join("state.json").exists());
}

/// With -q a run says nothing when all is well, but a --conn-log that holds no conn log, or one
/// that matches under half of the RSTs, is a warning on stderr (with the likely cause) and in
/// the run record, which also counts the join.
#[test]
fn quiet_runs_still_warn_about_a_join_that_cannot_be_right() {
    let dir = tempfile::tempdir().unwrap();
    let cap = testdata().join("sample.pcap");
    let cap = cap.to_str().unwrap();
    let out = dir.path().join("out");
    let r = rstscope(&["-q", cap], &out);
    assert_eq!(r.status.code(), Some(0));
    assert!(r.stderr.is_empty(), "{}", stderr(&r));
    // A directory without conn logs.
    let empty = dir.path().join("zeek");
    std::fs::create_dir_all(&empty).unwrap();
    let r = rstscope(&["-q", "--conn-log", empty.to_str().unwrap(), cap], &out);
    assert_eq!(r.status.code(), Some(0));
    assert!(stderr(&r).contains("no conn log there"), "{}", stderr(&r));
    // Another site's conn.log: no row has the RSTs' endpoints.
    let conn = empty.join("conn.log");
    std::fs::write(
        &conn,
        "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n\
         #types\ttime\tstring\taddr\tport\taddr\tport\tenum\n\
         1795478400.000000\tCother\t172.16.0.1\t5555\t172.16.0.2\t80\ttcp\n",
    )
    .unwrap();
    let r = rstscope(&["-q", "--conn-log", conn.to_str().unwrap(), cap], &out);
    assert_eq!(r.status.code(), Some(0));
    let err = stderr(&r);
    assert!(
        err.contains("matched only 0 of") && err.contains("wrong sensor"),
        "{err}"
    );
    let last = run_records(&out).pop().unwrap();
    assert_eq!(last["join_matched"], 0);
    assert_eq!(last["conn_log_rows"], 1);
    assert!(last["join_total"].as_u64().unwrap() > 0);
    assert_eq!(last["warnings"].as_array().unwrap().len(), 1);
}

/// Run rstscope with a deadline: a FIFO must never hang a run.
fn run_with_deadline(args: &[&str], out: &Path, secs: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rstscope"))
        .args(args)
        .arg("-o")
        .arg(out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed().as_secs() > secs {
            let _ = child.kill();
            panic!("rstscope {args:?} hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success());
}

/// A FIFO named as an input is read once, as a stream (it used to be opened twice: the peek
/// took the data and the read blocked for ever). FIFOs inside an archive directory or a
/// --conn-log directory are skipped with a notice instead of blocking the run.
#[test]
fn fifos_are_read_once_or_skipped_never_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("live.pcap");
    mkfifo(&fifo);
    let bytes = std::fs::read(testdata().join("sample.pcap")).unwrap();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, bytes))
    };
    let out = dir.path().join("out");
    let r = run_with_deadline(&["-q", fifo.to_str().unwrap()], &out, 20);
    writer.join().unwrap().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let (_d, want) = {
        let d = tempfile::tempdir().unwrap();
        let o = rstscope(
            &["-q", testdata().join("sample.pcap").to_str().unwrap()],
            d.path(),
        );
        assert_eq!(o.status.code(), Some(0));
        let log = std::fs::read_to_string(d.path().join("reset.log")).unwrap();
        (d, log)
    };
    let rows = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.replace("live.pcap", "sample.pcap"))
            .collect()
    };
    assert_eq!(
        rows(&std::fs::read_to_string(out.join("reset.log")).unwrap()),
        rows(&want)
    );
    // In directories: skipped with a notice.
    let arch = dir.path().join("arch");
    let zeek = dir.path().join("zeek");
    std::fs::create_dir_all(&arch).unwrap();
    std::fs::create_dir_all(&zeek).unwrap();
    std::fs::copy(testdata().join("sample.pcap"), arch.join("a.pcap")).unwrap();
    mkfifo(&arch.join("b.pcap"));
    mkfifo(&zeek.join("conn.log"));
    let r = run_with_deadline(
        &["--conn-log", zeek.to_str().unwrap(), arch.to_str().unwrap()],
        &dir.path().join("out2"),
        20,
    );
    let err = stderr(&r);
    assert_eq!(r.status.code(), Some(0), "{err}");
    assert!(
        err.contains("b.pcap: skipped, not a regular file")
            && err.contains("conn.log: skipped, not a regular file"),
        "{err}"
    );
}

/// A FIFO among a sensor's files with several threads: the stream runs on one tracker (a unit
/// may be read again while stitching, and a FIFO cannot be), so the FIFO is read once and the
/// rows are one thread's.
#[test]
fn a_fifo_among_files_is_read_once_with_threads() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    std::fs::create_dir_all(&arch).unwrap();
    let sample = std::fs::read(testdata().join("sample.pcap")).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    for name in ["a.pcap", "c.pcap"] {
        std::fs::write(arch.join(name), &sample).unwrap();
        std::fs::File::options()
            .write(true)
            .open(arch.join(name))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let fifo = dir.path().join("live.pcap");
    let logs: Vec<String> = ["1", "2"]
        .iter()
        .map(|j| {
            mkfifo(&fifo);
            let writer = {
                let (fifo, bytes) = (fifo.clone(), sample.clone());
                std::thread::spawn(move || std::fs::write(fifo, bytes))
            };
            let out = dir.path().join(format!("out{j}"));
            let (a, c) = (arch.join("a.pcap"), arch.join("c.pcap"));
            let args = [
                "-q",
                "-j",
                j,
                a.to_str().unwrap(),
                fifo.to_str().unwrap(),
                c.to_str().unwrap(),
            ];
            let r = run_with_deadline(&args, &out, 30);
            writer.join().unwrap().unwrap();
            std::fs::remove_file(&fifo).unwrap();
            assert_eq!(r.status.code(), Some(0), "-j {j}: {}", stderr(&r));
            std::fs::read_to_string(out.join("reset.log")).unwrap()
        })
        .collect();
    assert!(logs[0].lines().filter(|l| !l.starts_with('#')).count() > 3);
    let body = |l: &str| -> Vec<String> {
        l.lines()
            .filter(|x| !x.starts_with("#open") && !x.starts_with("#close"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(body(&logs[0]), body(&logs[1]));
}

/// A sensor's next file starting days after the carried stream ends (nights of captures
/// missing) is a warning, also under -q.
#[test]
fn a_gap_of_days_after_the_carried_stream_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    let state = dir.path().join("state.json");
    let out = dir.path().join("out");
    let recs = records(&testdata().join("sample.pcap"));
    write_pcap(&arch.join("a.pcap"), &recs);
    let args = [
        "-q",
        "--state",
        state.to_str().unwrap(),
        arch.to_str().unwrap(),
    ];
    let r = rstscope(&args, &out);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(r.stderr.is_empty(), "{}", stderr(&r));
    const DAY: i64 = 86_400 * 1_000_000_000;
    let later: Vec<Record> = recs
        .iter()
        .map(|r| Record {
            ts_ns: r.ts_ns + 3 * DAY,
            ..r.clone()
        })
        .collect();
    write_pcap(&arch.join("b.pcap"), &later);
    let r = rstscope(&args, &out);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let err = stderr(&r);
    assert!(
        err.contains("days before its next file's first packet"),
        "{err}"
    );
    assert_eq!(
        run_records(&out)[1]["warnings"].as_array().unwrap().len(),
        1
    );
}
