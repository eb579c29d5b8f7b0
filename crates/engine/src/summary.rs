//! The run summary: `reset_summary.json`, and the short table printed on stderr.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rstscope_flow::Cause;
use rstscope_reset::ResetEvent;
use rstscope_zeeklog::escape_field;
use serde_json::{json, Value};

use crate::RunResult;

/// A hash map with hashbrown's default (foldhash) hasher: keys come from captures, so from
/// attackers, and foldhash is seeded at random per process (SipHash was a tenth of the run's
/// end).
type FastMap<K, V> = hashbrown::HashMap<K, V>;

/// How many entries each "top" list keeps.
pub const TOP_N: usize = 10;

/// Counts of `key`, most frequent first, ties by key: the first `n` of that order, found
/// without sorting every distinct key.
fn top<'a, K: Ord + Clone + 'a>(
    counts: impl IntoIterator<Item = (&'a K, &'a u64)>,
    n: usize,
) -> Vec<(K, u64)> {
    let order = |a: &(&K, u64), b: &(&K, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
    let mut v: Vec<(&K, u64)> = counts.into_iter().map(|(k, c)| (k, *c)).collect();
    if v.len() > n && n > 0 {
        v.select_nth_unstable_by(n - 1, order);
    }
    v.truncate(n);
    v.sort_unstable_by(order);
    v.into_iter().map(|(k, c)| (k.clone(), c)).collect()
}

/// The `TOP_N` most frequent entries of `counts` once rendered by `name`, in [`top`]'s order.
/// Only entries counted at least as often as the `TOP_N`-th largest count are rendered (ties
/// are decided by the rendered names, so every entry of that count is). `name` must give
/// distinct keys distinct names (addresses, endpoints): counts of keys that render alike
/// would have to be merged before the cut.
fn rendered_top<K, F: Fn(&K, &mut Vec<u8>)>(
    counts: &FastMap<K, u64>,
    name: F,
) -> Vec<(String, u64)> {
    let mut by_count: Vec<u64> = counts.values().copied().collect();
    let floor = if by_count.len() > TOP_N {
        *by_count
            .select_nth_unstable_by(TOP_N - 1, |a, b| b.cmp(a))
            .1
    } else {
        0
    };
    // A plain list of names held inline, not a map of strings: the names are distinct, and a
    // scan fills a list with `TOP_CAPACITY` of them, all tied.
    let mut buf = Vec::with_capacity(ShortName::MAX);
    let kept: Vec<(ShortName, u64)> = counts
        .iter()
        .filter(|(_, &n)| n >= floor)
        .map(|(k, &n)| {
            buf.clear();
            name(k, &mut buf);
            (ShortName::new(&buf), n)
        })
        .collect();
    debug_assert_eq!(
        kept.iter()
            .map(|(k, _)| k)
            .collect::<hashbrown::HashSet<_>>()
            .len(),
        kept.len(),
        "two keys rendered alike"
    );
    top(kept.iter().map(|(k, n)| (k, n)), TOP_N)
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect()
}

/// A rendered address or endpoint, held without an allocation of its own. The longest is an
/// IPv6 endpoint, `[` + at most 39 characters + `]:65535`: 47 bytes (a test checks it).
#[derive(Clone, PartialEq, Eq, Hash)]
struct ShortName {
    len: u8,
    bytes: [u8; ShortName::MAX],
}

impl ShortName {
    const MAX: usize = 47;

    fn new(text: &[u8]) -> Self {
        debug_assert!(text.len() <= Self::MAX, "{} bytes", text.len());
        let len = text.len().min(Self::MAX);
        let mut bytes = [0; Self::MAX];
        bytes[..len].copy_from_slice(&text[..len]);
        ShortName {
            len: len as u8,
            bytes,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl Ord for ShortName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl PartialOrd for ShortName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for ShortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Addresses and ports render as ASCII.
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Aggregates of a run, as the JSON summary carries them.
pub struct Summary {
    pub json: Value,
    pub by_cause: BTreeMap<&'static str, u64>,
    pub injected: u64,
    pub rsts: u64,
    pub top_seq: Vec<(u32, u64)>,
    pub top_targets: Vec<(String, u64)>,
    pub top_scanners: Vec<(String, u64)>,
}

/// Inputs of a run as the summary lists them (from a run, or from shard summaries).
pub struct RunInputs {
    pub files: Vec<Value>,
    pub sensors: Vec<Value>,
    pub flow: rstscope_flow::FlowStats,
    /// How sensor streams cut into units were stitched.
    pub parallel: crate::ParallelStats,
    pub packets: u64,
    pub bytes: u64,
    pub files_with_errors: u64,
}

/// The summary of a set of events and the inputs they came from.
pub fn from_parts(events: &[ResetEvent], inputs: RunInputs) -> Summary {
    let mut builder = SummaryBuilder::default();
    for e in events {
        builder.push(e);
    }
    builder.finish(inputs)
}

/// Distinct keys a top list holds at most; its keys' bytes are held to this many times the
/// default `--max-payload` (4 MiB). Up to this many distinct keys (and, for payloads and
/// reasons, up to 4 MiB of them) a list is exact.
pub const TOP_CAPACITY: usize = 16_384;
const KEY_BYTES_PER_ENTRY: usize = 256;

/// Scanner connections remembered (in arrival order) so that each is counted once (8.3 MiB
/// with their index).
pub const CONNECTIONS_REMEMBERED: usize = 1 << 17;

/// A connection forgotten younger than this (packet time since its first counted row) may
/// still have rows to come: the tracker ends a connection at the latest Zeek's close delay
/// (5 s) after its first RST, so a counted connection is silent after that; twice that here.
const CONNECTION_QUIET_NS: i64 = 10_000_000_000;

/// Counts the summary keeps as rows stream past in log order (an external sort's merge),
/// in memory that does not grow with the number of rows:
///
/// - the row count, counts by cause and the injected count: exact counters;
/// - each top list (seq, payload, reason, refused target, scanner): a `TopCounts` of at most
///   [`TOP_CAPACITY`] keys, exact while the list has no more distinct keys than that, else
///   every count it gives is a lower bound, low by at most the list's `max_undercount`
///   (≤ its rows / 8,193; for payloads longer than 256 bytes ≤ rows × longest / 2 MiB);
/// - scanner connections (distinct uid per source among refused rows and the originator's
///   handshake aborts): the last [`CONNECTIONS_REMEMBERED`] counted connections, so a
///   connection counts once unless its rows are further apart than that many newly counted
///   connections. The tracker's rows of one connection lie within 5 s of packet time, so in
///   log order that needs over 26,000 new scanner connections per second; any connection
///   forgotten within `CONNECTION_QUIET_NS` (10 s) of its first row is reported (over 13,000 per
///   second), as the only kind that could count twice.
///
/// [`finish`](Self::finish) gives the same `Summary`, to the byte, as one pass over all the
/// rows held in memory would whenever no list exceeded its capacity; otherwise the JSON says
/// which lists are approximate, and by how much, under `approximate_top_lists`.
pub struct SummaryBuilder {
    rsts: u64,
    cause_counts: [u64; Cause::ALL.len()],
    injected: u64,
    seqs: TopCounts<u32>,
    payloads: TopCounts<Box<[u8]>>,
    reasons: TopCounts<Box<str>>,
    targets: TopCounts<(IpAddr, u16)>,
    scanners: TopCounts<IpAddr>,
    scanner_conns: CountedConnections,
}

impl Default for SummaryBuilder {
    fn default() -> Self {
        SummaryBuilder::with_capacity(TOP_CAPACITY, CONNECTIONS_REMEMBERED)
    }
}

impl SummaryBuilder {
    /// A builder whose top lists hold `top` keys each and that remembers `connections`
    /// scanner connections.
    pub(crate) fn with_capacity(top: usize, connections: usize) -> Self {
        SummaryBuilder {
            rsts: 0,
            cause_counts: [0; Cause::ALL.len()],
            injected: 0,
            seqs: TopCounts::new(top),
            payloads: TopCounts::new(top),
            reasons: TopCounts::new(top),
            targets: TopCounts::new(top),
            scanners: TopCounts::new(top),
            scanner_conns: CountedConnections::new(connections),
        }
    }

    /// Count one row; rows come in log order (which the scanner count relies on, see above).
    pub fn push(&mut self, e: &ResetEvent) {
        self.rsts += 1;
        let cause = e
            .cause
            .as_deref()
            .and_then(|c| Cause::ALL.iter().position(|k| k.name() == c));
        if let Some(i) = cause {
            self.cause_counts[i] += 1;
        }
        if e.injected == Some(true) {
            self.injected += 1;
        }
        self.seqs.add(&e.seq);
        if let Some(p) = &e.payload {
            self.payloads.add(p.as_slice());
        }
        if let Some(r) = &e.reason {
            self.reasons.add(r.as_str());
        }
        // Sources of refused or half-open attempts, counted once per connection.
        let scanner_row = match cause.map(|i| Cause::ALL[i]) {
            Some(Cause::Refused) => {
                self.targets.add(&(e.resp_h, e.resp_p));
                true
            }
            Some(Cause::HandshakeAbort) => e.is_orig,
            _ => false,
        };
        if scanner_row && self.scanner_conns.insert(e.orig_h, &e.uid, e.ts_ns) {
            self.scanners.add(&e.orig_h);
        }
    }

    /// The summary of the rows pushed and the inputs they came from.
    pub fn finish(self, inputs: RunInputs) -> Summary {
        let by_cause: BTreeMap<&'static str, u64> = Cause::ALL
            .iter()
            .zip(self.cause_counts)
            .map(|(c, n)| (c.name(), n))
            .collect();
        // Rendered as text once per distinct payload held, merged where two render alike.
        let mut payloads: FastMap<String, u64> = FastMap::default();
        for (p, n) in &self.payloads.counts {
            *payloads.entry(escape_field(p)).or_default() += n;
        }
        let reasons: FastMap<String, u64> = self
            .reasons
            .counts
            .iter()
            .map(|(r, n)| (r.to_string(), *n))
            .collect();
        // Only the most frequent targets are named; ties need the rendered names, so every
        // target counted as often as the last one kept is rendered.
        let top_targets = rendered_top(&self.targets.counts, |(h, p), out| endpoint(h, *p, out));
        let top_scanners = rendered_top(&self.scanners.counts, addr_text);
        let top_seq = top(&self.seqs.counts, TOP_N);

        let rsts = self.rsts;
        let injected = self.injected;
        let pairs = |v: &[(String, u64)], key: &str| -> Vec<Value> {
            v.iter()
                .map(|(k, c)| json!({ key: k, "count": c }))
                .collect()
        };
        let mut json = json!({
            "rsts": rsts,
            "by_cause": by_cause,
            "injected": injected,
            "top_seq": top_seq.iter().map(|(s, c)| json!({"seq": s, "count": c})).collect::<Vec<_>>(),
            "top_payloads": pairs(&top(&payloads, TOP_N), "payload"),
            "top_reasons": pairs(&top(&reasons, TOP_N), "reason"),
            "top_refused_targets": pairs(&top_targets, "target"),
            "top_scanners": pairs(&top_scanners, "source"),
            "connections": inputs.flow.connections,
            "connections_evicted": inputs.flow.evicted,
            "peak_connections": inputs.flow.peak_connections,
            "tcp_segments": inputs.flow.segments,
            "parallel": {
                "units": inputs.parallel.units,
                "replayed_packets": inputs.parallel.replayed_packets,
                "redone_units": inputs.parallel.redone_units,
            },
            "packets": inputs.packets,
            "bytes": inputs.bytes,
            "files": inputs.files,
            "sensors": inputs.sensors,
            "files_with_errors": inputs.files_with_errors,
        });
        // Only when a list outgrew its capacity: an exact summary is today's, to the byte.
        let mut approximate = serde_json::Map::new();
        let forgotten = self.scanner_conns.forgotten_early;
        for (list, max_undercount, forgotten) in [
            ("top_seq", self.seqs.max_undercount, 0),
            ("top_payloads", self.payloads.max_undercount, 0),
            ("top_reasons", self.reasons.max_undercount, 0),
            ("top_refused_targets", self.targets.max_undercount, 0),
            ("top_scanners", self.scanners.max_undercount, forgotten),
        ] {
            if max_undercount == 0 && forgotten == 0 {
                continue;
            }
            let mut bound = json!({ "max_undercount": max_undercount });
            if forgotten > 0 {
                bound["connections_forgotten_early"] = json!(forgotten);
            }
            approximate.insert(list.into(), bound);
        }
        if !approximate.is_empty() {
            json["approximate_top_lists"] = Value::Object(approximate);
        }
        Summary {
            json,
            by_cause,
            injected,
            rsts,
            top_seq,
            top_targets,
            top_scanners,
        }
    }

    /// Keys held: (top lists, remembered connections), each at most its capacity.
    #[cfg(test)]
    pub(crate) fn held(&self) -> ([usize; 5], usize) {
        (
            [
                self.seqs.counts.len(),
                self.payloads.counts.len(),
                self.reasons.counts.len(),
                self.targets.counts.len(),
                self.scanners.counts.len(),
            ],
            self.scanner_conns.index.len(),
        )
    }
}

/// A top list's key: owned from what a row borrows only when it is new, and weighed by the
/// heap bytes it owns (what a list's byte budget counts).
trait ListKey: std::hash::Hash + Eq + Sized {
    type Borrowed: std::hash::Hash + hashbrown::Equivalent<Self> + ?Sized;
    fn own(key: &Self::Borrowed) -> Self;
    fn key_bytes(&self) -> usize {
        0
    }
}

impl ListKey for u32 {
    type Borrowed = u32;
    fn own(key: &u32) -> u32 {
        *key
    }
}

impl ListKey for IpAddr {
    type Borrowed = IpAddr;
    fn own(key: &IpAddr) -> IpAddr {
        *key
    }
}

impl ListKey for (IpAddr, u16) {
    type Borrowed = (IpAddr, u16);
    fn own(key: &(IpAddr, u16)) -> (IpAddr, u16) {
        *key
    }
}

impl ListKey for Box<[u8]> {
    type Borrowed = [u8];
    fn own(key: &[u8]) -> Box<[u8]> {
        key.into()
    }
    fn key_bytes(&self) -> usize {
        self.len()
    }
}

impl ListKey for Box<str> {
    type Borrowed = str;
    fn own(key: &str) -> Box<str> {
        key.into()
    }
    fn key_bytes(&self) -> usize {
        self.len()
    }
}

/// Counts per key in bounded memory: a Misra–Gries summary that purges in batches.
///
/// It holds at most `capacity` keys, and keys of at most `key_bytes_budget` heap bytes (plus
/// one key). While neither is reached, counts are exact. When a new key would not fit, a purge
/// takes the count `m` of the first key, in decreasing count order, past half the capacity or
/// half the byte budget, subtracts `m` from every count and drops the keys left at zero or
/// below: at most half the capacity and budget remain, so purges are rare and cost O(log
/// capacity) per row amortised. The result depends only on the counts, never on hash order.
///
/// Bound: every count is a lower bound, low by at most `max_undercount` (the sum of the `m`s);
/// a key not held occurred at most `max_undercount` times. Each purge removes at least `m`
/// from at least Q keys, Q ≥ min(capacity / 2 + 1, budget / (2 × the longest key)), and rows
/// add one each, so `max_undercount` ≤ rows / Q. For the top list: a key listed has at least
/// its count; a key occurring more than `max_undercount` times more than the N-th listed count
/// is listed; two keys whose true counts differ by more than `max_undercount` keep their order;
/// equal counts tie by name as always, though their true counts may differ.
struct TopCounts<K> {
    counts: FastMap<K, u64>,
    capacity: usize,
    key_bytes_budget: usize,
    key_bytes: usize,
    max_undercount: u64,
}

impl<K: ListKey> TopCounts<K> {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2);
        TopCounts {
            counts: FastMap::default(),
            capacity,
            key_bytes_budget: capacity * KEY_BYTES_PER_ENTRY,
            key_bytes: 0,
            max_undercount: 0,
        }
    }

    /// Count one occurrence of `key` (owned only when it is new).
    fn add(&mut self, key: &K::Borrowed) {
        if let Some(n) = self.counts.get_mut(key) {
            *n += 1;
            return;
        }
        let key = K::own(key);
        let bytes = key.key_bytes();
        if self.counts.len() >= self.capacity || self.key_bytes + bytes > self.key_bytes_budget {
            self.purge();
        }
        self.key_bytes += bytes;
        self.counts.insert(key, 1);
    }

    fn purge(&mut self) {
        let mut by_count: Vec<(u64, usize)> = self
            .counts
            .iter()
            .map(|(k, n)| (*n, k.key_bytes()))
            .collect();
        by_count.sort_unstable_by_key(|&(n, _)| std::cmp::Reverse(n));
        let (mut kept, mut bytes) = (0, 0);
        let cut = by_count.iter().find(|(_, b)| {
            kept += 1;
            bytes += b;
            kept > self.capacity / 2 || bytes > self.key_bytes_budget / 2
        });
        // None: the list is within half its budget and a key longer than the other half
        // comes; it is let in (over the budget by at most one key).
        let Some(&(m, _)) = cut else { return };
        let mut freed = 0;
        self.counts.retain(|k, n| {
            if *n > m {
                *n -= m;
                true
            } else {
                freed += k.key_bytes();
                false
            }
        });
        self.key_bytes -= freed;
        self.max_undercount += m;
    }
}

/// A uid as a connection key, inline when it is as short as ours ("C" + at most 17 digits).
#[derive(PartialEq, Eq)]
enum UidText {
    Short { len: u8, bytes: [u8; 22] },
    Long(Box<str>),
}

impl UidText {
    fn new(uid: &str) -> Self {
        let mut bytes = [0; 22];
        match bytes.get_mut(..uid.len()) {
            Some(b) => {
                b.copy_from_slice(uid.as_bytes());
                UidText::Short {
                    len: uid.len() as u8,
                    bytes,
                }
            }
            None => UidText::Long(uid.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            UidText::Short { len, bytes } => &bytes[..*len as usize],
            UidText::Long(s) => s.as_bytes(),
        }
    }
}

/// A counted scanner connection, with the packet time of its first counted row.
struct CountedConnection {
    ts_ns: i64,
    orig_h: IpAddr,
    uid: UidText,
}

/// The last `capacity` scanner connections counted, so that each counts once: a ring in
/// arrival order indexed by a hash table. Exact while a connection's rows are fewer than
/// `capacity` newly counted connections apart; `forgotten_early` counts connections dropped
/// for room within [`CONNECTION_QUIET_NS`] of their first row, the only ones the tracker could
/// still give a row for (which would then count twice).
struct CountedConnections {
    ring: Vec<CountedConnection>,
    /// The slot the next connection replaces once the ring is full.
    oldest: usize,
    capacity: usize,
    /// Slots of `ring`, by the hash of (orig_h, uid).
    index: hashbrown::HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    forgotten_early: u64,
}

impl CountedConnections {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        CountedConnections {
            ring: Vec::new(),
            oldest: 0,
            capacity,
            index: hashbrown::HashTable::new(),
            hasher: Default::default(),
            forgotten_early: 0,
        }
    }

    /// Remember the connection; false when it is remembered already.
    fn insert(&mut self, orig_h: IpAddr, uid: &str, ts_ns: i64) -> bool {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one((orig_h, uid.as_bytes()));
        let ring = &self.ring;
        let same = |&i: &u32| {
            let c = &ring[i as usize];
            c.orig_h == orig_h && c.uid.as_bytes() == uid.as_bytes()
        };
        if self.index.find(hash, same).is_some() {
            return false;
        }
        let conn = CountedConnection {
            ts_ns,
            orig_h,
            uid: UidText::new(uid),
        };
        let slot = if self.ring.len() < self.capacity {
            self.ring.push(conn);
            self.ring.len() - 1
        } else {
            let slot = self.oldest;
            self.oldest = (slot + 1) % self.capacity;
            let old = std::mem::replace(&mut self.ring[slot], conn);
            if ts_ns.saturating_sub(old.ts_ns) <= CONNECTION_QUIET_NS {
                self.forgotten_early += 1;
            }
            let old_hash = self.hasher.hash_one((old.orig_h, old.uid.as_bytes()));
            if let Ok(entry) = self.index.find_entry(old_hash, |&i| i as usize == slot) {
                entry.remove();
            }
            slot
        };
        let (ring, hasher) = (&self.ring, &self.hasher);
        self.index.insert_unique(hash, slot as u32, |&i| {
            let c = &ring[i as usize];
            hasher.hash_one((c.orig_h, c.uid.as_bytes()))
        });
        true
    }
}

/// The per-file and per-sensor parts of a run's summary.
pub fn run_inputs(result: &RunResult) -> RunInputs {
    let files: Vec<Value> = result
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({
                // Names as the JSON log writes strings: bytes that are not UTF-8 as `\xNN`.
                "path": crate::name_text(crate::name_bytes(f.input.path.as_os_str())),
                "source": crate::name_text(&f.input.source),
                "format": f.read.format.map(|x| format!("{x:?}").to_lowercase()),
                "compression": f.read.compression.to_string(),
                "file_bytes": f.read.file_bytes,
                "capture_bytes": f.read.capture_bytes,
                "packets": f.decode.packets,
                "tcp_segments": f.decode.tcp,
                "rsts": f.decode.rst,
                "non_first_fragments": f.decode.non_first_fragments,
                "malformed": f.decode.malformed,
                "too_deep": f.decode.too_deep,
                "unknown_linktypes": f.decode.unknown_linktypes.iter()
                    .map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "error": f.error().map(|e| e.to_string()),
                "error_offset": f.error().and_then(|e| e.offset()),
                "sensor": f.input.sensor.as_deref().map(crate::name_text),
                "late": result.late_files.contains(&i),
                "first_ts": f.first_ts.map(rstscope_zeeklog::format_seconds),
                "last_ts": f.last_ts.map(rstscope_zeeklog::format_seconds),
                "seconds": (f.seconds * 1e3).round() / 1e3,
            })
        })
        .collect();
    let sensors = result
        .sensors
        .iter()
        .map(|s| {
            json!({
                "sensor": s.sensor.as_deref().map(crate::name_text),
                "files": s.files,
                "packets": s.packets,
                "bytes": s.bytes,
                "rsts": s.rsts,
                "connections": s.flow.connections,
                "connections_evicted": s.flow.evicted,
                "peak_connections": s.flow.peak_connections,
                "tcp_segments": s.flow.segments,
                "seconds": (s.seconds * 1e3).round() / 1e3,
            })
        })
        .collect();
    RunInputs {
        files,
        sensors,
        flow: result.flow,
        parallel: result.parallel,
        packets: result.files.iter().map(|f| f.decode.packets).sum(),
        bytes: result.files.iter().map(|f| f.read.file_bytes).sum(),
        files_with_errors: result.files.iter().filter(|f| f.error().is_some()).count() as u64,
    }
}

