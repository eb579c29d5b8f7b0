//! Link-layer framing for every link type the reader must support.

/// Source MAC of every Ethernet-like frame this crate writes.
pub const MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC of every Ethernet-like frame this crate writes.
pub const MAC_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

const ETH_MIN: usize = 60;

/// IP version (4 or 6) from the first nibble of an IP packet.
///
/// # Panics
/// If the packet is empty or its version is neither 4 nor 6.
pub(crate) fn ip_version(ip: &[u8]) -> u8 {
    let v = ip.first().map(|b| b >> 4);
    match v {
        Some(4) => 4,
        Some(6) => 6,
        _ => panic!("not an IPv4/IPv6 packet (version nibble {v:?})"),
    }
}

/// Ethertype for an IP packet: 0x0800 or 0x86DD.
pub(crate) fn ethertype(ip: &[u8]) -> u16 {
    if ip_version(ip) == 4 {
        0x0800
    } else {
        0x86DD
    }
}

/// PPP protocol number for an IP packet: 0x0021 or 0x0057.
fn ppp_proto(ip: &[u8]) -> u16 {
    if ip_version(ip) == 4 {
        0x0021
    } else {
        0x0057
    }
}

fn pad_eth(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < ETH_MIN {
        frame.resize(ETH_MIN, 0);
    }
    frame
}

fn macs() -> Vec<u8> {
    let mut v = Vec::with_capacity(ETH_MIN);
    v.extend_from_slice(&MAC_DST);
    v.extend_from_slice(&MAC_SRC);
    v
}

/// An Ethernet II frame (no padding, no FCS) carrying an IP packet, for
/// tunnels that carry Ethernet (gre_eth, erspan, vxlan). Destination
/// [`MAC_DST`], source [`MAC_SRC`].
pub fn ethernet_frame(ip: &[u8]) -> Vec<u8> {
    let mut v = macs();
    v.extend_from_slice(&ethertype(ip).to_be_bytes());
    v.extend_from_slice(ip);
    v
}

/// A link layer: wraps an IP packet (or, for [`Link::RawEthernetFrame`], an
/// Ethernet frame) into one link type's frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Link {
    /// DLT 1, Ethernet II, ethertype by IP version.
    Ethernet,
    /// DLT 1 with 802.1Q tags, outermost first. With 2+ ids the outer tag uses
    /// TPID 0x88A8 (QinQ) and the inner ones 0x8100. Ids are masked to 12 bits.
    Vlan(Vec<u16>),
    /// DLT 1, ethertype 0x8847, one label stack entry per label (TC 0,
    /// TTL 64), bottom-of-stack on the last. Labels are masked to 20 bits.
    Mpls(Vec<u32>),
    /// DLT 1, ethertype 0x8864, PPPoE session header (ver/type 0x11, code 0,
    /// session 0x1234, length) + PPP protocol 0x0021 / 0x0057.
    Pppoe,
    /// DLT 1 with an 802.3 length field, LLC AA AA 03, SNAP OUI 00 00 00 +
    /// ethertype.
    EthernetLlcSnap,
    /// DLT 113, 16-byte Linux cooked header (packet type 0, ARPHRD_ETHER,
    /// address length 6, protocol = ethertype).
    LinuxSll,
    /// DLT 276, 20-byte Linux cooked v2 header (protocol, reserved, ifindex 1,
    /// ARPHRD_ETHER, packet type 0, address length 6, address).
    LinuxSll2,
    /// DLT 101 (LINKTYPE_RAW), the bare IP packet.
    Raw,
    /// DLT 12 (DLT_RAW on most BSDs), the bare IP packet.
    RawDlt12,
    /// DLT 14 (DLT_RAW on OpenBSD), the bare IP packet.
    RawDlt14,
    /// DLT 228, bare IPv4 packet (IPv4 only).
    Ipv4,
    /// DLT 229, bare IPv6 packet (IPv6 only).
    Ipv6,
    /// DLT 0: 4-byte address family in the given byte order. AF_INET = 2;
    /// AF_INET6 = 24 when big-endian and 30 when little-endian, so both BSD
    /// values get exercised.
    Null {
        /// Byte order of the family word.
        big_endian: bool,
    },
    /// DLT 108: 4-byte family in network byte order (AF_INET 2, AF_INET6 24).
    Loop,
    /// DLT 10: frame control 0x50, dst(6), src(6), LLC AA AA 03, SNAP
    /// 00 00 00 + ethertype.
    Fddi,
    /// DLT 9: FF 03 + 2-byte PPP protocol (0x0021 / 0x0057).
    Ppp,
    /// DLT 50 (PPP in HDLC-like framing): same framing as [`Link::Ppp`].
    PppHdlc,
    /// DLT 104: 0x0F 0x00 + ethertype.
    CiscoHdlc,
    /// DLT 1, and the bytes given to [`Link::frame`] are already a complete
    /// Ethernet frame (tunnels carrying Ethernet); returned unchanged.
    RawEthernetFrame,
}

