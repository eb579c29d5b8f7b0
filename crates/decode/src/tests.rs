use super::*;
use proptest::strategy::Strategy as _;
use rstscope_pcapgen::{ethernet_frame, flags as f, tunnel, Link, Tcp, TcpOpt};

const INFO: FrameInfo = FrameInfo {
    ts_ns: 7,
    file: 2,
    frame: 9,
};

fn seed_rst_v4() -> Tcp {
    // The seed's closed-port answer: seq 0, ACK set, ack = ISN + 1, window 0.
    Tcp::new("192.0.2.80", 80, "198.51.100.7", 40000)
        .seq(0)
        .ack(1_000_001)
        .flags(f::RST | f::ACK)
        .window(0)
        .ttl(57)
        .ip_id(4321)
        .df(true)
}

fn expect_seed(d: Decoded<'_>) {
    let Decoded::Tcp(s) = d else {
        panic!("not decoded as TCP: {d:?}")
    };
    assert_eq!(s.ts_ns, 7);
    assert_eq!((s.file, s.frame), (2, 9));
    assert_eq!(s.src.to_string(), "192.0.2.80");
    assert_eq!(s.dst.to_string(), "198.51.100.7");
    assert_eq!((s.sport, s.dport), (80, 40000));
    assert_eq!((s.seq, s.ack, s.window), (0, 1_000_001, 0));
    assert_eq!(s.flags, 0x014);
    assert!(s.is_rst());
    assert_eq!((s.ttl, s.ip_id, s.df), (57, Some(4321), Some(true)));
    assert_eq!(s.payload_len, 0);
    assert!(s.payload.is_empty());
}

#[test]
fn every_link_type_decodes_to_the_same_segment() {
    let ip = seed_rst_v4().to_ip();
    let links = [
        Link::Ethernet,
        Link::Vlan(vec![100]),
        Link::Vlan(vec![100, 200]),
        Link::Mpls(vec![16, 17]),
        Link::Pppoe,
        Link::EthernetLlcSnap,
        Link::LinuxSll,
        Link::LinuxSll2,
        Link::Raw,
        Link::RawDlt12,
        Link::RawDlt14,
        Link::Ipv4,
        Link::Null { big_endian: false },
        Link::Null { big_endian: true },
        Link::Loop,
        Link::Fddi,
        Link::Ppp,
        Link::PppHdlc,
        Link::CiscoHdlc,
    ];
    for link in links {
        let frame = link.frame(&ip);
        let d = decode(link.linktype(), &frame, INFO);
        assert!(matches!(d, Decoded::Tcp(_)), "{link:?}: {d:?}");
        expect_seed(d);
        assert!(link_type_supported(link.linktype()));
    }
}

#[test]
fn ipv6_over_each_link_with_hop_limit_and_no_ip_id() {
    let tcp = Tcp::new("2001:db8::1", 443, "2001:db8::2", 50000)
        .flags(f::RST)
        .seq(77)
        .ttl(63);
    let ip = tcp.to_ip();
    for link in [
        Link::Ethernet,
        Link::Vlan(vec![7]),
        Link::LinuxSll,
        Link::Raw,
        Link::Ipv6,
        Link::Null { big_endian: false },
        Link::Null { big_endian: true },
        Link::Loop,
        Link::Ppp,
    ] {
        let frame = link.frame(&ip);
        let Decoded::Tcp(s) = decode(link.linktype(), &frame, INFO) else {
            panic!("{link:?}")
        };
        assert_eq!(s.src.to_string(), "2001:db8::1");
        assert_eq!(
            (s.ttl, s.ip_id, s.df, s.seq, s.flags),
            (63, None, None, 77, 0x004)
        );
    }
}

