//! The carry: a tracker's live connections, their pending rows and the sensor clock at the end
//! of a piece of a sensor stream, as plain data that can be saved and read back, so that the
//! next piece (the next run) continues the stream exactly as one run over both would have.
//!
//! Everything a later packet or RST of a connection depends on is in its connection state (the
//! classifier keeps nothing per sender outside it), so a carry is the live connections, in a
//! canonical order (by start time, then key) whatever the number of workers that held them.

use std::net::IpAddr;
use std::sync::Arc;

use rstscope_reset::codec::{DecodeError, Reader, Writer};
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

// Numbers that are mostly small are LEB128 varints; times are zigzag varints of their
// (wrapping) difference from the connection's start; sequence numbers, addresses and ports are
// fixed width. A burst carries a million connections with their rows between units.

fn put_var(w: &mut Writer, mut v: u64) {
    while v >= 0x80 {
        w.u8(v as u8 | 0x80);
        v >>= 7;
    }
    w.u8(v as u8);
}

fn get_var(r: &mut Reader<'_>) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = r.u8()?;
        if shift == 63 && b > 1 {
            break;
        }
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(r.error("a number over 64 bits"))
}

fn get_var32(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    let v = get_var(r)?;
    u32::try_from(v).map_err(|_| r.error(format!("{v} does not fit 32 bits")))
}

/// A time, as its difference from `base`.
fn put_time(w: &mut Writer, t: i64, base: i64) {
    let d = t.wrapping_sub(base);
    put_var(w, ((d << 1) ^ (d >> 63)) as u64);
}

fn get_time(r: &mut Reader<'_>, base: i64) -> Result<i64, DecodeError> {
    let z = get_var(r)?;
    Ok(base.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64)))
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
    let start = r.i64()?;
    let timer = get_time(r, start)?;
    Ok((key, start, timer, get_var32(r)?))
}

/// Fewest bytes an encoded connection takes (length, key, times, two sides, flags), for
/// bounding counts read from a file.
const MIN_CONN_BYTES: usize = 64;
/// Fewest bytes an encoded row takes (sequence numbers, flags, window, one byte for each other
/// field).
const MIN_ROW_BYTES: usize = 24;

fn cause_code(c: Cause) -> u8 {
    Cause::ALL.iter().position(|x| *x == c).unwrap_or(0) as u8
}

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

fn ep_state(r: &Reader<'_>, code: u8) -> Result<EpState, DecodeError> {
    EP_STATES
        .get(code as usize)
        .copied()
        .ok_or_else(|| r.error(format!("invalid endpoint state {code}")))
}

/// Conn flags that are not derived from the key when the connection is restored.
const C_CARRIED: u16 = C_ORIG_IS_LO | C_HANDSHAKE_DONE | C_FIN_SEEN | C_ATTEMPT | C_LONG_IDLE;
/// Side bits that need the extension, and its [`ExtMore`].
const S_NEEDS_EXT: u16 = S_RST | S_PKTS_HI | S_TTL_WIDE;
const S_NEEDS_MORE: u16 = S_PKTS_HI | S_TTL_WIDE;

/// A side's sequence numbers, in the order of the bit that says which are not zero.
fn side_seqs(s: &Side) -> [u32; 6] {
    [
        s.syn_seq,
        s.next_seq,
        s.data_end,
        s.max_ack,
        s.hist_last_syn,
        s.hist_last_fin,
    ]
}

