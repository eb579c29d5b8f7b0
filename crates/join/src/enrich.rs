//! `conn_rst.log`: the joined conn.log rows with their RSTs summarised in appended columns, in
//! Zeek TSV, Zeek JSON lines or CSV. Also the value renderings shared by every JSON and CSV
//! output (Zeek's JSON string policy, shortest-form seconds, CSV formula neutralisation).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use rstscope_zeeklog::{escape_field, escape_set_element, format_rotation_time, format_seconds};

use crate::read::{read_conn_log, unescape, Row};
use crate::RstAggregate;

/// Output format of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    Tsv,
    Json { iso8601: bool },
    Csv,
}

/// Zeek's JSON string policy (STRING_ESCAPE_POLICY_HEX): valid UTF-8 kept, control bytes other
/// than \b \f \n \r \t and bytes that are not UTF-8 as the literal text `\xNN`; the JSON
/// encoder escapes the rest.
pub fn zeek_json_string(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            if (b < 0x20 && !matches!(b, 0x08 | 0x0c | b'\n' | b'\r' | b'\t')) || b == 0x7f {
                s.push_str(&format!("\\x{b:02x}"));
            } else {
                s.push(b as char);
            }
            i += 1;
            continue;
        }
        let len = match b {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        if len > 0 && i + len <= bytes.len() {
            if let Ok(c) = std::str::from_utf8(&bytes[i..i + len]) {
                s.push_str(c);
                i += len;
                continue;
            }
        }
        s.push_str(&format!("\\x{b:02x}"));
        i += 1;
    }
    s
}

/// The bytes a [`zeek_json_string`] was made from: every `\xNN` back to its byte. Zeek's JSON
/// policy leaves a backslash as it is, so the text of a string that itself held `\xNN` is
/// ambiguous: the bytes are taken only when they render to `text` again (so reading and
/// writing back always gives `text`); otherwise `text` is taken as it is.
pub fn zeek_json_unescape(text: &str) -> std::borrow::Cow<'_, [u8]> {
    let raw = text.as_bytes();
    if !raw.windows(2).any(|w| w == b"\\x") {
        return std::borrow::Cow::Borrowed(raw);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && raw.get(i + 1) == Some(&b'x') {
            if let (Some(h), Some(l)) = (
                raw.get(i + 2).copied().and_then(hex),
                raw.get(i + 3).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 4;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    if zeek_json_string(&out) == text {
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(raw)
    }
}

/// A time or interval as Zeek's JSON writer prints a double: shortest round-trip form, from
/// the value rounded to the microsecond.
pub fn json_seconds(ns: i64) -> serde_json::Value {
    let us = ns.div_euclid(1000) + i64::from(ns.rem_euclid(1000) >= 500);
    serde_json::Number::from_f64(us as f64 / 1e6)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// A time as Zeek's `JSON::TS_ISO8601`: `2008-07-09T16:13:30.005432Z` (UTC, 6 digits).
pub fn iso8601(ns: i64) -> String {
    let us = ns.div_euclid(1000) + i64::from(ns.rem_euclid(1000) >= 500);
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            frac
        ),
        Err(_) => format_seconds(ns),
    }
}

/// A CSV cell: a leading `=`, `+`, `-`, `@`, tab or carriage return is neutralised with a `'`
/// prefix so spreadsheets show the cell as text instead of evaluating it.
pub fn csv_neutralise(s: String) -> String {
    let mut b = s.into_bytes();
    csv_neutralise_bytes(&mut b);
    // Only ASCII was put in front of, or replaced at the start of, valid UTF-8.
    String::from_utf8(b).unwrap_or_default()
}

/// [`csv_neutralise`] on a cell rendered into bytes, in place.
pub fn csv_neutralise_bytes(cell: &mut Vec<u8>) {
    match cell.first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => cell.insert(0, b'\''),
        // A cell of ours that starts with `'` is always a neutralised one: a value that itself
        // starts with `'` gets it escaped, as the TSV rendering would escape any byte.
        Some(b'\'') => {
            cell.splice(0..1, *b"\\x27");
        }
        _ => {}
    }
}

/// Types of the standard conn.log columns, for JSON input (which carries no `#types`).
fn known_type(name: &str) -> &'static str {
    match name {
        "ts" => "time",
        "duration" => "interval",
        "id.orig_h" | "id.resp_h" => "addr",
        "id.orig_p" | "id.resp_p" => "port",
        "proto" => "enum",
        "orig_bytes" | "resp_bytes" | "missed_bytes" | "orig_pkts" | "orig_ip_bytes"
        | "resp_pkts" | "resp_ip_bytes" | "ip_proto" => "count",
        "local_orig" | "local_resp" => "bool",
        "tunnel_parents" => "set[string]",
        _ => "string",
    }
}

/// A cell of a copied row.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Unset,
    /// A scalar as text (unescaped bytes).
    Text(Vec<u8>),
    /// Set or vector elements (unescaped).
    Set(Vec<Vec<u8>>),
}