/// An address as the logs write it (Zeek's writer's IPv4 path, not `core::fmt`: a scan names
/// a million distinct targets and sources here, all tied for the top lists).
fn addr_text(a: &std::net::IpAddr, out: &mut Vec<u8>) {
    rstscope_zeeklog::render_value_into(&rstscope_zeeklog::Value::Addr(*a), out);
}

/// `host:port`, the IPv6 host in brackets.
fn endpoint(host: &std::net::IpAddr, port: u16, out: &mut Vec<u8>) {
    if host.is_ipv6() {
        out.push(b'[');
    }
    rstscope_zeeklog::render_value_into(&rstscope_zeeklog::Value::Addr(*host), out);
    if host.is_ipv6() {
        out.push(b']');
    }
    out.push(b':');
    rstscope_zeeklog::render_value_into(&rstscope_zeeklog::Value::Port(port), out);
}

/// Add the conn.log join's figures to the summary.
pub fn add_join(s: &mut Summary, j: &rstscope_join::JoinReport, conn_rst_rows: Option<u64>) {
    let logs: Vec<Value> = j
        .logs
        .iter()
        .map(|l| {
            json!({
                "path": crate::name_text(crate::name_bytes(l.path.as_os_str())),
                "rows": l.rows,
                "malformed_lines": l.malformed,
                "first_malformed": l.first_malformed.iter().map(|m| json!({"line": m.line, "reason": m.reason})).collect::<Vec<_>>(),
                "error": l.error,
            })
        })
        .collect();
    s.json["join"] = json!({
        "matched": j.matched,
        "unmatched": j.unmatched,
        "candidate_rows": j.candidates,
        "joined_conn_rows": j.joined.len(),
        "conn_rst_rows": conn_rst_rows,
        "conn_logs": logs,
    });
}

