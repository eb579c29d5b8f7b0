//! The Zeek ASCII writer: `#separator`, `#set_separator`, `#empty_field`, `#unset_field`,
//! `#path`, `#open`, `#fields`, `#types`, the rows, and `#close`.

use std::io::Write;

use crate::escape::{escape_field, escape_field_into, escape_set_element_into, into_string};
use crate::{format_rotation_time, format_seconds_into, num, Field, Value};

/// Writes one Zeek ASCII log. Every line goes through the `csv` crate with a tab delimiter and
/// quoting off; cells are escaped first, so no cell can contain a tab or a line break. A row is
/// rendered into one reused buffer, cells joined by tabs, and handed to the `csv` writer as a
/// single unquoted field: the same bytes as one field per cell, without a `String` per cell.
pub struct TsvWriter<W: Write> {
    out: csv::Writer<W>,
    columns: usize,
    line: Vec<u8>,
}

impl<W: Write> TsvWriter<W> {
    /// Start a log: writes the header. `open_ns` is the time for `#open`.
    pub fn new(inner: W, path: &str, fields: &[Field], open_ns: i64) -> std::io::Result<Self> {
        let out = csv::WriterBuilder::new()
            .delimiter(b'\t')
            .quote_style(csv::QuoteStyle::Never)
            .terminator(csv::Terminator::Any(b'\n'))
            .flexible(true)
            .buffer_capacity(64 * 1024)
            .from_writer(inner);
        let mut w = TsvWriter {
            out,
            columns: fields.len(),
            line: Vec::with_capacity(1024),
        };
        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        let types: Vec<&str> = fields.iter().map(|f| f.ty.name()).collect();
        for line in header_lines(path, &names, &types, open_ns) {
            w.meta(&line.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        Ok(w)
    }

    fn meta(&mut self, cells: &[&str]) -> std::io::Result<()> {
        self.out.write_record(cells).map_err(csv_to_io)
    }

    /// Write one row; `values` must have one value per field.
    pub fn write_row(&mut self, values: &[Value<'_>]) -> std::io::Result<()> {
        debug_assert_eq!(values.len(), self.columns);
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        render_row(values, &mut line);
        let written = self.write_rendered(&line);
        self.line = line;
        written
    }

    /// Write rows rendered by [`render_row`] (each ending in a line break), as many as given:
    /// the same bytes as [`write_row`](Self::write_row) for each, and rows can be rendered on
    /// other threads.
    pub fn write_rendered(&mut self, rows: &[u8]) -> std::io::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let Some(body) = rows.strip_suffix(b"\n") else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "rendered rows must end with a line break",
            ));
        };
        // One unquoted field (quoting is off), ended by the writer's own line terminator.
        self.out.write_field(body).map_err(csv_to_io)?;
        self.out.write_record(None::<&[u8]>).map_err(csv_to_io)
    }

    /// Write `#close` and hand back the inner writer, flushed.
    pub fn finish(mut self, close_ns: i64) -> std::io::Result<W> {
        self.meta(&["#close", &format_rotation_time(close_ns)])?;
        self.out
            .into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// The header lines of a Zeek ASCII log, as cells: `#separator \x09`, `#set_separator`,
/// `#empty_field`, `#unset_field`, `#path`, `#open`, `#fields`, `#types`. For logs whose columns
/// are only known at run time (the type names are written as given).
pub fn header_lines(path: &str, names: &[&str], types: &[&str], open_ns: i64) -> Vec<Vec<String>> {
    let cells = |first: &str, rest: &[&str]| {
        let mut v = vec![first.to_string()];
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };
    vec![
        vec!["#separator \\x09".to_string()],
        cells("#set_separator", &[","]),
        cells("#empty_field", &["(empty)"]),
        cells("#unset_field", &["-"]),
        cells("#path", &[&escape_field(path.as_bytes())]),
        cells("#open", &[&format_rotation_time(open_ns)]),
        cells("#fields", names),
        cells("#types", types),
    ]
}

fn csv_to_io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

/// Append one data row to `out`: the values rendered and joined by tabs, and a line break.
pub fn render_row(values: &[Value<'_>], out: &mut Vec<u8>) {
    let start = out.len();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        render_into(v, out);
    }
    // A data line must never look like a meta line.
    if out.get(start) == Some(&b'#') {
        out.splice(start..start + 1, *b"\\x23");
    }
    out.push(b'\n');
}

/// A value as the Zeek ASCII writer renders it.
pub fn render(v: &Value<'_>) -> String {
    let mut out = Vec::with_capacity(32);
    render_into(v, &mut out);
    into_string(out)
}

/// [`render`], appended to `out`.
pub fn render_into(v: &Value<'_>, out: &mut Vec<u8>) {
    match v {
        Value::Unset => out.push(b'-'),
        Value::Time(ns) | Value::Interval(ns) => format_seconds_into(*ns, out),
        Value::Str(b) => escape_field_into(b, out),
        Value::Addr(std::net::IpAddr::V4(a)) => {
            for (i, o) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                num::push_u64(out, o as u64);
            }
        }
        Value::Addr(a) => {
            let _ = write!(out, "{a}");
        }
        Value::Port(p) => num::push_u64(out, *p as u64),
        Value::Count(c) => num::push_u64(out, *c),
        Value::Bool(b) => out.push(if *b { b'T' } else { b'F' }),
        Value::Set(items) if items.is_empty() => out.extend_from_slice(b"(empty)"),
        Value::Set(items) => {
            for (i, s) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                escape_set_element_into(s.as_bytes(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ZeekType;

    const FIELDS: [Field; 3] = [
        Field {
            name: "ts",
            ty: ZeekType::Time,
        },
        Field {
            name: "payload",
            ty: ZeekType::String,
        },
        Field {
            name: "evidence",
            ty: ZeekType::SetString,
        },
    ];

    fn write(rows: &[Vec<Value<'_>>]) -> String {
        let mut w = TsvWriter::new(Vec::new(), "reset", &FIELDS, 0).unwrap();
        for r in rows {
            w.write_row(r).unwrap();
        }
        String::from_utf8(w.finish(86_400_000_000_000).unwrap()).unwrap()
    }

    #[test]
    fn header_rows_and_footer_exactly_as_zeek() {
        let out = write(&[vec![
            Value::Time(1_500_000_000_123_456_000),
            Value::Str(b"220 mailgat"),
            Value::Set(vec!["payload", "seq_zero"]),
        ]]);
        assert_eq!(
            out,
            "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n\
             #path\treset\n#open\t1970-01-01-00-00-00\n#fields\tts\tpayload\tevidence\n\
             #types\ttime\tstring\tset[string]\n\
             1500000000.123456\t220 mailgat\tpayload,seq_zero\n#close\t1970-01-02-00-00-00\n"
        );
    }

    #[test]
    fn hostile_payload_cannot_break_or_forge_a_line() {
        let hostile: &[u8] = b"x\tforged\n#fields\tts\r\n\x1b[2J\xff\xfe,";
        let out = write(&[
            vec![Value::Unset, Value::Str(hostile), Value::Set(vec![])],
            vec![Value::Unset, Value::Str(b"-"), Value::Set(vec!["a,b"])],
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 11);
        assert_eq!(
            lines[8],
            "-\tx\\x09forged\\x0a\\x23fields\\x09ts\\x0d\\x0a\\x1b[2J\\xff\\xfe,\t(empty)"
        );
        assert_eq!(lines[9], "-\t\\x2d\ta\\x2cb");
        for l in &lines[8..10] {
            assert_eq!(l.split('\t').count(), 3);
        }
    }

    #[test]
    fn first_cell_starting_with_hash_is_escaped() {
        let fields = [Field {
            name: "s",
            ty: ZeekType::String,
        }];
        let mut w = TsvWriter::new(Vec::new(), "x", &fields, 0).unwrap();
        w.write_row(&[Value::Str(b"#close")]).unwrap();
        let out = String::from_utf8(w.finish(0).unwrap()).unwrap();
        assert!(out.contains("\n\\x23close\n"));
    }

    /// The writer as first written: one `String` per cell (`to_string`, `format!`, the
    /// reference escaping), one `csv` field per cell.
    fn reference_write(fields: &[Field], rows: &[Vec<Value<'_>>]) -> Vec<u8> {
        use crate::escape::tests::reference;
        fn seconds(ns: i64) -> String {
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
        fn render(v: &Value<'_>) -> String {
            match v {
                Value::Unset => "-".to_string(),
                Value::Time(ns) | Value::Interval(ns) => seconds(*ns),
                Value::Str(b) => reference::escape_field(b),
                Value::Addr(a) => a.to_string(),
                Value::Port(p) => p.to_string(),
                Value::Count(c) => c.to_string(),
                Value::Bool(b) => if *b { "T" } else { "F" }.to_string(),
                Value::Set(items) if items.is_empty() => "(empty)".to_string(),
                Value::Set(items) => items
                    .iter()
                    .map(|s| reference::escape_set_element(s.as_bytes()))
                    .collect::<Vec<_>>()
                    .join(","),
            }
        }
        let mut out = csv::WriterBuilder::new()
            .delimiter(b'\t')
            .quote_style(csv::QuoteStyle::Never)
            .terminator(csv::Terminator::Any(b'\n'))
            .flexible(true)
            .from_writer(Vec::new());
        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        let types: Vec<&str> = fields.iter().map(|f| f.ty.name()).collect();
        for line in header_lines("reset", &names, &types, 0) {
            out.write_record(&line).unwrap();
        }
        for r in rows {
            for (i, v) in r.iter().enumerate() {
                let mut cell = render(v);
                if i == 0 && cell.starts_with('#') {
                    cell.replace_range(0..1, "\\x23");
                }
                out.write_field(cell.as_bytes()).unwrap();
            }
            out.write_record(None::<&[u8]>).unwrap();
        }
        out.write_record(["#close", &format_rotation_time(86_400_000_000_000)])
            .unwrap();
        out.into_inner().unwrap()
    }

    fn value_strategy() -> impl proptest::strategy::Strategy<Value = Value<'static>> {
        use proptest::prelude::*;
        const WORDS: [&str; 6] = ["payload", "seq_zero", "a,b", "-", "(empty)", "#x\t\"y"];
        const STRS: [&[u8]; 8] = [
            b"220 mailgat",
            b"-",
            b"(empty)",
            b"#close",
            b"\"q",
            b"",
            b"\x00\xff\\\t\n",
            "é€".as_bytes(),
        ];
        prop_oneof![
            Just(Value::Unset),
            any::<i64>().prop_map(Value::Time),
            (-10_000_000_000i64..10_000_000_000).prop_map(Value::Interval),
            proptest::sample::select(STRS.to_vec()).prop_map(Value::Str),
            any::<[u8; 4]>().prop_map(|a| Value::Addr(std::net::IpAddr::from(a))),
            any::<[u8; 16]>().prop_map(|a| Value::Addr(std::net::IpAddr::from(a))),
            any::<[u16; 8]>().prop_map(|a| Value::Addr(std::net::IpAddr::from(a.map(|x| x % 3)))),
            any::<u16>().prop_map(Value::Port),
            any::<u64>().prop_map(Value::Count),
            any::<bool>().prop_map(Value::Bool),
            proptest::collection::vec(proptest::sample::select(WORDS.to_vec()), 0..4)
                .prop_map(Value::Set),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        #[test]
        fn rows_are_byte_identical_to_the_reference_writer(
            rows in proptest::collection::vec(proptest::collection::vec(value_strategy(), 3), 0..6)
        ) {
            let mut w = TsvWriter::new(Vec::new(), "reset", &FIELDS, 0).unwrap();
            for r in &rows {
                w.write_row(r).unwrap();
            }
            let got = w.finish(86_400_000_000_000).unwrap();
            let want = reference_write(&FIELDS, &rows);
            proptest::prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn long_rows_cross_the_csv_buffer() {
        let big = vec![b'x'; 200_000];
        let rows = vec![
            vec![Value::Unset, Value::Str(&big), Value::Set(vec![])],
            vec![Value::Time(1), Value::Str(b"y"), Value::Set(vec!["z"])],
        ];
        let mut w = TsvWriter::new(Vec::new(), "reset", &FIELDS, 0).unwrap();
        for r in &rows {
            w.write_row(r).unwrap();
        }
        assert_eq!(
            w.finish(86_400_000_000_000).unwrap(),
            reference_write(&FIELDS, &rows)
        );
    }
}
