//! Container record writes on the start → exit → remove path: renamed into place
//! without an fsync.
//!
//! Measured on this project's machines an fsync costs 0.5-5 ms (more on a busy disk),
//! and `run --rm` made three of them after `create`. What makes skipping them safe:
//! - the exit status is the shim's `exit.json`, which the shim syncs before anything
//!   else; a record that lost its "exited" state is reconciled from it on start;
//! - a power loss ends every container, so a lost "running" state is reconciled to an
//!   exit like any dead shim;
//! - the rename is still atomic for readers and for `kill -9` of berthd (the page cache
//!   survives it), and on a journaled file system the rename of "removing" is ordered
//!   before the unlinks that follow it.
//!
//! `create` keeps the durable [`Record::save`]: a container that `create` reported
//! must survive a power loss.

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
