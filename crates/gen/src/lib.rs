//! The captures in `testdata/` and the large benchmark archives, made with the project's own
//! capture writer (`rstscope-pcapgen`). Everything is deterministic: the same code writes the
//! same bytes, which a test checks against the committed `testdata/`.

use std::io::Write;

use rstscope_pcapgen::{
    flags::*, gzip, gzip_members, tunnel, zstd, Endian, Interface, Link, PcapNgWriter, PcapWriter,
    Record, Tcp,
};

/// 2026-11-24 00:00:00 UTC, in ns: the day the sample captures pretend to be from.
pub const T0: i64 = 1_795_478_400_000_000_000;

/// Packets of one capture with a running clock.
pub struct Capture {
    pub link: Link,
    pub records: Vec<Record>,
    pub now: i64,
}

impl Capture {
    pub fn new(link: Link) -> Self {
        Capture {
            link,
            records: Vec::new(),
            now: T0,
        }
    }

    /// Advance the clock by `us` microseconds, then add `tcp` as a packet.
    pub fn after(&mut self, us: i64, tcp: &Tcp) -> &mut Self {
        self.now += us * 1000;
        let frame = self.link.frame(&tcp.to_ip());
        self.records.push(Record::new(self.now, frame));
        self
    }

    /// Add a raw IP packet (any protocol) after `us` microseconds.
    pub fn after_ip(&mut self, us: i64, ip: &[u8]) -> &mut Self {
        self.now += us * 1000;
        let frame = self.link.frame(ip);
        self.records.push(Record::new(self.now, frame));
        self
    }

    pub fn pcap(&self) -> Vec<u8> {
        PcapWriter::new(u32::from(self.link.linktype())).write(&self.records)
    }
}

