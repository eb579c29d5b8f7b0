//! Timing and memory checks that are too slow for every test run (`cargo test --release -p
//! rstscope-flow -- --ignored --nocapture`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// CPU time of this thread (the machine may be shared: wall time would count waiting).
fn cpu_time() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = s
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

use rstscope_decode::{tcp_flags::*, Segment, TcpOptions};

use crate::{reference, FlowConfig, Tracker};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy)]
struct Pkt {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u16,
    len: u32,
    ttl: u8,
}

/// The flows of `rstscope-gen bench` (crates/gen): handshakes, 1–12 request/response rounds,
/// one in three ending in a RST, 5 % IPv6.
fn flow(rng: &mut Rng, n: u64) -> Vec<Pkt> {
    let v6 = rng.below(100) < 5;
    let c = (n % 250) as u8 + 1;
    let s = ((n / 250) % 250) as u8 + 1;
    let (ca, sa): (IpAddr, IpAddr) = if v6 {
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, c as u16).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, s as u16).into(),
        )
    } else {
        (
            Ipv4Addr::new(10, ((n >> 16) & 0x3f) as u8, c, s).into(),
            Ipv4Addr::new(192, 0, s, c).into(),
        )
    };
    let cport = 1024 + (n % 60000) as u16;
    let sport = [80u16, 443, 22, 25, 8080][rng.below(5) as usize];
    let cli = |seq, ack, flags, len| Pkt {
        src: ca,
        dst: sa,
        sport: cport,
        dport: sport,
        seq,
        ack,
        flags,
        len,
        ttl: 64,
    };
    let srv = |seq, ack, flags, len| Pkt {
        src: sa,
        dst: ca,
        sport,
        dport: cport,
        seq,
        ack,
        flags,
        len,
        ttl: 57,
    };
    let isn_c = rng.next() as u32;
    let isn_s = rng.next() as u32;
    let mut p = vec![cli(isn_c, 0, SYN, 0)];
    let kind = rng.below(9);
    if kind == 0 {
        p.push(srv(0, isn_c.wrapping_add(1), RST | ACK, 0));
        return p;
    }
    p.push(srv(isn_s, isn_c.wrapping_add(1), SYN | ACK, 0));
    p.push(cli(isn_c.wrapping_add(1), isn_s.wrapping_add(1), ACK, 0));
    let (mut cs, mut ss) = (isn_c.wrapping_add(1), isn_s.wrapping_add(1));
    for _ in 0..1 + rng.below(12) {
        let req = 50 + rng.below(400) as u32;
        p.push(cli(cs, ss, PSH | ACK, req));
        cs = cs.wrapping_add(req);
        let resp = 200 + rng.below(1200) as u32;
        p.push(srv(ss, cs, PSH | ACK, resp));
        ss = ss.wrapping_add(resp);
    }
    match kind {
        1 | 2 => p.push(cli(cs, ss, RST | ACK, 0)),
        3 => {
            p.push(srv(ss, cs, FIN | ACK, 0));
            p.push(cli(cs, 0, RST, 0));
        }
        _ => {
            p.push(cli(cs, ss, FIN | ACK, 0));
            p.push(srv(ss, cs.wrapping_add(1), FIN | ACK, 0));
            p.push(cli(cs.wrapping_add(1), ss.wrapping_add(1), ACK, 0));
        }
    }
    p
}

/// (timestamp, packet) in capture order, 200 flows interleaved, 1–21 µs apart.
fn bench_stream(packets: usize) -> Vec<(i64, Pkt)> {
    let mut rng = Rng(1);
    let mut flows: Vec<std::collections::VecDeque<Pkt>> = Vec::new();
    let mut next = 0;
    let mut now = 1_700_000_000_000_000_000i64;
    let mut out = Vec::with_capacity(packets);
    while out.len() < packets {
        while flows.len() < 200 {
            flows.push(flow(&mut rng, next).into());
            next += 1;
        }
        let i = rng.below(flows.len() as u64) as usize;
        let pk = flows[i].pop_front().unwrap();
        if flows[i].is_empty() {
            flows.swap_remove(i);
        }
        now += 1_000 + rng.below(20_000) as i64;
        out.push((now, pk));
    }
    out
}

static ZEROS: [u8; 2048] = [0; 2048];

