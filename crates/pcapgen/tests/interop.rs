//! Cross-checks of the writer against independent parsers: pcap-parser for the
//! file formats, etherparse for the frames, flate2 / zstd for compression.

use std::io::Read;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::pcapng::Block;
use rstscope_pcapgen::{
    ethernet_frame, flags, gzip, gzip_members, tunnel, write_file, zstd, Endian, Interface, Link,
    PcapNgWriter, PcapWriter, Record, Tcp,
};

fn rst_v4() -> Tcp {
    Tcp::new("10.1.0.1", 44321, "10.1.0.2", 443)
        .seq(1000)
        .ack(2000)
        .flags(flags::RST | flags::ACK)
}

fn rst_v6() -> Tcp {
    Tcp::new("2001:db8::1", 44321, "2001:db8::2", 443)
        .seq(1000)
        .flags(flags::RST)
}

/// Offset of the IP packet inside a frame of `link` (test-local table,
/// independent of the writer's code).
fn ip_offset(link: &Link) -> usize {
    match link {
        Link::Ethernet => 14,
        Link::Vlan(ids) => 14 + 4 * ids.len(),
        Link::Mpls(labels) => 14 + 4 * labels.len(),
        Link::Pppoe => 22,
        Link::EthernetLlcSnap => 22,
        Link::LinuxSll => 16,
        Link::LinuxSll2 => 20,
        Link::Raw | Link::RawDlt12 | Link::RawDlt14 | Link::Ipv4 | Link::Ipv6 => 0,
        Link::Null { .. } | Link::Loop | Link::Ppp | Link::PppHdlc | Link::CiscoHdlc => 4,
        Link::Fddi => 21,
        Link::RawEthernetFrame => 14,
    }
}

fn tcp_of(ip: &[u8]) -> (u16, u16, bool, bool) {
    let p = SlicedPacket::from_ip(ip).expect("IP parses");
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("no TCP")
    };
    (t.source_port(), t.destination_port(), t.rst(), t.ack())
}

#[test]
fn every_link_carries_the_tcp_packet() {
    for link in Link::all() {
        for t in [rst_v4(), rst_v6()] {
            let ip = t.to_ip();
            if !link.supports(&ip) {
                continue;
            }
            let input = if link == Link::RawEthernetFrame {
                ethernet_frame(&ip)
            } else {
                ip.clone()
            };
            let frame = link.frame(&input);
            let off = ip_offset(&link);
            assert_eq!(&frame[off..off + ip.len()], &ip[..], "{link:?}");
            let (sp, dp, rst, ack) = tcp_of(&frame[off..]);
            assert_eq!((sp, dp, rst), (44321, 443, true), "{link:?}");
            assert_eq!(ack, t.flags & flags::ACK != 0);
        }
    }
    // etherparse's own Ethernet / VLAN / Linux SLL parsers agree.
    for link in [
        Link::Ethernet,
        Link::Vlan(vec![10]),
        Link::Vlan(vec![10, 20]),
        Link::RawEthernetFrame,
    ] {
        let ip = rst_v4().to_ip();
        let input = if link == Link::RawEthernetFrame {
            ethernet_frame(&ip)
        } else {
            ip
        };
        let frame = link.frame(&input);
        let p = SlicedPacket::from_ethernet(&frame).unwrap();
        let Some(TransportSlice::Tcp(t)) = p.transport else {
            panic!("{link:?}")
        };
        assert!(t.rst());
        assert!(t.payload().is_empty(), "{link:?}: padding is not payload");
    }
    let sll = Link::LinuxSll.frame(&rst_v6().to_ip());
    let p = SlicedPacket::from_linux_sll(&sll).unwrap();
    assert!(matches!(p.transport, Some(TransportSlice::Tcp(_))));
}

