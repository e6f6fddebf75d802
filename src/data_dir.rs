//! The data directory and its lock: a second broker on the same data dir (and so, by default, the
//! same port through SO_REUSEPORT) would silently take half the connections; it is refused instead.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Holds the lock for as long as it lives.
pub struct DataDirLock {
    _file: File,
}

pub fn lock(dir: &Path) -> Result<DataDirLock, String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create data dir {}: {e}", dir.display()))?;
    let path = dir.join("warren.lock");
    let file = File::create(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(format!(
            "data dir {} is in use by another warren (lock {} is held)",
            dir.display(),
            path.display()
        ));
    }
    Ok(DataDirLock { _file: file })
}
