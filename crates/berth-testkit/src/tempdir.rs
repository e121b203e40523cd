//! Temp dirs removed on drop, even when the test panics.

use std::io;
use std::path::{Path, PathBuf};

/// A fresh directory under the system temp dir (`$TMPDIR` or `/tmp`), named
/// `berth-<prefix>-<6 random chars>`, removed recursively on drop.
///
/// Anything mounted below it must be unmounted first (see `Cleanup`), or the removal
/// stops at the mount point.
#[derive(Debug)]
pub struct TestDir {
    inner: tempfile::TempDir,
}

impl TestDir {
    /// Create a new directory; `prefix` makes leftovers attributable (`berth-<prefix>-...`).
    pub fn new(prefix: &str) -> io::Result<Self> {
        let inner = tempfile::Builder::new()
            .prefix(&format!("berth-{prefix}-"))
            .tempdir()?;
        Ok(Self { inner })
    }

    /// Create a new directory inside `parent`.
    pub fn new_in(parent: &Path, prefix: &str) -> io::Result<Self> {
        let inner = tempfile::Builder::new()
            .prefix(&format!("berth-{prefix}-"))
            .tempdir_in(parent)?;
        Ok(Self { inner })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// `self.path().join(p)`.
    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.inner.path().join(p)
    }

    /// Keep the directory (for debugging a failed test); returns its path.
    pub fn keep(self) -> PathBuf {
        self.inner.keep()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}
