//! Carry across runs: a sensor's capture cut into pieces delivered one per run with `--state`
//! (the last run with `--finish`) gives, over all runs, exactly the rows of one run over all
//! pieces at once — every field, for any `-j`, plain or `--gzip`, in TSV, JSON and CSV — and no
//! run rewrites a log an earlier run delivered.
//!
//! The pieces are cut from the packets of the captures in `testdata/` and of a generated capture
//! whose connections span two hours of packet time (long-lived connections with idle gaps
//! around Zeek's timeouts, FIN then RST, refused and retried SYNs, RSTs followed by data, RST
//! bursts, 5-tuple reuse, connections still open at the end), and written with the project's
//! own capture writer in the container and compression of the original.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use proptest::sample::Index;
use rstscope_capture::{Compression, Format};
use rstscope_pcapgen::{gzip, zstd, Endian, Interface, Link, PcapNgWriter, PcapWriter, Record};

mod common;

// ---------------------------------------------------------------------------------------------
// Captures and pieces

/// How a capture is stored, so its pieces are written the same way.
#[derive(Clone, Copy, Debug)]
enum Container {
    Pcap { endian: Endian, nanos: bool },
    PcapNg { endian: Endian },
}

#[derive(Clone, Copy, Debug)]
struct Flavor {
    container: Container,
    compression: Compression,
}

impl Flavor {
    const PLAIN_PCAP: Flavor = Flavor {
        container: Container::Pcap {
            endian: Endian::Little,
            nanos: false,
        },
        compression: Compression::None,
    };

    fn extension(self) -> &'static str {
        match (self.container, self.compression) {
            (Container::Pcap { .. }, Compression::None) => "pcap",
            (Container::Pcap { .. }, Compression::Gzip) => "pcap.gz",
            (Container::Pcap { .. }, Compression::Zstd) => "pcap.zst",
            (Container::PcapNg { .. }, Compression::None) => "pcapng",
            (Container::PcapNg { .. }, Compression::Gzip) => "pcapng.gz",
            (Container::PcapNg { .. }, Compression::Zstd) => "pcapng.zst",
        }
    }
}

/// A capture's packets (link type, record) in file order, and how it was stored.
struct Capture {
    name: String,
    flavor: Flavor,
    packets: Vec<(u16, Record)>,
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// Reads a capture with the project's reader and works out its container and compression.
fn load(name: &str, bytes: &[u8]) -> Capture {
    let mut packets = Vec::new();
    let report = rstscope_capture::read_bytes(bytes, |p| {
        packets.push((
            p.linktype,
            Record {
                ts_ns: p.ts_ns,
                data: p.data.to_vec(),
                orig_len: p.orig_len,
            },
        ))
    });
    assert!(report.error.is_none(), "{name}: {:?}", report.error);
    // The first bytes of the capture itself: the magic says the byte order (and pcap's
    // resolution). zstd is not a dependency here; its pieces get the default.
    let mut head = [0u8; 12];
    let head = match report.compression {
        Compression::None => bytes.get(..12),
        Compression::Gzip => flate2::read::MultiGzDecoder::new(bytes)
            .read_exact(&mut head)
            .ok()
            .map(|()| &head[..]),
        Compression::Zstd => None,
    };
    let container = match report.format {
        Some(Format::PcapNg) => Container::PcapNg {
            endian: match head.map(|h| [h[8], h[9], h[10], h[11]]) {
                Some([0x1a, 0x2b, 0x3c, 0x4d]) => Endian::Big,
                _ => Endian::Little,
            },
        },
        _ => {
            let (endian, nanos) = match head.map(|h| [h[0], h[1], h[2], h[3]]) {
                Some([0xa1, 0xb2, 0xc3, 0xd4]) => (Endian::Big, false),
                Some([0x4d, 0x3c, 0xb2, 0xa1]) => (Endian::Little, true),
                Some([0xa1, 0xb2, 0x3c, 0x4d]) => (Endian::Big, true),
                _ => (Endian::Little, false),
            };
            Container::Pcap { endian, nanos }
        }
    };
    Capture {
        name: name.to_string(),
        flavor: Flavor {
            container,
            compression: report.compression,
        },
        packets,
    }
}

/// Every well-formed capture of `testdata/`: the samples, tunnels, hostile payloads, every
/// container and compression (`formats/`) and every link type (`links/`).
fn testdata_captures() -> Vec<Capture> {
    let mut out = Vec::new();
    for dir in ["", "formats", "links"] {
        let d = testdata().join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            let rel = if dir.is_empty() {
                n.clone()
            } else {
                format!("{dir}/{n}")
            };
            out.push(load(&rel, &std::fs::read(d.join(&n)).unwrap()));
        }
    }
    assert!(out.len() >= 13, "testdata captures: {}", out.len());
    out
}

