//! `layers/<chain-id>/diff`: each layer unpacked once, named by its chain id (OCI image
//! spec), and shared as an overlay lowerdir; `layers/<chain-id>/layer.json` holds its
//! metadata. A layer is unpacked into `layers/.tmp-*` and renamed into place, so a
//! present `layers/<chain-id>` is always complete.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use berth_types::reference::Digest;
use serde::{Deserialize, Serialize};

use crate::blobs::{TMP_PREFIX, random_suffix};
use crate::error::StoreError;

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

impl LayerStore {
    /// Opens (creating) `<root>/layers`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let dir = root.join("layers");
        fs::create_dir_all(&dir).map_err(StoreError::io("create directory", &dir))?;
        Ok(LayerStore { dir })
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

    /// Removes a layer: renamed away first so it vanishes atomically. Absent is fine.
    pub fn remove(&self, chain: &Digest) -> Result<(), StoreError> {
        let dir = self.layer_dir(chain);
        let trash = self
            .dir
            .join(format!("{TMP_PREFIX}del-{}", random_suffix()));
        match fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(StoreError::Io {
                    op: "remove layer",
                    path: dir,
                    source: e,
                });
            }
        }
        fs::remove_dir_all(&trash).map_err(StoreError::io("remove layer", &trash))
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
    fn chain_ids_follow_the_oci_spec() {
        let a = Digest::sha256(b"a");
        let b = Digest::sha256(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::sha256(format!("{a} {b}").as_bytes()));
    }
}
