//! Finding capture files: explicit files are taken as given; directories are searched
//! recursively (in name order, so runs are reproducible) and keep only files whose magic bytes
//! say pcap, pcapng, gzip or zstd.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rstscope_capture::{sniff, stream_head, Kind};

/// A capture file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    /// Path relative to the input it was found under (the file name for a file input), with
    /// `/` separators: the `source` column. The name's bytes as the file system gives them: a
    /// Linux file name need not be UTF-8, and two names that differ only in bytes that are not
    /// must stay two names (the writers escape such bytes as `\xNN`).
    pub source: Vec<u8>,
    /// The sensor the file belongs to (see [`SensorFrom`]); None for the unnamed sensor. Bytes,
    /// like `source`, which it is taken from.
    pub sensor: Option<Vec<u8>>,
}

/// The bytes of a name as the file system has them (on Unix exactly its bytes; elsewhere the
/// platform's encoding of it, which is UTF-8 for names that are valid Unicode).
pub fn name_bytes(name: &OsStr) -> &[u8] {
    name.as_encoded_bytes()
}

/// A name's bytes as text, as the JSON logs write strings (Zeek's JSON rule): UTF-8 as it is,
/// bytes that are not UTF-8 (and control bytes) as `\xNN`. For the summary, the state file and
/// messages; [`name_from_text`] reads it back.
pub fn name_text(name: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(name) {
        Ok(s) if !s.bytes().any(|b| b < 0x20 || b == 0x7f) => Cow::Borrowed(s),
        _ => Cow::Owned(rstscope_join::enrich::zeek_json_string(name)),
    }
}

/// The bytes [`name_text`] (or the JSON log) wrote as `text`. A name whose own characters read
/// as `\xNN` (Zeek's JSON rule leaves a backslash as it is) is taken as those characters.
pub fn name_from_text(text: &str) -> Cow<'_, [u8]> {
    rstscope_join::enrich::zeek_json_unescape(text)
}

/// How files are grouped into sensors. Each sensor's files are one packet stream, ordered by
/// their first packet's time; different sensors are tracked separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SensorFrom {
    /// The directory a file sits in, relative to the INPUT it was found under
    /// (`archive/sensor-a/x.pcap` → `sensor-a`); files at the top of the INPUT, and files named
    /// on the command line, belong to the unnamed sensor.
    #[default]
    Dir,
    /// The start of the file name, up to the first `-`, `_` or `.` followed by a digit (else up
    /// to the first `.`): `edge1-20261124-0000.pcap` → `edge1`, `trace.3.pcap` → `trace`.
    Prefix,
    /// One sensor for everything.
    None,
}

/// Name each file's sensor.
pub fn assign_sensors(files: &mut [InputFile], from: SensorFrom) {
    for f in files {
        f.sensor = match from {
            SensorFrom::None => None,
            SensorFrom::Dir => f
                .source
                .iter()
                .rposition(|&b| b == b'/')
                .map(|i| f.source[..i].to_vec()),
            SensorFrom::Prefix => {
                let b = f.source.rsplit(|&b| b == b'/').next().unwrap_or(&f.source);
                // up to the first `-`, `_` or `.` followed by a digit, else the first `.`
                let end = (0..b.len())
                    .find(|&i| {
                        matches!(b[i], b'-' | b'_' | b'.')
                            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
                    })
                    .or_else(|| b.iter().position(|&c| c == b'.'))
                    .unwrap_or(b.len());
                (end > 0).then(|| b[..end].to_vec())
            }
        };
    }
}

/// Something wrong with an input that is not a capture read error.
#[derive(Debug)]
pub enum InputProblem {
    /// An input named on the command line does not exist or cannot be read.
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A file found in a directory is not a capture; it is skipped.
    SkippedInDirectory { path: PathBuf, head: String },
    /// A FIFO, socket or device found in a directory; it is skipped.
    NotRegular { path: PathBuf },
    /// A file reached a second time (named twice, or under overlapping directories); skipped.
    Duplicate { path: PathBuf },
    /// A symbolic link found in a directory, not followed (`--follow` follows them).
    Symlink { path: PathBuf },
}

impl InputProblem {
    /// Explicitly named inputs that fail are errors; stray files in an archive directory are
    /// only notices.
    pub fn is_error(&self) -> bool {
        !matches!(
            self,
            InputProblem::SkippedInDirectory { .. }
                | InputProblem::NotRegular { .. }
                | InputProblem::Duplicate { .. }
                | InputProblem::Symlink { .. }
        )
    }
}