/// Append the encoding of the live connection `c` with key `key` and its pending rows
/// (oldest first, from `pending`): a length, the prefix [`read_prefix`] reads, then the rest.
fn encode_conn(
    key: &Key,
    c: &Conn,
    rows: &[u32],
    pending: &[Option<Pending>],
    sources: &Sources,
    w: &mut Writer,
) {
    let start = c.start_ns;
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
    w.i64(start);
    put_time(w, c.timer, start);
    put_var(w, rows.len() as u64);
    put_time(w, c.last_ns, start);
    w.opt((c.close_ns != NO_TIME).then_some(c.close_ns), |w, t| {
        put_time(w, t, start)
    });
    c.with_history(|h| {
        put_var(w, h.len() as u64);
        w.buf.extend_from_slice(h);
    });
    w.u16(c.hist_seen);
    w.u16(c.flags & C_CARRIED);
    for s in &c.sides {
        let seqs = side_seqs(s);
        let present = (0..6)
            .filter(|&i| seqs[i] != 0)
            .fold(0u8, |m, i| m | 1 << i);
        w.u8(present);
        for v in seqs.into_iter().filter(|&v| v != 0) {
            w.u32(v);
        }
        put_var(w, s.pkts as u64);
        for n in s.ttl_cnts {
            put_var(w, n as u64);
        }
        for v in s.ttl_vals {
            w.u8(v);
        }
        w.u8(s.last_ttl);
        w.u16(s.ipid_last);
        w.u16(s.win);
        w.u8(ep_code(s.state) | ep_code(s.prev_state) << 4);
        w.u16(s.bits);
    }
    w.opt(c.ext.as_deref(), |w, e| {
        // A side that never sent a RST has no RST bookkeeping.
        for s in &e.side {
            w.opt((*s != RstSide::default()).then_some(s), |w, s| {
                put_time(w, s.last_ns, start);
                put_time(w, s.last_rst_ns, start);
                put_time(w, s.storm_run_start_ns, start);
                w.u32(s.last_rst_seq);
                w.u32(s.last_rst_ack);
                put_var(w, s.rsts as u64);
                w.u32(s.hist_last_rst);
                put_var(w, s.storm_run as u64);
                w.u8(s.last_was_rst as u8
                    | (s.last_rst_had_ack as u8) << 1
                    | (s.peer_data_since_rst as u8) << 2);
            });
        }
        // (Its history is the connection's, written above.)
        w.opt(e.more.as_deref(), |w, m| {
            for s in &m.side {
                for n in [
                    s.rxmit,
                    s.rxmit_next,
                    s.zero_win,
                    s.zero_win_next,
                    s.pkts_hi,
                ] {
                    put_var(w, n as u64);
                }
                for v in s.ttl_vals {
                    w.u8(v);
                }
                for n in s.ttl_cnts {
                    put_var(w, n as u64);
                }
            }
        });
    });
    for &idx in rows {
        let p = pending[idx as usize].as_ref().expect("pending row");
        // The bits first: they say which fields follow.
        w.u8(p.bits);
        put_time(w, p.ts_ns, start);
        put_var(w, p.frame);
        if p.has(P_IDLE) {
            put_var(w, p.idle_ns as u64);
        }
        put_var(w, p.sender_pkts);
        put_var(w, p.receiver_pkts);
        w.u32(p.seq);
        w.u32(p.ack);
        put_var(w, p.payload_len as u64);
        put_var(w, p.rst_count as u64);
        put_var(w, p.hist_len as u64);
        w.u16(p.flags);
        w.u16(p.win);
        if p.has(P_IP_ID) {
            w.u16(p.ip_id);
        }
        put_var(w, p.evidence as u64);
        w.u8(p.ttl);
        if p.has(P_SENDER_TTL) {
            w.u8(p.sender_ttl);
        }
        w.u8(cause_code(p.cause));
        let extra = p.extra.as_deref();
        for bytes in [
            extra.and_then(|x| x.payload.as_deref()),
            extra.and_then(|x| x.reason.as_deref()).map(str::as_bytes),
        ] {
            w.opt(bytes, |w, b| {
                put_var(w, b.len() as u64);
                w.buf.extend_from_slice(b);
            });
        }
        let name = sources.name(p.source);
        put_var(w, name.len() as u64);
        w.buf.extend_from_slice(name);
    }
    let len = (w.buf.len() - len_at - 4) as u32;
    w.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Bytes with a varint length.
fn get_bytes<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
    let n = get_var(r)?;
    r.take(usize::try_from(n).unwrap_or(usize::MAX))
}

/// A connection decoded from its encoding: its state (without the key's slot fields) and its
/// pending rows, oldest first.
struct Decoded {
    conn: Conn,
    rows: Vec<Pending>,
}

