//! The tracker as it was before the compact rewrite (commit 23b4991), kept verbatim for
//! differential tests: the current [`crate::Tracker`] must give the same rows, in the same
//! order, and the same counters, on any packet stream.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;

use hashbrown::HashMap;
use rstscope_decode::{community_id_v1, tcp_flags as tf, CommunityIdKey, Segment};
use rstscope_reset::{connection_uid, ResetEvent};
use smallvec::SmallVec;

use crate::classify::{injected_rule, Cause, Evidence};
use crate::zeek::{conn_state, likely_server_port, timers, EpState};
use crate::{FlowConfig, FlowStats};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
struct Endpoint {
    addr: IpAddr,
    port: u16,
}

/// Direction-free connection key: the two endpoints in order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct ConnKey {
    lo: Endpoint,
    hi: Endpoint,
}

impl ConnKey {
    /// The key and whether the segment's sender is the `lo` endpoint.
    fn of(seg: &Segment<'_>) -> (ConnKey, bool) {
        let s = Endpoint {
            addr: seg.src,
            port: seg.sport,
        };
        let d = Endpoint {
            addr: seg.dst,
            port: seg.dport,
        };
        if s <= d {
            (ConnKey { lo: s, hi: d }, true)
        } else {
            (ConnKey { lo: d, hi: s }, false)
        }
    }
}

const NO_TIME: i64 = i64::MAX;

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Per-endpoint state. Index 0 of a connection's sides is the originator.
#[derive(Debug, Default, Clone)]
struct Side {
    state: EpState,
    prev_state: EpState,
    /// The endpoint has sent a packet with SYN (without ACK) / SYN+ACK.
    sent_syn: bool,
    sent_synack: bool,
    seq_init: bool,
    start_seq: u32,
    /// Sequence of its latest SYN (for `ack_syn`).
    syn_seq: u32,
    /// Its latest packet was a SYN (so a RST from the peer now answers that SYN).
    last_was_syn: bool,
    /// Highest sequence number sent plus one (SYN/FIN count), over non-RST packets.
    next_seq: u32,
    has_next: bool,
    /// Highest end of payload sent (non-RST packets).
    data_end: u32,
    sent_data: bool,
    /// Highest acknowledgment sent, the latest acknowledgment sent, and its window.
    max_ack: u32,
    last_ack: u32,
    ack_init: bool,
    /// End of its latest segment (seq + len), for RFC 9293 answers to ACK-less segments.
    last_seq_end: u32,
    win: u16,
    /// Window scale from its SYN, 0xff when none.
    wscale: u8,
    hist_last_syn: u32,
    hist_last_fin: u32,
    hist_last_rst: u32,
    pkts: u64,
    rsts: u32,
    rxmit: u32,
    rxmit_next: u32,
    zero_win: u32,
    zero_win_next: u32,
    /// TTLs of its non-RST packets: up to three distinct values with counts.
    ttl_vals: [u8; 3],
    ttl_cnts: [u32; 3],
    last_ttl: u8,
    /// IPv4 IDs of its non-RST packets.
    ipid_last: u16,
    ipid_n: u32,
    ipid_sequential: bool,
    last_ns: i64,
    /// The previous packet from this side was a RST; its fields.
    last_was_rst: bool,
    last_rst_ns: i64,
    last_rst_seq: u32,
    last_rst_ack: u32,
    last_rst_had_ack: bool,
    /// The peer sent payload since this side's latest RST.
    peer_data_since_rst: bool,
    /// Current run of RSTs each < storm gap after this side's previous packet.
    storm_run: u32,
    storm_run_start_ns: i64,
}

impl Side {
    fn set_state(&mut self, s: EpState) {
        if self.state != s {
            self.prev_state = self.state;
            self.state = s;
        }
    }

    fn note_ttl(&mut self, ttl: u8) {
        self.last_ttl = ttl;
        for i in 0..3 {
            if self.ttl_cnts[i] > 0 && self.ttl_vals[i] == ttl {
                self.ttl_cnts[i] += 1;
                return;
            }
        }
        // A new value takes a free slot, or replaces the rarest one.
        let mut slot = 0;
        for i in 0..3 {
            if self.ttl_cnts[i] < self.ttl_cnts[slot] {
                slot = i;
            }
        }
        self.ttl_vals[slot] = ttl;
        self.ttl_cnts[slot] = 1;
    }

