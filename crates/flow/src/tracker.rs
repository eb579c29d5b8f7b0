//! The connection table and the per-packet state machine.
//!
//! The table is sized by concurrent connections, so the layout is compact:
//!
//! - a connection is one slot of a slab (`Vec<Conn>`, dead slots chained into a free list);
//!   the hash table stores only the slot number, hashing and comparing through the slot's key;
//!   IPv6 addresses live in a side slab, so an IPv4 key takes 12 bytes;
//! - state that most connections never need — RST bookkeeping and pending rows (from a
//!   side's first RST on) — is in a per-connection [`Ext`] allocated on first use, and what
//!   still fewer need — retransmission and zero-window counters, counters past their inline
//!   width, a history longer than 12 letters — in an [`ExtMore`] hung from it;
//! - a RST's row waits for its connection's end as a [`Pending`] of 88 bytes (the packet's
//!   fields as numbers); the reset.log row, with its strings, is made when it is finished, so a
//!   burst of refused SYNs within the close delay costs ~430 bytes per connection, not ~880;
//! - expiry: a ring of ~67 ms buckets of slot numbers feeds a binary heap that only holds the
//!   connections due in the buckets reached. Together they pop in exactly the order of one
//!   global heap keyed by (timer, slot), so which connection ends when — and which one is
//!   evicted when the table is full — is the same as with that heap.
//!
//! Nothing depends on the hash seed (the table is never iterated), so output bytes do not.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable};
use rstscope_decode::{
    community_id_v1, decode_rst_reason, tcp_flags as tf, CommunityIdKey, Segment,
};
use rstscope_reset::{connection_uid, initial_ttl, EventOptions, ResetEvent};
use smallvec::SmallVec;

mod carry;
pub use carry::{
    carry_file_checksum, read_carry_file, read_carry_file_owned, write_carry_file, Carry,
    StreamCarry, CARRY_VERSION,
};

use crate::classify::{injected_rule, Cause, Evidence};
use crate::zeek::{conn_state, likely_server_port, timers, EpState};

/// Thresholds and limits of connection tracking (documented in the README).
#[derive(Debug, Clone, Copy)]
pub struct FlowConfig {
    /// Hard cap on connections tracked at once; beyond it the connection closest to expiry is
    /// finished early (counted in [`FlowStats::evicted`]).
    pub max_connections: usize,
    pub events: EventOptions,
    /// `ttl_mismatch`: the RST's TTL differs from the sender's median TTL, and from the TTL of
    /// the sender's latest packet, by more than this many hops.
    pub ttl_threshold: u8,
    /// `ipid_mismatch`: a sender whose IPv4 IDs step by 1..=IPID_STEP is "sequential"; its RST
    /// is out of line when its ID is not 1..=IPID_WINDOW after the previous ID.
    pub ipid_step: u16,
    pub ipid_window: u16,
    /// `burst` / `ttl_varies`: this many RSTs from one sender within `burst_window_ns`.
    pub burst_count: u32,
    pub burst_window_ns: i64,
    /// `seq_change` / `ack_change`: back-to-back RSTs at most this far apart.
    pub change_window_ns: i64,
    /// `storm`: this many RSTs from one endpoint, each less than `storm_gap_ns` after the
    /// endpoint's previous packet (Zeek's RST_storm: 1000 and 1 s).
    pub storm_count: u32,
    pub storm_gap_ns: i64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_connections: 1_000_000,
            events: EventOptions::default(),
            ttl_threshold: 3,
            ipid_step: 64,
            ipid_window: 1024,
            burst_count: 3,
            burst_window_ns: 1_000_000_000,
            change_window_ns: 2_000_000_000,
            storm_count: 1000,
            storm_gap_ns: 1_000_000_000,
        }
    }
}

/// Counters of the tracker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub segments: u64,
    /// Connections created (a 5-tuple split by Zeek's rules counts once per connection).
    pub connections: u64,
    /// Connections finished early because the table was full.
    pub evicted: u64,
    /// Most connections tracked at once.
    pub peak_connections: u64,
    /// Carried connections whose bytes did not decode (dropped; only a carry file made to pass
    /// its checksum can hold one).
    pub carry_errors: u64,
}

const NO_TIME: i64 = i64::MAX;
/// "No slot / no row" in the u32 links.
const NIL: u32 = u32::MAX;

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

// ---------------------------------------------------------------------------------------------
// Keys

const FAM_V4: u8 = 0;
const FAM_V6: u8 = 1;
/// An IPv4 and an IPv6 endpoint (no decoded packet has that, but a `Segment` can).
const FAM_MIXED: u8 = 2;

/// Direction-free connection key in canonical form: the "lo" endpoint first — the smaller
/// (address, port) of the two, or the IPv4 one of a mixed pair (as `IpAddr` orders them).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Key {
    /// IPv4: lo address << 32 | hi address; otherwise 0.
    v4: u64,
    /// lo port << 16 | hi port.
    ports: u32,
    fam: u8,
    /// IPv6 (a mixed pair: the IPv4-mapped lo address and the IPv6 hi address); else 0.
    v6: [u128; 2],
}