#[test]
fn rst_payload_and_ethernet_padding() {
    let ip = seed_rst_v4().payload(b"220 mailgat".to_vec()).to_ip();
    let frame = Link::Ethernet.frame(&ip);
    let Decoded::Tcp(s) = decode(1, &frame, INFO) else {
        panic!()
    };
    assert_eq!(s.payload_len, 11);
    assert_eq!(s.payload, b"220 mailgat");
    // A bare RST is padded to 60 bytes on Ethernet: the padding is not payload.
    let frame = Link::Ethernet.frame(&seed_rst_v4().to_ip());
    assert_eq!(frame.len(), 60);
    let Decoded::Tcp(s) = decode(1, &frame, INFO) else {
        panic!()
    };
    assert_eq!((s.payload_len, s.payload.len()), (0, 0));
}

#[test]
fn snaplen_cut_packet_keeps_headers_and_declared_length() {
    let ip = seed_rst_v4().payload(vec![b'A'; 100]).to_ip();
    let mut frame = Link::Ethernet.frame(&ip);
    frame.truncate(14 + 20 + 20 + 10);
    let Decoded::Tcp(s) = decode(1, &frame, INFO) else {
        panic!()
    };
    assert_eq!(s.payload_len, 100);
    assert_eq!(s.payload, &[b'A'; 10][..]);
    // Cut inside the TCP header: no segment, but no panic either.
    frame.truncate(14 + 20 + 10);
    assert_eq!(decode(1, &frame, INFO), Decoded::Malformed("TCP header"));
}

#[test]
fn tcp_options_are_parsed() {
    let ip = Tcp::new("10.0.0.1", 1, "10.0.0.2", 2)
        .flags(f::SYN)
        .option(TcpOpt::Mss(1460))
        .option(TcpOpt::SackPermitted)
        .option(TcpOpt::Timestamp(11, 22))
        .option(TcpOpt::Nop)
        .option(TcpOpt::WindowScale(7))
        .to_ip();
    let Decoded::Tcp(s) = decode(101, &ip, INFO) else {
        panic!()
    };
    assert_eq!(
        s.options,
        TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some((11, 22)),
        }
    );
}

#[test]
fn reserved_and_ae_flag_bits_are_kept() {
    let ip = seed_rst_v4().flags(f::RST | f::ACK | f::AE | 0x800).to_ip();
    let Decoded::Tcp(s) = decode(101, &ip, INFO) else {
        panic!()
    };
    assert_eq!(s.flags, 0x914);
    assert_eq!(flags_tcpdump(s.flags), "R.e");
}

#[test]
fn tunnels_decode_to_the_innermost_tcp() {
    let inner = seed_rst_v4().to_ip();
    let inner6 = Tcp::new("2001:db8::1", 443, "2001:db8::2", 50000)
        .flags(f::RST)
        .to_ip();
    let eth = ethernet_frame(&inner);
    let outer = [
        ("ipip", tunnel::ipip("10.1.1.1", "10.2.2.2", &inner)),
        ("6in4", tunnel::ipip("10.1.1.1", "10.2.2.2", &inner6)),
        ("gre", tunnel::gre("10.1.1.1", "10.2.2.2", &inner)),
        (
            "gre-key-seq",
            tunnel::gre_with_key_seq("10.1.1.1", "10.2.2.2", 5, 6, &inner),
        ),
        ("gre-eth", tunnel::gre_eth("10.1.1.1", "10.2.2.2", &eth)),
        ("erspan2", tunnel::erspan2("10.1.1.1", "10.2.2.2", 3, &eth)),
        ("erspan3", tunnel::erspan3("10.1.1.1", "10.2.2.2", 3, &eth)),
        ("vxlan", tunnel::vxlan("10.1.1.1", "10.2.2.2", 42, &eth)),
        ("teredo", tunnel::teredo("10.1.1.1", "10.2.2.2", &inner6)),
        (
            "teredo-origin",
            tunnel::teredo_origin("10.1.1.1", "10.2.2.2", &inner6),
        ),
    ];
    for (name, pkt) in outer {
        let frame = Link::Ethernet.frame(&pkt);
        let Decoded::Tcp(s) = decode(1, &frame, INFO) else {
            panic!("{name}: {:?}", decode(1, &frame, INFO))
        };
        assert!(s.tunnel_depth >= 1, "{name}");
        if name.contains("6") || name.starts_with("teredo") {
            assert_eq!(s.src.to_string(), "2001:db8::1", "{name}");
        } else {
            assert_eq!(s.src.to_string(), "192.0.2.80", "{name}");
            assert_eq!((s.seq, s.ack, s.ttl), (0, 1_000_001, 57), "{name}");
        }
    }
    // Nested: VXLAN inside GRE.
    let nested = tunnel::gre(
        "10.9.9.9",
        "10.8.8.8",
        &tunnel::vxlan("10.1.1.1", "10.2.2.2", 1, &eth),
    );
    let Decoded::Tcp(s) = decode(101, &nested, INFO) else {
        panic!()
    };
    assert_eq!(
        (s.src.to_string().as_str(), s.tunnel_depth),
        ("192.0.2.80", 2)
    );
}

