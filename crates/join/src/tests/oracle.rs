//! The two-pass join ([`crate::RstKeys`], [`crate::Matches`]) against the join as it was
//! before (kept here verbatim as `join_before`, holding every row): the same uids, counts and
//! aggregates for random rows and small conn.logs.

use std::path::PathBuf;

use proptest::prelude::*;

use super::before::join_before;
use super::{gz, json, rst, tsv, write, ConnRow, S, T0};
use crate::JoinReport;
use rstscope_reset::ResetEvent;

const IPS: [&str; 2] = ["10.0.0.1", "2001:db8::1"];
const PORTS: [u16; 2] = [80, 40000];
const OWN_UIDS: [&str; 4] = ["Ca", "Cb", "Cc", "Cd"];
const CONN_UIDS: [&str; 6] = ["CA", "CB", "CC", "CD", "CE", ""];
const HISTORIES: [&str; 6] = ["Sr", "R", "^r", "ShADaR", "ShA", "ShADadFf"];
const STATES: [&str; 4] = ["REJ", "OTH", "RSTO", "SF"];
/// Offsets that put times on, just inside and just outside the windows' edges.
const JITTER: [i64; 5] = [0, 999, 1_000, 1_001, 150_000];

fn endpoint() -> impl Strategy<Value = (&'static str, u16)> {
    (0..IPS.len(), 0..PORTS.len()).prop_map(|(i, p)| (IPS[i], PORTS[p]))
}

/// Times on a half-second grid over 8 s, with jitter: windows (duration + 5 s) overlap, and
/// rows share a start.
fn time() -> impl Strategy<Value = i64> {
    (0i64..16, 0..JITTER.len()).prop_map(|(k, j)| T0 + k * S / 2 + JITTER[j])
}

fn event() -> impl Strategy<Value = ResetEvent> {
    (
        time(),
        endpoint(),
        endpoint(),
        0..OWN_UIDS.len(),
        0u8..4,
        proptest::option::of(0..HISTORIES.len()),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..3)),
        any::<bool>(),
        0u8..3,
    )
        .prop_map(|(ts, o, r, uid, cid, history, payload, injected, cause)| {
            let mut e = rst(ts, o, r, OWN_UIDS[uid]);
            // Mostly the endpoints' Community ID; sometimes one no conn.log has, or none.
            match cid {
                0 => e.community_id = "1:elsewhere".into(),
                1 => e.community_id.clear(),
                _ => {}
            }
            e.history = history.map(|h| HISTORIES[h].to_string());
            e.payload = payload;
            e.injected = Some(injected);
            e.cause = [None, Some("refused".into()), Some("abort".into())][cause as usize].clone();
            e.evidence = (cause == 2).then(|| vec!["payload"]);
            e
        })
}

fn conn_row() -> impl Strategy<Value = ConnRow> {
    (
        proptest::option::of(time()),
        0..CONN_UIDS.len(),
        endpoint(),
        endpoint(),
        proptest::option::of(prop_oneof![
            Just(0i64),
            Just(150_000),
            Just(3 * S),
            Just(-S)
        ]),
        0..STATES.len(),
        0..HISTORIES.len(),
    )
        .prop_map(|(ts, uid, orig, resp, duration, state, history)| ConnRow {
            ts,
            uid: CONN_UIDS[uid],
            orig,
            resp,
            duration,
            conn_state: STATES[state],
            history: HISTORIES[history],
        })
}

/// How a conn.log is written: TSV or JSON, plain or gzip, with or without community_id.
fn flavour() -> impl Strategy<Value = (u8, bool)> {
    (0u8..4, any::<bool>())
}

fn write_logs(dir: &std::path::Path, logs: &[(Vec<ConnRow>, (u8, bool))]) -> Vec<PathBuf> {
    logs.iter()
        .enumerate()
        .map(|(i, (rows, (format, with_cid)))| {
            let bytes = match format {
                0 => tsv(rows, *with_cid).into_bytes(),
                1 => gz(&tsv(rows, *with_cid)),
                2 => json(rows, *with_cid).into_bytes(),
                _ => gz(&json(rows, *with_cid)),
            };
            write(dir, &format!("conn-{i}.log"), &bytes)
        })
        .collect()
}

