use super::*;

#[test]
fn initial_ttl_is_smallest_common_value_not_below() {
    assert_eq!(initial_ttl(0), 32);
    assert_eq!(initial_ttl(32), 32);
    assert_eq!(initial_ttl(33), 64);
    assert_eq!(initial_ttl(64), 64);
    assert_eq!(initial_ttl(65), 128);
    assert_eq!(initial_ttl(128), 128);
    assert_eq!(initial_ttl(129), 255);
    assert_eq!(initial_ttl(255), 255);
}

#[test]
fn uid_is_direction_free_deterministic_and_zeek_shaped() {
    let a = ("10.0.0.1".parse().unwrap(), 1234);
    let b = ("10.0.0.2".parse().unwrap(), 80);
    let u = connection_uid(a, b, 0);
    assert_eq!(u, connection_uid(b, a, 0));
    assert_ne!(u, connection_uid(a, b, 1));
    assert!(u.starts_with('C'));
    assert!(u.len() >= 10 && u.len() <= 19, "{u}");
    assert!(u[1..].bytes().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn flags_text_matches_tcpdump() {
    let mut e = sample();
    for (f, s) in [
        (0x004, "R"),
        (0x014, "R."),
        (0x01c, "RP."),
        (0x006, "SR"),
        (0x005, "FR"),
        (0x114, "R.e"),
    ] {
        e.flags = f;
        assert_eq!(e.flags_text(), s);
    }
}

fn sample() -> ResetEvent {
    let seg = Segment {
        ts_ns: 1_000_000_000,
        file: 0,
        frame: 3,
        src: "5.6.7.8".parse().unwrap(),
        dst: "1.2.3.4".parse().unwrap(),
        ttl: 57,
        ip_id: Some(0),
        df: Some(true),
        sport: 3344,
        dport: 1122,
        seq: 0,
        ack: 1001,
        flags: 0x014,
        window: 0,
        options: Default::default(),
        payload_len: 0,
        payload: &[],
        tunnel_depth: 0,
    };
    ResetEvent::from_segment(&seg, b"a.pcap", &EventOptions::default())
}

#[test]
fn event_from_refused_syn_answer() {
    let e = sample();
    assert_eq!(e.community_id, "1:wCb3OG7yAFWelaUydu0D+125CLM=");
    assert_eq!(
        (e.orig_h.to_string(), e.orig_p),
        ("1.2.3.4".to_string(), 1122)
    );
    assert_eq!(
        (e.resp_h.to_string(), e.resp_p),
        ("5.6.7.8".to_string(), 3344)
    );
    assert!(!e.is_orig);
    assert_eq!(e.initial_ttl, 64);
    assert_eq!(e.payload, None);
    assert_eq!(e.reason, None);
    let v = e.values();
    assert_eq!(v.len(), RESET_FIELDS.len());
    assert_eq!(v[8], Value::Unset);
    assert_eq!(v[11], Value::Str(b"R."));
    assert_eq!(v[31], Value::Count(3));
}

#[test]
fn a_name_that_is_not_utf8_keeps_its_bytes_and_sorts_bytewise() {
    let seg = segment_template();
    let e = ResetEvent::from_segment(&seg, b"bad\xff\xfe.pcap", &EventOptions::default());
    assert_eq!(&*e.source, b"bad\xff\xfe.pcap");
    let v = e.values();
    assert_eq!(v[30], Value::Str(b"bad\xff\xfe.pcap"));
    assert_eq!(rstscope_zeeklog::render_value(&v[30]), "bad\\xff\\xfe.pcap");
    let mut sensor = e.clone();
    sensor.sensor = Some(b"edge\xff".as_slice().into());
    assert_eq!(
        rstscope_zeeklog::render_value(&sensor.values()[32]),
        "edge\\xff"
    );
    // Bytewise, as the names' UTF-8 text compares: 0xff after every valid UTF-8 lead byte.
    let utf8 = ResetEvent::from_segment(&seg, "bad\u{10ffff}.pcap".as_bytes(), &Default::default());
    assert_eq!(e.log_order(&utf8), std::cmp::Ordering::Greater);
    assert!(e.sort_key() > utf8.sort_key());
}

#[test]
fn payload_is_cut_to_max_and_reason_decoded() {
    let payload = [0x33, 0xaa, 0x00, 0x04, 0, 0, 0, 0];
    let seg = Segment {
        payload_len: 8,
        payload: &payload,
        ..segment_template()
    };
    let e = ResetEvent::from_segment(
        &seg,
        b"x",
        &EventOptions {
            max_payload: 4,
            ..Default::default()
        },
    );
    assert_eq!(e.payload.as_deref(), Some(&payload[..4]));
    assert_eq!(e.reason.as_deref(), Some("4:ABORT"));
}

fn segment_template() -> Segment<'static> {
    Segment {
        ts_ns: 0,
        file: 0,
        frame: 1,
        src: "::1".parse().unwrap(),
        dst: "::2".parse().unwrap(),
        ttl: 64,
        ip_id: None,
        df: None,
        sport: 1,
        dport: 2,
        seq: 1,
        ack: 0,
        flags: 0x004,
        window: 0,
        options: Default::default(),
        payload_len: 0,
        payload: &[],
        tunnel_depth: 0,
    }
}

/// `connection_uid` as first written (incremental hashing, a `Vec` for base 62).
fn reference_uid(a: (IpAddr, u16), b: (IpAddr, u16), discriminator: i64) -> String {
    fn base62(mut v: u64, out: &mut String) {
        let mut digits = Vec::new();
        loop {
            digits.push(BASE62[(v % 62) as usize]);
            v /= 62;
            if v == 0 {
                break;
            }
        }
        out.extend(digits.iter().rev().map(|&b| b as char));
    }
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = sha1_smol::Sha1::new();
    h.update(b"rstscope-uid-v1");
    for (addr, port) in [lo, hi] {
        match addr {
            IpAddr::V4(v4) => h.update(&v4.octets()),
            IpAddr::V6(v6) => h.update(&v6.octets()),
        }
        h.update(&port.to_be_bytes());
    }
    h.update(&discriminator.to_be_bytes());
    let d = h.digest().bytes();
    let w1 = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    let w2 = u32::from_be_bytes([d[8], d[9], d[10], d[11]]) as u64;
    let mut s = String::from("C");
    base62(w1, &mut s);
    base62(w2, &mut s);
    s
}

#[test]
fn uid_same_as_reference_implementation() {
    // xorshift64*: many pseudo-random endpoints of both families, and the edge values.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let addr = |v6: bool, r: u64, r2: u64| -> IpAddr {
        if v6 {
            IpAddr::from(((r as u128) << 64 | r2 as u128).to_be_bytes())
        } else {
            IpAddr::from((r as u32).to_be_bytes())
        }
    };
    for i in 0..20_000u64 {
        let (r1, r2, r3, r4, r5) = (next(), next(), next(), next(), next());
        let a = (addr(i % 3 == 0, r1, r2), r5 as u16);
        let b = (addr(i % 5 == 0, r3, r4), (r5 >> 16) as u16);
        let disc = match i % 4 {
            0 => 0,
            1 => i64::MIN,
            2 => i64::MAX,
            _ => (r5 >> 8) as i64,
        };
        assert_eq!(connection_uid(a, b, disc), reference_uid(a, b, disc));
    }
    let z4 = (IpAddr::from([0u8; 4]), 0);
    let z6 = (IpAddr::from([0u8; 16]), 0);
    let f6 = (IpAddr::from([0xffu8; 16]), u16::MAX);
    for (a, b) in [(z4, z4), (z6, f6), (f6, f6), (z4, f6)] {
        assert_eq!(connection_uid(a, b, 0), reference_uid(a, b, 0));
    }
}