/// The seed's situations, each a few packets.
pub fn sample(link: Link) -> Capture {
    let mut c = Capture::new(link);
    let client = "10.0.0.5";
    // 1. A SYN to a closed port answered the RFC 9293 way: R. seq 0, ack = ISN + 1, win 0.
    let syn = Tcp::new(client, 40001, "10.0.0.80", 23)
        .seq(1_000_000)
        .flags(SYN)
        .ttl(64)
        .ip_id(100)
        .window(64240);
    let refuse = syn
        .reply()
        .seq(0)
        .ack(1_000_001)
        .flags(RST | ACK)
        .window(0)
        .ttl(64)
        .ip_id(0);
    c.after(0, &syn).after(150, &refuse);
    // ... retried twice, each answered the same way
    c.after(1_000_000, &syn.clone().ip_id(101))
        .after(140, &refuse)
        .after(2_000_000, &syn.clone().ip_id(102))
        .after(160, &refuse);
    // 2. An SMTP banner, then an IPS resets both ends with a reason in the payload.
    let (cs, ss) = (2_000_000u32, 7_000_000u32);
    let to_srv = Tcp::new(client, 40002, "192.0.2.25", 25).ttl(64);
    let to_cli = to_srv.reply().ttl(52);
    c.after(10_000, &to_srv.clone().seq(cs).flags(SYN))
        .after(20_000, &to_cli.clone().seq(ss).ack(cs + 1).flags(SYN | ACK))
        .after(100, &to_srv.clone().seq(cs + 1).ack(ss + 1).flags(ACK))
        .after(
            5_000,
            &to_cli
                .clone()
                .seq(ss + 1)
                .ack(cs + 1)
                .flags(PSH | ACK)
                .payload(b"220 mailgateway ESMTP\r\n".to_vec()),
        );
    let ips_to_cli = to_cli
        .clone()
        .seq(ss + 24)
        .ack(cs + 1)
        .flags(RST | ACK)
        .ttl(251)
        .window(16384)
        .payload(b"220 mailgat".to_vec());
    let ips_to_srv = to_srv
        .clone()
        .seq(cs + 1)
        .ack(ss + 24)
        .flags(RST | ACK)
        .ttl(251)
        .window(16384)
        .payload(b"220 mailgat".to_vec());
    c.after(300, &ips_to_cli).after(1, &ips_to_srv);
    // 3. An established connection aborted by the client (RST after data).
    let a = Tcp::new(client, 40003, "198.51.100.10", 443).ttl(64);
    let b = a.reply().ttl(57);
    c.after(50_000, &a.clone().seq(10).flags(SYN))
        .after(30_000, &b.clone().seq(500).ack(11).flags(SYN | ACK))
        .after(200, &a.clone().seq(11).ack(501).flags(ACK))
        .after(
            1_000,
            &a.clone()
                .seq(11)
                .ack(501)
                .flags(PSH | ACK)
                .payload(vec![0x16; 100]),
        )
        .after(30_000, &b.clone().seq(501).ack(111).flags(ACK))
        .after(
            2_000_000,
            &a.clone().seq(111).ack(501).flags(RST | ACK).window(0),
        );
    // 4. A RST after the server's FIN.
    let a = Tcp::new(client, 40004, "198.51.100.11", 80).ttl(64);
    let b = a.reply().ttl(57);
    c.after(10_000, &a.clone().seq(20).flags(SYN))
        .after(30_000, &b.clone().seq(900).ack(21).flags(SYN | ACK))
        .after(200, &a.clone().seq(21).ack(901).flags(ACK))
        .after(
            1_000,
            &a.clone()
                .seq(21)
                .ack(901)
                .flags(PSH | ACK)
                .payload(b"GET / HTTP/1.0\r\n\r\n".to_vec()),
        )
        .after(30_000, &b.clone().seq(901).ack(39).flags(FIN | ACK))
        .after(300, &a.clone().seq(39).flags(RST).window(0));
    // 5. A half-open SYN scan: the scanner resets after the SYN-ACK.
    let s = Tcp::new("203.0.113.66", 61000, "10.0.0.81", 22).ttl(45);
    c.after(20_000, &s.clone().seq(0x1234_5678).flags(SYN).window(1024))
        .after(
            300,
            &s.reply()
                .seq(3_000_000)
                .ack(0x1234_5679)
                .flags(SYN | ACK)
                .ttl(64),
        )
        .after(
            200,
            &s.clone().seq(0x1234_5679).flags(RST).window(0).ttl(45),
        );
    // 6. IPv6: a refused SYN.
    let s6 = Tcp::new("2001:db8::5", 40005, "2001:db8::80", 8080)
        .seq(42)
        .flags(SYN)
        .ttl(64);
    c.after(10_000, &s6).after(
        100,
        &s6.reply().seq(0).ack(43).flags(RST | ACK).window(0).ttl(64),
    );
    // 7. A RST carrying a structured reason (draft-ietf-tcpm-rst-diagnostic-payload): ABORT.
    let d = Tcp::new("10.0.0.6", 40006, "10.0.0.82", 9000).ttl(64);
    c.after(10_000, &d.clone().seq(5).flags(SYN))
        .after(100, &d.reply().seq(77).ack(6).flags(SYN | ACK))
        .after(100, &d.clone().seq(6).ack(78).flags(ACK))
        .after(
            1_000,
            &d.reply()
                .seq(78)
                .ack(6)
                .flags(RST | ACK)
                .payload(vec![0x33, 0xaa, 0x00, 0x04, 0, 0, 0, 0]),
        );
    // 8. Traffic that is not TCP: a DNS query (UDP).
    c.after_ip(
        1_000,
        &tunnel::udp_packet("10.0.0.5", "10.0.0.53", 5353, 53, b"\x12\x34\x01\x00"),
    );
    c
}

/// One short exchange (SYN answered by R.) for a link type; IPv6 when the link needs it.
pub fn link_capture(link: Link) -> Capture {
    let v6 = link == Link::Ipv6;
    let (src, dst) = if v6 {
        ("2001:db8::1", "2001:db8::2")
    } else {
        ("10.1.0.1", "10.1.0.2")
    };
    let mut c = Capture::new(link);
    let syn = Tcp::new(src, 33000, dst, 25).seq(7).flags(SYN).ttl(64);
    c.after(0, &syn).after(
        100,
        &syn.reply()
            .seq(0)
            .ack(8)
            .flags(RST | ACK)
            .window(0)
            .ttl(128),
    );
    c
}

/// File-name stem for a link variant.
pub fn link_name(link: &Link) -> String {
    match link {
        Link::Ethernet => "ethernet".into(),
        Link::Vlan(v) if v.len() == 1 => "vlan".into(),
        Link::Vlan(_) => "qinq".into(),
        Link::Mpls(_) => "mpls".into(),
        Link::Pppoe => "pppoe".into(),
        Link::EthernetLlcSnap => "llc-snap".into(),
        Link::LinuxSll => "sll".into(),
        Link::LinuxSll2 => "sll2".into(),
        Link::Raw => "raw101".into(),
        Link::RawDlt12 => "raw12".into(),
        Link::RawDlt14 => "raw14".into(),
        Link::Ipv4 => "ipv4-228".into(),
        Link::Ipv6 => "ipv6-229".into(),
        Link::Null { big_endian: false } => "null-le".into(),
        Link::Null { big_endian: true } => "null-be".into(),
        Link::Loop => "loop".into(),
        Link::Fddi => "fddi".into(),
        Link::Ppp => "ppp".into(),
        Link::PppHdlc => "ppp-hdlc".into(),
        Link::CiscoHdlc => "chdlc".into(),
        Link::RawEthernetFrame => "ethernet-raw".into(),
    }
}