    /// Median TTL of its non-RST packets (over the up to three values kept).
    fn median_ttl(&self) -> Option<u8> {
        let mut v: SmallVec<[(u8, u32); 3]> = (0..3)
            .filter(|&i| self.ttl_cnts[i] > 0)
            .map(|i| (self.ttl_vals[i], self.ttl_cnts[i]))
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let total: u32 = v.iter().map(|x| x.1).sum();
        let half = total.div_ceil(2);
        let mut acc = 0;
        for (ttl, n) in v {
            acc += n;
            if acc >= half {
                return Some(ttl);
            }
        }
        None
    }
}

/// A RST row waiting for its connection to end.
struct Pending {
    ev: ResetEvent,
    evidence: Evidence,
    /// The sender is the key's `lo` endpoint.
    sender_is_lo: bool,
    sender_pkts: u64,
    receiver_pkts: u64,
    /// ttl_mismatch still to be decided at the end (no earlier packet of the sender).
    ttl_pending: bool,
}

struct Conn {
    key: ConnKey,
    orig_is_lo: bool,
    gen: u32,
    start_ns: i64,
    last_ns: i64,
    close_ns: i64,
    attempt_ns: i64,
    heap_deadline: i64,
    history: SmallVec<[u8; 16]>,
    hist_seen: u32,
    sides: [Side; 2],
    handshake_done: bool,
    /// An endpoint has left the handshake states (Zeek's longer inactivity timeout).
    long_idle: bool,
    fin_seen: bool,
    data_seen: bool,
    pkts: u64,
    pending: SmallVec<[u32; 2]>,
}

// History bits (Zeek's HIST_*), originator in the low 16 bits.
const H_SYN: u32 = 0x1;
const H_SYNACK: u32 = 0x2;
const H_FIN: u32 = 0x4;
const H_RST: u32 = 0x8;
const H_ACK: u32 = 0x10;
const H_DATA: u32 = 0x20;
const H_FIN_RST: u32 = 0x40;
const H_MULTI: u32 = 0x80;

impl Conn {
    fn add_letter(&mut self, is_orig: bool, code: u8) {
        self.history.push(if is_orig {
            code
        } else {
            code.to_ascii_lowercase()
        });
    }

    /// Zeek's CheckHistory: add the letter the first time this side shows the behaviour.
    /// Returns true when it had been seen before.
    fn check_history(&mut self, is_orig: bool, mask: u32, code: u8) -> bool {
        let mask = if is_orig { mask } else { mask << 16 };
        if self.hist_seen & mask == 0 {
            self.hist_seen |= mask;
            self.add_letter(is_orig, code);
            false
        } else {
            true
        }
    }

    /// Swap originator and responder, as Zeek's FlipRoles.
    fn flip(&mut self) {
        self.orig_is_lo = !self.orig_is_lo;
        self.sides.swap(0, 1);
        self.hist_seen = self.hist_seen.rotate_left(16);
        self.history.push(b'^');
    }

    fn attempt_pending(&self) -> bool {
        self.attempt_ns != NO_TIME
            && matches!(self.sides[0].state, EpState::SynSent | EpState::SynAckSent)
            && self.sides[1].state == EpState::Inactive
    }

    /// When Zeek would remove this connection if no packet arrives first.
    fn deadline(&self) -> i64 {
        let idle = if !self.long_idle {
            timers::HANDSHAKE_INACTIVITY
        } else {
            timers::INACTIVITY
        };
        let mut d = self.last_ns.saturating_add(idle);
        if self.close_ns != NO_TIME {
            d = d.min(self.close_ns.saturating_add(timers::CLOSE_DELAY));
        }
        if self.attempt_pending() {
            d = d.min(self.attempt_ns.saturating_add(timers::ATTEMPT_DELAY));
        }
        d
    }

    fn sizes_zero(&self) -> bool {
        !self.sides[0].sent_data && !self.sides[1].sent_data
    }

    /// Zeek's IsReuse: does this segment start a new connection on the same 5-tuple?
    fn is_reuse(&self, seg: &Segment<'_>) -> bool {
        let syn = seg.flags & tf::SYN != 0;
        let ack = seg.flags & tf::ACK != 0;
        if !syn {
            return false;
        }
        let (o, r) = (&self.sides[0], &self.sides[1]);
        let closed = |s: &Side| matches!(s.state, EpState::Closed | EpState::Reset);
        if !ack {
            if closed(o) || closed(r) {
                return true;
            }
            // Any SYN with another ISN than the originator's; with no originator SYN, any SYN
            // once the originator has sent something.
            if o.sent_syn {
                return seg.seq != o.syn_seq;
            }
            let reversal = o.state == EpState::SynAckSent
                && r.state == EpState::Inactive
                && o.ack_init
                && seg.seq == o.max_ack.wrapping_sub(1);
            !reversal && o.pkts != 0
        } else {
            // A SYN-ACK starts a new connection only after a close, with the orig idle.
            (closed(o) || closed(r)) && o.state == EpState::Inactive
        }
    }
}