#[test]
fn tcp_quoted_in_icmp_error_is_not_a_rst() {
    let quoted = seed_rst_v4().to_ip();
    let icmp = tunnel::icmp_unreachable_quoting("192.0.2.1", "192.0.2.80", &quoted);
    assert_eq!(decode(101, &icmp, INFO), Decoded::NotTcp);
    let quoted6 = Tcp::new("2001:db8::1", 1, "2001:db8::2", 2)
        .flags(f::RST)
        .to_ip();
    let icmp6 = tunnel::icmp_unreachable_quoting("2001:db8::9", "2001:db8::1", &quoted6);
    assert_eq!(decode(101, &icmp6, INFO), Decoded::NotTcp);
}

#[test]
fn fragments_first_decodes_rest_is_counted() {
    let ip = seed_rst_v4().payload(vec![b'x'; 64]).to_ip();
    let (first, second) = tunnel::fragment_v4(&ip, 40);
    assert_eq!(decode(101, &second, INFO), Decoded::NonFirstFragment);
    // The first fragment has the whole TCP header; etherparse will not parse a fragmented
    // payload as TCP, so it is not reported (tshark reports the reassembled packet).
    let d = decode(101, &first, INFO);
    assert!(matches!(d, Decoded::NotTcp | Decoded::Tcp(_)), "{d:?}");
}