fn decode_conn(bytes: &[u8], sources: &mut Sources) -> Result<Decoded, DecodeError> {
    let mut r = Reader::new(bytes);
    let r = &mut r;
    let len = r.u32()? as usize;
    if len != r.remaining() {
        return Err(r.error("a connection whose length is not its own"));
    }
    let (_, start, timer, n_rows) = read_prefix(r)?;
    let mut c = Conn {
        start_ns: start,
        timer,
        last_ns: get_time(r, start)?,
        close_ns: r.opt(|r| get_time(r, start))?.unwrap_or(NO_TIME),
        ..Conn::DEAD
    };
    let letters_at = r.offset();
    let letters = get_bytes(r)?;
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
        let present = r.u8()?;
        if present >= 1 << 6 {
            return Err(r.error(format!("invalid sequence number mask {present:#x}")));
        }
        let mut seqs = [0u32; 6];
        for (k, v) in seqs.iter_mut().enumerate() {
            if present & 1 << k != 0 {
                *v = r.u32()?;
            }
        }
        let s = &mut c.sides[i];
        [
            s.syn_seq,
            s.next_seq,
            s.data_end,
            s.max_ack,
            s.hist_last_syn,
            s.hist_last_fin,
        ] = seqs;
        s.pkts = get_var32(r)?;
        for n in &mut s.ttl_cnts {
            let v = get_var(r)?;
            *n = u16::try_from(v).map_err(|_| r.error(format!("a TTL count of {v}")))?;
        }
        for v in &mut s.ttl_vals {
            *v = r.u8()?;
        }
        s.last_ttl = r.u8()?;
        s.ipid_last = r.u16()?;
        s.win = r.u16()?;
        let states = r.u8()?;
        s.state = ep_state(r, states & 0xf)?;
        s.prev_state = ep_state(r, states >> 4)?;
        s.bits = r.u16()?;
    }
    let ext = r.opt(|r| {
        let mut e = Ext::default();
        for side in &mut e.side {
            if let Some(s) = r.opt(|r| {
                let mut s = RstSide {
                    last_ns: get_time(r, start)?,
                    last_rst_ns: get_time(r, start)?,
                    storm_run_start_ns: get_time(r, start)?,
                    last_rst_seq: r.u32()?,
                    last_rst_ack: r.u32()?,
                    rsts: get_var32(r)?,
                    hist_last_rst: r.u32()?,
                    storm_run: get_var32(r)?,
                    ..RstSide::default()
                };
                let b = r.u8()?;
                if b >= 1 << 3 {
                    return Err(r.error(format!("invalid RST flags {b:#x}")));
                }
                s.last_was_rst = b & 1 != 0;
                s.last_rst_had_ack = b & 2 != 0;
                s.peer_data_since_rst = b & 4 != 0;
                Ok(s)
            })? {
                *side = s;
            }
        }
        e.more = r.opt(|r| {
            let mut m = ExtMore::default();
            for s in &mut m.side {
                for n in [
                    &mut s.rxmit,
                    &mut s.rxmit_next,
                    &mut s.zero_win,
                    &mut s.zero_win_next,
                    &mut s.pkts_hi,
                ] {
                    *n = get_var32(r)?;
                }
                for v in &mut s.ttl_vals {
                    *v = r.u8()?;
                }
                for n in &mut s.ttl_cnts {
                    *n = get_var32(r)?;
                }
            }
            Ok(Box::new(m))
        })?;
        Ok(Box::new(e))
    })?;
    c.ext = ext;
    let n = n_rows as usize;
    if n.saturating_mul(MIN_ROW_BYTES) > r.remaining() {
        return Err(r.error("more rows than the connection's bytes hold"));
    }
    let mut rows = Vec::with_capacity(n);
    for _ in 0..n {
        let at = r.offset();
        let bits = r.u8()?;
        if bits & !P_ALL != 0 {
            return Err(r.error(format!("invalid row bits {bits:#x}")));
        }
        let has = |bit: u8| bits & bit != 0;
        let ts_ns = get_time(r, start)?;
        let frame = get_var(r)?;
        let idle_ns = if has(P_IDLE) {
            let v = get_var(r)?;
            i64::try_from(v).map_err(|_| r.error(format!("an idle time of {v}")))?
        } else {
            0
        };
        let sender_pkts = get_var(r)?;
        let receiver_pkts = get_var(r)?;
        let seq = r.u32()?;
        let ack = r.u32()?;
        let payload_len = get_var32(r)?;
        let rst_count = get_var32(r)?;
        let hist_len = get_var32(r)?;
        if hist_len as usize > letters.len() {
            return Err(DecodeError {
                offset: at,
                what: "a row whose history is longer than its connection's".into(),
            });
        }
        let flags = r.u16()?;
        let win = r.u16()?;
        let ip_id = if has(P_IP_ID) { r.u16()? } else { 0 };
        let v = get_var(r)?;
        let evidence = u16::try_from(v).map_err(|_| r.error(format!("evidence bits {v:#x}")))?;
        let ttl = r.u8()?;
        let sender_ttl = if has(P_SENDER_TTL) { r.u8()? } else { 0 };
        let code = r.u8()?;
        let cause = *Cause::ALL
            .get(code as usize)
            .ok_or_else(|| r.error(format!("invalid cause {code}")))?;
        let payload = r.opt(|r| get_bytes(r).map(Box::<[u8]>::from))?;
        let reason_at = r.offset();
        let reason = r.opt(|r| get_bytes(r))?;
        let reason = match reason.map(std::str::from_utf8) {
            None => None,
            Some(Ok(s)) => Some(Box::<str>::from(s)),
            Some(Err(_)) => {
                return Err(DecodeError {
                    offset: reason_at,
                    what: "a reason that is not UTF-8".into(),
                })
            }
        };
        let extra =
            (payload.is_some() || reason.is_some()).then(|| Box::new(RowExtra { payload, reason }));
        let source = sources.index_of(get_bytes(r)?);
        rows.push(Pending {
            ts_ns,
            frame,
            idle_ns,
            sender_pkts,
            receiver_pkts,
            extra,
            source,
            seq,
            ack,
            payload_len,
            rst_count,
            hist_len,
            next: NIL,
            flags,
            win,
            ip_id,
            evidence,
            ttl,
            sender_ttl,
            cause,
            bits,
        });
    }
    let needs_ext = c.sides.iter().any(|s| s.bits & S_NEEDS_EXT != 0) || !rows.is_empty();
    if needs_ext && c.ext.is_none() {
        return Err(r.error("a connection whose state needs its extension, which is missing"));
    }
    let needs_more = c.sides.iter().any(|s| s.bits & S_NEEDS_MORE != 0);
    if needs_more && c.ext.as_ref().is_none_or(|e| e.more.is_none()) {
        return Err(r.error("a connection whose counters need their extension, which is missing"));
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

impl LazyRef {
    pub(super) fn buf(&self) -> u32 {
        self.buf
    }
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
        let mut rows: Vec<u32> = Vec::new();
        // Last slot first, each connection's extension and rows freed once written and the
        // slabs cut behind (the tracker ends here), so that the carry need not fit beside all
        // of the tracker.
        for slot in (0..self.conns.len()).rev() {
            if slot % CUT_EVERY == 0 {
                self.cut_from(slot + 1);
            }
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
                    rows.push(idx);
                    idx = self.pending[idx as usize]
                        .as_ref()
                        .expect("pending row")
                        .next;
                }
                rows.reverse();
                let at = w.buf.len();
                encode_conn(&key, c, &rows, &self.pending, &self.sources, &mut w);
                for &idx in &rows {
                    self.pending[idx as usize] = None;
                }
                (fresh, at as u32, w.buf.len() as u32, rows.len() as u32)
            };
            let c = &mut self.conns[slot];
            c.ext = None;
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
        let decoded = decode_conn(bytes, &mut self.sources);
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
/// 2: pending rows as the tracker holds them (numbers, the history as a length), not as
/// reset.log rows; the extension in two parts.
pub const CARRY_VERSION: u32 = 2;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bits: u8, extra: Option<RowExtra>, source: u32) -> Pending {
        Pending {
            ts_ns: i64::MIN,
            frame: u64::MAX,
            idle_ns: if bits & P_IDLE != 0 { i64::MAX } else { 0 },
            sender_pkts: u64::MAX,
            receiver_pkts: 0,
            extra: extra.map(Box::new),
            source,
            seq: u32::MAX,
            ack: 1,
            payload_len: u32::MAX,
            rst_count: u32::MAX,
            hist_len: 13,
            next: NIL,
            flags: 0xfff,
            win: 0,
            ip_id: if bits & P_IP_ID != 0 { 0xffff } else { 0 },
            evidence: 0xffff,
            ttl: 255,
            sender_ttl: if bits & P_SENDER_TTL != 0 { 7 } else { 0 },
            cause: Cause::Invalid,
            bits,
        }
    }

    /// Rows and the extension, with every optional part there or not and numbers at their
    /// limits (times at both ends of the range, around a connection that starts at 0), come
    /// back from the carry's encoding as they were.
    #[test]
    fn rows_and_extension_at_their_limits_round_trip() {
        let mut sources = Sources::default();
        let (a, b) = (sources.index_of(b"a.pcap"), sources.index_of(b"\xffb.pcap"));
        let pending = vec![
            Some(row(P_ALL, None, a)),
            Some(row(
                0,
                Some(RowExtra {
                    payload: Some(b"\0\xff".as_slice().into()),
                    reason: None,
                }),
                b,
            )),
            Some(row(
                P_DF_KNOWN | P_IDLE,
                Some(RowExtra {
                    payload: None,
                    reason: Some("4:ABORT".into()),
                }),
                a,
            )),
        ];
        let mut c = Conn {
            start_ns: 0,
            last_ns: i64::MAX,
            close_ns: i64::MIN,
            timer: i64::MAX,
            flags: C_LIVE,
            ..Conn::DEAD
        };
        for l in b"ShADadtTwWFfRr" {
            c.push_letter(*l);
        }
        c.sides[1].bits |= S_RST | S_PKTS_HI;
        c.sides[1].syn_seq = u32::MAX;
        c.sides[0].ttl_cnts = [u16::MAX, 0, 1];
        let e = c.ext_mut();
        e.side[1] = RstSide {
            last_ns: i64::MIN,
            last_rst_ns: i64::MAX,
            storm_run_start_ns: -1,
            rsts: u32::MAX,
            last_was_rst: true,
            peer_data_since_rst: true,
            ..RstSide::default()
        };
        c.more_mut().side[0].ttl_cnts = [u32::MAX; 3];
        let key = Key {
            v4: 1,
            ports: 2,
            fam: FAM_V4,
            v6: [0; 2],
        };
        let mut w = Writer::default();
        encode_conn(&key, &c, &[0, 1, 2], &pending, &sources, &mut w);
        let mut back_sources = Sources::default();
        let d = decode_conn(&w.buf, &mut back_sources).expect("decodes");
        let names = |s: &Sources, p: &Pending| s.name(p.source).to_vec();
        for (was, is) in pending.iter().flatten().zip(&d.rows) {
            assert_eq!(names(&sources, was), names(&back_sources, is));
            let is = Pending {
                source: was.source,
                ..is.clone()
            };
            assert_eq!(&is, was);
        }
        assert_eq!(d.rows.len(), 3);
        let dc = &d.conn;
        assert_eq!(
            (dc.start_ns, dc.last_ns, dc.close_ns, dc.timer),
            (c.start_ns, c.last_ns, c.close_ns, c.timer)
        );
        assert_eq!(dc.ext, c.ext);
        assert_eq!(dc.with_history(<[u8]>::to_vec), b"ShADadtTwWFfRr");
        // A row whose history would be longer than its connection's does not decode.
        let mut long = row(0, None, a);
        long.hist_len = 15;
        let mut w = Writer::default();
        encode_conn(&key, &c, &[0], &[Some(long)], &sources, &mut w);
        let e = decode_conn(&w.buf, &mut Sources::default())
            .err()
            .expect("an error");
        assert!(e.what.contains("history"), "{e}");
    }
}