/// The pieces of `packets` cut before each index in `cuts` (1 ≤ cut < len).
fn cut<'a>(packets: &'a [(u16, Record)], cuts: &BTreeSet<usize>) -> Vec<&'a [(u16, Record)]> {
    let mut pieces = Vec::new();
    let mut from = 0;
    for &c in cuts.iter().chain(std::iter::once(&packets.len())) {
        assert!(
            from < c && c <= packets.len(),
            "cut {c} of {}",
            packets.len()
        );
        pieces.push(&packets[from..c]);
        from = c;
    }
    pieces
}

/// Cut indices 1..len from proptest's indices (duplicates collapse, so 1–5 cuts).
fn cuts_of(len: usize, idx: &[Index]) -> BTreeSet<usize> {
    assert!(len >= 2, "a capture of {len} packets cannot be cut");
    idx.iter().map(|i| 1 + i.index(len - 1)).collect()
}

/// One piece as a file, written by the project's writer the way the original was stored.
fn write_piece(flavor: Flavor, packets: &[(u16, Record)]) -> Vec<u8> {
    let records: Vec<Record> = packets.iter().map(|(_, r)| r.clone()).collect();
    let plain = match flavor.container {
        Container::Pcap { endian, nanos } => {
            let lt = packets[0].0;
            assert!(packets.iter().all(|(l, _)| *l == lt), "one link type");
            PcapWriter::new(u32::from(lt))
                .endian(endian)
                .nanos(nanos)
                .write(&records)
        }
        Container::PcapNg { endian } => {
            let mut lts: Vec<u16> = Vec::new();
            for (l, _) in packets {
                if !lts.contains(l) {
                    lts.push(*l);
                }
            }
            let ifaces = lts.iter().map(|&l| Interface::new(l).tsresol(9)).collect();
            let mut w = PcapNgWriter::new(endian, ifaces);
            for (l, r) in packets {
                let i = lts.iter().position(|x| x == l).unwrap();
                w.epb(i as u32, r);
            }
            w.finish()
        }
    };
    match flavor.compression {
        Compression::None => plain,
        Compression::Gzip => gzip(&plain),
        Compression::Zstd => zstd(&plain),
    }
}

/// A sensor's pieces: (file name, bytes), in delivery order.
type Pieces = Vec<(String, Vec<u8>)>;

