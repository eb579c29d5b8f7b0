//! SHA-1 of short inputs (Community IDs, uids): with the x86 SHA extensions when the CPU has
//! them, otherwise `sha1_smol`. Both give the same digest; tests compare them.

/// SHA-1 digest of `data`.
#[inline]
pub fn sha1_digest(data: &[u8]) -> [u8; 20] {
    #[cfg(target_arch = "x86_64")]
    if shani::available() {
        // SAFETY: the CPU supports the SHA, SSSE3 and SSE4.1 instructions `digest` is compiled
        // for (checked at run time just above).
        return unsafe { shani::digest(data) };
    }
    sha1_smol::Sha1::from(data).digest().bytes()
}

#[cfg(target_arch = "x86_64")]
mod shani {
    use core::arch::x86_64::*;

    const INIT: [u32; 5] = [
        0x6745_2301,
        0xefcd_ab89,
        0x98ba_dcfe,
        0x1032_5476,
        0xc3d2_e1f0,
    ];

    #[inline]
    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }

    /// The whole digest: full blocks, then the padded tail (one or two blocks).
    ///
    /// # Safety
    /// The CPU must support SHA, SSSE3 and SSE4.1.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn digest(data: &[u8]) -> [u8; 20] {
        let mut state = INIT;
        let mut blocks = data.chunks_exact(64);
        for block in &mut blocks {
            // SAFETY: forwarded from the caller.
            unsafe { compress(&mut state, block.try_into().expect("64-byte chunk")) };
        }
        let rest = blocks.remainder();
        let mut tail = [0u8; 128];
        tail[..rest.len()].copy_from_slice(rest);
        tail[rest.len()] = 0x80;
        let tail_len = if rest.len() < 56 { 64 } else { 128 };
        let bits = (data.len() as u64).wrapping_mul(8);
        tail[tail_len - 8..tail_len].copy_from_slice(&bits.to_be_bytes());
        for block in tail[..tail_len].chunks_exact(64) {
            // SAFETY: forwarded from the caller.
            unsafe { compress(&mut state, block.try_into().expect("64-byte chunk")) };
        }
        let mut out = [0u8; 20];
        for (o, s) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&s.to_be_bytes());
        }
        out
    }

    /// One 64-byte block into `state`, four rounds per `sha1rnds4`. The message schedule for
    /// the four words of group t (t >= 4) is msg2(msg1(W[t-4], W[t-3]) ^ W[t-2], W[t-1]), built
    /// in the register W[t-4] occupied: msg1 in group t-3, the xor in group t-2, msg2 in t-1.
    ///
    /// # Safety
    /// The CPU must support SHA, SSSE3 and SSE4.1.
    // Each group! expands both parity branches and every schedule step, guarded by constant
    // conditions; liveness analysis does not fold them, so it sees assignments the last groups
    // never read.
    #[allow(unused_assignments)]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn compress(state: &mut [u32; 5], block: &[u8; 64]) {
        // Reverses the bytes of the whole 128-bit lane: big-endian words, word 0 highest.
        let mask = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0a0b_0c0d_0e0f);
        let abcd_save = _mm_set_epi32(
            state[0] as i32,
            state[1] as i32,
            state[2] as i32,
            state[3] as i32,
        );
        let e_save = _mm_set_epi32(state[4] as i32, 0, 0, 0);
        let mut m = [_mm_setzero_si128(); 4];
        for (i, w) in m.iter_mut().enumerate() {
            // SAFETY: `block` has 64 bytes; an unaligned 16-byte load at 16 * i (i < 4).
            let v = unsafe { _mm_loadu_si128(block.as_ptr().add(16 * i).cast()) };
            *w = _mm_shuffle_epi8(v, mask);
        }
        let mut abcd = abcd_save;
        let mut e0 = _mm_add_epi32(e_save, m[0]);
        let mut e1 = abcd;
        abcd = _mm_sha1rnds4_epu32::<0>(abcd, e0);

        macro_rules! group {
            ($t:literal, $f:literal) => {{
                const T: usize = $t;
                if T % 2 == 1 {
                    e1 = _mm_sha1nexte_epu32(e1, m[T % 4]);
                    e0 = abcd;
                    abcd = _mm_sha1rnds4_epu32::<$f>(abcd, e1);
                } else {
                    e0 = _mm_sha1nexte_epu32(e0, m[T % 4]);
                    e1 = abcd;
                    abcd = _mm_sha1rnds4_epu32::<$f>(abcd, e0);
                }
                if (3..=18).contains(&T) {
                    m[(T + 1) % 4] = _mm_sha1msg2_epu32(m[(T + 1) % 4], m[T % 4]);
                }
                if (1..=16).contains(&T) {
                    m[(T + 3) % 4] = _mm_sha1msg1_epu32(m[(T + 3) % 4], m[T % 4]);
                }
                if (2..=17).contains(&T) {
                    m[(T + 2) % 4] = _mm_xor_si128(m[(T + 2) % 4], m[T % 4]);
                }
            }};
        }
        // group 0 is above
        group!(1, 0);
        group!(2, 0);
        group!(3, 0);
        group!(4, 0);
        group!(5, 1);
        group!(6, 1);
        group!(7, 1);
        group!(8, 1);
        group!(9, 1);
        group!(10, 2);
        group!(11, 2);
        group!(12, 2);
        group!(13, 2);
        group!(14, 2);
        group!(15, 3);
        group!(16, 3);
        group!(17, 3);
        group!(18, 3);
        group!(19, 3);
        // After group 19 (odd), e0 holds A from before its rounds: E of the result.
        let e = _mm_sha1nexte_epu32(e0, e_save);
        let abcd = _mm_add_epi32(abcd, abcd_save);
        state[0] = _mm_extract_epi32::<3>(abcd) as u32;
        state[1] = _mm_extract_epi32::<2>(abcd) as u32;
        state[2] = _mm_extract_epi32::<1>(abcd) as u32;
        state[3] = _mm_extract_epi32::<0>(abcd) as u32;
        state[4] = _mm_extract_epi32::<3>(e) as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(data: &[u8]) -> [u8; 20] {
        sha1_smol::Sha1::from(data).digest().bytes()
    }

    #[test]
    fn known_digests() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(sha1_digest(b"")),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            hex(sha1_digest(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(sha1_digest(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    #[test]
    fn every_length_up_to_300_like_sha1_smol() {
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for n in 0..=data.len() {
            assert_eq!(sha1_digest(&data[..n]), reference(&data[..n]), "length {n}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sha_extensions_path_when_available() {
        if !shani::available() {
            return;
        }
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..=data.len() {
            // SAFETY: checked just above.
            assert_eq!(unsafe { shani::digest(&data[..n]) }, reference(&data[..n]));
        }
    }

    proptest::proptest! {
        #[test]
        fn random_inputs_like_sha1_smol(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            proptest::prop_assert_eq!(sha1_digest(&data), reference(&data));
        }
    }
}