/// RSTs inside every tunnel we decode, plus an ICMP error quoting a RST (not a RST itself) and a
/// fragmented packet.
pub fn tunnels() -> Capture {
    let mut c = Capture::new(Link::Ethernet);
    let inner = |port: u16| {
        Tcp::new("172.16.0.1", port, "172.16.0.2", 80)
            .seq(u32::from(port))
            .ack(1)
            .flags(RST | ACK)
            .ttl(60)
            .to_ip()
    };
    let inner6 = Tcp::new("2001:db8:1::1", 5000, "2001:db8:1::2", 80)
        .seq(9)
        .flags(RST)
        .ttl(60)
        .to_ip();
    let (o1, o2) = ("10.9.0.1", "10.9.0.2");
    c.after_ip(0, &tunnel::ipip(o1, o2, &inner(1001)))
        .after_ip(10, &tunnel::ipip(o1, o2, &inner6))
        .after_ip(10, &tunnel::gre(o1, o2, &inner(1002)))
        .after_ip(10, &tunnel::gre_with_key_seq(o1, o2, 7, 1, &inner(1003)))
        .after_ip(
            10,
            &tunnel::gre_eth(o1, o2, &rstscope_pcapgen::ethernet_frame(&inner(1004))),
        )
        .after_ip(
            10,
            &tunnel::erspan2(o1, o2, 1, &rstscope_pcapgen::ethernet_frame(&inner(1005))),
        )
        .after_ip(
            10,
            &tunnel::erspan3(o1, o2, 1, &rstscope_pcapgen::ethernet_frame(&inner(1006))),
        )
        .after_ip(
            10,
            &tunnel::vxlan(o1, o2, 99, &rstscope_pcapgen::ethernet_frame(&inner(1007))),
        )
        .after_ip(10, &tunnel::teredo(o1, o2, &inner6))
        .after_ip(10, &tunnel::teredo_origin(o1, o2, &inner6))
        .after_ip(
            10,
            &tunnel::icmp_unreachable_quoting("10.9.0.254", "172.16.0.1", &inner(1008)),
        );
    let big = Tcp::new("172.16.0.1", 1009, "172.16.0.2", 80)
        .seq(5)
        .flags(PSH | ACK)
        .payload(vec![b'f'; 64])
        .to_ip();
    let (f1, f2) = tunnel::fragment_v4(&big, 48);
    c.after_ip(10, &f1).after_ip(10, &f2);
    c
}