/// The capture cut before each of `cuts`, as files `p00.<ext>`, `p01.<ext>`, ….
fn pieces_of(cap: &Capture, cuts: &BTreeSet<usize>) -> Pieces {
    cut(&cap.packets, cuts)
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            (
                format!("p{i:02}.{}", cap.flavor.extension()),
                write_piece(cap.flavor, p),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The generated capture

/// A capture of `flows` connections starting over an hour and lasting up to two more, in
/// packet-time order (Ethernet, pcap).
fn generated(seed: u64, flows: usize) -> Capture {
    let lt = Link::Ethernet.linktype();
    Capture {
        name: format!("generated(seed {seed})"),
        flavor: Flavor::PLAIN_PCAP,
        packets: common::flows::records(seed, flows)
            .into_iter()
            .map(|r| (lt, r))
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Runs and their rows

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fmt {
    Tsv,
    Json,
    Csv,
}

impl Fmt {
    fn arg(self) -> &'static str {
        match self {
            Fmt::Tsv => "tsv",
            Fmt::Json => "json",
            Fmt::Csv => "csv",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Opts {
    threads: u32,
    format: Fmt,
    gzip: bool,
}

impl Opts {
    fn args(self) -> Vec<String> {
        let mut a = vec![
            "-j".to_string(),
            self.threads.to_string(),
            "--format".to_string(),
            self.format.arg().to_string(),
        ];
        if self.gzip {
            a.push("--gzip".to_string());
        }
        a
    }
}

fn rstscope(args: &[String], extra: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rstscope"))
        .args(args)
        .args(extra)
        .output()
        .expect("run rstscope")
}

/// Writes a piece into the archive with an mtime 10 minutes in the past (a finished capture).
fn deliver(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(600))
        .unwrap();
}

/// Is this file in OUT one of the delivered logs (`reset.….log[.gz]`, `reset.….csv[.gz]`)?
fn is_log(name: &str) -> bool {
    name.starts_with("reset.")
        && [".log", ".log.gz", ".csv", ".csv.gz"]
            .iter()
            .any(|e| name.ends_with(e))
}

/// The delivered logs in `out`, by name.
fn logs(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(rd) = std::fs::read_dir(out) else {
        return BTreeMap::new();
    };
    rd.map(|e| e.unwrap())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_log(n))
        .map(|n| {
            let b = std::fs::read(out.join(&n)).unwrap();
            (n, b)
        })
        .collect()
}

/// A log's header (TSV `#fields` and `#types`, the CSV header row; none for JSON) and its data
/// rows, each as one string.
fn parse(name: &str, bytes: &[u8], opts: Opts) -> (Vec<String>, Vec<String>) {
    let ext = match opts.format {
        Fmt::Csv => ".csv",
        _ => ".log",
    };
    let want = if opts.gzip {
        format!("{ext}.gz")
    } else {
        ext.to_string()
    };
    assert!(name.ends_with(&want), "{name}: a {opts:?} log ends {want}");
    let text = if opts.gzip {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_string(&mut s)
            .unwrap_or_else(|e| panic!("{name}: not gzip of UTF-8: {e}"));
        s
    } else {
        String::from_utf8(bytes.to_vec()).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    match opts.format {
        Fmt::Tsv => {
            let header = text
                .lines()
                .filter(|l| l.starts_with("#fields") || l.starts_with("#types"))
                .map(str::to_string)
                .collect();
            let rows = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_string)
                .collect();
            (header, rows)
        }
        Fmt::Json => {
            let rows: Vec<String> = text.lines().map(str::to_string).collect();
            for r in &rows {
                let v: serde_json::Value = serde_json::from_str(r)
                    .unwrap_or_else(|e| panic!("{name}: not a JSON line ({e}): {r}"));
                assert!(v.is_object(), "{name}: {r}");
            }
            (Vec::new(), rows)
        }
        Fmt::Csv => {
            let mut rd = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_reader(text.as_bytes());
            let header = vec![rd
                .headers()
                .unwrap()
                .iter()
                .collect::<Vec<_>>()
                .join("\u{1f}")];
            let rows = rd
                .records()
                .map(|r| {
                    r.unwrap_or_else(|e| panic!("{name}: {e}"))
                        .iter()
                        .collect::<Vec<_>>()
                        .join("\u{1f}")
                })
                .collect();
            (header, rows)
        }
    }
}

/// Every data row of every delivered log in `out`, sorted; the headers must all be `header`
/// (or set it from the first log seen).
fn rows(out: &Path, opts: Opts, header: &mut Option<Vec<String>>) -> Vec<String> {
    let mut all = Vec::new();
    for (name, bytes) in logs(out) {
        let (h, r) = parse(&name, &bytes, opts);
        match header {
            Some(want) => assert_eq!(&h, want, "{name}: header"),
            None => *header = Some(h),
        }
        all.extend(r);
    }
    all.sort();
    all
}

/// Rows of `got` and `want` that are in one and not the other (as multisets), for messages.
fn diff(got: &[String], want: &[String]) -> String {
    let mut n: BTreeMap<&str, i64> = BTreeMap::new();
    for r in got {
        *n.entry(r).or_default() += 1;
    }
    for r in want {
        *n.entry(r).or_default() -= 1;
    }
    let extra: Vec<_> = n.iter().filter(|(_, c)| **c > 0).collect();
    let missing: Vec<_> = n.iter().filter(|(_, c)| **c < 0).collect();
    let show = |v: &[(&&str, &i64)]| {
        v.iter()
            .take(4)
            .map(|(r, c)| format!("  {c:+} {r}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "{} rows delivered, {} in one run; {} extra:\n{}\n{} missing:\n{}",
        got.len(),
        want.len(),
        extra.len(),
        show(&extra),
        missing.len(),
        show(&missing)
    )
}

/// One run over `arch` without `--state`: its rows and header.
fn one_run(dir: &Path, arch: &Path, opts: Opts) -> (Vec<String>, Vec<String>) {
    let one = dir.join("one");
    let mut args: Vec<String> = vec!["-q".into(), "-o".into()];
    args.push(one.to_string_lossy().into_owned());
    args.extend(opts.args());
    let r = rstscope(&args, &[arch]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "one run: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let names: Vec<String> = logs(&one).into_keys().collect();
    let want = match opts.format {
        Fmt::Csv => "reset.csv",
        _ => "reset.log",
    };
    let want = if opts.gzip {
        format!("{want}.gz")
    } else {
        want.to_string()
    };
    assert_eq!(names, vec![want], "one run's log");
    let mut header = None;
    let rows = rows(&one, opts, &mut header);
    (rows, header.unwrap())
}

/// The incremental runs: what each checks after it, and what the next one sees.
struct Incremental {
    dir: PathBuf,
    arch: PathBuf,
    out: PathBuf,
    state: PathBuf,
    opts: Opts,
    runs: usize,
    seen: BTreeMap<String, Vec<u8>>,
    runs_log: String,
}

impl Incremental {
    fn new(dir: &Path, opts: Opts) -> Incremental {
        Incremental {
            dir: dir.to_path_buf(),
            arch: dir.join("arch"),
            out: dir.join("out"),
            state: dir.join("state.json"),
            opts,
            runs: 0,
            seen: BTreeMap::new(),
            runs_log: String::new(),
        }
    }

    /// One run with `--state` (and `--finish`); checks its status, that no earlier log was
    /// rewritten and that it appended one JSON line to rstscope_runs.log. Returns its output
    /// and the names of the logs it added.
    fn run(&mut self, finish: bool) -> (Output, Vec<String>) {
        let mut args: Vec<String> = vec!["-q".into(), "--state".into()];
        args.push(self.state.to_string_lossy().into_owned());
        args.push("-o".into());
        args.push(self.out.to_string_lossy().into_owned());
        args.extend(self.opts.args());
        if finish {
            args.push("--finish".into());
        }
        let r = rstscope(&args, &[&self.arch]);
        self.runs += 1;
        let n = self.runs;
        assert_eq!(
            r.status.code(),
            Some(0),
            "run {n} ({args:?}): {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let now = logs(&self.out);
        for (name, bytes) in &self.seen {
            let after = now.get(name);
            assert!(after.is_some(), "run {n} removed {name}");
            assert!(after == Some(bytes), "run {n} rewrote {name}");
        }
        let added: Vec<String> = now
            .keys()
            .filter(|k| !self.seen.contains_key(*k))
            .cloned()
            .collect();
        self.seen = now;
        let runs_log = std::fs::read_to_string(self.out.join("rstscope_runs.log"))
            .unwrap_or_else(|e| panic!("run {n}: rstscope_runs.log: {e}"));
        assert!(
            runs_log.starts_with(&self.runs_log),
            "run {n} changed earlier lines of rstscope_runs.log"
        );
        let lines: Vec<&str> = runs_log.lines().collect();
        assert_eq!(
            lines.len(),
            n,
            "rstscope_runs.log after run {n}:\n{runs_log}"
        );
        for l in &lines {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("rstscope_runs.log: not JSON ({e}): {l}"));
            assert!(v.is_object(), "rstscope_runs.log: {l}");
        }
        self.runs_log = runs_log;
        (r, added)
    }

    /// Delivered rows of all runs == rows of one run over the whole archive.
    fn check_against_one_run(&self, what: &str) {
        let (want, header) = one_run(&self.dir, &self.arch, self.opts);
        let mut h = Some(header);
        let got = rows(&self.out, self.opts, &mut h);
        assert!(
            got == want,
            "{what}, {:?}: {}",
            self.opts,
            diff(&got, &want)
        );
    }
}

/// Sensors, each with its pieces; `None` is the unnamed sensor (files at the top of the
/// archive). Every sensor's last piece comes in the last run, which has `--finish`.
fn check_carry(sensors: &[(Option<&str>, Pieces)], opts: Opts, what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let mut inc = Incremental::new(tmp.path(), opts);
    let runs = sensors.iter().map(|(_, p)| p.len()).max().unwrap();
    for run in 0..runs {
        for (sensor, pieces) in sensors {
            // A sensor with fewer pieces starts later, so that all end together.
            if let Some(k) = (run + pieces.len()).checked_sub(runs) {
                let dir = match sensor {
                    Some(s) => inc.arch.join(s),
                    None => inc.arch.clone(),
                };
                let (name, bytes) = &pieces[k];
                deliver(&dir, name, bytes);
            }
        }
        inc.run(run + 1 == runs);
    }
    inc.check_against_one_run(what);
}

fn fmt_strategy() -> impl Strategy<Value = Fmt> {
    prop::sample::select(vec![Fmt::Tsv, Fmt::Json, Fmt::Csv])
}

fn opts_strategy() -> impl Strategy<Value = Opts> {
    (
        prop::sample::select(vec![1u32, 2, 8]),
        fmt_strategy(),
        any::<bool>(),
    )
        .prop_map(|(threads, format, gzip)| Opts {
            threads,
            format,
            gzip,
        })
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 12,
        // Each case is several runs of the binary: keep a failing case's shrinking short.
        max_shrink_iters: 24,
        ..ProptestConfig::default()
    }
}

/// Connections in the generated capture (about 10 packets each).
const FLOWS: usize = 120;

proptest! {
    #![proptest_config(config())]

    /// A testdata capture cut at 1–5 random packets.
    #[test]
    fn testdata_pieces_carry(
        which in any::<Index>(),
        cuts in prop::collection::vec(any::<Index>(), 1..=5),
        opts in opts_strategy(),
    ) {
        let caps = testdata_captures();
        let cap = which.get(&caps);
        let cuts = cuts_of(cap.packets.len(), &cuts);
        let what = format!("{} cut at {cuts:?}", cap.name);
        check_carry(&[(None, pieces_of(cap, &cuts))], opts, &what);
    }

    /// A generated capture of long-lived connections cut at 1–5 random packets; with two
    /// sensors, each its own capture cut its own way.
    #[test]
    fn generated_pieces_carry(
        seed in any::<u64>(),
        cuts_a in prop::collection::vec(any::<Index>(), 1..=5),
        cuts_b in prop::collection::vec(any::<Index>(), 1..=5),
        two_sensors in any::<bool>(),
        opts in opts_strategy(),
    ) {
        let a = generated(seed, FLOWS);
        let ca = cuts_of(a.packets.len(), &cuts_a);
        let mut what = format!("{} cut at {ca:?}", a.name);
        if two_sensors {
            let b = generated(seed ^ 0x5eed, FLOWS);
            let cb = cuts_of(b.packets.len(), &cuts_b);
            what += &format!(" and {} cut at {cb:?}", b.name);
            check_carry(
                &[
                    (Some("edge-a"), pieces_of(&a, &ca)),
                    (Some("edge-b"), pieces_of(&b, &cb)),
                ],
                opts,
                &what,
            );
        } else {
            check_carry(&[(None, pieces_of(&a, &ca))], opts, &what);
        }
    }
}

/// Every testdata capture once, cut into three pieces (two for the two-packet link captures),
/// formats, gzip and thread counts taking turns.
#[test]
fn every_testdata_capture_carries() {
    for (i, cap) in testdata_captures().iter().enumerate() {
        let n = cap.packets.len();
        let cuts: BTreeSet<usize> = [n / 3, 2 * n / 3].into_iter().filter(|&c| c > 0).collect();
        let opts = Opts {
            threads: [1, 2, 8][i % 3],
            format: [Fmt::Tsv, Fmt::Json, Fmt::Csv][(i / 3) % 3],
            gzip: i % 2 == 1,
        };
        let what = format!("{} cut at {cuts:?}", cap.name);
        check_carry(&[(None, pieces_of(cap, &cuts))], opts, &what);
    }
}

/// The generated capture's connections really do cross the cuts: they span far more packet
/// time than a piece, with gaps past every timeout, and end in RSTs of every cause.
#[test]
fn generated_capture_is_long_and_varied() {
    let cap = generated(1, FLOWS);
    let ts: Vec<i64> = cap.packets.iter().map(|(_, r)| r.ts_ns).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "in packet-time order");
    let span_s = (ts[ts.len() - 1] - ts[0]) / 1_000_000_000;
    assert!(span_s > 3600, "spans {span_s} s");
    let tmp = tempfile::tempdir().unwrap();
    let arch = tmp.path().join("arch");
    deliver(&arch, "p00.pcap", &write_piece(cap.flavor, &cap.packets));
    let opts = Opts {
        threads: 2,
        format: Fmt::Tsv,
        gzip: false,
    };
    let (rows, header) = one_run(tmp.path(), &arch, opts);
    let fields: Vec<&str> = header[0].split('\t').skip(1).collect();
    let col = |name: &str| fields.iter().position(|f| *f == name).unwrap();
    let causes: BTreeSet<&str> = rows
        .iter()
        .map(|r| r.split('\t').nth(col("cause")).unwrap())
        .collect();
    for c in [
        "refused",
        "handshake_abort",
        "abort",
        "after_close",
        "orphan",
        "unsolicited",
        "invalid",
    ] {
        assert!(causes.contains(c), "no {c} RST: {causes:?}");
    }
    let evidence: String = rows
        .iter()
        .map(|r| r.split('\t').nth(col("evidence")).unwrap())
        .collect::<Vec<_>>()
        .join(",");
    for e in ["data_after_rst", "burst", "seq_change", "ttl_mismatch"] {
        assert!(evidence.contains(e), "no {e} evidence");
    }
    assert!(rows.len() > 80, "{} RSTs", rows.len());
}

/// A run with nothing new in between: no log, status 0, nothing on stderr under -q; the runs
/// around it still add up to one run.
#[test]
fn nothing_new_writes_no_log() {
    let cap = generated(3, FLOWS);
    let n = cap.packets.len();
    let pieces = pieces_of(&cap, &BTreeSet::from([n / 2]));
    let tmp = tempfile::tempdir().unwrap();
    let opts = Opts {
        threads: 2,
        format: Fmt::Tsv,
        gzip: false,
    };
    let mut inc = Incremental::new(tmp.path(), opts);
    deliver(&inc.arch, &pieces[0].0, &pieces[0].1);
    inc.run(false);
    let (r, added) = inc.run(false);
    assert!(added.is_empty(), "nothing new, yet it wrote {added:?}");
    assert!(
        r.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    deliver(&inc.arch, &pieces[1].0, &pieces[1].1);
    inc.run(true);
    inc.check_against_one_run("nothing new in the middle");
}

// ---------------------------------------------------------------------------------------------
// Threads: one sensor's files tracked as units on several threads and stitched

/// reset.log and the summary's counts of one run over `pieces` with `-j threads`.
fn threaded_run(dir: &Path, arch: &Path, threads: u32, extra: &[&str]) -> (Vec<u8>, Vec<u64>) {
    let out = dir.join(format!("j{threads}"));
    let mut args: Vec<String> = vec!["-q".into(), "-j".into(), threads.to_string(), "-o".into()];
    args.push(out.to_string_lossy().into_owned());
    args.extend(extra.iter().map(|s| s.to_string()));
    let r = rstscope(&args, &[arch]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "-j {threads}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("reset_summary.json")).unwrap()).unwrap();
    let counts = ["rsts", "connections", "tcp_segments", "packets"]
        .iter()
        .map(|k| summary[k].as_u64().unwrap())
        .collect();
    (std::fs::read(out.join("reset.log")).unwrap(), counts)
}

/// The pieces of one sensor tracked with 1, 2 and 8 threads: the same bytes and counts.
fn check_threads(pieces: &Pieces, extra: &[&str], what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let arch = tmp.path().join("arch");
    for (name, bytes) in pieces {
        deliver(&arch, name, bytes);
    }
    let (want, want_counts) = threaded_run(tmp.path(), &arch, 1, extra);
    for threads in [2, 8] {
        let (got, counts) = threaded_run(tmp.path(), &arch, threads, extra);
        assert!(
            got == want,
            "{what}: -j {threads} differs from -j 1:\n{}",
            diff(
                &String::from_utf8_lossy(&got)
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
                &String::from_utf8_lossy(&want)
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            )
        );
        assert_eq!(counts, want_counts, "{what}: -j {threads} summary counts");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 16, ..ProptestConfig::default() })]

    /// The long-lived generated capture (connections crossing every cut, gaps past every
    /// timeout) cut at 1–10 random packets.
    #[test]
    fn threads_stitch_generated_pieces(
        seed in any::<u64>(),
        cuts in prop::collection::vec(any::<Index>(), 1..=10),
    ) {
        let cap = generated(seed, FLOWS);
        let cuts = cuts_of(cap.packets.len(), &cuts);
        check_threads(&pieces_of(&cap, &cuts), &[], &format!("{} cut at {cuts:?}", cap.name));
    }

    /// A testdata capture cut at 1–6 random packets.
    #[test]
    fn threads_stitch_testdata_pieces(
        which in any::<Index>(),
        cuts in prop::collection::vec(any::<Index>(), 1..=6),
    ) {
        let caps = testdata_captures();
        let cap = which.get(&caps);
        let cuts = cuts_of(cap.packets.len(), &cuts);
        check_threads(&pieces_of(cap, &cuts), &[], &format!("{} cut at {cuts:?}", cap.name));
    }
}

/// The summary's `parallel` figures of a `-j 2` run over `pieces`, after checking it against
/// `-j 1`.
fn parallel_figures(pieces: &Pieces, what: &str) -> serde_json::Value {
    check_threads(pieces, &[], what);
    let tmp = tempfile::tempdir().unwrap();
    let arch = tmp.path().join("arch");
    for (name, bytes) in pieces {
        deliver(&arch, name, bytes);
    }
    threaded_run(tmp.path(), &arch, 2, &[]);
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("j2/reset_summary.json")).unwrap())
            .unwrap();
    s["parallel"].clone()
}

/// Connections cross the cuts of the generated capture, so stitching replays some packets and
/// redoes no unit. Two threads make two units of two files each.
#[test]
fn stitching_replays_carried_connections() {
    let cap = generated(1, FLOWS);
    let n = cap.packets.len();
    let cuts = BTreeSet::from([n / 4, n / 2, 3 * n / 4]);
    let p = parallel_figures(&pieces_of(&cap, &cuts), "generated cut in four");
    assert_eq!(p["units"], 2, "{p}");
    assert_eq!(p["redone_units"], 0, "{p}");
    let replayed = p["replayed_packets"].as_u64().unwrap();
    assert!(replayed > 0 && replayed < n as u64 / 2, "{p}");
}

/// Two files of one sensor that overlap in time (every other packet each): the second starts
/// long before the first ends, so stitching cannot be proven and the unit is redone in order.
#[test]
fn overlapping_files_are_redone_in_order() {
    let cap = generated(2, FLOWS);
    let even: Vec<_> = cap.packets.iter().step_by(2).cloned().collect();
    let odd: Vec<_> = cap.packets.iter().skip(1).step_by(2).cloned().collect();
    let ext = cap.flavor.extension();
    let pieces = vec![
        (format!("a.{ext}"), write_piece(cap.flavor, &even)),
        (format!("b.{ext}"), write_piece(cap.flavor, &odd)),
    ];
    let p = parallel_figures(&pieces, "generated as two interleaved files");
    assert_eq!(p["units"], 2, "{p}");
    assert_eq!(p["redone_units"], 1, "{p}");
}

/// The same connections (the same keys) again in every file, each file after a silence past
/// every timeout: carried keys come back in the next unit, and again in later files of that
/// unit, where their cold rows and connections stand.
#[test]
fn keys_reused_across_files_stitch_exactly() {
    for bench in [false, true] {
        let cap = if bench {
            split_records_capture()
        } else {
            generated(4, FLOWS)
        };
        let first = cap.packets.first().unwrap().1.ts_ns;
        let last = cap.packets.last().unwrap().1.ts_ns;
        let step = last - first + 400_000_000_000;
        let ext = cap.flavor.extension();
        let pieces: Pieces = (0..5)
            .map(|k| {
                let shifted: Vec<(u16, Record)> = cap
                    .packets
                    .iter()
                    .map(|(lt, r)| {
                        let mut r = r.clone();
                        r.ts_ns += k * step;
                        (*lt, r)
                    })
                    .collect();
                (format!("p{k:02}.{ext}"), write_piece(cap.flavor, &shifted))
            })
            .collect();
        let p = parallel_figures(&pieces, &format!("{} five times", cap.name));
        assert_eq!(p["redone_units"], 0, "{p}");
    }
}

/// A short capture of many interleaved connections (the benchmark generator's), whose
/// connections are still open when it ends.
fn split_records_capture() -> Capture {
    let mut bytes = Vec::new();
    let spec = rstscope_gen::BenchSpec {
        bytes: 600_000,
        concurrent: 200,
        seed: 9,
    };
    rstscope_gen::write_bench(&mut bytes, spec, rstscope_gen::T0).unwrap();
    load("bench.pcap", &bytes)
}

/// Every testdata capture, whole and in three pieces, cut into byte ranges for 2 and 8 threads
/// (`--split-min 1`): the same bytes as one thread.
#[test]
fn every_testdata_capture_splits_into_ranges() {
    for cap in testdata_captures() {
        let n = cap.packets.len();
        let whole = pieces_of(&cap, &BTreeSet::new());
        check_threads(
            &whole,
            &["--split-min", "1"],
            &format!("{} whole", cap.name),
        );
        let cuts: BTreeSet<usize> = [n / 3, 2 * n / 3].into_iter().filter(|&c| c > 0).collect();
        let what = format!("{} cut at {cuts:?}", cap.name);
        check_threads(&pieces_of(&cap, &cuts), &["--split-min", "1"], &what);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 16, ..ProptestConfig::default() })]

    /// The long-lived generated capture in 1–4 files, each plain file cut into byte ranges.
    #[test]
    fn threads_stitch_byte_ranges(
        seed in any::<u64>(),
        cuts in prop::collection::vec(any::<Index>(), 0..=3),
        split_min in 1u64..200_000,
    ) {
        let cap = generated(seed, FLOWS);
        let cuts = cuts_of(cap.packets.len(), &cuts);
        let split = split_min.to_string();
        check_threads(
            &pieces_of(&cap, &cuts),
            &["--split-min", &split],
            &format!("{} cut at {cuts:?}, split from {split} bytes", cap.name),
        );
    }
}
