//! Fuzz harness for the Zeek ASCII writer (`rstscope_zeeklog::TsvWriter`) and its escaping.
//!
//! Shared by the cargo-fuzz target `zeeklog_tsv` and the regression test
//! `crates/zeeklog/tests/fuzz_regressions.rs` (both include this file with `#[path]`).
//!
//! The input is cut at 0xff bytes into values (a set's elements are cut at 0xfe); rows of ten
//! columns of every type are written; the output must have exactly one line per row, no data
//! line may start with `#`, every data line has one cell per column, and every string and set
//! element reads back, after Zeek's unescaping, as the bytes written.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rstscope_zeeklog::{escape_field, escape_set_element, Field, TsvWriter, Value, ZeekType};

const FIELDS: [Field; 10] = [
    Field {
        name: "payload",
        ty: ZeekType::String,
    },
    Field {
        name: "ts",
        ty: ZeekType::Time,
    },
    Field {
        name: "evidence",
        ty: ZeekType::SetString,
    },
    Field {
        name: "cause",
        ty: ZeekType::Enum,
    },
    Field {
        name: "idle",
        ty: ZeekType::Interval,
    },
    Field {
        name: "n",
        ty: ZeekType::Count,
    },
    Field {
        name: "id.orig_h",
        ty: ZeekType::Addr,
    },
    Field {
        name: "id.orig_p",
        ty: ZeekType::Port,
    },
    Field {
        name: "injected",
        ty: ZeekType::Bool,
    },
    Field {
        name: "source",
        ty: ZeekType::String,
    },
];

/// Zeek's ASCII unescaping (`\xNN`, `\\`), as a reader decodes a cell.
pub fn unescape(raw: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && raw.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
            continue;
        }
        if raw[i] == b'\\' && raw.get(i + 1) == Some(&b'x') && i + 3 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 2]), hex(raw[i + 3])) {
                out.push(h << 4 | l);
                i += 4;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

fn int_of(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    i64::from_le_bytes(a)
}

/// Check one escaped string against the bytes it stands for.
fn check_string(cell: &str, original: &[u8]) {
    assert!(!cell.is_empty());
    assert!(!cell.contains(['\t', '\n', '\r']), "separator in {cell:?}");
    assert!(!cell.contains('#'), "unescaped # in {cell:?}");
    assert_ne!(cell, "-", "a string reads as unset");
    assert!(!cell.starts_with('"'), "leading quote in {cell:?}");
    if original.is_empty() {
        assert_eq!(cell, "(empty)");
    } else {
        assert_ne!(cell, "(empty)", "a string reads as empty");
        assert_eq!(
            unescape(cell.as_bytes()),
            original,
            "{cell:?} does not read back"
        );
    }
}

/// Target `zeeklog_tsv`.
pub fn fuzz_zeeklog_tsv(data: &[u8]) {
    let chunks: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    let path = String::from_utf8_lossy(chunks[0]).into_owned();
    let open_ns = int_of(chunks[0]);
    let sets: Vec<Vec<String>> = chunks
        .iter()
        .map(|c| {
            if c.is_empty() {
                Vec::new()
            } else {
                c.split(|&b| b == 0xfe)
                    .map(|e| String::from_utf8_lossy(e).into_owned())
                    .collect()
            }
        })
        .collect();
    let mut rows: Vec<Vec<Value<'_>>> = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let n = int_of(c);
        let addr = if c.len() > 4 {
            IpAddr::V6(Ipv6Addr::from((n as u128).wrapping_mul(0x1_0000_0001)))
        } else {
            IpAddr::V4(Ipv4Addr::from(n as u32))
        };
        let set: Vec<&str> = sets[i].iter().map(String::as_str).collect();
        rows.push(vec![
            Value::Str(c),
            if c.len() == 1 {
                Value::Unset
            } else {
                Value::Time(n)
            },
            Value::Set(set),
            Value::Str(&c[c.len() / 2..]),
            Value::Interval(n.wrapping_neg()),
            Value::Count(n as u64),
            Value::Addr(addr),
            Value::Port(n as u16),
            Value::Bool(n & 1 == 1),
            Value::Str(chunks[(i + 1) % chunks.len()]),
        ]);
    }
    let mut w = TsvWriter::new(Vec::new(), &path, &FIELDS, open_ns).expect("header");
    for r in &rows {
        w.write_row(r).expect("row");
    }
    let out = w.finish(int_of(data)).expect("close");
    let text = std::str::from_utf8(&out).expect("the log is UTF-8");
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.last(), Some(&""), "the log ends with a newline");
    let lines = &lines[..lines.len() - 1];
    assert_eq!(lines.len(), 8 + rows.len() + 1, "one line per row");
    for l in &lines[..8] {
        assert!(l.starts_with('#'));
    }
    let path_line: Vec<&str> = lines[4].split('\t').collect();
    assert_eq!(path_line.len(), 2, "#path line {:?}", lines[4]);
    check_string(path_line[1], path.as_bytes());
    assert!(lines[lines.len() - 1].starts_with("#close\t"));
    for (row, line) in rows.iter().zip(&lines[8..lines.len() - 1]) {
        assert!(!line.starts_with('#'), "data line starts with #: {line:?}");
        let cells: Vec<&str> = line.split('\t').collect();
        assert_eq!(cells.len(), FIELDS.len(), "cells in {line:?}");
        for (v, cell) in row.iter().zip(&cells) {
            match v {
                Value::Str(b) => check_string(cell, b),
                Value::Set(items) if items.is_empty() => assert_eq!(*cell, "(empty)"),
                Value::Set(items) => {
                    let parts: Vec<&str> = cell.split(',').collect();
                    assert_eq!(parts.len(), items.len(), "set elements in {cell:?}");
                    for (p, it) in parts.iter().zip(items) {
                        check_string(p, it.as_bytes());
                        assert_eq!(*p, escape_set_element(it.as_bytes()));
                    }
                }
                Value::Unset => assert_eq!(*cell, "-"),
                _ => {
                    assert!(!cell.is_empty());
                    assert!(!cell.contains(['\t', '\n', '\r', '#']));
                }
            }
        }
        // The writer's cells are the escaping functions' output.
        if let Value::Str(b) = &row[0] {
            assert_eq!(cells[0], escape_field(b));
        }
    }
}
