//! The row encoding of spill files: a whole [`ResetEvent`], lossless, in about 70–100 bytes
//! where it takes about 650 in memory.
//!
//! A file is a sequence of frames, each a varint header `len << 1 | kind` and `len` bytes:
//! kind 1 defines the file's next name (capture file or sensor; ids count from 0 in order of
//! definition), kind 0 is a row. A row is a varint of presence and shape bits, then its fields:
//! the time as a signed varint delta from the previous row of the file, the uid as its two
//! base-62 numbers and the community ID as its 20 hash bytes (both as text when they are not in
//! the shape the tracker makes), the cause, conn_state and evidence as indexes into the
//! contract's vocabulary (as text when unknown: a merged shard may say anything), fixed-width
//! packet fields, varints for counts and durations, the name ids, and the frame as a delta from
//! the previous frame of the same capture file. Decoded rows borrow the vocabulary's statics
//! and share one `Arc` per name of a file.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use base64::Engine as _;
use hashbrown::HashMap;
use rstscope_flow::{Cause, Evidence};
use rstscope_reset::codec::{DecodeError, Reader, Writer};
use rstscope_reset::ResetEvent;

/// Frame kinds (the low bit of a frame header).
pub(crate) const FRAME_ROW: u64 = 0;
pub(crate) const FRAME_NAME: u64 = 1;

// A row's presence and shape bits. Flags for the rare shapes (text instead of a compact form)
// are set only for them, so a typical row's bits fit a 3-byte varint.
const IS_ORIG: u64 = 1 << 0;
const CAUSE: u64 = 1 << 1;
const INJECTED: u64 = 1 << 2;
const INJECTED_TRUE: u64 = 1 << 3;
const EVIDENCE: u64 = 1 << 4;
const IP_ID: u64 = 1 << 5;
const DF: u64 = 1 << 6;
const DF_TRUE: u64 = 1 << 7;
const PAYLOAD: u64 = 1 << 8;
const REASON: u64 = 1 << 9;
const SENDER_TTL: u64 = 1 << 10;
const RST_COUNT: u64 = 1 << 11;
const HISTORY: u64 = 1 << 12;
const CONN_STATE: u64 = 1 << 13;
const DURATION: u64 = 1 << 14;
const IDLE: u64 = 1 << 15;
const ORIG_PKTS: u64 = 1 << 16;
const RESP_PKTS: u64 = 1 << 17;
const SENSOR: u64 = 1 << 18;
const ORIG_V6: u64 = 1 << 19;
const RESP_V6: u64 = 1 << 20;
const UID_TEXT: u64 = 1 << 21;
const COMMUNITY_ID_TEXT: u64 = 1 << 22;
const CAUSE_TEXT: u64 = 1 << 23;
const EVIDENCE_TEXT: u64 = 1 << 24;
const CONN_STATE_TEXT: u64 = 1 << 25;
const ALL_BITS: u64 = (1 << 26) - 1;

/// Every conn_state [`rstscope_flow::zeek::conn_state`] returns (a test checks it), the
/// statics decoded rows borrow.
pub(crate) const CONN_STATES: [&str; 13] = [
    "OTH", "REJ", "RSTO", "RSTOS0", "RSTR", "RSTRH", "S0", "S1", "S2", "S3", "SF", "SH", "SHR",
];

fn put_varint(w: &mut Writer, mut v: u64) {
    while v >= 0x80 {
        w.u8(v as u8 | 0x80);
        v >>= 7;
    }
    w.u8(v as u8);
}

