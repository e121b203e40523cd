//! `layers/<chain-id>/diff`: each layer unpacked once, named by its chain id (OCI image
//! spec), and shared as an overlay lowerdir; `layers/<chain-id>/layer.json` holds its
//! metadata. A layer is unpacked into `layers/.tmp-*` and renamed into place, so a
//! present `layers/<chain-id>` is always complete.

use std::fs;
use std::path::{Path, PathBuf};

use berth_types::reference::Digest;
use serde::{Deserialize, Serialize};

use crate::blobs::{TMP_PREFIX, random_suffix};
use crate::error::StoreError;
use crate::purge::Trash;

/// Metadata of one unpacked layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerMeta {
    /// Format version of this file.
    pub version: u32,
    /// The chain id (the directory name).
    pub chain_id: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The chain id of the layer below, if any.
    pub parent: Option<Digest>,
    /// Bytes of regular-file content.
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
}

/// The chain id of a layer on top of `parent` (OCI image spec, "ChainID").
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::sha256(format!("{p} {diff_id}").as_bytes()),
    }
}

/// The chain ids of a stack of diff ids, bottom first.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let c = chain_id(out.last(), d);
        out.push(c);
    }
    out
}

/// The layer directory of a store.
#[derive(Debug, Clone)]
pub struct LayerStore {
    dir: PathBuf,
    trash: Trash,
}

/// A layer being unpacked; removed when dropped uncommitted.
#[derive(Debug)]
pub struct LayerTemp {
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl LayerTemp {
    /// The directory to unpack into.
    pub fn diff(&self) -> PathBuf {
        self.tmp.join("diff")
    }

    /// Writes the metadata and renames the layer into place. When another writer got
    /// there first, this copy is discarded and the existing one kept.
    pub fn commit(self, meta: &LayerMeta) -> Result<(), StoreError> {
        let dest = self.dest.clone();
        self.commit_as(&dest, meta)
    }

    /// Like [`LayerTemp::commit`], to a destination decided after unpacking.
    pub fn commit_as(mut self, dest: &Path, meta: &LayerMeta) -> Result<(), StoreError> {
        self.dest = dest.to_owned();
        let json = serde_json::to_vec_pretty(meta)
            .map_err(|e| StoreError::Task(format!("serialize layer metadata: {e}")))?;
        let mpath = self.tmp.join("layer.json");
        fs::write(&mpath, json).map_err(StoreError::io("write layer metadata", &mpath))?;
        // One syncfs for the whole tree (no fsync per file while unpacking): what is
        // renamed into place below is on disk.
        let dir = fs::File::open(&self.tmp).map_err(StoreError::io("open layer", &self.tmp))?;
        rustix::fs::syncfs(&dir).map_err(|e| StoreError::Io {
            op: "syncfs layer",
            path: self.tmp.clone(),
            source: e.into(),
        })?;
        match fs::rename(&self.tmp, &self.dest) {
            Ok(()) => {
                self.done = true;
                Ok(())
            }
            Err(e) if self.dest.join("layer.json").is_file() => {
                // Already unpacked by someone else (ENOTEMPTY/EEXIST): keep theirs.
                let _ = e;
                Ok(())
            }
            Err(e) => Err(StoreError::Io {
                op: "publish layer",
                path: self.dest.clone(),
                source: e,
            }),
        }
    }
}

impl Drop for LayerTemp {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Marks `dir` as the top of independent directory trees (`chattr +T`, `FS_TOPDIR_FL`):
/// ext4's Orlov allocator then places each directory made in it (every layer being
/// unpacked) in a block group of its own choosing, with many free inodes and few
/// directories, instead of next to its siblings. Each layer is an independent tree, as
/// home directories are. It matters most on ext4 without a journal, where the inode
/// allocator skips, one buffer-cache lookup each, every inode freed in the last minutes:
/// a layer unpacked next to one just removed (`rmi` then `pull`) pays that scan for every
/// file it creates (a Debian base layer: 5-6 s instead of 0.4 s). Best effort: other file
/// systems refuse the flag or ignore it, and placement is not correctness.
pub fn mark_topdir(dir: &Path) {
    let Ok(f) = fs::File::open(dir) else {
        return;
    };
    match rustix::fs::ioctl_getflags(&f) {
        Ok(flags) if flags.contains(rustix::fs::IFlags::TOPDIR) => {}
        Ok(flags) => {
            if let Err(e) = rustix::fs::ioctl_setflags(&f, flags | rustix::fs::IFlags::TOPDIR) {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot set FS_TOPDIR_FL");
            }
        }
        Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "no inode flags here"),
    }
}

/// Removed layers are deleted once the store has had no removal and no pull for this long
/// (see [`Trash::hold`]): `rmi` then `pull` is common, and deleting a Debian tree beside the
/// pull slowed it.
const LAYER_PURGE_SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

impl LayerStore {
    /// Opens (creating) `<root>/layers`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let dir = root.join("layers");
        fs::create_dir_all(&dir).map_err(StoreError::io("create directory", &dir))?;
        mark_topdir(&dir);
        let trash = Trash::open_settled(root, LAYER_PURGE_SETTLE)?;
        Ok(LayerStore { dir, trash })
    }

