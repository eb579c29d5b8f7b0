//! The pieces of the two-pass join: the varint row stream and the interner. The join's
//! results are checked against the old join in `crate::tests::oracle`.

use proptest::prelude::*;
use rstscope_reset::ResetEvent;

use super::*;

fn row(ts: i64, uid: &str, port: u16) -> ResetEvent {
    crate::tests::rst(ts, ("10.0.0.1", port), ("10.0.0.2", 80), uid)
}

proptest! {
    /// Whatever the times (backwards, the extremes) and however connections interleave, the
    /// stream gives back each row's connection and ts.
    #[test]
    fn the_row_stream_gives_back_each_rows_connection_and_ts(
        rows in proptest::collection::vec(
            (prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), 0i64..10], 0u8..6),
            0..40,
        ),
    ) {
        let mut keys = RstKeys::new();
        let mut first_seen: Vec<u8> = Vec::new();
        let mut want = Vec::new();
        for &(ts, uid) in &rows {
            keys.push(&row(ts, &format!("C{uid}"), 40000 + u16::from(uid)));
            let conn = match first_seen.iter().position(|&u| u == uid) {
                Some(c) => c,
                None => {
                    first_seen.push(uid);
                    first_seen.len() - 1
                }
            };
            want.push((conn, ts));
        }
        let got: Vec<(usize, i64)> = decode_rows(&keys.rows).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(keys.rows(), rows.len() as u64);
    }

    #[test]
    fn varints_round_trip(values in proptest::collection::vec(any::<u64>(), 0..20)) {
        let mut bytes = Vec::new();
        for &v in &values {
            put_varint(&mut bytes, v);
        }
        let mut pos = 0;
        let back: Vec<u64> = values.iter().map(|_| get_varint(&bytes, &mut pos)).collect();
        prop_assert_eq!(back, values);
        prop_assert_eq!(pos, bytes.len());
    }
}

#[test]
fn interned_values_are_numbered_in_order_of_first_appearance() {
    let mut names: Interner<Box<str>> = Interner::default();
    assert_eq!(names.intern("b", |s| s.into()), (0, true));
    assert_eq!(names.intern("a", |s| s.into()), (1, true));
    assert_eq!(names.intern("b", |s| s.into()), (0, false));
    assert_eq!(names.find("a"), Some(1));
    assert_eq!(names.find("c"), None);
    for i in 0..1000 {
        names.intern(format!("n{i}").as_str(), |s| s.into());
    }
    assert_eq!(names.find("n999"), Some(1001));
    assert_eq!(names.len(), 1002);
}

/// Text inline or boxed is found by its str either way.
#[test]
fn texts_are_found_by_their_str_inline_or_boxed() {
    let mut texts: Interner<Text> = Interner::default();
    let long = "1:".to_string() + &"x".repeat(40);
    for s in [
        "",
        "CHhAvVGS1DHFjwGM9",
        "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
        &long,
    ] {
        let (i, new) = texts.intern(s, |s| Text::from(s));
        assert!(new);
        assert_eq!(texts.find(s), Some(i));
        assert_eq!(texts.values[i as usize].as_str(), s);
    }
    assert!(matches!(texts.values[2], Text::Inline(30, _)));
    assert!(matches!(texts.values[3], Text::Boxed(_)));
    assert_eq!(std::mem::size_of::<Text>(), 32);
}

/// A scan: one RST per connection, a few microseconds apart. The rows cost a few bytes each
/// (the rest is per connection).
#[test]
fn a_scan_costs_a_few_bytes_a_row() {
    let mut keys = RstKeys::new();
    for i in 0..10_000u32 {
        keys.push(&row(
            1_700_000_000_000_000_000 + i64::from(i) * 2_000,
            &format!("C{i}"),
            i as u16,
        ));
    }
    // (the first row's ts is a delta from 0: ten bytes)
    assert!(keys.row_bytes() <= 3 * 10_000 + 8, "{}", keys.row_bytes());
}

/// Without conn.logs nothing matches; the counts are known before pass 2.
#[test]
fn counts_are_final_before_the_second_pass() {
    let mut keys = RstKeys::new();
    keys.push(&row(1, "Ca", 1));
    keys.push(&row(2, "Cb", 2));
    let mut matches = keys.match_conn_logs(&[]);
    assert_eq!(
        (matches.report().matched, matches.report().unmatched),
        (0, 2)
    );
    let mut e = row(1, "Ca", 1);
    assert!(!matches.apply(&mut e));
    assert_eq!(e.uid, "Ca");
    assert!(matches.into_report().joined.is_empty());
}
