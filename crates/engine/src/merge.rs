//! `rstscope merge`: combine the outputs of shard runs (`--shard I/N`) into what one run over
//! every input would have written. Shards own whole sensors, so their rows never overlap and
//! each row is already final; merging reads them back (Zeek TSV or JSON lines, plain or .gz),
//! orders them by (ts, source, frame), and sums the inputs' figures from the shard summaries.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rstscope_flow::{Evidence, FlowStats};
use rstscope_join::{parse_time, unescape};
use rstscope_reset::ResetEvent;
use serde_json::Value;

pub use crate::error::{RowAt, RowProblem, ShardError};
use crate::output::Format;
use crate::summary::RunInputs;

/// One shard's outputs, read back.
pub struct Shard {
    pub dir: PathBuf,
    pub format: Format,
    pub gzip: bool,
    pub events: Vec<ResetEvent>,
    /// `#open`/`#close` as seconds (TSV), or None.
    pub open: Option<i64>,
    pub close: Option<i64>,
    pub summary: Value,
}

fn tcp_flags(text: &str) -> u16 {
    text.chars()
        .map(|c| match c {
            'F' => 0x001,
            'S' => 0x002,
            'R' => 0x004,
            'P' => 0x008,
            '.' => 0x010,
            'U' => 0x020,
            'E' => 0x040,
            'W' => 0x080,
            'e' => 0x100,
            _ => 0,
        })
        .fold(0, |a, b| a | b)
}

fn evidence_name(n: &str) -> Option<&'static str> {
    Evidence::NAMES
        .iter()
        .find(|(_, name)| *name == n)
        .map(|(_, name)| *name)
}

fn rotation_secs(s: &str) -> Option<i64> {
    let p: Vec<i64> = s.split('-').filter_map(|x| x.parse().ok()).collect();
    if p.len() != 6 {
        return None;
    }
    let month = time::Month::try_from(p[1] as u8).ok()?;
    let date = time::Date::from_calendar_date(p[0] as i32, month, p[2] as u8).ok()?;
    let t = date
        .with_hms(p[3] as u8, p[4] as u8, p[5] as u8)
        .ok()?
        .assume_utc();
    Some(t.unix_timestamp())
}

/// A row's fields by name, as text (None when unset); strings still escaped for TSV.
fn event_from(get: &dyn Fn(&str) -> Option<String>, tsv: bool) -> Result<ResetEvent, RowProblem> {
    let need = |n: &'static str| get(n).ok_or(RowProblem::Missing(n));
    let num = |n: &'static str| -> Result<u64, RowProblem> {
        need(n)?.parse::<u64>().map_err(|_| RowProblem::Bad(n))
    };
    let opt_num = |n: &str| -> Option<u64> { get(n).and_then(|v| v.parse().ok()) };
    let text = |n: &str| -> Option<Vec<u8>> {
        get(n).map(|v| {
            if tsv {
                if v == "(empty)" {
                    Vec::new()
                } else {
                    unescape(v.as_bytes()).into_owned()
                }
            } else {
                v.into_bytes()
            }
        })
    };
    let string = |n: &str| text(n).map(|b| String::from_utf8_lossy(&b).into_owned());
    // Capture file and sensor names are bytes, not necessarily UTF-8: kept whole (JSON wrote
    // them as `\xNN`, which is read back to the bytes).
    let name = |n: &str| -> Option<Vec<u8>> {
        if tsv {
            text(n)
        } else {
            get(n).map(|v| crate::inputs::name_from_text(&v).into_owned())
        }
    };
    let time = |n: &str| get(n).and_then(|v| parse_time(&v));
    let boolean = |n: &str| get(n).map(|v| v == "T" || v == "true");
    let addr = |n: &'static str| -> Result<IpAddr, RowProblem> {
        need(n)?.parse().map_err(|_| RowProblem::Bad(n))
    };
    let evidence = get("evidence").map(|v| {
        if tsv {
            if v == "(empty)" {
                Vec::new()
            } else {
                v.split(',').filter_map(evidence_name).collect()
            }
        } else {
            serde_json::from_str::<Vec<String>>(&v)
                .unwrap_or_default()
                .iter()
                .filter_map(|n| evidence_name(n))
                .collect()
        }
    });
    Ok(ResetEvent {
        ts_ns: time("ts").ok_or(RowProblem::Missing("ts"))?,
        uid: string("uid").ok_or(RowProblem::Missing("uid"))?,
        community_id: string("community_id").unwrap_or_default(),
        orig_h: addr("id.orig_h")?,
        orig_p: num("id.orig_p")? as u16,
        resp_h: addr("id.resp_h")?,
        resp_p: num("id.resp_p")? as u16,
        is_orig: boolean("is_orig").unwrap_or(false),
        cause: string("cause").map(Into::into),
        injected: boolean("injected"),
        evidence,
        flags: tcp_flags(&string("flags").unwrap_or_default()),
        seq: num("seq")? as u32,
        ack: num("ack")? as u32,
        win: num("win")? as u16,
        ttl: num("ttl")? as u8,
        ip_id: opt_num("ip_id").map(|v| v as u16),
        df: boolean("df"),
        payload_len: num("payload_len")? as u32,
        payload: text("payload"),
        reason: string("reason"),
        sender_ttl: opt_num("sender_ttl").map(|v| v as u8),
        initial_ttl: num("initial_ttl")? as u8,
        rst_count: opt_num("rst_count").map(|v| v as u32),
        history: string("history"),
        conn_state: string("conn_state").map(Into::into),
        duration_ns: time("duration"),
        idle_ns: time("idle"),
        orig_pkts: opt_num("orig_pkts"),
        resp_pkts: opt_num("resp_pkts"),
        source: name("source").unwrap_or_default().into(),
        frame: num("frame")?,
        sensor: name("sensor").map(Into::into),
    })
}