    /// Removes half-unpacked and half-removed layers left by a crash.
    pub fn clean_temp(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for e in fs::read_dir(&self.dir).map_err(StoreError::io("read directory", &self.dir))? {
            let e = e.map_err(StoreError::io("read directory", &self.dir))?;
            if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                fs::remove_dir_all(e.path())
                    .map_err(StoreError::io("remove temp layer", e.path()))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// `layers/<chain-id-hex>`.
    pub fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.dir.join(chain.hex())
    }

    /// `layers/<chain-id-hex>/diff`, the overlay lowerdir.
    pub fn diff_path(&self, chain: &Digest) -> PathBuf {
        self.layer_dir(chain).join("diff")
    }

    /// Whether the layer is completely unpacked.
    pub fn contains(&self, chain: &Digest) -> bool {
        self.layer_dir(chain).join("layer.json").is_file()
    }

    /// The layer's metadata.
    pub fn meta(&self, chain: &Digest) -> Result<LayerMeta, StoreError> {
        let p = self.layer_dir(chain).join("layer.json");
        let bytes = fs::read(&p).map_err(StoreError::io("read layer metadata", &p))?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Metadata { path: p, source })
    }

    /// Starts a new layer directory for `chain`.
    pub fn begin(&self, chain: &Digest) -> Result<LayerTemp, StoreError> {
        let tmp = self.dir.join(format!("{TMP_PREFIX}{}", random_suffix()));
        fs::create_dir(&tmp).map_err(StoreError::io("create temp layer", &tmp))?;
        let t = LayerTemp {
            tmp,
            dest: self.layer_dir(chain),
            done: false,
        };
        fs::create_dir(t.diff()).map_err(StoreError::io("create temp layer", t.diff()))?;
        Ok(t)
    }

    /// Removes a layer: renamed into the trash, so it vanishes atomically, and deleted
    /// there in the background ([`Trash`]). Absent is fine.
    pub fn remove(&self, chain: &Digest) -> Result<(), StoreError> {
        self.trash.discard(&self.layer_dir(chain)).map(|_| ())
    }

    /// The trash removed layers are deleted from.
    pub fn trash(&self) -> &Trash {
        &self.trash
    }

    /// Every complete layer.
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(StoreError::io("read directory", &self.dir))? {
            let e = e.map_err(StoreError::io("read directory", &self.dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                out.push(d);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layers_directory_spreads_new_layers_over_block_groups() {
        let t = tempfile::tempdir().unwrap();
        let store = LayerStore::open(t.path()).unwrap();
        let dir = fs::File::open(&store.dir).unwrap();
        match rustix::fs::ioctl_getflags(&dir) {
            // ext4 and the like: the flag is set (ext4 keeps it; others may drop it).
            Ok(flags) => {
                let fs_type = rustix::fs::fstatfs(&dir).unwrap().f_type;
                if fs_type == 0xEF53 {
                    assert!(flags.contains(rustix::fs::IFlags::TOPDIR), "{flags:?}");
                }
            }
            // No inode flags on this file system (tmpfs): opening still worked.
            Err(e) => assert!(
                matches!(e, rustix::io::Errno::NOTTY | rustix::io::Errno::NOTSUP),
                "{e}"
            ),
        }
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn chain_ids_follow_the_oci_spec() {
        let a = Digest::sha256(b"a");
        let b = Digest::sha256(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::sha256(format!("{a} {b}").as_bytes()));
    }
}