impl std::fmt::Display for InputProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputProblem::Unreadable { path, error } => {
                write!(f, "{}: cannot read: {error}", path.display())
            }
            InputProblem::Symlink { path } => write!(
                f,
                "{}: skipped, a symbolic link (--follow reads what links point to)",
                path.display()
            ),
            InputProblem::Duplicate { path } => write!(
                f,
                "{}: skipped, the same file was already given (its rows once)",
                path.display()
            ),
            InputProblem::NotRegular { path } => write!(
                f,
                "{}: skipped, not a regular file (a FIFO, socket or device)",
                path.display()
            ),
            InputProblem::SkippedInDirectory { path, head } => write!(
                f,
                "{}: skipped, not a capture file (first bytes {head})",
                path.display()
            ),
        }
    }
}

fn head_of(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(head[..n].to_vec())
}

fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "(none: empty file)".into();
    }
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn file_name(p: &Path) -> Vec<u8> {
    name_bytes(p.file_name().unwrap_or(p.as_os_str())).to_vec()
}

/// Expand the command-line inputs into capture files, in a deterministic order.
pub fn discover(inputs: &[PathBuf]) -> (Vec<InputFile>, Vec<InputProblem>) {
    discover_following(inputs, false)
}

/// [`discover`], following symbolic links inside directories when `follow` (`--follow`);
/// otherwise they are skipped with a notice.
pub fn discover_following(inputs: &[PathBuf], follow: bool) -> (Vec<InputFile>, Vec<InputProblem>) {
    let (files, mut problems) = discover_all(inputs, follow);
    // The same file reached twice (named twice, overlapping directories) would give its rows
    // twice: the first is kept.
    let mut seen = std::collections::HashSet::new();
    let mut kept = Vec::with_capacity(files.len());
    for f in files {
        let canonical = std::fs::canonicalize(&f.path).unwrap_or_else(|_| f.path.clone());
        if seen.insert(canonical) {
            kept.push(f);
        } else {
            problems.push(InputProblem::Duplicate { path: f.path });
        }
    }
    (kept, problems)
}

fn discover_all(inputs: &[PathBuf], follow: bool) -> (Vec<InputFile>, Vec<InputProblem>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for input in inputs {
        let meta = match std::fs::metadata(input) {
            Ok(m) => m,
            Err(error) => {
                problems.push(InputProblem::Unreadable {
                    path: input.clone(),
                    error,
                });
                continue;
            }
        };
        if !meta.is_dir() {
            // A named file is read whatever it holds: the reader reports empty files and
            // non-captures with their offset, and the run goes on.
            files.push(InputFile {
                path: input.clone(),
                source: file_name(input),
                sensor: None,
            });
            continue;
        }
        // Hidden files and directories are not inputs: writers' temporary files (ours
        // included: `.reset.log.tmp-*`, `.rstscope.lock`), marker files and files a capture
        // tool writes under a dot name before renaming them.
        let walk = walkdir::WalkDir::new(input)
            .follow_links(follow)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                e.depth() == 0 || !e.file_name().as_encoded_bytes().starts_with(b".")
            });
        for entry in walk {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = e.path().map(Path::to_path_buf).unwrap_or(input.clone());
                    problems.push(InputProblem::Unreadable {
                        path,
                        error: e.into(),
                    });
                    continue;
                }
            };
            if entry.file_type().is_dir() {
                continue;
            }
            if entry.file_type().is_symlink() {
                problems.push(InputProblem::Symlink {
                    path: entry.path().to_path_buf(),
                });
                continue;
            }
            if !entry.file_type().is_file() {
                // A FIFO, socket or device in an archive directory would block or never end.
                problems.push(InputProblem::NotRegular {
                    path: entry.path().to_path_buf(),
                });
                continue;
            }
            let path = entry.path().to_path_buf();
            let source = path
                .strip_prefix(input)
                .map(|r| {
                    r.components()
                        .map(|c| name_bytes(c.as_os_str()))
                        .collect::<Vec<_>>()
                        .join(&b'/')
                })
                .unwrap_or_else(|_| file_name(&path));
            let file = InputFile {
                path,
                source,
                sensor: None,
            };
            match head_of(&file.path) {
                Ok(head) => match sniff(&head) {
                    Some(Kind::Capture(_)) => files.push(file),
                    // Compressed: a capture only if what it holds is one (a rotated conn.log.gz,
                    // notes.txt.zst, our own reset.log.gz are not). A stream that gives nothing
                    // at all is left to the reader, which says where it breaks.
                    Some(Kind::Compressed(c)) => match stream_head(&file.path, 4) {
                        Ok(inner)
                            if !inner.is_empty()
                                && !matches!(sniff(&inner), Some(Kind::Capture(_))) =>
                        {
                            problems.push(InputProblem::SkippedInDirectory {
                                path: file.path,
                                head: format!("{} of {c} data {}", hex(&head), hex(&inner)),
                            })
                        }
                        Ok(_) => files.push(file),
                        Err(error) => problems.push(InputProblem::Unreadable {
                            path: file.path,
                            error,
                        }),
                    },
                    None => problems.push(InputProblem::SkippedInDirectory {
                        path: file.path,
                        head: hex(&head),
                    }),
                },
                Err(error) => problems.push(InputProblem::Unreadable {
                    path: file.path,
                    error,
                }),
            }
        }
    }
    (files, problems)
}