impl Key {
    /// The key and whether the segment's sender is the `lo` endpoint.
    fn of(seg: &Segment<'_>) -> (Key, bool) {
        match (seg.src, seg.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let s = (u32::from(s) as u64) << 16 | seg.sport as u64;
                let d = (u32::from(d) as u64) << 16 | seg.dport as u64;
                let (lo, hi, sender_is_lo) = if s <= d { (s, d, true) } else { (d, s, false) };
                let key = Key {
                    v4: (lo >> 16) << 32 | (hi >> 16),
                    ports: ((lo & 0xffff) << 16 | (hi & 0xffff)) as u32,
                    fam: FAM_V4,
                    v6: [0; 2],
                };
                (key, sender_is_lo)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let s = (u128::from(s), seg.sport);
                let d = (u128::from(d), seg.dport);
                let (lo, hi, sender_is_lo) = if s <= d { (s, d, true) } else { (d, s, false) };
                let key = Key {
                    v4: 0,
                    ports: (lo.1 as u32) << 16 | hi.1 as u32,
                    fam: FAM_V6,
                    v6: [lo.0, hi.0],
                };
                (key, sender_is_lo)
            }
            (IpAddr::V4(s), IpAddr::V6(d)) => (
                Key::mixed((s, seg.sport), (d, seg.dport)),
                true, // IPv4 sorts before IPv6
            ),
            (IpAddr::V6(s), IpAddr::V4(d)) => (Key::mixed((d, seg.dport), (s, seg.sport)), false),
        }
    }

    fn mixed(v4: (Ipv4Addr, u16), v6: (Ipv6Addr, u16)) -> Key {
        Key {
            v4: 0,
            ports: (v4.1 as u32) << 16 | v6.1 as u32,
            fam: FAM_MIXED,
            v6: [u128::from(v4.0.to_ipv6_mapped()), u128::from(v6.0)],
        }
    }

    fn hash(&self, hasher: &DefaultHashBuilder) -> u64 {
        let mut h = hasher.build_hasher();
        if self.fam == FAM_V4 {
            h.write_u64(self.v4);
            h.write_u32(self.ports);
        } else {
            h.write_u128(self.v6[0]);
            h.write_u128(self.v6[1]);
            h.write_u32(self.ports);
            h.write_u8(self.fam);
        }
        h.finish()
    }

    /// (lo, hi) endpoints.
    fn endpoints(&self) -> ((IpAddr, u16), (IpAddr, u16)) {
        let (lp, hp) = ((self.ports >> 16) as u16, self.ports as u16);
        match self.fam {
            FAM_V4 => (
                (IpAddr::V4(Ipv4Addr::from((self.v4 >> 32) as u32)), lp),
                (IpAddr::V4(Ipv4Addr::from(self.v4 as u32)), hp),
            ),
            FAM_V6 => (
                (IpAddr::V6(Ipv6Addr::from(self.v6[0])), lp),
                (IpAddr::V6(Ipv6Addr::from(self.v6[1])), hp),
            ),
            _ => (
                (IpAddr::V4(Ipv4Addr::from(self.v6[0] as u32)), lp),
                (IpAddr::V6(Ipv6Addr::from(self.v6[1])), hp),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// History: Zeek's letters, up to 12 packed 5 bits each with the length in the top 4 bits.

/// Letters by their 5-bit code (0 is unused).
const HIST_ALPHABET: &[u8; 22] = b"?SHADFRIQTW^shadfriqtw";
const HIST_CODES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 1;
    while i < HIST_ALPHABET.len() {
        t[HIST_ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};
const HIST_INLINE: u64 = 12;
/// Length field value: the letters are in `Ext::history`.
const HIST_SPILLED: u64 = 15;
const HIST_LEN_SHIFT: u32 = 60;

const fn hist_encode(s: &[u8]) -> u64 {
    let mut h = 0u64;
    let mut i = 0;
    while i < s.len() {
        h |= (HIST_CODES[s[i] as usize] as u64) << (5 * i);
        i += 1;
    }
    h | (s.len() as u64) << HIST_LEN_SHIFT
}

const HIST_ONLY_H: u64 = hist_encode(b"H");
const HIST_CARET_H: u64 = hist_encode(b"^h");

// ---------------------------------------------------------------------------------------------
// Per-endpoint state

// Side::bits
const S_SENT_SYN: u16 = 1 << 0; // sent a SYN without ACK
const S_SENT_SYNACK: u16 = 1 << 1;
const S_LAST_WAS_SYN: u16 = 1 << 2; // its latest packet was a SYN (a RST now answers it)
const S_HAS_NEXT: u16 = 1 << 3; // next_seq is set
const S_SENT_DATA: u16 = 1 << 4; // data_end is set
const S_ACK_INIT: u16 = 1 << 5; // max_ack is set
const S_IPID_SEQ: u16 = 1 << 6; // its IPv4 IDs step by 1..=ipid_step
const S_IPID_ONE: u16 = 1 << 7; // at least one IPv4 ID seen
const S_IPID_TWO: u16 = 1 << 8; // at least two
const S_RST: u16 = 1 << 9; // it sent a RST: Ext::side holds its RST bookkeeping
const S_PKTS_HI: u16 = 1 << 10; // pkts overflowed into Ext::side.pkts_hi
const S_TTL_WIDE: u16 = 1 << 11; // a TTL count outgrew u16: the TTL counts are in Ext::side
const S_WSCALE_SHIFT: u32 = 12; // 4 bits: window scale from its SYN, 15 = none
const WSCALE_NONE: u16 = 15;

/// Per-endpoint state. Index 0 of a connection's sides is the originator.
#[derive(Debug, Clone, Copy)]
struct Side {
    /// Sequence number of its latest SYN (`ack_syn`, a new ISN).
    syn_seq: u32,
    /// Highest sequence number sent plus one (SYN/FIN count), over non-RST packets
    /// (S_HAS_NEXT). While the endpoint has sent nothing, the end of the peer's latest
    /// segment instead (`unsolicited` asks it then, and only then).
    next_seq: u32,
    /// Highest end of payload sent (non-RST packets).
    data_end: u32,
    /// Highest acknowledgment sent (S_ACK_INIT). While the endpoint has sent nothing, the
    /// acknowledgment of the peer's latest non-RST packet with ACK instead (for `unsolicited`).
    max_ack: u32,
    /// Sequence numbers of its latest SYN and end of its latest FIN, for the history's
    /// repeat rule (absolute: Zeek compares relative ones, which is the same test).
    hist_last_syn: u32,
    hist_last_fin: u32,
    /// Packets sent (low 32 bits; see S_PKTS_HI).
    pkts: u32,
    /// TTLs of its non-RST packets: up to three distinct values with counts.
    ttl_cnts: [u16; 3],
    ttl_vals: [u8; 3],
    last_ttl: u8,
    ipid_last: u16,
    /// Its latest window.
    win: u16,
    /// Endpoint state, and the state before it.
    state: EpState,
    prev_state: EpState,
    bits: u16,
}

impl Side {
    const NEW: Side = Side {
        syn_seq: 0,
        next_seq: 0,
        data_end: 0,
        max_ack: 0,
        hist_last_syn: 0,
        hist_last_fin: 0,
        pkts: 0,
        ttl_cnts: [0; 3],
        ttl_vals: [0; 3],
        last_ttl: 0,
        ipid_last: 0,
        win: 0,
        state: EpState::Inactive,
        prev_state: EpState::Inactive,
        bits: WSCALE_NONE << S_WSCALE_SHIFT,
    };

    fn has(&self, bit: u16) -> bool {
        self.bits & bit != 0
    }

    fn put(&mut self, bit: u16, on: bool) {
        if on {
            self.bits |= bit;
        } else {
            self.bits &= !bit;
        }
    }

    fn state(&self) -> EpState {
        self.state
    }

    fn prev_state(&self) -> EpState {
        self.prev_state
    }

    fn set_state(&mut self, s: EpState) {
        if self.state != s {
            self.prev_state = self.state;
            self.state = s;
        }
    }

    /// Window scale from its SYN, 0xff when none.
    fn wscale(&self) -> u8 {
        match (self.bits >> S_WSCALE_SHIFT) as u8 {
            15 => 0xff,
            w => w,
        }
    }

    fn set_wscale(&mut self, ws: u8) {
        let ws = ws.min(14) as u16;
        self.bits = (self.bits & !(0xf << S_WSCALE_SHIFT)) | ws << S_WSCALE_SHIFT;
    }
}

/// A new TTL for a side's statistics: a known value counts once more; a new one takes a free
/// slot or replaces the rarest.
fn note_ttl_in(vals: &mut [u8; 3], cnts: &mut [u32; 3], ttl: u8) {
    for i in 0..3 {
        if cnts[i] > 0 && vals[i] == ttl {
            cnts[i] = cnts[i].saturating_add(1);
            return;
        }
    }
    let mut slot = 0;
    for i in 0..3 {
        if cnts[i] < cnts[slot] {
            slot = i;
        }
    }
    vals[slot] = ttl;
    cnts[slot] = 1;
}

/// Median TTL over the up to three values kept.
fn median_ttl_in(vals: &[u8; 3], cnts: &[u32; 3]) -> Option<u8> {
    let mut v: SmallVec<[(u8, u32); 3]> = (0..3)
        .filter(|&i| cnts[i] > 0)
        .map(|i| (vals[i], cnts[i]))
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

/// A side's RST bookkeeping, kept from its first RST on (S_RST).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct RstSide {
    /// Time of its latest packet (for `storm`).
    last_ns: i64,
    last_rst_ns: i64,
    storm_run_start_ns: i64,
    last_rst_seq: u32,
    last_rst_ack: u32,
    /// RSTs sent (`rst_count`).
    rsts: u32,
    /// Sequence number of its latest RST, for the history's repeat rule.
    hist_last_rst: u32,
    /// Current run of RSTs each < storm gap after this side's previous packet.
    storm_run: u32,
    /// Its previous packet was a RST (`last_was_rst`), and that RST's fields.
    last_was_rst: bool,
    last_rst_had_ack: bool,
    /// The peer sent payload since this side's latest RST.
    peer_data_since_rst: bool,
}

/// Per-side state that still fewer connections need.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct MoreSide {
    // Retransmitted payload (T) and zero windows (W): counts and the next count that adds a
    // letter.
    rxmit: u32,
    rxmit_next: u32,
    zero_win: u32,
    zero_win_next: u32,
    /// Packet count above 32 bits (S_PKTS_HI).
    pkts_hi: u32,
    /// TTL statistics once a count outgrew u16 (S_TTL_WIDE).
    ttl_vals: [u8; 3],
    ttl_cnts: [u32; 3],
}

/// State of a connection that few connections need: allocated at a side's first RST (the RST
/// bookkeeping and the pending rows), or when [`ExtMore`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ext {
    side: [RstSide; 2],
    /// Newest pending row (rows link to older ones), NIL when none. Only connections with a
    /// RST have rows, and they all have an extension.
    pending: u32,
    /// Kept apart so that a connection with a RST (a scan's refused SYN: a million within the
    /// close delay) does not carry it.
    more: Option<Box<ExtMore>>,
}

impl Default for Ext {
    fn default() -> Ext {
        Ext {
            side: Default::default(),
            pending: NIL,
            more: None,
        }
    }
}

/// Retransmission and zero-window counters, counters past their inline width, and a long
/// history.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct ExtMore {
    side: [MoreSide; 2],
    /// The whole history once it is longer than HIST_INLINE letters.
    history: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------
// Connections

// Conn::flags
const C_LIVE: u16 = 1 << 0;
const C_ORIG_IS_LO: u16 = 1 << 1;
const C_HANDSHAKE_DONE: u16 = 1 << 2;
const C_FIN_SEEN: u16 = 1 << 3;
/// The originator sent a SYN in state INACTIVE: Zeek's attempt timer runs (from `start_ns`:
/// while it matters, that SYN was the connection's first packet).
const C_ATTEMPT: u16 = 1 << 4;
/// An endpoint has left the handshake states: Zeek's inactivity timeout is now
/// `tcp_inactivity_timeout` (TCP_Endpoint::SetState), for good.
const C_LONG_IDLE: u16 = 1 << 5;
/// Restored from a carry and not decoded yet: only the key, start and timer are set (see
/// `Tracker::materialize`).
const C_LAZY: u16 = 1 << 6;
const C_FAM_SHIFT: u32 = 8; // 2 bits: FAM_*

// History bits (Zeek's HIST_*), originator in the low 8 bits.
const H_SYN: u16 = 0x1;
const H_SYNACK: u16 = 0x2;
const H_FIN: u16 = 0x4;
const H_RST: u16 = 0x8;
const H_ACK: u16 = 0x10;
const H_DATA: u16 = 0x20;
const H_FIN_RST: u16 = 0x40;
const H_MULTI: u16 = 0x80;

#[derive(Debug)]
struct Conn {
    start_ns: i64,
    last_ns: i64,
    /// First complete close (Zeek's close delay runs from it), or NO_TIME.
    close_ns: i64,
    /// The connection's timer key: never above its deadline (lowered when the deadline drops,
    /// raised to the deadline when reached). Expiry and eviction go by (timer, slot).
    timer: i64,
    /// History letters (see HIST_*).
    history: u64,
    ext: Option<Box<Ext>>,
    /// IPv4 key: lo address << 32 | hi address; otherwise the index of the IPv6 addresses.
    k_addrs: u64,
    /// lo port << 16 | hi port; the next free slot while the slot is dead.
    k_ports: u32,
    /// Zeek's history bits (H_*), originator low byte.
    hist_seen: u16,
    flags: u16,
    sides: [Side; 2],
}

impl Conn {
    const DEAD: Conn = Conn {
        start_ns: 0,
        last_ns: 0,
        close_ns: NO_TIME,
        timer: NO_TIME,
        history: 0,
        ext: None,
        k_addrs: 0,
        k_ports: NIL,
        hist_seen: 0,
        flags: 0,
        sides: [Side::NEW; 2],
    };

    fn live(&self) -> bool {
        self.flags & C_LIVE != 0
    }

    fn orig_is_lo(&self) -> bool {
        self.flags & C_ORIG_IS_LO != 0
    }

    fn fam(&self) -> u8 {
        (self.flags >> C_FAM_SHIFT) as u8 & 3
    }

    fn key(&self, v6: &[[u128; 2]]) -> Key {
        let fam = self.fam();
        Key {
            v4: if fam == FAM_V4 { self.k_addrs } else { 0 },
            ports: self.k_ports,
            fam,
            v6: if fam == FAM_V4 {
                [0; 2]
            } else {
                v6[self.k_addrs as usize]
            },
        }
    }

    fn key_eq(&self, key: &Key, v6: &[[u128; 2]]) -> bool {
        self.k_ports == key.ports
            && self.fam() == key.fam
            && if key.fam == FAM_V4 {
                self.k_addrs == key.v4
            } else {
                v6[self.k_addrs as usize] == key.v6
            }
    }

    fn ext(&self) -> &Ext {
        self.ext.as_deref().expect("extension allocated")
    }

    fn ext_mut(&mut self) -> &mut Ext {
        self.ext.get_or_insert_with(Default::default)
    }

    fn more(&self) -> &ExtMore {
        self.ext().more.as_deref().expect("extension allocated")
    }

    fn more_mut(&mut self) -> &mut ExtMore {
        self.ext_mut().more.get_or_insert_with(Default::default)
    }

    /// Newest pending row, or NIL.
    fn rows(&self) -> u32 {
        self.ext.as_deref().map_or(NIL, |e| e.pending)
    }

    // -- history

    #[inline]
    fn push_letter(&mut self, letter: u8) {
        let len = self.history >> HIST_LEN_SHIFT;
        if len < HIST_INLINE {
            let code = HIST_CODES[letter as usize] as u64;
            self.history = (self.history & !(0xf << HIST_LEN_SHIFT))
                | code << (5 * len)
                | (len + 1) << HIST_LEN_SHIFT;
        } else {
            self.push_letter_spilled(letter);
        }
    }

    #[cold]
    #[inline(never)]
    fn push_letter_spilled(&mut self, letter: u8) {
        let len = self.history >> HIST_LEN_SHIFT;
        if len == HIST_INLINE {
            let mut all = Vec::with_capacity(2 * HIST_INLINE as usize);
            self.with_history(|h| all.extend_from_slice(h));
            self.more_mut().history = all;
            self.history = HIST_SPILLED << HIST_LEN_SHIFT;
        }
        self.more_mut().history.push(letter);
    }

    fn history_len(&self) -> usize {
        match self.history >> HIST_LEN_SHIFT {
            HIST_SPILLED => self.more().history.len(),
            len => len as usize,
        }
    }

    fn with_history<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let len = self.history >> HIST_LEN_SHIFT;
        if len == HIST_SPILLED {
            return f(&self.more().history);
        }
        let mut buf = [0u8; HIST_INLINE as usize];
        for (i, b) in buf.iter_mut().enumerate().take(len as usize) {
            *b = HIST_ALPHABET[(self.history >> (5 * i)) as usize & 0x1f];
        }
        f(&buf[..len as usize])
    }

    fn add_letter(&mut self, is_orig: bool, code: u8) {
        self.push_letter(if is_orig {
            code
        } else {
            code.to_ascii_lowercase()
        });
    }

    /// Zeek's CheckHistory: add the letter the first time this side shows the behaviour.
    /// Returns true when it had been seen before.
    fn check_history(&mut self, is_orig: bool, mask: u16, code: u8) -> bool {
        let mask = if is_orig { mask } else { mask << 8 };
        if self.hist_seen & mask == 0 {
            self.hist_seen |= mask;
            self.add_letter(is_orig, code);
            false
        } else {
            true
        }
    }

    /// Swap originator and responder (without the `^`).
    fn swap_sides(&mut self) {
        self.flags ^= C_ORIG_IS_LO;
        self.sides.swap(0, 1);
        self.hist_seen = self.hist_seen.rotate_left(8);
        if let Some(e) = self.ext.as_deref_mut() {
            e.side.swap(0, 1);
            if let Some(m) = e.more.as_deref_mut() {
                m.side.swap(0, 1);
            }
        }
    }

    /// Swap originator and responder, as Zeek's FlipRoles.
    fn flip(&mut self) {
        self.swap_sides();
        self.push_letter(b'^');
    }

    // -- counters that may live in the extension

    fn pkts(&self, i: usize) -> u64 {
        let s = &self.sides[i];
        let hi = if s.has(S_PKTS_HI) {
            self.more().side[i].pkts_hi as u64
        } else {
            0
        };
        hi << 32 | s.pkts as u64
    }

    fn no_pkts(&self, i: usize) -> bool {
        self.sides[i].pkts == 0 && !self.sides[i].has(S_PKTS_HI)
    }

    fn count_pkt(&mut self, i: usize) {
        match self.sides[i].pkts.checked_add(1) {
            Some(n) => self.sides[i].pkts = n,
            None => {
                self.sides[i].pkts = 0;
                self.sides[i].bits |= S_PKTS_HI;
                let hi = &mut self.more_mut().side[i].pkts_hi;
                *hi = hi.saturating_add(1);
            }
        }
    }

    #[inline]
    fn note_ttl(&mut self, i: usize, ttl: u8) {
        let s = &mut self.sides[i];
        s.last_ttl = ttl;
        // The common case: the value of the first slot, well below the inline limit.
        if s.ttl_vals[0] == ttl
            && s.ttl_cnts[0] > 0
            && s.ttl_cnts[0] < u16::MAX
            && !s.has(S_TTL_WIDE)
        {
            s.ttl_cnts[0] += 1;
            return;
        }
        self.note_ttl_slow(i, ttl);
    }

    #[inline(never)]
    fn note_ttl_slow(&mut self, i: usize, ttl: u8) {
        if self.sides[i].has(S_TTL_WIDE) {
            let e = &mut self.more_mut().side[i];
            note_ttl_in(&mut e.ttl_vals, &mut e.ttl_cnts, ttl);
            return;
        }
        let s = &mut self.sides[i];
        let mut cnts = s.ttl_cnts.map(u32::from);
        note_ttl_in(&mut s.ttl_vals, &mut cnts, ttl);
        if cnts.iter().all(|&n| n <= u16::MAX as u32) {
            s.ttl_cnts = cnts.map(|n| n as u16);
        } else {
            s.bits |= S_TTL_WIDE;
            let vals = s.ttl_vals;
            let e = &mut self.more_mut().side[i];
            e.ttl_vals = vals;
            e.ttl_cnts = cnts;
        }
    }

    fn median_ttl(&self, i: usize) -> Option<u8> {
        let s = &self.sides[i];
        if s.has(S_TTL_WIDE) {
            let e = &self.more().side[i];
            median_ttl_in(&e.ttl_vals, &e.ttl_cnts)
        } else {
            median_ttl_in(&s.ttl_vals, &s.ttl_cnts.map(u32::from))
        }
    }

    // -- timers

    #[inline]
    fn attempt_pending(&self) -> bool {
        self.flags & C_ATTEMPT != 0
            && matches!(
                self.sides[0].state(),
                EpState::SynSent | EpState::SynAckSent
            )
            && self.sides[1].state() == EpState::Inactive
    }

    /// When Zeek would remove this connection if no packet arrives first.
    #[inline]
    fn deadline(&self) -> i64 {
        let idle = if self.flags & C_LONG_IDLE == 0 {
            timers::HANDSHAKE_INACTIVITY
        } else {
            timers::INACTIVITY
        };
        let mut d = self.last_ns.saturating_add(idle);
        if self.close_ns != NO_TIME {
            d = d.min(self.close_ns.saturating_add(timers::CLOSE_DELAY));
        }
        if self.attempt_pending() {
            d = d.min(self.start_ns.saturating_add(timers::ATTEMPT_DELAY));
        }
        d
    }

    fn sizes_zero(&self) -> bool {
        !self.sides[0].has(S_SENT_DATA) && !self.sides[1].has(S_SENT_DATA)
    }

    /// Zeek's IsReuse: does this segment start a new connection on the same 5-tuple?
    fn is_reuse(&self, seg: &Segment<'_>) -> bool {
        let syn = seg.flags & tf::SYN != 0;
        let ack = seg.flags & tf::ACK != 0;
        if !syn {
            return false;
        }
        let (o, r) = (&self.sides[0], &self.sides[1]);
        let closed = |s: &Side| matches!(s.state(), EpState::Closed | EpState::Reset);
        if !ack {
            if closed(o) || closed(r) {
                return true;
            }
            // Zeek compares any SYN, from either side, with the originator's initial sequence
            // number: another one is a new connection (SYN_seq_jump, active_connection_reuse).
            if o.has(S_SENT_SYN) {
                return seg.seq != o.syn_seq;
            }
            // Not the SYN of a SYN/SYN-ACK reversal: the originator sent the SYN-ACK, the
            // responder nothing yet, and this SYN's seq is the one the SYN-ACK acknowledged.
            let reversal = o.state() == EpState::SynAckSent
                && r.state() == EpState::Inactive
                && o.has(S_ACK_INIT)
                && seg.seq == o.max_ack.wrapping_sub(1);
            // An originator first seen sending other segments (mid-stream) has no SYN to
            // match; one that has sent nothing is left to the state machine.
            !reversal && !self.no_pkts(0)
        } else {
            // A SYN-ACK starts a new connection only after a close, with the orig idle.
            (closed(o) || closed(r)) && o.state() == EpState::Inactive
        }
    }
}

/// A RST row waiting for its connection to end, kept small (a scan can leave a million of
/// them waiting within the close delay): the RST's own fields as numbers, and what only the
/// packet or the moment tells. What the connection determines — uid, Community ID, addresses,
/// roles, conn_state, duration, the history (a prefix of the connection's) — is filled in when
/// the row is finished ([`Tracker::finished_row`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    ts_ns: i64,
    frame: u64,
    /// Time since the connection's previous packet (P_IDLE: there was one).
    idle_ns: i64,
    sender_pkts: u64,
    receiver_pkts: u64,
    /// Captured payload and the reason decoded from it (one RST in many has either).
    extra: Option<Box<RowExtra>>,
    /// The capture file, in [`Sources`].
    source: u32,
    seq: u32,
    ack: u32,
    payload_len: u32,
    rst_count: u32,
    /// Letters of the connection's history when the RST came. Once a side has sent a RST the
    /// history only grows (the second-packet flip needs a history of one `H`, and a RST adds
    /// its letter), so the row's history is this prefix of the history at the end.
    hist_len: u32,
    /// The connection's previous (older) row, or NIL.
    next: u32,
    flags: u16,
    win: u16,
    /// Valid with P_IP_ID.
    ip_id: u16,
    /// Evidence bits (all fit in 16).
    evidence: u16,
    ttl: u8,
    /// The sender's median TTL, valid with P_SENDER_TTL; without it, no packet of the sender
    /// came before the RST, and ttl_mismatch is decided at the end against its later ones.
    sender_ttl: u8,
    cause: Cause,
    /// P_* bits.
    bits: u8,
}

