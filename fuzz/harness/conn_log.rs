//! Fuzz harness for the conn.log readers, the join and conn_rst.log (`rstscope_join`).
//!
//! Shared by the cargo-fuzz target `conn_log` and the regression test
//! `crates/join/tests/fuzz_regressions.rs` (both include this file with `#[path]`).
//!
//! The input is written to `DIR/conn.log` (TSV or JSON lines; gzip when it starts with the gzip
//! magic), read back with `read_conn_log` (every row's usual fields are asked for), joined with
//! a few fixed reset events, and the joined rows are written as conn_rst.log in every format.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rstscope_join::enrich::{write_conn_rst, OutFormat};
use rstscope_join::{join, parse_time, read_conn_log};
use rstscope_reset::ResetEvent;

/// The fields asked of every row.
pub const FIELDS: [&str; 10] = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "duration",
    "history",
    "community_id",
    "proto",
];

fn event(
    ts_ns: i64,
    uid: &str,
    cid: &str,
    orig: (IpAddr, u16),
    resp: (IpAddr, u16),
    frame: u64,
) -> ResetEvent {
    ResetEvent {
        ts_ns,
        uid: uid.to_string(),
        community_id: cid.to_string(),
        orig_h: orig.0,
        orig_p: orig.1,
        resp_h: resp.0,
        resp_p: resp.1,
        is_orig: false,
        cause: Some("refused".into()),
        injected: Some(frame.is_multiple_of(2)),
        evidence: Some(vec!["seq_zero", "win_nonzero"]),
        flags: 0x014,
        seq: 0,
        ack: 1,
        win: 0,
        ttl: 64,
        ip_id: Some(0),
        df: Some(true),
        payload_len: 3,
        payload: Some(b"\t#\n".to_vec()),
        reason: None,
        sender_ttl: Some(64),
        initial_ttl: 64,
        rst_count: Some(1),
        history: Some("ShR".to_string()),
        conn_state: Some("REJ".into()),
        duration_ns: Some(1_000),
        idle_ns: Some(1_000),
        orig_pkts: Some(1),
        resp_pkts: Some(0),
        source: b"fuzz.pcap".as_slice().into(),
        frame,
        sensor: None,
    }
}

/// Reset events the join looks for: IPv4 and IPv6 connections, twice on one connection (a
/// retried refused SYN), one long after, and one with a masked-ts-style match only.
pub fn events() -> Vec<ResetEvent> {
    let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let c = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    let d = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
    let lo = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    vec![
        event(
            1_300_000_000_000_000_000,
            "CAAAAAAAAAAAAAAAAA",
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            (a, 40000),
            (b, 80),
            1,
        ),
        event(
            1_300_000_001_000_000_000,
            "CAAAAAAAAAAAAAAAAA",
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            (a, 40000),
            (b, 80),
            2,
        ),
        event(
            1_300_000_100_000_000_000,
            "CBBBBBBBBBBBBBBBBB",
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
            (c, 443),
            (d, 55555),
            3,
        ),
        event(
            1_300_000_200_000_000_000,
            "CCCCCCCCCCCCCCCCCC",
            "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            (lo, 40896),
            (lo, 22),
            4,
        ),
    ]
}

/// Target `conn_log`. `dir` is a scratch directory the harness may write in.
pub fn fuzz_conn_log(data: &[u8], dir: &Path) {
    let path: PathBuf = dir.join("conn.log");
    std::fs::write(&path, data).expect("write the conn.log");

    // The reader on its own: every row, every usual field.
    let mut rows = 0u64;
    let mut last_line = 0u64;
    let stats = read_conn_log(&path, |row, line| {
        rows += 1;
        assert!(line > last_line, "line numbers must increase");
        last_line = line;
        for f in FIELDS {
            if let Some(v) = row.get(f) {
                if f == "ts" || f == "duration" {
                    let _ = parse_time(&v);
                }
            }
        }
        let _ = row.get("");
        let _ = row.get("no such field");
    });
    assert_eq!(stats.rows, rows);
    for m in &stats.malformed {
        assert!(m.line >= 1);
        let _ = m.to_string();
    }

    // The join, and conn_rst.log in every format.
    let mut evs = events();
    let logs = vec![path.clone(), path];
    let report = join(&mut evs, &logs);
    assert_eq!(report.matched + report.unmatched, evs.len() as u64);
    let joined_rsts: u64 = report.joined.values().map(|a| a.count).sum();
    assert_eq!(joined_rsts, report.matched);
    for e in &evs {
        assert!(!e.uid.is_empty());
    }
    for format in [
        OutFormat::Tsv,
        OutFormat::Json { iso8601: false },
        OutFormat::Json { iso8601: true },
        OutFormat::Csv,
    ] {
        let mut out = Vec::new();
        let n = write_conn_rst(&mut out, format, &logs, &report.joined, 0, i64::MAX)
            .expect("writing to memory cannot fail");
        check_output(&out, format, n);
    }
}

/// Whatever the input, conn_rst.log has one line per row, and no data line can pass for a
/// header line or be split.
fn check_output(out: &[u8], format: OutFormat, rows: u64) {
    let text = std::str::from_utf8(out).expect("conn_rst output is UTF-8");
    match format {
        OutFormat::Tsv => {
            let lines: Vec<&str> = text.lines().collect();
            let fields = lines
                .iter()
                .find(|l| l.starts_with("#fields\t"))
                .expect("a #fields line");
            let columns = fields.split('\t').count() - 1;
            let types = lines
                .iter()
                .find(|l| l.starts_with("#types\t"))
                .expect("a #types line");
            assert_eq!(types.split('\t').count() - 1, columns, "#types vs #fields");
            let data: Vec<&&str> = lines.iter().filter(|l| !l.starts_with('#')).collect();
            assert_eq!(data.len() as u64, rows, "data lines vs rows written");
            for l in data {
                assert_eq!(
                    l.split('\t').count(),
                    columns,
                    "a data line has the wrong number of cells: {l:?}"
                );
                assert!(!l.contains('\r'));
            }
            let meta = lines.iter().filter(|l| l.starts_with('#')).count();
            assert_eq!(meta, 9, "header and #close lines");
        }
        OutFormat::Json { .. } => {
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len() as u64, rows);
            for l in lines {
                let v: serde_json::Value = match serde_json::from_str(l) {
                    Ok(v) => v,
                    Err(e) => panic!("invalid JSON line {l:?}: {e}"),
                };
                assert!(v.is_object());
            }
        }
        OutFormat::Csv => {
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(out);
            let records: Vec<csv::StringRecord> = r
                .records()
                .collect::<Result<_, _>>()
                .expect("conn_rst.csv parses as CSV");
            assert_eq!(records.len() as u64, rows + 1, "header + rows");
            let width = records[0].len();
            for rec in &records {
                assert_eq!(rec.len(), width, "a CSV row has the wrong number of cells");
                for cell in rec {
                    assert!(
                        !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                        "CSV cell {cell:?} is not neutralised"
                    );
                }
            }
        }
    }
}