#[test]
fn legacy_pcap_parses_with_pcap_parser() {
    let link = Link::Ethernet;
    let f1 = link.frame(&rst_v4().to_ip());
    let f2 = link.frame(&rst_v6().payload(vec![7u8; 200]).to_ip());
    let recs = vec![
        Record::new(1_700_000_000_123_456_789, f1.clone()),
        Record::new(1_700_000_001_000_000_001, f2.clone()).snap(100),
    ];
    for endian in [Endian::Little, Endian::Big] {
        for nanos in [false, true] {
            let w = PcapWriter {
                endian,
                nanos,
                snaplen: 65535,
                linktype: u32::from(link.linktype()),
            };
            let file = w.write(&recs);
            // pcap-parser's whole-file `parse_pcap` reads records as
            // little-endian only, so walk the records with the parser for the
            // header's byte order.
            let (mut rest, header) = pcap_parser::parse_pcap_header(&file).expect("header");
            let mut blocks = Vec::new();
            while !rest.is_empty() {
                let (r, b) = if header.is_bigendian() {
                    pcap_parser::parse_pcap_frame_be(rest)
                } else {
                    pcap_parser::parse_pcap_frame(rest)
                }
                .expect("record parses");
                blocks.push(b);
                rest = r;
            }
            let cap = pcap_parser::PcapCapture { header, blocks };
            assert_eq!(cap.header.network.0, 1);
            assert_eq!(cap.header.snaplen, 65535);
            assert_eq!(cap.header.version_major, 2);
            assert_eq!(cap.header.version_minor, 4);
            assert_eq!(cap.header.is_bigendian(), endian == Endian::Big);
            assert_eq!(cap.header.is_nanosecond_precision(), nanos);
            assert_eq!(cap.blocks.len(), 2);
            let b0 = &cap.blocks[0];
            assert_eq!(b0.ts_sec, 1_700_000_000);
            assert_eq!(b0.ts_usec, if nanos { 123_456_789 } else { 123_456 });
            assert_eq!(b0.data, &f1[..]);
            assert_eq!(b0.caplen, 60);
            assert_eq!(b0.origlen, 60);
            let b1 = &cap.blocks[1];
            assert_eq!(b1.ts_usec, if nanos { 1 } else { 0 });
            assert_eq!(b1.caplen, 100);
            assert_eq!(b1.origlen as usize, f2.len());
            assert_eq!(b1.data, &f2[..100]);
        }
    }
}

#[test]
fn pcap_linktype_high_bits_are_written_verbatim() {
    let file = PcapWriter::new(0x3000_0001).write(&[]);
    assert_eq!(&file[20..24], &0x3000_0001u32.to_le_bytes());
}

