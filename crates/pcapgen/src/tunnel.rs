//! Tunnels: each function returns a complete outer IP packet whose payload
//! carries `inner` (an IP packet or an Ethernet frame, as stated).
//!
//! Outer packets use TTL / hop limit 64, IPv4 identification 0 and DF clear.
//! The outer family is taken from the outer source address.
//!
//! Every function panics on an unparsable address, mixed outer address
//! families, an inner packet that is not IPv4/IPv6 where one is required, or
//! a result too big for the IP length field.

use std::net::IpAddr;

use etherparse::{
    icmpv4, icmpv6, Icmpv4Type, Icmpv6Type, IpFragOffset, IpHeaders, IpNumber, Ipv4Header,
    Ipv6Header, PacketBuilder,
};

use crate::link::{ethertype, ip_version};

/// UDP destination port of VXLAN.
pub const VXLAN_PORT: u16 = 4789;
/// UDP source port used for VXLAN packets.
pub const VXLAN_SRC_PORT: u16 = 49152;
/// UDP port of Teredo servers/relays (the outer source port here).
pub const TEREDO_PORT: u16 = 3544;
/// The high UDP destination port used for Teredo packets.
pub const TEREDO_CLIENT_PORT: u16 = 40000;
/// GRE sequence number written by [`erspan2`] and [`erspan3`].
pub const ERSPAN_GRE_SEQ: u32 = 1;

fn parse_pair(src: &str, dst: &str) -> (IpAddr, IpAddr) {
    let p = |s: &str| -> IpAddr {
        s.parse()
            .unwrap_or_else(|e| panic!("invalid IP address {s:?}: {e}"))
    };
    let (s, d) = (p(src), p(dst));
    assert_eq!(
        s.is_ipv4(),
        d.is_ipv4(),
        "mixed address families: {s} / {d}"
    );
    (s, d)
}

fn ip_headers(src: IpAddr, dst: IpAddr, proto: u8) -> IpHeaders {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = Ipv4Header::new(0, 64, IpNumber(proto), s.octets(), d.octets())
                .expect("zero payload length fits");
            h.dont_fragment = false;
            IpHeaders::Ipv4(h, Default::default())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => IpHeaders::Ipv6(
            Ipv6Header {
                traffic_class: 0,
                flow_label: Default::default(),
                payload_length: 0,
                next_header: IpNumber(proto),
                hop_limit: 64,
                source: s.octets(),
                destination: d.octets(),
            },
            Default::default(),
        ),
        (s, d) => panic!("mixed address families: {s} / {d}"),
    }
}