fn open_log(path: &Path) -> std::io::Result<Box<dyn BufRead>> {
    let mut f = std::fs::File::open(path)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic)?;
    let f = std::fs::File::open(path)?;
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(f)))
    } else {
        Box::new(BufReader::new(f))
    })
}

/// A shard directory's log: `reset.log` (`.csv`, `.gz`), or the one log named with an archive
/// stamp (`reset.<first>_<last>.log`, `--archive-names`). Returns its name, whether it is
/// gzip, and the stamp.
fn shard_log(dir: &Path) -> Result<(String, bool, Option<String>), ShardError> {
    const SUFFIXES: [(&str, bool); 4] = [
        (".log", false),
        (".log.gz", true),
        (".csv", false),
        (".csv.gz", true),
    ];
    for (suffix, gzip) in SUFFIXES {
        let name = format!("reset{suffix}");
        if dir.join(&name).exists() {
            return Ok((name, gzip, None));
        }
    }
    let mut stamped = Vec::new();
    for e in std::fs::read_dir(dir)
        .map_err(|source| ShardError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("reset.") else {
            continue;
        };
        for (suffix, gzip) in SUFFIXES {
            if let Some(stamp) = rest.strip_suffix(suffix).filter(|s| !s.contains('.')) {
                stamped.push((name.clone(), gzip, Some(stamp.to_string())));
            }
        }
    }
    match stamped.len() {
        1 => Ok(stamped.remove(0)),
        0 => Err(ShardError::NoLog {
            dir: dir.to_path_buf(),
        }),
        count => Err(ShardError::SeveralLogs {
            dir: dir.to_path_buf(),
            count,
        }),
    }
}

/// Read one shard directory: its reset.log (or .gz, or the one archive-named log) and its
/// summary.
pub fn read_shard(dir: &Path) -> Result<Shard, ShardError> {
    let (name, gzip, stamp) = shard_log(dir)?;
    let gzip = &gzip;
    let path = dir.join(&name);
    let io = |source| ShardError::Io {
        path: path.clone(),
        source,
    };
    let reader = open_log(&path).map_err(io)?;
    if name.contains(".csv") {
        let events = read_csv(reader, &path)?;
        return Ok(Shard {
            dir: dir.to_path_buf(),
            format: Format::Csv,
            gzip: *gzip,
            events,
            open: None,
            close: None,
            summary: read_summary(dir, stamp.as_deref()),
        });
    }
    let mut events = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let (mut open, mut close) = (None, None);
    let mut format = Format::Tsv;
    for (i, line) in reader.split(b'\n').enumerate() {
        let line = line.map_err(io)?;
        let line = String::from_utf8_lossy(&line).into_owned();
        if line.is_empty() {
            continue;
        }
        let bad = |problem: RowProblem| ShardError::Row {
            path: path.clone(),
            at: RowAt::Line(i as u64 + 1),
            problem,
        };
        if line.starts_with('{') {
            format = Format::Json;
            let v: serde_json::Map<String, Value> =
                serde_json::from_str(&line).map_err(|e| bad(e.into()))?;
            let get = |n: &str| -> Option<String> {
                match v.get(n)? {
                    Value::String(s) => Some(s.clone()),
                    Value::Bool(b) => Some(if *b { "T" } else { "F" }.into()),
                    other => Some(other.to_string()),
                }
            };
            events.push(event_from(&get, false).map_err(bad)?);
        } else if let Some(rest) = line.strip_prefix('#') {
            let cells: Vec<&str> = rest.split('\t').collect();
            match cells[0] {
                "fields" => fields = cells[1..].iter().map(|s| s.to_string()).collect(),
                "open" => open = cells.get(1).and_then(|s| rotation_secs(s)),
                "close" => close = cells.get(1).and_then(|s| rotation_secs(s)),
                _ => {}
            }
        } else {
            let cells: Vec<&str> = line.split('\t').collect();
            let get = |n: &str| -> Option<String> {
                let i = fields.iter().position(|f| f == n)?;
                let c = *cells.get(i)?;
                (c != "-").then(|| c.to_string())
            };
            events.push(event_from(&get, true).map_err(bad)?);
        }
    }
    Ok(Shard {
        dir: dir.to_path_buf(),
        format,
        gzip: *gzip,
        events,
        open,
        close,
        summary: read_summary(dir, stamp.as_deref()),
    })
}

