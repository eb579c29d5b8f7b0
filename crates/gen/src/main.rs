//! rstscope-gen: write `testdata/` or a benchmark archive.
//!
//!   rstscope-gen testdata DIR
//!   rstscope-gen bench DIR --bytes N [--files K] [--seed S]
//!   rstscope-gen synflood FILE CONNECTIONS
//!   rstscope-gen rsts FILE N [--over SECONDS]

use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use rstscope_gen::{testdata, write_bench, BenchSpec, T0};

fn usage() -> ! {
    eprintln!(
        "usage: rstscope-gen testdata DIR\n       rstscope-gen bench DIR --bytes N [--files K] [--seed S]\n       rstscope-gen synflood FILE CONNECTIONS\n       rstscope-gen rsts FILE N [--over SECONDS]"
    );
    std::process::exit(2)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("testdata") if args.len() == 2 => {
            let dir = PathBuf::from(&args[1]);
            for (rel, bytes) in testdata() {
                rstscope_pcapgen::write_file(&dir.join(&rel), &bytes)
                    .with_context(|| format!("writing {rel}"))?;
            }
            Ok(())
        }
        Some("bench") if args.len() >= 2 => {
            let dir = PathBuf::from(&args[1]);
            let mut bytes: Option<u64> = None;
            let mut files = 1u64;
            let mut seed = 1u64;
            let mut it = args[2..].iter();
            while let Some(a) = it.next() {
                let v = it.next().unwrap_or_else(|| usage());
                match a.as_str() {
                    "--bytes" => bytes = Some(parse_size(v)?),
                    "--files" => files = v.parse()?,
                    "--seed" => seed = v.parse()?,
                    _ => usage(),
                }
            }
            let Some(bytes) = bytes else { usage() };
            if files == 0 {
                bail!("--files must be at least 1");
            }
            std::fs::create_dir_all(&dir)?;
            let per_file = bytes / files;
            let mut start = T0;
            for i in 0..files {
                let path = dir.join(format!("bench-{i:03}.pcap"));
                let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
                let spec = BenchSpec {
                    bytes: per_file,
                    concurrent: 200,
                    seed: seed.wrapping_mul(1000).wrapping_add(i),
                };
                let (packets, rsts) = write_bench(&mut out, spec, start)?;
                start += 3_600_000_000_000;
                eprintln!("{}: {packets} packets, {rsts} RSTs", path.display());
            }
            Ok(())
        }
        Some("synflood") if args.len() == 3 => {
            // A SYN flood of N distinct connections (sources spread over 10.0.0.0/8 and ports).
            let n: u64 = parse_size(&args[2])?;
            let w = rstscope_pcapgen::PcapWriter::new(1);
            let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&args[1])?);
            std::io::Write::write_all(&mut out, &w.header())?;
            for i in 0..n {
                let src = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
                let sport = 1024 + ((i >> 24) % 60000) as u16;
                let t = rstscope_pcapgen::Tcp::new(&src, sport, "192.0.2.1", 80)
                    .seq(i as u32)
                    .flags(rstscope_pcapgen::flags::SYN);
                let rec = rstscope_pcapgen::Record::new(
                    T0 + i as i64 * 1000,
                    rstscope_pcapgen::Link::Ethernet.frame(&t.to_ip()),
                );
                std::io::Write::write_all(&mut out, &w.record(&rec))?;
            }
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
        Some("rsts") if args.len() == 3 || (args.len() == 5 && args[3] == "--over") => {
            // N RSTs: every one the answer to a SYN to a closed port (seq 0, ACK, ack = ISN + 1,
            // window 0), from N distinct scanned hosts and ports, a 256-byte payload on every
            // tenth (the most a row keeps). Connections start 2 µs apart (1 M within 2 s, all
            // inside the close delay), or spread evenly over `--over SECONDS` of packet time.
            let n: u64 = parse_size(&args[2])?;
            let step_ns = match args.get(4) {
                None => 2000,
                Some(secs) => spacing_ns(secs, n)?,
            };
            // The RST follows its SYN by 500 ns, or by half the spacing when that is shorter.
            let answer_ns = 500.min(step_ns / 2);
            let w = rstscope_pcapgen::PcapWriter::new(1);
            let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&args[1])?);
            std::io::Write::write_all(&mut out, &w.header())?;
            let payload = [b'x'; 256];
            for i in 0..n {
                let dst = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
                let dport = 1 + (i % 1024) as u16;
                let sport = 1024 + ((i >> 24) % 60000) as u16;
                let isn = (i as u32).wrapping_mul(2_654_435_761);
                let syn = rstscope_pcapgen::Tcp::new("192.0.2.7", sport, &dst, dport)
                    .seq(isn)
                    .flags(rstscope_pcapgen::flags::SYN);
                let mut rst = rstscope_pcapgen::Tcp::new(&dst, dport, "192.0.2.7", sport)
                    .seq(0)
                    .ack(isn.wrapping_add(1))
                    .window(0)
                    .flags(rstscope_pcapgen::flags::RST | rstscope_pcapgen::flags::ACK);
                if i % 10 == 0 {
                    rst = rst.payload(payload);
                }
                for (k, t) in [syn, rst].iter().enumerate() {
                    let rec = rstscope_pcapgen::Record::new(
                        T0 + i as i64 * step_ns + k as i64 * answer_ns,
                        rstscope_pcapgen::Link::Ethernet.frame(&t.to_ip()),
                    );
                    std::io::Write::write_all(&mut out, &w.record(&rec))?;
                }
            }
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
        _ => usage(),
    }
}

/// Nanoseconds between the starts of `n` connections spread evenly over `secs` seconds (a
/// decimal number): at least 2, so that a RST can follow its SYN.
fn spacing_ns(secs: &str, n: u64) -> Result<i64> {
    let secs: f64 = secs.parse().context("--over: seconds")?;
    if !secs.is_finite() || secs <= 0.0 {
        bail!("--over: {secs} is not a positive number of seconds");
    }
    let n = n.max(1);
    let step = (secs * 1e9 / n as f64).round();
    if step < 2.0 || step > (i64::MAX / n as i64) as f64 {
        bail!("--over {secs}: {n} connections cannot be spread over that");
    }
    Ok(step as i64)
}

fn parse_size(s: &str) -> Result<u64> {
    let (num, mult) = match s.to_ascii_lowercase() {
        x if x.ends_with("gib") || x.ends_with('g') => (
            x.trim_end_matches("gib").trim_end_matches('g').to_string(),
            1u64 << 30,
        ),
        x if x.ends_with("mib") || x.ends_with('m') => (
            x.trim_end_matches("mib").trim_end_matches('m').to_string(),
            1u64 << 20,
        ),
        x => (x, 1),
    };
    Ok(num.parse::<u64>().context("size")? * mult)
}

#[cfg(test)]
mod tests {
    use super::spacing_ns;

    #[test]
    fn connections_are_spread_evenly_over_the_seconds_asked() {
        assert_eq!(spacing_ns("600", 5_000_000).unwrap(), 120_000);
        // The default spacing of `rsts`: 1 M within 2 s.
        assert_eq!(spacing_ns("2", 1_000_000).unwrap(), 2000);
        assert_eq!(spacing_ns("0.5", 3).unwrap(), 166_666_667);
        for bad in ["0", "-1", "nan", "inf", "x", "0.000000001"] {
            assert!(spacing_ns(bad, 10).is_err(), "{bad}");
        }
    }
}
