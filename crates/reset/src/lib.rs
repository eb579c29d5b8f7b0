//! Reset events: one per TCP RST packet, as plain data, and the reset.log columns they fill
//! (`../shared/spec/reset-log.md`). Fields that only connection tracking can know are `None`
//! until a classifier fills them.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use rstscope_decode::{community_id_v1, decode_rst_reason, flags_tcpdump, CommunityIdKey, Segment};
use rstscope_zeeklog::{Field, Value, ZeekType};

pub mod codec;

/// The reset.log columns, in contract order.
pub const RESET_FIELDS: [Field; 33] = {
    use ZeekType::*;
    const fn f(name: &'static str, ty: ZeekType) -> Field {
        Field { name, ty }
    }
    [
        f("ts", Time),
        f("uid", String),
        f("community_id", String),
        f("id.orig_h", Addr),
        f("id.orig_p", Port),
        f("id.resp_h", Addr),
        f("id.resp_p", Port),
        f("is_orig", Bool),
        f("cause", String),
        f("injected", Bool),
        f("evidence", SetString),
        f("flags", String),
        f("seq", Count),
        f("ack", Count),
        f("win", Count),
        f("ttl", Count),
        f("ip_id", Count),
        f("df", Bool),
        f("payload_len", Count),
        f("payload", String),
        f("reason", String),
        f("sender_ttl", Count),
        f("initial_ttl", Count),
        f("rst_count", Count),
        f("history", String),
        f("conn_state", String),
        f("duration", Interval),
        f("idle", Interval),
        f("orig_pkts", Count),
        f("resp_pkts", Count),
        f("source", String),
        f("frame", Count),
        f("sensor", String),
    ]
};

/// Everything reset.log says about one RST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetEvent {
    pub ts_ns: i64,
    pub uid: String,
    pub community_id: String,
    pub orig_h: IpAddr,
    pub orig_p: u16,
    pub resp_h: IpAddr,
    pub resp_p: u16,
    pub is_orig: bool,
    /// One of the contract's causes; borrowed from a static name when the tracker made it.
    pub cause: Option<Cow<'static, str>>,
    pub injected: Option<bool>,
    /// Evidence names, sorted; `Some(vec![])` is the empty set.
    pub evidence: Option<Vec<&'static str>>,
    /// The 12-bit TCP flags field.
    pub flags: u16,
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub ttl: u8,
    pub ip_id: Option<u16>,
    pub df: Option<bool>,
    pub payload_len: u32,
    /// Captured payload bytes, cut to the configured maximum; None when nothing was captured.
    pub payload: Option<Vec<u8>>,
    pub reason: Option<String>,
    pub sender_ttl: Option<u8>,
    pub initial_ttl: u8,
    pub rst_count: Option<u32>,
    pub history: Option<String>,
    pub conn_state: Option<Cow<'static, str>>,
    pub duration_ns: Option<i64>,
    pub idle_ns: Option<i64>,
    pub orig_pkts: Option<u64>,
    pub resp_pkts: Option<u64>,
    /// Capture file, relative to the input it was found under: the name's bytes as the file
    /// system has them (a Linux name need not be UTF-8; writers escape what is not).
    pub source: Arc<[u8]>,
    /// 1-based packet number in `source`.
    pub frame: u64,
    /// The sensor whose captures the RST came from (unset when the run has one unnamed sensor):
    /// bytes of a directory or file name, like `source`.
    pub sensor: Option<Arc<[u8]>>,
}

/// Options that shape events.
#[derive(Debug, Clone, Copy)]
pub struct EventOptions {
    pub community_id_seed: u16,
    /// Most payload bytes kept per RST.
    pub max_payload: usize,
}

impl Default for EventOptions {
    fn default() -> Self {
        EventOptions {
            community_id_seed: 0,
            max_payload: 256,
        }
    }
}

