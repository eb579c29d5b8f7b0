//! The Zeek ASCII writer: `#separator`, `#set_separator`, `#empty_field`, `#unset_field`,
//! `#path`, `#open`, `#fields`, `#types`, the rows, and `#close`.

use std::io::Write;

use crate::escape::{escape_field, escape_set_element};
use crate::{format_rotation_time, format_seconds, Field, Value};

/// Writes one Zeek ASCII log. Every line goes through the `csv` crate with a tab delimiter and
/// quoting off; cells are escaped first, so no cell can contain a tab or a line break.
pub struct TsvWriter<W: Write> {
    out: csv::Writer<W>,
    columns: usize,
}

impl<W: Write> TsvWriter<W> {
    /// Start a log: writes the header. `open_ns` is the time for `#open`.
    pub fn new(inner: W, path: &str, fields: &[Field], open_ns: i64) -> std::io::Result<Self> {
        let out = csv::WriterBuilder::new()
            .delimiter(b'\t')
            .quote_style(csv::QuoteStyle::Never)
            .terminator(csv::Terminator::Any(b'\n'))
            .flexible(true)
            .from_writer(inner);
        let mut w = TsvWriter {
            out,
            columns: fields.len(),
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
        for (i, v) in values.iter().enumerate() {
            let mut cell = render(v);
            // A data line must never look like a meta line.
            if i == 0 && cell.starts_with('#') {
                cell.replace_range(0..1, "\\x23");
            }
            self.out.write_field(cell.as_bytes()).map_err(csv_to_io)?;
        }
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

/// A value as the Zeek ASCII writer renders it.
pub fn render(v: &Value<'_>) -> String {
    match v {
        Value::Unset => "-".to_string(),
        Value::Time(ns) | Value::Interval(ns) => format_seconds(*ns),
        Value::Str(b) => escape_field(b),
        Value::Addr(a) => a.to_string(),
        Value::Port(p) => p.to_string(),
        Value::Count(c) => c.to_string(),
        Value::Bool(b) => if *b { "T" } else { "F" }.to_string(),
        Value::Set(items) if items.is_empty() => "(empty)".to_string(),
        Value::Set(items) => items
            .iter()
            .map(|s| escape_set_element(s.as_bytes()))
            .collect::<Vec<_>>()
            .join(","),
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
            "-\tx\\x09forged\\x0a#fields\\x09ts\\x0d\\x0a\\x1b[2J\\xff\\xfe,\t(empty)"
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
}
