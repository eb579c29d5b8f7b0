//! A compact binary encoding of rows, for state that outlives a run (the carry of live
//! connections) or a buffer (sorted runs). Little-endian, length-prefixed, no padding; the
//! reader checks every length against what is left, so corrupt or hostile bytes give an error
//! naming the byte offset, never a panic or an allocation larger than the input.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::ResetEvent;

/// Appends values to a byte buffer.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A byte string: u32 length, then the bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
    }
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    pub fn addr(&mut self, a: IpAddr) {
        match a {
            IpAddr::V4(v) => {
                self.u8(4);
                self.buf.extend_from_slice(&v.octets());
            }
            IpAddr::V6(v) => {
                self.u8(6);
                self.buf.extend_from_slice(&v.octets());
            }
        }
    }
    /// An optional value: 0, or 1 followed by the value.
    pub fn opt<T>(&mut self, v: Option<T>, put: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.u8(0),
            Some(x) => {
                self.u8(1);
                put(self, x);
            }
        }
    }
}

/// Why bytes could not be decoded, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub what: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte offset {}", self.what, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// Reads values back, checking every length.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// An error at the current offset.
    pub fn error(&self, what: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            what: what.into(),
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "truncated: {n} bytes needed, {} left",
                self.remaining()
            )));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => {
                self.pos -= 1;
                Err(self.error(format!("invalid boolean {b}")))
            }
        }
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.array()?))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let start = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| DecodeError {
            offset: start,
            what: "a string that is not UTF-8".into(),
        })
    }
    pub fn addr(&mut self) -> Result<IpAddr, DecodeError> {
        match self.u8()? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            t => {
                self.pos -= 1;
                Err(self.error(format!("invalid address family {t}")))
            }
        }
    }
    pub fn opt<T>(
        &mut self,
        get: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => get(self).map(Some),
            b => {
                self.pos -= 1;
                Err(self.error(format!("invalid option tag {b}")))
            }
        }
    }
    /// A count of items that each take at least `min_item` bytes: bounded by what is left, so
    /// a corrupt count cannot make the caller reserve more than the input could hold.
    pub fn count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item.max(1)) > self.remaining() {
            self.pos -= 4;
            return Err(self.error(format!(
                "a count of {n} items that the {} bytes left cannot hold",
                self.remaining() - 4
            )));
        }
        Ok(n)
    }
}

/// The names a row's static strings are chosen from (the contract's vocabulary, which the
/// classifier owns): decoded rows borrow them instead of owning copies.
#[derive(Debug, Clone, Copy)]
pub struct Vocabulary {
    pub causes: &'static [&'static str],
    pub evidence: &'static [&'static str],
    pub conn_states: &'static [&'static str],
}

fn intern(names: &'static [&'static str], s: &str) -> Cow<'static, str> {
    match names.iter().find(|n| **n == s) {
        Some(n) => Cow::Borrowed(n),
        None => Cow::Owned(s.to_string()),
    }
}

impl ResetEvent {
    /// Append this row's encoding.
    pub fn encode(&self, w: &mut Writer) {
        w.i64(self.ts_ns);
        w.str(&self.uid);
        w.str(&self.community_id);
        w.addr(self.orig_h);
        w.u16(self.orig_p);
        w.addr(self.resp_h);
        w.u16(self.resp_p);
        w.bool(self.is_orig);
        w.opt(self.cause.as_deref(), Writer::str);
        w.opt(self.injected, Writer::bool);
        w.opt(self.evidence.as_ref(), |w, ev| {
            w.u32(ev.len() as u32);
            for e in ev {
                w.str(e);
            }
        });
        w.u16(self.flags);
        w.u32(self.seq);
        w.u32(self.ack);
        w.u16(self.win);
        w.u8(self.ttl);
        w.opt(self.ip_id, Writer::u16);
        w.opt(self.df, Writer::bool);
        w.u32(self.payload_len);
        w.opt(self.payload.as_deref(), Writer::bytes);
        w.opt(self.reason.as_deref(), Writer::str);
        w.opt(self.sender_ttl, Writer::u8);
        w.u8(self.initial_ttl);
        w.opt(self.rst_count, Writer::u32);
        w.opt(self.history.as_deref(), Writer::str);
        w.opt(self.conn_state.as_deref(), Writer::str);
        w.opt(self.duration_ns, Writer::i64);
        w.opt(self.idle_ns, Writer::i64);
        w.opt(self.orig_pkts, Writer::u64);
        w.opt(self.resp_pkts, Writer::u64);
        w.bytes(&self.source);
        w.u64(self.frame);
        w.opt(self.sensor.as_deref(), Writer::bytes);
    }

