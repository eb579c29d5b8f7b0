//! Writes one sample capture per link type, file format and tunnel into a
//! directory, for checking the writer against tshark / tcpdump by hand:
//!
//! ```text
//! cargo run -p rstscope-pcapgen --example write_samples -- /tmp/samples
//! for f in /tmp/samples/*; do tshark -r "$f" -T fields -e frame.number -e ip.src -e ipv6.src -e tcp.flags; done
//! ```
//!
//! Every TCP packet in these files goes to or from port 443 and the last one
//! of each file is a RST.

use std::path::Path;

use rstscope_pcapgen::{
    ethernet_frame, flags, gzip, gzip_members, tunnel, write_file, zstd, Endian, Interface, Link,
    PcapNgWriter, PcapWriter, Record, Tcp, TcpOpt,
};

const T0: i64 = 1_700_000_000_123_456_789;

fn syn_v4() -> Tcp {
    Tcp::new("10.0.0.1", 40000, "10.0.0.2", 443)
        .seq(100)
        .flags(flags::SYN)
        .ip_id(0x1234)
        .option(TcpOpt::Mss(1460))
        .option(TcpOpt::SackPermitted)
        .option(TcpOpt::Timestamp(1, 0))
        .option(TcpOpt::Nop)
        .option(TcpOpt::WindowScale(7))
}

fn rst_v4() -> Tcp {
    syn_v4()
        .reply()
        .seq(0)
        .ack(101)
        .flags(flags::RST | flags::ACK)
}

fn syn_v6() -> Tcp {
    Tcp::new("2001:db8::1", 40000, "2001:db8::2", 443)
        .seq(100)
        .flags(flags::SYN)
}

fn rst_v6() -> Tcp {
    syn_v6().reply().ack(101).flags(flags::RST | flags::ACK)
}

