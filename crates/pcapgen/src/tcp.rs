//! TCP segments over IPv4 / IPv6 with every header field settable.

use std::net::IpAddr;

use etherparse::{ip_number, IpHeaders, Ipv4Header, Ipv6Header, PacketBuilder, TcpHeader};

use crate::{checksum, flags};

/// One TCP option, encoded in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpOpt {
    /// Kind 2, length 4: maximum segment size.
    Mss(u16),
    /// Kind 3, length 3: window scale shift count.
    WindowScale(u8),
    /// Kind 4, length 2: SACK permitted.
    SackPermitted,
    /// Kind 8, length 10: timestamp value and echo reply.
    Timestamp(u32, u32),
    /// Kind 1: a single no-operation byte.
    Nop,
    /// Any option as kind + data. Kinds 0 (end of list) and 1 (no-op) with
    /// empty data are written as the single kind byte; every other option is
    /// written as kind, length (2 + data length), data.
    Raw(u8, Vec<u8>),
}

impl TcpOpt {
    /// The option's bytes as they appear in the TCP header.
    ///
    /// # Panics
    /// If a [`TcpOpt::Raw`] option carries more than 38 data bytes (its length
    /// byte and the 40-byte option space cannot hold more).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            TcpOpt::Mss(v) => {
                let b = v.to_be_bytes();
                vec![2, 4, b[0], b[1]]
            }
            TcpOpt::WindowScale(s) => vec![3, 3, *s],
            TcpOpt::SackPermitted => vec![4, 2],
            TcpOpt::Timestamp(val, ecr) => {
                let mut v = vec![8, 10];
                v.extend_from_slice(&val.to_be_bytes());
                v.extend_from_slice(&ecr.to_be_bytes());
                v
            }
            TcpOpt::Nop => vec![1],
            TcpOpt::Raw(kind @ (0 | 1), data) if data.is_empty() => vec![*kind],
            TcpOpt::Raw(kind, data) => {
                assert!(
                    data.len() <= 38,
                    "TCP option kind {kind} carries {} data bytes (at most 38 fit)",
                    data.len()
                );
                let mut v = Vec::with_capacity(2 + data.len());
                v.push(*kind);
                // Cannot truncate: data.len() <= 38 was checked above.
                v.push(2 + data.len() as u8);
                v.extend_from_slice(data);
                v
            }
        }
    }
}

/// One TCP segment over IPv4 or IPv6 (the addresses decide), with every
/// header field settable. The urgent pointer is always 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tcp {
    /// Source address; its family decides IPv4 or IPv6.
    pub src: IpAddr,
    /// Destination address; same family as `src`.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number, written even when the ACK flag is clear.
    pub ack: u32,
    /// The 12-bit flags field (see [`crate::flags`]); bits above 0xFFF are ignored.
    pub flags: u16,
    /// Window size.
    pub window: u16,
    /// IPv4 TTL, or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 identification (ignored for IPv6).
    pub ip_id: u16,
    /// IPv4 don't-fragment bit (ignored for IPv6).
    pub df: bool,
    /// TCP options, encoded in order and padded with end-of-list bytes to a
    /// multiple of 4.
    pub options: Vec<TcpOpt>,
    /// TCP payload.
    pub payload: Vec<u8>,
}

fn parse_addr(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("invalid IP address {s:?}: {e}"))
}

impl Tcp {
    /// A segment from `src`:`sport` to `dst`:`dport` (addresses as strings,
    /// e.g. "10.0.0.1" or "2001:db8::1"). Defaults: seq 0, ack 0, flags 0,
    /// window 65535, ttl 64, ip_id 0, df true, no options, no payload.
    ///
    /// # Panics
    /// If an address does not parse or the two are of different families.
    pub fn new(src: &str, sport: u16, dst: &str, dport: u16) -> Tcp {
        Tcp::from_addrs(parse_addr(src), sport, parse_addr(dst), dport)
    }

