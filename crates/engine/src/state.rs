//! The state file of nightly runs: the inputs already processed (by fingerprint), the files
//! that failed, where the carried stream is kept, and renames a killed run left to finish.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

pub use crate::error::{CarryError, StateError};

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
    if !meta.is_file() {
        // A FIFO or a device has no identity to remember, and reading its head would take
        // the data the run is to read: it is read every run.
        return Err(std::io::Error::other("not a regular file"));
    }
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

/// An input an earlier run read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub fingerprint: Fingerprint,
    /// The error it gave, when it could not be read to its end: it is not read again until it
    /// changes (or with `--retry-failed`); the rows before the error were delivered once.
    pub error: Option<String>,
    /// When a run first found it gone (Unix seconds); pruned [`PRUNE_AFTER`] later.
    pub missing_since: Option<i64>,
}

/// An entry whose file is gone is kept this long, so a file that comes back (a remounted
/// archive, a restored backup) is still known and not delivered twice.
pub const PRUNE_AFTER: Duration = Duration::from_secs(30 * 86_400);

/// Where the carry of live connections is, and what it holds (for the run record).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CarryRef {
    /// File name, in the state file's directory.
    pub file: String,
    pub bytes: u64,
    pub crc32: u32,
    pub sensors: u64,
    pub connections: u64,
    pub rows: u64,
}

/// Logs a run had written to temporary files and was about to rename when it saved the state:
/// a run that finds them still under their temporary names finishes the renames, so a run
/// killed between saving the state and renaming neither loses nor repeats rows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PendingCommit {
    /// (temporary path, final path)
    pub renames: Vec<(PathBuf, PathBuf)>,
}

/// The `--state` file: inputs processed by earlier runs, the run count, and the carry.
#[derive(Debug, Default, Clone)]
pub struct State {
    pub files: BTreeMap<String, FileEntry>,
    /// Runs that saved this state.
    pub runs: u64,
    pub carry: Option<CarryRef>,
    pub commit: Option<PendingCommit>,
}

fn key(path: &Path) -> String {
    path_text(&std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// A path as the state file writes it (a key of `files`, a rename): its text when it is UTF-8
/// and holds no `\x`, as every version wrote it; otherwise escaped, a backslash as `\\` and each
/// byte that is not UTF-8 as `\xNN`, so the text always holds `\x`. Paths are bytes on Unix
/// and need not be UTF-8: two that differ only in such bytes stay two keys, and
/// [`text_path`] gives the path back (for pruning and renames).
fn path_text(path: &Path) -> String {
    let bytes = crate::name_bytes(path.as_os_str());
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.contains("\\x") => s.to_string(),
        _ => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(&chunk.valid().replace('\\', "\\\\"));
                for b in chunk.invalid() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            out
        }
    }
}

