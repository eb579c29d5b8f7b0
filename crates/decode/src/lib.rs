//! Packet decoding: from a captured frame of any supported link type, through VLAN/MPLS/PPPoE and
//! tunnels (IP-in-IP, GRE, ERSPAN, VXLAN, GENEVE, Teredo), to the innermost TCP segment.
//!
//! IP layers (IPv4 options, IPv6 extension headers) are sliced with etherparse's lax slicer, so a
//! packet cut by the snap length still yields its headers; link layers, tunnels and the TCP header
//! are read by hand because etherparse does not cover them (or, for TCP, would reject a header
//! whose options were cut).

mod community_id;
mod flags;
mod reason;
mod sha1;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{IpNumber, LaxIpSlice, LenSource};

pub use community_id::{community_id_v1, CommunityIdKey};
pub use flags::{flags_tcpdump, tcp_flags};
pub use reason::{decode_rst_reason, RstReason};
/// SHA-1 digest (hardware-accelerated where the CPU allows), for the uid of rstscope-reset.
#[doc(hidden)]
pub use sha1::sha1_digest;

/// TCP options the classifier uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// (TSval, TSecr)
    pub timestamp: Option<(u32, u32)>,
}

/// One TCP segment: everything later stages need from one packet, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// Index of the capture file in the run.
    pub file: u32,
    /// 1-based packet number in that file.
    pub frame: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 identification; None for IPv6.
    pub ip_id: Option<u16>,
    /// IPv4 don't-fragment bit; None for IPv6.
    pub df: Option<bool>,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// The 12-bit flags field (reserved bits included).
    pub flags: u16,
    pub window: u16,
    /// Options of SYN segments (the handshake is where they are negotiated, and the only place
    /// the classifier reads them); left empty on other segments, to keep the per-packet cost
    /// down — `parse_options` reads any segment's options on demand.
    pub options: TcpOptions,
    /// Payload length according to the IP and TCP headers.
    pub payload_len: u32,
    /// The payload bytes actually captured (at most `payload_len`).
    pub payload: &'a [u8],
    /// Number of tunnel layers above the innermost IP header.
    pub tunnel_depth: u8,
}

impl Segment<'_> {
    pub fn is_rst(&self) -> bool {
        self.flags & flags::RST != 0
    }
}

/// What one frame decoded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    Tcp(Segment<'a>),
    /// A well-formed packet that carries no TCP (ARP, UDP, ICMP — including ICMP errors that
    /// quote a TCP header —, other protocols).
    NotTcp,
    /// A non-first IP fragment: its TCP header (if any) is in another packet.
    NonFirstFragment,
    /// The capture's link type is not one we decode.
    UnknownLinkType(u16),
    /// The frame ends or goes wrong before a complete TCP header; the reason names the layer.
    Malformed(&'static str),
    /// IP inside more tunnel layers than are followed ([`MAX_TUNNEL_DEPTH`]): not looked into
    /// (it may hold a TCP segment, even a RST), and counted so.
    TooDeep,
}

/// Where the packet came from, copied into the segment.
#[derive(Debug, Clone, Copy)]
pub struct FrameInfo {
    pub ts_ns: i64,
    pub file: u32,
    pub frame: u64,
}

/// Tunnels nested deeper than this are not followed (a crafted packet could nest forever).
const MAX_DEPTH: u8 = 8;
/// Tunnel layers followed: IP inside more is [`Decoded::TooDeep`].
pub const MAX_TUNNEL_DEPTH: u8 = MAX_DEPTH;

/// Decode a captured frame of link type `linktype` (already masked to 16 bits).
pub fn decode(linktype: u16, data: &[u8], info: FrameInfo) -> Decoded<'_> {
    decode_with(linktype, data, info, true)
}