struct Table {
    names: Vec<String>,
    types: Vec<String>,
    rows: Vec<Vec<Cell>>,
    uids: Vec<String>,
}

impl Table {
    fn column(&mut self, name: &str, ty: &str) -> usize {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_string());
                self.types.push(ty.to_string());
                self.names.len() - 1
            }
        }
    }

    fn add(&mut self, row: &Row<'_>, uid: String) {
        let mut cells: Vec<(usize, Cell)> = Vec::new();
        match row {
            Row::Tsv { header, cells: raw } => {
                for (i, name) in header.fields.iter().enumerate() {
                    let ty = header.types.get(i).map(String::as_str).unwrap_or("string");
                    let col = self.column(name, ty);
                    let r = raw[i];
                    let cell = if r == header.unset_field.as_slice() {
                        Cell::Unset
                    } else if ty.starts_with("set[") || ty.starts_with("vector[") {
                        if r == header.empty_field.as_slice() {
                            Cell::Set(Vec::new())
                        } else {
                            Cell::Set(
                                split(r, &header.set_separator)
                                    .into_iter()
                                    .map(|e| unescape(e).into_owned())
                                    .collect(),
                            )
                        }
                    } else if r == header.empty_field.as_slice() {
                        Cell::Text(Vec::new())
                    } else {
                        Cell::Text(unescape(r).into_owned())
                    };
                    cells.push((col, cell));
                }
            }
            Row::Json(map) => {
                for (name, v) in map {
                    let (ty, cell) = match v {
                        serde_json::Value::Null => (known_type(name).to_string(), Cell::Unset),
                        serde_json::Value::Array(a) => (
                            if known_type(name) == "string" {
                                "set[string]".to_string()
                            } else {
                                known_type(name).to_string()
                            },
                            Cell::Set(
                                a.iter()
                                    .map(|x| match x {
                                        serde_json::Value::String(s) => s.as_bytes().to_vec(),
                                        other => other.to_string().into_bytes(),
                                    })
                                    .collect(),
                            ),
                        ),
                        serde_json::Value::String(s) => (
                            known_type(name).to_string(),
                            Cell::Text(s.as_bytes().to_vec()),
                        ),
                        serde_json::Value::Bool(b) => (
                            "bool".to_string(),
                            Cell::Text(if *b { b"T".to_vec() } else { b"F".to_vec() }),
                        ),
                        serde_json::Value::Number(n) => {
                            let ty = match known_type(name) {
                                "string" if n.is_f64() => "double",
                                "string" => "count",
                                t => t,
                            };
                            (ty.to_string(), Cell::Text(n.to_string().into_bytes()))
                        }
                        serde_json::Value::Object(_) => {
                            ("string".to_string(), Cell::Text(v.to_string().into_bytes()))
                        }
                    };
                    let col = self.column(name, &ty);
                    cells.push((col, cell));
                }
            }
        }
        let mut full = vec![Cell::Unset; self.names.len()];
        for (i, c) in cells {
            full[i] = c;
        }
        self.rows.push(full);
        self.uids.push(uid);
    }
}

