//! The lock that keeps a SQLite database to one running slotgate.
//!
//! Two `slotgate run` processes on one SQLite file would each believe they
//! are the only node: both would claim the same due callbacks (SQLite has
//! no `SKIP LOCKED` and the scheduler's leases assume one claimer per
//! node name) and both would hold INVITEs woken only in-process. An
//! exclusive `flock` on `<db>.lock`, taken at start and held for the life of
//! the process, makes the second one refuse to start instead. The kernel
//! drops the lock when the process dies, however it dies, so a crash never
//! leaves a stale lock behind. Other commands (`migrate`, `dnc import`)
//! do not take it: they are short and safe beside a running node.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Held while this process is the database's only node; dropping it (or
/// the process ending) releases the lock.
#[derive(Debug)]
pub struct SingleNodeLock {
    /// `None` on an engine that needs no lock (PostgreSQL is made for
    /// several nodes; an in-memory SQLite database is private).
    _file: Option<File>,
}

impl SingleNodeLock {
    pub(super) fn unlocked() -> SingleNodeLock {
        SingleNodeLock { _file: None }
    }
}

/// The lock file of the SQLite database at `database`.
pub(super) fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the exclusive lock on `database`'s lock file, without waiting.
pub(super) fn lock(database: &Path) -> Result<SingleNodeLock, StoreError> {
    let path = lock_path(database);
    let failed = |cause: String| StoreError::Locked {
        path: path.display().to_string(),
        cause,
    };
    // Never truncated or removed: removing it while another process holds
    // it would let a third one lock a new file of the same name.
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| failed(format!("cannot open it: {e}")))?;
    try_lock_exclusive(&file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            failed(
                "another slotgate process is running on this SQLite database; \
                 stop it, or use PostgreSQL to run several nodes"
                    .into(),
            )
        } else {
            failed(format!("cannot lock it: {e}"))
        }
    })?;
    Ok(SingleNodeLock { _file: Some(file) })
}

#[cfg(unix)]
fn try_lock_exclusive(file: &File) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: the descriptor belongs to `file`, which outlives the call;
    // flock only reads it.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Elsewhere slotgate does not enforce the single node: the lock is a
/// safety net, not part of correctness on the supported (Unix) platforms.
#[cfg(not(unix))]
fn try_lock_exclusive(_file: &File) -> std::io::Result<()> {
    Ok(())
}
