//! Join tests over conn.log fixtures written here: TSV and JSON, plain and gzip, with and
//! without community_id, flipped directions, three REJ rows for one 5-tuple, rows split by
//! Zeek's close delay, masked timestamps, malformed lines.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;
use crate::enrich::{write_conn_rst, OutFormat};

const S: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * S;

/// A RST event as the classifier would give it.
pub(crate) fn rst(ts: i64, orig: (&str, u16), resp: (&str, u16), own_uid: &str) -> ResetEvent {
    let seg = base_event(ts, orig, resp);
    ResetEvent {
        uid: own_uid.to_string(),
        ..seg
    }
}

fn base_event(ts: i64, orig: (&str, u16), resp: (&str, u16)) -> ResetEvent {
    let o: IpAddr = orig.0.parse().unwrap();
    let r: IpAddr = resp.0.parse().unwrap();
    ResetEvent {
        ts_ns: ts,
        uid: String::new(),
        community_id: community_id(o, orig.1, r, resp.1),
        orig_h: o,
        orig_p: orig.1,
        resp_h: r,
        resp_p: resp.1,
        is_orig: false,
        cause: Some("refused".into()),
        injected: Some(false),
        evidence: Some(vec!["ack_syn", "seq_zero"]),
        flags: 0x14,
        seq: 0,
        ack: 1,
        win: 0,
        ttl: 64,
        ip_id: Some(0),
        df: Some(true),
        payload_len: 0,
        payload: None,
        reason: None,
        sender_ttl: None,
        initial_ttl: 64,
        rst_count: Some(1),
        history: Some("Sr".into()),
        conn_state: Some("REJ".into()),
        duration_ns: Some(0),
        idle_ns: Some(0),
        orig_pkts: Some(1),
        resp_pkts: Some(0),
        source: b"x.pcap".as_slice().into(),
        frame: 1,
        sensor: None,
    }
}

/// Community ID v1 (seed 0) for TCP, computed independently of the decode crate.
fn community_id(a: IpAddr, ap: u16, b: IpAddr, bp: u16) -> String {
    // The tests only need a stable, direction-free string that the fixtures repeat.
    let (x, y) = if (a, ap) <= (b, bp) {
        ((a, ap), (b, bp))
    } else {
        ((b, bp), (a, ap))
    };
    format!("1:test-{}-{}-{}-{}", x.0, x.1, y.0, y.1)
}

