//! Hostile captures made by the project's capture writer: each must finish quickly, with the
//! right counts, and never crash. (The large versions, e.g. a 10 M-connection SYN flood, are in
//! scripts/hostile.sh, with their peak RSS.)

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rstscope_pcapgen::{
    flags as f, Endian, Interface, Link, PcapNgWriter, PcapWriter, Record, Tcp,
};

fn run(dir: &Path, args: &[&str]) -> (i32, String, serde_json::Value, Duration) {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_rstscope"))
        .args(["-q", "-o"])
        .arg(dir.join("out"))
        .args(args)
        .output()
        .unwrap();
    let took = t0.elapsed();
    let log = std::fs::read_to_string(dir.join("out/reset.log")).unwrap_or_default();
    let summary = std::fs::read_to_string(dir.join("out/reset_summary.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null);
    let _ = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), log, summary, took)
}

/// The run's peak resident memory, as its summary reports it (Linux), must stay under
/// `mib` MiB. Where the figure is missing (not Linux) nothing is checked.
fn assert_peak_rss_below(summary: &serde_json::Value, mib: u64) {
    if let Some(b) = summary["peak_rss_bytes"].as_u64() {
        assert!(b < mib << 20, "peak RSS {} MiB, bound {mib} MiB", b >> 20);
    }
}

fn rows(log: &str) -> usize {
    log.lines().filter(|l| !l.starts_with('#')).count()
}

const T0: i64 = 1_795_478_400_000_000_000;

