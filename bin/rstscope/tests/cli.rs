//! End-to-end runs of the rstscope binary over `testdata/`, with golden outputs.
//!
//! To update the golden files after an intended change: `RSTSCOPE_BLESS=1 cargo test -p rstscope`
//! and review the diff.

mod common;

use std::process::Command;

use common::{rstscope, testdata};

fn run_ok(args: &[&str]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = rstscope(args, dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "rstscope {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(dir.path().join("reset.log")).unwrap();
    (dir, log)
}

fn td(rel: &str) -> String {
    testdata().join(rel).to_string_lossy().into_owned()
}

/// Data rows of a TSV reset.log, split into cells.
fn rows(log: &str) -> Vec<Vec<String>> {
    log.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn column(log: &str, name: &str) -> usize {
    let fields = log
        .lines()
        .find(|l| l.starts_with("#fields"))
        .expect("#fields line");
    fields
        .split('\t')
        .skip(1)
        .position(|f| f == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn check_golden(capture: &str, golden: &str) {
    let (_dir, log) = run_ok(&["-q", &td(capture)]);
    let path = testdata().join("golden").join(golden);
    if std::env::var_os("RSTSCOPE_BLESS").is_some() {
        std::fs::write(&path, &log).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(log, want, "{capture} differs from {golden}");
}

#[test]
fn golden_sample() {
    check_golden("sample.pcap", "sample.reset.log");
}

#[test]
fn golden_sample_vlan() {
    check_golden("sample-vlan.pcap", "sample-vlan.reset.log");
}

#[test]
fn golden_tunnels() {
    check_golden("tunnels.pcap", "tunnels.reset.log");
}

#[test]
fn golden_hostile() {
    check_golden("hostile.pcap", "hostile.reset.log");
}

#[test]
fn seed_refused_syn_row_has_the_closed_port_signature() {
    let (_d, log) = run_ok(&["-q", &td("sample.pcap")]);
    let r = &rows(&log)[0];
    let c = |n: &str| r[column(&log, n)].as_str();
    assert_eq!(c("ts"), "1795478400.000150");
    assert_eq!(
        (c("flags"), c("seq"), c("ack"), c("win")),
        ("R.", "0", "1000001", "0")
    );
    assert_eq!((c("id.resp_h"), c("id.resp_p")), ("10.0.0.80", "23"));
    assert_eq!((c("id.orig_h"), c("id.orig_p")), ("10.0.0.5", "40001"));
    assert_eq!(
        (c("ttl"), c("initial_ttl"), c("ip_id"), c("df")),
        ("64", "64", "0", "T")
    );
    assert_eq!(
        (c("payload_len"), c("payload"), c("reason")),
        ("0", "-", "-")
    );
    assert_eq!((c("source"), c("frame")), ("sample.pcap", "2"));
    assert_eq!(
        (c("cause"), c("injected"), c("evidence")),
        ("refused", "F", "ack_syn,seq_zero")
    );
    assert_eq!(
        (c("history"), c("conn_state"), c("rst_count")),
        ("Sr", "REJ", "1")
    );
    assert_eq!(
        (c("is_orig"), c("orig_pkts"), c("resp_pkts")),
        ("F", "1", "0")
    );
    assert_eq!(
        (c("duration"), c("idle"), c("sender_ttl")),
        ("0.000150", "0.000150", "-")
    );
    // The IPS reset carries its reason text, to both ends.
    let ips: Vec<_> = rows(&log)
        .into_iter()
        .filter(|r| r[column(&log, "payload")] == "220 mailgat")
        .collect();
    assert_eq!(ips.len(), 2);
    // One from each side of the same connection, both forged.
    assert_ne!(
        ips[0][column(&log, "is_orig")],
        ips[1][column(&log, "is_orig")]
    );
    assert_eq!(ips[0][column(&log, "uid")], ips[1][column(&log, "uid")]);
    assert!(ips.iter().all(|r| r[column(&log, "injected")] == "T"));
    assert!(ips.iter().all(|r| r[column(&log, "payload_len")] == "11"));
    // The structured reason.
    assert!(rows(&log)
        .iter()
        .any(|r| r[column(&log, "reason")] == "4:ABORT"));
}

/// Rows without the `source` and `frame` columns.
fn content(log: &str) -> Vec<Vec<String>> {
    let (s, f) = (column(log, "source"), column(log, "frame"));
    rows(log)
        .into_iter()
        .map(|r| {
            r.into_iter()
                .enumerate()
                .filter(|(i, _)| *i != s && *i != f)
                .map(|(_, c)| c)
                .collect()
        })
        .collect()
}

#[test]
fn every_container_and_compression_gives_the_same_rows() {
    let (_d, reference) = run_ok(&["-q", &td("sample.pcap")]);
    let want = content(&reference);
    for f in [
        "formats/pcap-le-us.pcap",
        "formats/pcap-be-us.pcap",
        "formats/pcap-le-ns.pcap",
        "formats/pcap-be-ns.pcap",
        "formats/sample.pcap.gz",
        "formats/sample.pcap.zst",
        "formats/sample.pcapng.gz",
    ] {
        let (_d, log) = run_ok(&["-q", &td(f)]);
        assert_eq!(content(&log), want, "{f}");
        let frames: Vec<_> = rows(&log)
            .iter()
            .map(|r| r[column(&log, "frame")].clone())
            .collect();
        let want_frames: Vec<_> = rows(&reference)
            .iter()
            .map(|r| r[column(&reference, "frame")].clone())
            .collect();
        assert_eq!(frames, want_frames, "{f}");
    }
    for f in ["formats/pcapng-le.pcapng", "formats/pcapng-be.pcapng"] {
        // Three interfaces (Ethernet µs, raw IP ns, SLL 2^-20 s), a custom block that takes
        // frame number 1, an unknown block, and a trailing simple packet block.
        let (_d, log) = run_ok(&["-q", &td(f)]);
        let got = content(&log);
        assert_eq!(got.len(), want.len() + 1, "{f}");
        // 2^-20 s units move times by up to a microsecond: compare those within 1.5 µs, and
        // leave out the uid, which hashes the connection's start time.
        let (s, fr) = (column(&log, "source"), column(&log, "frame"));
        let col = |name: &str| {
            let c = column(&log, name);
            c - usize::from(c > s) - usize::from(c > fr)
        };
        let timed = [col("ts"), col("duration"), col("idle")];
        let uid = col("uid");
        for (g, w) in got.iter().zip(&want) {
            for i in 0..g.len() {
                if timed.contains(&i) {
                    let (gt, wt): (f64, f64) = (g[i].parse().unwrap(), w[i].parse().unwrap());
                    assert!((gt - wt).abs() <= 1.5e-6, "{f}: {gt} vs {wt}");
                } else if i != uid {
                    assert_eq!(g[i], w[i], "{f}: column {i}");
                }
            }
        }
        let frames: Vec<_> = rows(&log)
            .iter()
            .map(|r| r[column(&log, "frame")].parse::<u64>().unwrap())
            .collect();
        assert_eq!(frames[0], 3, "{f}: the custom block is frame 1");
    }
}

#[test]
fn every_link_type_finds_its_rst() {
    let dir = testdata().join("links");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let (_d, log) = run_ok(&["-q", path.to_str().unwrap()]);
        let r = rows(&log);
        assert_eq!(r.len(), 1, "{}", path.display());
        let c = |name: &str| r[0][column(&log, name)].clone();
        assert_eq!(
            (
                c("flags"),
                c("seq"),
                c("ack"),
                c("win"),
                c("ttl"),
                c("initial_ttl")
            ),
            (
                "R.".into(),
                "0".into(),
                "8".into(),
                "0".into(),
                "128".into(),
                "128".into()
            ),
            "{}",
            path.display()
        );
        assert_eq!(
            (c("id.resp_p"), c("id.orig_p"), c("frame")),
            ("25".into(), "33000".into(), "2".into())
        );
        n += 1;
    }
    assert_eq!(n, 20);
}

#[test]
fn tunnels_report_the_innermost_tcp_only() {
    let (_d, log) = run_ok(&["-q", &td("tunnels.pcap")]);
    let r = rows(&log);
    // 10 tunnelled RSTs; the ICMP error quoting a RST and the fragments give none.
    assert_eq!(r.len(), 10);
    for row in &r {
        let resp = &row[column(&log, "id.resp_h")];
        assert!(
            resp.starts_with("172.16.0.") || resp.starts_with("2001:db8:1::"),
            "{resp}"
        );
        assert_eq!(row[column(&log, "ttl")], "60");
    }
}

#[test]
fn bad_inputs_are_reported_with_file_and_offset_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = rstscope(
        &[
            &td("bad/truncated.pcap"),
            &td("bad/corrupt-length.pcap"),
            &td("bad/empty.pcap"),
            &td("bad/not-a-capture.pcap"),
            &td("bad/truncated.pcap.gz"),
            &td("bad/unknown-linktype.pcap"),
            &td("sample.pcap"),
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("truncated.pcap: truncated pcap record at byte offset 2695: 76 bytes needed, 69 left (33 packets before it were read)"), "{stderr}");
    assert!(stderr.contains("corrupt-length.pcap: corrupt pcap record at byte offset 252: captured length 2147418112 exceeds the maximum 262144 (3 packets before it were read)"), "{stderr}");
    assert!(stderr.contains("empty.pcap: empty file"), "{stderr}");
    assert!(
        stderr.contains("not-a-capture.pcap: not a capture file (first bytes 74 68 69 73)"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("truncated.pcap.gz: gzip decompression failed at decompressed byte offset "),
        "{stderr}"
    );
    assert!(stderr.contains("incomplete deflate stream ("), "{stderr}");
    assert!(
        stderr.contains("unknown-linktype.pcap: 2 packets of unsupported link type 147 skipped"),
        "{stderr}"
    );
    let log = std::fs::read_to_string(dir.path().join("reset.log")).unwrap();
    let sources: Vec<String> = rows(&log)
        .iter()
        .map(|r| r[column(&log, "source")].clone())
        .collect();
    // The sample's 10 RSTs, plus those read before the truncation and the corruption.
    assert_eq!(sources.iter().filter(|s| *s == "sample.pcap").count(), 10);
    assert_eq!(
        sources.iter().filter(|s| *s == "truncated.pcap").count(),
        10
    );
    assert_eq!(
        sources
            .iter()
            .filter(|s| *s == "corrupt-length.pcap")
            .count(),
        1
    );
}

#[test]
fn nothing_readable_is_status_2_and_writes_no_log() {
    let dir = tempfile::tempdir().unwrap();
    let out = rstscope(
        &[&td("bad/empty.pcap"), &td("bad/not-a-capture.pcap")],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("reset.log").exists());
    let out = rstscope(&["/nonexistent/capture.pcap"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/capture.pcap: cannot read"));
}

#[test]
fn usage_errors_are_status_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_rstscope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_rstscope"))
        .args(["--format", "xml", "x.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let help = Command::new(env!("CARGO_BIN_EXE_rstscope"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Exit status:") && help.contains("Examples:"));
}

#[test]
fn output_does_not_depend_on_thread_count_and_reruns_are_identical() {
    let all = testdata();
    let all = all.to_str().unwrap();
    let mut outs = Vec::new();
    for j in ["1", "2", "8", "1"] {
        let dir = tempfile::tempdir().unwrap();
        let out = rstscope(&["-q", "-j", j, all], dir.path());
        assert_eq!(out.status.code(), Some(1)); // testdata/bad has errors
        outs.push(std::fs::read(dir.path().join("reset.log")).unwrap());
        // Only the final log is left behind: no temporary files.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // the logs, the run record and the run lock
        assert_eq!(
            names,
            [
                ".rstscope.lock",
                "reset.log",
                "reset_report.html",
                "reset_summary.json",
                "rstscope_runs.log"
            ]
        );
    }
    assert!(outs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn directory_sources_are_relative_to_the_input_and_non_captures_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("archive");
    std::fs::create_dir_all(arch.join("sensor1")).unwrap();
    std::fs::copy(testdata().join("sample.pcap"), arch.join("sensor1/a.pcap")).unwrap();
    std::fs::copy(
        testdata().join("formats/sample.pcap.zst"),
        arch.join("sensor1/b.cap"),
    )
    .unwrap();
    std::fs::write(arch.join("README.txt"), "not a capture").unwrap();
    let out_dir = dir.path().join("out");
    let out = rstscope(&[arch.to_str().unwrap()], &out_dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("README.txt: skipped, not a capture file"),
        "{stderr}"
    );
    let log = std::fs::read_to_string(out_dir.join("reset.log")).unwrap();
    let mut sources: Vec<String> = rows(&log)
        .iter()
        .map(|r| r[column(&log, "source")].clone())
        .collect();
    sources.dedup();
    // Same packets in both files: rows interleave by (ts, source, frame).
    assert_eq!(&sources[..2], ["sensor1/a.pcap", "sensor1/b.cap"]);
}

#[test]
fn json_lines_are_zeek_json_and_hostile_payloads_stay_inside_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = rstscope(&["-q", "--format", "json", &td("hostile.pcap")], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(dir.path().join("reset.log")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 14);
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["payload"], "x\tforged\tcolumns");
    assert_eq!(first["id.orig_p"], 50000);
    assert_eq!(first["id.resp_p"], 80);
    assert_eq!(first["cause"], "orphan");
    assert_eq!(
        first["evidence"],
        serde_json::json!(["payload", "seq_zero", "win_nonzero"])
    );
    assert_eq!(first["ts"].as_f64().unwrap(), 1_795_478_400.000_01);
    assert!(
        first.get("sender_ttl").is_none(),
        "unset fields are omitted"
    );
    let nul: serde_json::Value = serde_json::from_str(lines[9]).unwrap();
    assert_eq!(nul["payload"], "nul\\x00byte\\xff\\xfe\\xc3(");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v.is_object());
    }
}

#[test]
fn csv_has_a_header_quotes_per_rfc4180_and_neutralises_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let out = rstscope(&["-q", "--format", "csv", &td("hostile.pcap")], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let path = dir.path().join("reset.csv");
    let mut rdr = csv::Reader::from_path(&path).unwrap();
    let headers = rdr.headers().unwrap().clone();
    assert_eq!(&headers[0], "ts");
    assert_eq!(&headers[31], "frame");
    let p = headers.iter().position(|h| h == "payload").unwrap();
    let recs: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(recs.len(), 14);
    assert!(recs.iter().all(|r| r.len() == 33));
    let payloads: Vec<&str> = recs.iter().map(|r| &r[p]).collect();
    // A leading double quote is escaped, so CSV-minded TSV readers cannot run a field on.
    assert_eq!(payloads[4], "\\x22quoted\",comma,\"\"");
    assert_eq!(payloads[12], "\\x22unterminated quote\\x09and tab");
    assert_eq!(payloads[5], "'=cmd|' /C calc'!A0");
    assert_eq!(payloads[6], "'+SUM(1)");
    assert_eq!(payloads[7], "'@import");
    assert_eq!(payloads[10], "\\x2d");
    assert!(payloads
        .iter()
        .all(|c| !c.contains('\n') && !c.contains('\r')));
}

#[test]
fn conn_log_join_enrichment_gzip_and_iso_timestamps() {
    // A conn.log for the sample: the three refused SYNs each have a REJ row; the IPS-reset
    // connection is written flipped (responder first), as Zeek may.
    let dir = tempfile::tempdir().unwrap();
    let conn = dir.path().join("conn.log");
    std::fs::write(
        &conn,
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n\
         #fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\tconn_state\thistory\n\
         #types\ttime\tstring\taddr\tport\taddr\tport\tenum\tinterval\tstring\tstring\n\
         1795478400.000000\tCrej1\t10.0.0.5\t40001\t10.0.0.80\t23\ttcp\t0.000150\tREJ\tSr\n\
         1795478401.000140\tCrej2\t10.0.0.5\t40001\t10.0.0.80\t23\ttcp\t0.000140\tREJ\tSr\n\
         1795478403.000290\tCrej3\t10.0.0.5\t40001\t10.0.0.80\t23\ttcp\t0.000160\tREJ\tSr\n\
         1795478403.010290\tCips\t192.0.2.25\t25\t10.0.0.5\t40002\ttcp\t0.025401\tRSTR\tShAdrR\n\
         a malformed line\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = rstscope(
        &[
            "-q",
            "--conn-log",
            conn.to_str().unwrap(),
            "--enrich-conn",
            "--gzip",
            "--format",
            "json",
            "--json-timestamps",
            "iso8601",
            &td("sample.pcap"),
        ],
        &out_dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("conn.log: line 12: 1 fields, the #fields header has 10"),
        "{stderr}"
    );
    let read_gz = |name: &str| {
        let f = std::fs::File::open(out_dir.join(name)).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(f), &mut s).unwrap();
        s
    };
    let log = read_gz("reset.log.gz");
    let rows: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let uids: Vec<&str> = rows.iter().map(|r| r["uid"].as_str().unwrap()).collect();
    assert_eq!(&uids[..5], ["Crej1", "Crej2", "Crej3", "Cips", "Cips"]);
    assert!(
        uids[5].starts_with('C') && uids[5] != "Cips",
        "no row: rstscope's own uid"
    );
    assert_eq!(rows[0]["ts"], "2026-11-24T00:00:00.000150Z");
    let conn_rst = read_gz("conn_rst.log.gz");
    let enriched: Vec<serde_json::Value> = conn_rst
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(enriched.len(), 4);
    let ips = enriched.iter().find(|r| r["uid"] == "Cips").unwrap();
    assert_eq!(ips["rst_count"], 2);
    assert_eq!(ips["rst_injected"], true);
    assert_eq!(ips["rst_payload"], "220 mailgat");
    assert_eq!(ips["id.orig_h"], "192.0.2.25", "original columns unchanged");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("reset_summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["join"]["matched"], 5);
    assert_eq!(summary["join"]["unmatched"], 5);
    assert_eq!(summary["join"]["conn_rst_rows"], 4);
    assert_eq!(summary["join"]["conn_logs"][0]["malformed_lines"], 1);
}

#[test]
fn a_second_run_on_a_locked_output_directory_exits_75() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.path().join(".rstscope.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let out = rstscope(&[&td("sample.pcap")], dir.path());
    assert_eq!(out.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another rstscope run holds"));
    assert!(!dir.path().join("reset.log").exists());
    drop(lock);
    assert_eq!(
        rstscope(&["-q", &td("sample.pcap")], dir.path())
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn unwritable_output_exits_74() {
    let out = Command::new(env!("CARGO_BIN_EXE_rstscope"))
        .args(["-q", "-o", "/dev/null/logs", &td("sample.pcap")])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(74),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Data rows of every log a run with --state delivered in `dir` (`reset.<stamp>.log`).
fn delivered(dir: &std::path::Path) -> Vec<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("reset.") && n.ends_with(".log"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .flat_map(|n| rows(&std::fs::read_to_string(dir.join(n)).unwrap()))
        .collect()
}

#[test]
fn state_skips_processed_inputs_and_picks_up_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("archive");
    std::fs::create_dir_all(&arch).unwrap();
    std::fs::copy(testdata().join("sample.pcap"), arch.join("a.pcap")).unwrap();
    let state = dir.path().join("state.json");
    let run = |out: &str, extra: &[&str]| {
        let o = dir.path().join(out);
        let mut args = vec!["-q", "--state", state.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(arch.to_str().unwrap());
        (rstscope(&args, &o), o)
    };
    let (r, o1) = run("o1", &[]);
    assert_eq!(r.status.code(), Some(0));
    assert!(
        r.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let first = delivered(&o1);
    // nothing new: no log written, status 0, nothing said, one more run record
    let (r, o2) = run("o2", &[]);
    assert_eq!(r.status.code(), Some(0));
    assert!(
        r.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(delivered(&o2).is_empty());
    let names: Vec<String> = std::fs::read_dir(&o2)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(names, ["rstscope_runs.log"]);
    // a new file is picked up, the old one skipped; --finish delivers what was carried
    std::fs::copy(testdata().join("sample-vlan.pcap"), arch.join("b.pcap")).unwrap();
    let (r, o3) = run("o3", &["--finish"]);
    assert_eq!(r.status.code(), Some(0));
    let mut all = first.clone();
    all.extend(delivered(&o3));
    let (_d, one) = run_ok(&["-q", arch.to_str().unwrap()]);
    let mut one = rows(&one);
    one.sort();
    all.sort();
    assert_eq!(all, one, "the rows of the runs are the rows of one run");
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(st["files"].as_object().unwrap().len(), 2);
    assert_eq!(st["runs"], 2);
    assert!(st["carry"].is_null() || st["carry"]["connections"] == 0);
}

#[test]
fn min_age_skips_files_still_being_written_and_archive_names_use_packet_time() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("archive");
    std::fs::create_dir_all(&arch).unwrap();
    std::fs::copy(testdata().join("sample.pcap"), arch.join("fresh.pcap")).unwrap();
    let out = dir.path().join("out");
    let r = rstscope(&["--min-age", "1h", arch.to_str().unwrap()], &out);
    assert_eq!(r.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&r.stderr)
        .contains("fresh.pcap: skipped, modified less than --min-age ago"));
    let r = rstscope(
        &["-q", "--archive-names", "--gzip", arch.to_str().unwrap()],
        &out,
    );
    assert_eq!(r.status.code(), Some(0));
    assert!(out
        .join("reset.2026-11-24-00-00-00_2026-11-24-00-00-05.log.gz")
        .exists());
    assert!(out
        .join("reset_summary.2026-11-24-00-00-00_2026-11-24-00-00-05.json")
        .exists());
}

#[test]
fn html_report_is_self_contained_and_escapes_capture_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = rstscope(&["-q", &td("hostile.pcap"), &td("sample.pcap")], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let page = std::fs::read_to_string(dir.path().join("reset_report.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<svg"));
    assert!(
        !page.contains("<script"),
        "no scripts, and no payload can inject one"
    );
    assert!(!page.contains("http://") || page.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(!page.contains("src="), "no external resources");
    assert!(page.contains("220 mailgat"));
    // logs are readable by log shippers running as other users
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("reset.log"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}

/// A write that fails part-way (here: the file-size limit, `ulimit -f`: rstscope ignores
/// SIGXFSZ, so the write returns EFBIG, as a full disk returns ENOSPC) leaves no file under a
/// final name and no temporary file behind, exits 74, and the next run in the same directory
/// succeeds.
/// (`scripts/disk-full.sh` does the same on a real full filesystem and a read-only mount.)
#[test]
fn failed_write_leaves_nothing_and_exits_74() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let bin = env!("CARGO_BIN_EXE_rstscope");
    let limited = Command::new("bash")
        .arg("-c")
        .arg("ulimit -f 1 && exec \"$0\" \"$@\"")
        .args([bin, "-q", "-o", out.to_str().unwrap(), &td("sample.pcap")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&limited.stderr);
    assert_eq!(limited.status.code(), Some(74), "{stderr}");
    assert!(stderr.contains("cannot write the logs in"), "{stderr}");
    let left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".rstscope.lock" && n != "rstscope_runs.log")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // The failed run is on record (when the record itself fits under the limit).
    if let Ok(runs) = std::fs::read_to_string(out.join("rstscope_runs.log")) {
        let last: serde_json::Value = serde_json::from_str(runs.lines().last().unwrap()).unwrap();
        assert_eq!(last["exit_status"], 74);
    }
    let again = rstscope(&["-q", &td("sample.pcap")], &out);
    assert_eq!(again.status.code(), Some(0));
    let (_d, expected) = run_ok(&["-q", &td("sample.pcap")]);
    assert_eq!(
        std::fs::read_to_string(out.join("reset.log")).unwrap(),
        expected
    );
}

/// File names are attacker-controlled too: a name with a newline and terminal escapes is
/// quoted escaped in every message, so it cannot forge a line or drive the terminal.
#[test]
fn file_names_cannot_forge_lines_or_escape_to_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    std::fs::create_dir_all(&arch).unwrap();
    let evil = "x\nrstscope: error: FORGED LINE\u{1b}[2J";
    std::fs::write(arch.join(format!("{evil}.txt")), b"not a capture").unwrap();
    std::fs::copy(
        testdata().join("bad/truncated.pcap"),
        arch.join(format!("{evil}.pcap")),
    )
    .unwrap();
    let out = rstscope(&[arch.to_str().unwrap()], &dir.path().join("out"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with("rstscope: error: FORGED")),
        "{stderr}"
    );
    assert_eq!(
        stderr
            .matches("x\\x0arstscope: error: FORGED LINE\\x1b[2J")
            .count(),
        2,
        "{stderr}"
    );
}

/// A pcapng packet naming an interface no interface block described cannot be decoded: it is
/// counted as malformed for its file and reported (not dropped silently).
#[test]
fn packets_on_an_undeclared_pcapng_interface_are_reported() {
    let block = |t: u32, body: &[u8]| {
        let len = (12 + body.len()) as u32;
        let mut b = t.to_le_bytes().to_vec();
        b.extend(len.to_le_bytes());
        b.extend(body);
        b.extend(len.to_le_bytes());
        b
    };
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend([1, 0, 0, 0]);
    shb.extend([0xff; 8]);
    let mut idb = vec![1, 0, 0, 0];
    idb.extend(65535u32.to_le_bytes());
    let mut epb = 5u32.to_le_bytes().to_vec();
    epb.extend([0; 8]);
    epb.extend(60u32.to_le_bytes());
    epb.extend(60u32.to_le_bytes());
    epb.extend([0; 60]);
    let mut file = block(0x0a0d_0d0a, &shb);
    file.extend(block(1, &idb));
    file.extend(block(6, &epb));
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("iface.pcapng");
    std::fs::write(&cap, file).unwrap();
    let out = rstscope(&["-q", cap.to_str().unwrap()], &dir.path().join("out"));
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "iface.pcapng: 1 packets name a pcapng interface no interface block described"
        ),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/reset_summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["files"][0]["malformed"], 1, "{summary}");
}

/// A final name that cannot be replaced (here the report's name is taken by a directory) is
/// found before any log is renamed: exit 74 naming that file, and no new log in place.
#[test]
fn an_output_name_that_cannot_be_replaced_fails_before_any_rename() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("reset_report.html")).unwrap();
    let r = rstscope(
        &["-q", testdata().join("sample.pcap").to_str().unwrap()],
        &out,
    );
    assert_eq!(r.status.code(), Some(74));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("reset_report.html: a directory has this name"),
        "{err}"
    );
    assert!(
        !out.join("reset.log").exists(),
        "a log was renamed into place"
    );
    assert!(!out.join("reset_summary.json").exists());
    let temps: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}