// Pending::bits
/// The sender is the key's `lo` endpoint.
const P_SENDER_IS_LO: u8 = 1 << 0;
const P_SENDER_TTL: u8 = 1 << 1;
const P_IP_ID: u8 = 1 << 2;
/// The DF bit is known (IPv4), and set.
const P_DF_KNOWN: u8 = 1 << 3;
const P_DF: u8 = 1 << 4;
const P_IDLE: u8 = 1 << 5;
const P_ALL: u8 = (1 << 6) - 1;

/// What few rows have.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RowExtra {
    payload: Option<Box<[u8]>>,
    /// Decoded from the whole captured payload (which `payload` may be cut from).
    reason: Option<Box<str>>,
}

impl Pending {
    fn has(&self, bit: u8) -> bool {
        self.bits & bit != 0
    }

    fn sender_is_lo(&self) -> bool {
        self.has(P_SENDER_IS_LO)
    }

    fn evidence(&self) -> Evidence {
        Evidence(self.evidence as u32)
    }

    fn add(&mut self, e: Evidence) {
        debug_assert!(e.0 <= u16::MAX as u32);
        self.evidence |= e.0 as u16;
    }
}

/// Capture file names, each held once: a row holds the index of its file's.
#[derive(Default)]
struct Sources {
    names: Vec<Arc<[u8]>>,
    index: std::collections::HashMap<Arc<[u8]>, u32>,
    /// The name looked up last (most lookups ask for it again).
    last: u32,
}