/// An IP packet from `src` to `dst` with IP protocol / next header `proto`
/// and the given payload (IPv4 or IPv6 by the address family).
pub fn ip_packet(src: &str, dst: &str, proto: u8, payload: &[u8]) -> Vec<u8> {
    let (s, d) = parse_pair(src, dst);
    let mut out = Vec::new();
    match ip_headers(s, d, proto) {
        IpHeaders::Ipv4(mut h, _) => {
            h.set_payload_len(payload.len())
                .unwrap_or_else(|e| panic!("IPv4 payload too big: {e}"));
            h.header_checksum = h.calc_header_checksum();
            out.extend_from_slice(&h.to_bytes());
        }
        IpHeaders::Ipv6(mut h, _) => {
            h.set_payload_length(payload.len())
                .unwrap_or_else(|e| panic!("IPv6 payload too big: {e}"));
            out.extend_from_slice(&h.to_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A UDP datagram in an IP packet, lengths and checksums computed.
pub fn udp_packet(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (s, d) = parse_pair(src, dst);
    let builder = PacketBuilder::ip(ip_headers(s, d, 17)).udp(sport, dport);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder
        .write(&mut out, payload)
        .unwrap_or_else(|e| panic!("cannot build UDP packet: {e}"));
    out
}

/// IP-in-IP: protocol 4 for an inner IPv4 packet, 41 for inner IPv6.
pub fn ipip(outer_src: &str, outer_dst: &str, inner_ip: &[u8]) -> Vec<u8> {
    let proto = if ip_version(inner_ip) == 4 { 4 } else { 41 };
    ip_packet(outer_src, outer_dst, proto, inner_ip)
}

fn gre_packet(src: &str, dst: &str, flags: u16, proto: u16, opt: &[u32], inner: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + 4 * opt.len() + inner.len());
    p.extend_from_slice(&flags.to_be_bytes());
    p.extend_from_slice(&proto.to_be_bytes());
    for o in opt {
        p.extend_from_slice(&o.to_be_bytes());
    }
    p.extend_from_slice(inner);
    ip_packet(src, dst, 47, &p)
}

const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;

/// GRE version 0 without optional fields, protocol 0x0800 / 0x86DD by the
/// inner IP version.
pub fn gre(outer_src: &str, outer_dst: &str, inner_ip: &[u8]) -> Vec<u8> {
    gre_packet(outer_src, outer_dst, 0, ethertype(inner_ip), &[], inner_ip)
}

/// GRE version 0 with the K and S bits set: key, then sequence number.
pub fn gre_with_key_seq(
    outer_src: &str,
    outer_dst: &str,
    key: u32,
    seq: u32,
    inner_ip: &[u8],
) -> Vec<u8> {
    gre_packet(
        outer_src,
        outer_dst,
        GRE_K | GRE_S,
        ethertype(inner_ip),
        &[key, seq],
        inner_ip,
    )
}

/// GRE protocol 0x6558 (transparent Ethernet bridging) carrying an Ethernet
/// frame.
pub fn gre_eth(outer_src: &str, outer_dst: &str, inner_eth: &[u8]) -> Vec<u8> {
    gre_packet(outer_src, outer_dst, 0, 0x6558, &[], inner_eth)
}

/// ERSPAN type II: GRE with the S bit and sequence number
/// [`ERSPAN_GRE_SEQ`], protocol 0x88BE, then the 8-byte ERSPAN II header
/// (version 1, VLAN 0, COS 0, En 0, T 0, session id = `session` masked to 10
/// bits, index 0) and the Ethernet frame.
pub fn erspan2(outer_src: &str, outer_dst: &str, session: u16, inner_eth: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + inner_eth.len());
    let word0: u32 = (1 << 28) | u32::from(session & 0x03ff);
    p.extend_from_slice(&word0.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    p.extend_from_slice(inner_eth);
    gre_packet(outer_src, outer_dst, GRE_S, 0x88BE, &[ERSPAN_GRE_SEQ], &p)
}

/// ERSPAN type III: GRE with the S bit and sequence number
/// [`ERSPAN_GRE_SEQ`], protocol 0x22EB, then the 12-byte ERSPAN III header
/// (version 2, VLAN 0, COS 0, BSO 0, T 0, session id = `session` masked to 10
/// bits, timestamp 0, SGT 0, P 0, FT 0 (Ethernet), HW id 0, D 0, Gra 0,
/// O 0 = no platform subheader) and the Ethernet frame.
pub fn erspan3(outer_src: &str, outer_dst: &str, session: u16, inner_eth: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + inner_eth.len());
    let word0: u32 = (2 << 28) | u32::from(session & 0x03ff);
    p.extend_from_slice(&word0.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    p.extend_from_slice(inner_eth);
    gre_packet(outer_src, outer_dst, GRE_S, 0x22EB, &[ERSPAN_GRE_SEQ], &p)
}

/// VXLAN: UDP from port [`VXLAN_SRC_PORT`] to 4789, 8-byte VXLAN header (I
/// flag set, VNI = `vni` masked to 24 bits), then the Ethernet frame.
pub fn vxlan(outer_src: &str, outer_dst: &str, vni: u32, inner_eth: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + inner_eth.len());
    p.extend_from_slice(&[0x08, 0, 0, 0]);
    p.extend_from_slice(&((vni & 0x00ff_ffff) << 8).to_be_bytes());
    p.extend_from_slice(inner_eth);
    udp_packet(outer_src, outer_dst, VXLAN_SRC_PORT, VXLAN_PORT, &p)
}

fn teredo_packet(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    udp_packet(src, dst, TEREDO_PORT, TEREDO_CLIENT_PORT, payload)
}

/// Teredo: UDP from port 3544 to [`TEREDO_CLIENT_PORT`], payload = the IPv6
/// packet itself.
pub fn teredo(outer_src: &str, outer_dst: &str, inner_ipv6: &[u8]) -> Vec<u8> {
    assert_eq!(ip_version(inner_ipv6), 6, "Teredo carries IPv6");
    teredo_packet(outer_src, outer_dst, inner_ipv6)
}

/// Like [`teredo`], with the 8-byte origin indication (0x0000, obfuscated
/// port, obfuscated IPv4 address) before the IPv6 packet. The origin is the
/// outer destination address and port (what a Teredo server tells a client);
/// the address part is zero for an IPv6 outer packet.
pub fn teredo_origin(outer_src: &str, outer_dst: &str, inner_ipv6: &[u8]) -> Vec<u8> {
    assert_eq!(ip_version(inner_ipv6), 6, "Teredo carries IPv6");
    let (_, d) = parse_pair(outer_src, outer_dst);
    let addr = match d {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => [0; 4],
    };
    let mut p = Vec::with_capacity(8 + inner_ipv6.len());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&(TEREDO_CLIENT_PORT ^ 0xffff).to_be_bytes());
    p.extend(addr.iter().map(|b| b ^ 0xff));
    p.extend_from_slice(inner_ipv6);
    teredo_packet(outer_src, outer_dst, &p)
}

/// Number of bytes an ICMP error quotes from `ip`: its IP header (IPv4: IHL
/// words, IPv6: 40 bytes) + 20 bytes, capped at the packet length.
pub fn quote_len(ip: &[u8]) -> usize {
    let hdr = if ip_version(ip) == 4 {
        usize::from(ip[0] & 0x0f) * 4
    } else {
        40
    };
    (hdr + 20).min(ip.len())
}

/// ICMP destination unreachable from `src` to `dst`: ICMPv4 type 3 code 3
/// (port unreachable), or for IPv6 addresses ICMPv6 type 1 code 4 (port
/// unreachable); the body quotes the first [`quote_len`] bytes of
/// `quoted_ip` (IP header + 20 bytes of TCP header).
pub fn icmp_unreachable_quoting(src: &str, dst: &str, quoted_ip: &[u8]) -> Vec<u8> {
    let (s, d) = parse_pair(src, dst);
    let quote = &quoted_ip[..quote_len(quoted_ip)];
    let mut out = Vec::new();
    match s {
        IpAddr::V4(_) => {
            let b = PacketBuilder::ip(ip_headers(s, d, 1)).icmpv4(
                Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port),
            );
            b.write(&mut out, quote)
        }
        IpAddr::V6(_) => {
            let b = PacketBuilder::ip(ip_headers(s, d, 58)).icmpv6(
                Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port),
            );
            b.write(&mut out, quote)
        }
    }
    .unwrap_or_else(|e| panic!("cannot build ICMP packet: {e}"));
    out
}

