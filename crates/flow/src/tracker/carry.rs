//! The carry: a tracker's live connections, their pending rows and the sensor clock at the end
//! of a piece of a sensor stream, as plain data that can be saved and read back, so that the
//! next piece (the next run) continues the stream exactly as one run over both would have.
//!
//! Everything a later packet or RST of a connection depends on is in its connection state (the
//! classifier keeps nothing per sender outside it), so a carry is the live connections, in a
//! canonical order (by start time, then key) whatever the number of workers that held them.

use std::net::IpAddr;
use std::sync::Arc;

use rstscope_reset::codec::{DecodeError, Reader, Vocabulary, Writer};
use rstscope_reset::ResetEvent;

use super::*;
use crate::zeek::EpState;

/// The live connections of a sensor stream and its clock, between two pieces.
///
/// Connections stay in their encoded form until they are needed: a tracker resumed from a
/// carry knows each one by its key and timer (enough to find it when a packet comes, and to
/// expire it), decodes it when it is touched, and passes the bytes of those never touched on to
/// the next carry unchanged. A warm start costs a table entry per carried connection, not a
/// decoding.
#[derive(Debug, Clone)]
pub struct Carry {
    /// The newest packet time seen (ns); `i64::MIN` when no packet was.
    pub clock: i64,
    /// Buffers holding encoded connections (shared by the parts a carry is split into).
    bufs: Vec<Arc<Vec<u8>>>,
    /// The connections, in canonical order.
    conns: Vec<ConnRef>,
}

/// Where an encoded connection is, and what a tracker needs before decoding it.
#[derive(Debug, Clone)]
pub(super) struct ConnRef {
    key: Key,
    start_ns: i64,
    timer: i64,
    rows: u32,
    buf: u32,
    /// Byte range of the encoding in `bufs[buf]`.
    at: u32,
    end: u32,
}

impl ConnRef {
    fn order_key(&self) -> (i64, u8, u64, [u128; 2], u32) {
        let k = &self.key;
        (self.start_ns, k.fam, k.v4, k.v6, k.ports)
    }
}

impl Default for Carry {
    /// An empty carry: the start of a stream.
    fn default() -> Carry {
        Carry {
            clock: i64::MIN,
            bufs: Vec::new(),
            conns: Vec::new(),
        }
    }
}

impl Carry {
    /// An empty carry at the start of a stream.
    pub fn new() -> Carry {
        Carry::default()
    }

    /// Connections carried.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// RST rows waiting in the carried connections.
    pub fn pending_rows(&self) -> usize {
        self.conns.iter().map(|c| c.rows as usize).sum()
    }

