//! Community ID v1 (corelight/community-id-spec) for TCP/UDP/SCTP and port-less protocols.

use std::net::IpAddr;

use base64::Engine as _;

/// The flow a Community ID is computed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommunityIdKey {
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Ports; for ICMP, (type, code-or-counterpart) as the spec defines.
    pub sport: u16,
    pub dport: u16,
}

/// An address's bytes on the stack: (buffer, length 4 or 16).
fn addr_bytes(a: &IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(v4) => {
            b[..4].copy_from_slice(&v4.octets());
            (b, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 16),
    }
}

/// Community ID v1 of a flow, base64 form: `1:` + base64(SHA1(seed ‖ addrs ‖ proto ‖ 0 ‖ ports)).
/// Endpoints are ordered by (address, port) so both directions give the same ID. ICMP and ICMPv6
/// flows must already carry the spec's (type, counterpart/code) in the port fields; one-way ICMP
/// types are not swapped, see [`icmp_ports`].
pub fn community_id_v1(key: &CommunityIdKey, seed: u16) -> String {
    let (a_buf, a_len) = addr_bytes(&key.src);
    let (b_buf, b_len) = addr_bytes(&key.dst);
    let (a, b) = (&a_buf[..a_len], &b_buf[..b_len]);
    let has_ports = matches!(key.proto, 1 | 6 | 17 | 58 | 132);
    let (one_way, sport, dport) = match key.proto {
        1 | 58 => icmp_ports(key.proto, key.sport as u8, key.dport as u8),
        _ => (false, key.sport, key.dport),
    };
    let swap = !one_way && (a > b || (a == b && has_ports && sport > dport));
    let (a, b, pa, pb) = if swap {
        (b, a, dport, sport)
    } else {
        (a, b, sport, dport)
    };
    // The whole hash input, at most 2 + 16 + 16 + 2 + 4 bytes, hashed in one call.
    let mut input = [0u8; 40];
    let mut n = 0;
    for part in [&seed.to_be_bytes()[..], a, b, &[key.proto, 0]] {
        input[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    if has_ports {
        input[n..n + 2].copy_from_slice(&pa.to_be_bytes());
        input[n + 2..n + 4].copy_from_slice(&pb.to_be_bytes());
        n += 4;
    }
    let digest = crate::sha1::sha1_digest(&input[..n]);
    // "1:" + 28 base64 characters (20 bytes, padded)
    let mut out = String::with_capacity(30);
    out.push_str("1:");
    base64::engine::general_purpose::STANDARD.encode_string(digest, &mut out);
    out
}

/// ICMP mapping of the spec: given (type, code) return (one_way, port_a, port_b).
pub fn icmp_ports(proto: u8, icmp_type: u8, code: u8) -> (bool, u16, u16) {
    let counterpart = match proto {
        1 => match icmp_type {
            8 => Some(0),
            0 => Some(8),
            13 => Some(14),
            14 => Some(13),
            15 => Some(16),
            16 => Some(15),
            10 => Some(9),
            9 => Some(10),
            17 => Some(18),
            18 => Some(17),
            _ => None,
        },
        _ => match icmp_type {
            128 => Some(129),
            129 => Some(128),
            130 => Some(131),
            131 => Some(130),
            133 => Some(134),
            134 => Some(133),
            135 => Some(136),
            136 => Some(135),
            139 => Some(140),
            140 => Some(139),
            144 => Some(145),
            145 => Some(144),
            _ => None,
        },
    };
    match counterpart {
        Some(c) => (false, icmp_type as u16, c),
        None => (true, icmp_type as u16, code as u16),
    }
}