/// IPv6 with extension headers `exts` ((next header, bytes) in order; the first one's number
/// goes in the fixed header) then a TCP RST.
fn ipv6_with_exts(exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let tcp_ip = Tcp::new("2001:db8::1", 443, "2001:db8::2", 50000)
        .flags(f::RST)
        .to_ip();
    let (fixed, tcp) = tcp_ip.split_at(40);
    let mut body = Vec::new();
    for (i, (_, bytes)) in exts.iter().enumerate() {
        let mut b = bytes.clone();
        b[0] = exts.get(i + 1).map_or(6, |e| e.0);
        body.extend(b);
    }
    body.extend_from_slice(tcp);
    let mut ip = fixed.to_vec();
    ip[6] = exts.first().map_or(6, |e| e.0);
    ip[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
    ip.extend(body);
    ip
}

#[test]
fn ipv6_extension_headers_and_fragments() {
    let hbh = (0u8, vec![0u8, 0, 1, 4, 0, 0, 0, 0]);
    let dst = (60u8, vec![0u8, 0, 1, 4, 0, 0, 0, 0]);
    let frag = |offset: u16, more: bool| {
        (44u8, {
            let v = (offset << 3) | more as u16;
            let b = v.to_be_bytes();
            vec![0u8, 0, b[0], b[1], 0, 0, 0, 9]
        })
    };
    let ok = ipv6_with_exts(&[hbh.clone(), dst.clone()]);
    let d = decode(101, &ok, INFO);
    assert!(matches!(d, Decoded::Tcp(ref s) if s.is_rst()), "{d:?}");
    let first = ipv6_with_exts(&[hbh.clone(), frag(0, true)]);
    assert!(matches!(
        decode(101, &first, INFO),
        Decoded::Tcp(_) | Decoded::NotTcp
    ));
    let later = ipv6_with_exts(&[hbh.clone(), dst.clone(), frag(8, false)]);
    assert_eq!(decode(101, &later, INFO), Decoded::NonFirstFragment);
    // A second hop-by-hop header stops etherparse's slicer after the first one; the walk over
    // the headers must stop there too instead of reading past the parsed ones.
    let bad = ipv6_with_exts(&[hbh.clone(), hbh.clone()]);
    assert_eq!(decode(101, &bad, INFO), Decoded::NotTcp);
    // Cut inside the fragment header, after complete headers.
    let cut = ipv6_with_exts(&[dst.clone(), frag(8, false)]);
    assert_eq!(decode(101, &cut[..40 + 8 + 4], INFO), Decoded::NotTcp);
}

#[test]
fn unknown_link_type_and_garbage_never_panic() {
    assert_eq!(decode(147, b"abc", INFO), Decoded::UnknownLinkType(147));
    for lt in [
        0u16, 1, 9, 10, 12, 14, 50, 51, 101, 104, 108, 113, 228, 229, 276,
    ] {
        for len in 0..80 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + lt as usize) as u8).collect();
            let _ = decode(lt, &junk, INFO);
        }
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_frames_never_panic(lt in proptest::sample::select(vec![0u16, 1, 9, 10, 12, 14, 50, 51, 101, 104, 108, 113, 228, 229, 276]),
                                    data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let _ = decode(lt, &data, INFO);
    }

    #[test]
    fn any_rst_roundtrips_through_ethernet(seq in proptest::num::u32::ANY, ack in proptest::num::u32::ANY,
                                           win in proptest::num::u16::ANY, ttl in 1u8..=255,
                                           payload in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
        let ip = Tcp::new("10.0.0.1", 1234, "10.0.0.2", 80).seq(seq).ack(ack).window(win).ttl(ttl)
            .flags(f::RST).payload(payload.clone()).to_ip();
        let frame = Link::Vlan(vec![5]).frame(&ip);
        let Decoded::Tcp(s) = decode(1, &frame, INFO) else { panic!() };
        proptest::prop_assert_eq!((s.seq, s.ack, s.window, s.ttl), (seq, ack, win, ttl));
        proptest::prop_assert_eq!(s.payload, &payload[..]);
        proptest::prop_assert_eq!(s.payload_len as usize, payload.len());
    }
}

// ---- the fixed-offset fast path gives exactly what the general path gives ----

/// Decode both ways and require identical results.
fn same_both_ways(linktype: u16, frame: &[u8]) -> Result<(), proptest::test_runner::TestCaseError> {
    let fast = decode_with(linktype, frame, INFO, true);
    let general = decode_with(linktype, frame, INFO, false);
    proptest::prop_assert_eq!(fast, general, "linktype {} frame {:02x?}", linktype, frame);
    Ok(())
}

/// IPv4 header options: `words` 4-byte words of NOPs inserted after the base header, with the
/// header and total lengths adjusted.
fn with_ipv4_options(ip: &[u8], words: usize) -> Vec<u8> {
    let mut v = ip[..20].to_vec();
    v[0] = 0x40 | (5 + words as u8);
    let total = u16::from_be_bytes([v[2], v[3]]) + 4 * words as u16;
    v[2..4].copy_from_slice(&total.to_be_bytes());
    v.extend(std::iter::repeat_n(1u8, 4 * words));
    v.extend_from_slice(&ip[20..]);
    v
}