    /// The carried connections' endpoints, (lo, hi) in the key's canonical order.
    pub fn endpoints(&self) -> impl Iterator<Item = ((IpAddr, u16), (IpAddr, u16))> + '_ {
        self.conns.iter().map(|c| c.key.endpoints())
    }

    /// The carries of several workers of one stream as one, in canonical order.
    pub fn merge(parts: Vec<Carry>) -> Carry {
        let clock = parts.iter().map(|c| c.clock).max().unwrap_or(i64::MIN);
        let mut bufs = Vec::new();
        let mut conns = Vec::new();
        for p in parts {
            let base = bufs.len() as u32;
            bufs.extend(p.bufs);
            conns.extend(p.conns.into_iter().map(|c| ConnRef {
                buf: c.buf + base,
                ..c
            }));
        }
        conns.sort_by_key(ConnRef::order_key);
        Carry { clock, bufs, conns }
    }

    /// Divide the connections among `n` workers by `owner` (each keeps the stream's clock).
    pub fn split(
        self,
        n: usize,
        owner: impl Fn((IpAddr, u16), (IpAddr, u16)) -> usize,
    ) -> Vec<Carry> {
        let mut parts: Vec<Carry> = (0..n.max(1))
            .map(|_| Carry {
                clock: self.clock,
                bufs: self.bufs.clone(),
                conns: Vec::new(),
            })
            .collect();
        let last = parts.len() - 1;
        for c in self.conns {
            let (lo, hi) = c.key.endpoints();
            parts[owner(lo, hi).min(last)].conns.push(c);
        }
        parts
    }

    /// Split off the connections that `take` selects by their endpoints and start time:
    /// (taken, kept), both at this carry's clock.
    pub fn partition(
        self,
        take: impl Fn((IpAddr, u16), (IpAddr, u16), i64) -> bool,
    ) -> (Carry, Carry) {
        let mut taken = Carry {
            clock: self.clock,
            bufs: self.bufs.clone(),
            conns: Vec::new(),
        };
        let mut kept = Carry {
            clock: self.clock,
            bufs: self.bufs,
            conns: Vec::new(),
        };
        for c in self.conns {
            let (lo, hi) = c.key.endpoints();
            if take(lo, hi, c.start_ns) {
                taken.conns.push(c);
            } else {
                kept.conns.push(c);
            }
        }
        (taken, kept)
    }

    fn bytes_of(&self, c: &ConnRef) -> &[u8] {
        &self.bufs[c.buf as usize][c.at as usize..c.end as usize]
    }

    /// Append this carry: its clock, then the connections' encodings in canonical order.
    fn write(&self, w: &mut Writer) {
        w.i64(self.clock);
        w.u32(self.conns.len() as u32);
        for c in &self.conns {
            w.buf.extend_from_slice(self.bytes_of(c));
        }
    }

    /// Read a carry written by [`Carry::write`] from `buf` (which `r` reads), indexing its
    /// connections: their key, start, timer and row count are read now, the rest when a
    /// tracker needs them (and checked then).
    fn read(r: &mut Reader<'_>, buf: &Arc<Vec<u8>>) -> Result<Carry, DecodeError> {
        let clock = r.i64()?;
        let n = r.count(MIN_CONN_BYTES)?;
        let mut conns = Vec::with_capacity(n);
        let mut last: Option<(i64, u8, u64, [u128; 2], u32)> = None;
        for _ in 0..n {
            let at = r.offset();
            let len = r.u32()? as usize;
            let end = r.offset() + len;
            let (key, start_ns, timer, rows) = read_prefix(r)?;
            if end < r.offset() || end > r.offset() + r.remaining() {
                return Err(DecodeError {
                    offset: at,
                    what: format!("a connection of {len} bytes that does not fit"),
                });
            }
            r.take(end - r.offset())?;
            let c = ConnRef {
                key,
                start_ns,
                timer,
                rows,
                buf: 0,
                at: at as u32,
                end: end as u32,
            };
            // Canonical order, and each key once: a tracker's table holds a connection once.
            let k = c.order_key();
            if last.is_some_and(|l| l >= k) {
                return Err(DecodeError {
                    offset: at,
                    what: "connections out of order or repeated".into(),
                });
            }
            last = Some(k);
            conns.push(c);
        }
        Ok(Carry {
            clock,
            bufs: vec![Arc::clone(buf)],
            conns,
        })
    }
}

/// The fields an encoded connection starts with: key, start, timer and row count.
fn read_prefix(r: &mut Reader<'_>) -> Result<(Key, i64, i64, u32), DecodeError> {
    let fam = r.u8()?;
    if fam > FAM_MIXED {
        r.take(0)?;
        return Err(r.error(format!("invalid address family {fam}")));
    }
    let (v4, v6) = if fam == FAM_V4 {
        (r.u64()?, [0; 2])
    } else {
        (0, [r.u128()?, r.u128()?])
    };
    let key = Key {
        fam,
        v4,
        v6,
        ports: r.u32()?,
    };
    Ok((key, r.i64()?, r.i64()?, r.u32()?))
}

/// Fewest bytes an encoded connection takes (key, times, two sides, flags), for bounding
/// counts read from a file.
const MIN_CONN_BYTES: usize = 64;

/// The names rows borrow (the contract's vocabulary).
pub(crate) const VOCABULARY: Vocabulary = Vocabulary {
    causes: &[
        "refused",
        "handshake_abort",
        "abort",
        "after_close",
        "unsolicited",
        "orphan",
        "invalid",
    ],
    evidence: &[
        "ack_change",
        "ack_syn",
        "burst",
        "data_after_rst",
        "diag_payload",
        "inexact_seq",
        "ipid_mismatch",
        "out_of_window",
        "payload",
        "seq_behind",
        "seq_change",
        "seq_zero",
        "storm",
        "ttl_mismatch",
        "ttl_varies",
        "win_nonzero",
    ],
    conn_states: &[
        "OTH", "REJ", "RSTO", "RSTOS0", "RSTR", "RSTRH", "S0", "S1", "S2", "S3", "SF", "SH", "SHR",
    ],
};

const EP_STATES: [EpState; 7] = [
    EpState::Inactive,
    EpState::SynSent,
    EpState::SynAckSent,
    EpState::Partial,
    EpState::Established,
    EpState::Closed,
    EpState::Reset,
];

