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
#[derive(Debug)]
pub struct Carry {
    /// The newest packet time seen (ns); `i64::MIN` when no packet was.
    pub clock: i64,
    pub conns: Vec<CarriedConn>,
}

/// One live connection with its pending rows.
#[derive(Debug)]
pub struct CarriedConn {
    key: Key,
    conn: Conn,
    /// Pending rows, oldest first.
    rows: Vec<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("ev", &self.ev)
            .field("evidence", &self.evidence)
            .finish_non_exhaustive()
    }
}

impl CarriedConn {
    /// The connection's endpoints, (lo, hi) in the key's canonical order (for assigning it to
    /// the worker that owns its packets).
    pub fn endpoints(&self) -> ((IpAddr, u16), (IpAddr, u16)) {
        self.key.endpoints()
    }

    /// RST rows waiting for the connection to end.
    pub fn pending_rows(&self) -> usize {
        self.rows.len()
    }

    fn order_key(&self) -> (i64, u8, u64, [u128; 2], u32) {
        let k = &self.key;
        (self.conn.start_ns, k.fam, k.v4, k.v6, k.ports)
    }
}

/// Put connections in the canonical order (start time, then key). The connections are large:
/// the sort runs over (key, index) and each is then moved once.
fn sort_canonical(conns: Vec<CarriedConn>) -> Vec<CarriedConn> {
    let mut keys: Vec<_> = conns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.order_key(), i))
        .collect();
    if keys.windows(2).all(|w| w[0] <= w[1]) {
        return conns;
    }
    keys.sort_unstable();
    let mut slots: Vec<Option<CarriedConn>> = conns.into_iter().map(Some).collect();
    keys.into_iter()
        .map(|(_, i)| slots[i].take().expect("each index once"))
        .collect()
}

impl Default for Carry {
    /// An empty carry: the start of a stream.
    fn default() -> Carry {
        Carry {
            clock: i64::MIN,
            conns: Vec::new(),
        }
    }
}

impl Carry {
    /// An empty carry at the start of a stream.
    pub fn new() -> Carry {
        Carry::default()
    }

    /// The carries of several workers of one stream as one, in canonical order.
    pub fn merge(parts: Vec<Carry>) -> Carry {
        let clock = parts.iter().map(|c| c.clock).max().unwrap_or(i64::MIN);
        let conns: Vec<CarriedConn> = parts.into_iter().flat_map(|c| c.conns).collect();
        Carry {
            clock,
            conns: sort_canonical(conns),
        }
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
                conns: Vec::new(),
            })
            .collect();
        let last = parts.len() - 1;
        for c in self.conns {
            let (lo, hi) = c.endpoints();
            parts[owner(lo, hi).min(last)].conns.push(c);
        }
        parts
    }

    pub fn pending_rows(&self) -> usize {
        self.conns.iter().map(|c| c.rows.len()).sum()
    }

    /// Append the encoding of this carry.
    pub fn encode(&self, w: &mut Writer) {
        w.i64(self.clock);
        w.u32(self.conns.len() as u32);
        for c in &self.conns {
            encode_conn(c, w);
        }
    }

    /// Read a carry written by [`Carry::encode`]. Every value is checked so that the tracker
    /// resumed from it cannot panic: states, history letters, and the extension a side's
    /// bits say it has.
    pub fn decode(r: &mut Reader<'_>) -> Result<Carry, DecodeError> {
        let clock = r.i64()?;
        let n = r.count(MIN_CONN_BYTES)?;
        let mut conns = Vec::with_capacity(n);
        let mut source: Option<Arc<str>> = None;
        for _ in 0..n {
            conns.push(decode_conn(r, &mut source)?);
        }
        Ok(Carry { clock, conns })
    }
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

fn encode_conn(cc: &CarriedConn, w: &mut Writer) {
    let (k, c) = (&cc.key, &cc.conn);
    w.u8(k.fam);
    if k.fam == FAM_V4 {
        w.u64(k.v4);
    } else {
        w.u128(k.v6[0]);
        w.u128(k.v6[1]);
    }
    w.u32(k.ports);
    w.i64(c.start_ns);
    w.i64(c.last_ns);
    w.i64(c.close_ns);
    w.i64(c.timer);
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
    w.u32(cc.rows.len() as u32);
    for p in &cc.rows {
        w.u32(p.evidence.0);
        w.bool(p.sender_is_lo);
        w.bool(p.ttl_pending);
        w.u64(p.sender_pkts);
        w.u64(p.receiver_pkts);
        p.ev.encode(w);
    }
}

