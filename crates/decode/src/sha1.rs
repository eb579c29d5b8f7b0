//! SHA-1 of short inputs (Community IDs, uids). A thin wrapper over `sha1_smol`: hashing runs
//! once per connection with a RST, so a hand-written accelerated version is not worth its
//! `unsafe` (the project keeps `unsafe` to the memory map and madvise).

/// SHA-1 digest of `data`.
#[inline]
pub fn sha1_digest(data: &[u8]) -> [u8; 20] {
    sha1_smol::Sha1::from(data).digest().bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