/// [`decode`], with or without the fixed-offset fast path for plain IP/TCP.
#[inline]
fn decode_with(linktype: u16, data: &[u8], info: FrameInfo, fast: bool) -> Decoded<'_> {
    let d = Decoder { info, fast };
    if fast && linktype == 1 {
        if let Some(decoded) = d.ethernet_ip_tcp_fast(data) {
            return decoded;
        }
    }
    match linktype {
        1 => d.ethernet(data, 0),
        0 | 108 => d.null_loop(data),
        12 | 14 | 101 | 228 | 229 => d.ip(data, 0),
        113 => d.sll(data),
        276 => d.sll2(data),
        10 => d.fddi(data),
        9 | 50 => d.ppp(data, 0),
        51 => d.pppoe_session(data, 0),
        104 => d.cisco_hdlc(data),
        other => Decoded::UnknownLinkType(other),
    }
}

/// Is this link type one `decode` understands?
pub fn link_type_supported(linktype: u16) -> bool {
    matches!(
        linktype,
        0 | 1 | 9 | 10 | 12 | 14 | 50 | 51 | 101 | 104 | 108 | 113 | 228 | 229 | 276
    )
}

#[inline(always)]
fn be16(d: &[u8], at: usize) -> u16 {
    let b: [u8; 2] = d[at..at + 2].try_into().expect("2-byte slice");
    u16::from_be_bytes(b)
}

#[inline(always)]
fn be32(d: &[u8], at: usize) -> u32 {
    let b: [u8; 4] = d[at..at + 4].try_into().expect("4-byte slice");
    u32::from_be_bytes(b)
}

struct Decoder {
    info: FrameInfo,
    /// Take the fixed-offset path for plain IPv4/IPv6 carrying TCP (false only in tests, to
    /// compare it with the general path).
    fast: bool,
}