fn name(link: &Link) -> String {
    match link {
        Link::Vlan(ids) => format!("vlan{}", ids.len()),
        Link::Mpls(labels) => format!("mpls{}", labels.len()),
        Link::Null { big_endian } => format!("null_{}", if *big_endian { "be" } else { "le" }),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn recs(frames: Vec<Vec<u8>>) -> Vec<Record> {
    frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| Record::new(T0 + i as i64 * 1_000_000, f))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/pcapgen-samples".to_string());
    let dir = Path::new(&dir);

    // One pcap per link type, each with a v4 SYN/RST and a v6 SYN/RST where
    // the link can carry that family.
    for link in Link::all() {
        let mut frames = Vec::new();
        for ip in [
            syn_v4().to_ip(),
            syn_v6().to_ip(),
            rst_v6().to_ip(),
            rst_v4().to_ip(),
        ] {
            if !link.supports(&ip) {
                continue;
            }
            if link == Link::RawEthernetFrame {
                frames.push(link.frame(&ethernet_frame(&ip)));
            } else {
                frames.push(link.frame(&ip));
            }
        }
        let w = PcapWriter::new(u32::from(link.linktype()));
        write_file(
            &dir.join(format!("link_{}.pcap", name(&link))),
            &w.write(&recs(frames)),
        )?;
    }

    // File formats.
    let eth = Link::Ethernet;
    let frames = vec![
        eth.frame(&syn_v4().to_ip()),
        eth.frame(&syn_v6().to_ip()),
        eth.frame(&rst_v4().to_ip()),
    ];
    let records = recs(frames.clone());
    for endian in [Endian::Little, Endian::Big] {
        for nanos in [false, true] {
            let w = PcapWriter::new(1).endian(endian).nanos(nanos);
            let tag = format!(
                "{}_{}",
                if endian == Endian::Big { "be" } else { "le" },
                if nanos { "ns" } else { "us" }
            );
            write_file(
                &dir.join(format!("fmt_pcap_{tag}.pcap")),
                &w.write(&records),
            )?;
        }
    }
    let snapped: Vec<Record> = records.iter().cloned().map(|r| r.snap(54)).collect();
    write_file(
        &dir.join("fmt_pcap_snap54.pcap"),
        &PcapWriter::new(1).snaplen(54).write(&snapped),
    )?;
    let pcap = PcapWriter::new(1).write(&records);
    write_file(&dir.join("fmt_pcap_gzip.pcap.gz"), &gzip(&pcap))?;
    write_file(
        &dir.join("fmt_pcap_gzip3members.pcap.gz"),
        &gzip_members(&pcap, 3),
    )?;
    write_file(&dir.join("fmt_pcap_zstd.pcap.zst"), &zstd(&pcap))?;

    for endian in [Endian::Little, Endian::Big] {
        let mut w = PcapNgWriter::new(
            endian,
            vec![
                Interface::new(1),
                Interface::new(1).tsresol(9),
                Interface::new(1).tsresol(0x80 | 20),
                Interface::new(101).tsoffset(1_000_000_000),
            ],
        );
        w.epb(0, &records[0])
            .epb(1, &records[1])
            .epb(2, &records[2])
            .unknown_block(0x0BAD_CAFE, b"unknown!x")
            .epb(3, &Record::new(T0, rst_v6().to_ip()))
            .spb(&records[2]);
        let tag = if endian == Endian::Big { "be" } else { "le" };
        let bytes = w.finish();
        write_file(&dir.join(format!("fmt_pcapng_{tag}.pcapng")), &bytes)?;
        write_file(
            &dir.join(format!("fmt_pcapng_{tag}.pcapng.gz")),
            &gzip_members(&bytes, 2),
        )?;
        write_file(
            &dir.join(format!("fmt_pcapng_{tag}.pcapng.zst")),
            &zstd(&bytes),
        )?;
    }
    let mut w = PcapNgWriter::new(Endian::Little, vec![Interface::new(1)]);
    w.epb(0, &records[0])
        .new_section(Endian::Big, vec![Interface::new(228), Interface::new(1)])
        .epb(1, &records[1])
        .epb(0, &Record::new(T0 + 5_000_000, rst_v4().to_ip()));
    write_file(&dir.join("fmt_pcapng_two_sections.pcapng"), &w.finish())?;

    // Odd TCP header bits: AE + reserved, ACK value without the ACK flag.
    let odd = Tcp::new("10.9.0.1", 1, "10.9.0.2", 443)
        .seq(5)
        .ack(0xdead_beef)
        .flags(flags::RST | flags::AE | flags::RESERVED)
        .payload(&b"reset reason"[..]);
    write_file(
        &dir.join("tcp_odd_flags.pcap"),
        &PcapWriter::new(1).write(&recs(vec![eth.frame(&odd.to_ip())])),
    )?;

    // Tunnels, each in Ethernet.
    let in4 = rst_v4().to_ip();
    let in6 = rst_v6().to_ip();
    let ieth = ethernet_frame(&in4);
    let (frag_a, frag_b) = tunnel::fragment_v4(&rst_v4().payload(vec![0x55u8; 64]).to_ip(), 32);
    let tunnels: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "ipip4in4",
            vec![tunnel::ipip("192.0.2.1", "192.0.2.2", &in4)],
        ),
        (
            "ipip6in4",
            vec![tunnel::ipip("192.0.2.1", "192.0.2.2", &in6)],
        ),
        ("ipip4in6", vec![tunnel::ipip("2001::1", "2001::2", &in4)]),
        ("gre", vec![tunnel::gre("192.0.2.1", "192.0.2.2", &in4)]),
        ("gre6in6", vec![tunnel::gre("2001::1", "2001::2", &in6)]),
        (
            "gre_key_seq",
            vec![tunnel::gre_with_key_seq(
                "192.0.2.1",
                "192.0.2.2",
                77,
                3,
                &in6,
            )],
        ),
        (
            "gre_eth",
            vec![tunnel::gre_eth("192.0.2.1", "192.0.2.2", &ieth)],
        ),
        (
            "erspan2",
            vec![tunnel::erspan2("192.0.2.1", "192.0.2.2", 100, &ieth)],
        ),
        (
            "erspan3",
            vec![tunnel::erspan3("192.0.2.1", "192.0.2.2", 100, &ieth)],
        ),
        (
            "vxlan",
            vec![tunnel::vxlan("192.0.2.1", "192.0.2.2", 4242, &ieth)],
        ),
        (
            "vxlan6",
            vec![tunnel::vxlan("2001::1", "2001::2", 7, &ieth)],
        ),
        (
            "teredo",
            vec![tunnel::teredo("192.0.2.1", "192.0.2.2", &in6)],
        ),
        (
            "teredo_origin",
            vec![tunnel::teredo_origin("192.0.2.1", "192.0.2.2", &in6)],
        ),
        (
            "icmp4",
            vec![tunnel::icmp_unreachable_quoting(
                "10.0.0.2", "10.0.0.1", &in4,
            )],
        ),
        (
            "icmp6",
            vec![tunnel::icmp_unreachable_quoting(
                "2001:db8::2",
                "2001:db8::1",
                &in6,
            )],
        ),
        ("fragments", vec![frag_a, frag_b]),
    ];
    for (n, packets) in tunnels {
        let frames = packets.iter().map(|p| eth.frame(p)).collect();
        write_file(
            &dir.join(format!("tunnel_{n}.pcap")),
            &PcapWriter::new(1).write(&recs(frames)),
        )?;
    }
    Ok(())
}