/// Tracks connections and classifies RSTs. Feed it every TCP segment of a run in capture
/// order with [`Tracker::process`], then call [`Tracker::finish`].
pub struct Tracker {
    cfg: FlowConfig,
    map: HashMap<ConnKey, u32>,
    conns: Vec<Option<Conn>>,
    gens: Vec<u32>,
    free: Vec<u32>,
    heap: BinaryHeap<Reverse<(i64, u32, u32)>>,
    pending: Vec<Option<Pending>>,
    pending_free: Vec<u32>,
    done: Vec<ResetEvent>,
    now: i64,
    live: u64,
    stats: FlowStats,
}

impl Tracker {
    pub fn new(cfg: FlowConfig) -> Self {
        Tracker {
            cfg,
            map: HashMap::new(),
            conns: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            pending: Vec::new(),
            pending_free: Vec::new(),
            done: Vec::new(),
            now: i64::MIN,
            live: 0,
            stats: FlowStats::default(),
        }
    }

    pub fn stats(&self) -> FlowStats {
        self.stats
    }

    /// Connections tracked right now.
    pub fn live_connections(&self) -> u64 {
        self.live
    }

    /// Take the events of connections that have ended so far (in no particular order).
    pub fn take_done(&mut self) -> Vec<ResetEvent> {
        std::mem::take(&mut self.done)
    }

    /// End of input: finish every connection and return all remaining events.
    pub fn finish(mut self) -> (Vec<ResetEvent>, FlowStats) {
        for slot in 0..self.conns.len() {
            if self.conns[slot].is_some() {
                self.finalize(slot as u32);
            }
        }
        (self.done, self.stats)
    }

    /// Process one TCP segment; `source` names its capture file (for the row).
    pub fn process(&mut self, seg: &Segment<'_>, source: &[u8]) {
        self.stats.segments += 1;
        if seg.ts_ns > self.now {
            self.now = seg.ts_ns;
            self.expire(self.now);
        }
        let (key, sender_is_lo) = ConnKey::of(seg);
        let slot = match self.map.get(&key).copied() {
            Some(slot) => {
                let c = self.conns[slot as usize]
                    .as_ref()
                    .expect("mapped slot is live");
                if seg.ts_ns >= c.deadline() || c.is_reuse(seg) {
                    self.finalize(slot);
                    self.create(key, seg, sender_is_lo)
                } else {
                    slot
                }
            }
            None => self.create(key, seg, sender_is_lo),
        };
        self.update(slot, seg, sender_is_lo, source);
    }

    /// Remove connections whose deadline has passed.
    fn expire(&mut self, now: i64) {
        while let Some(&Reverse((d, slot, gen))) = self.heap.peek() {
            if d > now {
                break;
            }
            self.heap.pop();
            let Some(c) = self.conns[slot as usize].as_mut() else {
                continue;
            };
            if c.gen != gen || c.heap_deadline != d {
                continue; // a stale entry
            }
            let cur = c.deadline();
            if cur <= now {
                self.finalize(slot);
            } else {
                c.heap_deadline = cur;
                self.heap.push(Reverse((cur, slot, gen)));
            }
        }
    }

    /// Finish the connection closest to expiry (the table is full).
    fn evict_one(&mut self) {
        while let Some(Reverse((d, slot, gen))) = self.heap.pop() {
            let Some(c) = self.conns[slot as usize].as_ref() else {
                continue;
            };
            if c.gen != gen || c.heap_deadline != d {
                continue;
            }
            self.stats.evicted += 1;
            self.finalize(slot);
            return;
        }
    }