/// The path [`path_text`] wrote as `text`.
fn text_path(text: &str) -> PathBuf {
    if !text.contains("\\x") {
        return PathBuf::from(text);
    }
    let bytes = rstscope_join::unescape(text.as_bytes()).into_owned();
    #[cfg(unix)]
    {
        PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// The state file's directory and name.
pub(crate) fn split_path(path: &Path) -> (&Path, String) {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state.json".into());
    (dir, name)
}

impl State {
    /// Read a state file; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State, StateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let bad = |what: &str| StateError::NotState {
            path: path.to_path_buf(),
            what: what.to_string(),
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
        match v.get("version").and_then(Value::as_u64) {
            Some(1 | 2) => {}
            Some(version) => {
                return Err(StateError::Newer {
                    path: path.to_path_buf(),
                    version,
                })
            }
            None => return Err(bad("no version")),
        }
        let mut st = State {
            runs: v.get("runs").and_then(Value::as_u64).unwrap_or(0),
            ..State::default()
        };
        let files = match v.get("files") {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return Err(bad("\"files\" is not an object")),
        };
        if let Some(files) = files {
            for (k, f) in files {
                let entry = (|| {
                    Some(FileEntry {
                        fingerprint: Fingerprint {
                            size: f.get("size")?.as_u64()?,
                            mtime_ns: f.get("mtime_ns")?.as_str()?.parse().ok()?,
                            head_sha1: f.get("head_sha1")?.as_str()?.to_string(),
                        },
                        error: f.get("error").and_then(Value::as_str).map(str::to_string),
                        missing_since: f.get("missing_since").and_then(Value::as_i64),
                    })
                })();
                // An entry dropped would have its file read (and delivered) again.
                match entry {
                    Some(e) => st.files.insert(k.clone(), e),
                    None => return Err(bad(&format!("a malformed entry for {k:?}"))),
                };
            }
        }
        if let Some(c) = v.get("carry").filter(|c| !c.is_null()) {
            let c = (|| {
                Some(CarryRef {
                    file: c.get("file")?.as_str()?.to_string(),
                    bytes: c.get("bytes")?.as_u64()?,
                    crc32: u32::try_from(c.get("crc32")?.as_u64()?).ok()?,
                    sensors: c.get("sensors")?.as_u64()?,
                    connections: c.get("connections")?.as_u64()?,
                    rows: c.get("rows")?.as_u64()?,
                })
            })()
            .ok_or_else(|| bad("a malformed \"carry\" entry"))?;
            if c.file.contains('/') {
                return Err(bad("a carry file outside the state's directory"));
            }
            st.carry = Some(c);
        }
        if let Some(renames) = v.pointer("/commit/renames").and_then(Value::as_array) {
            let renames = renames
                .iter()
                .filter_map(|r| {
                    Some((
                        text_path(r.get(0)?.as_str()?),
                        text_path(r.get(1)?.as_str()?),
                    ))
                })
                .collect();
            st.commit = Some(PendingCommit { renames });
        }
        Ok(st)
    }

    /// Was this file read already, unchanged? A file that failed counts as read unless
    /// `retry_failed`.
    pub fn seen(&self, path: &Path, retry_failed: bool) -> bool {
        match (self.files.get(&key(path)), fingerprint(path)) {
            (Some(old), Ok(now)) => {
                old.fingerprint == now && !(retry_failed && old.error.is_some())
            }
            _ => false,
        }
    }

    /// Record a file as read, with the error it gave if any.
    pub fn record(&mut self, path: &Path, error: Option<String>) {
        if let Ok(fp) = fingerprint(path) {
            self.files.insert(
                key(path),
                FileEntry {
                    fingerprint: fp,
                    error,
                    missing_since: None,
                },
            );
        }
    }

    /// Mark entries whose file is gone, forget those gone longer than [`PRUNE_AFTER`], and
    /// unmark those that came back. Returns how many were forgotten.
    pub fn prune(&mut self, now: SystemTime) -> usize {
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let before = self.files.len();
        self.files.retain(|path, e| {
            if text_path(path).exists() {
                e.missing_since = None;
                return true;
            }
            let since = *e.missing_since.get_or_insert(now);
            now.saturating_sub(since) < PRUNE_AFTER.as_secs() as i64
        });
        before - self.files.len()
    }

    /// The carry file's path, when the state has one.
    pub fn carry_path(&self, state_path: &Path) -> Option<PathBuf> {
        let (dir, _) = split_path(state_path);
        self.carry.as_ref().map(|c| dir.join(&c.file))
    }

    /// Read the carry this state names (none: an empty list). An error names the file and
    /// says what to do: a carry is never dropped silently.
    pub fn load_carry(
        &self,
        state_path: &Path,
    ) -> Result<Vec<rstscope_flow::StreamCarry>, CarryError> {
        let (Some(c), Some(path)) = (&self.carry, self.carry_path(state_path)) else {
            return Ok(Vec::new());
        };
        let connections = c.connections;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(source) => {
                return Err(CarryError::Read {
                    path,
                    connections,
                    source,
                })
            }
        };
        // The payload's checksum is in the header (and checked against the payload below).
        if bytes.len() as u64 != c.bytes
            || rstscope_flow::carry_file_checksum(&bytes) != Some(c.crc32)
        {
            return Err(CarryError::NotRecorded {
                path,
                state: state_path.to_path_buf(),
                bytes: bytes.len() as u64,
                expected: c.bytes,
                connections,
            });
        }
        rstscope_flow::read_carry_file_owned(bytes).map_err(|source| CarryError::Decode {
            path,
            connections,
            source,
        })
    }

    /// Write the carry of this run (a new file; the old one stays until the state naming the
    /// new one is saved) and name it in the state.
    pub fn stage_carry(
        &mut self,
        state_path: &Path,
        streams: &[rstscope_flow::StreamCarry],
    ) -> std::io::Result<Option<PathBuf>> {
        let conns: usize = streams.iter().map(|s| s.carry.len()).sum();
        if conns == 0 && streams.iter().all(|s| s.last_file.is_none()) {
            self.carry = None;
            return Ok(None);
        }
        let bytes = rstscope_flow::write_carry_file(streams);
        let (dir, name) = split_path(state_path);
        let file = format!("{name}.carry.{}", self.runs);
        crate::output::write_atomic(dir, &file, false, |out| out.write_all(&bytes))?;
        self.carry = Some(CarryRef {
            file,
            bytes: bytes.len() as u64,
            crc32: rstscope_flow::carry_file_checksum(&bytes).unwrap_or_default(),
            sensors: streams.len() as u64,
            connections: conns as u64,
            rows: streams.iter().map(|s| s.carry.pending_rows() as u64).sum(),
        });
        Ok(self.carry_path(state_path))
    }

    /// Remove carry files of this state other than the current one (older runs', or one a
    /// killed run wrote before its state).
    pub fn remove_old_carries(&self, state_path: &Path) {
        let (dir, name) = split_path(state_path);
        let prefix = format!("{name}.carry.");
        let keep = self.carry.as_ref().map(|c| c.file.as_str());
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) && Some(n.as_str()) != keep {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Finish the renames of a run that was killed after saving the state: the logs it
    /// delivered get their final names. Returns the paths renamed.
    pub fn finish_pending_commit(&mut self) -> Vec<PathBuf> {
        let mut done = Vec::new();
        if let Some(c) = self.commit.take() {
            for (tmp, fin) in c.renames {
                if tmp.exists() && !fin.exists() && std::fs::rename(&tmp, &fin).is_ok() {
                    done.push(fin);
                }
            }
        }
        done
    }

    /// Write the state file atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let (dir, name) = split_path(path);
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
                let mut v = json!({
                    "size": f.fingerprint.size,
                    "mtime_ns": f.fingerprint.mtime_ns.to_string(),
                    "head_sha1": f.fingerprint.head_sha1,
                });
                if let Some(e) = &f.error {
                    v["error"] = e.as_str().into();
                }
                if let Some(t) = f.missing_since {
                    v["missing_since"] = t.into();
                }
                (k.clone(), v)
            })
            .collect();
        let carry = self.carry.as_ref().map(|c| {
            json!({
                "file": c.file,
                "bytes": c.bytes,
                "crc32": c.crc32,
                "sensors": c.sensors,
                "connections": c.connections,
                "rows": c.rows,
            })
        });
        let commit = self.commit.as_ref().map(|c| {
            json!({
                "renames": c.renames.iter().map(|(t, f)| json!([path_text(t), path_text(f)])).collect::<Vec<_>>()
            })
        });
        json!({
            "version": 2,
            "tool": concat!("rstscope ", env!("CARGO_PKG_VERSION")),
            "runs": self.runs,
            "files": files,
            "carry": carry,
            "commit": commit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{lock_output_dir, lock_state, LockError, LOCK_NAME};

    #[test]
    fn a_state_of_the_wrong_shape_is_refused_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        for (text, what) in [
            (r#"{"version": 9, "files": {}}"#, "version 9"),
            (r#"{"files": {}}"#, "no version"),
            (r#"{"version": 2, "files": []}"#, "not an object"),
            (
                r#"{"version": 2, "files": {"/a.pcap": {"size": "big"}}}"#,
                "malformed entry",
            ),
            (r#"{"version": 2, "carry": {"file": 3}}"#, "carry"),
            ("[1, 2]", "no version"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = State::load(&p).unwrap_err().to_string();
            assert!(e.contains(what), "{text}: {e}");
        }
    }

    #[test]
    fn lock_files_are_private_and_an_output_file_is_not_a_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let _l = lock_output_dir(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(LOCK_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let _s = lock_state(&dir.path().join("state.json"), |_| {}).unwrap();
        let mode = std::fs::metadata(dir.path().join("state.json.lock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        match lock_output_dir(&file) {
            Err(LockError::Io(p, e)) => {
                assert_eq!(p, file);
                assert!(e.to_string().contains("must be a directory"), "{e}");
            }
            _ => panic!("a file as the output directory"),
        }
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

    /// Paths that are not UTF-8 (legal on Linux) are distinct keys and are found again when the
    /// state is read back (a lossy key would merge them and prune entries of files that exist).
    #[test]
    fn paths_that_are_not_utf8_round_trip_through_the_state() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let names: [&[u8]; 4] = [
            b"bad\xff\xfe.pcap",
            b"bad\xff\xfd.pcap",
            b"lit\\xff.pcap",
            b"ok.pcap",
        ];
        let files: Vec<PathBuf> = names
            .iter()
            .map(|n| dir.path().join(std::ffi::OsStr::from_bytes(n)))
            .collect();
        let mut st = State::default();
        for (i, f) in files.iter().enumerate() {
            std::fs::write(f, vec![b'x'; i + 1]).unwrap();
            st.record(f, None);
        }
        assert_eq!(st.files.len(), 4, "{:?}", st.files.keys());
        let tmp = dir
            .path()
            .join(std::ffi::OsStr::from_bytes(b".reset.log.tmp-\xff"));
        st.commit = Some(PendingCommit {
            renames: vec![(tmp.clone(), files[0].clone())],
        });
        let sp = dir.path().join("state.json");
        st.save(&sp).unwrap();
        let text = std::fs::read_to_string(&sp).unwrap();
        assert!(text.contains("bad\\\\xff\\\\xfe.pcap"), "{text}");
        assert!(text.contains("lit\\\\\\\\xff.pcap"), "{text}");
        let mut back = State::load(&sp).unwrap();
        for f in &files {
            assert!(back.seen(f, false), "{}", f.display());
        }
        assert_eq!(
            back.commit.as_ref().unwrap().renames,
            [(tmp, files[0].clone())]
        );
        // Every file exists: nothing is marked missing.
        back.prune(SystemTime::now());
        assert!(back.files.values().all(|e| e.missing_since.is_none()));
        std::fs::remove_file(&files[1]).unwrap();
        back.prune(SystemTime::now());
        let missing: Vec<_> = back
            .files
            .iter()
            .filter(|(_, e)| e.missing_since.is_some())
            .collect();
        assert_eq!(missing.len(), 1);
        assert_eq!(text_path(missing[0].0), files[1]);
    }

    #[test]
    fn state_round_trip_and_change_detection() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.pcap");
        std::fs::write(&f, b"one").unwrap();
        let mut st = State::default();
        st.record(&f, None);
        let sp = dir.path().join("state.json");
        std::fs::write(&sp, st.to_json().to_string()).unwrap();
        let st = State::load(&sp).unwrap();
        assert!(st.seen(&f, false));
        std::fs::write(&f, b"two!").unwrap();
        assert!(!st.seen(&f, false));
        assert!(State::load(&dir.path().join("none.json"))
            .unwrap()
            .files
            .is_empty());
    }
}