    /// Like [`Tcp::new`] with already parsed addresses.
    ///
    /// # Panics
    /// If the two addresses are of different families.
    pub fn from_addrs(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Tcp {
        assert_eq!(
            src.is_ipv4(),
            dst.is_ipv4(),
            "mixed address families: {src} / {dst}"
        );
        Tcp {
            src,
            dst,
            sport,
            dport,
            seq: 0,
            ack: 0,
            flags: 0,
            window: 65535,
            ttl: 64,
            ip_id: 0,
            df: true,
            options: Vec::new(),
            payload: Vec::new(),
        }
    }

    /// Sets the sequence number.
    pub fn seq(mut self, seq: u32) -> Tcp {
        self.seq = seq;
        self
    }

    /// Sets the acknowledgment number (the ACK flag is not touched).
    pub fn ack(mut self, ack: u32) -> Tcp {
        self.ack = ack;
        self
    }

    /// Sets the 12-bit flags field (replaces all flags).
    pub fn flags(mut self, flags: u16) -> Tcp {
        self.flags = flags;
        self
    }

    /// Sets the window size.
    pub fn window(mut self, window: u16) -> Tcp {
        self.window = window;
        self
    }

    /// Sets the IPv4 TTL / IPv6 hop limit.
    pub fn ttl(mut self, ttl: u8) -> Tcp {
        self.ttl = ttl;
        self
    }

    /// Sets the IPv4 identification.
    pub fn ip_id(mut self, ip_id: u16) -> Tcp {
        self.ip_id = ip_id;
        self
    }

    /// Sets the IPv4 don't-fragment bit.
    pub fn df(mut self, df: bool) -> Tcp {
        self.df = df;
        self
    }

    /// Appends one TCP option.
    pub fn option(mut self, opt: TcpOpt) -> Tcp {
        self.options.push(opt);
        self
    }

    /// Sets the payload.
    pub fn payload(mut self, payload: impl Into<Vec<u8>>) -> Tcp {
        self.payload = payload.into();
        self
    }

    /// The same 4-tuple reversed, every other field at its default.
    pub fn reply(&self) -> Tcp {
        Tcp::from_addrs(self.dst, self.dport, self.src, self.sport)
    }

    /// The encoded option bytes, padded with end-of-list (0) bytes to a
    /// multiple of 4.
    ///
    /// # Panics
    /// If the options take more than 40 bytes.
    pub fn options_bytes(&self) -> Vec<u8> {
        let mut opts: Vec<u8> = self.options.iter().flat_map(TcpOpt::to_bytes).collect();
        while !opts.len().is_multiple_of(4) {
            opts.push(0);
        }
        assert!(
            opts.len() <= 40,
            "TCP options take {} bytes (at most 40 fit)",
            opts.len()
        );
        opts
    }

    /// IP header + TCP header + payload, with correct lengths and checksums.
    ///
    /// The ACK field is written even when the ACK flag is clear; the AE bit
    /// and the reserved bits of `flags` land in the low nibble of TCP byte 12.
    ///
    /// # Panics
    /// If the options take more than 40 bytes, the packet does not fit the IP
    /// length field, or the addresses are of different families.
    pub fn to_ip(&self) -> Vec<u8> {
        let f = self.flags;
        let mut th = TcpHeader::new(self.sport, self.dport, self.seq, self.window);
        th.acknowledgment_number = self.ack;
        th.fin = f & flags::FIN != 0;
        th.syn = f & flags::SYN != 0;
        th.rst = f & flags::RST != 0;
        th.psh = f & flags::PSH != 0;
        th.ack = f & flags::ACK != 0;
        th.urg = f & flags::URG != 0;
        th.ece = f & flags::ECE != 0;
        th.cwr = f & flags::CWR != 0;
        th.ns = f & flags::AE != 0;
        th.set_options_raw(&self.options_bytes())
            .expect("options are padded and at most 40 bytes");

        let ip = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut h = Ipv4Header::new(0, self.ttl, ip_number::TCP, s.octets(), d.octets())
                    .expect("zero payload length fits");
                h.identification = self.ip_id;
                h.dont_fragment = self.df;
                IpHeaders::Ipv4(h, Default::default())
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => IpHeaders::Ipv6(
                Ipv6Header {
                    traffic_class: 0,
                    flow_label: Default::default(),
                    payload_length: 0,
                    next_header: ip_number::TCP,
                    hop_limit: self.ttl,
                    source: s.octets(),
                    destination: d.octets(),
                },
                Default::default(),
            ),
            (s, d) => panic!("mixed address families: {s} / {d}"),
        };
        let builder = PacketBuilder::ip(ip).tcp_header(th);
        let mut out = Vec::with_capacity(builder.size(self.payload.len()));
        builder
            .write(&mut out, &self.payload)
            .unwrap_or_else(|e| panic!("cannot build TCP packet: {e}"));

        let reserved = f & flags::RESERVED;
        if reserved != 0 {
            // etherparse has no field for the reserved bits: set them in the
            // serialized header and recompute the TCP checksum.
            let ip_len = match self.src {
                IpAddr::V4(_) => usize::from(out[0] & 0x0f) * 4,
                IpAddr::V6(_) => Ipv6Header::LEN,
            };
            let tcp = &mut out[ip_len..];
            // (reserved >> 8) is at most 0x0E.
            tcp[12] |= (reserved >> 8) as u8;
            tcp[16..18].copy_from_slice(&[0, 0]);
            let c = checksum::pseudo(self.src, self.dst, 6, tcp);
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::*;
    use etherparse::{NetSlice, SlicedPacket, TcpOptionElement, TransportSlice};

    fn tcp_checksum_ok(src: IpAddr, dst: IpAddr, segment: &[u8]) -> bool {
        checksum::pseudo(src, dst, 6, segment) == 0
    }

    fn check_roundtrip(t: &Tcp) {
        let bytes = t.to_ip();
        let p = SlicedPacket::from_ip(&bytes).expect("parses");
        let (ip_hdr_len, ip_total) = match p.net.as_ref().unwrap() {
            NetSlice::Ipv4(v4) => {
                let h = v4.header();
                assert_eq!(IpAddr::V4(h.source_addr()), t.src);
                assert_eq!(IpAddr::V4(h.destination_addr()), t.dst);
                assert_eq!(h.ttl(), t.ttl);
                assert_eq!(h.identification(), t.ip_id);
                assert_eq!(h.dont_fragment(), t.df);
                assert!(!h.more_fragments());
                assert_eq!(h.protocol(), ip_number::TCP);
                assert_eq!(usize::from(h.total_len()), bytes.len());
                assert_eq!(checksum::plain(h.slice()), 0, "IPv4 header checksum");
                (h.slice().len(), bytes.len())
            }
            NetSlice::Ipv6(v6) => {
                let h = v6.header();
                assert_eq!(IpAddr::V6(h.source_addr()), t.src);
                assert_eq!(IpAddr::V6(h.destination_addr()), t.dst);
                assert_eq!(h.hop_limit(), t.ttl);
                assert_eq!(h.next_header(), ip_number::TCP);
                assert_eq!(usize::from(h.payload_length()) + 40, bytes.len());
                (40, bytes.len())
            }
            NetSlice::Arp(_) => panic!("arp"),
        };
        let Some(TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("no tcp")
        };
        assert_eq!(tcp.source_port(), t.sport);
        assert_eq!(tcp.destination_port(), t.dport);
        assert_eq!(tcp.sequence_number(), t.seq);
        assert_eq!(tcp.acknowledgment_number(), t.ack);
        assert_eq!(tcp.window_size(), t.window);
        assert_eq!(tcp.fin(), t.flags & FIN != 0);
        assert_eq!(tcp.syn(), t.flags & SYN != 0);
        assert_eq!(tcp.rst(), t.flags & RST != 0);
        assert_eq!(tcp.psh(), t.flags & PSH != 0);
        assert_eq!(tcp.ack(), t.flags & ACK != 0);
        assert_eq!(tcp.urg(), t.flags & URG != 0);
        assert_eq!(tcp.ece(), t.flags & ECE != 0);
        assert_eq!(tcp.cwr(), t.flags & CWR != 0);
        assert_eq!(tcp.ns(), t.flags & AE != 0);
        assert_eq!(tcp.urgent_pointer(), 0);
        let seg = &bytes[ip_hdr_len..ip_total];
        let flags12 = (u16::from(seg[12] & 0x0f) << 8) | u16::from(seg[13]);
        assert_eq!(flags12, t.flags & 0x0fff);
        assert_eq!(tcp.options(), &t.options_bytes()[..]);
        assert_eq!(tcp.payload(), &t.payload[..]);
        assert!(tcp_checksum_ok(t.src, t.dst, seg), "TCP checksum");
    }

    #[test]
    fn defaults() {
        let t = Tcp::new("10.0.0.1", 1234, "10.0.0.2", 80);
        assert_eq!(t.seq, 0);
        assert_eq!(t.ack, 0);
        assert_eq!(t.flags, 0);
        assert_eq!(t.window, 65535);
        assert_eq!(t.ttl, 64);
        assert_eq!(t.ip_id, 0);
        assert!(t.df);
        assert!(t.options.is_empty());
        assert!(t.payload.is_empty());
        let ip = t.to_ip();
        assert_eq!(ip.len(), 40);
        assert_eq!(&ip[..4], &[0x45, 0, 0, 40]);
        assert_eq!(&ip[6..8], &[0x40, 0], "DF set, offset 0");
        assert_eq!(ip[9], 6);
    }

    #[test]
    fn reply_swaps_and_resets() {
        let t = Tcp::new("2001:db8::1", 1234, "2001:db8::2", 80)
            .seq(7)
            .ttl(3)
            .flags(SYN);
        let r = t.reply();
        assert_eq!(r, Tcp::new("2001:db8::2", 80, "2001:db8::1", 1234));
    }

    #[test]
    fn roundtrip_v4_all_fields() {
        let t = Tcp::new("192.0.2.1", 40000, "198.51.100.7", 443)
            .seq(0xdead_beef)
            .ack(0x0102_0304)
            .flags(RST | PSH | URG | ECE | CWR | AE)
            .window(1234)
            .ttl(17)
            .ip_id(0xabcd)
            .df(false)
            .option(TcpOpt::Mss(1460))
            .option(TcpOpt::SackPermitted)
            .option(TcpOpt::Timestamp(1, 0xffff_ffff))
            .option(TcpOpt::Nop)
            .option(TcpOpt::WindowScale(7))
            .payload(&b"hello world"[..]);
        check_roundtrip(&t);
        let bytes = t.to_ip();
        let p = SlicedPacket::from_ip(&bytes).unwrap();
        let Some(TransportSlice::Tcp(tcp)) = p.transport else {
            panic!()
        };
        let opts: Vec<_> = tcp.options_iterator().map(|o| o.unwrap()).collect();
        assert_eq!(
            opts,
            vec![
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                TcpOptionElement::Timestamp(1, 0xffff_ffff),
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(7),
            ]
        );
        // ACK flag clear but the field is written.
        assert!(!tcp.ack());
        assert_eq!(tcp.acknowledgment_number(), 0x0102_0304);
    }

    #[test]
    fn roundtrip_v6_and_flag_combinations() {
        for f in [0, SYN, SYN | ACK, RST, RST | ACK, FIN | ACK, AE, 0x0fff] {
            for (s, d) in [("10.1.1.1", "10.2.2.2"), ("2001:db8::1", "fe80::2")] {
                let t = Tcp::new(s, 1, d, 2)
                    .flags(f)
                    .seq(u32::MAX)
                    .ack(5)
                    .ttl(255)
                    .payload(vec![0xaa; 7]);
                check_roundtrip(&t);
            }
        }
    }

    #[test]
    fn reserved_bits_written_with_valid_checksum() {
        for (s, d) in [("10.0.0.1", "10.0.0.2"), ("::1", "::2")] {
            let t = Tcp::new(s, 5, d, 6)
                .flags(RESERVED | AE | RST)
                .payload(vec![1, 2, 3]);
            let ip = t.to_ip();
            let off = if t.src.is_ipv4() { 20 } else { 40 };
            assert_eq!(ip[off + 12], 0x5f, "data offset 5, reserved+AE bits");
            assert_eq!(ip[off + 13], 0x04);
            assert!(tcp_checksum_ok(t.src, t.dst, &ip[off..]));
            check_roundtrip(&t);
        }
    }

    #[test]
    fn raw_options_and_padding() {
        let t = Tcp::new("10.0.0.1", 1, "10.0.0.2", 2)
            .option(TcpOpt::Raw(30, vec![0x11, 0x22, 0x33]))
            .option(TcpOpt::Raw(1, vec![]))
            .option(TcpOpt::Raw(0, vec![]));
        assert_eq!(t.options_bytes(), vec![30, 5, 0x11, 0x22, 0x33, 1, 0, 0]);
        check_roundtrip(&t);
        let ip = t.to_ip();
        assert_eq!(ip[20 + 12] >> 4, 7, "data offset 7 words");
    }

    #[test]
    fn option_encodings() {
        assert_eq!(TcpOpt::Mss(0x05b4).to_bytes(), vec![2, 4, 5, 0xb4]);
        assert_eq!(TcpOpt::WindowScale(9).to_bytes(), vec![3, 3, 9]);
        assert_eq!(TcpOpt::SackPermitted.to_bytes(), vec![4, 2]);
        assert_eq!(
            TcpOpt::Timestamp(0x01020304, 0x05060708).to_bytes(),
            vec![8, 10, 1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(TcpOpt::Nop.to_bytes(), vec![1]);
        assert_eq!(TcpOpt::Raw(2, vec![1, 2]).to_bytes(), vec![2, 4, 1, 2]);
    }

    #[test]
    #[should_panic(expected = "at most 40")]
    fn too_many_options_panics() {
        let mut t = Tcp::new("10.0.0.1", 1, "10.0.0.2", 2);
        for _ in 0..5 {
            t = t.option(TcpOpt::Timestamp(1, 2));
        }
        let _ = t.to_ip();
    }

    #[test]
    #[should_panic(expected = "mixed address families")]
    fn mixed_families_panic() {
        let _ = Tcp::new("10.0.0.1", 1, "::1", 2);
    }

    #[test]
    #[should_panic(expected = "invalid IP address")]
    fn bad_address_panics() {
        let _ = Tcp::new("10.0.0.300", 1, "10.0.0.1", 2);
    }
}