impl Link {
    /// Every variant once (Vlan with one and two tags, Mpls with two labels,
    /// Null in both byte orders), handy for tests that loop over link types.
    pub fn all() -> Vec<Link> {
        vec![
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
            Link::Ipv6,
            Link::Null { big_endian: false },
            Link::Null { big_endian: true },
            Link::Loop,
            Link::Fddi,
            Link::Ppp,
            Link::PppHdlc,
            Link::CiscoHdlc,
            Link::RawEthernetFrame,
        ]
    }

    /// The pcap / pcapng link type number.
    pub fn linktype(&self) -> u16 {
        match self {
            Link::Ethernet
            | Link::Vlan(_)
            | Link::Mpls(_)
            | Link::Pppoe
            | Link::EthernetLlcSnap
            | Link::RawEthernetFrame => 1,
            Link::LinuxSll => 113,
            Link::LinuxSll2 => 276,
            Link::Raw => 101,
            Link::RawDlt12 => 12,
            Link::RawDlt14 => 14,
            Link::Ipv4 => 228,
            Link::Ipv6 => 229,
            Link::Null { .. } => 0,
            Link::Loop => 108,
            Link::Fddi => 10,
            Link::Ppp => 9,
            Link::PppHdlc => 50,
            Link::CiscoHdlc => 104,
        }
    }

    /// Whether this link type can carry `ip` ([`Link::Ipv4`] / [`Link::Ipv6`]
    /// carry only their own family; everything else carries both).
    pub fn supports(&self, ip: &[u8]) -> bool {
        match self {
            Link::Ipv4 => ip.first().map(|b| b >> 4) == Some(4),
            Link::Ipv6 => ip.first().map(|b| b >> 4) == Some(6),
            _ => true,
        }
    }