#[derive(Debug)]
struct ConnRow {
    ts: Option<i64>,
    uid: &'static str,
    orig: (&'static str, u16),
    resp: (&'static str, u16),
    duration: Option<i64>,
    conn_state: &'static str,
    history: &'static str,
}

fn secs(ns: i64) -> String {
    rstscope_zeeklog::format_seconds(ns)
}

fn tsv(rows: &[ConnRow], with_cid: bool) -> String {
    let mut out = String::from(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2026-11-24-00-00-00\n",
    );
    let cid = if with_cid { "\tcommunity_id" } else { "" };
    let cidt = if with_cid { "\tstring" } else { "" };
    out += &format!("#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\tconn_state\thistory\ttunnel_parents{cid}\n");
    out += &format!("#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tstring\tstring\tset[string]{cidt}\n");
    for r in rows {
        let ts = r.ts.map(secs).unwrap_or_else(|| "XXXXXXXXXX.XXXXXX".into());
        let dur = r.duration.map(secs).unwrap_or_else(|| "-".into());
        let c = if with_cid {
            format!(
                "\t{}",
                community_id(
                    r.orig.0.parse().unwrap(),
                    r.orig.1,
                    r.resp.0.parse().unwrap(),
                    r.resp.1
                )
            )
        } else {
            String::new()
        };
        out += &format!(
            "{ts}\t{}\t{}\t{}\t{}\t{}\ttcp\t-\t{dur}\t{}\t{}\t(empty){c}\n",
            r.uid, r.orig.0, r.orig.1, r.resp.0, r.resp.1, r.conn_state, r.history
        );
    }
    out += "#close\t2026-11-24-01-00-00\n";
    out
}

fn json(rows: &[ConnRow], with_cid: bool) -> String {
    let mut out = String::new();
    for r in rows {
        let mut m = serde_json::Map::new();
        if let Some(ts) = r.ts {
            m.insert("ts".into(), crate::enrich::json_seconds(ts));
        }
        m.insert("uid".into(), r.uid.into());
        m.insert("id.orig_h".into(), r.orig.0.into());
        m.insert("id.orig_p".into(), r.orig.1.into());
        m.insert("id.resp_h".into(), r.resp.0.into());
        m.insert("id.resp_p".into(), r.resp.1.into());
        m.insert("proto".into(), "tcp".into());
        if let Some(d) = r.duration {
            m.insert("duration".into(), crate::enrich::json_seconds(d));
        }
        m.insert("conn_state".into(), r.conn_state.into());
        m.insert("history".into(), r.history.into());
        if with_cid {
            m.insert(
                "community_id".into(),
                community_id(
                    r.orig.0.parse().unwrap(),
                    r.orig.1,
                    r.resp.0.parse().unwrap(),
                    r.resp.1,
                )
                .into(),
            );
        }
        out += &serde_json::Value::Object(m).to_string();
        out.push('\n');
    }
    out
}

fn gz(s: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(s.as_bytes()).unwrap();
    e.finish().unwrap()
}

const C: (&str, u16) = ("10.0.0.1", 40000);
const SV: (&str, u16) = ("10.0.0.2", 23);

/// Rows: three REJ rows for one 5-tuple (retries 1 s apart), an established connection and
/// the partial one Zeek split off 10 s after its RST, and a connection Zeek wrote flipped.
fn fixture_rows() -> Vec<ConnRow> {
    vec![
        ConnRow {
            ts: Some(T0),
            uid: "CREJ1",
            orig: C,
            resp: SV,
            duration: Some(150_000),
            conn_state: "REJ",
            history: "Sr",
        },
        ConnRow {
            ts: Some(T0 + S),
            uid: "CREJ2",
            orig: C,
            resp: SV,
            duration: Some(140_000),
            conn_state: "REJ",
            history: "Sr",
        },
        ConnRow {
            ts: Some(T0 + 2 * S),
            uid: "CREJ3",
            orig: C,
            resp: SV,
            duration: Some(160_000),
            conn_state: "REJ",
            history: "Sr",
        },
        ConnRow {
            ts: Some(T0 + 100 * S),
            uid: "CMAIN",
            orig: ("10.0.0.1", 40001),
            resp: ("10.0.0.3", 443),
            duration: Some(3 * S),
            conn_state: "RSTO",
            history: "ShADaR",
        },
        ConnRow {
            ts: Some(T0 + 113 * S),
            uid: "CLATE",
            orig: ("10.0.0.1", 40001),
            resp: ("10.0.0.3", 443),
            duration: None,
            conn_state: "OTH",
            history: "R",
        },
        ConnRow {
            // Zeek has the server as originator here (the flip of a missed SYN).
            ts: Some(T0 + 200 * S),
            uid: "CFLIP",
            orig: ("10.0.0.9", 80),
            resp: ("10.0.0.1", 40002),
            duration: Some(S),
            conn_state: "RSTR",
            history: "^dAr",
        },
    ]
}

fn fixture_events() -> Vec<ResetEvent> {
    vec![
        rst(T0 + 150_000, C, SV, "Cown1"),
        rst(T0 + S + 140_000, C, SV, "Cown2"),
        rst(T0 + 2 * S + 160_000, C, SV, "Cown3"),
        rst(
            T0 + 103 * S,
            ("10.0.0.1", 40001),
            ("10.0.0.3", 443),
            "Cown4",
        ),
        rst(
            T0 + 113 * S,
            ("10.0.0.1", 40001),
            ("10.0.0.3", 443),
            "Cown5",
        ),
        rst(T0 + 201 * S, ("10.0.0.1", 40002), ("10.0.0.9", 80), "Cown6"),
        // No row for this one.
        rst(T0 + 300 * S, ("10.0.0.7", 1), ("10.0.0.8", 2), "Cown7"),
    ]
}

const WANT: [&str; 7] = [
    "CREJ1", "CREJ2", "CREJ3", "CMAIN", "CLATE", "CFLIP", "Cown7",
];

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn each_rst_gets_its_rows_uid_in_every_log_flavour() {
    let dir = tempfile::tempdir().unwrap();
    let rows = fixture_rows();
    let flavours: Vec<(&str, Vec<u8>)> = vec![
        ("conn.log", tsv(&rows, false).into_bytes()),
        ("conn-cid.log", tsv(&rows, true).into_bytes()),
        ("conn.log.gz", gz(&tsv(&rows, false))),
        ("conn.json", json(&rows, false).into_bytes()),
        ("conn-cid.json.gz", gz(&json(&rows, true))),
    ];
    for (name, bytes) in flavours {
        let p = write(dir.path(), name, &bytes);
        let mut events = fixture_events();
        let report = join(&mut events, &[p]);
        let got: Vec<&str> = events.iter().map(|e| e.uid.as_str()).collect();
        assert_eq!(got, WANT, "{name}");
        assert_eq!((report.matched, report.unmatched), (6, 1), "{name}");
        assert_eq!(report.logs[0].rows, 6, "{name}");
        assert_eq!(report.logs[0].malformed, 0, "{name}");
    }
}

#[test]
fn rotated_logs_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let rows = fixture_rows();
    let (a, b) = rows.split_at(3);
    std::fs::create_dir_all(dir.path().join("2026-11-24")).unwrap();
    write(
        &dir.path().join("2026-11-24"),
        "conn.00:00:00-01:00:00.log.gz",
        &gz(&tsv(a, false)),
    );
    write(
        &dir.path().join("2026-11-24"),
        "conn.01:00:00-02:00:00.log.gz",
        &gz(&tsv(b, false)),
    );
    write(
        &dir.path().join("2026-11-24"),
        "dns.00:00:00-01:00:00.log.gz",
        b"ignored",
    );
    let crate::ConnLogs {
        logs,
        errors: problems,
        ..
    } = discover_conn_logs(&[dir.path().to_path_buf()]);
    assert!(problems.is_empty());
    assert_eq!(logs.len(), 2);
    let mut events = fixture_events();
    join(&mut events, &logs);
    let got: Vec<&str> = events.iter().map(|e| e.uid.as_str()).collect();
    assert_eq!(got, WANT);
}

#[test]
fn masked_timestamps_fall_back_to_order_and_history() {
    // Zeek's test logs mask ts: a 5-tuple with two rows (an OTH "R" and, after the close
    // delay, a RSTRH "^r") is matched by history.
    let dir = tempfile::tempdir().unwrap();
    let rows = vec![
        ConnRow {
            ts: None,
            uid: "CFIRST",
            orig: ("192.168.2.16", 1576),
            resp: ("75.126.130.163", 80),
            duration: None,
            conn_state: "SHR",
            history: "^fA",
        },
        ConnRow {
            ts: None,
            uid: "COTH",
            orig: ("192.168.2.16", 1576),
            resp: ("75.126.130.163", 80),
            duration: None,
            conn_state: "OTH",
            history: "R",
        },
        ConnRow {
            ts: None,
            uid: "CRSTRH",
            orig: ("192.168.2.16", 1576),
            resp: ("75.126.130.163", 80),
            duration: None,
            conn_state: "RSTRH",
            history: "^r",
        },
    ];
    let p = write(dir.path(), "conn.log", tsv(&rows, false).as_bytes());
    let mut a = rst(T0, ("192.168.2.16", 1576), ("75.126.130.163", 80), "Cours1");
    a.history = Some("R".into());
    let mut b = rst(
        T0 + 18 * S,
        ("192.168.2.16", 1576),
        ("75.126.130.163", 80),
        "Cours2",
    );
    b.history = Some("^r".into());
    let mut events = vec![a, b];
    join(&mut events, &[p]);
    assert_eq!(events[0].uid, "COTH");
    assert_eq!(events[1].uid, "CRSTRH");
}

#[test]
fn malformed_lines_are_counted_with_line_numbers_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = tsv(&fixture_rows()[..1], false);
    text.insert_str(
        text.find("#close").unwrap(),
        "only\tthree\tfields\n{\"not\": \"tsv\"\n",
    );
    let p = write(dir.path(), "conn.log", text.as_bytes());
    let mut events = fixture_events();
    let report = join(&mut events, &[p]);
    assert_eq!(events[0].uid, "CREJ1");
    let l = &report.logs[0];
    assert_eq!(l.malformed, 2);
    assert_eq!(l.first_malformed[0].line, 10);
    assert!(
        l.first_malformed[0].reason.contains("3 fields"),
        "{:?}",
        l.first_malformed
    );
    assert!(l.first_malformed[1].reason.contains("invalid JSON"));
    assert!(l.first_malformed[0]
        .to_string()
        .contains("conn.log: line 10: "));
}