#[test]
fn base62_edges() {
    for v in [0u64, 1, 61, 62, 3843, 3844, u32::MAX as u64, u64::MAX] {
        let mut s = Vec::new();
        base62(v, &mut s);
        let s = String::from_utf8(s).unwrap();
        let mut back = 0u128;
        for c in s.bytes() {
            back = back * 62 + BASE62.iter().position(|&d| d == c).unwrap() as u128;
        }
        assert_eq!(back, v as u128, "{s}");
        assert!(s.len() == 1 || !s.starts_with('0'));
    }
}

#[test]
fn rows_with_text_ahead_are_every_row_once_in_order() {
    // Around the look-ahead distance, with strings owned and not (empty strings, unset options).
    let mut full = sample();
    full.uid = "CabcdefghijklmnopQ".to_string();
    full.evidence = Some(vec!["payload", "seq_zero"]);
    full.history = Some("ShADr".to_string());
    full.payload = Some(b"220 mailgat".to_vec());
    full.reason = Some("220 mailgat".to_string());
    full.sensor = Some(b"east".as_slice().into());
    let mut bare = sample();
    bare.uid = String::new();
    bare.source = b"".as_slice().into();
    bare.payload = None;
    bare.history = None;
    for n in [
        0,
        1,
        TEXT_PREFETCH_ROWS - 1,
        TEXT_PREFETCH_ROWS,
        TEXT_PREFETCH_ROWS + 1,
        40,
    ] {
        let rows: Vec<ResetEvent> = (0..n)
            .map(|i| {
                let mut r = if i % 3 == 0 {
                    bare.clone()
                } else {
                    full.clone()
                };
                r.frame = i as u64;
                r
            })
            .collect();
        let seen: Vec<u64> = with_text_ahead(&rows).map(|r| r.frame).collect();
        assert_eq!(seen, (0..n as u64).collect::<Vec<_>>(), "{n} rows");
    }
}