fn tcp_strategy() -> impl proptest::strategy::Strategy<Value = Tcp> {
    use proptest::prelude::*;
    (
        any::<bool>(),
        (
            any::<u32>(),
            any::<u32>(),
            0u16..0x1000,
            any::<u16>(),
            any::<u8>(),
        ),
        (any::<u16>(), any::<bool>(), any::<u16>(), any::<u16>()),
        proptest::collection::vec(any::<u8>(), 0..60),
        proptest::collection::vec(
            prop_oneof![
                any::<u16>().prop_map(TcpOpt::Mss),
                any::<u8>().prop_map(TcpOpt::WindowScale),
                Just(TcpOpt::SackPermitted),
                (any::<u32>(), any::<u32>()).prop_map(|(a, b)| TcpOpt::Timestamp(a, b)),
                Just(TcpOpt::Nop),
            ],
            0..4,
        ),
    )
        .prop_map(
            |(v6, (seq, ack, flags, win, ttl), (id, df, sport, dport), payload, opts)| {
                let (a, b) = if v6 {
                    ("2001:db8::1", "2001:db8:1::2")
                } else {
                    ("10.1.2.3", "192.0.2.9")
                };
                let mut t = Tcp::new(a, sport, b, dport)
                    .seq(seq)
                    .ack(ack)
                    .flags(flags)
                    .window(win)
                    .ttl(ttl)
                    .ip_id(id)
                    .df(df)
                    .payload(payload);
                for o in opts {
                    t = t.option(o);
                }
                t
            },
        )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Valid segments over every link type, IPv4 with and without options, then damaged: header
    /// fields the fast path reads overwritten (lengths, fragment bits, protocol, version/IHL),
    /// random bytes overwritten, the frame cut anywhere or padded.
    #[test]
    fn fast_path_equals_general_path(
        tcp in tcp_strategy(),
        link in proptest::sample::select(Link::all()),
        opt_words in 0usize..4,
        field in proptest::option::of((0usize..8, proptest::num::u16::ANY)),
        junk in proptest::collection::vec((0usize..120, proptest::num::u8::ANY), 0..3),
        cut in proptest::option::of(0usize..200),
        pad in 0usize..8,
    ) {
        let mut ip = tcp.to_ip();
        if ip[0] >> 4 == 4 && opt_words > 0 {
            ip = with_ipv4_options(&ip, opt_words);
        }
        if let Some((which, v)) = field {
            let v4 = ip[0] >> 4 == 4;
            let b = v.to_be_bytes();
            match (which, v4) {
                (0, _) => ip[2..4].copy_from_slice(&b),          // v4 total / v6 flow label
                (1, true) => ip[6..8].copy_from_slice(&b),       // fragment bits
                (1, false) => ip[4..6].copy_from_slice(&b),      // payload length
                (2, true) => ip[9] = b[1],                       // protocol
                (2, false) => ip[6] = b[1],                      // next header
                (3, _) => ip[0] = (ip[0] & 0xf0) | (b[1] & 0x0f), // IHL / traffic class
                (4, _) => ip[0] = b[1],                          // version too
                (5, true) => ip[2..4].copy_from_slice(&[0, 0]),  // TSO: total length 0
                (5, false) => ip[4..6].copy_from_slice(&[0, 0]), // jumbogram: payload length 0
                (6, _) => { let n = (v as usize) % (ip.len() + 1); ip.truncate(n) }
                _ => {}
            }
        }
        for (at, b) in junk {
            if at < ip.len() {
                ip[at] = b;
            }
        }
        // A link frames only a packet of its IP version; anything else goes out as raw IP.
        let (linktype, mut frame) =
            if ip.first().is_some_and(|b| matches!(b >> 4, 4 | 6)) && link.supports(&ip) {
                (link.linktype(), link.frame(&ip))
            } else {
                (101, ip.clone())
            };
        frame.extend(std::iter::repeat_n(0xeeu8, pad));
        if let Some(c) = cut {
            frame.truncate(c);
        }
        same_both_ways(linktype, &frame)?;
    }

    /// The same through tunnels (inner IP layers take the fast path too).
    #[test]
    fn fast_path_equals_general_path_in_tunnels(tcp in tcp_strategy(), kind in 0usize..6, cut in proptest::option::of(0usize..300)) {
        let inner = tcp.to_ip();
        let outer = match kind {
            0 => tunnel::ipip("10.9.9.1", "10.9.9.2", &inner),
            1 => tunnel::gre("10.9.9.1", "10.9.9.2", &inner),
            2 => tunnel::ipip("2001:db8:9::1", "2001:db8:9::2", &inner),
            3 => tunnel::vxlan("10.9.9.1", "10.9.9.2", 42, &ethernet_frame(&inner)),
            4 => tunnel::gre_eth("10.9.9.1", "10.9.9.2", &ethernet_frame(&inner)),
            _ => tunnel::erspan2("10.9.9.1", "10.9.9.2", 7, &ethernet_frame(&inner)),
        };
        let mut frame = Link::Ethernet.frame(&outer);
        if let Some(c) = cut {
            frame.truncate(c);
        }
        same_both_ways(1, &frame)?;
    }

    /// Random bytes after an Ethernet header announcing IPv4 or IPv6, with a plausible first
    /// byte, so most of them reach the fast path's checks.
    #[test]
    fn fast_path_equals_general_path_on_random_ip(v6 in proptest::bool::ANY, ihl in 0u8..16,
                                                  proto in proptest::sample::select(vec![6u8, 6, 6, 17, 4, 41, 47, 51, 0, 44]),
                                                  body in proptest::collection::vec(proptest::num::u8::ANY, 0..120)) {
        let mut ip = body;
        let need = if v6 { 40 } else { 20 };
        if ip.len() >= need {
            if v6 {
                ip[0] = 0x60 | (ip[0] & 0x0f);
                ip[6] = proto;
            } else {
                ip[0] = 0x40 | ihl;
                ip[9] = proto;
            }
        }
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        frame.extend_from_slice(&ip);
        same_both_ways(1, &frame)?;
    }
}