fn split<'a>(s: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    if sep.is_empty() {
        return vec![s];
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= s.len() {
        if &s[i..i + sep.len()] == sep {
            out.push(&s[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&s[start..]);
    out
}

const APPENDED: [(&str, &str); 6] = [
    ("rst_count", "count"),
    ("rst_causes", "set[string]"),
    ("rst_injected", "bool"),
    ("rst_evidence", "set[string]"),
    ("rst_first_ts", "time"),
    ("rst_payload", "string"),
];

/// Read the logs again and collect every row whose uid has RSTs, in log order.
fn collect(logs: &[PathBuf], joined: &HashMap<String, RstAggregate>) -> Table {
    let mut t = Table {
        names: Vec::new(),
        types: Vec::new(),
        rows: Vec::new(),
        uids: Vec::new(),
    };
    for path in logs {
        read_conn_log(path, |row, _| {
            if let Some(uid) = row.get("uid") {
                if joined.contains_key(uid.as_ref()) {
                    let uid = uid.into_owned();
                    t.add(row, uid);
                }
            }
        });
    }
    // Rows read before a later log added columns are padded.
    for r in &mut t.rows {
        r.resize(t.names.len(), Cell::Unset);
    }
    t
}

fn appended_cells(a: &RstAggregate) -> Vec<Cell> {
    vec![
        Cell::Text(a.count.to_string().into_bytes()),
        Cell::Set(a.causes.iter().map(|c| c.as_bytes().to_vec()).collect()),
        Cell::Text(if a.injected {
            b"T".to_vec()
        } else {
            b"F".to_vec()
        }),
        Cell::Set(a.evidence.iter().map(|c| c.as_bytes().to_vec()).collect()),
        Cell::Text(format_seconds(a.first_ts).into_bytes()),
        match &a.first_payload {
            Some(p) => Cell::Text(p.clone()),
            None => Cell::Unset,
        },
    ]
}

fn tsv_cell(c: &Cell) -> String {
    match c {
        Cell::Unset => "-".to_string(),
        Cell::Text(t) => escape_field(t),
        Cell::Set(v) if v.is_empty() => "(empty)".to_string(),
        Cell::Set(v) => v
            .iter()
            .map(|e| escape_set_element(e))
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn json_cell(c: &Cell, ty: &str, iso: bool) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match c {
        Cell::Unset => return None,
        Cell::Set(v) => J::Array(v.iter().map(|e| J::String(zeek_json_string(e))).collect()),
        Cell::Text(t) => {
            let s = String::from_utf8_lossy(t);
            match ty {
                "time" | "interval" => match crate::parse_time(&s) {
                    Some(ns) if iso && ty == "time" => J::String(iso8601(ns)),
                    Some(ns) => json_seconds(ns),
                    None => J::String(zeek_json_string(t)),
                },
                "double" => s
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(J::Number)
                    .unwrap_or_else(|| J::String(zeek_json_string(t))),
                "count" | "port" => s
                    .parse::<u64>()
                    .map(J::from)
                    .unwrap_or_else(|_| J::String(zeek_json_string(t))),
                "int" => s
                    .parse::<i64>()
                    .map(J::from)
                    .unwrap_or_else(|_| J::String(zeek_json_string(t))),
                "bool" => J::Bool(s == "T"),
                _ => J::String(zeek_json_string(t)),
            }
        }
    })
}

fn csv_cell(c: &Cell) -> String {
    match c {
        Cell::Unset => String::new(),
        Cell::Text(t) if t.is_empty() => String::new(),
        Cell::Set(v) if v.is_empty() => String::new(),
        other => csv_neutralise(tsv_cell(other)),
    }
}

/// Write `conn_rst` rows: every joined conn.log row, original columns first (values as read),
/// then the RST columns. Returns the number of rows.
pub fn write_conn_rst<W: Write>(
    mut out: W,
    format: OutFormat,
    logs: &[PathBuf],
    joined: &HashMap<String, RstAggregate>,
    open_ns: i64,
    close_ns: i64,
) -> std::io::Result<u64> {
    let t = collect(logs, joined);
    let mut names: Vec<&str> = t.names.iter().map(String::as_str).collect();
    let mut types: Vec<&str> = t.types.iter().map(String::as_str).collect();
    for (n, ty) in APPENDED {
        names.push(n);
        types.push(ty);
    }
    // Column names and types come from the conn.log (a JSON key can hold anything): escaped,
    // none can split the #fields/#types line or forge a line (TSV), or be a formula (CSV).
    let esc =
        |v: &[&str]| -> Vec<String> { v.iter().map(|s| escape_field(s.as_bytes())).collect() };
    let (names_esc, types_esc) = (esc(&names), esc(&types));
    let tsv_names: Vec<&str> = names_esc.iter().map(String::as_str).collect();
    let tsv_types: Vec<&str> = types_esc.iter().map(String::as_str).collect();
    let rows = t.rows.iter().zip(&t.uids).map(|(r, uid)| {
        let mut cells = r.clone();
        cells.extend(appended_cells(&joined[uid]));
        cells
    });
    let io = |e: csv::Error| std::io::Error::other(e.to_string());
    match format {
        OutFormat::Tsv => {
            let mut w = csv::WriterBuilder::new()
                .delimiter(b'\t')
                .quote_style(csv::QuoteStyle::Never)
                .flexible(true)
                .from_writer(&mut out);
            for line in rstscope_zeeklog::header_lines("conn_rst", &tsv_names, &tsv_types, open_ns)
            {
                w.write_record(&line).map_err(io)?;
            }
            for row in rows {
                let mut cells: Vec<String> = row.iter().map(tsv_cell).collect();
                if cells.first().is_some_and(|c| c.starts_with('#')) {
                    cells[0].replace_range(0..1, "\\x23");
                }
                w.write_record(&cells).map_err(io)?;
            }
            w.write_record(["#close", &format_rotation_time(close_ns)])
                .map_err(io)?;
            w.flush()?;
        }
        OutFormat::Json { iso8601 } => {
            for row in rows {
                let mut map = serde_json::Map::new();
                for ((name, ty), c) in names.iter().zip(&types).zip(&row) {
                    if let Some(v) = json_cell(c, ty, iso8601) {
                        map.insert(name.to_string(), v);
                    }
                }
                serde_json::to_writer(&mut out, &serde_json::Value::Object(map))?;
                out.write_all(b"\n")?;
            }
        }
        OutFormat::Csv => {
            let mut w = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(&mut out);
            w.write_record(names_esc.iter().map(|n| csv_neutralise(n.clone())))
                .map_err(io)?;
            for row in rows {
                w.write_record(row.iter().map(csv_cell)).map_err(io)?;
            }
            w.flush()?;
        }
    }
    Ok(t.rows.len() as u64)
}