impl Sources {
    fn index_of(&mut self, name: &[u8]) -> u32 {
        if self
            .names
            .get(self.last as usize)
            .is_some_and(|n| **n == *name)
        {
            return self.last;
        }
        self.last = match self.index.get(name) {
            Some(&i) => i,
            None => {
                let i = self.names.len() as u32;
                let name: Arc<[u8]> = Arc::from(name);
                self.names.push(Arc::clone(&name));
                self.index.insert(name, i);
                i
            }
        };
        self.last
    }

    fn name(&self, i: u32) -> &Arc<[u8]> {
        &self.names[i as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// Timers

/// Slots a tracker's end ([`Tracker::finish`], [`Tracker::suspend`]) visits between cutting
/// its slabs (a few in tests, so that the differential tests cut them).
const CUT_EVERY: usize = if cfg!(test) { 3 } else { 1 << 16 };
/// log2 of a ring bucket's width in nanoseconds (~67 ms).
const BUCKET_SHIFT: u32 = 26;
/// Ring buckets (~550 s): more than any deadline lies ahead of the newest packet (300 s).
const RING: usize = 8192;
/// Emptied bucket vectors kept for reuse (at most this many, of at most SPARE_CAP entries).
const SPARES: usize = 64;
const SPARE_CAP: usize = 4096;

/// A priority queue of (timer, slot) with lazy deletion: an entry is current when its slot is
/// live with that timer. Entries due within the drained buckets (and any beyond the ring's
/// reach) are in `near`, a binary heap; the others wait unordered in the ring bucket of their
/// timer, and move to `near` when the packet clock (or an eviction) reaches that bucket.
struct Timers {
    ring: Vec<Vec<u32>>,
    /// Which ring buckets hold entries.
    occupied: Vec<u64>,
    /// Entries in the ring (current or not).
    ring_len: usize,
    /// Every bucket up to this one has been moved to `near`.
    drained: i64,
    near: BinaryHeap<Reverse<(i64, u32)>>,
    spare: Vec<Vec<u32>>,
}

impl Timers {
    fn new() -> Timers {
        Timers {
            ring: (0..RING).map(|_| Vec::new()).collect(),
            occupied: vec![0; RING / 64],
            ring_len: 0,
            drained: i64::MIN >> BUCKET_SHIFT,
            near: BinaryHeap::new(),
            spare: Vec::new(),
        }
    }

    fn push(&mut self, timer: i64, slot: u32) {
        let b = timer >> BUCKET_SHIFT;
        if b <= self.drained || b - self.drained >= RING as i64 {
            self.near.push(Reverse((timer, slot)));
            return;
        }
        let i = b as usize % RING;
        let v = &mut self.ring[i];
        if v.capacity() == 0 {
            if let Some(spare) = self.spare.pop() {
                *v = spare;
            }
        }
        v.push(slot);
        self.occupied[i / 64] |= 1 << (i % 64);
        self.ring_len += 1;
    }

    /// Move every bucket up to `target` to `near`.
    #[inline]
    fn drain_to(&mut self, target: i64, conns: &[Conn]) {
        if target > self.drained {
            self.drain_slow(target, conns);
        }
    }

    #[inline(never)]
    fn drain_slow(&mut self, target: i64, conns: &[Conn]) {
        while self.ring_len > 0 {
            match self.first_ring_bucket() {
                Some(b) if b <= target => self.drain_bucket(b, conns),
                _ => break,
            }
        }
        self.drained = target;
    }

    fn drain_bucket(&mut self, b: i64, conns: &[Conn]) {
        let i = b as usize % RING;
        let mut v = std::mem::take(&mut self.ring[i]);
        self.occupied[i / 64] &= !(1 << (i % 64));
        self.ring_len -= v.len();
        for &slot in &v {
            let c = &conns[slot as usize];
            if c.live() && c.timer >> BUCKET_SHIFT == b {
                self.near.push(Reverse((c.timer, slot)));
            }
        }
        // Keep a few small buffers for the next buckets; give the others back.
        if v.capacity() <= SPARE_CAP && self.spare.len() < SPARES {
            v.clear();
            self.spare.push(v);
        }
    }

    /// The first ring bucket that holds entries (after `drained`).
    fn first_ring_bucket(&self) -> Option<i64> {
        if self.ring_len == 0 {
            return None;
        }
        // Ring positions after `drained`'s, in order, wrapping once around the ring.
        let start = (self.drained + 1) as usize % RING;
        let words = RING / 64;
        for k in 0..=words {
            let w = (start / 64 + k) % words;
            let mut bits = self.occupied[w];
            if k == 0 {
                bits &= !0u64 << (start % 64);
            } else if k == words {
                bits &= !(!0u64 << (start % 64));
            }
            if bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                let ahead = (i + RING - start) % RING;
                return Some(self.drained + 1 + ahead as i64);
            }
        }
        None
    }

    /// Drop entries at the top of `near` that are not current.
    fn clean_top(&mut self, conns: &[Conn]) {
        while let Some(&Reverse((t, slot))) = self.near.peek() {
            let c = &conns[slot as usize];
            if c.live() && c.timer == t {
                return;
            }
            self.near.pop();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tracker

/// Tracks connections and classifies RSTs. Feed it every TCP segment of a run in capture
/// order with [`Tracker::process`], then call [`Tracker::finish`].
pub struct Tracker {
    cfg: FlowConfig,
    hasher: DefaultHashBuilder,
    /// Slots of live connections, by key.
    table: HashTable<u32>,
    conns: Vec<Conn>,
    /// Dead slots, newest first, chained through `Conn::pending`.
    free: u32,
    /// IPv6 addresses of keys, and free entries.
    v6: Vec<[u128; 2]>,
    v6_free: Vec<u32>,
    timers: Timers,
    pending: Vec<Option<Pending>>,
    pending_free: Vec<u32>,
    done: Vec<ResetEvent>,
    /// Set by [`Tracker::finish`]: freed rows are not reused (see there).
    finishing: bool,
    /// The capture files rows come from.
    sources: Sources,
    now: i64,
    live: u64,
    stats: FlowStats,
    /// Connections resumed from a carry: where each one's encoding is and its row count, by
    /// slot (slots below `lazy.len()`, while the slot's C_LAZY is set), and the buffers.
    lazy: Vec<carry::LazyRef>,
    lazy_bufs: Vec<Arc<Vec<u8>>>,
}

impl Tracker {
    pub fn new(cfg: FlowConfig) -> Self {
        Tracker {
            cfg,
            hasher: DefaultHashBuilder::default(),
            table: HashTable::new(),
            conns: Vec::new(),
            free: NIL,
            v6: Vec::new(),
            v6_free: Vec::new(),
            timers: Timers::new(),
            pending: Vec::new(),
            pending_free: Vec::new(),
            done: Vec::new(),
            finishing: false,
            sources: Sources::default(),
            now: i64::MIN,
            live: 0,
            stats: FlowStats::default(),
            lazy: Vec::new(),
            lazy_bufs: Vec::new(),
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
    pub fn finish(self) -> (Vec<ResetEvent>, FlowStats) {
        let mut all = Vec::new();
        let stats = self.finish_into(|mut rows| {
            if all.is_empty() {
                all = rows;
            } else {
                all.append(&mut rows);
            }
        });
        (all, stats)
    }

    /// [`Tracker::finish`], handing the remaining events to `hand` a batch at a time (the rows
    /// of a burst of connections all live at the end never sit in one vector).
    pub fn finish_into(mut self, mut hand: impl FnMut(Vec<ResetEvent>)) -> FlowStats {
        // A capture whose connections are all live at its end — a burst of refused SYNs — has
        // every row still waiting. Connections are finished last slot first, and the slabs of
        // connections and pending rows are cut behind them as they go (and carried buffers
        // dropped once no connection left needs them), so the finished rows mostly take the
        // place of what they came from instead of adding to it, and leave in batches.
        self.finishing = true;
        self.table = HashTable::new();
        self.pending_free = Vec::new();
        // Carried buffers by the first slot that still needs them.
        let mut buf_first_slot = vec![usize::MAX; self.lazy_bufs.len()];
        for (slot, l) in self.lazy.iter().enumerate() {
            if self.conns[slot].flags & C_LAZY != 0 {
                let first = &mut buf_first_slot[l.buf() as usize];
                *first = (*first).min(slot);
            }
        }
        hand(std::mem::take(&mut self.done));
        let no_buf: Arc<Vec<u8>> = Arc::default();
        for slot in (0..self.conns.len()).rev() {
            if slot % CUT_EVERY == 0 {
                self.cut_from(slot + 1);
                for (buf, &first) in self.lazy_bufs.iter_mut().zip(&buf_first_slot) {
                    if first > slot {
                        *buf = Arc::clone(&no_buf);
                    }
                }
                if !self.done.is_empty() {
                    // (Slots are finished last first: a batch in slot order is nearer to
                    // the order of the rows' times.)
                    self.done.reverse();
                    hand(std::mem::take(&mut self.done));
                }
            }
            if self.conns[slot].live() {
                self.finalize(slot as u32);
            }
        }
        self.done.reverse();
        hand(std::mem::take(&mut self.done));
        self.stats
    }

    /// Give back the memory of the slots from `slot` on, and of the pending rows after the
    /// last one held: for the end of a tracker ([`Tracker::finish`], [`Tracker::suspend`]),
    /// which visits its slots last first and creates none.
    fn cut_from(&mut self, slot: usize) {
        if slot >= self.conns.len() {
            return;
        }
        self.conns.truncate(slot);
        self.conns.shrink_to_fit();
        self.lazy.truncate(slot);
        self.lazy.shrink_to_fit();
        while let Some(None) = self.pending.last() {
            self.pending.pop();
        }
        if self.pending.len() <= self.pending.capacity() / 2 {
            self.pending.shrink_to_fit();
        }
    }

    /// Process one TCP segment; `source` names its capture file (for the row), as the bytes of
    /// its name (not necessarily UTF-8).
    pub fn process(&mut self, seg: &Segment<'_>, source: &[u8]) {
        self.stats.segments += 1;
        if seg.ts_ns > self.now {
            self.now = seg.ts_ns;
            self.expire(self.now);
        }
        let (key, sender_is_lo) = Key::of(seg);
        let hash = key.hash(&self.hasher);
        let (conns, v6) = (&self.conns, &self.v6);
        let found = self
            .table
            .find(hash, |&s| conns[s as usize].key_eq(&key, v6))
            .copied();
        // A connection carried from an earlier run is decoded at its first packet.
        let found = match found {
            Some(slot) if self.conns[slot as usize].flags & C_LAZY != 0 => {
                self.materialize(slot).then_some(slot)
            }
            f => f,
        };
        let slot = match found {
            Some(slot) => {
                let c = &self.conns[slot as usize];
                // (The timer never exceeds the deadline: most packets need not compute it.)
                if (seg.ts_ns >= c.timer && seg.ts_ns >= c.deadline()) || c.is_reuse(seg) {
                    self.finalize(slot);
                    self.create(&key, hash, seg, sender_is_lo)
                } else {
                    slot
                }
            }
            None => self.create(&key, hash, seg, sender_is_lo),
        };
        self.update(slot, seg, sender_is_lo, source);
    }

    /// Remove connections whose deadline has passed.
    fn expire(&mut self, now: i64) {
        self.timers.drain_to(now >> BUCKET_SHIFT, &self.conns);
        while let Some(&Reverse((t, slot))) = self.timers.near.peek() {
            if t > now {
                break;
            }
            self.timers.near.pop();
            let c = &self.conns[slot as usize];
            if !c.live() || c.timer != t {
                continue; // a stale entry
            }
            if c.flags & C_LAZY != 0 && !self.materialize(slot) {
                continue;
            }
            let c = &mut self.conns[slot as usize];
            let cur = c.deadline();
            if cur <= now {
                self.finalize(slot);
            } else {
                c.timer = cur;
                self.timers.push(cur, slot);
            }
        }
    }

    /// Finish the connection closest to expiry (the table is full).
    fn evict_one(&mut self) {
        loop {
            self.timers.clean_top(&self.conns);
            let near = self.timers.near.peek().map(|e| e.0 .0 >> BUCKET_SHIFT);
            match self.timers.first_ring_bucket() {
                Some(b) if near.is_none_or(|n| b <= n) => self.timers.drain_to(b, &self.conns),
                _ => break,
            }
        }
        if let Some(Reverse((_, slot))) = self.timers.near.pop() {
            self.stats.evicted += 1;
            self.finalize(slot);
        }
    }

    fn create(&mut self, key: &Key, hash: u64, seg: &Segment<'_>, sender_is_lo: bool) -> u32 {
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
        let slot = if self.free != NIL {
            let s = self.free;
            self.free = self.conns[s as usize].k_ports;
            s
        } else {
            self.conns.push(Conn::DEAD);
            (self.conns.len() - 1) as u32
        };
        let k_addrs = if key.fam == FAM_V4 {
            key.v4
        } else {
            match self.v6_free.pop() {
                Some(i) => {
                    self.v6[i as usize] = key.v6;
                    i as u64
                }
                None => {
                    self.v6.push(key.v6);
                    (self.v6.len() - 1) as u64
                }
            }
        };
        let mut flags = C_LIVE | (key.fam as u16) << C_FAM_SHIFT;
        if orig_is_lo {
            flags |= C_ORIG_IS_LO;
        }
        let mut c = Conn {
            start_ns: seg.ts_ns,
            last_ns: seg.ts_ns,
            k_addrs,
            k_ports: key.ports,
            flags,
            ..Conn::DEAD
        };
        if flip {
            c.push_letter(b'^');
        }
        let d = c.deadline();
        c.timer = d;
        self.conns[slot as usize] = c;
        self.timers.push(d, slot);
        let (conns, v6, hasher) = (&self.conns, &self.v6, &self.hasher);
        self.table
            .insert_unique(hash, slot, |&s| conns[s as usize].key(v6).hash(hasher));
        self.live += 1;
        self.stats.connections += 1;
        self.stats.peak_connections = self.stats.peak_connections.max(self.live);
        slot
    }

    fn update(&mut self, slot: u32, seg: &Segment<'_>, sender_is_lo: bool, source: &[u8]) {
        let cfg = &self.cfg;
        let c = &mut self.conns[slot as usize];
        let flags = seg.flags;
        let syn = flags & tf::SYN != 0;
        let fin = flags & tf::FIN != 0;
        let rst = flags & tf::RST != 0;
        let ack = flags & tf::ACK != 0;
        // Sequence space used: payload, SYN and FIN; a RST's payload does not count.
        let len = if rst { 0 } else { seg.payload_len };

        // Zeek's second-packet flip: a SYN-ACK was the only packet, and now a pure ACK or data.
        if !syn && !fin && !rst && c.history == HIST_ONLY_H {
            c.swap_sides();
            c.history = HIST_CARET_H;
        }
        let mut is_orig = sender_is_lo == c.orig_is_lo();
        let (si, pi) = if is_orig { (0, 1) } else { (1, 0) };
        if rst && !c.sides[si].has(S_RST) {
            c.sides[si].bits |= S_RST;
            c.ext_mut();
        }

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
                let last = c.sides[si].hist_last_syn;
                if c.check_history(is_orig, mask, code) && seg.seq != last {
                    c.add_letter(is_orig, code);
                }
                c.sides[si].hist_last_syn = seg.seq;
            }
            if fin {
                let end = seg.seq.wrapping_add(seg.payload_len);
                let last = c.sides[si].hist_last_fin;
                if c.check_history(is_orig, H_FIN, b'F') && end != last {
                    c.add_letter(is_orig, b'F');
                }
                c.sides[si].hist_last_fin = end;
            }
            if rst {
                let last = c.ext().side[si].hist_last_rst;
                if c.check_history(is_orig, H_RST, b'R') && seg.seq != last {
                    c.add_letter(is_orig, b'R');
                }
                c.ext_mut().side[si].hist_last_rst = seg.seq;
            }
        } else if seg.payload_len > 0 {
            c.check_history(is_orig, H_DATA, b'D');
        } else if ack {
            c.check_history(is_orig, H_ACK, b'A');
        }
        // Retransmitted payload (T) and zero windows (W): logarithmic letters.
        if !rst && !syn && seg.payload_len > 0 {
            let s = &c.sides[si];
            if s.has(S_SENT_DATA) && seq_lt(seg.seq, s.data_end) {
                let e = &mut c.more_mut().side[si];
                e.rxmit = e.rxmit.saturating_add(1);
                if e.rxmit >= e.rxmit_next.max(1) {
                    e.rxmit_next = e.rxmit_next.max(1).saturating_mul(10);
                    c.add_letter(is_orig, b'T');
                }
            }
        }
        // Zeek's update_window: SYNs count; windows sent after the peer's FIN do not.
        if !rst
            && seg.window == 0
            && c.sides[si].state() != EpState::Reset
            && c.sides[pi].state() != EpState::Closed
        {
            let e = &mut c.more_mut().side[si];
            e.zero_win = e.zero_win.saturating_add(1);
            if e.zero_win >= e.zero_win_next.max(1) {
                e.zero_win_next = e.zero_win_next.max(1).saturating_mul(10);
                c.add_letter(is_orig, b'W');
            }
        }

        // A RST: its row, from the state before this packet.
        let new_pending = rst.then(|| {
            let source = self.sources.index_of(source);
            Self::rst_event(cfg, c, seg, si, pi, sender_is_lo, source)
        });

        // Zeek's endpoint state machine.
        let ep = c.sides[si].state();
        let peer = c.sides[pi].state();
        match ep {
            EpState::Inactive => {
                if syn {
                    if is_orig {
                        c.sides[si].set_state(if ack {
                            EpState::SynAckSent
                        } else {
                            EpState::SynSent
                        });
                        c.flags |= C_ATTEMPT;
                    } else if !ack && peer == EpState::SynAckSent {
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
                let (si, pi) = if is_orig { (0, 1) } else { (1, 0) };
                if fin {
                    c.sides[si].set_state(EpState::Closed);
                }
                if rst {
                    c.sides[si].set_state(EpState::Reset);
                }
                if c.sides[si].state() == EpState::Inactive {
                    // Some stacks ACK a SYN before answering it: not a partial connection.
                    let eccentric =
                        !is_orig && seg.payload_len == 0 && c.sides[pi].state() == EpState::SynSent;
                    if !eccentric {
                        // After a SYN-ACK, an ACK from its receiver: the SYN was missed, and
                        // Zeek establishes the connection rather than calling it partial.
                        let missed_syn = ack && c.sides[pi].state() == EpState::Established;
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
        if !c.sides[0].state().in_handshake() || !c.sides[1].state().in_handshake() {
            c.flags |= C_LONG_IDLE;
        }
        // "FIN followed by RST was really normal termination." (UpdateEstablishedState: a
        // plain FIN from an established or partial endpoint.)
        if fin
            && !rst
            && matches!(ep, EpState::Established | EpState::Partial)
            && c.sides[pi].state() == EpState::Reset
            && c.sides[pi].prev_state() == EpState::Closed
        {
            c.sides[pi].set_state(EpState::Closed);
        }

        // A complete close starts Zeek's close delay: a RST, a FIN after the peer closed, or a
        // FIN when the peer was never seen.
        if c.close_ns == NO_TIME {
            let complete = rst
                || (fin
                    && (matches!(c.sides[pi].state(), EpState::Closed | EpState::Reset)
                        || c.no_pkts(pi)));
            if complete {
                c.close_ns = seg.ts_ns;
            }
        }

        // Handshake and data bookkeeping.
        if syn && ack && !rst {
            c.sides[si].bits |= S_SENT_SYNACK;
        }
        if syn && !ack && !rst {
            c.sides[si].bits |= S_SENT_SYN;
            c.sides[si].syn_seq = seg.seq;
            if let Some(ws) = seg.options.window_scale {
                c.sides[si].set_wscale(ws);
            }
        }
        if syn && ack {
            if let Some(ws) = seg.options.window_scale {
                c.sides[si].set_wscale(ws);
            }
        }
        if fin {
            c.flags |= C_FIN_SEEN;
        }
        if !rst && seg.payload_len > 0 {
            // A SYN's payload (TCP Fast Open, a SYN flood's filler) does not finish a
            // handshake: a RST answering it is still a refusal.
            if !syn {
                c.flags |= C_HANDSHAKE_DONE;
            }
            if c.sides[pi].has(S_RST) {
                c.ext_mut().side[pi].peer_data_since_rst = true;
            }
        }
        if !syn && !rst && ack && (c.sides[pi].bits | c.sides[si].bits) & S_SENT_SYNACK != 0 {
            c.flags |= C_HANDSHAKE_DONE;
        }

        // Sequence, acknowledgment and window state, TTL and IP ID statistics.
        let end = seg
            .seq
            .wrapping_add(len)
            .wrapping_add(syn as u32)
            .wrapping_add(fin as u32);
        if c.no_pkts(pi) {
            // The peer has been silent: remember this packet for `unsolicited` (see Side).
            let q = &mut c.sides[pi];
            q.next_seq = end;
            if !rst && ack {
                q.max_ack = seg.ack;
            }
        }
        if !rst {
            let s = &mut c.sides[si];
            if !s.has(S_HAS_NEXT) || seq_gt(end, s.next_seq) {
                s.next_seq = end;
                s.bits |= S_HAS_NEXT;
            }
            if seg.payload_len > 0 {
                let dend = seg.seq.wrapping_add(seg.payload_len);
                if !s.has(S_SENT_DATA) || seq_gt(dend, s.data_end) {
                    s.data_end = dend;
                }
                s.bits |= S_SENT_DATA;
            }
            if ack {
                if !s.has(S_ACK_INIT) || seq_gt(seg.ack, s.max_ack) {
                    s.max_ack = seg.ack;
                }
                s.bits |= S_ACK_INIT;
            }
            s.win = seg.window;
            if let Some(id) = seg.ip_id {
                if s.has(S_IPID_ONE) {
                    let step = id.wrapping_sub(s.ipid_last);
                    s.put(S_IPID_SEQ, step >= 1 && step <= cfg.ipid_step);
                    s.bits |= S_IPID_TWO;
                }
                s.ipid_last = id;
                s.bits |= S_IPID_ONE;
            }
            c.note_ttl(si, seg.ttl);
            if c.sides[si].has(S_RST) {
                c.ext_mut().side[si].last_was_rst = false;
            }
        } else {
            let e = &mut c.ext_mut().side[si];
            e.last_was_rst = true;
            e.last_rst_ns = seg.ts_ns;
            e.last_rst_seq = seg.seq;
            e.last_rst_ack = seg.ack;
            e.last_rst_had_ack = ack;
            e.peer_data_since_rst = false;
        }
        c.sides[si].put(S_LAST_WAS_SYN, syn && !ack && !rst);
        if c.sides[si].has(S_RST) {
            c.ext_mut().side[si].last_ns = seg.ts_ns;
        }
        c.count_pkt(si);
        c.last_ns = c.last_ns.max(seg.ts_ns);

        // Data (or a SYN) from a side after its own RST: the RST was not the real endpoint's.
        let data_after = !rst && (seg.payload_len > 0 || syn) && c.sides[si].has(S_RST);
        let d = c.deadline();
        if d < c.timer {
            c.timer = d;
            self.timers.push(d, slot);
        }
        if data_after {
            let mut idx = c.rows();
            while idx != NIL {
                let p = self.pending[idx as usize].as_mut().expect("pending row");
                if p.sender_is_lo() == sender_is_lo
                    && p.ts_ns <= seg.ts_ns
                    && (syn || !seq_lt(seg.seq, p.seq))
                {
                    p.add(Evidence::DATA_AFTER_RST);
                }
                idx = p.next;
            }
        }
        if let Some(mut p) = new_pending {
            p.next = c.rows();
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
            self.conns[slot as usize].ext_mut().pending = idx;
            self.mark_groups(slot, sender_is_lo, seg.ts_ns);
        }
    }

    /// Evidence that spans several RSTs of one sender: burst, ttl_varies, storm. Marks the
    /// newest RST and, retroactively, the earlier ones of the same group.
    #[inline(never)]
    fn mark_groups(&mut self, slot: u32, sender_is_lo: bool, now: i64) {
        let cfg = self.cfg;
        let c = &self.conns[slot as usize];
        let is_orig = sender_is_lo == c.orig_is_lo();
        let rs = &c.ext().side[if is_orig { 0 } else { 1 }];
        let storm_start = (rs.storm_run >= cfg.storm_count).then_some(rs.storm_run_start_ns);
        let newest_only = rs.storm_run > cfg.storm_count;
        let head = c.rows();
        // Walk this sender's pending RSTs, newest first.
        let mut burst: SmallVec<[u32; 8]> = SmallVec::new();
        let mut ttls: SmallVec<[u8; 8]> = SmallVec::new();
        let mut idx = head;
        while idx != NIL {
            let p = self.pending[idx as usize].as_ref().expect("pending row");
            let next = p.next;
            if p.sender_is_lo() == sender_is_lo {
                if now.saturating_sub(p.ts_ns) > cfg.burst_window_ns {
                    break;
                }
                burst.push(idx);
                ttls.push(p.ttl);
                if burst.len() > 64 {
                    break;
                }
            }
            idx = next;
        }
        let is_burst = burst.len() as u32 >= cfg.burst_count;
        let varies = is_burst && ttls.iter().any(|&t| t != ttls[0]);
        if is_burst {
            for &idx in &burst {
                let p = self.pending[idx as usize].as_mut().expect("pending row");
                p.add(Evidence::BURST);
                if varies {
                    p.add(Evidence::TTL_VARIES);
                }
            }
        }
        if let Some(start) = storm_start {
            let mut idx = head;
            while idx != NIL {
                let p = self.pending[idx as usize].as_mut().expect("pending row");
                let next = p.next;
                if p.sender_is_lo() == sender_is_lo {
                    if p.ts_ns < start {
                        break;
                    }
                    p.add(Evidence::STORM);
                    if newest_only {
                        break;
                    }
                }
                idx = next;
            }
        }
    }

    /// The row of a RST from side `si`, with its cause and the evidence one packet shows.
    #[inline(never)]
    fn rst_event(
        cfg: &FlowConfig,
        c: &mut Conn,
        seg: &Segment<'_>,
        si: usize,
        pi: usize,
        sender_is_lo: bool,
        source: u32,
    ) -> Pending {
        let (s, p) = (&c.sides[si], &c.sides[pi]);
        let rs = &c.ext().side[si];
        let syn = seg.flags & tf::SYN != 0;
        let fin = seg.flags & tf::FIN != 0;
        let ack = seg.flags & tf::ACK != 0;
        let no_pkts = c.no_pkts(0) && c.no_pkts(1);
        let handshake_done = c.flags & C_HANDSHAKE_DONE != 0;

        let cause = if syn || fin {
            Cause::Invalid
        } else if no_pkts {
            Cause::Orphan
        } else if c.flags & C_FIN_SEEN != 0 {
            Cause::AfterClose
        } else if p.has(S_SENT_SYN)
            && !s.has(S_SENT_SYN)
            && !s.has(S_SENT_SYNACK)
            && !s.has(S_SENT_DATA)
            && !handshake_done
        {
            Cause::Refused
        } else if (c.sides[0].has(S_SENT_SYN)
            || c.sides[0].has(S_SENT_SYNACK)
            || c.sides[1].has(S_SENT_SYNACK))
            && !handshake_done
            && c.sizes_zero()
        {
            Cause::HandshakeAbort
        } else if c.no_pkts(si)
            && !p.has(S_SENT_SYN)
            && !p.has(S_SENT_SYNACK)
            // The sender sent nothing: its Side holds the receiver's latest ACK and segment end.
            && ((!ack && p.has(S_ACK_INIT) && seg.seq == s.max_ack)
                || (ack && seg.seq == 0 && seg.ack == s.next_seq))
        {
            Cause::Unsolicited
        } else {
            Cause::Abort
        };

        // What `ResetEvent::from_segment` fills from the packet, but for the uid and Community
        // ID: `finished_row` makes both from the connection.
        let reason = decode_rst_reason(seg.payload_len, seg.payload);
        let captured = &seg.payload[..seg.payload.len().min(cfg.events.max_payload)];

        let mut e = Evidence::default();
        if seg.seq == 0 {
            e.add(Evidence::SEQ_ZERO);
        }
        if ack && p.has(S_LAST_WAS_SYN) && seg.ack == p.syn_seq.wrapping_add(1) {
            e.add(Evidence::ACK_SYN);
        }
        if seg.window != 0 {
            e.add(Evidence::WIN_NONZERO);
        }
        if seg.payload_len > 0 {
            e.add(Evidence::PAYLOAD);
        }
        if reason.is_some() {
            e.add(Evidence::DIAG_PAYLOAD);
        }
        // Without a median (no earlier packet of the sender), ttl_mismatch waits for the end.
        let sender_ttl = c.median_ttl(si);
        if let Some(m) = sender_ttl {
            if ttl_differs(seg.ttl, m, cfg.ttl_threshold)
                && ttl_differs(seg.ttl, s.last_ttl, cfg.ttl_threshold)
            {
                e.add(Evidence::TTL_MISMATCH);
            }
        }
        if let Some(id) = seg.ip_id {
            if id != 0 && s.has(S_IPID_TWO) && s.has(S_IPID_SEQ) {
                let step = id.wrapping_sub(s.ipid_last);
                if step == 0 || step > cfg.ipid_window {
                    e.add(Evidence::IPID_MISMATCH);
                }
            }
        }
        // RFC 5961 view from the receiver: the next sequence number it expects (its latest
        // acknowledgment, or what the sender is seen to have sent) and its window.
        if p.has(S_ACK_INIT) {
            let rcv_nxt = p.max_ack;
            let exact = seg.seq == rcv_nxt || (s.has(S_HAS_NEXT) && seg.seq == s.next_seq);
            let scale = if s.wscale() != 0xff && p.wscale() != 0xff {
                p.wscale()
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
        if rs.last_was_rst && seg.ts_ns.saturating_sub(rs.last_rst_ns) <= cfg.change_window_ns {
            let past_sent = !s.has(S_HAS_NEXT) || seq_gt(seg.seq, s.next_seq);
            let past_acked = !p.has(S_ACK_INIT) || seq_gt(seg.seq, p.max_ack.wrapping_add(2));
            if seq_gt(seg.seq, rs.last_rst_seq.wrapping_add(2)) && past_sent && past_acked {
                e.add(Evidence::SEQ_CHANGE);
            }
            if ack && rs.last_rst_had_ack && seg.ack != rs.last_rst_ack && !rs.peer_data_since_rst {
                e.add(Evidence::ACK_CHANGE);
            }
        }
        // A RST answering a segment that reached a socket its sender had already reset takes
        // its seq from that segment's ACK (RFC 9293 §3.5.2): behind data sent before an
        // abortive close, and genuine — when it comes from the sender's stack (its TTL). A
        // censor that injected the first RST answers the later segments the same way, from
        // its own distance.
        let answers_peer = rs.rsts > 0
            && p.has(S_ACK_INIT)
            && seg.seq == p.max_ack
            && !e.has(Evidence::TTL_MISMATCH);
        if s.has(S_SENT_DATA) && seq_lt(seg.seq, s.data_end) && !answers_peer {
            e.add(Evidence::SEQ_BEHIND);
        }

        // Counters, and the storm run (each RST < gap after the sender's previous packet).
        let sender_pkts = c.pkts(si);
        let receiver_pkts = c.pkts(pi);
        let idle = (!no_pkts).then(|| seg.ts_ns.saturating_sub(c.last_ns).max(0));
        let sent_before = !c.no_pkts(si);
        let hist_len = u32::try_from(c.history_len()).unwrap_or(u32::MAX);
        let rs = &mut c.ext_mut().side[si];
        // Saturating: counters can come from a carry file.
        rs.rsts = rs.rsts.saturating_add(1);
        if rs.storm_run > 0
            && sent_before
            && seg.ts_ns.saturating_sub(rs.last_ns) < cfg.storm_gap_ns
        {
            rs.storm_run = rs.storm_run.saturating_add(1);
        } else {
            rs.storm_run = 1;
            rs.storm_run_start_ns = seg.ts_ns;
        }

        let mut bits = 0;
        let mut put = |bit: u8, on: bool| {
            if on {
                bits |= bit;
            }
        };
        put(P_SENDER_IS_LO, sender_is_lo);
        put(P_SENDER_TTL, sender_ttl.is_some());
        put(P_IP_ID, seg.ip_id.is_some());
        put(P_DF_KNOWN, seg.df.is_some());
        put(P_DF, seg.df == Some(true));
        put(P_IDLE, idle.is_some());
        let extra = (!captured.is_empty() || reason.is_some()).then(|| {
            Box::new(RowExtra {
                payload: (!captured.is_empty()).then(|| captured.into()),
                reason: reason.map(String::into_boxed_str),
            })
        });
        debug_assert!(e.0 <= u16::MAX as u32);
        Pending {
            ts_ns: seg.ts_ns,
            frame: seg.frame,
            idle_ns: idle.unwrap_or(0),
            sender_pkts,
            receiver_pkts,
            extra,
            source,
            seq: seg.seq,
            ack: seg.ack,
            payload_len: seg.payload_len,
            rst_count: rs.rsts,
            hist_len,
            next: NIL,
            flags: seg.flags,
            win: seg.window,
            ip_id: seg.ip_id.unwrap_or(0),
            evidence: e.0 as u16,
            ttl: seg.ttl,
            sender_ttl: sender_ttl.unwrap_or(0),
            cause,
            bits,
        }
    }

    /// The connection ended: complete its rows and free it.
    fn finalize(&mut self, slot: u32) {
        let c = &self.conns[slot as usize];
        if !c.live() {
            return;
        }
        if c.flags & C_LAZY != 0 && !self.materialize(slot) {
            return; // it did not decode, and is gone
        }
        let c = &self.conns[slot as usize];
        let key = c.key(&self.v6);
        let hash = key.hash(&self.hasher);
        if let Ok(entry) = self.table.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.live -= 1;
        let (has_rows, k_addrs) = (c.rows() != NIL, c.k_addrs);
        // Most connections end without a RST: nothing to complete.
        if has_rows {
            self.emit_rows(slot, &key);
        }
        // Free the slot (it heads the free list) and what it owns.
        if key.fam != FAM_V4 {
            self.v6_free.push(k_addrs as u32);
        }
        let c = &mut self.conns[slot as usize];
        c.flags = 0;
        c.ext = None;
        c.k_ports = self.free;
        self.free = slot;
    }

    /// Complete the held rows of a connection that ended and move them to the output.
    fn emit_rows(&mut self, slot: u32, key: &Key) {
        let c = &self.conns[slot as usize];
        let state = c.with_history(|h| {
            conn_state(c.sides[0].state(), c.sides[1].state(), c.sizes_zero(), h)
        });
        let (lo, hi) = key.endpoints();
        let (orig, resp) = if c.orig_is_lo() { (lo, hi) } else { (hi, lo) };
        // Rows oldest first.
        let mut rows: SmallVec<[u32; 8]> = SmallVec::new();
        let mut idx = c.rows();
        while idx != NIL {
            rows.push(idx);
            idx = self.pending[idx as usize]
                .as_ref()
                .expect("pending row")
                .next;
        }
        // Computed once per connection, moved into its last row.
        let ends = Ends {
            orig,
            resp,
            state,
            uid: connection_uid(orig, resp, c.start_ns.div_euclid(1000)),
            community_id: community_id_v1(
                &CommunityIdKey {
                    proto: 6,
                    src: orig.0,
                    dst: resp.0,
                    sport: orig.1,
                    dport: resp.1,
                },
                self.cfg.events.community_id_seed,
            ),
        };
        let mut ends = Some(ends);
        for (n, &idx) in rows.iter().rev().enumerate() {
            let p = self.pending[idx as usize].take().expect("pending row");
            if !self.finishing {
                self.pending_free.push(idx);
            }
            let ends = if n + 1 == rows.len() {
                ends.take().expect("ends of the connection")
            } else {
                ends.clone().expect("ends of the connection")
            };
            let row = Self::finished_row(&self.cfg, &self.sources, c, p, ends);
            self.done.push(row);
        }
    }

    /// The reset.log row of pending row `p` of connection `c`, which has ended.
    fn finished_row(
        cfg: &FlowConfig,
        sources: &Sources,
        c: &Conn,
        mut p: Pending,
        ends: Ends,
    ) -> ResetEvent {
        let is_orig = p.sender_is_lo() == c.orig_is_lo();
        let mut evidence = p.evidence();
        let sender_ttl = if p.has(P_SENDER_TTL) {
            Some(p.sender_ttl)
        } else {
            // No packet of the sender before the RST: compare with its later packets.
            let m = c.median_ttl(if is_orig { 0 } else { 1 });
            if m.is_some_and(|m| ttl_differs(p.ttl, m, cfg.ttl_threshold)) {
                evidence.add(Evidence::TTL_MISMATCH);
            }
            m
        };
        let (orig_pkts, resp_pkts) = if is_orig {
            (p.sender_pkts, p.receiver_pkts)
        } else {
            (p.receiver_pkts, p.sender_pkts)
        };
        let (payload, reason) = match p.extra.take() {
            Some(x) => (x.payload.map(Vec::from), x.reason.map(String::from)),
            None => (None, None),
        };
        let history = c.with_history(|h| {
            let h = &h[..(p.hist_len as usize).min(h.len())];
            String::from_utf8_lossy(h).into_owned()
        });
        ResetEvent {
            ts_ns: p.ts_ns,
            uid: ends.uid,
            community_id: ends.community_id,
            orig_h: ends.orig.0,
            orig_p: ends.orig.1,
            resp_h: ends.resp.0,
            resp_p: ends.resp.1,
            is_orig,
            cause: Some(Cow::Borrowed(p.cause.name())),
            injected: Some(injected_rule(evidence)),
            evidence: Some(evidence.names()),
            flags: p.flags,
            seq: p.seq,
            ack: p.ack,
            win: p.win,
            ttl: p.ttl,
            ip_id: p.has(P_IP_ID).then_some(p.ip_id),
            df: p.has(P_DF_KNOWN).then_some(p.has(P_DF)),
            payload_len: p.payload_len,
            payload,
            reason,
            sender_ttl,
            initial_ttl: initial_ttl(p.ttl),
            rst_count: Some(p.rst_count),
            history: Some(history),
            conn_state: Some(Cow::Borrowed(ends.state)),
            // Saturating: a crafted pcapng can put packets at both ends of the i64 range.
            duration_ns: Some(p.ts_ns.saturating_sub(c.start_ns).max(0)),
            idle_ns: p.has(P_IDLE).then_some(p.idle_ns),
            orig_pkts: Some(orig_pkts),
            resp_pkts: Some(resp_pkts),
            source: Arc::clone(sources.name(p.source)),
            frame: p.frame,
            sensor: None,
        }
    }
}

/// What an ended connection gives each of its rows.
#[derive(Clone)]
struct Ends {
    orig: (IpAddr, u16),
    resp: (IpAddr, u16),
    state: &'static str,
    uid: String,
    community_id: String,
}

fn ttl_differs(a: u8, b: u8, threshold: u8) -> bool {
    a.abs_diff(b) > threshold
}

#[cfg(test)]
pub(crate) use size_tests::BYTES_PER_CONNECTION_MAX;

#[cfg(test)]
mod size_tests {
    use super::*;

    /// What one tracked connection costs, at most: its slot, its hash table entry (a u32 slot
    /// number and a control byte per bucket; hashbrown keeps at most 7/8 of the buckets full
    /// and doubles, so just after growing 7/16 are: 5 × 16/7 bytes), and its timer ring entry
    /// (a u32, twice that just after its bucket's vector grew). Rows of connections that reset,
    /// the extension of connections that need one and IPv6 addresses (32 bytes) come on top.
    const TABLE_ENTRY_MAX: f64 = 5.0 * 16.0 / 7.0;
    const TIMER_ENTRY_MAX: f64 = 8.0;
    pub(crate) const BYTES_PER_CONNECTION_MAX: f64 = 200.0;

    #[test]
    fn connection_table_costs_at_most_200_bytes_per_connection() {
        let conn = std::mem::size_of::<Conn>();
        assert_eq!(std::mem::size_of::<Side>(), 48);
        assert_eq!(
            conn, 160,
            "the per-connection figures quoted for the table depend on it"
        );
        let total = conn as f64 + TABLE_ENTRY_MAX + TIMER_ENTRY_MAX;
        eprintln!(
            "Conn {conn} B + table entry <= {TABLE_ENTRY_MAX:.1} B + timer entry <= \
             {TIMER_ENTRY_MAX:.0} B = {total:.1} B (Ext {} B, ExtMore {} B, Pending {} B when \
             needed; a finished row {} B)",
            std::mem::size_of::<Ext>(),
            std::mem::size_of::<ExtMore>(),
            std::mem::size_of::<Pending>(),
            std::mem::size_of::<ResetEvent>(),
        );
        assert!(total <= BYTES_PER_CONNECTION_MAX, "{total}");
    }

    /// A burst of refused connections keeps a row and an extension per connection until the
    /// close delay ends: both stay small.
    #[test]
    fn pending_rows_and_the_extension_stay_small() {
        assert_eq!(std::mem::size_of::<Pending>(), 88);
        assert_eq!(std::mem::size_of::<Option<Pending>>(), 88);
        assert_eq!(std::mem::size_of::<Ext>(), 112);
    }
}