#[test]
fn fast_path_ipv4_options_and_crafted_lengths() {
    let base = seed_rst_v4().payload(b"payload!".to_vec()).to_ip();
    for words in 0..=10 {
        let ip = with_ipv4_options(&base, words);
        for total in [
            0u16,
            1,
            19,
            20,
            20 + 4 * words as u16,
            ip.len() as u16 - 1,
            ip.len() as u16,
            ip.len() as u16 + 1,
            0xffff,
        ] {
            let mut ip = ip.clone();
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            for link in [Link::Ethernet, Link::Vlan(vec![3]), Link::Raw] {
                let frame = link.frame(&ip);
                for cut in [
                    frame.len(),
                    frame.len() - 1,
                    14 + 20 + 4 * words + 20,
                    14 + 20 + 4 * words + 19,
                    30,
                ] {
                    same_both_ways(link.linktype(), &frame[..cut.min(frame.len())]).unwrap();
                }
            }
        }
    }
    // The fast path really is taken for options (and decodes them right).
    let frame = Link::Ethernet.frame(&with_ipv4_options(&base, 3));
    let Decoded::Tcp(s) = decode(1, &frame, INFO) else {
        panic!()
    };
    assert_eq!((s.payload_len, s.payload), (8, &b"payload!"[..]));
    assert_eq!((s.ttl, s.ip_id, s.df), (57, Some(4321), Some(true)));
}

// ---- Community ID: every vector of rst-facts.md §4.2 ----

fn cid(proto: u8, src: &str, dst: &str, sport: u16, dport: u16, seed: u16) -> String {
    community_id_v1(
        &CommunityIdKey {
            proto,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport,
            dport,
        },
        seed,
    )
}

