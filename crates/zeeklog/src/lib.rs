//! Zeek log formats. This crate knows Zeek's types, how Zeek renders each value, how it escapes
//! strings, and the ASCII (TSV) writer's header and footer lines, so that our logs read like the
//! ones Zeek writes (`zeek-cut`, `parsezeeklogs` and SIEM add-ons take them as they are).

mod escape;
mod num;
mod tsv;

pub use escape::{escape_field, escape_field_into, escape_set_element, escape_set_element_into};
pub use tsv::{
    header_lines, render as render_value, render_into as render_value_into, render_row, TsvWriter,
};

use std::net::IpAddr;

/// Zeek types used in our logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeekType {
    Time,
    Interval,
    String,
    Addr,
    Port,
    Count,
    Bool,
    Enum,
    SetString,
}

impl ZeekType {
    /// The name in a `#types` line.
    pub fn name(self) -> &'static str {
        match self {
            ZeekType::Time => "time",
            ZeekType::Interval => "interval",
            ZeekType::String => "string",
            ZeekType::Addr => "addr",
            ZeekType::Port => "port",
            ZeekType::Count => "count",
            ZeekType::Bool => "bool",
            ZeekType::Enum => "enum",
            ZeekType::SetString => "set[string]",
        }
    }
}

/// A log column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub ty: ZeekType,
}

/// One value of a row. Strings are raw bytes (captured payloads are not text); writers escape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Unset,
    /// Nanoseconds since the Unix epoch.
    Time(i64),
    /// Nanoseconds.
    Interval(i64),
    Str(&'a [u8]),
    Addr(IpAddr),
    Port(u16),
    Count(u64),
    Bool(bool),
    Set(Vec<&'a str>),
}

/// Render nanoseconds as seconds with exactly 6 decimals, rounded to the nearest microsecond
/// (Zeek writes `time` and `interval` as `%.6f`).
pub fn format_seconds(ns: i64) -> String {
    let mut out = Vec::with_capacity(24);
    format_seconds_into(ns, &mut out);
    escape::into_string(out)
}

/// [`format_seconds`], appended to `out`.
pub fn format_seconds_into(ns: i64, out: &mut Vec<u8>) {
    let us = ns.div_euclid(1000) + i64::from(ns.rem_euclid(1000) >= 500);
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    if secs < 0 && frac != 0 {
        // -0.5 s is secs = -1, frac = 500000: print as -0.500000
        let pos = us.unsigned_abs();
        out.push(b'-');
        num::push_u64(out, pos / 1_000_000);
        out.push(b'.');
        num::push_6_digits(out, (pos % 1_000_000) as u32);
    } else {
        num::push_i64(out, secs);
        out.push(b'.');
        num::push_6_digits(out, frac as u32);
    }
}

/// `%Y-%m-%d-%H-%M-%S` in UTC, the format of Zeek's `#open`/`#close` lines and rotated names.
pub fn format_rotation_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}-{:02}-{:02}-{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "0000-00-00-00-00-00".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_have_six_decimals_and_round() {
        assert_eq!(format_seconds(0), "0.000000");
        assert_eq!(
            format_seconds(1_234_567_890_000_000_000),
            "1234567890.000000"
        );
        assert_eq!(format_seconds(50_692_000), "0.050692");
        assert_eq!(format_seconds(1_000_000_499), "1.000000");
        assert_eq!(format_seconds(1_000_000_500), "1.000001");
        assert_eq!(format_seconds(1_999_999_999), "2.000000");
        assert_eq!(format_seconds(-500_000_000), "-0.500000");
        assert_eq!(format_seconds(-1_500_000_000), "-1.500000");
        assert_eq!(format_seconds(-2_000_000_000), "-2.000000");
    }

    /// `format_seconds` as first written, with `format!`.
    fn reference_seconds(ns: i64) -> String {
        let us = ns.div_euclid(1000) + i64::from(ns.rem_euclid(1000) >= 500);
        let secs = us.div_euclid(1_000_000);
        let frac = us.rem_euclid(1_000_000);
        if secs < 0 && frac != 0 {
            let pos = -us;
            format!("-{}.{:06}", pos / 1_000_000, pos % 1_000_000)
        } else {
            format!("{secs}.{frac:06}")
        }
    }

    #[test]
    fn seconds_extremes() {
        for ns in [
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            -1,
            -499,
            -500,
            -501,
            499,
            500,
        ] {
            assert_eq!(format_seconds(ns), reference_seconds(ns), "{ns}");
        }
    }

    proptest::proptest! {
        #[test]
        fn seconds_like_reference(ns in proptest::num::i64::ANY, small in -5_000_000_000i64..5_000_000_000) {
            proptest::prop_assert_eq!(format_seconds(ns), reference_seconds(ns));
            proptest::prop_assert_eq!(format_seconds(small), reference_seconds(small));
        }
    }

    #[test]
    fn rotation_time_is_utc() {
        assert_eq!(format_rotation_time(0), "1970-01-01-00-00-00");
        assert_eq!(
            format_rotation_time(1_764_028_800_000_000_000),
            "2025-11-25-00-00-00"
        );
    }
}
