//! Zeek's ASCII escaping (src/Desc.cc `AddBytes`, src/util.cc `escape_utf8`,
//! src/threading/formatters/Ascii.cc): the separator and other control bytes as `\xNN`, a
//! backslash as `\\`, valid UTF-8 kept, bytes that are not valid UTF-8 as `\xNN`, hex in lower
//! case. A value equal to `-` or `(empty)` gets its first byte escaped so it cannot be read as
//! unset or empty.

const HEX: &[u8; 16] = b"0123456789abcdef";

#[inline]
fn push_hex(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
}

/// Which bytes pass through unescaped, with `extra` escaped too (0: none).
///
/// Control bytes (the tab separator among them) and DEL are escaped, and so is `#`: not Zeek's
/// rule, but readers built on pandas (zat's DataFrame reader) treat it as the start of a
/// comment anywhere in a line and would cut the row short. A backslash is doubled. Bytes from
/// 0x80 on are looked at as UTF-8 sequences.
const fn plain_bytes(extra: u8) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        t[b] = b as u8 != b'\\' && b as u8 != b'#' && b as u8 != extra;
        b += 1;
    }
    t
}

/// Plain bytes of a string field.
static PLAIN_FIELD: [bool; 256] = plain_bytes(0);
/// Plain bytes of a set element: the set separator `,` is escaped too.
static PLAIN_SET_ELEMENT: [bool; 256] = plain_bytes(b',');

/// Append `bytes` escaped for a TSV cell to `out`; `plain` says which bytes pass through.
fn escape_into(bytes: &[u8], plain: &[bool; 256], out: &mut Vec<u8>) {
    out.reserve(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // A run of bytes that pass through as they are.
        let run = bytes[i..]
            .iter()
            .position(|&b| !plain[b as usize])
            .unwrap_or(bytes.len() - i);
        out.extend_from_slice(&bytes[i..i + run]);
        i += run;
        if i == bytes.len() {
            break;
        }
        let b = bytes[i];
        if b < 0x80 {
            if b == b'\\' {
                out.extend_from_slice(b"\\\\");
            } else {
                push_hex(out, b);
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
        if len > 0 && i + len <= bytes.len() && std::str::from_utf8(&bytes[i..i + len]).is_ok() {
            out.extend_from_slice(&bytes[i..i + len]);
            i += len;
            continue;
        }
        push_hex(out, b);
        i += 1;
    }
}

/// Guard the escaped cell that starts at `start` in `out` against reading as a reserved value.
fn guard_reserved(out: &mut Vec<u8>, start: usize) {
    let cell = &out[start..];
    if cell.is_empty() {
        out.extend_from_slice(b"(empty)");
    } else if cell == b"-" {
        out.truncate(start);
        out.extend_from_slice(b"\\x2d");
    } else if cell == b"(empty)" {
        out.splice(start..start + 1, *b"\\x28");
    } else if cell[0] == b'"' {
        // Not Zeek's rule, but in its spirit: a leading double quote would make CSV-style TSV
        // readers (pandas, hence zat's DataFrame reader; Splunk's TSV extraction) parse a
        // quoted field across tabs and lines, so it is written as \x22, which Zeek-log readers
        // decode.
        out.splice(start..start + 1, *b"\\x22");
    }
}

/// Append a string field, as the Zeek ASCII writer renders it, to `out`.
pub fn escape_field_into(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    escape_into(bytes, &PLAIN_FIELD, out);
    guard_reserved(out, start);
}

/// Append one element of a set field (the set separator `,` escaped too) to `out`.
pub fn escape_set_element_into(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    escape_into(bytes, &PLAIN_SET_ELEMENT, out);
    guard_reserved(out, start);
}

/// Rendered cells are ASCII apart from valid UTF-8 sequences copied whole.
pub(crate) fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A string field as the Zeek ASCII writer renders it.
pub fn escape_field(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() + 8);
    escape_field_into(bytes, &mut out);
    into_string(out)
}

/// One element of a set field: the set separator `,` is escaped too.
pub fn escape_set_element(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() + 8);
    escape_set_element_into(bytes, &mut out);
    into_string(out)
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// The escaping as first written (a String per cell, char by char), kept to check the
    /// buffer-appending version against.
    pub(crate) mod reference {
        use std::fmt::Write as _;

        fn push_hex(out: &mut String, b: u8) {
            let _ = write!(out, "\\x{b:02x}");
        }

        fn escape(bytes: &[u8], extra: Option<u8>) -> String {
            let mut out = String::with_capacity(bytes.len() + 8);
            let mut i = 0;
            while i < bytes.len() {
                let b = bytes[i];
                if b < 0x80 {
                    if b == b'\\' {
                        out.push_str("\\\\");
                    } else if b < 0x20 || b == 0x7f || b == b'#' || Some(b) == extra {
                        push_hex(&mut out, b);
                    } else {
                        out.push(b as char);
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
            if s.starts_with('"') {
                s.replace_range(0..1, "\\x22");
            }
            s
        }

        pub fn escape_field(bytes: &[u8]) -> String {
            guard_reserved(escape(bytes, None))
        }

        pub fn escape_set_element(bytes: &[u8]) -> String {
            guard_reserved(escape(bytes, Some(b',')))
        }
    }

    /// Bytes biased towards what escaping cares about: ASCII, the reserved values, quotes,
    /// backslashes, `#`, commas, control bytes and (valid, cut or invalid) UTF-8.
    fn cell_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..48),
            proptest::collection::vec(
                prop_oneof![
                    Just(b"-".to_vec()),
                    Just(b"(empty)".to_vec()),
                    Just(b"\"".to_vec()),
                    Just(b"\\".to_vec()),
                    Just(b"#".to_vec()),
                    Just(b",".to_vec()),
                    Just(b"\t\n\r\x00\x7f".to_vec()),
                    Just("é€😀".as_bytes().to_vec()),
                    Just(b"\xe2\x82".to_vec()),
                    Just(b"\xc3\x28\xf5\x80".to_vec()),
                    "[ -~]{0,6}".prop_map(|s| s.into_bytes()),
                ],
                0..5
            )
            .prop_map(|parts| parts.concat()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        #[test]
        fn same_as_reference(bytes in cell_bytes(), prefix in "[a-z]{0,3}") {
            proptest::prop_assert_eq!(escape_field(&bytes), reference::escape_field(&bytes));
            proptest::prop_assert_eq!(escape_set_element(&bytes), reference::escape_set_element(&bytes));
            // Appending after other bytes only appends.
            let mut out = prefix.clone().into_bytes();
            escape_field_into(&bytes, &mut out);
            proptest::prop_assert_eq!(out, (prefix + &reference::escape_field(&bytes)).into_bytes());
        }
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