impl Decoder {
    /// The most common frame in one straight line: Ethernet, at most one VLAN tag, then IP
    /// carrying TCP as [`Decoder::ip_tcp_fast`] reads it. None for anything else, which the
    /// general path (from the link layer on) then decodes. The segment is built in place
    /// instead of being passed up through the recursive link-layer functions.
    #[inline(always)]
    fn ethernet_ip_tcp_fast<'a>(&self, d: &'a [u8]) -> Option<Decoded<'a>> {
        if d.len() < 14 {
            return None;
        }
        let ip = match be16(d, 12) {
            0x0800 | 0x86dd => &d[14..],
            // One tag (802.1Q, 802.1ad or 0x9100): the same as the general path's recursion.
            0x8100 | 0x88a8 | 0x9100 if d.len() >= 18 && matches!(be16(d, 16), 0x0800 | 0x86dd) => {
                &d[18..]
            }
            _ => return None,
        };
        self.ip_tcp_fast(ip, 0)
    }

    fn ethernet<'a>(&self, d: &'a [u8], depth: u8) -> Decoded<'a> {
        if d.len() < 14 {
            return Decoded::Malformed("Ethernet header");
        }
        let et = be16(d, 12);
        if et <= 1500 {
            // 802.3 length field: an LLC header follows.
            self.llc(&d[14..], depth)
        } else {
            self.ethertype(et, &d[14..], depth)
        }
    }

    fn llc<'a>(&self, d: &'a [u8], depth: u8) -> Decoded<'a> {
        if d.len() >= 8 && d[0] == 0xaa && d[1] == 0xaa && d[2] == 0x03 {
            self.ethertype(be16(d, 6), &d[8..], depth)
        } else if d.len() < 3 {
            Decoded::Malformed("LLC header")
        } else {
            Decoded::NotTcp
        }
    }

    fn ethertype<'a>(&self, et: u16, d: &'a [u8], depth: u8) -> Decoded<'a> {
        match et {
            0x0800 | 0x86dd => self.ip(d, depth),
            // 802.1Q, 802.1ad (QinQ outer tag) and the old 0x9100 double tag
            0x8100 | 0x88a8 | 0x9100 => {
                if d.len() < 4 {
                    return Decoded::Malformed("VLAN tag");
                }
                self.ethertype(be16(d, 2), &d[4..], depth)
            }
            0x8847 | 0x8848 => self.mpls(d, depth),
            0x8864 => self.pppoe_session(d, depth),
            0x6558 => self.ethernet(d, depth),
            0x880b => self.ppp(d, depth),
            _ => Decoded::NotTcp,
        }
    }

    fn mpls<'a>(&self, mut d: &'a [u8], depth: u8) -> Decoded<'a> {
        loop {
            if d.len() < 4 {
                return Decoded::Malformed("MPLS label");
            }
            let bottom = d[2] & 0x01 != 0;
            d = &d[4..];
            if bottom {
                break;
            }
        }
        match d.first().map(|b| b >> 4) {
            Some(4) | Some(6) => self.ip(d, depth),
            // Pseudowire control word, then an Ethernet frame.
            Some(0) if d.len() >= 4 => self.ethernet(&d[4..], depth),
            None => Decoded::Malformed("MPLS payload"),
            _ => Decoded::NotTcp,
        }
    }

    fn pppoe_session<'a>(&self, d: &'a [u8], depth: u8) -> Decoded<'a> {
        if d.len() < 8 {
            return Decoded::Malformed("PPPoE header");
        }
        self.ppp_protocol(be16(d, 6), &d[8..], depth)
    }

    fn ppp<'a>(&self, d: &'a [u8], depth: u8) -> Decoded<'a> {
        let d = if d.len() >= 2 && d[0] == 0xff && d[1] == 0x03 {
            &d[2..]
        } else {
            d
        };
        match d.first() {
            None => Decoded::Malformed("PPP header"),
            // Protocol-field compression: an odd first byte is a one-byte protocol.
            Some(b) if b & 1 == 1 => self.ppp_protocol(*b as u16, &d[1..], depth),
            Some(_) if d.len() < 2 => Decoded::Malformed("PPP header"),
            Some(_) => self.ppp_protocol(be16(d, 0), &d[2..], depth),
        }
    }

    fn ppp_protocol<'a>(&self, proto: u16, d: &'a [u8], depth: u8) -> Decoded<'a> {
        match proto {
            0x0021 | 0x0057 => self.ip(d, depth),
            _ => Decoded::NotTcp,
        }
    }

    fn null_loop<'a>(&self, d: &'a [u8]) -> Decoded<'a> {
        if d.len() < 4 {
            return Decoded::Malformed("NULL/LOOP header");
        }
        // The family is in the capturing host's byte order (NULL) or network order (LOOP);
        // all AF values fit in 16 bits, so whichever reading is small is the right one.
        let le = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        let fam = if le > 0xffff { le.swap_bytes() } else { le };
        match fam {
            // AF_INET; AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, Darwin
            2 | 10 | 24 | 28 | 30 => self.ip(&d[4..], 0),
            _ => Decoded::NotTcp,
        }
    }

    fn sll<'a>(&self, d: &'a [u8]) -> Decoded<'a> {
        if d.len() < 16 {
            return Decoded::Malformed("Linux SLL header");
        }
        self.sll_payload(be16(d, 2), be16(d, 14), &d[16..])
    }

    fn sll2<'a>(&self, d: &'a [u8]) -> Decoded<'a> {
        if d.len() < 20 {
            return Decoded::Malformed("Linux SLL2 header");
        }
        self.sll_payload(be16(d, 8), be16(d, 0), &d[20..])
    }

    fn sll_payload<'a>(&self, arphrd: u16, proto: u16, d: &'a [u8]) -> Decoded<'a> {
        match (arphrd, proto) {
            // ARPHRD_IPGRE: the payload is a GRE packet
            (778, _) => self.gre(d, 1),
            // ARPHRD_NETLINK
            (824, _) => Decoded::NotTcp,
            // LINUX_SLL_P_802_2: an LLC header
            (_, 0x0004) => self.llc(d, 0),
            _ => self.ethertype(proto, d, 0),
        }
    }

    fn fddi<'a>(&self, d: &'a [u8]) -> Decoded<'a> {
        if d.len() < 13 {
            return Decoded::Malformed("FDDI header");
        }
        self.llc(&d[13..], 0)
    }

    fn cisco_hdlc<'a>(&self, d: &'a [u8]) -> Decoded<'a> {
        if d.len() < 4 {
            return Decoded::Malformed("Cisco HDLC header");
        }
        self.ethertype(be16(d, 2), &d[4..], 0)
    }

    #[inline]
    fn ip<'a>(&self, d: &'a [u8], depth: u8) -> Decoded<'a> {
        if depth > MAX_DEPTH {
            return Decoded::TooDeep;
        }
        if self.fast {
            if let Some(decoded) = self.ip_tcp_fast(d, depth) {
                return decoded;
            }
        }
        self.ip_general(d, depth)
    }

    /// The common case read at fixed offsets: IPv4 carrying TCP directly (options allowed, no
    /// authentication header), or IPv6 whose next header is TCP (no extension headers). Gives
    /// exactly what [`Decoder::ip_general`] gives for such packets, lengths included (snap-length
    /// cuts, Ethernet padding, total/payload length 0); None for anything else, which the
    /// general path then decodes.
    #[inline(always)]
    fn ip_tcp_fast<'a>(&self, d: &'a [u8], depth: u8) -> Option<Decoded<'a>> {
        let first = *d.first()?;
        match first >> 4 {
            4 => {
                let header_len = (first & 0x0f) as usize * 4;
                if header_len < 20 || d.len() < header_len || d[9] != 6 {
                    return None;
                }
                let frag = be16(d, 6);
                if frag & 0x1fff != 0 {
                    return Some(Decoded::NonFirstFragment);
                }
                let total = be16(d, 2) as usize;
                // As etherparse's lax slicer: a total length below the header length (0 with
                // TSO) falls back to the captured length; one above it is cut by the capture.
                let (payload, declared) = if total < header_len {
                    let p = &d[header_len..];
                    (p, p.len())
                } else {
                    (&d[header_len..total.min(d.len())], total - header_len)
                };
                let ip = IpInfo {
                    src: IpAddr::V4(Ipv4Addr::new(d[12], d[13], d[14], d[15])),
                    dst: IpAddr::V4(Ipv4Addr::new(d[16], d[17], d[18], d[19])),
                    ttl: d[8],
                    ip_id: Some(be16(d, 4)),
                    df: Some(frag & 0x4000 != 0),
                    depth,
                };
                Some(self.tcp(payload, declared, ip))
            }
            6 => {
                if d.len() < 40 || d[6] != 6 {
                    return None;
                }
                let plen = be16(d, 4) as usize;
                // Payload length 0 (jumbogram or unset): the captured length.
                let (payload, declared) = if plen == 0 {
                    let p = &d[40..];
                    (p, p.len())
                } else {
                    (&d[40..(40 + plen).min(d.len())], plen)
                };
                let addr = |at: usize| -> IpAddr {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&d[at..at + 16]);
                    IpAddr::V6(Ipv6Addr::from(a))
                };
                let ip = IpInfo {
                    src: addr(8),
                    dst: addr(24),
                    ttl: d[7],
                    ip_id: None,
                    df: None,
                    depth,
                };
                Some(self.tcp(payload, declared, ip))
            }
            _ => None,
        }
    }

    /// Any IP packet, through etherparse's lax slicer.
    fn ip_general<'a>(&self, d: &'a [u8], depth: u8) -> Decoded<'a> {
        let slice = match LaxIpSlice::from_slice(d) {
            Ok((s, _ext_err)) => s,
            Err(_) => return Decoded::Malformed("IP header"),
        };
        let payload = slice.payload();
        let header_and_ext_len = payload.payload.as_ptr() as usize - d.as_ptr() as usize;
        let (ttl, ip_id, df, declared) = match &slice {
            LaxIpSlice::Ipv4(v4) => {
                let h = v4.header();
                if h.fragments_offset().value() != 0 {
                    return Decoded::NonFirstFragment;
                }
                let total = h.total_len() as usize;
                // total_len 0 (TSO) or smaller than the headers: trust the capture.
                let declared = if total > header_and_ext_len {
                    total - header_and_ext_len
                } else {
                    payload.payload.len()
                };
                (
                    h.ttl(),
                    Some(h.identification()),
                    Some(h.dont_fragment()),
                    declared,
                )
            }
            LaxIpSlice::Ipv6(v6) => {
                let h = v6.header();
                if ipv6_non_first_fragment(v6.extensions()) {
                    return Decoded::NonFirstFragment;
                }
                let plen = h.payload_length() as usize;
                let declared = if plen != 0 && 40 + plen > header_and_ext_len {
                    40 + plen - header_and_ext_len
                } else {
                    payload.payload.len()
                };
                (h.hop_limit(), None, None, declared)
            }
        };
        let declared = if payload.len_source == LenSource::Slice && !payload.incomplete {
            payload.payload.len()
        } else {
            declared
        };
        let p = payload.payload;
        match payload.ip_number {
            IpNumber::TCP => {
                let ip = IpInfo {
                    src: slice.source_addr(),
                    dst: slice.destination_addr(),
                    ttl,
                    ip_id,
                    df,
                    depth,
                };
                self.tcp(p, declared, ip)
            }
            IpNumber::IPV4 | IpNumber::IPV6 if !payload.fragmented => self.ip(p, depth + 1),
            IpNumber::GRE if !payload.fragmented => self.gre(p, depth + 1),
            IpNumber::UDP if !payload.fragmented => self.udp(p, depth + 1),
            _ => Decoded::NotTcp,
        }
    }

    fn gre<'a>(&self, d: &'a [u8], depth: u8) -> Decoded<'a> {
        if d.len() < 4 {
            return Decoded::Malformed("GRE header");
        }
        let flags = d[0];
        let version = d[1] & 0x07;
        let proto = be16(d, 2);
        let mut off = 4;
        match version {
            0 => {
                if flags & 0x40 != 0 {
                    // source routing (RFC 1701): not used in practice
                    return Decoded::NotTcp;
                }
                if flags & 0x80 != 0 {
                    off += 4; // checksum + reserved
                }
                if flags & 0x20 != 0 {
                    off += 4; // key
                }
                if flags & 0x10 != 0 {
                    off += 4; // sequence number
                }
            }
            1 => {
                // Enhanced GRE (PPTP): key always present, seq and ack optional
                off += 4;
                if flags & 0x10 != 0 {
                    off += 4;
                }
                if d[1] & 0x80 != 0 {
                    off += 4;
                }
            }
            _ => return Decoded::NotTcp,
        }
        if d.len() < off {
            return Decoded::Malformed("GRE header");
        }
        let rest = &d[off..];
        match proto {
            // ERSPAN type II carries an 8-byte header (sequenced GRE); type I has none.
            0x88be => {
                if flags & 0x10 != 0 {
                    if rest.len() < 8 {
                        return Decoded::Malformed("ERSPAN header");
                    }
                    self.ethernet(&rest[8..], depth)
                } else {
                    self.ethernet(rest, depth)
                }
            }
            // ERSPAN type III: 12 bytes, plus an 8-byte platform subheader when O is set.
            0x22eb => {
                if rest.len() < 12 {
                    return Decoded::Malformed("ERSPAN header");
                }
                let skip = if rest[11] & 0x01 != 0 { 20 } else { 12 };
                if rest.len() < skip {
                    return Decoded::Malformed("ERSPAN header");
                }
                self.ethernet(&rest[skip..], depth)
            }
            _ => self.ethertype(proto, rest, depth),
        }
    }

    fn udp<'a>(&self, d: &'a [u8], depth: u8) -> Decoded<'a> {
        if d.len() < 8 {
            return Decoded::NotTcp;
        }
        let sport = be16(d, 0);
        let dport = be16(d, 2);
        let body = &d[8..];
        let either = |p: u16| sport == p || dport == p;
        if either(4789) && body.len() >= 8 && body[0] & 0x08 != 0 {
            return self.ethernet(&body[8..], depth);
        }
        if either(6081) && body.len() >= 8 && body[0] >> 6 == 0 {
            let opt_len = (body[0] & 0x3f) as usize * 4;
            if body.len() >= 8 + opt_len {
                return self.ethertype(be16(body, 2), &body[8 + opt_len..], depth);
            }
            return Decoded::Malformed("GENEVE header");
        }
        if either(3544) {
            return self.teredo(body, depth);
        }
        Decoded::NotTcp
    }

    fn teredo<'a>(&self, mut d: &'a [u8], depth: u8) -> Decoded<'a> {
        // Optional authentication header, then optional origin indication, then IPv6.
        if d.len() >= 4 && d[0] == 0x00 && d[1] == 0x01 {
            let id_len = d[2] as usize;
            let auth_len = d[3] as usize;
            let skip = 4 + id_len + auth_len + 8 + 1;
            if d.len() < skip {
                return Decoded::NotTcp;
            }
            d = &d[skip..];
        }
        if d.len() >= 8 && d[0] == 0x00 && d[1] == 0x00 {
            d = &d[8..];
        }
        if d.len() >= 40 && d[0] >> 4 == 6 {
            self.ip(d, depth)
        } else {
            Decoded::NotTcp
        }
    }

    #[inline(always)]
    fn tcp<'a>(&self, p: &'a [u8], declared: usize, ip: IpInfo) -> Decoded<'a> {
        if p.len() < 20 {
            return Decoded::Malformed("TCP header");
        }
        let data_offset = (p[12] >> 4) as usize * 4;
        if data_offset < 20 {
            return Decoded::Malformed("TCP header length");
        }
        let options_end = data_offset.min(p.len());
        let payload_len = declared.saturating_sub(data_offset);
        let payload = if p.len() > data_offset {
            &p[data_offset..p.len().min(data_offset + payload_len)]
        } else {
            &[][..]
        };
        let flags = be16(p, 12) & 0x0fff;
        Decoded::Tcp(Segment {
            ts_ns: self.info.ts_ns,
            file: self.info.file,
            frame: self.info.frame,
            src: ip.src,
            dst: ip.dst,
            ttl: ip.ttl,
            ip_id: ip.ip_id,
            df: ip.df,
            sport: be16(p, 0),
            dport: be16(p, 2),
            seq: be32(p, 4),
            ack: be32(p, 8),
            flags,
            window: be16(p, 14),
            options: if flags & tcp_flags::SYN != 0 {
                parse_options(&p[20..options_end])
            } else {
                TcpOptions::default()
            },
            payload_len: payload_len.min(u32::MAX as usize) as u32,
            payload,
            tunnel_depth: ip.depth,
        })
    }
}