fn ep_code(s: EpState) -> u8 {
    EP_STATES.iter().position(|x| *x == s).unwrap_or(0) as u8
}

fn ep_state(r: &mut Reader<'_>) -> Result<EpState, DecodeError> {
    let b = r.u8()?;
    EP_STATES
        .get(b as usize)
        .copied()
        .ok_or_else(|| r.error(format!("invalid endpoint state {b}")))
}

/// Conn flags that are not derived from the key when the connection is restored.
const C_CARRIED: u16 = C_ORIG_IS_LO | C_HANDSHAKE_DONE | C_FIN_SEEN | C_ATTEMPT | C_LONG_IDLE;
/// Side bits that need the extension.
const S_NEEDS_EXT: u16 = S_RST | S_PKTS_HI | S_TTL_WIDE;

/// Append the encoding of the live connection `c` with key `key` and its pending rows
/// (oldest first): a length, the prefix [`read_prefix`] reads, then the rest.
fn encode_conn(key: &Key, c: &Conn, rows: &[&Pending], w: &mut Writer) {
    let len_at = w.buf.len();
    w.u32(0);
    w.u8(key.fam);
    if key.fam == FAM_V4 {
        w.u64(key.v4);
    } else {
        w.u128(key.v6[0]);
        w.u128(key.v6[1]);
    }
    w.u32(key.ports);
    w.i64(c.start_ns);
    w.i64(c.timer);
    w.u32(rows.len() as u32);
    w.i64(c.last_ns);
    w.i64(c.close_ns);
    c.with_history(|h| w.bytes(h));
    w.u16(c.hist_seen);
    w.u16(c.flags & C_CARRIED);
    for s in &c.sides {
        w.u32(s.syn_seq);
        w.u32(s.next_seq);
        w.u32(s.data_end);
        w.u32(s.max_ack);
        w.u32(s.hist_last_syn);
        w.u32(s.hist_last_fin);
        w.u32(s.pkts);
        for n in s.ttl_cnts {
            w.u16(n);
        }
        for v in s.ttl_vals {
            w.u8(v);
        }
        w.u8(s.last_ttl);
        w.u16(s.ipid_last);
        w.u16(s.win);
        w.u8(ep_code(s.state));
        w.u8(ep_code(s.prev_state));
        w.u16(s.bits);
    }
    w.opt(c.ext.as_deref(), |w, e| {
        for s in &e.side {
            w.i64(s.last_ns);
            w.bool(s.last_was_rst);
            w.bool(s.last_rst_had_ack);
            w.bool(s.peer_data_since_rst);
            w.i64(s.last_rst_ns);
            w.u32(s.last_rst_seq);
            w.u32(s.last_rst_ack);
            w.u32(s.rsts);
            w.u32(s.hist_last_rst);
            w.u32(s.storm_run);
            w.i64(s.storm_run_start_ns);
            w.u32(s.rxmit);
            w.u32(s.rxmit_next);
            w.u32(s.zero_win);
            w.u32(s.zero_win_next);
            w.u32(s.pkts_hi);
            for v in s.ttl_vals {
                w.u8(v);
            }
            for n in s.ttl_cnts {
                w.u32(n);
            }
        }
    });
    for p in rows {
        w.u32(p.evidence.0);
        w.bool(p.sender_is_lo);
        w.bool(p.ttl_pending);
        w.u64(p.sender_pkts);
        w.u64(p.receiver_pkts);
        p.ev.encode(w);
    }
    let len = (w.buf.len() - len_at - 4) as u32;
    w.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
}

/// A connection decoded from its encoding: its state (without the key's slot fields) and its
/// pending rows, oldest first.
struct Decoded {
    conn: Conn,
    rows: Vec<Pending>,
}