/// What the summary says of its approximate top lists, in a sentence; None when all are exact.
pub fn approximate_note(s: &Summary) -> Option<String> {
    let lists = s.json.get("approximate_top_lists")?.as_object()?;
    let parts: Vec<String> = lists
        .iter()
        .map(|(list, b)| {
            let mut part = format!(
                "{} low by at most {}",
                list.trim_start_matches("top_").replace('_', " "),
                b["max_undercount"]
            );
            if let Some(n) = b.get("connections_forgotten_early") {
                part.push_str(&format!(
                    " ({n} connections forgotten early may count twice)"
                ));
            }
            part
        })
        .collect();
    Some(format!(
        "approximate top lists (more distinct keys than held): {}",
        parts.join("; ")
    ))
}

/// The human table for stderr.
pub fn table(s: &Summary) -> String {
    let mut out = String::new();
    out.push_str(&format!("RSTs: {}  injected: {}\n", s.rsts, s.injected));
    for (cause, n) in &s.by_cause {
        if *n > 0 {
            out.push_str(&format!("  {cause:<16}{n:>10}\n"));
        }
    }
    if !s.top_seq.is_empty() {
        let seqs: Vec<String> = s
            .top_seq
            .iter()
            .take(5)
            .map(|(q, n)| format!("{q} ({n})"))
            .collect();
        out.push_str(&format!("top RST seq: {}\n", seqs.join(", ")));
    }
    if !s.top_targets.is_empty() {
        let t: Vec<String> = s
            .top_targets
            .iter()
            .take(5)
            .map(|(q, n)| format!("{q} ({n})"))
            .collect();
        out.push_str(&format!("top refused targets: {}\n", t.join(", ")));
    }
    if !s.top_scanners.is_empty() {
        let t: Vec<String> = s
            .top_scanners
            .iter()
            .take(5)
            .map(|(q, n)| format!("{q} ({n} conns)"))
            .collect();
        out.push_str(&format!("top scanners: {}\n", t.join(", ")));
    }
    if let Some(note) = approximate_note(s) {
        out.push_str(&note);
        out.push('\n');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