/// Files modified less than `min_age` ago are still being written: skip them.
pub fn split_by_age(
    files: Vec<InputFile>,
    min_age: std::time::Duration,
) -> (Vec<InputFile>, Vec<InputFile>) {
    let now = std::time::SystemTime::now();
    files.into_iter().partition(|f| {
        std::fs::metadata(&f.path)
            .and_then(|m| m.modified())
            .map(|t| now.duration_since(t).unwrap_or_default() >= min_age)
            .unwrap_or(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_walked_in_name_order_and_filtered_by_magic() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("s1")).unwrap();
        std::fs::write(root.join("s1/b.pcap"), [0xd4, 0xc3, 0xb2, 0xa1, 0, 0]).unwrap();
        std::fs::write(root.join("s1/a.bin"), [0x0a, 0x0d, 0x0d, 0x0a]).unwrap();
        std::fs::write(root.join("README"), b"hello").unwrap();
        std::fs::write(root.join("z.gz"), [0x1f, 0x8b, 8, 0]).unwrap();
        // hidden: skipped without a notice, whatever they hold
        std::fs::write(root.join(".x.pcap.part"), [0xd4, 0xc3, 0xb2, 0xa1, 0, 0]).unwrap();
        std::fs::write(root.join(".complete"), b"").unwrap();
        std::fs::create_dir_all(root.join(".snapshot")).unwrap();
        std::fs::write(
            root.join(".snapshot/c.pcap"),
            [0xd4, 0xc3, 0xb2, 0xa1, 0, 0],
        )
        .unwrap();
        let (files, problems) = discover(&[root.to_path_buf()]);
        let sources: Vec<_> = files.iter().map(|f| f.source.as_slice()).collect();
        assert_eq!(sources, [&b"s1/a.bin"[..], b"s1/b.pcap", b"z.gz"]);
        assert_eq!(problems.len(), 1);
        assert!(!problems[0].is_error());
        assert!(problems[0].to_string().contains("README"));
    }

    /// Compressed files are captures only when what they hold is one: a rotated conn.log.gz,
    /// notes in zstd or our own reset.log.gz in an archive directory are skipped with a notice
    /// (not read, failing, every run); a pzstd capture (a skippable frame first) is read.
    #[test]
    fn compressed_non_captures_are_skipped_and_pzstd_captures_found() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let pcap =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sample.pcap"))
                .unwrap();
        std::fs::write(root.join("a.pcap.gz"), rstscope_pcapgen::gzip(&pcap)).unwrap();
        std::fs::write(
            root.join("conn.log.gz"),
            rstscope_pcapgen::gzip(b"#separator \\x09\n"),
        )
        .unwrap();
        std::fs::write(
            root.join("notes.txt.zst"),
            rstscope_pcapgen::zstd(b"some notes"),
        )
        .unwrap();
        std::fs::write(
            root.join("reset.log.gz"),
            rstscope_pcapgen::gzip(b"#fields\tts\n"),
        )
        .unwrap();
        // pzstd: a skippable frame (magic 0x184D2A50, little-endian, then its size) first.
        let mut pz = vec![0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 0, 0, 0, 0];
        pz.extend(rstscope_pcapgen::zstd(&pcap));
        std::fs::write(root.join("p.pcap.zst"), &pz).unwrap();
        let (files, problems) = discover(&[root.to_path_buf()]);
        let sources: Vec<_> = files.iter().map(|f| f.source.as_slice()).collect();
        assert_eq!(sources, [&b"a.pcap.gz"[..], b"p.pcap.zst"]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().all(|p| !p.is_error()));
        let mut n = 0;
        let report = rstscope_capture::read_path(
            &root.join("p.pcap.zst"),
            rstscope_capture::PlainAccess::Read,
            |_| n += 1,
        );
        assert!(report.error.is_none(), "{:?}", report.error);
        assert!(n > 10);
    }

    #[test]
    fn symlinks_are_skipped_with_a_notice_or_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("archive")).unwrap();
        std::fs::create_dir_all(root.join("elsewhere")).unwrap();
        std::fs::write(
            root.join("elsewhere/a.pcap"),
            [0xd4, 0xc3, 0xb2, 0xa1, 0, 0],
        )
        .unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere/a.pcap"), root.join("archive/a.pcap"))
            .unwrap();
        let (files, problems) = discover(&[root.join("archive")]);
        assert!(files.is_empty());
        assert_eq!(problems.len(), 1);
        assert!(!problems[0].is_error());
        assert!(problems[0].to_string().contains("symbolic link"));
        let (files, problems) = discover_following(&[root.join("archive")], true);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].source, b"a.pcap");
        assert!(problems.is_empty());
    }

    #[test]
    fn a_file_reached_twice_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("s1")).unwrap();
        std::fs::write(root.join("s1/a.pcap"), [0xd4, 0xc3, 0xb2, 0xa1, 0, 0]).unwrap();
        let a = root.join("s1/a.pcap");
        let (files, problems) = discover(&[root.to_path_buf(), root.join("s1"), a.clone(), a]);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].source, b"s1/a.pcap");
        assert_eq!(problems.len(), 3);
        assert!(problems
            .iter()
            .all(|p| !p.is_error() && p.to_string().contains("already given")));
    }

    #[test]
    fn sensors_from_directories_or_name_prefixes() {
        let mk = |source: &str| InputFile {
            path: PathBuf::from(source),
            source: source.as_bytes().to_vec(),
            sensor: None,
        };
        let mut files = vec![
            mk("edge1/edge1-20261124-0000.pcap"),
            mk("top.pcap"),
            mk("a/b/c.pcap"),
        ];
        assign_sensors(&mut files, SensorFrom::Dir);
        let s: Vec<_> = files.iter().map(|f| f.sensor.clone()).collect();
        assert_eq!(s, [Some(b"edge1".into()), None, Some(b"a/b".into())]);
        assign_sensors(&mut files, SensorFrom::Prefix);
        let s: Vec<_> = files.iter().map(|f| f.sensor.clone()).collect();
        assert_eq!(
            s,
            [
                Some(b"edge1".into()),
                Some(b"top".into()),
                Some(b"c".into())
            ]
        );
        assign_sensors(&mut files, SensorFrom::None);
        assert!(files.iter().all(|f| f.sensor.is_none()));
    }

    /// Names that are not UTF-8 (legal on Linux) keep their bytes, in the file's name, in the
    /// directories above it and in the sensor named after them.
    #[test]
    fn names_that_are_not_utf8_keep_their_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let sub = root.join(OsStr::from_bytes(b"edge\xfe"));
        std::fs::create_dir_all(&sub).unwrap();
        for name in [&b"bad\xff\xfe.pcap"[..], b"bad\xff\xfd.pcap"] {
            std::fs::write(
                sub.join(OsStr::from_bytes(name)),
                [0xd4, 0xc3, 0xb2, 0xa1, 0, 0],
            )
            .unwrap();
        }
        let lone = root.join(OsStr::from_bytes(b"lone\x80-1.pcap"));
        std::fs::write(&lone, [0xd4, 0xc3, 0xb2, 0xa1, 0, 0]).unwrap();
        let (mut files, problems) = discover(&[root.to_path_buf(), lone]);
        assert!(problems.iter().all(|p| !p.is_error()), "{problems:?}");
        let sources: Vec<_> = files.iter().map(|f| f.source.as_slice()).collect();
        assert_eq!(
            sources,
            [
                &b"edge\xfe/bad\xff\xfd.pcap"[..],
                b"edge\xfe/bad\xff\xfe.pcap",
                b"lone\x80-1.pcap"
            ]
        );
        assign_sensors(&mut files, SensorFrom::Dir);
        assert_eq!(files[0].sensor.as_deref(), Some(&b"edge\xfe"[..]));
        assign_sensors(&mut files, SensorFrom::Prefix);
        assert_eq!(files[2].sensor.as_deref(), Some(&b"lone\x80"[..]));
        assert_eq!(name_text(&files[1].source), "edge\\xfe/bad\\xff\\xfe.pcap");
        assert_eq!(name_text(b"plain/\xc3\xa9.pcap"), "plain/\u{e9}.pcap");
        for name in [&files[1].source[..], b"plain.pcap", b"a\x01\n\xc3"] {
            assert_eq!(name_from_text(&name_text(name)), name);
        }
    }

    #[test]
    fn missing_input_is_an_error() {
        let (files, problems) = discover(&[PathBuf::from("/nonexistent/x.pcap")]);
        assert!(files.is_empty());
        assert!(problems[0].is_error());
    }
}