/// Does a fragment header among these IPv6 extension headers have a non-zero offset?
///
/// etherparse's own iterator over the headers is not used: when its lax slicer stopped at a
/// header it could not read (cut short, or a hop-by-hop header not first), the iterator goes
/// on to read that header beyond the end of the slice. This walk stops at the end.
fn ipv6_non_first_fragment(exts: &etherparse::Ipv6ExtensionsSlice<'_>) -> bool {
    let Some(mut next) = exts.first_header() else {
        return false;
    };
    let mut rest = exts.slice();
    while rest.len() >= 8 {
        let len = match next {
            IpNumber::IPV6_HEADER_HOP_BY_HOP
            | IpNumber::IPV6_ROUTE_HEADER
            | IpNumber::IPV6_DESTINATION_OPTIONS => (rest[1] as usize + 1) * 8,
            IpNumber::IPV6_FRAGMENTATION_HEADER => {
                if be16(rest, 2) >> 3 != 0 {
                    return true;
                }
                8
            }
            IpNumber::AUTHENTICATION_HEADER => (rest[1] as usize + 2) * 4,
            _ => return false,
        };
        if len > rest.len() {
            return false;
        }
        next = IpNumber(rest[0]);
        rest = &rest[len..];
    }
    false
}

struct IpInfo {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    ip_id: Option<u16>,
    df: Option<bool>,
    depth: u8,
}

/// Parse TCP options, stopping quietly at the end-of-list option or at a malformed length.
#[inline]
pub fn parse_options(mut o: &[u8]) -> TcpOptions {
    let mut out = TcpOptions::default();
    while let Some(&kind) = o.first() {
        match kind {
            0 => break,
            1 => {
                o = &o[1..];
                continue;
            }
            _ => {}
        }
        if o.len() < 2 {
            break;
        }
        let len = o[1] as usize;
        if len < 2 || len > o.len() {
            break;
        }
        let body = &o[2..len];
        match (kind, body.len()) {
            (2, 2) => out.mss = Some(be16(body, 0)),
            (3, 1) => out.window_scale = Some(body[0]),
            (4, 0) => out.sack_permitted = true,
            (8, 8) => out.timestamp = Some((be32(body, 0), be32(body, 4))),
            _ => {}
        }
        o = &o[len..];
    }
    out
}

#[cfg(test)]
mod tests;