#[test]
fn custom_separator_and_escapes_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let text = "#separator \\x7c\n#set_separator|,\n#empty_field|(empty)\n#unset_field|-\n#fields|ts|uid|id.orig_h|id.orig_p|id.resp_h|id.resp_p|history\n#types|time|string|addr|port|addr|port|string\n"
        .to_string()
        + &format!("{}|C\\x7cpipe|10.0.0.1|40000|10.0.0.2|23|Sr\n", secs(T0));
    let p = write(dir.path(), "conn.log", text.as_bytes());
    let mut events = fixture_events();
    join(&mut events, &[p]);
    assert_eq!(events[0].uid, "C|pipe");
}

#[test]
fn enriched_rows_keep_their_columns_and_append_the_rsts() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "conn.log",
        tsv(&fixture_rows(), true).as_bytes(),
    );
    let mut events = fixture_events();
    events[3].payload = Some(b"220 mailgat\t\n".to_vec());
    events[3].cause = Some("abort".into());
    events[3].injected = Some(true);
    events[3].evidence = Some(vec!["payload", "ttl_mismatch", "win_nonzero"]);
    let report = join(&mut events, std::slice::from_ref(&p));
    let mut out = Vec::new();
    let n = write_conn_rst(
        &mut out,
        OutFormat::Tsv,
        std::slice::from_ref(&p),
        &report.joined,
        T0,
        T0,
    )
    .unwrap();
    assert_eq!(n, 6);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[6].ends_with(
        "\trst_count\trst_causes\trst_injected\trst_evidence\trst_first_ts\trst_payload"
    ));
    assert!(lines[7].ends_with("\tcount\tset[string]\tbool\tset[string]\ttime\tstring"));
    assert!(lines[7].starts_with("#types\ttime\tstring\taddr\tport"));
    let main = lines.iter().find(|l| l.contains("\tCMAIN\t")).unwrap();
    // the original columns unchanged, then the RST columns
    let original = tsv(&fixture_rows(), true);
    let orig_line = original.lines().find(|l| l.contains("\tCMAIN\t")).unwrap();
    assert!(main.starts_with(orig_line), "{main}\n{orig_line}");
    assert!(main.ends_with(&format!(
        "\t1\tabort\tT\tpayload,ttl_mismatch,win_nonzero\t{}\t220 mailgat\\x09\\x0a",
        secs(T0 + 103 * S)
    )));
    // JSON: typed values, sets as arrays, appended keys
    let mut out = Vec::new();
    write_conn_rst(
        &mut out,
        OutFormat::Json { iso8601: false },
        std::slice::from_ref(&p),
        &report.joined,
        T0,
        T0,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().nth(3).unwrap()).unwrap();
    assert_eq!(v["uid"], "CMAIN");
    assert_eq!(v["id.orig_p"], 40001);
    assert_eq!(v["duration"].as_f64(), Some(3.0));
    assert_eq!(v["tunnel_parents"], serde_json::json!([]));
    assert_eq!(v["rst_count"], 1);
    assert_eq!(v["rst_injected"], true);
    assert_eq!(v["rst_causes"], serde_json::json!(["abort"]));
    assert_eq!(v["rst_payload"], "220 mailgat\t\n");
    assert!(v.get("service").is_none(), "unset is omitted");
    // ISO 8601 timestamps
    let mut out = Vec::new();
    write_conn_rst(
        &mut out,
        OutFormat::Json { iso8601: true },
        std::slice::from_ref(&p),
        &report.joined,
        T0,
        T0,
    )
    .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8(out).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(v["ts"], "2023-11-14T22:13:20.000000Z");
    // CSV
    let mut out = Vec::new();
    write_conn_rst(&mut out, OutFormat::Csv, &[p], &report.joined, T0, T0).unwrap();
    let mut r = csv::Reader::from_reader(out.as_slice());
    assert_eq!(r.headers().unwrap().len(), 19);
    assert_eq!(r.records().count(), 6);
}