fn decode_conn(bytes: &[u8], source: &mut Option<Arc<[u8]>>) -> Result<Decoded, DecodeError> {
    let mut r = Reader::new(bytes);
    let r = &mut r;
    let len = r.u32()? as usize;
    if len != r.remaining() {
        return Err(r.error("a connection whose length is not its own"));
    }
    let (_, start_ns, timer, n_rows) = read_prefix(r)?;
    let mut c = Conn {
        start_ns,
        timer,
        last_ns: r.i64()?,
        close_ns: r.i64()?,
        ..Conn::DEAD
    };
    let letters_at = r.offset();
    let letters = r.bytes()?;
    if letters
        .iter()
        .any(|&b| b == b'?' || HIST_CODES[b as usize] == 0)
    {
        return Err(DecodeError {
            offset: letters_at,
            what: "a history with letters Zeek does not write".into(),
        });
    }
    c.hist_seen = r.u16()?;
    c.flags = r.u16()? & C_CARRIED;
    for i in 0..2 {
        let s = &mut c.sides[i];
        s.syn_seq = r.u32()?;
        s.next_seq = r.u32()?;
        s.data_end = r.u32()?;
        s.max_ack = r.u32()?;
        s.hist_last_syn = r.u32()?;
        s.hist_last_fin = r.u32()?;
        s.pkts = r.u32()?;
        for n in &mut s.ttl_cnts {
            *n = r.u16()?;
        }
        for v in &mut s.ttl_vals {
            *v = r.u8()?;
        }
        s.last_ttl = r.u8()?;
        s.ipid_last = r.u16()?;
        s.win = r.u16()?;
        s.state = ep_state(r)?;
        s.prev_state = ep_state(r)?;
        s.bits = r.u16()?;
    }
    let ext = r.opt(|r| {
        let mut e = Ext::default();
        for s in &mut e.side {
            s.last_ns = r.i64()?;
            s.last_was_rst = r.bool()?;
            s.last_rst_had_ack = r.bool()?;
            s.peer_data_since_rst = r.bool()?;
            s.last_rst_ns = r.i64()?;
            s.last_rst_seq = r.u32()?;
            s.last_rst_ack = r.u32()?;
            s.rsts = r.u32()?;
            s.hist_last_rst = r.u32()?;
            s.storm_run = r.u32()?;
            s.storm_run_start_ns = r.i64()?;
            s.rxmit = r.u32()?;
            s.rxmit_next = r.u32()?;
            s.zero_win = r.u32()?;
            s.zero_win_next = r.u32()?;
            s.pkts_hi = r.u32()?;
            for v in &mut s.ttl_vals {
                *v = r.u8()?;
            }
            for n in &mut s.ttl_cnts {
                *n = r.u32()?;
            }
        }
        Ok(Box::new(e))
    })?;
    c.ext = ext;
    let n = n_rows as usize;
    if n.saturating_mul(22) > r.remaining() {
        return Err(r.error("more rows than the connection's bytes hold"));
    }
    let mut rows = Vec::with_capacity(n);
    for _ in 0..n {
        let evidence = Evidence(r.u32()?);
        let sender_is_lo = r.bool()?;
        let ttl_pending = r.bool()?;
        let sender_pkts = r.u64()?;
        let receiver_pkts = r.u64()?;
        let ev = ResetEvent::decode(r, &VOCABULARY, source.as_ref())?;
        *source = Some(Arc::clone(&ev.source));
        rows.push(Pending {
            ev,
            evidence,
            sender_is_lo,
            ttl_pending,
            next: NIL,
            sender_pkts,
            receiver_pkts,
        });
    }
    let needs_ext = c.sides.iter().any(|s| s.bits & S_NEEDS_EXT != 0) || !rows.is_empty();
    if needs_ext && c.ext.is_none() {
        return Err(r.error("a connection whose state needs its extension, which is missing"));
    }
    if r.remaining() != 0 {
        return Err(r.error("bytes after the connection's last row"));
    }
    for &l in letters {
        c.push_letter(l);
    }
    Ok(Decoded { conn: c, rows })
}

/// Where a lazily restored connection's encoding is (see [`Carry`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct LazyRef {
    buf: u32,
    at: u32,
    end: u32,
    /// Its pending rows.
    rows: u32,
}

impl Tracker {
    /// End of a piece of the stream that goes on later: connections whose deadline is not
    /// after `clock` (the stream's newest packet time, which a worker's own may be behind) end
    /// now; the rows of every connection that ended are returned with the counters, and the
    /// live connections with their pending rows become the carry. Connections carried in and
    /// never touched since are passed on as the bytes they came in.
    pub fn suspend(mut self, clock: i64) -> (Vec<ResetEvent>, FlowStats, Carry) {
        if clock > self.now {
            self.now = clock;
            self.expire(clock);
        }
        let mut bufs = std::mem::take(&mut self.lazy_bufs);
        let fresh = bufs.len() as u32;
        let mut w = Writer::default();
        let mut conns = Vec::with_capacity(self.live as usize);
        let mut rows: Vec<&Pending> = Vec::new();
        for slot in 0..self.conns.len() {
            let c = &self.conns[slot];
            if !c.live() {
                continue;
            }
            let key = c.key(&self.v6);
            let (buf, at, end, n_rows) = if c.flags & C_LAZY != 0 {
                let l = self.lazy[slot];
                (l.buf, l.at, l.end, l.rows)
            } else {
                rows.clear();
                let mut idx = c.rows();
                while idx != NIL {
                    let p = self.pending[idx as usize].as_ref().expect("pending row");
                    rows.push(p);
                    idx = p.next;
                }
                rows.reverse();
                let at = w.buf.len();
                encode_conn(&key, c, &rows, &mut w);
                (fresh, at as u32, w.buf.len() as u32, rows.len() as u32)
            };
            conns.push(ConnRef {
                key,
                start_ns: c.start_ns,
                timer: c.timer,
                rows: n_rows,
                buf,
                at,
                end,
            });
        }
        bufs.push(Arc::new(w.buf));
        conns.sort_by_key(ConnRef::order_key);
        let done = std::mem::take(&mut self.done);
        (
            done,
            self.stats,
            Carry {
                clock: self.now,
                bufs,
                conns,
            },
        )
    }

