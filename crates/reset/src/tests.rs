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
    ResetEvent::from_segment(&seg, "a.pcap", &EventOptions::default())
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
fn payload_is_cut_to_max_and_reason_decoded() {
    let payload = [0x33, 0xaa, 0x00, 0x04, 0, 0, 0, 0];
    let seg = Segment {
        payload_len: 8,
        payload: &payload,
        ..segment_template()
    };
    let e = ResetEvent::from_segment(
        &seg,
        "x",
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
