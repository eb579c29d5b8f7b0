//! A generated capture of long-lived, varied connections (shared by carry.rs and
//! sort_memory.rs): connections spanning two hours of packet time, idle gaps around Zeek's
//! timeouts, FIN then RST, refused and retried SYNs, RSTs followed by data, RST bursts, 5-tuple
//! reuse, connections still open at the end.

use rstscope_gen::Rng;
use rstscope_pcapgen::{flags::*, Link, Record, Tcp};

/// One connection's (or 5-tuple's) packets, with a running clock in µs.
struct Flow {
    t: i64,
    out: Vec<(i64, Tcp)>,
    cli: Tcp,
    srv: Tcp,
    ids: (u16, u16),
}

impl Flow {
    fn new(i: usize, start_us: i64, rng: &mut Rng) -> Flow {
        let sport = [80u16, 443, 22, 25, 8080, 3306][rng.below(6) as usize];
        let cport = 20_000 + (i % 40_000) as u16;
        let cli = if rng.below(10) == 0 {
            Tcp::new(
                &format!("2001:db8:c::{:x}", i + 1),
                cport,
                &format!("2001:db8:5::{:x}", i % 50 + 1),
                sport,
            )
        } else {
            Tcp::new(
                &format!("10.{}.{}.7", i / 250, i % 250),
                cport,
                &format!("192.0.2.{}", i % 200 + 1),
                sport,
            )
        };
        let srv = cli.reply();
        Flow {
            t: start_us,
            out: Vec::new(),
            cli: cli.ttl(64),
            srv: srv.ttl(57),
            ids: (rng.below(60_000) as u16, rng.below(60_000) as u16),
        }
    }

    fn push(&mut self, gap_us: i64, tcp: Tcp) -> &mut Flow {
        self.t += gap_us;
        self.out.push((self.t, tcp));
        self
    }

    /// A packet from the client: seq, ack, flags, payload bytes.
    fn c(&mut self, gap_us: i64, seq: u32, ack: u32, flags: u16, len: usize) -> &mut Flow {
        self.ids.0 = self.ids.0.wrapping_add(1);
        let t = self
            .cli
            .clone()
            .seq(seq)
            .ack(ack)
            .flags(flags)
            .ip_id(self.ids.0)
            .payload(vec![b'c'; len]);
        self.push(gap_us, t)
    }

    /// A packet from the server.
    fn s(&mut self, gap_us: i64, seq: u32, ack: u32, flags: u16, len: usize) -> &mut Flow {
        self.ids.1 = self.ids.1.wrapping_add(1);
        let t = self
            .srv
            .clone()
            .seq(seq)
            .ack(ack)
            .flags(flags)
            .ip_id(self.ids.1)
            .payload(vec![b's'; len]);
        self.push(gap_us, t)
    }
}

const MS: i64 = 1_000;
const SEC: i64 = 1_000_000;

/// Idle gaps around Zeek's timers: close delay 5 s, handshake 60 s, inactivity 300 s.
const GAPS: [i64; 9] = [
    10 * MS,
    400 * MS,
    3 * SEC,
    7 * SEC,
    30 * SEC,
    70 * SEC,
    200 * SEC,
    310 * SEC,
    700 * SEC,
];

/// Adds a handshake and `rounds` request/response exchanges separated by idle gaps; returns
/// the next client and server sequence numbers.
fn established(f: &mut Flow, rng: &mut Rng, rounds: u64, gaps: &[i64]) -> (u32, u32) {
    let (ic, is) = (rng.next_u64() as u32, rng.next_u64() as u32);
    f.c(0, ic, 0, SYN, 0)
        .s(2 * MS, is, ic.wrapping_add(1), SYN | ACK, 0)
        .c(MS, ic.wrapping_add(1), is.wrapping_add(1), ACK, 0);
    let (mut cs, mut ss) = (ic.wrapping_add(1), is.wrapping_add(1));
    for _ in 0..rounds {
        let gap = gaps[rng.below(gaps.len() as u64) as usize];
        let (q, r) = (20 + rng.below(200) as usize, 40 + rng.below(400) as usize);
        f.c(gap, cs, ss, PSH | ACK, q);
        cs = cs.wrapping_add(q as u32);
        f.s(5 * MS, ss, cs, PSH | ACK, r);
        ss = ss.wrapping_add(r as u32);
    }
    (cs, ss)
}