/// RSTs whose payloads try to break or forge log lines in every output format.
pub fn hostile() -> Capture {
    let payloads: [&[u8]; 13] = [
        b"x\tforged\tcolumns",
        b"line one\nline two\r\n",
        b"\n#fields\tts\tuid\n#close\t2026",
        b"#separator \\x09",
        b"\"quoted\",comma,\"\"",
        b"=cmd|' /C calc'!A0",
        b"+SUM(1)",
        b"@import",
        b"\x1b[2J\x1b[31mred\x1b]0;title\x07",
        b"nul\0byte\xff\xfe\xc3(",
        b"-",
        b"(empty)",
        b"\"unterminated quote\tand tab",
    ];
    let mut c = Capture::new(Link::Ethernet);
    for (i, p) in payloads.iter().enumerate() {
        let t = Tcp::new("10.66.0.1", 50000 + i as u16, "10.66.0.2", 80)
            .seq(i as u32)
            .flags(RST)
            .payload(p.to_vec());
        c.after(10, &t);
    }
    let long = Tcp::new("10.66.0.1", 50100, "10.66.0.2", 80)
        .seq(1)
        .flags(RST | ACK)
        .payload((0..1400u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    c.after(10, &long);
    c
}

/// Every file of `testdata/` (relative path, bytes).
pub fn testdata() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let sample_eth = sample(Link::Ethernet);
    let recs = &sample_eth.records;
    let plain = sample_eth.pcap();
    out.push(("sample.pcap".to_string(), plain.clone()));
    out.push((
        "sample-vlan.pcap".to_string(),
        sample(Link::Vlan(vec![42])).pcap(),
    ));

    // Containers and compression, all holding the sample.
    for (name, endian, nanos) in [
        ("formats/pcap-le-us.pcap", Endian::Little, false),
        ("formats/pcap-be-us.pcap", Endian::Big, false),
        ("formats/pcap-le-ns.pcap", Endian::Little, true),
        ("formats/pcap-be-ns.pcap", Endian::Big, true),
    ] {
        out.push((
            name.to_string(),
            PcapWriter::new(1).endian(endian).nanos(nanos).write(recs),
        ));
    }
    for (name, endian) in [
        ("formats/pcapng-le.pcapng", Endian::Little),
        ("formats/pcapng-be.pcapng", Endian::Big),
    ] {
        // Three interfaces with different link types and resolutions; packets alternate.
        let raw = sample(Link::Raw);
        let sll = sample(Link::LinuxSll);
        let mut w = PcapNgWriter::new(
            endian,
            vec![
                Interface::new(1),
                Interface::new(101).tsresol(9),
                Interface::new(113).tsresol(0x80 | 20),
            ],
        );
        w.unknown_block(0x0000_0099, b"an unknown block to skip");
        // A custom block: no packet, but Wireshark counts it as a frame.
        w.unknown_block(0x4000_0bad, b"\0\0\x7f\xffcustom data");
        for (i, r) in recs.iter().enumerate() {
            match i % 3 {
                0 => w.epb(0, r),
                1 => w.epb(1, &raw.records[i]),
                _ => w.epb(2, &sll.records[i]),
            };
        }
        // A simple packet block (no timestamp) after them.
        w.spb(&recs[1]);
        out.push((name.to_string(), w.finish()));
    }
    out.push((
        "formats/sample.pcap.gz".to_string(),
        gzip_members(&plain, 3),
    ));
    out.push(("formats/sample.pcap.zst".to_string(), zstd(&plain)));
    let ng = PcapNgWriter::new(Endian::Little, vec![Interface::new(1)]);
    let mut ng = ng;
    for r in recs {
        ng.epb(0, r);
    }
    out.push(("formats/sample.pcapng.gz".to_string(), gzip(&ng.finish())));

    for link in Link::all() {
        if link == Link::RawEthernetFrame {
            continue;
        }
        out.push((
            format!("links/{}.pcap", link_name(&link)),
            link_capture(link).pcap(),
        ));
    }
    out.push(("tunnels.pcap".to_string(), tunnels().pcap()));
    out.push(("hostile.pcap".to_string(), hostile().pcap()));

    // Bad inputs.
    out.push((
        "bad/truncated.pcap".to_string(),
        plain[..plain.len() - 7].to_vec(),
    ));
    let mut corrupt = plain.clone();
    // The fourth record's caplen becomes 0x7fff_0000.
    let mut off = 24;
    for r in &recs[..3] {
        off += 16 + r.data.len();
    }
    corrupt[off + 8..off + 12].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    out.push(("bad/corrupt-length.pcap".to_string(), corrupt));
    out.push(("bad/empty.pcap".to_string(), Vec::new()));
    out.push((
        "bad/not-a-capture.pcap".to_string(),
        b"this is a text file, not a capture\n".to_vec(),
    ));
    let gz = gzip(&plain);
    out.push((
        "bad/truncated.pcap.gz".to_string(),
        gz[..gz.len() * 2 / 3].to_vec(),
    ));
    out.push((
        "bad/unknown-linktype.pcap".to_string(),
        PcapWriter::new(147).write(&recs[..2]),
    ));
    out
}

/// Parameters of a generated benchmark capture.
#[derive(Debug, Clone, Copy)]
pub struct BenchSpec {
    /// Stop after this many bytes of capture.
    pub bytes: u64,
    /// Concurrent flows interleaved.
    pub concurrent: usize,
    pub seed: u64,
}

/// A tiny deterministic PRNG (xorshift64*), so benchmark archives are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Write a benchmark capture: Ethernet pcap, interleaved TCP flows of 6–30 packets with data
/// (avg frame about 600–700 bytes), one flow in three ending in a RST (refusals, aborts,
/// resets after FIN), 5 % IPv6, 8 % VLAN-tagged. Returns (packets, RSTs).
pub fn write_bench<W: Write>(
    out: &mut W,
    spec: BenchSpec,
    start_ns: i64,
) -> std::io::Result<(u64, u64)> {
    let writer = PcapWriter::new(1);
    out.write_all(&writer.header())?;
    let mut written = 24u64;
    let mut rng = Rng::new(spec.seed);
    let mut now = start_ns;
    let mut packets = 0u64;
    let mut rsts = 0u64;
    let mut flows: Vec<Vec<(Link, Tcp)>> = Vec::new();
    let mut next_flow = 0u64;
    while written < spec.bytes {
        while flows.len() < spec.concurrent {
            flows.push(bench_flow(&mut rng, next_flow));
            next_flow += 1;
        }
        let i = rng.below(flows.len() as u64) as usize;
        let (link, tcp) = flows[i].remove(0);
        if flows[i].is_empty() {
            flows.swap_remove(i);
        }
        if tcp.flags & RST != 0 {
            rsts += 1;
        }
        now += 1_000 + rng.below(20_000) as i64;
        let rec = Record::new(now, link.frame(&tcp.to_ip()));
        let bytes = writer.record(&rec);
        out.write_all(&bytes)?;
        written += bytes.len() as u64;
        packets += 1;
    }
    Ok((packets, rsts))
}

fn bench_flow(rng: &mut Rng, n: u64) -> Vec<(Link, Tcp)> {
    let v6 = rng.below(100) < 5;
    let link = if rng.below(100) < 8 {
        Link::Vlan(vec![(n % 4000) as u16 + 1])
    } else {
        Link::Ethernet
    };
    let c = (n % 250) as u8 + 1;
    let s = ((n / 250) % 250) as u8 + 1;
    let (ca, sa) = if v6 {
        (format!("2001:db8::{c:x}"), format!("2001:db8:1::{s:x}"))
    } else {
        (
            format!("10.{}.{}.{}", (n >> 16) & 0x3f, c, s),
            format!("192.0.{}.{}", s, c),
        )
    };
    let cport = 1024 + (n % 60000) as u16;
    let sport = [80u16, 443, 22, 25, 8080][rng.below(5) as usize];
    let cli = Tcp::new(&ca, cport, &sa, sport).ttl(64);
    let srv = cli.reply().ttl(57);
    let isn_c = rng.next_u64() as u32;
    let isn_s = rng.next_u64() as u32;
    let mut p = Vec::new();
    let kind = rng.below(9);
    p.push((link.clone(), cli.clone().seq(isn_c).flags(SYN)));
    if kind == 0 {
        // refused
        p.push((
            link.clone(),
            srv.clone()
                .seq(0)
                .ack(isn_c.wrapping_add(1))
                .flags(RST | ACK)
                .window(0),
        ));
        return p;
    }
    p.push((
        link.clone(),
        srv.clone()
            .seq(isn_s)
            .ack(isn_c.wrapping_add(1))
            .flags(SYN | ACK),
    ));
    p.push((
        link.clone(),
        cli.clone()
            .seq(isn_c.wrapping_add(1))
            .ack(isn_s.wrapping_add(1))
            .flags(ACK),
    ));
    let (mut cs, mut ss) = (isn_c.wrapping_add(1), isn_s.wrapping_add(1));
    let rounds = 1 + rng.below(12);
    for _ in 0..rounds {
        let req = 50 + rng.below(400) as usize;
        p.push((
            link.clone(),
            cli.clone()
                .seq(cs)
                .ack(ss)
                .flags(PSH | ACK)
                .payload(vec![b'q'; req]),
        ));
        cs = cs.wrapping_add(req as u32);
        let resp = 200 + rng.below(1200) as usize;
        p.push((
            link.clone(),
            srv.clone()
                .seq(ss)
                .ack(cs)
                .flags(PSH | ACK)
                .payload(vec![b'r'; resp]),
        ));
        ss = ss.wrapping_add(resp as u32);
    }
    match kind {
        1 | 2 => p.push((link.clone(), cli.clone().seq(cs).ack(ss).flags(RST | ACK))),
        3 => {
            p.push((link.clone(), srv.clone().seq(ss).ack(cs).flags(FIN | ACK)));
            p.push((link.clone(), cli.clone().seq(cs).flags(RST)));
        }
        _ => {
            p.push((link.clone(), cli.clone().seq(cs).ack(ss).flags(FIN | ACK)));
            p.push((
                link.clone(),
                srv.clone().seq(ss).ack(cs.wrapping_add(1)).flags(FIN | ACK),
            ));
            p.push((
                link.clone(),
                cli.clone()
                    .seq(cs.wrapping_add(1))
                    .ack(ss.wrapping_add(1))
                    .flags(ACK),
            ));
        }
    }
    p
}
