//! `<data-root>/build/cache.json`: step key → the image that step produced. Versioned,
//! rewritten atomically (temp file, fsync, rename) under a process-wide lock, so
//! concurrent builds never lose each other's entries; an entry whose image is gone is
//! simply a miss.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_types::reference::Digest;
use serde::{Deserialize, Serialize};

use super::BuildError;

const VERSION: u32 = 1;

static LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    entries: BTreeMap<String, String>,
}

/// The persistent build cache.
#[derive(Debug)]
pub struct BuildCache {
    path: PathBuf,
    entries: BTreeMap<String, String>,
}

impl BuildCache {
    /// Opens (creating the directory) `<root>/cache.json`; a missing file is empty.
    pub fn open(root: &Path) -> Result<BuildCache, BuildError> {
        std::fs::create_dir_all(root).map_err(BuildError::io("create", root))?;
        let path = root.join("cache.json");
        let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let entries = read(&path)?.entries;
        Ok(BuildCache { path, entries })
    }

    /// The image stored under `key`.
    pub fn get(&self, key: &str) -> Option<Digest> {
        self.entries.get(key).and_then(|v| Digest::parse(v).ok())
    }

    /// Records `key` → `image` (re-reading the file under the lock first).
    pub fn put(&mut self, key: &str, image: &Digest) -> Result<(), BuildError> {
        let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = read(&self.path)?;
        f.entries.insert(key.to_owned(), image.to_string());
        write(&self.path, &f)?;
        self.entries = f.entries;
        Ok(())
    }

    /// Empties the cache; returns the images it named.
    pub fn clear(&self) -> Result<Vec<Digest>, BuildError> {
        let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let f = read(&self.path)?;
        let ids: Vec<Digest> = f
            .entries
            .values()
            .filter_map(|v| Digest::parse(v).ok())
            .collect();
        write(
            &self.path,
            &File {
                version: VERSION,
                entries: BTreeMap::new(),
            },
        )?;
        Ok(ids)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn read(path: &Path) -> Result<File, BuildError> {
    match std::fs::read(path) {
        Ok(b) => {
            let f: File = serde_json::from_slice(&b)
                .map_err(|e| BuildError::Other(format!("build cache {}: {e}", path.display())))?;
            if f.version != VERSION {
                return Err(BuildError::Other(format!(
                    "build cache {}: unsupported version {} (this build reads {VERSION})",
                    path.display(),
                    f.version
                )));
            }
            Ok(f)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File {
            version: VERSION,
            entries: BTreeMap::new(),
        }),
        Err(e) => Err(BuildError::io("read", path)(e)),
    }
}

fn write(path: &Path, f: &File) -> Result<(), BuildError> {
    let bytes = serde_json::to_vec_pretty(f)
        .map_err(|e| BuildError::Other(format!("encode build cache: {e}")))?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut out = std::fs::File::create(&tmp)?;
        out.write_all(&bytes)?;
        out.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(BuildError::io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopen_and_clear() {
        let t = tempfile::tempdir().unwrap();
        let mut c = BuildCache::open(t.path()).unwrap();
        assert!(c.is_empty());
        let id = Digest::sha256(b"x");
        c.put("k1", &id).unwrap();
        let c2 = BuildCache::open(t.path()).unwrap();
        assert_eq!(c2.get("k1"), Some(id.clone()));
        assert_eq!(c2.len(), 1);
        assert_eq!(c2.clear().unwrap(), vec![id]);
        assert!(BuildCache::open(t.path()).unwrap().get("k1").is_none());
    }
}