/// One flow of a random kind starting at `start_us`.
fn flow(i: usize, start_us: i64, rng: &mut Rng) -> Vec<(i64, Tcp)> {
    let mut f = Flow::new(i, start_us, rng);
    match rng.below(11) {
        // A refused SYN, retried up to twice.
        0 => {
            let isn = rng.next_u64() as u32;
            for k in 0..=rng.below(3) {
                let gap = if k == 0 { 0 } else { SEC };
                f.c(gap, isn, 0, SYN, 0)
                    .s(MS / 5, 0, isn.wrapping_add(1), RST | ACK, 0);
            }
        }
        // A half-open scan.
        1 => {
            let (ic, is) = (rng.next_u64() as u32, rng.next_u64() as u32);
            f.c(0, ic, 0, SYN, 0)
                .s(MS, is, ic.wrapping_add(1), SYN | ACK, 0)
                .c(MS / 2, ic.wrapping_add(1), 0, RST, 0);
        }
        // An unanswered SYN, and a RST long after the attempt timed out.
        2 => {
            let isn = rng.next_u64() as u32;
            f.c(0, isn, 0, SYN, 0).c(3 * SEC, isn, 0, SYN, 0).c(
                10 * SEC,
                isn.wrapping_add(1),
                0,
                RST,
                0,
            );
        }
        // A handshake left half-done for longer than the handshake timeout, then a RST.
        3 => {
            let (ic, is) = (rng.next_u64() as u32, rng.next_u64() as u32);
            f.c(0, ic, 0, SYN, 0)
                .s(MS, is, ic.wrapping_add(1), SYN | ACK, 0)
                .c(
                    [30, 61, 100][rng.below(3) as usize] * SEC,
                    ic.wrapping_add(1),
                    is.wrapping_add(1),
                    RST | ACK,
                    0,
                );
        }
        // Picked up mid-stream (no handshake), then reset after a gap; or data to a host that
        // knows nothing of it, answered by a RST with seq = its ACK (unsolicited).
        4 => {
            let (cs, ss) = (rng.next_u64() as u32, rng.next_u64() as u32);
            let gap = GAPS[rng.below(GAPS.len() as u64) as usize];
            f.s(0, ss, cs, PSH | ACK, 100);
            if rng.below(2) == 0 {
                f.c(MS, cs, ss.wrapping_add(100), ACK, 0).s(
                    gap,
                    ss.wrapping_add(100),
                    cs,
                    RST | ACK,
                    0,
                );
            } else {
                f.c(MS / 5, cs, 0, RST, 0)
                    .s(gap, ss.wrapping_add(100), cs, PSH | ACK, 10);
            }
        }
        // A FIN exchange, then traffic after the close delay: a new, partial connection.
        5 => {
            let rounds = 1 + rng.below(3);
            let (cs, ss) = established(&mut f, rng, rounds, &GAPS[..4]);
            f.c(MS, cs, ss, FIN | ACK, 0)
                .s(MS, ss, cs.wrapping_add(1), FIN | ACK, 0)
                .c(MS, cs.wrapping_add(1), ss.wrapping_add(1), ACK, 0)
                .s(
                    [2, 6, 40][rng.below(3) as usize] * SEC,
                    ss.wrapping_add(1),
                    cs.wrapping_add(1),
                    PSH | ACK,
                    30,
                )
                .c(MS, cs.wrapping_add(1), 0, RST, 0);
        }
        // One 5-tuple, two connections: refused, then accepted and aborted.
        6 => {
            let isn = rng.next_u64() as u32;
            f.c(0, isn, 0, SYN, 0)
                .s(MS, 0, isn.wrapping_add(1), RST | ACK, 0);
            f.t += [2, 20][rng.below(2) as usize] * SEC;
            let (cs, ss) = established(&mut f, rng, 2, &GAPS[..5]);
            f.s(SEC, ss, cs, RST | ACK, 0);
        }
        // Alive across the whole capture: data every few minutes, under the inactivity
        // timeout, then reset (or left open).
        7 => {
            let rounds = 10 + rng.below(15);
            let (cs, ss) = established(&mut f, rng, rounds, &[200 * SEC, 280 * SEC]);
            if rng.below(2) == 0 {
                f.c(90 * SEC, cs, ss, RST | ACK, 0);
            }
        }
        // Idle longer than the inactivity timeout, then more data and a RST.
        8 => {
            let (cs, ss) = established(&mut f, rng, 1, &GAPS[..3]);
            f.c(
                [301, 450, 1200][rng.below(3) as usize] * SEC,
                cs,
                ss,
                PSH | ACK,
                50,
            )
            .s(MS, ss, cs.wrapping_add(50), RST | ACK, 0);
        }
        // An injected RST, the real client's data right after it (data_after_rst), or a burst
        // of RSTs with changing TTL and seq.
        9 => {
            let rounds = 1 + rng.below(4);
            let (cs, ss) = established(&mut f, rng, rounds, &GAPS);
            let forged = f.cli.clone().seq(cs).ack(ss).flags(RST | ACK).ttl(200);
            f.push(SEC, forged);
            if rng.below(2) == 0 {
                f.c(
                    [300 * MS, 4 * SEC][rng.below(2) as usize],
                    cs,
                    ss,
                    PSH | ACK,
                    60,
                )
                .s(MS, ss, cs.wrapping_add(60), ACK, 0);
            } else {
                for k in 1..=3u32 {
                    let t = f.srv.clone().seq(ss.wrapping_add(k * 1000)).flags(RST);
                    f.push(200 * MS, t.ttl(50 + k as u8));
                }
            }
        }
        // A long exchange with any gaps, ended every way there is — or not at all.
        _ => {
            let rounds = 1 + rng.below(8);
            let (cs, ss) = established(&mut f, rng, rounds, &GAPS);
            let gap = GAPS[rng.below(GAPS.len() as u64) as usize];
            match rng.below(7) {
                0 => {
                    f.c(gap, cs, ss, RST | ACK, 0);
                }
                1 => {
                    f.s(gap, ss, cs, RST, 0);
                }
                2 => {
                    // FIN, then the peer resets.
                    f.c(gap, cs, ss, FIN | ACK, 0)
                        .s(MS, ss, cs.wrapping_add(1), RST | ACK, 0);
                }
                3 => {
                    // A FIN exchange, then late RSTs after the close.
                    f.s(gap, ss, cs, FIN | ACK, 0)
                        .c(MS, cs, ss.wrapping_add(1), FIN | ACK, 0)
                        .s(MS, ss.wrapping_add(1), cs.wrapping_add(1), ACK, 0)
                        .c(2 * SEC, cs.wrapping_add(1), 0, RST, 0)
                        .c(SEC, cs.wrapping_add(1), 0, RST, 0);
                }
                4 => {
                    // Two RSTs from the client, the second with a changed seq.
                    f.c(gap, cs, ss, RST | ACK, 0).c(
                        500 * MS,
                        cs.wrapping_add(5000),
                        ss,
                        RST | ACK,
                        0,
                    );
                }
                5 => {
                    // RST with FIN set.
                    f.c(gap, cs, ss, RST | FIN | ACK, 0);
                }
                _ => {} // still open at the end of the capture
            }
        }
    }
    f.out
}

/// The packets of `flows` connections starting over an hour and lasting up to two more, in
/// packet-time order, as Ethernet records.
pub fn records(seed: u64, flows: usize) -> Vec<Record> {
    let mut rng = Rng::new(seed);
    let mut events: Vec<(i64, usize, usize, Tcp)> = Vec::new();
    for i in 0..flows {
        let start = rng.below(3600) as i64 * SEC + rng.below(1_000_000) as i64;
        for (k, (t, tcp)) in flow(i, start, &mut rng).into_iter().enumerate() {
            events.push((t, i, k, tcp));
        }
    }
    events.sort_by_key(|(t, i, k, _)| (*t, *i, *k));
    events
        .into_iter()
        .map(|(t, _, _, tcp)| {
            Record::new(
                rstscope_gen::T0 + t * 1000,
                Link::Ethernet.frame(&tcp.to_ip()),
            )
        })
        .collect()
}