/// `community_id_v1` as first written (address `Vec`s, incremental hashing, `format!`).
fn reference_community_id(key: &CommunityIdKey, seed: u16) -> String {
    use base64::Engine as _;
    fn addr_bytes(a: &std::net::IpAddr) -> Vec<u8> {
        match a {
            std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
            std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
        }
    }
    let a = addr_bytes(&key.src);
    let b = addr_bytes(&key.dst);
    let has_ports = matches!(key.proto, 1 | 6 | 17 | 58 | 132);
    let (one_way, sport, dport) = match key.proto {
        1 | 58 => community_id::icmp_ports(key.proto, key.sport as u8, key.dport as u8),
        _ => (false, key.sport, key.dport),
    };
    let swap = !one_way && (a > b || (a == b && has_ports && sport > dport));
    let (a, b, pa, pb) = if swap {
        (b, a, dport, sport)
    } else {
        (a, b, sport, dport)
    };
    let mut h = sha1_smol::Sha1::new();
    h.update(&seed.to_be_bytes());
    h.update(&a);
    h.update(&b);
    h.update(&[key.proto, 0]);
    if has_ports {
        h.update(&pa.to_be_bytes());
        h.update(&pb.to_be_bytes());
    }
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(h.digest().bytes())
    )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
    #[test]
    fn community_id_same_as_reference_implementation(
        src in proptest::prop_oneof![
            proptest::prelude::any::<[u8; 4]>().prop_map(std::net::IpAddr::from),
            proptest::prelude::any::<[u8; 16]>().prop_map(std::net::IpAddr::from),
            proptest::prelude::Just(std::net::IpAddr::from([10, 0, 0, 1])),
        ],
        dst in proptest::prop_oneof![
            proptest::prelude::any::<[u8; 4]>().prop_map(std::net::IpAddr::from),
            proptest::prelude::any::<[u8; 16]>().prop_map(std::net::IpAddr::from),
            proptest::prelude::Just(std::net::IpAddr::from([10, 0, 0, 1])),
        ],
        proto in proptest::sample::select(vec![1u8, 6, 17, 58, 132, 47, 0, 255]),
        sport in proptest::prelude::any::<u16>(),
        dport in proptest::prelude::any::<u16>(),
        seed in proptest::prelude::any::<u16>(),
    ) {
        let key = CommunityIdKey { proto, src, dst, sport, dport };
        proptest::prop_assert_eq!(community_id_v1(&key, seed), reference_community_id(&key, seed));
    }
}

#[test]
fn community_id_vectors() {
    let v = [
        (
            6,
            "1.2.3.4",
            "5.6.7.8",
            1122,
            3344,
            0,
            "1:wCb3OG7yAFWelaUydu0D+125CLM=",
        ),
        (
            6,
            "5.6.7.8",
            "1.2.3.4",
            3344,
            1122,
            0,
            "1:wCb3OG7yAFWelaUydu0D+125CLM=",
        ),
        (
            17,
            "1.2.3.4",
            "5.6.7.8",
            1122,
            3344,
            0,
            "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
        ),
        (
            132,
            "1.2.3.4",
            "5.6.7.8",
            1122,
            3344,
            0,
            "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=",
        ),
        (
            6,
            "128.232.110.120",
            "66.35.250.204",
            34855,
            80,
            0,
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
        ),
        (
            6,
            "10.0.0.1",
            "10.0.0.2",
            10,
            11569,
            0,
            "1:SXBGMX1lBOwhhoDrZynfROxnhnM=",
        ),
        (
            6,
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            "2607:f8b0:400c:c03::1a",
            63943,
            25,
            0,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
        ),
        (
            17,
            "192.168.1.52",
            "8.8.8.8",
            54585,
            53,
            0,
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
        ),
        (
            132,
            "192.168.170.8",
            "192.168.170.56",
            7,
            7,
            0,
            "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
        ),
        (
            1,
            "1.2.3.4",
            "5.6.7.8",
            8,
            0,
            0,
            "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=",
        ),
        (
            1,
            "5.6.7.8",
            "1.2.3.4",
            0,
            0,
            0,
            "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=",
        ),
        (
            1,
            "192.168.0.89",
            "192.168.0.1",
            8,
            0,
            0,
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
        ),
        (
            1,
            "1.2.3.4",
            "5.6.7.8",
            11,
            0,
            0,
            "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=",
        ),
        (
            1,
            "192.168.0.89",
            "192.168.0.1",
            20,
            0,
            0,
            "1:3o2RFccXzUgjl7zDpqmY7yJi8rI=",
        ),
        (
            1,
            "192.168.0.89",
            "192.168.0.1",
            20,
            1,
            0,
            "1:tz/fHIDUHs19NkixVVoOZywde+I=",
        ),
        (
            58,
            "3ffe:507:0:1:260:97ff:fe07:69ea",
            "3ffe:507:0:1:200:86ff:fe05:80da",
            3,
            0,
            0,
            "1:NdobDX8PQNJbAyfkWxhtL2Pqp5w=",
        ),
        (
            58,
            "3ffe:507:0:1:200:86ff:fe05:80da",
            "3ffe:507:0:1:260:97ff:fe07:69ea",
            3,
            0,
            0,
            "1:/OGBt9BN1ofenrmSPWYicpij2Vc=",
        ),
        (
            58,
            "fe80::200:86ff:fe05:80da",
            "fe80::260:97ff:fe07:69ea",
            135,
            0,
            0,
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
        ),
        (
            46,
            "1.2.3.4",
            "5.6.7.8",
            0,
            0,
            0,
            "1:ikv3kmf89luf73WPz1jOs49S768=",
        ),
        (
            46,
            "10.1.12.1",
            "10.1.12.2",
            0,
            0,
            0,
            "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=",
        ),
        (
            6,
            "1.2.3.4",
            "5.6.7.8",
            1122,
            3344,
            1,
            "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=",
        ),
        (
            6,
            "128.232.110.120",
            "66.35.250.204",
            34855,
            80,
            1,
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
        ),
    ];
    for (proto, src, dst, sport, dport, seed, want) in v {
        assert_eq!(
            cid(proto, src, dst, sport, dport, seed),
            want,
            "{proto} {src}:{sport} -> {dst}:{dport} seed {seed}"
        );
    }
}

