//! RFC 1071 internet checksum helpers for the bytes etherparse cannot express.

use std::net::IpAddr;

/// Adds `data` as big-endian 16-bit words (odd tail padded with zero) to `sum`.
pub(crate) fn add(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Folds a running sum into the one's-complement checksum value.
pub(crate) fn finish(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // Truncation is the point: `sum` now fits in 16 bits.
    !(sum as u16)
}

/// Checksum of `segment` (with its checksum field zeroed) under the TCP/UDP
/// pseudo-header for `src`/`dst` and IP protocol `proto`.
pub(crate) fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, segment: &[u8]) -> u16 {
    let mut sum = 0u64;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum = add(sum, &s.octets());
            sum = add(sum, &d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            sum = add(sum, &s.octets());
            sum = add(sum, &d.octets());
        }
        _ => panic!("mixed address families: {src} / {dst}"),
    }
    sum += u64::from(proto);
    sum += segment.len() as u64;
    finish(add(sum, segment))
}

/// Plain internet checksum of `data` (e.g. an IPv4 header with a zeroed
/// checksum field).
#[cfg(test)]
pub(crate) fn plain(data: &[u8]) -> u16 {
    finish(add(0, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: sum of these words is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(plain(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(plain(&[0x12]), !0x1200);
        assert_eq!(plain(&[]), 0xffff);
    }

    #[test]
    fn verifies_to_zero() {
        let mut data = vec![0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06];
        data.extend_from_slice(&[0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let c = plain(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(plain(&data), 0);
    }
}