/// Zigzag: small magnitudes of either sign stay short.
fn put_signed(w: &mut Writer, v: i64) {
    put_varint(w, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_text(w: &mut Writer, b: &[u8]) {
    put_varint(w, b.len() as u64);
    w.buf.extend_from_slice(b);
}

fn put_addr(w: &mut Writer, a: IpAddr) {
    match a {
        IpAddr::V4(v) => w.buf.extend_from_slice(&v.octets()),
        IpAddr::V6(v) => w.buf.extend_from_slice(&v.octets()),
    }
}

/// The frame header for `len` bytes of `kind`.
pub(crate) fn put_header(out: &mut Vec<u8>, len: usize, kind: u64) {
    let mut w = Writer {
        buf: std::mem::take(out),
    };
    put_varint(&mut w, (len as u64) << 1 | kind);
    *out = w.buf;
}

fn get_varint(r: &mut Reader<'_>) -> Result<u64, DecodeError> {
    let start = r.offset();
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = r.u8()?;
        if shift == 63 && b > 1 {
            return Err(DecodeError {
                offset: start,
                what: "a varint over 64 bits".into(),
            });
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
    }
}

fn get_signed(r: &mut Reader<'_>) -> Result<i64, DecodeError> {
    let z = get_varint(r)?;
    Ok((z >> 1) as i64 ^ -((z & 1) as i64))
}

fn get_text<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
    let n = get_varint(r)?;
    // `take` refuses what is not there; the cast cannot make a huge length small.
    r.take(usize::try_from(n).unwrap_or(usize::MAX))
}

fn get_str<'a>(r: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
    let start = r.offset();
    std::str::from_utf8(get_text(r)?).map_err(|_| DecodeError {
        offset: start,
        what: "a string that is not UTF-8".into(),
    })
}

fn get_addr(r: &mut Reader<'_>, v6: bool) -> Result<IpAddr, DecodeError> {
    Ok(if v6 {
        let mut a = [0u8; 16];
        a.copy_from_slice(r.take(16)?);
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        let mut a = [0u8; 4];
        a.copy_from_slice(r.take(4)?);
        IpAddr::V4(Ipv4Addr::from(a))
    })
}

fn bad(offset: usize, what: impl Into<String>) -> DecodeError {
    DecodeError {
        offset,
        what: what.into(),
    }
}

/// A digit's value in the base 62 of uids (0-9, A-Z, a-z).
fn base62_digit(c: u8) -> Option<u64> {
    match c {
        b'0'..=b'9' => Some((c - b'0') as u64),
        b'A'..=b'Z' => Some((c - b'A') as u64 + 10),
        b'a'..=b'z' => Some((c - b'a') as u64 + 36),
        _ => None,
    }
}

/// The value of base-62 digits as [`rstscope_reset::uid_text`] writes them (no leading zero), if it fits
/// in `max`.
fn parse_base62(digits: &[u8], max: u64) -> Option<u64> {
    if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        v = v.checked_mul(62)?.checked_add(base62_digit(c)?)?;
    }
    (v <= max).then_some(v)
}

/// A uid as `rstscope_reset::connection_uid` makes it, "C" + base62(u64) + base62(u32), as the
/// two numbers. The digits do not say where the first number ends, but any split into two
/// numbers written without leading zeros renders back to the same text, so the first found is
/// as good as any.
fn compact_uid(uid: &str) -> Option<(u64, u32)> {
    let digits = uid.as_bytes().strip_prefix(b"C")?;
    // u32::MAX has 6 base-62 digits, u64::MAX 11.
    for low_len in (1..=digits.len().saturating_sub(1).min(6)).rev() {
        let (high, low) = digits.split_at(digits.len() - low_len);
        if high.len() > 11 {
            break;
        }
        if let (Some(h), Some(l)) = (
            parse_base62(high, u64::MAX),
            parse_base62(low, u32::MAX as u64),
        ) {
            return Some((h, l as u32));
        }
    }
    None
}

fn render_uid(high: u64, low: u32) -> String {
    rstscope_reset::uid_text(high, low)
}

/// A Community ID v1 in its base64 form, "1:" + base64 of 20 hash bytes, as the bytes: only
/// when they render back to exactly this text.
fn compact_community_id(id: &str) -> Option<[u8; 20]> {
    let b64 = id.strip_prefix("1:")?;
    if b64.len() != 28 {
        return None;
    }
    let engine = base64::engine::general_purpose::STANDARD;
    // The decoder asks for room for 21 bytes for 28 characters.
    let mut hash = [0u8; 21];
    if engine.decode_slice(b64, &mut hash).ok()? != 20 {
        return None;
    }
    let mut text = [0u8; 28];
    engine.encode_slice(&hash[..20], &mut text).ok()?;
    (text == b64.as_bytes()).then(|| hash[..20].try_into().expect("20 bytes"))
}