/// Splits an IPv4 packet into two fragments. The first (MF set, the original
/// fragment offset) carries `first_payload_bytes` of the IP payload; the
/// second (offset advanced by that amount, MF as in the original) carries
/// the rest. Both keep the original header (identification, TTL, protocol,
/// options) except DF, which is cleared; lengths and header checksums are
/// recomputed.
///
/// # Panics
/// If `ip` is not a valid IPv4 packet, or `first_payload_bytes` is zero, not
/// a multiple of 8, or not less than the payload length.
pub fn fragment_v4(ip: &[u8], first_payload_bytes: usize) -> (Vec<u8>, Vec<u8>) {
    let (h, _) =
        Ipv4Header::from_slice(ip).unwrap_or_else(|e| panic!("not a valid IPv4 packet: {e}"));
    let hl = h.header_len();
    let total = usize::from(h.total_len);
    assert!(total <= ip.len(), "IPv4 total length exceeds the packet");
    let payload = &ip[hl..total];
    let n = first_payload_bytes;
    assert!(
        n > 0 && n.is_multiple_of(8) && n < payload.len(),
        "first fragment size {n} must be a positive multiple of 8 below the payload length {}",
        payload.len()
    );
    let build = |mf: bool, offset_units: u16, part: &[u8]| -> Vec<u8> {
        let mut f = h.clone();
        f.dont_fragment = false;
        f.more_fragments = mf;
        f.fragment_offset = IpFragOffset::try_new(offset_units)
            .unwrap_or_else(|e| panic!("fragment offset too big: {e}"));
        f.set_payload_len(part.len()).expect("fragment fits");
        f.header_checksum = f.calc_header_checksum();
        let mut v = f.to_bytes().to_vec();
        v.extend_from_slice(part);
        v
    };
    let base = h.fragment_offset.value();
    let second_off = u16::try_from(n / 8)
        .ok()
        .and_then(|k| base.checked_add(k))
        .expect("fragment offset too big");
    (
        build(true, base, &payload[..n]),
        build(h.more_fragments, second_off, &payload[n..]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;
    use crate::{ethernet_frame, flags, Tcp};
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn inner4() -> Vec<u8> {
        Tcp::new("192.168.1.1", 1000, "192.168.1.2", 80)
            .flags(flags::RST)
            .payload(&b"abc"[..])
            .to_ip()
    }

    fn inner6() -> Vec<u8> {
        Tcp::new("2001:db8::a", 1000, "2001:db8::b", 80)
            .flags(flags::RST | flags::ACK)
            .to_ip()
    }

    /// Parses an outer packet, checks its header checksum (IPv4) and returns
    /// (protocol, IP payload).
    fn outer(p: &[u8]) -> (u8, Vec<u8>) {
        let s = SlicedPacket::from_ip(p).expect("outer parses");
        match s.net.unwrap() {
            NetSlice::Ipv4(v4) => {
                assert_eq!(usize::from(v4.header().total_len()), p.len());
                assert_eq!(checksum::plain(v4.header().slice()), 0);
                (v4.payload().ip_number.0, v4.payload().payload.to_vec())
            }
            NetSlice::Ipv6(v6) => {
                assert_eq!(usize::from(v6.header().payload_length()) + 40, p.len());
                (v6.payload().ip_number.0, v6.payload().payload.to_vec())
            }
            NetSlice::Arp(_) => panic!(),
        }
    }

    #[test]
    fn ipip_both_families() {
        for (os, od) in [("1.1.1.1", "2.2.2.2"), ("2001::1", "2001::2")] {
            for (inner, proto) in [(inner4(), 4), (inner6(), 41)] {
                let p = ipip(os, od, &inner);
                let (pr, pl) = outer(&p);
                assert_eq!(pr, proto);
                assert_eq!(pl, inner);
                let hl = if os.contains(':') { 40 } else { 20 };
                assert_eq!(&p[hl..], &inner[..]);
            }
        }
    }

    #[test]
    fn gre_plain_and_key_seq() {
        let p = gre("1.1.1.1", "2.2.2.2", &inner4());
        let (pr, pl) = outer(&p);
        assert_eq!(pr, 47);
        assert_eq!(&pl[..4], &[0, 0, 0x08, 0x00]);
        assert_eq!(&pl[4..], &inner4()[..]);

        let p = gre("2001::1", "2001::2", &inner6());
        let (pr, pl) = outer(&p);
        assert_eq!(pr, 47);
        assert_eq!(&pl[..4], &[0, 0, 0x86, 0xdd]);
        assert_eq!(&p[44..], &inner6()[..]);

        let p = gre_with_key_seq("1.1.1.1", "2.2.2.2", 0x01020304, 0x0a0b0c0d, &inner6());
        let (_, pl) = outer(&p);
        assert_eq!(
            &pl[..12],
            &[0x30, 0, 0x86, 0xdd, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d]
        );
        assert_eq!(&pl[12..], &inner6()[..]);
    }

    #[test]
    fn gre_eth_and_erspan() {
        let eth = ethernet_frame(&inner4());
        let p = gre_eth("1.1.1.1", "2.2.2.2", &eth);
        let (_, pl) = outer(&p);
        assert_eq!(&pl[..4], &[0, 0, 0x65, 0x58]);
        assert_eq!(&pl[4..], &eth[..]);

        let p = erspan2("1.1.1.1", "2.2.2.2", 0x0155, &eth);
        let (pr, pl) = outer(&p);
        assert_eq!(pr, 47);
        assert_eq!(&pl[..8], &[0x10, 0, 0x88, 0xbe, 0, 0, 0, 1]);
        assert_eq!(&pl[8..16], &[0x10, 0x00, 0x01, 0x55, 0, 0, 0, 0]);
        assert_eq!(&pl[16..], &eth[..]);
        let inner = SlicedPacket::from_ethernet(&pl[16..]).unwrap();
        assert!(matches!(inner.transport, Some(TransportSlice::Tcp(_))));

        let p = erspan3("2001::1", "2001::2", 0x0401, &eth);
        let (_, pl) = outer(&p);
        assert_eq!(&pl[..8], &[0x10, 0, 0x22, 0xeb, 0, 0, 0, 1]);
        assert_eq!(
            &pl[8..20],
            &[0x20, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&pl[20..], &eth[..]);
    }

    #[test]
    fn vxlan_layout() {
        let eth = ethernet_frame(&inner6());
        for (s, d) in [("1.1.1.1", "2.2.2.2"), ("2001::1", "2001::2")] {
            let p = vxlan(s, d, 0x123456, &eth);
            let sp = SlicedPacket::from_ip(&p).unwrap();
            let Some(TransportSlice::Udp(u)) = sp.transport else {
                panic!()
            };
            assert_eq!(u.source_port(), VXLAN_SRC_PORT);
            assert_eq!(u.destination_port(), 4789);
            assert_eq!(usize::from(u.length()), 8 + 8 + eth.len());
            let pl = u.payload();
            assert_eq!(&pl[..8], &[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
            assert_eq!(&pl[8..], &eth[..]);
            let (src, dst) = parse_pair(s, d);
            let udp_seg = &p[p.len() - (16 + eth.len())..];
            assert_eq!(checksum::pseudo(src, dst, 17, udp_seg), 0, "UDP checksum");
        }
    }

    #[test]
    fn teredo_layouts() {
        let inner = inner6();
        let p = teredo("192.0.2.1", "198.51.100.2", &inner);
        assert_eq!(&p[20..22], &3544u16.to_be_bytes());
        assert_eq!(&p[22..24], &TEREDO_CLIENT_PORT.to_be_bytes());
        assert_eq!(&p[28..], &inner[..]);

        let p = teredo_origin("192.0.2.1", "198.51.100.2", &inner);
        let pl = &p[28..];
        assert_eq!(&pl[..2], &[0, 0]);
        assert_eq!(&pl[2..4], &(TEREDO_CLIENT_PORT ^ 0xffff).to_be_bytes());
        assert_eq!(&pl[4..8], &[!198, !51, !100, !2]);
        assert_eq!(&pl[8..], &inner[..]);
        let sp = SlicedPacket::from_ip(&p).unwrap();
        assert!(matches!(sp.transport, Some(TransportSlice::Udp(_))));
    }

    #[test]
    fn icmp_quotes() {
        let q4 = Tcp::new("10.0.0.1", 1, "10.0.0.2", 2)
            .payload(vec![9; 50])
            .to_ip();
        let p = icmp_unreachable_quoting("10.0.0.2", "10.0.0.1", &q4);
        let (pr, pl) = outer(&p);
        assert_eq!(pr, 1);
        assert_eq!(&pl[..2], &[3, 3]);
        assert_eq!(checksum::plain(&pl), 0, "ICMPv4 checksum");
        assert_eq!(&pl[4..8], &[0, 0, 0, 0]);
        assert_eq!(&pl[8..], &q4[..40]);

        let q6 = Tcp::new("2001::1", 1, "2001::2", 2)
            .payload(vec![9; 50])
            .to_ip();
        let p = icmp_unreachable_quoting("2001::2", "2001::1", &q6);
        let (pr, pl) = outer(&p);
        assert_eq!(pr, 58);
        assert_eq!(&pl[..2], &[1, 4]);
        let (s, d) = parse_pair("2001::2", "2001::1");
        assert_eq!(checksum::pseudo(s, d, 58, &pl), 0, "ICMPv6 checksum");
        assert_eq!(&pl[8..], &q6[..60]);

        // A short packet is quoted whole.
        let short = &q4[..30];
        assert_eq!(quote_len(short), 30);
    }

    #[test]
    fn fragments() {
        let ip = Tcp::new("10.0.0.1", 1, "10.0.0.2", 2)
            .ip_id(0x4242)
            .payload(vec![5; 30])
            .to_ip();
        let (a, b) = fragment_v4(&ip, 16);
        assert_eq!(a.len(), 20 + 16);
        assert_eq!(b.len(), 20 + 34);
        for f in [&a, &b] {
            assert_eq!(checksum::plain(&f[..20]), 0);
            assert_eq!(&f[4..6], &[0x42, 0x42]);
            assert_eq!(usize::from(u16::from_be_bytes([f[2], f[3]])), f.len());
        }
        assert_eq!(&a[6..8], &[0x20, 0x00], "MF, offset 0");
        assert_eq!(&b[6..8], &[0x00, 0x02], "offset 2 units");
        let mut joined = a[20..].to_vec();
        joined.extend_from_slice(&b[20..]);
        assert_eq!(joined, ip[20..].to_vec());
        let sa = SlicedPacket::from_ip(&a).unwrap();
        match sa.net.unwrap() {
            NetSlice::Ipv4(v4) => assert!(v4.is_payload_fragmented()),
            _ => panic!(),
        }
    }

    #[test]
    #[should_panic(expected = "multiple of 8")]
    fn fragment_size_checked() {
        let ip = Tcp::new("10.0.0.1", 1, "10.0.0.2", 2).to_ip();
        let _ = fragment_v4(&ip, 12);
    }
}