#[test]
fn times_parse_exactly() {
    assert_eq!(
        parse_time("1071580904.891921"),
        Some(1_071_580_904_891_921_000)
    );
    assert_eq!(parse_time("0.000001"), Some(1000));
    // JSON writers print small and large numbers with an exponent, with or without a point
    assert_eq!(parse_time("1e-6"), Some(1000));
    assert_eq!(parse_time("2.5e-5"), Some(25_000));
    assert_eq!(parse_time("1E3"), Some(1_000_000_000_000));
    assert_eq!(parse_time("e5"), None);
    assert_eq!(parse_time("Infinity"), None);
    assert_eq!(parse_time("-315619200.0"), Some(-315_619_200_000_000_000));
    assert_eq!(parse_time("XXXXXXXXXX.XXXXXX"), None);
    assert_eq!(
        parse_time("2008-07-09T16:13:30.005432Z"),
        Some(1_215_620_010_005_432_000)
    );
    assert_eq!(parse_time("1.5e9"), Some(1_500_000_000_000_000_000));
}

#[test]
fn our_own_conn_rst_logs_are_not_conn_logs() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "conn.log",
        "conn.2026-11-24-00-00-00.log.gz",
        "conn_rst.log",
        "conn_rst.2026-11-24-00-00-00_2026-11-24-23-59-59.log.gz",
    ] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    let crate::ConnLogs {
        logs,
        errors: problems,
        ..
    } = crate::discover_conn_logs(&[dir.path().to_path_buf()]);
    assert!(problems.is_empty());
    let names: Vec<String> = logs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["conn.2026-11-24-00-00-00.log.gz", "conn.log"]);
}