fn seg(i: usize, ts: i64, p: &Pkt) -> Segment<'static> {
    let v4 = p.src.is_ipv4();
    Segment {
        ts_ns: ts,
        file: 0,
        frame: i as u64 + 1,
        src: p.src,
        dst: p.dst,
        ttl: p.ttl,
        ip_id: v4.then_some(i as u16),
        df: v4.then_some(true),
        sport: p.sport,
        dport: p.dport,
        seq: p.seq,
        ack: p.ack,
        flags: p.flags,
        window: 65535,
        options: TcpOptions::default(),
        payload_len: p.len,
        payload: if p.flags & RST != 0 {
            &[]
        } else {
            &ZEROS[..p.len as usize]
        },
        tunnel_depth: 0,
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Held by each measurement while it runs: the memory test reads this process's resident set,
/// and the benchmark times CPU, so neither may run beside the other (`--ignored` runs both, on
/// parallel threads by default).
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn measure_alone() -> std::sync::MutexGuard<'static, ()> {
    MEASURING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Connection tracking alone over a stream shaped like the benchmark capture's (about as many
/// packets as its 1 GiB): the current tracker against the one it replaced, alternating, in CPU
/// time. `FLOW_BENCH_PACKETS`, `FLOW_BENCH_ROUNDS`, and `FLOW_BENCH_ONLY=new|reference` (for
/// profilers and cachegrind) adjust it.
#[test]
#[ignore]
fn bench_mix_against_reference() {
    let _alone = measure_alone();
    let stream = bench_stream(env_usize("FLOW_BENCH_PACKETS", 2_450_000));
    let only = std::env::var("FLOW_BENCH_ONLY").unwrap_or_default();
    let per = |d: Duration| d.as_nanos() as f64 / stream.len() as f64;
    let mut ratios = Vec::new();
    for round in 0..env_usize("FLOW_BENCH_ROUNDS", 5) {
        let mut t_new = Duration::ZERO;
        let mut t_old = Duration::ZERO;
        if only != "reference" && only != "none" {
            let t = cpu_time();
            let mut new = Tracker::new(FlowConfig::default());
            for (i, (ts, p)) in stream.iter().enumerate() {
                new.process(&seg(i, *ts, p), b"bench.pcap");
            }
            let (ev, st) = new.finish();
            t_new = cpu_time() - t;
            eprintln!(
                "round {round}: {} segments, {} connections (peak {}), {} rows",
                st.segments,
                st.connections,
                st.peak_connections,
                ev.len()
            );
        }
        if only != "new" && only != "none" {
            let t = cpu_time();
            let mut old = reference::Tracker::new(FlowConfig::default());
            for (i, (ts, p)) in stream.iter().enumerate() {
                old.process(&seg(i, *ts, p), b"bench.pcap");
            }
            drop(old.finish());
            t_old = cpu_time() - t;
        }
        if only.is_empty() {
            ratios.push(t_new.as_secs_f64() / t_old.as_secs_f64());
        }
        eprintln!(
            "round {round}: new {:.1} ns/segment, reference {:.1} ns/segment (CPU time)",
            per(t_new),
            per(t_old)
        );
    }
    if !ratios.is_empty() {
        ratios.sort_by(f64::total_cmp);
        eprintln!("median ratio new/reference {:.3}", ratios[ratios.len() / 2]);
    }
}

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Peak RSS in KiB of one run of `cmd` (GNU time).
fn peak_rss_kib(cmd: &[&str]) -> Option<u64> {
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .args(cmd)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.parse().ok())
}

/// Memory per tracked connection, measured on a SYN flood of 1 M distinct connections (all
/// within the attempt timeout, so all tracked at once; no rows): (1) in this process, the
/// tracker's resident memory after the flood; (2) if the release binaries are built
/// (`cargo build --release -p rstscope -p rstscope-gen`), `rstscope -q -j 1 --no-mmap` over
/// `rstscope-gen synflood` captures of 1 M and of 1 connection under `/usr/bin/time -v`:
/// (peak RSS − peak RSS of the 1-connection run) / 1 M.
#[test]
#[ignore]
fn syn_flood_memory_per_connection() {
    let _alone = measure_alone();
    const N: u64 = 1_000_000;
    let before = status_kib("VmRSS:");
    let mut t = Tracker::new(FlowConfig::default());
    for i in 0..N {
        let src = Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8);
        let p = Pkt {
            src: src.into(),
            dst: Ipv4Addr::new(192, 0, 2, 1).into(),
            sport: 1024 + ((i >> 24) % 60000) as u16,
            dport: 80,
            seq: i as u32,
            ack: 0,
            flags: SYN,
            len: 0,
            ttl: 64,
        };
        t.process(
            &seg(i as usize, 1_700_000_000_000_000_000 + i as i64 * 1000, &p),
            b"flood.pcap",
        );
    }
    assert_eq!(t.live_connections(), N);
    let after = status_kib("VmRSS:");
    let in_process = (after - before) as f64 * 1024.0 / N as f64;
    eprintln!(
        "in process: VmRSS {before} KiB -> {after} KiB with {N} connections tracked: \
         {in_process:.1} bytes per connection"
    );
    drop(t);
    assert!(in_process <= crate::tracker::BYTES_PER_CONNECTION_MAX);

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let (bin, gen) = (
        target.join("release/rstscope"),
        target.join("release/rstscope-gen"),
    );
    if !bin.exists() || !gen.exists() {
        eprintln!(
            "end to end: skipped ({} or {} not built)",
            bin.display(),
            gen.display()
        );
        return;
    }
    let dir = std::env::temp_dir().join("rstscope-flow-synflood");
    std::fs::create_dir_all(&dir).unwrap();
    let mut peaks = Vec::new();
    for n in [N, 1] {
        let cap = dir.join(format!("synflood-{n}.pcap"));
        if !cap.exists() {
            let st = std::process::Command::new(&gen)
                .args(["synflood".as_ref(), cap.as_os_str(), n.to_string().as_ref()])
                .status()
                .unwrap();
            assert!(st.success());
        }
        let out = dir.join("out");
        let cmd = [
            bin.to_str().unwrap(),
            "-q",
            "-j",
            "1",
            "--no-mmap",
            "-o",
            out.to_str().unwrap(),
            cap.to_str().unwrap(),
        ];
        let peak = peak_rss_kib(&cmd).expect("/usr/bin/time -v");
        eprintln!("end to end: {} -> peak RSS {peak} KiB", cmd.join(" "));
        peaks.push(peak);
    }
    eprintln!(
        "end to end: ({} - {}) KiB / {N} connections = {:.1} bytes per connection",
        peaks[0],
        peaks[1],
        (peaks[0] - peaks[1]) as f64 * 1024.0 / N as f64
    );
}

