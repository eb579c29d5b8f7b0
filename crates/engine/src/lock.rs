//! The locks that keep overlapping runs apart: the output directory's (a second run exits at
//! once) and a shared state file's (runs sharing it wait their turn); and the removal of
//! temporaries a killed run left, done under the lock.

use std::fs::File;
use std::path::Path;

pub use crate::error::LockError;

/// The lock file in the output directory.
pub const LOCK_NAME: &str = ".rstscope.lock";

/// Take the run lock in `dir` (created if needed); released when the file is dropped or the
/// process ends, even if it is killed. Compatible with `flock -n` wrappers on the same file.
pub fn lock_output_dir(dir: &Path) -> Result<File, LockError> {
    let path = dir.join(LOCK_NAME);
    if dir.exists() && !dir.is_dir() {
        return Err(LockError::Io(
            dir.to_path_buf(),
            std::io::Error::other("the output must be a directory, and this is not one"),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| LockError::Io(dir.to_path_buf(), e))?;
    let f = open_lock_file(&path)?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held(path)),
        Err(std::fs::TryLockError::Error(e)) => Err(LockError::Io(path, e)),
    }
}

/// Open (or create) a lock file, readable and writable by its owner only: a shared lock
/// (`flock -s`) another user took on a world-readable lock file would block every run.
pub(crate) fn open_lock_file(path: &Path) -> Result<File, LockError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let f = opts
        .open(path)
        .map_err(|e| LockError::Io(path.to_path_buf(), e))?;
    // A lock file an earlier version created 0644 is narrowed too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = f.metadata() {
            if m.permissions().mode() & 0o077 != 0 {
                let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
            }
        }
    }
    Ok(f)
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

/// Take the lock of a state file (`STATE.lock` beside it), waiting for a run holding it: two
/// runs sharing one state file read, update and write it one after the other. `waiting` is
/// called once if the lock is held by another run.
pub fn lock_state(path: &Path, waiting: impl FnOnce(&Path)) -> Result<File, LockError> {
    let (dir, name) = crate::state::split_path(path);
    let lock = dir.join(format!("{name}.lock"));
    std::fs::create_dir_all(dir).map_err(|e| LockError::Io(lock.clone(), e))?;
    let f = open_lock_file(&lock)?;
    match f.try_lock() {
        Ok(()) => return Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => waiting(&lock),
        Err(std::fs::TryLockError::Error(e)) => return Err(LockError::Io(lock, e)),
    }
    f.lock().map_err(|e| LockError::Io(lock, e))?;
    Ok(f)
}
