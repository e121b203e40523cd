//! Container record writes on the start → exit path: renamed into place without an
//! fsync.
//!
//! Measured on this project's machines an fsync costs 0.5-5 ms (more on a busy disk),
//! and `run --rm` made three of them after `create`. What makes skipping them safe:
//! - the exit status is the shim's `exit.json` (written before anything else); a record
//!   that lost its "exited" state is reconciled from it on start;
//! - a power loss ends every container, so a lost "running" state is reconciled to an
//!   exit like any dead shim;
//! - the rename is still atomic for readers and for `kill -9` of berthd (the page cache
//!   survives it).
//!
//! A removal writes no record at all: "removing" is kept in memory while the network,
//! mounts and runtime state go, then the directory leaves in one rename (to the trash);
//! a crash before that leaves the container as it was. (Each rename over a record also
//! frees the old file's blocks, which on this `discard`-mounted disk costs 0.3-0.7 ms.)
//!
//! `create` keeps the durable [`Record::save`]: a container that `create` reported
//! must survive a power loss. The files derived from it at create (the bundle's
//! config.json, log-config.json) are renamed into place without an fsync of their own
//! ([`write_renamed`]): two fsyncs fewer per `create` (each 0.3 ms on an idle disk, several
//! ms on a busy one). After a power loss in the seconds after a `create` such a file can be
//! empty; `start` then fails naming it (the spec cannot be read) and the container can be
//! removed and made again.

use std::path::Path;

use super::error::ContainerError;
use super::record::Record;

impl Record {
    /// Like [`Record::save`] (temp file, rename) without the fsync.
    pub(super) fn save_renamed(&self, dir: &Path) -> Result<(), ContainerError> {
        let path = dir.join("config.json");
        let tmp = dir.join(".config.json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| ContainerError::Io {
            op: "encode",
            path: path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&tmp, &bytes).map_err(ContainerError::io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(ContainerError::io("rename into place", &path))
    }
}

/// Temp file, rename — no fsync (see the module docs for which files may).
pub(super) fn write_renamed(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), ContainerError> {
    std::fs::write(tmp, bytes).map_err(ContainerError::io("write", tmp))?;
    std::fs::rename(tmp, path).map_err(ContainerError::io("rename into place", path))
}