    /// Read a row written by [`ResetEvent::encode`]. `source` is the previous row's capture
    /// file name, shared (not copied) when this row names the same file.
    pub fn decode(
        r: &mut Reader<'_>,
        vocab: &Vocabulary,
        source: Option<&Arc<[u8]>>,
    ) -> Result<ResetEvent, DecodeError> {
        let ts_ns = r.i64()?;
        let uid = r.str()?.to_string();
        let community_id = r.str()?.to_string();
        let orig_h = r.addr()?;
        let orig_p = r.u16()?;
        let resp_h = r.addr()?;
        let resp_p = r.u16()?;
        let is_orig = r.bool()?;
        let cause = r.opt(|r| r.str().map(|s| intern(vocab.causes, s)))?;
        let injected = r.opt(Reader::bool)?;
        let evidence = r.opt(|r| {
            let n = r.count(4)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let at = r.offset();
                let s = r.str()?;
                match vocab.evidence.iter().find(|e| **e == s) {
                    Some(e) => v.push(*e),
                    None => {
                        return Err(DecodeError {
                            offset: at,
                            what: format!("unknown evidence name {s:?}"),
                        })
                    }
                }
            }
            Ok(v)
        })?;
        let flags = r.u16()?;
        let seq = r.u32()?;
        let ack = r.u32()?;
        let win = r.u16()?;
        let ttl = r.u8()?;
        let ip_id = r.opt(Reader::u16)?;
        let df = r.opt(Reader::bool)?;
        let payload_len = r.u32()?;
        let payload = r.opt(|r| r.bytes().map(<[u8]>::to_vec))?;
        let reason = r.opt(|r| r.str().map(str::to_string))?;
        let sender_ttl = r.opt(Reader::u8)?;
        let initial_ttl = r.u8()?;
        let rst_count = r.opt(Reader::u32)?;
        let history = r.opt(|r| r.str().map(str::to_string))?;
        let conn_state = r.opt(|r| r.str().map(|s| intern(vocab.conn_states, s)))?;
        let duration_ns = r.opt(Reader::i64)?;
        let idle_ns = r.opt(Reader::i64)?;
        let orig_pkts = r.opt(Reader::u64)?;
        let resp_pkts = r.opt(Reader::u64)?;
        // Names are bytes (not necessarily UTF-8), written by `Writer::bytes`, as rows written
        // when they were `str` were too.
        let name = r.bytes()?;
        let source = match source {
            Some(s) if **s == *name => Arc::clone(s),
            _ => Arc::from(name),
        };
        let frame = r.u64()?;
        let sensor = r.opt(|r| r.bytes().map(Arc::from))?;
        Ok(ResetEvent {
            ts_ns,
            uid,
            community_id,
            orig_h,
            orig_p,
            resp_h,
            resp_p,
            is_orig,
            cause,
            injected,
            evidence,
            flags,
            seq,
            ack,
            win,
            ttl,
            ip_id,
            df,
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
mod tests {
    use super::*;

    const VOCAB: Vocabulary = Vocabulary {
        causes: &["refused", "abort"],
        evidence: &["seq_zero", "win_nonzero"],
        conn_states: &["REJ"],
    };

    fn rows() -> Vec<ResetEvent> {
        let payload = b"220 mailgat\t\n\x1b\xff".to_vec();
        let seg = rstscope_decode::Segment {
            ts_ns: -5,
            file: 0,
            frame: 7,
            src: "10.0.0.1".parse().unwrap(),
            dst: "2001:db8::1".parse().unwrap(),
            ttl: 60,
            ip_id: Some(9),
            df: Some(false),
            sport: 80,
            dport: 4000,
            seq: 0,
            ack: 1,
            flags: 0x014,
            window: 0,
            options: Default::default(),
            payload_len: payload.len() as u32,
            payload: &payload,
            tunnel_depth: 0,
        };
        let plain = ResetEvent::from_segment(&seg, b"a/b.pcap", &Default::default());
        let mut full = plain.clone();
        full.cause = Some(Cow::Borrowed("refused"));
        full.injected = Some(true);
        full.evidence = Some(vec!["seq_zero", "win_nonzero"]);
        full.conn_state = Some(Cow::Owned("XYZ".into()));
        full.history = Some("Sr".into());
        full.sender_ttl = Some(61);
        full.rst_count = Some(3);
        full.duration_ns = Some(i64::MAX);
        full.idle_ns = Some(0);
        full.orig_pkts = Some(u64::MAX);
        full.resp_pkts = Some(1);
        full.sensor = Some(b"edge\t1".as_slice().into());
        // A name that is not UTF-8 (legal on Linux) keeps its bytes.
        let mut raw = full.clone();
        raw.source = b"bad\xff\xfe.pcap".as_slice().into();
        raw.sensor = Some(b"s\xc3(".as_slice().into());
        vec![plain, full, raw]
    }

    #[test]
    fn rows_round_trip_and_share_their_source() {
        let rows = rows();
        let mut w = Writer::default();
        for r in &rows {
            r.encode(&mut w);
        }
        let mut r = Reader::new(&w.buf);
        let a = ResetEvent::decode(&mut r, &VOCAB, None).unwrap();
        let b = ResetEvent::decode(&mut r, &VOCAB, Some(&a.source)).unwrap();
        let c = ResetEvent::decode(&mut r, &VOCAB, Some(&b.source)).unwrap();
        assert_eq!(r.remaining(), 0);
        assert_eq!(vec![a.clone(), b.clone(), c.clone()], rows);
        assert_eq!(&*c.source, b"bad\xff\xfe.pcap");
        assert!(Arc::ptr_eq(&a.source, &b.source));
        assert!(matches!(b.cause, Some(Cow::Borrowed(_))));
    }

    #[test]
    fn every_truncation_and_byte_flip_is_an_error_or_a_row_never_a_panic() {
        let mut w = Writer::default();
        rows()[1].encode(&mut w);
        for n in 0..w.buf.len() {
            let e = ResetEvent::decode(&mut Reader::new(&w.buf[..n]), &VOCAB, None).unwrap_err();
            assert!(e.offset <= n, "{e}");
        }
        for i in 0..w.buf.len() {
            let mut b = w.buf.clone();
            b[i] ^= 0xa5;
            let _ = ResetEvent::decode(&mut Reader::new(&b), &VOCAB, None);
        }
    }

    #[test]
    fn a_huge_count_is_refused_before_allocating() {
        let mut w = Writer::default();
        w.u32(u32::MAX);
        let e = Reader::new(&w.buf).count(4).unwrap_err();
        assert!(e.what.contains("cannot hold"), "{e}");
    }
}