fn render_community_id(hash: &[u8]) -> String {
    let mut s = String::with_capacity(30);
    s.push_str("1:");
    base64::engine::general_purpose::STANDARD.encode_string(hash, &mut s);
    s
}

fn cause_index(name: &str) -> Option<u8> {
    Cause::ALL
        .iter()
        .position(|c| c.name() == name)
        .map(|i| i as u8)
}

fn conn_state_index(name: &str) -> Option<u8> {
    CONN_STATES.iter().position(|s| *s == name).map(|i| i as u8)
}

/// Evidence names as a set of indexes into [`Evidence::NAMES`], when every name is one of them
/// and they come in its order, once each (as the tracker and `rstscope merge` make them).
fn evidence_set(names: &[&str]) -> Option<u64> {
    let mut set = 0u64;
    let mut last = None;
    for name in names {
        let i = Evidence::NAMES
            .binary_search_by(|(_, n)| (*n).cmp(name))
            .ok()?;
        if last.is_some_and(|l| i <= l) {
            return None;
        }
        last = Some(i);
        set |= 1 << i;
    }
    Some(set)
}

/// The static for an evidence name: the vocabulary's, or (for a name only code can make, never
/// input: `rstscope merge` drops unknown names) one leaked once per distinct name.
fn evidence_static(name: &str) -> &'static str {
    if let Ok(i) = Evidence::NAMES.binary_search_by(|(_, n)| (*n).cmp(name)) {
        return Evidence::NAMES[i].1;
    }
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static OTHERS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut others = OTHERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match others.get(name) {
        Some(s) => s,
        None => {
            let s: &'static str = Box::leak(name.to_owned().into_boxed_str());
            others.insert(s);
            s
        }
    }
}

/// One spill file's writing state: its name table and the values rows are written as deltas
/// from.
#[derive(Debug, Default)]
pub(crate) struct RowEncoder {
    ids: HashMap<Arc<[u8]>, u32>,
    /// The last frame number written for each name id (as a capture file).
    last_frame: Vec<u64>,
    prev_ts: i64,
    /// The last capture file and sensor looked up, with their ids: sorted rows come in runs of
    /// one capture file, and most files have one sensor.
    recent_source: Option<(Arc<[u8]>, u32)>,
    recent_sensor: Option<(Arc<[u8]>, u32)>,
    row: Writer,
}

impl RowEncoder {
    /// The id of `name` in this file (`recent` caches the last one), and its definition frame
    /// appended to `out` if it is new.
    fn name_id(
        ids: &mut HashMap<Arc<[u8]>, u32>,
        last_frame: &mut Vec<u64>,
        recent: &mut Option<(Arc<[u8]>, u32)>,
        name: &Arc<[u8]>,
        out: &mut Vec<u8>,
    ) -> u32 {
        if let Some((recent, id)) = recent {
            // (`Arc`'s equality tries the pointers first.)
            if recent == name {
                return *id;
            }
        }
        let id = match ids.get(name) {
            Some(id) => *id,
            None => {
                let id = ids.len() as u32;
                ids.insert(Arc::clone(name), id);
                last_frame.push(0);
                put_header(out, name.len(), FRAME_NAME);
                out.extend_from_slice(name);
                id
            }
        };
        *recent = Some((Arc::clone(name), id));
        id
    }

