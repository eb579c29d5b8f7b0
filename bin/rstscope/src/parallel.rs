//! The multi-threaded run: the calling thread reads and decodes, worker threads track
//! connections. A connection always goes to the same worker (a fixed hash of its endpoints,
//! in either direction), and each worker gets its segments in capture order, so the rows do
//! not depend on the number of workers.

use std::net::IpAddr;
use std::sync::mpsc;

use rstscope_decode::{Segment, TcpOptions};
use std::sync::atomic::{AtomicI64, Ordering};

use rstscope_flow::{Carry, FlowConfig, FlowStats, Tracker};

use crate::{process_file, InputFile, RunOptions, StreamEnd, StreamOutput};

/// A segment handed to a worker: the decoded fields, and the payload only for RSTs (the only
/// packets whose bytes end up in a row).
pub(crate) struct OwnedSegment {
    ts_ns: i64,
    pub(crate) file: u32,
    frame: u64,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    ip_id: Option<u16>,
    df: Option<bool>,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u16,
    window: u16,
    options: TcpOptions,
    payload_len: u32,
    payload: Vec<u8>,
    tunnel_depth: u8,
}

impl OwnedSegment {
    pub(crate) fn of(s: &Segment<'_>) -> OwnedSegment {
        OwnedSegment {
            ts_ns: s.ts_ns,
            file: s.file,
            frame: s.frame,
            src: s.src,
            dst: s.dst,
            ttl: s.ttl,
            ip_id: s.ip_id,
            df: s.df,
            sport: s.sport,
            dport: s.dport,
            seq: s.seq,
            ack: s.ack,
            flags: s.flags,
            window: s.window,
            options: s.options,
            payload_len: s.payload_len,
            payload: if s.is_rst() {
                s.payload.to_vec()
            } else {
                Vec::new()
            },
            tunnel_depth: s.tunnel_depth,
        }
    }

    pub(crate) fn as_segment(&self) -> Segment<'_> {
        Segment {
            ts_ns: self.ts_ns,
            file: self.file,
            frame: self.frame,
            src: self.src,
            dst: self.dst,
            ttl: self.ttl,
            ip_id: self.ip_id,
            df: self.df,
            sport: self.sport,
            dport: self.dport,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            options: self.options,
            payload_len: self.payload_len,
            payload: &self.payload,
            tunnel_depth: self.tunnel_depth,
        }
    }
}

/// FNV-1a over the endpoints in a fixed order: the same worker for both directions, on every
/// run and machine.
fn shard(seg: &Segment<'_>, workers: usize) -> usize {
    owner((seg.src, seg.sport), (seg.dst, seg.dport), workers)
}

/// The worker that owns the connection between endpoints `a` and `b` (either order).
fn owner(a: (IpAddr, u16), b: (IpAddr, u16), workers: usize) -> usize {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &x in bytes {
            h ^= x as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (addr, port) in [lo, hi] {
        match addr {
            IpAddr::V4(v) => eat(&v.octets()),
            IpAddr::V6(v) => eat(&v.octets()),
        }
        eat(&port.to_be_bytes());
    }
    (h % workers as u64) as usize
}

const BATCH: usize = 1024;

pub(crate) fn run(
    files: &[InputFile],
    opts: &RunOptions,
    workers: usize,
    carry: Carry,
    end: StreamEnd,
) -> StreamOutput {
    let workers = workers.max(1);
    // The stream's clock: the newest segment time, which each worker's own clock may be behind.
    let mut clock = carry.clock;
    let clock_at_end = AtomicI64::new(i64::MIN);
    let mut carries = carry
        .split(workers, |a, b| owner(a, b, workers))
        .into_iter();
    let sources: Vec<&[u8]> = files.iter().map(|f| f.source.as_slice()).collect();
    let cfg = FlowConfig {
        max_connections: (opts.flow.max_connections / workers).max(1),
        ..opts.flow
    };
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = mpsc::sync_channel::<Vec<OwnedSegment>>(16);
            senders.push(tx);
            let sources = &sources;
            let carry = carries.next().unwrap_or_default();
            let clock_at_end = &clock_at_end;
            handles.push(scope.spawn(move || {
                let mut tracker = Tracker::resume(cfg, carry);
                for batch in rx {
                    for s in &batch {
                        tracker.process(&s.as_segment(), sources[s.file as usize]);
                    }
                }
                match end {
                    StreamEnd::Finish => {
                        let (events, stats) = tracker.finish();
                        (events, stats, None)
                    }
                    StreamEnd::Carry => {
                        let (events, stats, carry) =
                            tracker.suspend(clock_at_end.load(Ordering::SeqCst));
                        (events, stats, Some(carry))
                    }
                }
            }));
        }
        let mut batches: Vec<Vec<OwnedSegment>> =
            (0..workers).map(|_| Vec::with_capacity(BATCH)).collect();
        let mut results = Vec::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            let r = process_file(f, i as u32, opts, |seg| {
                clock = clock.max(seg.ts_ns);
                let w = shard(seg, workers);
                batches[w].push(OwnedSegment::of(seg));
                if batches[w].len() >= BATCH {
                    let full = std::mem::replace(&mut batches[w], Vec::with_capacity(BATCH));
                    // A worker only stops early by panicking; the join below reports that.
                    let _ = senders[w].send(full);
                }
            });
            results.push(r);
        }
        for (w, b) in batches.into_iter().enumerate() {
            if !b.is_empty() {
                let _ = senders[w].send(b);
            }
        }
        // Set before the channels close: a worker reads it once its channel is done.
        clock_at_end.store(clock, Ordering::SeqCst);
        drop(senders);
        let mut stats = FlowStats::default();
        let mut parts = Vec::with_capacity(handles.len());
        let mut carries = Vec::with_capacity(handles.len());
        for h in handles {
            let (ev, st, carry) = h.join().expect("connection tracking worker panicked");
            parts.push(ev);
            carries.extend(carry);
            stats.segments += st.segments;
            stats.connections += st.connections;
            stats.evicted += st.evicted;
            stats.peak_connections += st.peak_connections;
            stats.carry_errors += st.carry_errors;
        }
        let events = crate::concat_rows(parts);
        StreamOutput {
            results,
            events,
            stats,
            carry: (end == StreamEnd::Carry).then(|| Carry::merge(carries)),
            parallel: Default::default(),
        }
    })
}