// ---- Structured RST reasons ----

#[test]
fn diagnostic_payloads() {
    assert_eq!(
        decode_rst_reason(8, &[0x33, 0xaa, 0, 4, 0, 0, 0, 0]).as_deref(),
        Some("4:ABORT")
    );
    assert_eq!(
        decode_rst_reason(8, &[0x33, 0xaa, 0, 17, 0, 0, 0, 9]).as_deref(),
        Some("PEN 9:code 17")
    );
    assert_eq!(
        decode_rst_reason(8, &[0x33, 0xaa, 0, 1, 0, 0, 0, 0]).as_deref(),
        Some("1:ILLEGAL_OPTION_LENGTH")
    );
    assert_eq!(
        decode_rst_reason(8, &[0x33, 0xaa, 0x01, 0x00, 0, 0, 0, 0]).as_deref(),
        Some("256:unassigned")
    );
    // Wrong length or magic: not a structured reason.
    assert_eq!(
        decode_rst_reason(9, &[0x33, 0xaa, 0, 4, 0, 0, 0, 0, 0]),
        None
    );
    assert_eq!(decode_rst_reason(8, &[0x33, 0xab, 0, 4, 0, 0, 0, 0]), None);
    assert_eq!(decode_rst_reason(8, &[0x33, 0xaa, 0, 4]), None);
    assert_eq!(decode_rst_reason(11, b"220 mailgat"), None);
}

/// A RST under more GRE layers than the decoder follows is not silently "not TCP": it is
/// `TooDeep`, which runs count and report. One layer less decodes.
#[test]
fn ip_under_too_many_tunnel_layers_is_too_deep() {
    let mut pkt = seed_rst_v4().to_ip();
    let mut decoded = Vec::new();
    for layers in 0..=usize::from(crate::MAX_TUNNEL_DEPTH) + 1 {
        if layers > 0 {
            pkt = tunnel::gre("10.1.1.1", "10.2.2.2", &pkt);
        }
        let frame = Link::Ethernet.frame(&pkt);
        decoded.push(matches!(decode(1, &frame, INFO), Decoded::Tcp(_)));
        if layers == usize::from(crate::MAX_TUNNEL_DEPTH) + 1 {
            assert_eq!(decode(1, &frame, INFO), Decoded::TooDeep, "{layers} layers");
        }
    }
    assert!(
        decoded[..=usize::from(crate::MAX_TUNNEL_DEPTH)]
            .iter()
            .all(|&d| d),
        "{decoded:?}"
    );
}