fn read_summary(dir: &Path, stamp: Option<&str>) -> Value {
    let name = match stamp {
        Some(s) => format!("reset_summary.{s}.json"),
        None => "reset_summary.json".to_string(),
    };
    std::fs::read_to_string(dir.join(name))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// reset.csv rows back to events. Cells hold the TSV rendering, with an empty cell for unset
/// and empty values (which render the same) and the `'` of formula neutralisation in front of
/// a cell starting with `=`, `+`, `-` or `@` (a cell that itself starts with `'` is written
/// `\x27…`, so the prefix is never ambiguous).
fn read_csv(reader: Box<dyn BufRead>, path: &Path) -> Result<Vec<ResetEvent>, ShardError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    let fields: Vec<String> = csv
        .headers()
        .map_err(|source| ShardError::CsvHeader {
            path: path.to_path_buf(),
            source,
        })?
        .iter()
        .map(str::to_string)
        .collect();
    let mut events = Vec::new();
    for (i, record) in csv.records().enumerate() {
        let bad = |problem: RowProblem| ShardError::Row {
            path: path.to_path_buf(),
            at: RowAt::Row(i as u64 + 2),
            problem,
        };
        let record = record.map_err(|e| bad(e.into()))?;
        let get = |n: &str| -> Option<String> {
            let c = record.get(fields.iter().position(|f| f == n)?)?;
            if c.is_empty() {
                return None;
            }
            let c = match c.strip_prefix('\'') {
                Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
                _ => c,
            };
            Some(c.to_string())
        };
        events.push(event_from(&get, true).map_err(bad)?);
    }
    Ok(events)
}

/// The inputs' figures of all shards together.
pub fn merged_inputs(shards: &[Shard]) -> RunInputs {
    let mut files: Vec<Value> = Vec::new();
    let mut sensors: Vec<Value> = Vec::new();
    let mut flow = FlowStats::default();
    let mut parallel = crate::ParallelStats::default();
    let (mut packets, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let u = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    for s in shards {
        let j = &s.summary;
        files.extend(j["files"].as_array().cloned().unwrap_or_default());
        sensors.extend(j["sensors"].as_array().cloned().unwrap_or_default());
        flow.connections += u(j, "connections");
        flow.evicted += u(j, "connections_evicted");
        flow.peak_connections += u(j, "peak_connections");
        flow.segments += u(j, "tcp_segments");
        let par = &j["parallel"];
        parallel.units += u(par, "units");
        parallel.replayed_packets += u(par, "replayed_packets");
        parallel.redone_units += u(par, "redone_units");
        packets += u(j, "packets");
        bytes += u(j, "bytes");
        errors += u(j, "files_with_errors");
    }
    // the order one run lists them in: by path, sensors by name (the names' bytes, which the
    // summary writes as text with `\xNN` for bytes that are not UTF-8)
    let name_of = |v: &Value| {
        v.as_str()
            .map(|s| crate::inputs::name_from_text(s).into_owned())
    };
    files.sort_by_cached_key(|f| name_of(&f["path"]));
    let key = |v: &Value| name_of(&v["sensor"]);
    sensors.sort_by_key(key);
    let mut seen = BTreeMap::new();
    sensors.retain(|s| seen.insert(key(s), ()).is_none());
    RunInputs {
        files,
        sensors,
        flow,
        parallel,
        packets,
        bytes,
        files_with_errors: errors,
    }
}

/// Stable shard of a sensor: FNV-1a of its name (the unnamed sensor is the empty name).
pub fn shard_of(sensor: Option<&[u8]>, n: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in sensor.unwrap_or(b"") {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % n.max(1) as u64) as u32
}

/// Parse `I/N`; `auto/N` takes I from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or
/// SLURM_ARRAY_TASK_ID (Slurm array).
pub fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("--shard {s:?}: expected I/N, e.g. 3/8"))?;
    let n: u32 = n
        .parse()
        .map_err(|_| format!("--shard {s:?}: N must be a number"))?;
    let i: u32 = if i == "auto" {
        std::env::var("JOB_COMPLETION_INDEX")
            .or_else(|_| std::env::var("SLURM_ARRAY_TASK_ID"))
            .map_err(|_| {
                "--shard auto/N: neither JOB_COMPLETION_INDEX nor SLURM_ARRAY_TASK_ID is set"
                    .to_string()
            })?
            .parse()
            .map_err(|_| "--shard auto/N: the index variable is not a number".to_string())?
    } else {
        i.parse()
            .map_err(|_| format!("--shard {s:?}: I must be a number"))?
    };
    if n == 0 || i >= n {
        return Err(format!("--shard {i}/{n}: need 0 <= I < N"));
    }
    Ok((i, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parsing() {
        assert_eq!(parse_shard("3/8").unwrap(), (3, 8));
        assert!(parse_shard("8/8").is_err());
        assert!(parse_shard("x").is_err());
    }

    #[test]
    fn rotation_time_round_trip() {
        assert_eq!(rotation_secs("2026-11-24-00-00-05"), Some(1_795_478_405));
        assert_eq!(rotation_secs("1970-01-01-00-00-00"), Some(0));
    }
}