/// A conn.log line longer than 1 MiB (a file without line breaks, `/dev/zero`) is counted as
/// malformed and skipped without being held; a uid far longer than Zeek's is not copied into
/// our rows. The rows around them join as usual.
#[test]
fn overlong_lines_and_uids_are_malformed_not_held_or_copied() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n",
    );
    text.push_str(&"x".repeat(3 * crate::read::MAX_LINE));
    text.push('\n');
    let row = |uid: &str, port: u16| {
        format!(
            "{}.000000\t{uid}\t10.0.0.1\t{port}\t10.0.0.2\t80\ttcp\n",
            T0 / S
        )
    };
    text.push_str(&row(&"C".repeat(crate::MAX_UID + 1), 40001));
    text.push_str(&row("CGOOD", 40002));
    let p = write(dir.path(), "conn.log", text.as_bytes());
    let mut events = vec![
        rst(T0, ("10.0.0.1", 40001), ("10.0.0.2", 80), "Cown1"),
        rst(T0, ("10.0.0.1", 40002), ("10.0.0.2", 80), "Cown2"),
    ];
    let report = join(&mut events, &[p]);
    assert_eq!(events[0].uid, "Cown1", "the long uid was not copied");
    assert_eq!(events[1].uid, "CGOOD");
    let log = &report.logs[0];
    assert_eq!(log.malformed, 2);
    assert!(
        log.first_malformed[0].reason.contains("longer than"),
        "{:?}",
        log.first_malformed
    );
    assert_eq!(log.first_malformed[0].line, 3);
    assert!(
        log.first_malformed[1].reason.contains("uid longer"),
        "{:?}",
        log.first_malformed
    );
}