#[test]
fn pcapng_parses_with_pcap_parser() {
    let eth = Link::Ethernet.frame(&rst_v4().to_ip());
    let raw = rst_v6().to_ip();
    let ts = 1_700_000_000_123_456_789i64;
    let mut w = PcapNgWriter::new(
        Endian::Little,
        vec![
            Interface::new(1),
            Interface::new(101).tsresol(9),
            Interface::new(1).tsresol(0x80 | 24).tsoffset(1_600_000_000),
        ],
    );
    w.epb(0, &Record::new(ts, eth.clone()))
        .epb(1, &Record::new(ts, raw.clone()))
        .epb(2, &Record::new(ts, eth.clone()).snap(33))
        .spb(&Record::new(0, eth.clone()))
        .unknown_block(0x4000_0001, b"hello")
        .new_section(Endian::Big, vec![Interface::new(228).snaplen(1500)])
        .epb(0, &Record::new(ts, rst_v4().to_ip()));
    let file = w.finish();

    let (rest, cap) = pcap_parser::parse_pcapng(&file).expect("pcapng parses");
    assert!(rest.is_empty());
    assert_eq!(cap.sections.len(), 2);

    let s0 = &cap.sections[0];
    assert!(!s0.big_endian);
    let idbs: Vec<_> = s0.iter_interfaces().collect();
    assert_eq!(idbs.len(), 3);
    assert_eq!(idbs[0].linktype.0, 1);
    assert_eq!(idbs[0].if_tsresol, 6);
    assert_eq!(idbs[1].linktype.0, 101);
    assert_eq!(idbs[1].if_tsresol, 9);
    assert_eq!(idbs[2].if_tsresol, 0x80 | 24);
    assert_eq!(idbs[2].if_tsoffset, 1_600_000_000);

    let epbs: Vec<_> = s0
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::EnhancedPacket(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(epbs.len(), 3);
    let tick =
        |e: &pcap_parser::EnhancedPacketBlock| (u64::from(e.ts_high) << 32) | u64::from(e.ts_low);
    assert_eq!(tick(epbs[0]), 1_700_000_000_123_456);
    assert_eq!(tick(epbs[1]), 1_700_000_000_123_456_789);
    assert_eq!(
        tick(epbs[2]),
        ((100_000_000_123_456_789u128 << 24) / 1_000_000_000) as u64
    );
    let (sec, frac) = epbs[1].decode_ts(0, 1_000_000_000);
    assert_eq!((sec, frac), (1_700_000_000, 123_456_789));
    assert_eq!(epbs[0].caplen as usize, eth.len());
    assert_eq!(&epbs[0].data[..eth.len()], &eth[..]);
    assert_eq!(&epbs[1].data[..raw.len()], &raw[..]);
    assert_eq!(epbs[2].caplen, 33);
    assert_eq!(epbs[2].origlen as usize, eth.len());

    let spb = s0
        .blocks
        .iter()
        .find_map(|b| match b {
            Block::SimplePacket(s) => Some(s),
            _ => None,
        })
        .expect("SPB");
    assert_eq!(spb.origlen as usize, eth.len());
    assert_eq!(&spb.data[..eth.len()], &eth[..]);

    let unknown = s0
        .blocks
        .iter()
        .find_map(|b| match b {
            Block::Unknown(u) => Some(u),
            _ => None,
        })
        .expect("unknown block");
    assert_eq!(unknown.block_type, 0x4000_0001);
    assert_eq!(unknown.block_len1, 20);
    assert_eq!(unknown.data, b"hello\0\0\0");

    let s1 = &cap.sections[1];
    assert!(s1.big_endian);
    let idbs: Vec<_> = s1.iter_interfaces().collect();
    assert_eq!(idbs.len(), 1);
    assert_eq!(idbs[0].linktype.0, 228);
    assert_eq!(idbs[0].snaplen, 1500);
    let Some(Block::EnhancedPacket(e)) = s1.blocks.last() else {
        panic!("EPB in second section")
    };
    assert_eq!(e.if_id, 0);
    assert_eq!(tick(e), 1_700_000_000_123_456);
}

#[test]
fn compressed_files_decompress_to_the_same_bytes() {
    let recs: Vec<Record> = (0..200)
        .map(|i| {
            let t = rst_v4().seq(i).payload(vec![i as u8; 40]);
            Record::new(i64::from(i) * 1_000_000, Link::Ethernet.frame(&t.to_ip()))
        })
        .collect();
    let file = PcapWriter::new(1).write(&recs);

    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gzip(&file)[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, file);

    let multi = gzip_members(&file, 3);
    let mut all = Vec::new();
    flate2::read::MultiGzDecoder::new(&multi[..])
        .read_to_end(&mut all)
        .unwrap();
    assert_eq!(all, file);
    let mut first = Vec::new();
    flate2::read::GzDecoder::new(&multi[..])
        .read_to_end(&mut first)
        .unwrap();
    assert_eq!(first, file[..file.len() / 3].to_vec());

    assert_eq!(::zstd::decode_all(&zstd(&file)[..]).unwrap(), file);
}

#[test]
fn write_file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/rst.pcap.gz");
    let bytes = gzip(&PcapWriter::new(1).write(&[Record::new(0, vec![0; 60])]));
    write_file(&path, &bytes).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

/// Follows each tunnel down to the inner TCP segment with etherparse.
#[test]
fn tunnels_decode_down_to_inner_tcp() {
    let in4 = rst_v4().to_ip();
    let in6 = rst_v6().to_ip();
    let eth4 = ethernet_frame(&in4);

    let ip_payload = |p: &[u8]| -> (u8, Vec<u8>) {
        let s = SlicedPacket::from_ip(p).unwrap();
        match s.net.unwrap() {
            NetSlice::Ipv4(v) => (v.payload().ip_number.0, v.payload().payload.to_vec()),
            NetSlice::Ipv6(v) => (v.payload().ip_number.0, v.payload().payload.to_vec()),
            NetSlice::Arp(_) => panic!(),
        }
    };
    let udp_payload = |p: &[u8]| -> Vec<u8> {
        let s = SlicedPacket::from_ip(p).unwrap();
        let Some(TransportSlice::Udp(u)) = s.transport else {
            panic!("no UDP")
        };
        u.payload().to_vec()
    };

    let (proto, inner) = ip_payload(&tunnel::ipip("1.1.1.1", "2.2.2.2", &in6));
    assert_eq!(proto, 41);
    assert!(tcp_of(&inner).2);

    let (proto, gre) = ip_payload(&tunnel::gre("2001::1", "2001::2", &in4));
    assert_eq!(proto, 47);
    assert!(tcp_of(&gre[4..]).2);

    let (_, gre) = ip_payload(&tunnel::gre_with_key_seq("1.1.1.1", "2.2.2.2", 5, 6, &in4));
    assert!(tcp_of(&gre[12..]).2);

    let (_, gre) = ip_payload(&tunnel::gre_eth("1.1.1.1", "2.2.2.2", &eth4));
    assert!(SlicedPacket::from_ethernet(&gre[4..])
        .unwrap()
        .transport
        .is_some());

    let (_, gre) = ip_payload(&tunnel::erspan2("1.1.1.1", "2.2.2.2", 7, &eth4));
    assert_eq!(&gre[..4], &[0x10, 0x00, 0x88, 0xbe]);
    assert_eq!(gre[8] >> 4, 1, "ERSPAN version 1 (type II)");
    assert!(SlicedPacket::from_ethernet(&gre[16..])
        .unwrap()
        .transport
        .is_some());

    let (_, gre) = ip_payload(&tunnel::erspan3("1.1.1.1", "2.2.2.2", 7, &eth4));
    assert_eq!(&gre[2..4], &[0x22, 0xeb]);
    assert_eq!(gre[8] >> 4, 2, "ERSPAN version 2 (type III)");
    assert_eq!(gre[19] & 1, 0, "O bit clear");
    assert!(SlicedPacket::from_ethernet(&gre[20..])
        .unwrap()
        .transport
        .is_some());

    let vx = udp_payload(&tunnel::vxlan("1.1.1.1", "2.2.2.2", 42, &eth4));
    assert_eq!(&vx[..8], &[0x08, 0, 0, 0, 0, 0, 42, 0]);
    assert!(SlicedPacket::from_ethernet(&vx[8..])
        .unwrap()
        .transport
        .is_some());

    let te = udp_payload(&tunnel::teredo("1.1.1.1", "2.2.2.2", &in6));
    assert!(tcp_of(&te).2);
    let te = udp_payload(&tunnel::teredo_origin("1.1.1.1", "2.2.2.2", &in6));
    assert_eq!(&te[..2], &[0, 0]);
    assert!(tcp_of(&te[8..]).2);

    let (proto, icmp) = ip_payload(&tunnel::icmp_unreachable_quoting(
        "10.1.0.2", "10.1.0.1", &in4,
    ));
    assert_eq!(proto, 1);
    assert_eq!(&icmp[8..], &in4[..40]);
    let (proto, icmp) = ip_payload(&tunnel::icmp_unreachable_quoting(
        "2001:db8::2",
        "2001:db8::1",
        &in6,
    ));
    assert_eq!(proto, 58);
    assert_eq!(&icmp[8..], &in6[..60]);

    let big = rst_v4().payload(vec![3u8; 100]).to_ip();
    let (a, b) = tunnel::fragment_v4(&big, 48);
    let (_, pa) = ip_payload(&a);
    let (_, pb) = ip_payload(&b);
    assert_eq!([pa, pb].concat(), big[20..].to_vec());
}