    /// Append `e`'s frames to `out`: a definition for each name this file has not had, then the
    /// row.
    pub(crate) fn encode(&mut self, e: &ResetEvent, tag: u64, out: &mut Vec<u8>) {
        let (ids, last_frame) = (&mut self.ids, &mut self.last_frame);
        let source = Self::name_id(ids, last_frame, &mut self.recent_source, &e.source, out);
        let sensor = e
            .sensor
            .as_ref()
            .map(|s| Self::name_id(ids, last_frame, &mut self.recent_sensor, s, out));
        let uid = compact_uid(&e.uid);
        let community_id = compact_community_id(&e.community_id);
        let cause = e.cause.as_deref().map(|c| (c, cause_index(c)));
        let conn_state = e.conn_state.as_deref().map(|c| (c, conn_state_index(c)));
        let evidence = e.evidence.as_deref().map(|v| (v, evidence_set(v)));

        let mut bits = 0;
        let mut flag = |set: bool, bit: u64| {
            if set {
                bits |= bit;
            }
        };
        flag(e.is_orig, IS_ORIG);
        flag(cause.is_some(), CAUSE);
        flag(matches!(cause, Some((_, None))), CAUSE_TEXT);
        flag(e.injected.is_some(), INJECTED);
        flag(e.injected == Some(true), INJECTED_TRUE);
        flag(evidence.is_some(), EVIDENCE);
        flag(matches!(evidence, Some((_, None))), EVIDENCE_TEXT);
        flag(e.ip_id.is_some(), IP_ID);
        flag(e.df.is_some(), DF);
        flag(e.df == Some(true), DF_TRUE);
        flag(e.payload.is_some(), PAYLOAD);
        flag(e.reason.is_some(), REASON);
        flag(e.sender_ttl.is_some(), SENDER_TTL);
        flag(e.rst_count.is_some(), RST_COUNT);
        flag(e.history.is_some(), HISTORY);
        flag(conn_state.is_some(), CONN_STATE);
        flag(matches!(conn_state, Some((_, None))), CONN_STATE_TEXT);
        flag(e.duration_ns.is_some(), DURATION);
        flag(e.idle_ns.is_some(), IDLE);
        flag(e.orig_pkts.is_some(), ORIG_PKTS);
        flag(e.resp_pkts.is_some(), RESP_PKTS);
        flag(sensor.is_some(), SENSOR);
        flag(e.orig_h.is_ipv6(), ORIG_V6);
        flag(e.resp_h.is_ipv6(), RESP_V6);
        flag(uid.is_none(), UID_TEXT);
        flag(community_id.is_none(), COMMUNITY_ID_TEXT);

        let w = &mut self.row;
        w.buf.clear();
        put_varint(w, tag);
        put_varint(w, bits);
        put_signed(w, e.ts_ns.wrapping_sub(self.prev_ts));
        self.prev_ts = e.ts_ns;
        match uid {
            Some((high, low)) => {
                w.u64(high);
                w.u32(low);
            }
            None => put_text(w, e.uid.as_bytes()),
        }
        match community_id {
            Some(hash) => w.buf.extend_from_slice(&hash),
            None => put_text(w, e.community_id.as_bytes()),
        }
        put_addr(w, e.orig_h);
        w.u16(e.orig_p);
        put_addr(w, e.resp_h);
        w.u16(e.resp_p);
        match cause {
            Some((_, Some(i))) => w.u8(i),
            Some((text, None)) => put_text(w, text.as_bytes()),
            None => {}
        }
        match evidence {
            Some((_, Some(set))) => put_varint(w, set),
            Some((names, None)) => {
                put_varint(w, names.len() as u64);
                for n in names {
                    put_text(w, n.as_bytes());
                }
            }
            None => {}
        }
        w.u16(e.flags);
        w.u32(e.seq);
        w.u32(e.ack);
        w.u16(e.win);
        w.u8(e.ttl);
        if let Some(v) = e.ip_id {
            w.u16(v);
        }
        put_varint(w, e.payload_len as u64);
        if let Some(p) = &e.payload {
            put_text(w, p);
        }
        if let Some(r) = &e.reason {
            put_text(w, r.as_bytes());
        }
        if let Some(v) = e.sender_ttl {
            w.u8(v);
        }
        w.u8(e.initial_ttl);
        if let Some(v) = e.rst_count {
            put_varint(w, v as u64);
        }
        if let Some(h) = &e.history {
            put_text(w, h.as_bytes());
        }
        match conn_state {
            Some((_, Some(i))) => w.u8(i),
            Some((text, None)) => put_text(w, text.as_bytes()),
            None => {}
        }
        for v in [e.duration_ns, e.idle_ns].into_iter().flatten() {
            put_signed(w, v);
        }
        for v in [e.orig_pkts, e.resp_pkts].into_iter().flatten() {
            put_varint(w, v);
        }
        put_varint(w, source as u64);
        let last = &mut self.last_frame[source as usize];
        put_signed(w, e.frame.wrapping_sub(*last) as i64);
        *last = e.frame;
        if let Some(id) = sensor {
            put_varint(w, id as u64);
        }
        put_header(out, w.buf.len(), FRAME_ROW);
        out.extend_from_slice(&w.buf);
    }
}