    /// Frame bytes for an IP packet (for [`Link::RawEthernetFrame`]: an
    /// Ethernet frame, returned unchanged). Ethernet MACs are fixed
    /// ([`MAC_DST`], [`MAC_SRC`]). DLT 1 frames shorter than 60 bytes get
    /// zero padding to 60, as real NICs do, so readers must trust the IP
    /// length, not the frame length.
    ///
    /// # Panics
    /// If `ip` is not an IPv4/IPv6 packet, is the wrong family for
    /// [`Link::Ipv4`] / [`Link::Ipv6`], [`Link::Mpls`] has no label, or the
    /// packet does not fit a length field.
    pub fn frame(&self, ip: &[u8]) -> Vec<u8> {
        match self {
            Link::Ethernet => pad_eth(ethernet_frame(ip)),
            Link::Vlan(ids) => {
                let mut v = macs();
                for (i, id) in ids.iter().enumerate() {
                    let tpid: u16 = if i == 0 && ids.len() >= 2 {
                        0x88A8
                    } else {
                        0x8100
                    };
                    v.extend_from_slice(&tpid.to_be_bytes());
                    v.extend_from_slice(&(id & 0x0fff).to_be_bytes());
                }
                v.extend_from_slice(&ethertype(ip).to_be_bytes());
                v.extend_from_slice(ip);
                pad_eth(v)
            }
            Link::Mpls(labels) => {
                assert!(!labels.is_empty(), "Link::Mpls needs at least one label");
                ip_version(ip);
                let mut v = macs();
                v.extend_from_slice(&0x8847u16.to_be_bytes());
                for (i, label) in labels.iter().enumerate() {
                    let bos = u32::from(i + 1 == labels.len());
                    let entry = ((label & 0x000f_ffff) << 12) | (bos << 8) | 64;
                    v.extend_from_slice(&entry.to_be_bytes());
                }
                v.extend_from_slice(ip);
                pad_eth(v)
            }
            Link::Pppoe => {
                let mut v = macs();
                v.extend_from_slice(&0x8864u16.to_be_bytes());
                v.push(0x11);
                v.push(0x00);
                v.extend_from_slice(&0x1234u16.to_be_bytes());
                let len = u16::try_from(ip.len() + 2).expect("packet too big for PPPoE length");
                v.extend_from_slice(&len.to_be_bytes());
                v.extend_from_slice(&ppp_proto(ip).to_be_bytes());
                v.extend_from_slice(ip);
                pad_eth(v)
            }
            Link::EthernetLlcSnap => {
                let mut v = macs();
                let len = ip.len() + 8;
                assert!(len <= 1500, "802.3 length {len} exceeds 1500");
                // Checked above: fits in u16.
                v.extend_from_slice(&(len as u16).to_be_bytes());
                v.extend_from_slice(&[0xAA, 0xAA, 0x03, 0, 0, 0]);
                v.extend_from_slice(&ethertype(ip).to_be_bytes());
                v.extend_from_slice(ip);
                pad_eth(v)
            }
            Link::LinuxSll => {
                let mut v = Vec::with_capacity(16 + ip.len());
                v.extend_from_slice(&0u16.to_be_bytes()); // packet type: to us
                v.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                v.extend_from_slice(&6u16.to_be_bytes()); // address length
                v.extend_from_slice(&MAC_SRC);
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(&ethertype(ip).to_be_bytes());
                v.extend_from_slice(ip);
                v
            }
            Link::LinuxSll2 => {
                let mut v = Vec::with_capacity(20 + ip.len());
                v.extend_from_slice(&ethertype(ip).to_be_bytes());
                v.extend_from_slice(&0u16.to_be_bytes()); // reserved
                v.extend_from_slice(&1u32.to_be_bytes()); // interface index
                v.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                v.push(0); // packet type: to us
                v.push(6); // address length
                v.extend_from_slice(&MAC_SRC);
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(ip);
                v
            }
            Link::Raw | Link::RawDlt12 | Link::RawDlt14 => {
                ip_version(ip);
                ip.to_vec()
            }
            Link::Ipv4 | Link::Ipv6 => {
                assert!(
                    self.supports(ip),
                    "{self:?} cannot carry an IPv{} packet",
                    ip_version(ip)
                );
                ip.to_vec()
            }
            Link::Null { big_endian } => {
                let family: u32 = match (ip_version(ip), big_endian) {
                    (4, _) => 2,
                    (_, true) => 24,
                    (_, false) => 30,
                };
                let mut v = if *big_endian {
                    family.to_be_bytes().to_vec()
                } else {
                    family.to_le_bytes().to_vec()
                };
                v.extend_from_slice(ip);
                v
            }
            Link::Loop => {
                let family: u32 = if ip_version(ip) == 4 { 2 } else { 24 };
                let mut v = family.to_be_bytes().to_vec();
                v.extend_from_slice(ip);
                v
            }
            Link::Fddi => {
                let mut v = vec![0x50];
                v.extend_from_slice(&MAC_DST);
                v.extend_from_slice(&MAC_SRC);
                v.extend_from_slice(&[0xAA, 0xAA, 0x03, 0, 0, 0]);
                v.extend_from_slice(&ethertype(ip).to_be_bytes());
                v.extend_from_slice(ip);
                v
            }
            Link::Ppp | Link::PppHdlc => {
                let mut v = vec![0xFF, 0x03];
                v.extend_from_slice(&ppp_proto(ip).to_be_bytes());
                v.extend_from_slice(ip);
                v
            }
            Link::CiscoHdlc => {
                let mut v = vec![0x0F, 0x00];
                v.extend_from_slice(&ethertype(ip).to_be_bytes());
                v.extend_from_slice(ip);
                v
            }
            Link::RawEthernetFrame => ip.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tcp;

    fn v4() -> Vec<u8> {
        Tcp::new("10.0.0.1", 1, "10.0.0.2", 2).to_ip()
    }

    fn v6() -> Vec<u8> {
        Tcp::new("2001:db8::1", 1, "2001:db8::2", 2).to_ip()
    }

    const MACS: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

    /// Expected header bytes before the IP packet, and the padded frame
    /// length for a 40-byte IPv4 packet.
    fn expect(link: &Link, v6: bool, ip_len: usize) -> (Vec<u8>, Option<usize>) {
        let et: [u8; 2] = if v6 { [0x86, 0xdd] } else { [0x08, 0x00] };
        let ppp: [u8; 2] = if v6 { [0x00, 0x57] } else { [0x00, 0x21] };
        let cat = |parts: &[&[u8]]| parts.concat();
        match link {
            Link::Ethernet => (cat(&[&MACS, &et]), Some(60)),
            Link::Vlan(ids) if ids.len() == 1 => (
                cat(&[&MACS, &[0x81, 0x00], &ids[0].to_be_bytes(), &et]),
                Some(60),
            ),
            Link::Vlan(ids) => (
                cat(&[
                    &MACS,
                    &[0x88, 0xa8],
                    &ids[0].to_be_bytes(),
                    &[0x81, 0x00],
                    &ids[1].to_be_bytes(),
                    &et,
                ]),
                Some(60),
            ),
            Link::Mpls(_) => (
                cat(&[
                    &MACS,
                    &[0x88, 0x47],
                    &[0x00, 0x01, 0x00, 64],
                    &[0x00, 0x01, 0x11, 64],
                ]),
                Some(60),
            ),
            Link::Pppoe => (
                cat(&[
                    &MACS,
                    &[0x88, 0x64, 0x11, 0, 0x12, 0x34],
                    &(ip_len as u16 + 2).to_be_bytes(),
                    &ppp,
                ]),
                Some(62),
            ),
            Link::EthernetLlcSnap => (
                cat(&[
                    &MACS,
                    &(ip_len as u16 + 8).to_be_bytes(),
                    &[0xaa, 0xaa, 3, 0, 0, 0],
                    &et,
                ]),
                Some(62),
            ),
            Link::LinuxSll => (
                cat(&[&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0], &et]),
                None,
            ),
            Link::LinuxSll2 => (
                cat(&[&et, &[0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]]),
                None,
            ),
            Link::Raw | Link::RawDlt12 | Link::RawDlt14 | Link::Ipv4 | Link::Ipv6 => (vec![], None),
            Link::Null { big_endian: true } => (vec![0, 0, 0, if v6 { 24 } else { 2 }], None),
            Link::Null { big_endian: false } => (vec![if v6 { 30 } else { 2 }, 0, 0, 0], None),
            Link::Loop => (vec![0, 0, 0, if v6 { 24 } else { 2 }], None),
            Link::Fddi => (cat(&[&[0x50], &MACS, &[0xaa, 0xaa, 3, 0, 0, 0], &et]), None),
            Link::Ppp | Link::PppHdlc => (cat(&[&[0xff, 0x03], &ppp]), None),
            Link::CiscoHdlc => (cat(&[&[0x0f, 0x00], &et]), None),
            Link::RawEthernetFrame => unreachable!(),
        }
    }

    #[test]
    fn every_link_frames_as_expected() {
        for link in Link::all() {
            if link == Link::RawEthernetFrame {
                continue;
            }
            for (is_v6, ip) in [(false, v4()), (true, v6())] {
                if !link.supports(&ip) {
                    continue;
                }
                let f = link.frame(&ip);
                let (hdr, padded) = expect(&link, is_v6, ip.len());
                assert_eq!(&f[..hdr.len()], &hdr[..], "{link:?} v6={is_v6}");
                assert_eq!(&f[hdr.len()..hdr.len() + ip.len()], &ip[..], "{link:?}");
                let want_len = match padded {
                    Some(p) if !is_v6 => p.max(hdr.len() + ip.len()),
                    _ => hdr.len() + ip.len(),
                };
                assert_eq!(f.len(), want_len, "{link:?} v6={is_v6}");
                assert!(f[hdr.len() + ip.len()..].iter().all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn ethernet_padding_parses_with_ip_length() {
        let ip = v4();
        let f = Link::Ethernet.frame(&ip);
        assert_eq!(f.len(), 60);
        let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
            panic!()
        };
        assert!(t.payload().is_empty(), "padding is not payload");
    }

    #[test]
    fn linktypes() {
        let want = [
            1, 1, 1, 1, 1, 1, 113, 276, 101, 12, 14, 228, 229, 0, 0, 108, 10, 9, 50, 104, 1,
        ];
        let got: Vec<u16> = Link::all().iter().map(Link::linktype).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn raw_ethernet_frame_is_unchanged() {
        let e = ethernet_frame(&v4());
        assert_eq!(e.len(), 54);
        assert_eq!(Link::RawEthernetFrame.frame(&e), e);
        assert_eq!(&e[..12], &MACS);
        assert_eq!(&e[12..14], &[0x08, 0x00]);
    }

    #[test]
    fn vlan_ids_are_masked_and_big_frames_unpadded() {
        let ip = Tcp::new("10.0.0.1", 1, "10.0.0.2", 2)
            .payload(vec![7; 100])
            .to_ip();
        let f = Link::Vlan(vec![0xf123]).frame(&ip);
        assert_eq!(&f[14..16], &[0x01, 0x23]);
        assert_eq!(f.len(), 18 + ip.len());
        let f3 = Link::Vlan(vec![1, 2, 3]).frame(&ip);
        assert_eq!(&f3[12..14], &[0x88, 0xa8]);
        assert_eq!(&f3[16..18], &[0x81, 0x00]);
        assert_eq!(&f3[20..22], &[0x81, 0x00]);
        assert_eq!(&f3[24..26], &[0x08, 0x00]);
        assert_eq!(Link::Vlan(vec![]).frame(&ip), Link::Ethernet.frame(&ip));
    }

    #[test]
    #[should_panic(expected = "cannot carry")]
    fn ipv4_link_rejects_v6() {
        let _ = Link::Ipv4.frame(&v6());
    }

    #[test]
    #[should_panic(expected = "not an IPv4/IPv6 packet")]
    fn garbage_rejected() {
        let _ = Link::Ethernet.frame(&[0x12, 0x34]);
    }
}