#[test]
fn many_rsts_in_one_capture() {
    let dir = tempfile::tempdir().unwrap();
    let n = 100_000u32;
    let recs: Vec<Record> = (0..n)
        .map(|i| {
            let t = Tcp::new("10.1.0.1", 1024 + (i % 50_000) as u16, "10.2.0.1", 80)
                .seq(i)
                .flags(f::RST)
                .window(0);
            Record::new(T0 + i as i64 * 1000, Link::Ethernet.frame(&t.to_ip()))
        })
        .collect();
    let p = dir.path().join("rsts.pcap");
    std::fs::write(&p, PcapWriter::new(1).write(&recs)).unwrap();
    let (code, log, summary, took) = run(dir.path(), &[p.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(rows(&log), n as usize);
    assert_eq!(summary["rsts"], n);
    assert!(took < Duration::from_secs(120), "{took:?}");
    // rows are held to be written in order: about 1.3 KB each at most, here
    assert_peak_rss_below(&summary, 256);
}

#[test]
fn rst_storm_and_maximal_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let c = Tcp::new("10.1.0.1", 5000, "10.2.0.1", 80);
    let mut recs = vec![Record::new(
        T0,
        Link::Ethernet.frame(&c.clone().seq(1).flags(f::SYN).to_ip()),
    )];
    for i in 0..1500u32 {
        let t = c.reply().seq(9 + i).ack(2).flags(f::RST | f::ACK);
        recs.push(Record::new(
            T0 + 1_000_000 + i as i64 * 100_000,
            Link::Ethernet.frame(&t.to_ip()),
        ));
    }
    // The largest payload an IPv4 packet can carry.
    let big = c
        .reply()
        .seq(99_999)
        .flags(f::RST)
        .payload(vec![b'A'; 65_535 - 40]);
    recs.push(Record::new(
        T0 + 2_000_000_000,
        Link::Raw.frame(&big.to_ip()),
    ));
    let mut w = PcapWriter::new(1);
    w.snaplen = 262_144;
    let p = dir.path().join("storm.pcap");
    // the raw-IP packet goes in a file of its own link type
    std::fs::write(&p, w.write(&recs[..recs.len() - 1])).unwrap();
    let q = dir.path().join("big.pcap");
    std::fs::write(&q, PcapWriter::new(101).write(&recs[recs.len() - 1..])).unwrap();
    let (code, log, summary, _) = run(
        dir.path(),
        &[
            "--sensor-from",
            "none",
            p.to_str().unwrap(),
            q.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(rows(&log), 1501);
    let storm = log.lines().filter(|l| l.contains("storm")).count();
    assert!(storm >= 1000, "{storm} storm rows");
    assert_eq!(
        summary["by_cause"]["refused"].as_u64().unwrap()
            + summary["by_cause"]["abort"].as_u64().unwrap()
            + summary["by_cause"]["handshake_abort"].as_u64().unwrap()
            + summary["by_cause"]["orphan"].as_u64().unwrap(),
        1501
    );
    let big_row = log
        .lines()
        .find(|l| l.contains("\t65495\t"))
        .expect("the big RST");
    assert!(big_row.contains(&"A".repeat(256)) && !big_row.contains(&"A".repeat(257)));
    assert_peak_rss_below(&summary, 64);
}

#[test]
fn odd_record_and_file_headers() {
    let dir = tempfile::tempdir().unwrap();
    let rst = Tcp::new("10.1.0.1", 1, "10.2.0.1", 2).seq(5).flags(f::RST);
    let frame = Link::Ethernet.frame(&rst.to_ip());
    // snap length 0 in the header, and records with no bytes captured
    let mut w0 = PcapWriter::new(1);
    w0.snaplen = 0;
    let empty = Record {
        ts_ns: T0,
        data: Vec::new(),
        orig_len: 60,
    };
    std::fs::write(
        dir.path().join("snap0.pcap"),
        w0.write(&[empty, Record::new(T0 + 1, frame.clone())]),
    )
    .unwrap();
    // snap length 65535+ and caplen > wire length
    let mut w1 = PcapWriter::new(1);
    w1.snaplen = 0xffff_ffff;
    let odd = Record {
        ts_ns: T0 + 2,
        data: frame.clone(),
        orig_len: 10,
    };
    std::fs::write(dir.path().join("caplen.pcap"), w1.write(&[odd])).unwrap();
    // a record length of 4 GB
    let mut four_gb = PcapWriter::new(1).write(&[Record::new(T0 + 3, frame.clone())]);
    four_gb.extend_from_slice(&[
        0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
    std::fs::write(dir.path().join("4gb.pcap"), four_gb).unwrap();
    // timestamps going backwards
    let back: Vec<Record> = (0..50)
        .map(|i| {
            Record::new(
                T0 + (50 - i) * 1_000_000_000,
                Link::Ethernet.frame(&rst.clone().seq(i as u32).to_ip()),
            )
        })
        .collect();
    std::fs::write(
        dir.path().join("backwards.pcap"),
        PcapWriter::new(1).write(&back),
    )
    .unwrap();
    // a pcapng with a thousand interfaces
    let mut ng = PcapNgWriter::new(
        Endian::Little,
        (0..1000).map(|_| Interface::new(1)).collect(),
    );
    for i in 0..1000u32 {
        ng.epb(
            i,
            &Record::new(
                T0 + i as i64,
                Link::Ethernet.frame(&rst.clone().seq(i).to_ip()),
            ),
        );
    }
    std::fs::write(dir.path().join("ifaces.pcapng"), ng.finish()).unwrap();

    let (code, log, summary, took) = run(
        dir.path(),
        &["--sensor-from", "none", dir.path().to_str().unwrap()],
    );
    assert_eq!(code, 1, "the 4 GB record is an error");
    assert!(took < Duration::from_secs(60));
    let files = summary["files"].as_array().unwrap();
    let by = |name: &str| files.iter().find(|f| f["source"] == name).unwrap().clone();
    assert_eq!(by("snap0.pcap")["packets"], 2);
    assert_eq!(by("snap0.pcap")["malformed"], 1);
    assert_eq!(by("caplen.pcap")["rsts"], 1);
    assert!(by("4gb.pcap")["error"]
        .as_str()
        .unwrap()
        .contains("exceeds the maximum"));
    assert_eq!(by("4gb.pcap")["rsts"], 1);
    assert_eq!(by("backwards.pcap")["rsts"], 50);
    assert_eq!(by("ifaces.pcapng")["rsts"], 1000);
    // rows stay in (ts, source, frame) order
    let ts: Vec<f64> = log
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(ts.len(), 1 + 1 + 1 + 50 + 1000);
    // a 4 GB record length is refused, not allocated
    assert_peak_rss_below(&summary, 64);
}

#[test]
fn syn_flood_is_bounded_by_the_connection_cap() {
    let dir = tempfile::tempdir().unwrap();
    let n = 200_000u32;
    let recs: Vec<Record> = (0..n)
        .map(|i| {
            let src = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
            let t = Tcp::new(&src, 40_000, "10.255.0.1", 80)
                .seq(i)
                .flags(f::SYN);
            Record::new(T0 + i as i64 * 10_000, Link::Ethernet.frame(&t.to_ip()))
        })
        .collect();
    let p = dir.path().join("flood.pcap");
    std::fs::write(&p, PcapWriter::new(1).write(&recs)).unwrap();
    let (code, _, summary, took) = run(
        dir.path(),
        &["-j", "1", "--max-connections", "10000", p.to_str().unwrap()],
    );
    assert_eq!(code, 0);
    assert_eq!(summary["connections"], n);
    assert_eq!(summary["connections_evicted"], n as u64 - 10_000);
    assert!(summary["peak_connections"].as_u64().unwrap() <= 10_000);
    assert!(took < Duration::from_secs(120), "{took:?}");
    // bounded by the cap, not by the 200 000 connections of the flood
    assert_peak_rss_below(&summary, 64);
}

/// A decompression bomb, in the small: a zstd capture of 1100 RSTs with 65 000-byte payloads,
/// mostly zeros (about 72 MB from a few hundred KB). Under `--max-inflate 10` it is cut where
/// it passes 64 MiB (the floor: ten times its size is less): a per-file error naming the file,
/// the ratio and the offset, the rows of the packets before it, the other input read, exit
/// status 1. Under the default (1000) it is read whole.
#[test]
fn a_capture_inflating_past_max_inflate_ends_with_an_error_after_its_rows() {
    const N: u64 = 1100;
    const PAYLOAD: usize = 65_000;
    let dir = tempfile::tempdir().unwrap();
    let mut noise = 0x2545_f491_4f6c_dd1du64;
    let recs: Vec<Record> = (0..N)
        .map(|i| {
            // 256 bytes that do not compress (the row's payload), then zeros.
            let mut payload = vec![0u8; PAYLOAD];
            for b in &mut payload[..256] {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                *b = noise as u8;
            }
            let t = Tcp::new("10.1.0.1", 40000, "10.2.0.1", 80)
                .seq(i as u32 * 7)
                .flags(f::RST)
                .payload(payload);
            Record::new(T0 + i as i64 * 1000, Link::Ethernet.frame(&t.to_ip()))
        })
        .collect();
    let record_bytes = 16 + recs[0].data.len() as u64;
    let plain = PcapWriter::new(1).write(&recs);
    let zst = rstscope_pcapgen::zstd(&plain);
    let (plain_len, zst_len) = (plain.len() as u64, zst.len() as u64);
    let floor = 64u64 << 20;
    assert!(
        plain_len > floor && 10 * zst_len < floor && 1000 * zst_len > plain_len,
        "{plain_len} bytes from {zst_len}"
    );
    let big = dir.path().join("big.pcap.zst");
    std::fs::write(&big, &zst).unwrap();
    drop((plain, recs));
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sample.pcap");
    let source_rows = |log: &str, source: &str| -> Vec<u64> {
        log.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('\t').collect();
                let n = cells.len();
                // `source` and `frame` are the last columns but `sensor`.
                (cells[n - 3] == source).then(|| cells[n - 2].parse().unwrap())
            })
            .collect()
    };
    let rstscope = |extra: &[&str]| {
        let out = dir.path().join("out");
        let r = Command::new(env!("CARGO_BIN_EXE_rstscope"))
            .args(["-q", "--sensor-from", "none", "-o"])
            .arg(&out)
            .args(extra)
            .arg(&big)
            .arg(&sample)
            .output()
            .unwrap();
        let log = std::fs::read_to_string(out.join("reset.log")).unwrap();
        (
            r.status.code(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
            log,
        )
    };

    let (code, stderr, log) = rstscope(&["--max-inflate", "10"]);
    assert_eq!(code, Some(1), "{stderr}");
    let before = (floor - 24) / record_bytes;
    let stopped = 24 + before * record_bytes;
    assert!(
        stderr.contains(&format!(
            "rstscope: error: {}: zstd data decompresses to more than {floor} bytes, over 10 times its compressed size ({zst_len} bytes): reading stopped at decompressed byte offset {stopped} ({before} packets before it were read); a larger --max-inflate (0: no cap) reads further",
            big.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        source_rows(&log, "big.pcap.zst"),
        (1..=before).collect::<Vec<_>>()
    );
    assert!(!source_rows(&log, "sample.pcap").is_empty());

    // The default cap (1000 times) reads it whole.
    let (code, stderr, log) = rstscope(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        source_rows(&log, "big.pcap.zst"),
        (1..=N).collect::<Vec<_>>()
    );
}
