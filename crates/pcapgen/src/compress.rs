//! Compression wrappers and writing to disk.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use flate2::write::GzEncoder;
use flate2::Compression;

/// `data` as one gzip member.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// `data` split into `members` consecutive parts of near-equal size, each
/// compressed as its own gzip member and concatenated (like pigz output or
/// `cat a.gz b.gz`). A `members` of 0 is treated as 1; when `data` is shorter
/// than `members`, some members are empty.
pub fn gzip_members(data: &[u8], members: usize) -> Vec<u8> {
    let members = members.max(1);
    let mut out = Vec::new();
    for i in 0..members {
        let start = data.len() * i / members;
        let end = data.len() * (i + 1) / members;
        out.extend_from_slice(&gzip(&data[start..end]));
    }
    out
}

/// `data` as one zstd frame (level 3).
pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).expect("compressing to memory cannot fail")
}

/// Writes `bytes` to `path`, creating parent directories, via a temporary
/// file in the same directory renamed into place.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating directory {}", dir.display()))?;
    }
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let result = std::fs::write(&tmp, bytes)
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::{GzDecoder, MultiGzDecoder};
    use std::io::Read;

    fn sample() -> Vec<u8> {
        (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    fn count_members(gz: &[u8]) -> usize {
        // Decode member by member with the bufread GzDecoder, which stops at
        // the end of one member and leaves the rest of the slice unread.
        let mut n = 0;
        let mut rest = gz;
        while !rest.is_empty() {
            let mut d = flate2::bufread::GzDecoder::new(rest);
            let mut sink = Vec::new();
            d.read_to_end(&mut sink).unwrap();
            rest = d.into_inner();
            n += 1;
        }
        n
    }

    #[test]
    fn gzip_roundtrip() {
        let data = sample();
        let gz = gzip(&data);
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 0x08]);
        let mut out = Vec::new();
        GzDecoder::new(&gz[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(count_members(&gz), 1);
    }

    #[test]
    fn gzip_members_really_are_members() {
        let data = sample();
        for n in [1, 2, 3, 7] {
            let gz = gzip_members(&data, n);
            let mut all = Vec::new();
            MultiGzDecoder::new(&gz[..]).read_to_end(&mut all).unwrap();
            assert_eq!(all, data, "members={n}");
            let mut first = Vec::new();
            GzDecoder::new(&gz[..]).read_to_end(&mut first).unwrap();
            assert_eq!(first, data[..data.len() / n].to_vec(), "members={n}");
            assert_eq!(count_members(&gz), n);
        }
        assert_eq!(count_members(&gzip_members(&data, 0)), 1);
        // More members than bytes: empty members are still members.
        let gz = gzip_members(&[1, 2], 4);
        assert_eq!(count_members(&gz), 4);
        let mut all = Vec::new();
        MultiGzDecoder::new(&gz[..]).read_to_end(&mut all).unwrap();
        assert_eq!(all, vec![1, 2]);
    }

    #[test]
    fn zstd_roundtrip() {
        let data = sample();
        let z = zstd(&data);
        assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert_eq!(::zstd::decode_all(&z[..]).unwrap(), data);
    }

    #[test]
    fn write_file_creates_dirs_and_replaces() {
        let base =
            std::env::temp_dir().join(format!("rstscope-pcapgen-test-{}", std::process::id()));
        let path = base.join("a/b/c.pcap");
        write_file(&path, b"one").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_file(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn write_file_error_has_context() {
        let base =
            std::env::temp_dir().join(format!("rstscope-pcapgen-err-{}", std::process::id()));
        write_file(&base, b"file").unwrap();
        // A file used as a directory cannot work.
        let err = write_file(&base.join("x.pcap"), b"no").unwrap_err();
        assert!(format!("{err:#}").contains("creating directory"), "{err:#}");
        std::fs::remove_file(&base).unwrap();
    }
}