fn decode_conn(
    r: &mut Reader<'_>,
    source: &mut Option<Arc<str>>,
) -> Result<CarriedConn, DecodeError> {
    let at = r.offset();
    let fam = r.u8()?;
    if fam > FAM_MIXED {
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
    let mut c = Conn {
        start_ns: r.i64()?,
        last_ns: r.i64()?,
        close_ns: r.i64()?,
        timer: r.i64()?,
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
    let n = r.count(22)?;
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
        return Err(DecodeError {
            offset: at,
            what: "a connection whose state needs its extension, which is missing".into(),
        });
    }
    for &l in letters {
        c.push_letter(l);
    }
    // The timer is never above the deadline (see Conn::timer).
    c.timer = c.timer.min(c.deadline());
    Ok(CarriedConn { key, conn: c, rows })
}

impl Tracker {
    /// End of a piece of the stream that goes on later: connections whose deadline is not
    /// after `clock` (the stream's newest packet time, which a worker's own may be behind) end
    /// now; the rows of every connection that ended are returned with the counters, and the
    /// live connections with their pending rows become the carry.
    pub fn suspend(mut self, clock: i64) -> (Vec<ResetEvent>, FlowStats, Carry) {
        if clock > self.now {
            self.now = clock;
            self.expire(clock);
        }
        let mut conns = Vec::with_capacity(self.live as usize);
        for slot in 0..self.conns.len() {
            if !self.conns[slot].live() {
                continue;
            }
            let key = self.conns[slot].key(&self.v6);
            let mut rows: Vec<Pending> = Vec::new();
            let mut idx = self.conns[slot].rows();
            while idx != NIL {
                let p = self.pending[idx as usize].take().expect("pending row");
                idx = p.next;
                rows.push(p);
            }
            rows.reverse();
            let live = &mut self.conns[slot];
            let mut conn = std::mem::replace(live, Conn::DEAD);
            conn.flags &= C_CARRIED;
            if let Some(e) = conn.ext.as_deref_mut() {
                e.pending = NIL;
            }
            conns.push(CarriedConn { key, conn, rows });
        }
        let done = std::mem::take(&mut self.done);
        (
            done,
            self.stats,
            Carry {
                clock: self.now,
                conns: sort_canonical(conns),
            },
        )
    }

    /// A tracker that continues a stream from its carry.
    pub fn resume(cfg: FlowConfig, carry: Carry) -> Tracker {
        let mut t = Tracker::new(cfg);
        t.now = carry.clock;
        // Timers due after the clock wait in the ring, as they would have in one run (not all
        // in the heap that holds only the entries due in the buckets already reached).
        t.timers.drained = t.timers.drained.max(carry.clock >> BUCKET_SHIFT);
        let n = carry.conns.len();
        t.conns.reserve_exact(n);
        t.table.reserve(n, |_| 0);
        t.pending
            .reserve_exact(carry.conns.iter().map(|c| c.rows.len()).sum());
        for cc in carry.conns {
            t.restore(cc);
        }
        t.stats.peak_connections = t.live;
        t
    }

    fn restore(&mut self, cc: CarriedConn) {
        let CarriedConn {
            key,
            mut conn,
            rows,
        } = cc;
        let hash = key.hash(&self.hasher);
        conn.k_ports = key.ports;
        conn.k_addrs = if key.fam == FAM_V4 {
            key.v4
        } else {
            self.v6.push(key.v6);
            (self.v6.len() - 1) as u64
        };
        conn.flags = (conn.flags & C_CARRIED) | C_LIVE | (key.fam as u16) << C_FAM_SHIFT;
        let mut head = NIL;
        for mut p in rows {
            p.next = head;
            self.pending.push(Some(p));
            head = (self.pending.len() - 1) as u32;
        }
        if head != NIL {
            conn.ext_mut().pending = head;
        }
        let timer = conn.timer;
        self.conns.push(conn);
        let slot = (self.conns.len() - 1) as u32;
        self.timers.push(timer, slot);
        let (conns, v6, hasher) = (&self.conns, &self.v6, &self.hasher);
        self.table
            .insert_unique(hash, slot, |&s| conns[s as usize].key(v6).hash(hasher));
        self.live += 1;
    }
}

/// One sensor stream's carry, as the carry file holds it: the sensor, the ordering key (first
/// packet time, capture file name) of the last file the stream read — a new file that sorts at
/// or before it is late — and the tracker's carry.
#[derive(Debug, Default)]
pub struct StreamCarry {
    pub sensor: Option<String>,
    pub last_file: Option<(i64, String)>,
    pub carry: Carry,
}

/// The carry file: magic, format version, payload length and CRC-32, then the streams.
pub const CARRY_MAGIC: &[u8; 8] = b"RSTCARRY";
pub const CARRY_VERSION: u32 = 1;
const CARRY_HEADER: usize = 8 + 4 + 8 + 4;

/// The bytes of a carry file holding `streams`.
pub fn write_carry_file(streams: &[StreamCarry]) -> Vec<u8> {
    // Sized from the contents (a connection takes ~250 bytes, a row ~150 plus its strings),
    // so that a large carry is not copied over and over as the buffer grows.
    let conns: usize = streams.iter().map(|s| s.carry.conns.len()).sum();
    let rows: usize = streams.iter().map(|s| s.carry.pending_rows()).sum();
    let mut w = Writer {
        buf: Vec::with_capacity(CARRY_HEADER + 64 + conns * 256 + rows * 256),
    };
    // The header first, its length and checksum filled in at the end.
    w.buf.extend_from_slice(CARRY_MAGIC);
    w.u32(CARRY_VERSION);
    w.u64(0);
    w.u32(0);
    w.u32(streams.len() as u32);
    for s in streams {
        w.opt(s.sensor.as_deref(), Writer::str);
        w.opt(s.last_file.as_ref(), |w, (ts, name)| {
            w.i64(*ts);
            w.str(name);
        });
        s.carry.encode(&mut w);
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
/// else is, and every value after.
pub fn read_carry_file(bytes: &[u8]) -> Result<Vec<StreamCarry>, DecodeError> {
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
    let n = r.count(1 + 1 + 8 + 4)?;
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let sensor = r.opt(|r| r.str().map(str::to_string))?;
        let last_file = r.opt(|r| Ok((r.i64()?, r.str()?.to_string())))?;
        let carry = Carry::decode(&mut r)?;
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