    /// A tracker that continues a stream from its carry. Each carried connection gets its
    /// slot, table entry and timer now; its state is decoded when it is first needed.
    pub fn resume(cfg: FlowConfig, carry: Carry) -> Tracker {
        let mut t = Tracker::new(cfg);
        t.now = carry.clock;
        // Timers due after the clock wait in the ring, as they would have in one run (not all
        // in the heap that holds only the entries due in the buckets already reached).
        t.timers.drained = t.timers.drained.max(carry.clock >> BUCKET_SHIFT);
        let n = carry.conns.len();
        t.conns.reserve_exact(n);
        t.lazy.reserve_exact(n);
        t.table.reserve(n, |_| 0);
        for c in &carry.conns {
            let key = &c.key;
            let hash = key.hash(&t.hasher);
            let k_addrs = if key.fam == FAM_V4 {
                key.v4
            } else {
                t.v6.push(key.v6);
                (t.v6.len() - 1) as u64
            };
            t.conns.push(Conn {
                start_ns: c.start_ns,
                timer: c.timer,
                k_addrs,
                k_ports: key.ports,
                flags: C_LIVE | C_LAZY | (key.fam as u16) << C_FAM_SHIFT,
                ..Conn::DEAD
            });
            t.lazy.push(LazyRef {
                buf: c.buf,
                at: c.at,
                end: c.end,
                rows: c.rows,
            });
            let slot = (t.conns.len() - 1) as u32;
            t.timers.push(c.timer, slot);
            let (conns, v6, hasher) = (&t.conns, &t.v6, &t.hasher);
            t.table
                .insert_unique(hash, slot, |&s| conns[s as usize].key(v6).hash(hasher));
            t.live += 1;
        }
        t.lazy_bufs = carry.bufs;
        t.stats.peak_connections = t.live;
        t
    }

    /// Decode a carried connection in its slot (its first packet, expiry, eviction or end
    /// needs its state). A connection whose bytes do not decode — only a carry file made to
    /// pass its checksum can hold one — is dropped and counted in
    /// [`FlowStats::carry_errors`]; returns whether the connection is still there.
    #[cold]
    #[inline(never)]
    pub(super) fn materialize(&mut self, slot: u32) -> bool {
        let l = self.lazy[slot as usize];
        let bytes = &self.lazy_bufs[l.buf as usize][l.at as usize..l.end as usize];
        let decoded = decode_conn(bytes, &mut self.lazy_source);
        let c = &mut self.conns[slot as usize];
        c.flags &= !C_LAZY;
        let Ok(Decoded { conn, rows }) = decoded else {
            self.stats.carry_errors += 1;
            self.finalize(slot);
            return false;
        };
        let (k_addrs, k_ports, slot_flags) = (c.k_addrs, c.k_ports, c.flags & !C_CARRIED);
        let carried = conn.flags & C_CARRIED;
        *c = conn;
        (c.k_addrs, c.k_ports) = (k_addrs, k_ports);
        c.flags = carried | slot_flags;
        let mut head = NIL;
        for mut p in rows {
            p.next = head;
            head = match self.pending_free.pop() {
                Some(i) => {
                    self.pending[i as usize] = Some(p);
                    i
                }
                None => {
                    self.pending.push(Some(p));
                    (self.pending.len() - 1) as u32
                }
            };
        }
        if head != NIL {
            self.conns[slot as usize].ext_mut().pending = head;
        }
        true
    }
}

