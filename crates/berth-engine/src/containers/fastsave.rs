//! Container record writes on the start → exit path: without an fsync, and in place.
//!
//! Measured on this project's machines an fsync costs 0.5-5 ms (more on a busy disk),
//! and `run --rm` made three of them after `create`. What makes skipping them safe:
//! - the exit status is the shim's `exit.json` (written before anything else); a record
//!   that lost its "exited" state is reconciled from it on start;
//! - a power loss ends every container, so a lost "running" state is reconciled to an
//!   exit like any dead shim;
//! - the write is still whole for readers and for `kill -9` of berthd (the page cache
//!   survives it).
//!
//! A removal writes no record at all: "removing" is kept in memory while the network,
//! mounts and runtime state go, then the directory leaves in one rename (to the trash);
//! a crash before that leaves the container as it was. (Each rename over a record also
//! frees the old file's blocks, which on this `discard`-mounted disk costs 0.3-0.7 ms.)
//!
//! `create` keeps the durable [`Record::save`]: a container that `create` reported
//! must survive a power loss — except an AutoRemove (`--rm`) one, which berthd removes
//! after a power loss anyway ([`Record::save_unsynced`]). The files derived from it at create (the bundle's
//! config.json, log-config.json) are written straight into the container's fresh
//! directory before the record, without a temp file or an fsync of their own: nothing
//! reads them before the record exists, and a directory without a record is removed when
//! berthd starts. After a power loss in the seconds after a `create` such a file can be
//! empty; `start` then fails naming it (the spec cannot be read) and the container can be
//! removed and made again.
//!
//! The start, the exit and health results write the record's second copy, `state.json`,
//! in place ([`Record::save_hot`]): one pwrite, no rename, so no old file's blocks are
//! freed (a rename over the record cost 0.3-2 ms here, most of it the discard of the
//! freed block). The copy is padded with spaces to its previous length (JSON allows
//! trailing white space), so it never shrinks and is never truncated. [`Record::load`]
//! takes the newer of `config.json` and `state.json` by their `seq` stamps; a torn
//! `state.json` (a crash in the middle of that one write) does not parse and the older
//! `config.json` wins — as if the crash had come just before the write, which the exit
//! path already recovers from (`exit.json`, a dead shim).

use std::os::unix::fs::FileExt as _;
use std::path::Path;

use super::error::ContainerError;
use super::record::Record;

/// The record's second copy, written in place.
pub(super) const HOT: &str = "state.json";

impl Record {
    /// [`Record::save`] without the fsync (temp file, rename): for records a power loss
    /// may lose (an AutoRemove container's, which berthd removes after one anyway).
    pub(super) fn save_unsynced(&self, dir: &Path) -> Result<(), ContainerError> {
        let path = dir.join("config.json");
        let tmp = dir.join(".config.json.tmp");
        let bytes = self.stamped_json(&path, true)?;
        std::fs::write(&tmp, &bytes).map_err(ContainerError::io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(ContainerError::io("rename into place", &path))
    }

    /// Writes the record into `<dir>/state.json` in place (see the module docs).
    pub(super) fn save_hot(&self, dir: &Path) -> Result<(), ContainerError> {
        let path = dir.join(HOT);
        let mut bytes = self.stamped_json(&path, false)?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(ContainerError::io("open", &path))?;
        let old = f
            .metadata()
            .map_err(ContainerError::io("stat", &path))?
            .len() as usize;
        if bytes.len() < old {
            bytes.resize(old, b' ');
        }
        f.write_all_at(&bytes, 0)
            .map_err(ContainerError::io("write", &path))
    }
}
