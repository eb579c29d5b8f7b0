//! The primitives of the compact binary encodings of state that outlives a run (the carry of
//! live connections) or a buffer (the sort's runs of rows). Little-endian, length-prefixed, no padding; the
//! reader checks every length against what is left, so corrupt or hostile bytes give an error
//! naming the byte offset, never a panic or an allocation larger than the input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_every_truncation_is_an_error() {
        let mut w = Writer::default();
        w.u8(7);
        w.bool(true);
        w.u16(65_000);
        w.u32(4_000_000_000);
        w.u64(u64::MAX - 1);
        w.i64(-5);
        w.u128(1 << 100);
        w.bytes(b"\xffab\t");
        w.str("uid");
        w.addr("2001:db8::1".parse().unwrap());
        w.addr("192.0.2.1".parse().unwrap());
        w.opt(Some(3u32), |w, v| w.u32(v));
        w.opt(None::<u32>, |w, v| w.u32(v));
        let read = |bytes: &[u8]| -> Result<(), DecodeError> {
            let mut r = Reader::new(bytes);
            assert_eq!(r.u8()?, 7);
            assert!(r.bool()?);
            assert_eq!(r.u16()?, 65_000);
            assert_eq!(r.u32()?, 4_000_000_000);
            assert_eq!(r.u64()?, u64::MAX - 1);
            assert_eq!(r.i64()?, -5);
            assert_eq!(r.u128()?, 1 << 100);
            assert_eq!(r.bytes()?, b"\xffab\t");
            assert_eq!(r.str()?, "uid");
            assert_eq!(r.addr()?, "2001:db8::1".parse::<IpAddr>().unwrap());
            assert_eq!(r.addr()?, "192.0.2.1".parse::<IpAddr>().unwrap());
            assert_eq!(r.opt(|r| r.u32())?, Some(3));
            assert_eq!(r.opt(|r| r.u32())?, None);
            assert_eq!(r.remaining(), 0);
            Ok(())
        };
        read(&w.buf).unwrap();
        for n in 0..w.buf.len() {
            assert!(read(&w.buf[..n]).is_err(), "{n} bytes");
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