/// One sensor stream's carry, as the carry file holds it: the sensor, the ordering key (first
/// packet time, capture file name) of the last file the stream read — a new file that sorts at
/// or before it is late — and the tracker's carry.
#[derive(Debug, Default)]
pub struct StreamCarry {
    /// The sensor's name and the capture file's, as bytes (names need not be UTF-8).
    pub sensor: Option<Vec<u8>>,
    pub last_file: Option<(i64, Vec<u8>)>,
    pub carry: Carry,
}

/// The carry file: magic, format version, payload length and CRC-32, then the streams.
pub const CARRY_MAGIC: &[u8; 8] = b"RSTCARRY";
pub const CARRY_VERSION: u32 = 1;
const CARRY_HEADER: usize = 8 + 4 + 8 + 4;

/// The bytes of a carry file holding `streams`.
pub fn write_carry_file(streams: &[StreamCarry]) -> Vec<u8> {
    let conn_bytes: usize = streams
        .iter()
        .flat_map(|s| s.carry.conns.iter().map(|c| (c.end - c.at) as usize))
        .sum();
    let mut w = Writer {
        buf: Vec::with_capacity(CARRY_HEADER + 64 * (streams.len() + 1) + conn_bytes),
    };
    // The header first, its length and checksum filled in at the end.
    w.buf.extend_from_slice(CARRY_MAGIC);
    w.u32(CARRY_VERSION);
    w.u64(0);
    w.u32(0);
    w.u32(streams.len() as u32);
    for s in streams {
        w.opt(s.sensor.as_deref(), Writer::bytes);
        w.opt(s.last_file.as_ref(), |w, (ts, name)| {
            w.i64(*ts);
            w.bytes(name);
        });
        s.carry.write(&mut w);
    }
    let mut out = w.buf;
    let len = (out.len() - CARRY_HEADER) as u64;
    let crc = crc32fast::hash(&out[CARRY_HEADER..]);
    out[12..20].copy_from_slice(&len.to_le_bytes());
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The payload checksum a carry file's header records (what a state file names it by), when
/// the bytes start with a carry header.
pub fn carry_file_checksum(bytes: &[u8]) -> Option<u32> {
    (bytes.len() >= CARRY_HEADER && bytes.starts_with(CARRY_MAGIC))
        .then(|| u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]))
}

/// Read a carry file: its magic, version, length and checksum are checked before anything
/// else is, the streams and the connections' keys and timers after; the rest of each
/// connection is checked when a tracker decodes it.
pub fn read_carry_file(bytes: &[u8]) -> Result<Vec<StreamCarry>, DecodeError> {
    read_carry_file_owned(bytes.to_vec())
}

/// [`read_carry_file`], keeping `bytes` as the buffer the connections are decoded from.
pub fn read_carry_file_owned(bytes: Vec<u8>) -> Result<Vec<StreamCarry>, DecodeError> {
    let shared = Arc::new(bytes);
    let bytes: &[u8] = &shared;
    let mut r = Reader::new(bytes);
    let err = |offset: usize, what: String| DecodeError { offset, what };
    if r.take(8.min(bytes.len()))? != CARRY_MAGIC {
        return Err(err(0, "not a rstscope carry file (bad magic)".into()));
    }
    let version = r.u32()?;
    if version != CARRY_VERSION {
        return Err(err(
            8,
            format!("carry format version {version}; this rstscope reads version {CARRY_VERSION}"),
        ));
    }
    let len = r.u64()?;
    let crc = r.u32()?;
    if len != r.remaining() as u64 {
        return Err(err(
            12,
            format!(
                "payload of {len} bytes announced, {} present (truncated or extended)",
                r.remaining()
            ),
        ));
    }
    let payload = &bytes[CARRY_HEADER..];
    if crc32fast::hash(payload) != crc {
        return Err(err(
            20,
            "checksum mismatch: the carry file is corrupt".into(),
        ));
    }
    if u32::try_from(bytes.len()).is_err() {
        return Err(err(12, "a carry file over 4 GiB".into()));
    }
    let n = r.count(1 + 1 + 8 + 4)?;
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        // Names are bytes, as `Writer::str` wrote them before they were.
        let sensor = r.opt(|r| r.bytes().map(<[u8]>::to_vec))?;
        let last_file = r.opt(|r| Ok((r.i64()?, r.bytes()?.to_vec())))?;
        let carry = Carry::read(&mut r, &shared)?;
        streams.push(StreamCarry {
            sensor,
            last_file,
            carry,
        });
    }
    if r.remaining() != 0 {
        return Err(r.error("bytes after the last stream"));
    }
    Ok(streams)
}
