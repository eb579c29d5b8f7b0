//! Zeek's ASCII escaping (src/Desc.cc `AddBytes`, src/util.cc `escape_utf8`,
//! src/threading/formatters/Ascii.cc): the separator and other control bytes as `\xNN`, a
//! backslash as `\\`, valid UTF-8 kept, bytes that are not valid UTF-8 as `\xNN`, hex in lower
//! case. A value equal to `-` or `(empty)` gets its first byte escaped so it cannot be read as
//! unset or empty.

use std::fmt::Write as _;

fn push_hex(out: &mut String, b: u8) {
    let _ = write!(out, "\\x{b:02x}");
}

/// Escape `bytes` for a TSV cell. `extra` is one more byte to escape (the set separator inside
/// set elements).
fn escape(bytes: &[u8], extra: Option<u8>) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            if b == b'\\' {
                out.push_str("\\\\");
            } else if b < 0x20 || b == 0x7f || b == b'#' || Some(b) == extra {
                // Control bytes, the tab separator among them. Not Zeek's rule: `#` too, since
                // readers built on pandas (zat's DataFrame reader) treat it as the start of a
                // comment anywhere in a line and would cut the row short.
                push_hex(&mut out, b);
            } else {
                out.push(b as char);
            }
            i += 1;
            continue;
        }
        // A multi-byte sequence passes through only when it is valid UTF-8.
        let len = match b {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        if len > 0 && i + len <= bytes.len() {
            if let Ok(s) = std::str::from_utf8(&bytes[i..i + len]) {
                out.push_str(s);
                i += len;
                continue;
            }
        }
        push_hex(&mut out, b);
        i += 1;
    }
    out
}

fn guard_reserved(mut s: String) -> String {
    if s.is_empty() {
        return "(empty)".to_string();
    }
    if s == "-" {
        return "\\x2d".to_string();
    }
    if s == "(empty)" {
        s.replace_range(0..1, "\\x28");
    }
    // Not Zeek's rule, but in its spirit: a leading double quote would make CSV-style TSV
    // readers (pandas, hence zat's DataFrame reader; Splunk's TSV extraction) parse a quoted
    // field across tabs and lines, so it is written as \x22, which Zeek-log readers decode.
    if s.starts_with('"') {
        s.replace_range(0..1, "\\x22");
    }
    s
}

/// A string field as the Zeek ASCII writer renders it.
pub fn escape_field(bytes: &[u8]) -> String {
    guard_reserved(escape(bytes, None))
}

/// One element of a set field: the set separator `,` is escaped too.
pub fn escape_set_element(bytes: &[u8]) -> String {
    guard_reserved(escape(bytes, Some(b',')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeek_baseline_examples() {
        // Baselines ascii-escape-binary / ascii-utf8-enabled-control-characters
        assert_eq!(escape_field(b"foo \n\t\0 bar"), "foo \\x0a\\x09\\x00 bar");
        assert_eq!(escape_field(b"AB\\\xffCD\0"), "AB\\\\\\xffCD\\x00");
        assert_eq!(escape_field("\u{ae}".as_bytes()), "\u{ae}");
    }

    #[test]
    fn reserved_values_and_empty() {
        assert_eq!(escape_field(b"-"), "\\x2d");
        assert_eq!(escape_field(b"(empty)"), "\\x28empty)");
        assert_eq!(escape_field(b""), "(empty)");
        assert_eq!(escape_field(b"--"), "--");
    }

    #[test]
    fn invalid_utf8_and_escapes() {
        assert_eq!(escape_field(b"\xc3\x28"), "\\xc3(");
        assert_eq!(escape_field(b"\x1b[31mred"), "\\x1b[31mred");
        assert_eq!(escape_field(b"\xe2\x82"), "\\xe2\\x82");
        assert_eq!(escape_field(b"\x7f"), "\\x7f");
        assert_eq!(escape_field("é€😀".as_bytes()), "é€😀");
        assert_eq!(escape_field(b"\xf5\x80\x80\x80"), "\\xf5\\x80\\x80\\x80");
    }

    #[test]
    fn hash_is_escaped_everywhere() {
        assert_eq!(escape_field(b"a#b"), "a\\x23b");
        assert_eq!(escape_field(b"#fields"), "\\x23fields");
    }

    #[test]
    fn leading_double_quote_is_escaped() {
        assert_eq!(escape_field(b"\"unterminated"), "\\x22unterminated");
        assert_eq!(escape_field(b"a\"b"), "a\"b");
        assert_eq!(escape_set_element(b"\"x"), "\\x22x");
    }

    #[test]
    fn set_separator_escaped_in_sets_only() {
        assert_eq!(escape_set_element(b"a,b"), "a\\x2cb");
        assert_eq!(escape_field(b"a,b"), "a,b");
    }

    proptest::proptest! {
        #[test]
        fn escaped_fields_never_contain_separators(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let s = escape_field(&bytes);
            proptest::prop_assert!(!s.contains('\t'));
            proptest::prop_assert!(!s.contains('\n'));
            proptest::prop_assert!(!s.contains('\r'));
            proptest::prop_assert!(s != "-");
            proptest::prop_assert!(!s.is_empty());
            let e = escape_set_element(&bytes);
            proptest::prop_assert!(!e.contains(','));
        }
    }
}