/// An endless file without line breaks (`--conn-log /dev/zero`) ends with an error after a
/// bounded read, never holding it and never hanging.
#[test]
fn an_endless_line_is_an_error_after_a_bounded_read() {
    let stats = crate::read_conn_log(Path::new("/dev/zero"), |_, _| {});
    let e = stats.error.expect("an error");
    assert!(e.contains("no line break"), "{e}");
    assert_eq!(stats.rows, 0);
}

/// Rows whose endpoints are no address or port, and a JSON line that is not an object, are
/// counted as malformed with what is wrong, not left unjoined without a word.
#[test]
fn invalid_endpoints_and_json_arrays_are_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n\
         {t}.000000\tCA\t999.1.1.1\t40001\t10.0.0.2\t80\ttcp\n\
         {t}.000000\tCB\t10.0.0.1\t99999999\t10.0.0.2\t80\ttcp\n\
         {t}.000000\tCC\t10.0.0.1\t40003\t10.0.0.2\t80\ttcp\n",
        t = T0 / S
    );
    let p = write(dir.path(), "conn.log", text.as_bytes());
    let q = write(dir.path(), "conn.json", b"[1,2]\n");
    let mut events = vec![rst(T0, ("10.0.0.1", 40003), ("10.0.0.2", 80), "Cown")];
    let report = join(&mut events, &[p, q]);
    assert_eq!(events[0].uid, "CC");
    let tsv = &report.logs[0];
    assert_eq!(tsv.malformed, 2, "{:?}", tsv.first_malformed);
    assert!(tsv.first_malformed[0]
        .reason
        .contains("id.orig_h \"999.1.1.1\""));
    assert!(tsv.first_malformed[1]
        .reason
        .contains("id.orig_p \"99999999\""));
    let json = &report.logs[1];
    assert_eq!(json.malformed, 1);
    assert!(
        json.first_malformed[0].reason.contains("not an object"),
        "{:?}",
        json.first_malformed
    );
}

#[test]
fn the_same_conn_log_given_twice_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "conn.log", b"");
    let found = crate::discover_conn_logs(&[p.clone(), dir.path().to_path_buf(), p]);
    assert_eq!(found.logs.len(), 1);
    assert_eq!(found.notices.len(), 2);
    assert!(found.errors.is_empty());
}

/// JSON strings back to their bytes: what Zeek's JSON policy wrote as `\xNN` (bytes that are
/// not UTF-8, control bytes) is read back to the bytes, so writing them again gives the text.
#[test]
fn zeek_json_strings_read_back_to_their_bytes() {
    use crate::enrich::{zeek_json_string, zeek_json_unescape};
    for bytes in [
        &b"bad\xff\xfe.pcap"[..],
        b"plain.pcap",
        "\u{e9}t\u{e9}/\u{1f600}".as_bytes(),
        b"a\x01\n\x7f\xc3(",
        b"",
        b"\\",
        b"trailing\\x",
        b"\\xzz",
    ] {
        let text = zeek_json_string(bytes);
        assert_eq!(zeek_json_unescape(&text), bytes, "{text}");
    }
    // Text that itself reads `\xNN` but would not be written so stays text.
    for text in ["a\\x41", "\\x5c", "\\xc3\\xa9", "mixed\\x41\\xff"] {
        assert_eq!(zeek_json_unescape(text), text.as_bytes(), "{text}");
        assert_eq!(zeek_json_string(&zeek_json_unescape(text)), text);
    }
}

mod before;
mod oracle;