/// Memory per connection of a burst of refused connections (`rstscope-gen rsts`: a SYN, then
/// RST+ACK with seq 0, window 0, a 256-byte payload on every tenth), all within the close
/// delay, so every row waits in its live connection until the end: this process's resident
/// memory after the burst (connections with their pending rows), and after `finish` (the
/// finished rows, the tracker gone). `FLOW_BURST_CONNECTIONS` sets the count (default 1 M),
/// `FLOW_BURST_SPACING_NS` the time between connections (default 2000: 1 M within 2 s; with
/// 120000, 5 M over 600 s, connections end as the run goes, and their rows, taken as they come,
/// are dropped: what stays is the tracker with the rows still pending).
#[test]
#[ignore]
fn refused_burst_memory_per_connection() {
    let _alone = measure_alone();
    let n = env_usize("FLOW_BURST_CONNECTIONS", 1_000_000) as u64;
    let spacing = env_usize("FLOW_BURST_SPACING_NS", 2000) as i64;
    let (mut taken, mut peak_live) = (0, 0);
    let payload = [b'x'; 256];
    let before = status_kib("VmRSS:");
    let mut t = Tracker::new(FlowConfig::default());
    for i in 0..n {
        let scanner = IpAddr::from(Ipv4Addr::new(192, 0, 2, 7));
        let target = IpAddr::from(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8));
        let (sport, dport) = (1024 + ((i >> 24) % 60000) as u16, 1 + (i % 1024) as u16);
        let isn = (i as u32).wrapping_mul(2_654_435_761);
        let ts = 1_700_000_000_000_000_000 + i as i64 * spacing;
        let syn = Segment {
            ts_ns: ts,
            file: 0,
            frame: 2 * i + 1,
            src: scanner,
            dst: target,
            ttl: 64,
            ip_id: Some(i as u16),
            df: Some(false),
            sport,
            dport,
            seq: isn,
            ack: 0,
            flags: SYN,
            window: 65535,
            options: TcpOptions::default(),
            payload_len: 0,
            payload: &[],
            tunnel_depth: 0,
        };
        let body: &[u8] = if i % 10 == 0 { &payload } else { &[] };
        let rst = Segment {
            ts_ns: ts + 500,
            frame: 2 * i + 2,
            src: target,
            dst: scanner,
            sport: dport,
            dport: sport,
            seq: 0,
            ack: isn.wrapping_add(1),
            flags: RST | ACK,
            window: 0,
            payload_len: body.len() as u32,
            payload: body,
            ..syn
        };
        t.process(&syn, b"rsts.pcap");
        t.process(&rst, b"rsts.pcap");
        if i % 4096 == 0 {
            taken += t.take_done().len() as u64;
            peak_live = peak_live.max(t.live_connections());
        }
    }
    peak_live = peak_live.max(t.live_connections());
    let pending = status_kib("VmRSS:");
    let (rows, _) = t.finish();
    assert_eq!(taken + rows.len() as u64, n);
    let finished = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");
    let rows_len = rows.len();
    drop(rows);
    let per_live = |kib: u64| kib as f64 * 1024.0 / peak_live.max(1) as f64;
    eprintln!(
        "{n} refused connections {spacing} ns apart, at most {peak_live} live, {taken} rows \
         finished and dropped before the end: VmRSS {before} KiB -> {pending} KiB, {:.1} bytes \
         per live connection with its pending row; after finish ({} rows) {finished} KiB, \
         {:.1} bytes per finished row; peak {peak} KiB",
        per_live(pending - before),
        rows_len,
        (finished.saturating_sub(before)) as f64 * 1024.0 / rows_len.max(1) as f64
    );
}