fn same_reports(a: &JoinReport, b: &JoinReport) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.matched, b.matched);
    prop_assert_eq!(a.unmatched, b.unmatched);
    prop_assert_eq!(a.candidates, b.candidates);
    prop_assert_eq!(&a.joined, &b.joined);
    prop_assert_eq!(a.logs.len(), b.logs.len());
    for (x, y) in a.logs.iter().zip(&b.logs) {
        prop_assert_eq!(&x.path, &y.path);
        prop_assert_eq!(x.rows, y.rows);
        prop_assert_eq!(x.malformed, y.malformed);
        prop_assert_eq!(&x.first_malformed, &y.first_malformed);
        prop_assert_eq!(&x.error, &y.error);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Random rows (in log order, and in any order) and up to three small conn.logs: the
    /// two-pass join gives every row the uid the old one gave, with the same report.
    #[test]
    fn two_passes_join_as_the_whole_rows_did(
        mut events in proptest::collection::vec(event(), 0..14),
        logs in proptest::collection::vec(
            (proptest::collection::vec(conn_row(), 0..10), flavour()),
            0..3,
        ),
        sort in any::<bool>(),
    ) {
        if sort {
            events.sort_by(|a, b| a.log_order(b));
        }
        let dir = tempfile::tempdir().unwrap();
        let paths = write_logs(dir.path(), &logs);
        let mut before = events.clone();
        let want = join_before(&mut before, &paths);
        let mut after = events;
        let got = crate::join(&mut after, &paths);
        prop_assert_eq!(&after, &before);
        same_reports(&got, &want)?;
    }
}

/// Every conn.log row has the endpoints of some RST, several untimed rows compete for
/// connections of one 5-tuple: the fallback order over connections is the old one.
#[test]
fn untimed_rows_go_to_connections_in_the_old_order() {
    let dir = tempfile::tempdir().unwrap();
    let ends = (("10.0.0.1", 40000), ("10.0.0.2", 80));
    let rows: Vec<ConnRow> = ["R", "ShADaR", "Sr", "^r"]
        .iter()
        .zip(["CA", "CB", "CC", "CD"])
        .map(|(h, uid)| ConnRow {
            ts: None,
            uid,
            orig: ends.0,
            resp: ends.1,
            duration: None,
            conn_state: "OTH",
            history: h,
        })
        .collect();
    let paths = vec![write(dir.path(), "conn.log", tsv(&rows, false).as_bytes())];
    let mut events: Vec<ResetEvent> = (0..6)
        .map(|i| {
            let mut e = rst(T0 + i * S, ends.0, ends.1, OWN_UIDS[i as usize % 3]);
            e.history = Some(["ShA", "S", "^"][i as usize % 3].into());
            e
        })
        .collect();
    let mut before = events.clone();
    let want = join_before(&mut before, &paths);
    let got = crate::join(&mut events, &paths);
    assert_eq!(events, before);
    assert_eq!((got.matched, got.unmatched), (want.matched, want.unmatched));
    assert_eq!(got.joined, want.joined);
}

/// Two rows of one 5-tuple starting together: the first in the log wins, as before.
#[test]
fn of_rows_starting_together_the_first_wins() {
    let dir = tempfile::tempdir().unwrap();
    let ends = (("10.0.0.1", 40000), ("10.0.0.2", 80));
    let rows: Vec<ConnRow> = ["CA", "CB"]
        .into_iter()
        .map(|uid| ConnRow {
            ts: Some(T0),
            uid,
            orig: ends.0,
            resp: ends.1,
            duration: Some(S),
            conn_state: "RSTO",
            history: "ShR",
        })
        .collect();
    let paths = vec![write(dir.path(), "conn.log", tsv(&rows, true).as_bytes())];
    let mut events = vec![rst(T0 + S, ends.0, ends.1, "Ca")];
    let mut before = events.clone();
    join_before(&mut before, &paths);
    crate::join(&mut events, &paths);
    assert_eq!(before[0].uid, "CA");
    assert_eq!(events, before);
}
