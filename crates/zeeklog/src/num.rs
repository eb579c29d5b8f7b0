//! Decimal formatting straight into a byte buffer (what `itoa` does), for the per-row hot path.

/// Two decimal digits for every value below 100.
const DIGITS2: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Append `v` in decimal.
///
/// Most numbers in a row are small (ports, TTLs, windows, counts, address octets): one or two
/// digits go straight in. Longer ones are written into a fixed buffer from its start and the
/// whole buffer is appended, then cut to the digits: a copy of a fixed size, which compiles to
/// a couple of moves where a copy of the digits alone would call `memcpy`.
#[inline(always)]
pub fn push_u64(out: &mut Vec<u8>, v: u64) {
    if v < 10 {
        out.push(b'0' + v as u8);
    } else if v < 100 {
        let d = v as usize * 2;
        out.extend_from_slice(&[DIGITS2[d], DIGITS2[d + 1]]);
    } else {
        push_u64_long(out, v);
    }
}

/// [`push_u64`] for `v` ≥ 100.
#[inline(never)]
fn push_u64_long(out: &mut Vec<u8>, mut v: u64) {
    let digits = v.ilog10() as usize + 1;
    let mut buf = [0u8; 20];
    let mut i = digits;
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGITS2[d..d + 2]);
    }
    if v >= 10 {
        let d = v as usize * 2;
        buf[0..2].copy_from_slice(&DIGITS2[d..d + 2]);
    } else {
        buf[0] = b'0' + v as u8;
    }
    let len = out.len();
    out.extend_from_slice(&buf);
    out.truncate(len + digits);
}

/// Append `v` in decimal, with a `-` when negative.
#[inline]
pub fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Append `v` (below 1 000 000) as exactly 6 digits, zero-padded.
#[inline]
pub fn push_6_digits(out: &mut Vec<u8>, v: u32) {
    debug_assert!(v < 1_000_000);
    let (a, b, c) = (
        (v / 10_000) as usize * 2,
        (v / 100 % 100) as usize * 2,
        (v % 100) as usize * 2,
    );
    out.extend_from_slice(&[
        DIGITS2[a],
        DIGITS2[a + 1],
        DIGITS2[b],
        DIGITS2[b + 1],
        DIGITS2[c],
        DIGITS2[c + 1],
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = b"x".to_vec();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn edges() {
        for v in [
            0u64,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            u32::MAX as u64,
            u64::MAX,
        ] {
            assert_eq!(s(|o| push_u64(o, v)), format!("x{v}"));
        }
        for v in [0i64, -1, 1, -10, i64::MIN, i64::MAX] {
            assert_eq!(s(|o| push_i64(o, v)), format!("x{v}"));
        }
        for v in [0u32, 7, 10, 999_999, 50_692, 100_000] {
            assert_eq!(s(|o| push_6_digits(o, v)), format!("x{v:06}"));
        }
    }

    proptest::proptest! {
        #[test]
        fn like_display(u in proptest::num::u64::ANY, i in proptest::num::i64::ANY, f in 0u32..1_000_000) {
            proptest::prop_assert_eq!(s(|o| push_u64(o, u)), format!("x{u}"));
            proptest::prop_assert_eq!(s(|o| push_u64(o, u % 100_000)), format!("x{}", u % 100_000));
            proptest::prop_assert_eq!(s(|o| push_i64(o, i)), format!("x{i}"));
            proptest::prop_assert_eq!(s(|o| push_6_digits(o, f)), format!("x{f:06}"));
        }
    }
}