/// One spill file's reading state: the names it defined so far and the values rows are
/// written as deltas from.
#[derive(Debug, Default)]
pub(crate) struct RowDecoder {
    names: Vec<Arc<[u8]>>,
    last_frame: Vec<u64>,
    prev_ts: i64,
}

impl RowDecoder {
    /// Take in a frame's body: a row, or `None` for a name definition. Offsets in errors are
    /// from the body's start.
    pub(crate) fn frame(
        &mut self,
        kind: u64,
        body: &[u8],
    ) -> Result<Option<(ResetEvent, u64)>, DecodeError> {
        if kind == FRAME_NAME {
            self.names.push(Arc::from(body));
            self.last_frame.push(0);
            return Ok(None);
        }
        let mut r = Reader::new(body);
        let tag = get_varint(&mut r)?;
        let row = self.row(&mut r)?;
        if r.remaining() != 0 {
            return Err(r.error(format!("{} bytes after the row", r.remaining())));
        }
        Ok(Some((row, tag)))
    }

    fn name(&self, r: &mut Reader<'_>) -> Result<(usize, Arc<[u8]>), DecodeError> {
        let at = r.offset();
        let id = get_varint(r)?;
        match self.names.get(id as usize) {
            Some(n) if id <= u32::MAX as u64 => Ok((id as usize, Arc::clone(n))),
            _ => Err(bad(at, format!("name {id} before its definition"))),
        }
    }