    fn create(&mut self, key: ConnKey, seg: &Segment<'_>, sender_is_lo: bool) -> u32 {
        if self.live as usize >= self.cfg.max_connections.max(1) {
            self.evict_one();
        }
        // Who is originator (Zeek's TCPAnalyzer::WantConnection): the first packet's sender,
        // unless it is not a pure SYN and comes from a likely server port.
        let syn = seg.flags & tf::SYN != 0;
        let ack = seg.flags & tf::ACK != 0;
        let from_server_port = likely_server_port(seg.sport);
        let flip = (!syn || ack)
            && from_server_port
            && (!likely_server_port(seg.dport) || (!(syn && ack) && seg.sport < seg.dport));
        let orig_is_lo = sender_is_lo != flip;
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.conns.push(None);
                self.gens.push(0);
                (self.conns.len() - 1) as u32
            }
        };
        let gen = self.gens[slot as usize].wrapping_add(1);
        self.gens[slot as usize] = gen;
        let mut c = Conn {
            key,
            orig_is_lo,
            gen,
            start_ns: seg.ts_ns,
            last_ns: seg.ts_ns,
            close_ns: NO_TIME,
            attempt_ns: NO_TIME,
            heap_deadline: NO_TIME,
            history: SmallVec::new(),
            hist_seen: 0,
            sides: [Side::default(), Side::default()],
            handshake_done: false,
            long_idle: false,
            fin_seen: false,
            data_seen: false,
            pkts: 0,
            pending: SmallVec::new(),
        };
        for s in &mut c.sides {
            s.wscale = 0xff;
        }
        if flip {
            c.history.push(b'^');
        }
        let d = c.deadline();
        c.heap_deadline = d;
        self.heap.push(Reverse((d, slot, gen)));
        self.conns[slot as usize] = Some(c);
        self.map.insert(key, slot);
        self.live += 1;
        self.stats.connections += 1;
        self.stats.peak_connections = self.stats.peak_connections.max(self.live);
        slot
    }

    fn update(&mut self, slot: u32, seg: &Segment<'_>, sender_is_lo: bool, source: &[u8]) {
        let cfg = self.cfg;
        let mut new_pending: Option<Pending> = None;
        let c = self.conns[slot as usize].as_mut().expect("live slot");
        let flags = seg.flags;
        let syn = flags & tf::SYN != 0;
        let fin = flags & tf::FIN != 0;
        let rst = flags & tf::RST != 0;
        let ack = flags & tf::ACK != 0;
        // Sequence space used: payload, SYN and FIN; a RST's payload does not count.
        let len = if rst { 0 } else { seg.payload_len };

        // Zeek's second-packet flip: a SYN-ACK was the only packet, and now a pure ACK or data.
        if !syn && !fin && !rst && c.history.as_slice() == b"H" {
            c.orig_is_lo = !c.orig_is_lo;
            c.sides.swap(0, 1);
            c.hist_seen = c.hist_seen.rotate_left(16);
            c.history.clear();
            c.history.extend_from_slice(b"^h");
        }
        let mut is_orig = sender_is_lo == c.orig_is_lo;
        let (si, pi) = if is_orig { (0, 1) } else { (1, 0) };

        if !c.sides[si].seq_init {
            let s = &mut c.sides[si];
            s.seq_init = true;
            s.start_seq = seg.seq;
        }
        let rel_seq = seg.seq.wrapping_sub(c.sides[si].start_seq);

        // History letters (Zeek's UpdateHistory).
        let bits = syn as u8 + fin as u8 + rst as u8;
        if bits > 1 {
            if fin && rst {
                c.check_history(is_orig, H_FIN_RST, b'I');
            } else {
                c.check_history(is_orig, H_MULTI, b'Q');
            }
        } else if bits == 1 {
            if syn {
                let (mask, code) = if ack { (H_SYNACK, b'H') } else { (H_SYN, b'S') };
                if c.check_history(is_orig, mask, code) && rel_seq != c.sides[si].hist_last_syn {
                    c.add_letter(is_orig, code);
                }
                c.sides[si].hist_last_syn = rel_seq;
            }
            if fin {
                let end = rel_seq.wrapping_add(seg.payload_len);
                if c.check_history(is_orig, H_FIN, b'F') && end != c.sides[si].hist_last_fin {
                    c.add_letter(is_orig, b'F');
                }
                c.sides[si].hist_last_fin = end;
            }
            if rst {
                if c.check_history(is_orig, H_RST, b'R') && rel_seq != c.sides[si].hist_last_rst {
                    c.add_letter(is_orig, b'R');
                }
                c.sides[si].hist_last_rst = rel_seq;
            }
        } else if seg.payload_len > 0 {
            c.check_history(is_orig, H_DATA, b'D');
        } else if ack {
            c.check_history(is_orig, H_ACK, b'A');
        }
        // Retransmitted payload (T) and zero windows (W): logarithmic letters.
        if !rst && !syn && seg.payload_len > 0 {
            let s = &c.sides[si];
            if s.sent_data && seq_lt(seg.seq, s.data_end) {
                let s = &mut c.sides[si];
                s.rxmit += 1;
                if s.rxmit >= s.rxmit_next.max(1) {
                    s.rxmit_next = s.rxmit_next.max(1) * 10;
                    c.add_letter(is_orig, b'T');
                }
            }
        }
        if !rst
            && seg.window == 0
            && c.sides[si].state != EpState::Reset
            && c.sides[pi].state != EpState::Closed
        {
            let s = &mut c.sides[si];
            s.zero_win += 1;
            if s.zero_win >= s.zero_win_next.max(1) {
                s.zero_win_next = s.zero_win_next.max(1) * 10;
                c.add_letter(is_orig, b'W');
            }
        }

        // A RST: its row, from the state before this packet.
        if rst {
            new_pending = Some(Self::rst_event(&cfg, c, seg, si, pi, sender_is_lo, source));
        }

        // Zeek's endpoint state machine.
        let ep = c.sides[si].state;
        let peer = c.sides[pi].state;
        match ep {
            EpState::Inactive => {
                if syn {
                    if is_orig {
                        c.sides[si].set_state(if ack {
                            EpState::SynAckSent
                        } else {
                            EpState::SynSent
                        });
                        if c.attempt_ns == NO_TIME {
                            c.attempt_ns = seg.ts_ns;
                        }
                    } else {
                        if !ack && peer == EpState::SynAckSent {
                            // SYN/SYN-ACK reversal: the SYN-ACK came first.
                            c.flip();
                            is_orig = !is_orig;
                            // after the flip the SYN sender is the originator (index 0)
                            c.sides[1].set_state(EpState::Established);
                            c.sides[0].set_state(EpState::Established);
                        } else {
                            if peer == EpState::SynSent {
                                c.sides[pi].set_state(EpState::Established);
                            }
                            c.sides[si].set_state(EpState::Established);
                        }
                    }
                }
                let (si, pi) = if is_orig { (0, 1) } else { (1, 0) };
                if fin {
                    c.sides[si].set_state(EpState::Closed);
                }
                if rst {
                    c.sides[si].set_state(EpState::Reset);
                }
                if c.sides[si].state == EpState::Inactive {
                    // Some stacks ACK a SYN before answering it: not a partial connection.
                    let eccentric =
                        !is_orig && seg.payload_len == 0 && c.sides[pi].state == EpState::SynSent;
                    if !eccentric {
                        let missed_syn = ack && c.sides[pi].state == EpState::Established;
                        c.sides[si].set_state(if missed_syn {
                            EpState::Established
                        } else {
                            EpState::Partial
                        });
                    }
                }
            }
            EpState::SynSent | EpState::SynAckSent => {
                if fin {
                    c.sides[si].set_state(EpState::Closed);
                }
                if rst {
                    c.sides[si].set_state(EpState::Reset);
                }
            }
            EpState::Established | EpState::Partial => {
                if syn && !ack && ep == EpState::Partial && peer == EpState::Inactive {
                    c.sides[si].set_state(EpState::SynSent);
                }
                if fin && !rst {
                    c.sides[si].set_state(EpState::Closed);
                }
                if rst {
                    c.sides[si].set_state(EpState::Reset);
                }
            }
            EpState::Closed => {
                if rst && peer != EpState::Closed {
                    c.sides[si].set_state(EpState::Reset);
                }
            }
            EpState::Reset => {}
        }
        let (si, pi) = if is_orig { (0, 1) } else { (1, 0) };
        if !c.sides[0].state.in_handshake() || !c.sides[1].state.in_handshake() {
            c.long_idle = true;
        }
        // "FIN followed by RST was really normal termination."
        if fin
            && !rst
            && matches!(ep, EpState::Established | EpState::Partial)
            && c.sides[pi].state == EpState::Reset
            && c.sides[pi].prev_state == EpState::Closed
        {
            c.sides[pi].set_state(EpState::Closed);
        }

        // A complete close starts Zeek's close delay: a RST, a FIN after the peer closed, or a
        // FIN when the peer was never seen.
        if c.close_ns == NO_TIME {
            let peer_side = &c.sides[pi];
            let complete = rst
                || (fin
                    && (matches!(peer_side.state, EpState::Closed | EpState::Reset)
                        || peer_side.pkts == 0));
            if complete {
                c.close_ns = seg.ts_ns;
            }
        }

        // Handshake and data bookkeeping.
        if syn && ack && !rst {
            c.sides[si].sent_synack = true;
        }
        if syn && !ack && !rst {
            c.sides[si].sent_syn = true;
            c.sides[si].syn_seq = seg.seq;
            if let Some(ws) = seg.options.window_scale {
                c.sides[si].wscale = ws.min(14);
            }
        }
        if syn && ack {
            if let Some(ws) = seg.options.window_scale {
                c.sides[si].wscale = ws.min(14);
            }
        }
        if fin {
            c.fin_seen = true;
        }
        if !rst && seg.payload_len > 0 {
            c.data_seen = true;
            c.handshake_done |= !syn;
            c.sides[pi].peer_data_since_rst = true;
        }
        if !syn && !rst && ack && (c.sides[pi].sent_synack || c.sides[si].sent_synack) {
            c.handshake_done = true;
        }

        // Sequence, acknowledgment and window state, TTL and IP ID statistics.
        {
            let s = &mut c.sides[si];
            let end = seg
                .seq
                .wrapping_add(len)
                .wrapping_add(syn as u32)
                .wrapping_add(fin as u32);
            s.last_seq_end = end;
            if !rst {
                if !s.has_next || seq_gt(end, s.next_seq) {
                    s.next_seq = end;
                    s.has_next = true;
                }
                if seg.payload_len > 0 {
                    let dend = seg.seq.wrapping_add(seg.payload_len);
                    if !s.sent_data || seq_gt(dend, s.data_end) {
                        s.data_end = dend;
                    }
                    s.sent_data = true;
                }
                if ack {
                    if !s.ack_init || seq_gt(seg.ack, s.max_ack) {
                        s.max_ack = seg.ack;
                    }
                    s.last_ack = seg.ack;
                    s.ack_init = true;
                }
                s.win = seg.window;
                s.note_ttl(seg.ttl);
                if let Some(id) = seg.ip_id {
                    if s.ipid_n > 0 {
                        let step = id.wrapping_sub(s.ipid_last);
                        s.ipid_sequential = step >= 1 && step <= cfg.ipid_step;
                    }
                    s.ipid_last = id;
                    s.ipid_n += 1;
                }
                s.last_was_rst = false;
            } else {
                s.last_was_rst = true;
                s.last_rst_ns = seg.ts_ns;
                s.last_rst_seq = seg.seq;
                s.last_rst_ack = seg.ack;
                s.last_rst_had_ack = ack;
                s.peer_data_since_rst = false;
            }
            s.last_was_syn = syn && !ack && !rst;
            s.last_ns = seg.ts_ns;
            s.pkts += 1;
        }
        c.pkts += 1;
        c.last_ns = c.last_ns.max(seg.ts_ns);

        // Data (or a SYN) from a side after its own RST: the RST was not the real endpoint's.
        let data_after = !rst && (seg.payload_len > 0 || syn) && c.sides[si].rsts > 0;
        let d = c.deadline();
        if d < c.heap_deadline {
            c.heap_deadline = d;
            self.heap.push(Reverse((d, slot, c.gen)));
        }
        if data_after {
            let sender_lo = sender_is_lo;
            let pend: SmallVec<[u32; 2]> = c.pending.clone();
            for idx in pend {
                if let Some(p) = self.pending[idx as usize].as_mut() {
                    if p.sender_is_lo == sender_lo
                        && p.ev.ts_ns <= seg.ts_ns
                        && (syn || !seq_lt(seg.seq, p.ev.seq))
                    {
                        p.evidence.add(Evidence::DATA_AFTER_RST);
                    }
                }
            }
        }
        if let Some(p) = new_pending {
            let idx = match self.pending_free.pop() {
                Some(i) => {
                    self.pending[i as usize] = Some(p);
                    i
                }
                None => {
                    self.pending.push(Some(p));
                    (self.pending.len() - 1) as u32
                }
            };
            let c = self.conns[slot as usize].as_mut().expect("live slot");
            c.pending.push(idx);
            self.mark_groups(slot, sender_is_lo, seg.ts_ns);
        }
    }

    /// Evidence that spans several RSTs of one sender: burst, ttl_varies, storm. Marks the
    /// newest RST and, retroactively, the earlier ones of the same group.
    fn mark_groups(&mut self, slot: u32, sender_is_lo: bool, now: i64) {
        let cfg = self.cfg;
        let c = self.conns[slot as usize].as_ref().expect("live slot");
        let is_orig = sender_is_lo == c.orig_is_lo;
        let side = &c.sides[if is_orig { 0 } else { 1 }];
        let storm_start = (side.storm_run >= cfg.storm_count).then_some(side.storm_run_start_ns);
        // Walk this sender's pending RSTs, newest first.
        let mut burst: SmallVec<[u32; 8]> = SmallVec::new();
        let mut ttls: SmallVec<[u8; 8]> = SmallVec::new();
        for &idx in c.pending.iter().rev() {
            let Some(p) = self.pending[idx as usize].as_ref() else {
                continue;
            };
            if p.sender_is_lo != sender_is_lo {
                continue;
            }
            if now - p.ev.ts_ns > cfg.burst_window_ns {
                break;
            }
            burst.push(idx);
            ttls.push(p.ev.ttl);
            if burst.len() > 64 {
                break;
            }
        }
        let is_burst = burst.len() as u32 >= cfg.burst_count;
        let varies = is_burst && ttls.iter().any(|&t| t != ttls[0]);
        if is_burst {
            for idx in &burst {
                if let Some(p) = self.pending[*idx as usize].as_mut() {
                    p.evidence.add(Evidence::BURST);
                    if varies {
                        p.evidence.add(Evidence::TTL_VARIES);
                    }
                }
            }
        }
        if let Some(start) = storm_start {
            let c = self.conns[slot as usize].as_ref().expect("live slot");
            let newest_only = c.sides[if is_orig { 0 } else { 1 }].storm_run > cfg.storm_count;
            for &idx in c.pending.iter().rev() {
                let Some(p) = self.pending[idx as usize].as_mut() else {
                    continue;
                };
                if p.sender_is_lo != sender_is_lo {
                    continue;
                }
                if p.ev.ts_ns < start {
                    break;
                }
                p.evidence.add(Evidence::STORM);
                if newest_only {
                    break;
                }
            }
        }
    }

    /// The row of a RST from side `si`, with its cause and the evidence one packet shows.
    fn rst_event(
        cfg: &FlowConfig,
        c: &mut Conn,
        seg: &Segment<'_>,
        si: usize,
        pi: usize,
        sender_is_lo: bool,
        source: &[u8],
    ) -> Pending {
        let mut ev = ResetEvent::from_segment(seg, source, &cfg.events);
        let (s, p) = (&c.sides[si], &c.sides[pi]);
        let syn = seg.flags & tf::SYN != 0;
        let fin = seg.flags & tf::FIN != 0;
        let ack = seg.flags & tf::ACK != 0;

        let cause = if syn || fin {
            Cause::Invalid
        } else if c.pkts == 0 {
            Cause::Orphan
        } else if c.fin_seen {
            Cause::AfterClose
        } else if p.sent_syn && !s.sent_syn && !s.sent_synack && !s.sent_data && !c.handshake_done {
            Cause::Refused
        } else if (c.sides[0].sent_syn || c.sides[0].sent_synack || c.sides[1].sent_synack)
            && !c.handshake_done
            && !c.data_seen
        {
            Cause::HandshakeAbort
        } else if s.pkts == 0
            && !p.sent_syn
            && !p.sent_synack
            && ((!ack && p.ack_init && seg.seq == p.last_ack)
                || (ack && seg.seq == 0 && seg.ack == p.last_seq_end))
        {
            Cause::Unsolicited
        } else {
            Cause::Abort
        };

        let mut e = Evidence::default();
        if seg.seq == 0 {
            e.add(Evidence::SEQ_ZERO);
        }
        if ack && p.last_was_syn && seg.ack == p.syn_seq.wrapping_add(1) {
            e.add(Evidence::ACK_SYN);
        }
        if seg.window != 0 {
            e.add(Evidence::WIN_NONZERO);
        }
        if seg.payload_len > 0 {
            e.add(Evidence::PAYLOAD);
        }
        if ev.reason.is_some() {
            e.add(Evidence::DIAG_PAYLOAD);
        }
        let sender_ttl = s.median_ttl();
        let mut ttl_pending = false;
        match sender_ttl {
            Some(m) => {
                if ttl_differs(seg.ttl, m, cfg.ttl_threshold)
                    && ttl_differs(seg.ttl, s.last_ttl, cfg.ttl_threshold)
                {
                    e.add(Evidence::TTL_MISMATCH);
                }
            }
            None => ttl_pending = true,
        }
        if let Some(id) = seg.ip_id {
            if id != 0 && s.ipid_n >= 2 && s.ipid_sequential {
                let step = id.wrapping_sub(s.ipid_last);
                if step == 0 || step > cfg.ipid_window {
                    e.add(Evidence::IPID_MISMATCH);
                }
            }
        }
        // RFC 5961 view from the receiver: the next sequence number it expects (its latest
        // acknowledgment, or what the sender is seen to have sent) and its window.
        if p.ack_init {
            let rcv_nxt = p.max_ack;
            let exact = seg.seq == rcv_nxt || (s.has_next && seg.seq == s.next_seq);
            let scale = if s.wscale != 0xff && p.wscale != 0xff {
                p.wscale
            } else {
                0
            };
            let win = (p.win as u64) << scale;
            let d = seg.seq.wrapping_sub(rcv_nxt) as u64;
            if !exact {
                if d < win.max(1) {
                    e.add(Evidence::INEXACT_SEQ);
                } else {
                    e.add(Evidence::OUT_OF_WINDOW);
                }
            }
        }
        // Weaver's races, against the sender's previous RST (back to back) and its data.
        if s.last_was_rst && seg.ts_ns - s.last_rst_ns <= cfg.change_window_ns {
            let past_sent = !s.has_next || seq_gt(seg.seq, s.next_seq);
            let past_acked = !p.ack_init || seq_gt(seg.seq, p.max_ack.wrapping_add(2));
            if seq_gt(seg.seq, s.last_rst_seq.wrapping_add(2)) && past_sent && past_acked {
                e.add(Evidence::SEQ_CHANGE);
            }
            if ack && s.last_rst_had_ack && seg.ack != s.last_rst_ack && !s.peer_data_since_rst {
                e.add(Evidence::ACK_CHANGE);
            }
        }
        let answers_peer =
            s.rsts > 0 && p.ack_init && seg.seq == p.max_ack && !e.has(Evidence::TTL_MISMATCH);
        if s.sent_data && seq_lt(seg.seq, s.data_end) && !answers_peer {
            e.add(Evidence::SEQ_BEHIND);
        }

        // Counters, and the storm run (each RST < gap after the sender's previous packet).
        let sender_pkts = s.pkts;
        let receiver_pkts = p.pkts;
        let duration = seg.ts_ns - c.start_ns;
        let idle = (c.pkts > 0).then(|| (seg.ts_ns - c.last_ns).max(0));
        let s = &mut c.sides[si];
        s.rsts += 1;
        if s.pkts > 0 && seg.ts_ns - s.last_ns < cfg.storm_gap_ns && s.storm_run > 0 {
            s.storm_run += 1;
        } else {
            s.storm_run = 1;
            s.storm_run_start_ns = seg.ts_ns;
        }

        ev.cause = Some(cause.name().into());
        ev.sender_ttl = sender_ttl;
        ev.rst_count = Some(s.rsts);
        ev.history = Some(String::from_utf8_lossy(&c.history).into_owned());
        ev.duration_ns = Some(duration.max(0));
        ev.idle_ns = idle;
        Pending {
            ev,
            evidence: e,
            sender_is_lo,
            sender_pkts,
            receiver_pkts,
            ttl_pending,
        }
    }

    /// The connection ended: complete its rows and free it.
    fn finalize(&mut self, slot: u32) {
        let Some(c) = self.conns[slot as usize].take() else {
            return;
        };
        self.map.remove(&c.key);
        self.free.push(slot);
        self.live -= 1;
        let state = conn_state(
            c.sides[0].state,
            c.sides[1].state,
            c.sizes_zero(),
            &c.history,
        );
        let (orig, resp) = if c.orig_is_lo {
            (c.key.lo, c.key.hi)
        } else {
            (c.key.hi, c.key.lo)
        };
        let mut uid = None;
        let mut cid = None;
        for idx in c.pending.iter() {
            let Some(mut p) = self.pending[*idx as usize].take() else {
                continue;
            };
            self.pending_free.push(*idx);
            let uid = uid
                .get_or_insert_with(|| {
                    connection_uid(
                        (orig.addr, orig.port),
                        (resp.addr, resp.port),
                        c.start_ns.div_euclid(1000),
                    )
                })
                .clone();
            let cid = cid
                .get_or_insert_with(|| {
                    community_id_v1(
                        &CommunityIdKey {
                            proto: 6,
                            src: orig.addr,
                            dst: resp.addr,
                            sport: orig.port,
                            dport: resp.port,
                        },
                        self.cfg.events.community_id_seed,
                    )
                })
                .clone();
            let is_orig = p.sender_is_lo == c.orig_is_lo;
            let sender = &c.sides[if is_orig { 0 } else { 1 }];
            if p.ttl_pending {
                // No packet of the sender before the RST: compare with its later packets.
                if let Some(m) = sender.median_ttl() {
                    p.ev.sender_ttl = Some(m);
                    if ttl_differs(p.ev.ttl, m, self.cfg.ttl_threshold) {
                        p.evidence.add(Evidence::TTL_MISMATCH);
                    }
                }
            }
            let ev = &mut p.ev;
            ev.uid = uid;
            ev.community_id = cid;
            ev.orig_h = orig.addr;
            ev.orig_p = orig.port;
            ev.resp_h = resp.addr;
            ev.resp_p = resp.port;
            ev.is_orig = is_orig;
            let (op, rp) = if is_orig {
                (p.sender_pkts, p.receiver_pkts)
            } else {
                (p.receiver_pkts, p.sender_pkts)
            };
            ev.orig_pkts = Some(op);
            ev.resp_pkts = Some(rp);
            ev.conn_state = Some(state.into());
            ev.injected = Some(injected_rule(p.evidence));
            ev.evidence = Some(p.evidence.names());
            self.done.push(p.ev);
        }
    }
}

fn ttl_differs(a: u8, b: u8, threshold: u8) -> bool {
    a.abs_diff(b) > threshold
}