/// The smallest common initial TTL (32, 64, 128, 255) not below `ttl`.
pub fn initial_ttl(ttl: u8) -> u8 {
    match ttl {
        0..=32 => 32,
        33..=64 => 64,
        65..=128 => 128,
        _ => 255,
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Append `v` in base 62 (most significant digit first, no padding) to `out`.
fn base62(mut v: u64, out: &mut Vec<u8>) {
    // u64::MAX has 11 base-62 digits.
    let mut digits = [0u8; 11];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = BASE62[(v % 62) as usize];
        v /= 62;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A Zeek-style uid ("C" + base62 of 96 bits) derived from the connection's endpoints
/// (direction-free) and a discriminator that tells apart connections reusing one 5-tuple
/// (0 until connection tracking supplies one). Same inputs, same uid, on every run.
pub fn connection_uid(a: (IpAddr, u16), b: (IpAddr, u16), discriminator: i64) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    // The whole hash input, at most 15 + 2 × (16 + 2) + 8 bytes, hashed in one call.
    let mut input = [0u8; 59];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        input[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    put(b"rstscope-uid-v1");
    for (addr, port) in [lo, hi] {
        match addr {
            IpAddr::V4(v4) => put(&v4.octets()),
            IpAddr::V6(v6) => put(&v6.octets()),
        }
        put(&port.to_be_bytes());
    }
    put(&discriminator.to_be_bytes());
    let d = rstscope_decode::sha1_digest(&input[..n]);
    let w1 = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    let w2 = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
    uid_text(w1, w2)
}

/// A uid from its two numbers: "C" + base 62 of each (what [`connection_uid`] makes of the
/// hash; compact encodings keep the numbers).
pub fn uid_text(high: u64, low: u32) -> String {
    // "C" + at most 11 + 6 digits
    let mut s = Vec::with_capacity(18);
    s.push(b'C');
    base62(high, &mut s);
    base62(low as u64, &mut s);
    String::from_utf8(s).expect("a uid is ASCII")
}

/// Rows whose text is asked for ahead of the one being read (see [`ResetEvent::prefetch_text`]).
pub const TEXT_PREFETCH_ROWS: usize = 8;

/// The rows of `rows` in order, the text of the row [`TEXT_PREFETCH_ROWS`] further on asked
/// for as each is handed out: the log writers, which read every row's strings, would
/// otherwise wait on a cache miss per string, since each row's strings were allocated when its
/// connection ended, far from the rows sorted around it (measured: a quarter of the time to
/// render reset.log on the 1 GiB benchmark capture).
#[inline]
pub fn with_text_ahead(rows: &[ResetEvent]) -> impl Iterator<Item = &ResetEvent> {
    rows.iter().enumerate().map(|(i, row)| {
        if let Some(next) = rows.get(i + TEXT_PREFETCH_ROWS) {
            next.prefetch_text();
        }
        row
    })
}

/// Ask for the cache line at `p` without waiting for it (nothing on targets other than x86_64).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads no value, writes nothing and never faults, whatever the address
    // (an empty string's pointer is dangling, and that is fine); SSE, which it needs, is part of
    // every x86_64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl ResetEvent {
    /// Ask for the first cache line of each string the row owns (uid, community ID, evidence,
    /// history, payload, reason, source, sensor) without waiting: see [`with_text_ahead`].
    #[inline]
    pub fn prefetch_text(&self) {
        prefetch(self.uid.as_ptr());
        prefetch(self.community_id.as_ptr());
        prefetch(self.source.as_ptr());
        if let Some(v) = &self.evidence {
            prefetch(v.as_ptr().cast());
        }
        if let Some(h) = &self.history {
            prefetch(h.as_ptr());
        }
        if let Some(p) = &self.payload {
            prefetch(p.as_ptr());
        }
        if let Some(r) = &self.reason {
            prefetch(r.as_ptr());
        }
        if let Some(s) = &self.sensor {
            prefetch(s.as_ptr());
        }
    }

    /// The event for a RST segment with only what the packet itself determines. Until a
    /// classifier decides the roles, the RST's receiver is taken as the originator.
    pub fn from_segment(seg: &Segment<'_>, source: &[u8], opts: &EventOptions) -> ResetEvent {
        let captured = &seg.payload[..seg.payload.len().min(opts.max_payload)];
        ResetEvent {
            ts_ns: seg.ts_ns,
            uid: connection_uid((seg.src, seg.sport), (seg.dst, seg.dport), 0),
            community_id: community_id_v1(
                &CommunityIdKey {
                    proto: 6,
                    src: seg.src,
                    dst: seg.dst,
                    sport: seg.sport,
                    dport: seg.dport,
                },
                opts.community_id_seed,
            ),
            orig_h: seg.dst,
            orig_p: seg.dport,
            resp_h: seg.src,
            resp_p: seg.sport,
            is_orig: false,
            cause: None,
            injected: None,
            evidence: None,
            flags: seg.flags,
            seq: seg.seq,
            ack: seg.ack,
            win: seg.window,
            ttl: seg.ttl,
            ip_id: seg.ip_id,
            df: seg.df,
            payload_len: seg.payload_len,
            payload: if captured.is_empty() {
                None
            } else {
                Some(captured.to_vec())
            },
            // Decoded from the whole captured payload, not the cut one.
            reason: decode_rst_reason(seg.payload_len, seg.payload),
            sender_ttl: None,
            initial_ttl: initial_ttl(seg.ttl),
            rst_count: None,
            history: None,
            conn_state: None,
            duration_ns: None,
            idle_ns: None,
            orig_pkts: None,
            resp_pkts: None,
            source: Arc::from(source),
            frame: seg.frame,
            sensor: None,
        }
    }

    /// The row's values, in [`RESET_FIELDS`] order.
    pub fn values(&self) -> [Value<'_>; RESET_FIELDS.len()] {
        fn opt<T, F: Fn(&T) -> Value<'_>>(v: &Option<T>, f: F) -> Value<'_> {
            v.as_ref().map(f).unwrap_or(Value::Unset)
        }
        [
            Value::Time(self.ts_ns),
            Value::Str(self.uid.as_bytes()),
            Value::Str(self.community_id.as_bytes()),
            Value::Addr(self.orig_h),
            Value::Port(self.orig_p),
            Value::Addr(self.resp_h),
            Value::Port(self.resp_p),
            Value::Bool(self.is_orig),
            opt(&self.cause, |c| Value::Str(c.as_bytes())),
            opt(&self.injected, |b| Value::Bool(*b)),
            opt(&self.evidence, |e| Value::Set(e.clone())),
            Value::Str(self.flags_text().as_bytes()),
            Value::Count(self.seq as u64),
            Value::Count(self.ack as u64),
            Value::Count(self.win as u64),
            Value::Count(self.ttl as u64),
            opt(&self.ip_id, |v| Value::Count(*v as u64)),
            opt(&self.df, |b| Value::Bool(*b)),
            Value::Count(self.payload_len as u64),
            opt(&self.payload, |p| Value::Str(p)),
            opt(&self.reason, |r| Value::Str(r.as_bytes())),
            opt(&self.sender_ttl, |v| Value::Count(*v as u64)),
            Value::Count(self.initial_ttl as u64),
            opt(&self.rst_count, |v| Value::Count(*v as u64)),
            opt(&self.history, |h| Value::Str(h.as_bytes())),
            opt(&self.conn_state, |h| Value::Str(h.as_bytes())),
            opt(&self.duration_ns, |d| Value::Interval(*d)),
            opt(&self.idle_ns, |d| Value::Interval(*d)),
            opt(&self.orig_pkts, |v| Value::Count(*v)),
            opt(&self.resp_pkts, |v| Value::Count(*v)),
            Value::Str(&self.source),
            Value::Count(self.frame),
            opt(&self.sensor, |v| Value::Str(v)),
        ]
    }

    /// Flags in tcpdump notation.
    pub fn flags_text(&self) -> &'static str {
        flags_text_static(self.flags)
    }

    /// The order rows are written in: (ts, source, frame), names compared byte by byte.
    pub fn sort_key(&self) -> (i64, &[u8], u64) {
        (self.ts_ns, &self.source, self.frame)
    }

    /// A total order that agrees with [`sort_key`](Self::sort_key). Its key names one packet,
    /// except when two inputs share a file name and packet times (the same file under two
    /// directories): those rows are then ordered by what they say, so the order never depends
    /// on the order they were produced in (threads, shards).
    pub fn log_order(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key()
            .cmp(&other.sort_key())
            .then_with(|| {
                (self.sensor.as_deref(), self.uid.as_str(), self.is_orig).cmp(&(
                    other.sensor.as_deref(),
                    other.uid.as_str(),
                    other.is_orig,
                ))
            })
            .then_with(|| {
                (
                    self.seq,
                    self.ack,
                    self.flags,
                    self.cause.as_deref(),
                    self.rst_count,
                )
                    .cmp(&(
                        other.seq,
                        other.ack,
                        other.flags,
                        other.cause.as_deref(),
                        other.rst_count,
                    ))
            })
    }
}

/// tcpdump flag strings are few (9 bits); intern them so rows can borrow them.
fn flags_text_static(flags: u16) -> &'static str {
    use std::sync::OnceLock;
    static TABLE: OnceLock<Vec<&'static str>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0u16..512)
            .map(|f| &*Box::leak(flags_tcpdump(f).into_boxed_str()))
            .collect()
    });
    table[(flags & 0x1ff) as usize]
}

#[cfg(test)]
mod tests;