    fn row(&mut self, r: &mut Reader<'_>) -> Result<ResetEvent, DecodeError> {
        let at = r.offset();
        let bits = get_varint(r)?;
        if bits & !ALL_BITS != 0 {
            return Err(bad(at, format!("unknown row bits {bits:#x}")));
        }
        let has = |bit: u64| bits & bit != 0;
        let ts_ns = self.prev_ts.wrapping_add(get_signed(r)?);
        self.prev_ts = ts_ns;
        let uid = if has(UID_TEXT) {
            get_str(r)?.to_owned()
        } else {
            let high = r.u64()?;
            render_uid(high, r.u32()?)
        };
        let community_id = if has(COMMUNITY_ID_TEXT) {
            get_str(r)?.to_owned()
        } else {
            render_community_id(r.take(20)?)
        };
        let orig_h = get_addr(r, has(ORIG_V6))?;
        let orig_p = r.u16()?;
        let resp_h = get_addr(r, has(RESP_V6))?;
        let resp_p = r.u16()?;
        let cause = if !has(CAUSE) {
            None
        } else if has(CAUSE_TEXT) {
            Some(Cow::Owned(get_str(r)?.to_owned()))
        } else {
            let at = r.offset();
            let i = r.u8()? as usize;
            let c = Cause::ALL
                .get(i)
                .ok_or_else(|| bad(at, format!("unknown cause {i}")))?;
            Some(Cow::Borrowed(c.name()))
        };
        let evidence = if !has(EVIDENCE) {
            None
        } else if has(EVIDENCE_TEXT) {
            let n = get_varint(r)?;
            // Each name takes at least its length byte.
            if n > r.remaining() as u64 {
                return Err(r.error(format!("{n} evidence names in {} bytes", r.remaining())));
            }
            let mut names = Vec::with_capacity(n as usize);
            for _ in 0..n {
                names.push(evidence_static(get_str(r)?));
            }
            Some(names)
        } else {
            let at = r.offset();
            let set = get_varint(r)?;
            if set >> Evidence::NAMES.len() != 0 {
                return Err(bad(at, format!("unknown evidence in the set {set:#x}")));
            }
            Some(
                (0..Evidence::NAMES.len())
                    .filter(|i| set & 1 << i != 0)
                    .map(|i| Evidence::NAMES[i].1)
                    .collect(),
            )
        };
        let flags = r.u16()?;
        let seq = r.u32()?;
        let ack = r.u32()?;
        let win = r.u16()?;
        let ttl = r.u8()?;
        let ip_id = if has(IP_ID) { Some(r.u16()?) } else { None };
        let at = r.offset();
        let payload_len =
            u32::try_from(get_varint(r)?).map_err(|_| bad(at, "a payload length over 32 bits"))?;
        let payload = if has(PAYLOAD) {
            Some(get_text(r)?.to_vec())
        } else {
            None
        };
        let reason = if has(REASON) {
            Some(get_str(r)?.to_owned())
        } else {
            None
        };
        let sender_ttl = if has(SENDER_TTL) { Some(r.u8()?) } else { None };
        let initial_ttl = r.u8()?;
        let rst_count = if has(RST_COUNT) {
            let at = r.offset();
            Some(u32::try_from(get_varint(r)?).map_err(|_| bad(at, "a rst_count over 32 bits"))?)
        } else {
            None
        };
        let history = if has(HISTORY) {
            Some(get_str(r)?.to_owned())
        } else {
            None
        };
        let conn_state = if !has(CONN_STATE) {
            None
        } else if has(CONN_STATE_TEXT) {
            Some(Cow::Owned(get_str(r)?.to_owned()))
        } else {
            let at = r.offset();
            let i = r.u8()? as usize;
            let s = CONN_STATES
                .get(i)
                .ok_or_else(|| bad(at, format!("unknown conn_state {i}")))?;
            Some(Cow::Borrowed(*s))
        };
        let duration_ns = if has(DURATION) {
            Some(get_signed(r)?)
        } else {
            None
        };
        let idle_ns = if has(IDLE) {
            Some(get_signed(r)?)
        } else {
            None
        };
        let orig_pkts = if has(ORIG_PKTS) {
            Some(get_varint(r)?)
        } else {
            None
        };
        let resp_pkts = if has(RESP_PKTS) {
            Some(get_varint(r)?)
        } else {
            None
        };
        let (source_id, source) = self.name(r)?;
        let last = &mut self.last_frame[source_id];
        let frame = last.wrapping_add(get_signed(r)? as u64);
        *last = frame;
        let sensor = if has(SENSOR) {
            Some(self.name(r)?.1)
        } else {
            None
        };
        Ok(ResetEvent {
            ts_ns,
            uid,
            community_id,
            orig_h,
            orig_p,
            resp_h,
            resp_p,
            is_orig: has(IS_ORIG),
            cause,
            injected: has(INJECTED).then_some(has(INJECTED_TRUE)),
            evidence,
            flags,
            seq,
            ack,
            win,
            ttl,
            ip_id,
            df: has(DF).then_some(has(DF_TRUE)),
            payload_len,
            payload,
            reason,
            sender_ttl,
            initial_ttl,
            rst_count,
            history,
            conn_state,
            duration_ns,
            idle_ns,
            orig_pkts,
            resp_pkts,
            source,
            frame,
            sensor,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use rstscope_flow::zeek::{conn_state, EpState};

    use super::*;
    use crate::spill::tests::{any_row, refused_rows};

    pub(crate) fn uid_text(high: u64, low: u32) -> String {
        render_uid(high, low)
    }

    pub(crate) fn community_id_text(hash: &[u8; 20]) -> String {
        render_community_id(hash)
    }

    /// The rows of encoded frames.
    fn decode_all(bytes: &[u8]) -> Result<Vec<ResetEvent>, DecodeError> {
        let mut r = Reader::new(bytes);
        let mut d = RowDecoder::default();
        let mut rows = Vec::new();
        while r.remaining() > 0 {
            let header = get_varint(&mut r)?;
            let body = r.take(usize::try_from(header >> 1).unwrap_or(usize::MAX))?;
            rows.extend(d.frame(header & 1, body)?.map(|(row, _)| row));
        }
        Ok(rows)
    }

    fn encode_all(rows: &[ResetEvent]) -> Vec<u8> {
        let mut e = RowEncoder::default();
        let mut out = Vec::new();
        for r in rows {
            e.encode(r, 0, &mut out);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every field comes back; a known cause or conn_state comes back borrowed, and a
        /// file's rows share one `Arc` per name.
        #[test]
        fn rows_round_trip(
            rows in proptest::collection::vec(any_row(false), 0..12),
            tied in proptest::collection::vec(any_row(true), 0..12),
        ) {
            let rows: Vec<ResetEvent> = rows.into_iter().chain(tied).collect();
            let back = decode_all(&encode_all(&rows)).unwrap();
            prop_assert_eq!(&back, &rows);
            for (b, r) in back.iter().zip(&rows) {
                if let Some(c) = &b.cause {
                    let known = cause_index(c).is_some();
                    prop_assert_eq!(matches!(c, Cow::Borrowed(_)), known, "{:?} of {:?}", c, r.cause);
                }
                if let Some(s) = &b.conn_state {
                    let known = conn_state_index(s).is_some();
                    prop_assert_eq!(matches!(s, Cow::Borrowed(_)), known);
                }
            }
            for (a, b) in back.iter().zip(back.iter().skip(1)) {
                if a.source == b.source {
                    prop_assert!(Arc::ptr_eq(&a.source, &b.source));
                }
            }
        }

        #[test]
        fn any_bytes_decode_to_rows_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_all(&bytes);
        }
    }

    #[test]
    fn every_conn_state_the_tracker_makes_is_in_the_list() {
        use EpState::*;
        let states = [
            Inactive,
            SynSent,
            SynAckSent,
            Partial,
            Established,
            Closed,
            Reset,
        ];
        for o in states {
            for r in states {
                for zero in [false, true] {
                    for history in [&b""[..], b"SR", b"SaR", b"ShR", b"^SR", b"R"] {
                        let s = conn_state(o, r, zero, history);
                        assert!(CONN_STATES.contains(&s), "{s}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_trackers_uids_and_community_ids_are_stored_compact() {
        let rows = refused_rows(2000, 1_000_000);
        for r in &rows {
            assert!(compact_uid(&r.uid).is_some(), "{}", r.uid);
            assert!(
                compact_community_id(&r.community_id).is_some(),
                "{}",
                r.community_id
            );
        }
        assert_eq!(decode_all(&encode_all(&rows)).unwrap(), rows);
    }

    /// A scan night's refused rows take under 100 bytes each.
    #[test]
    fn refused_rows_are_small() {
        let mut rows = refused_rows(5000, 120_000);
        crate::sort_rows(&mut rows, 1);
        let bytes = encode_all(&rows).len() / rows.len();
        assert!(bytes < 100, "{bytes} bytes per row");
    }

    #[test]
    fn varints_refuse_more_than_64_bits() {
        let mut w = Writer::default();
        put_varint(&mut w, u64::MAX);
        assert_eq!(get_varint(&mut Reader::new(&w.buf)).unwrap(), u64::MAX);
        let mut long = w.buf.clone();
        *long.last_mut().unwrap() = 0x02;
        assert!(get_varint(&mut Reader::new(&long)).is_err());
        for v in [i64::MIN, -1, 0, 1, i64::MAX] {
            let mut w = Writer::default();
            put_signed(&mut w, v);
            assert_eq!(get_signed(&mut Reader::new(&w.buf)).unwrap(), v);
        }
    }
}
