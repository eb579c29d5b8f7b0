//! Fuzz harness for packet decoding (`rstscope_decode::decode`).
//!
//! Shared by the cargo-fuzz target `decode` and the regression test
//! `crates/decode/tests/fuzz_regressions.rs` (both include this file with `#[path]`).

use std::net::IpAddr;

use rstscope_decode::{
    community_id_v1, decode, decode_rst_reason, flags_tcpdump, link_type_supported, parse_options,
    CommunityIdKey, Decoded, FrameInfo,
};

/// Every link type `decode` supports, and one it does not.
pub const LINKTYPES: [u16; 16] = [
    0, 1, 9, 10, 12, 14, 50, 51, 101, 104, 108, 113, 228, 229, 276, 147,
];

/// Target `decode`: the first byte picks the link type (low 4 bits; `0xff` takes the next two
/// bytes as a raw link type), the rest is the frame.
pub fn fuzz_decode(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (linktype, frame) = if sel == 0xff && rest.len() >= 2 {
        (u16::from_be_bytes([rest[0], rest[1]]), &rest[2..])
    } else {
        (LINKTYPES[(sel & 0x0f) as usize], rest)
    };
    let info = FrameInfo {
        ts_ns: i64::from(sel) * 1_000_000_007,
        file: 3,
        frame: 42,
    };
    let decoded = decode(linktype, frame, info);
    // Decoding is a pure function of its input.
    assert_eq!(
        decode(linktype, frame, info),
        decoded,
        "decode is not deterministic"
    );
    match decoded {
        Decoded::Tcp(seg) => {
            assert!(link_type_supported(linktype));
            assert_eq!((seg.ts_ns, seg.file, seg.frame), (info.ts_ns, 3, 42));
            assert!(seg.flags <= 0x0fff, "flags wider than 12 bits");
            assert!(seg.tunnel_depth <= 8, "tunnel depth {}", seg.tunnel_depth);
            assert!(
                seg.payload.len() as u64 <= u64::from(seg.payload_len),
                "captured payload longer than payload_len"
            );
            // The payload is a slice of the frame (zero-copy), at its end or before a trailer.
            let fr = frame.as_ptr_range();
            let pl = seg.payload.as_ptr_range();
            assert!(
                seg.payload.is_empty() || (fr.start <= pl.start && pl.end <= fr.end),
                "payload is not inside the frame"
            );
            match (seg.src, seg.dst) {
                (IpAddr::V4(_), IpAddr::V4(_)) => {
                    assert!(seg.ip_id.is_some() && seg.df.is_some());
                }
                (IpAddr::V6(_), IpAddr::V6(_)) => {
                    assert!(seg.ip_id.is_none() && seg.df.is_none());
                }
                _ => panic!("mixed address families in one segment"),
            }
            // What later stages compute from a segment.
            let key = CommunityIdKey {
                proto: 6,
                src: seg.src,
                dst: seg.dst,
                sport: seg.sport,
                dport: seg.dport,
            };
            let rev = CommunityIdKey {
                src: seg.dst,
                dst: seg.src,
                sport: seg.dport,
                dport: seg.sport,
                ..key
            };
            let id = community_id_v1(&key, u16::from(sel));
            assert!(id.starts_with("1:"));
            assert_eq!(id, community_id_v1(&rev, u16::from(sel)));
            if let Some(r) = decode_rst_reason(seg.payload_len, seg.payload) {
                assert!(!r.is_empty());
            }
            let f = flags_tcpdump(seg.flags);
            assert!(!f.is_empty());
        }
        Decoded::UnknownLinkType(lt) => {
            assert_eq!(lt, linktype);
            assert!(!link_type_supported(linktype));
        }
        Decoded::Malformed(why) => assert!(!why.is_empty()),
        Decoded::NotTcp | Decoded::NonFirstFragment | Decoded::TooDeep => {}
    }
    // The TCP option parser on its own, over the raw bytes.
    let _ = parse_options(frame);
    // Diagnostic payloads: any length claimed against any captured bytes.
    if frame.len() >= 4 {
        let claimed = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let _ = decode_rst_reason(claimed, &frame[4..]);
        let _ = decode_rst_reason(frame.len() as u32 - 4, &frame[4..]);
    }
}
