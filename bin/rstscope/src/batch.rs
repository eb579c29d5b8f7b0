//! What nightly cron runs need: a lock so overlapping runs cannot clobber each other, a state
//! file of inputs already processed, and skipping captures still being written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::InputFile;

/// The lock file in the output directory.
pub const LOCK_NAME: &str = ".rstscope.lock";

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another run holds it.
    Held(PathBuf),
    Io(PathBuf, std::io::Error),
}

/// Take the run lock in `dir` (created if needed); released when the file is dropped or the
/// process ends, even if it is killed. Compatible with `flock -n` wrappers on the same file.
pub fn lock_output_dir(dir: &Path) -> Result<File, LockError> {
    let path = dir.join(LOCK_NAME);
    std::fs::create_dir_all(dir).map_err(|e| LockError::Io(path.clone(), e))?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LockError::Io(path.clone(), e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held(path)),
        Err(std::fs::TryLockError::Error(e)) => Err(LockError::Io(path, e)),
    }
}

/// Remove temporary files a killed run left in the output directory (hidden `.NAME.tmp-*`
/// files of our own logs). Call with the lock held, so no live run is writing them.
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = ["reset", "conn_rst", "state"]
            .iter()
            .any(|stem| name.starts_with(&format!(".{stem}")));
        if ours && name.contains(".tmp-") && std::fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

/// Parse a duration: `90`, `90s`, `5m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('d') => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| Duration::from_secs(n * mult))
        .map_err(|_| format!("invalid duration {s:?} (examples: 90s, 5m, 2h)"))
}

/// Files modified less than `min_age` ago are still being written: skip them.
pub fn split_by_age(files: Vec<InputFile>, min_age: Duration) -> (Vec<InputFile>, Vec<InputFile>) {
    let now = SystemTime::now();
    files.into_iter().partition(|f| {
        std::fs::metadata(&f.path)
            .and_then(|m| m.modified())
            .map(|t| now.duration_since(t).unwrap_or_default() >= min_age)
            .unwrap_or(true)
    })
}

/// What identifies an input as already processed: path, size, mtime and a hash of its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub size: u64,
    pub mtime_ns: i128,
    pub head_sha1: String,
}

/// Bytes of a file's head that are hashed.
const HEAD_BYTES: usize = 64 * 1024;

pub fn fingerprint(path: &Path) -> std::io::Result<Fingerprint> {
    let meta = std::fs::metadata(path)?;
    let mtime_ns = meta
        .modified()?
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let mut head = vec![0u8; HEAD_BYTES];
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let mut head_sha1 = String::with_capacity(40);
    for b in rstscope_decode::sha1_digest(&head[..n]) {
        let _ = write!(head_sha1, "{b:02x}");
    }
    Ok(Fingerprint {
        size: meta.len(),
        mtime_ns,
        head_sha1,
    })
}

/// The `--state` file: inputs processed by earlier runs.
#[derive(Debug, Default)]
pub struct State {
    pub files: BTreeMap<String, Fingerprint>,
}

fn key(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

impl State {
    /// Read a state file; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(format!("{}: cannot read state: {e}", path.display())),
        };
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a rstscope state file: {e}", path.display()))?;
        let mut st = State::default();
        if let Some(files) = v.get("files").and_then(Value::as_object) {
            for (k, f) in files {
                let fp = (|| {
                    Some(Fingerprint {
                        size: f.get("size")?.as_u64()?,
                        mtime_ns: f.get("mtime_ns")?.as_str()?.parse().ok()?,
                        head_sha1: f.get("head_sha1")?.as_str()?.to_string(),
                    })
                })();
                if let Some(fp) = fp {
                    st.files.insert(k.clone(), fp);
                }
            }
        }
        Ok(st)
    }

    /// Was this file processed already, unchanged?
    pub fn seen(&self, path: &Path) -> bool {
        match (self.files.get(&key(path)), fingerprint(path)) {
            (Some(old), Ok(now)) => *old == now,
            _ => false,
        }
    }

    pub fn record(&mut self, path: &Path) {
        if let Ok(fp) = fingerprint(path) {
            self.files.insert(key(path), fp);
        }
    }

    /// Write the state file atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state.json".into());
        crate::output::write_atomic(dir, &name, false, |out| {
            serde_json::to_writer_pretty(&mut *out, &self.to_json())?;
            out.write_all(b"\n")
        })?;
        Ok(())
    }

    pub fn to_json(&self) -> Value {
        let files: serde_json::Map<String, Value> = self
            .files
            .iter()
            .map(|(k, f)| {
                (
                    k.clone(),
                    json!({
                        "size": f.size,
                        "mtime_ns": f.mtime_ns.to_string(),
                        "head_sha1": f.head_sha1,
                    }),
                )
            })
            .collect();
        json!({ "version": 1, "tool": concat!("rstscope ", env!("CARGO_PKG_VERSION")), "files": files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = lock_output_dir(dir.path()).unwrap();
        assert!(matches!(
            lock_output_dir(dir.path()),
            Err(LockError::Held(_))
        ));
        drop(a);
        assert!(lock_output_dir(dir.path()).is_ok());
    }

    #[test]
    fn state_round_trip_and_change_detection() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.pcap");
        std::fs::write(&f, b"one").unwrap();
        let mut st = State::default();
        st.record(&f);
        let sp = dir.path().join("state.json");
        std::fs::write(&sp, st.to_json().to_string()).unwrap();
        let st = State::load(&sp).unwrap();
        assert!(st.seen(&f));
        std::fs::write(&f, b"two!").unwrap();
        assert!(!st.seen(&f));
        assert!(State::load(&dir.path().join("none.json"))
            .unwrap()
            .files
            .is_empty());
    }
}
