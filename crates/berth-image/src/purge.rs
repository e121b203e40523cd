//! `trash/`: removed layer trees, deleted in the background.
//!
//! Removing a layer renames its directory into `trash/` (atomic: the layer is gone from
//! the store at once) and queues it here; one background thread deletes the queued trees
//! and exits when the queue is empty. Deleting a tree of thousands of files can take
//! seconds (tens of seconds on a file system mounted with `discard`, which trims every
//! freed extent synchronously), and nothing has to wait for it: not `rmi`, not the GC
//! sweep that holds the lease lock, not the next pull. Crash safe: whatever a killed
//! daemon left in `trash/` is queued again when the store opens.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::blobs::random_suffix;
use crate::error::StoreError;
use crate::store::lock;

#[derive(Debug, Default)]
struct Queue {
    trees: VecDeque<PathBuf>,
    /// A purge thread is running (and will look at the queue again before it exits).
    running: bool,
    /// When the last tree was queued.
    last: Option<Instant>,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    idle: Condvar,
    /// Wake-ups for a purger waiting for quiet ([`Trash::open_settled`]).
    queued: Condvar,
    /// How long no tree must have been queued before deleting starts (zero: at once).
    settle: Duration,
}

/// With a settle time, deleting starts anyway once this many trees wait.
const MAX_WAITING: usize = 64;

/// The trash directory of a store and its background deleter. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Trash {
    dir: PathBuf,
    shared: Arc<Shared>,
}

impl Trash {
    /// Opens (creating) `<root>/trash` and queues whatever a previous process left there.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        Trash::open_settled(root, Duration::ZERO)
    }

    /// [`Trash::open`] whose deleting starts only once nothing was queued for `settle`
    /// (or [`MAX_WAITING`] trees wait): a burst of removals (the containers of a loop of
    /// `run --rm`) is not slowed by deletes running beside it, on a disk where every freed
    /// extent is trimmed synchronously.
    pub fn open_settled(root: &Path, settle: Duration) -> Result<Self, StoreError> {
        let dir = root.join("trash");
        fs::create_dir_all(&dir).map_err(StoreError::io("create directory", &dir))?;
        let trash = Trash {
            dir,
            shared: Arc::new(Shared {
                settle,
                ..Shared::default()
            }),
        };
        let mut left = Vec::new();
        for e in fs::read_dir(&trash.dir).map_err(StoreError::io("read directory", &trash.dir))? {
            let e = e.map_err(StoreError::io("read directory", &trash.dir))?;
            left.push(e.path());
        }
        for p in left {
            trash.queue(p);
        }
        Ok(trash)
    }

    /// The trash directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves `path` (a directory or file of the same file system) into the trash and
    /// queues it for deletion. `Ok(false)` when `path` does not exist.
    pub fn discard(&self, path: &Path) -> Result<bool, StoreError> {
        let dest = self.dir.join(random_suffix());
        match fs::rename(path, &dest) {
            Ok(()) => {
                self.queue(dest);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::Io {
                op: "move to trash",
                path: path.to_owned(),
                source: e,
            }),
        }
    }

    fn queue(&self, path: PathBuf) {
        let mut q = lock(&self.shared.queue);
        q.trees.push_back(path);
        q.last = Some(Instant::now());
        if q.running {
            self.shared.queued.notify_all();
            return;
        }
        q.running = true;
        drop(q);
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("berth-purge".into())
            .spawn(move || {
                // Lowest CPU priority (this thread only): deleting thousands of inodes is
                // kernel work that would otherwise take a core from the pull that follows
                // an `rmi`. Best effort.
                let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
                purge(&shared)
            });
        if spawned.is_err() {
            // No thread to spare: delete here and now.
            purge(&self.shared);
        }
    }

    /// Blocks until everything queued so far is deleted.
    pub fn wait_idle(&self) {
        let mut q = lock(&self.shared.queue);
        while q.running {
            q = self.shared.idle.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Deletes queued trees until the queue is empty, then marks the purger idle.
fn purge(shared: &Shared) {
    loop {
        let next = {
            let mut q = lock(&shared.queue);
            // wait for quiet: no tree queued for `settle`, unless many are waiting
            while !shared.settle.is_zero() && q.trees.len() < MAX_WAITING {
                let quiet = q.last.map_or(shared.settle, |t| t.elapsed());
                if quiet >= shared.settle {
                    break;
                }
                q = shared
                    .queued
                    .wait_timeout(q, shared.settle - quiet)
                    .map_or_else(|p| p.into_inner().0, |(q, _)| q);
            }
            match q.trees.pop_front() {
                Some(p) => p,
                None => {
                    q.running = false;
                    shared.idle.notify_all();
                    return;
                }
            }
        };
        let res = if next.is_dir() {
            fs::remove_dir_all(&next)
        } else {
            fs::remove_file(&next)
        };
        if let Err(e) = res
            && e.kind() != std::io::ErrorKind::NotFound
        {
            // Left for the next open to retry; nothing else depends on it.
            tracing::warn!(path = %next.display(), error = %e, "cannot delete from the trash");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discarded_trees_leave_at_once_and_are_deleted_in_the_background() {
        let t = tempfile::tempdir().unwrap();
        let trash = Trash::open(t.path()).unwrap();
        for i in 0..3 {
            let d = t.path().join(format!("layer{i}/diff/usr/lib"));
            fs::create_dir_all(&d).unwrap();
            for f in 0..200 {
                fs::write(d.join(format!("f{f}")), b"x").unwrap();
            }
            assert!(trash.discard(&t.path().join(format!("layer{i}"))).unwrap());
            assert!(!t.path().join(format!("layer{i}")).exists());
        }
        assert!(!trash.discard(&t.path().join("absent")).unwrap());
        trash.wait_idle();
        assert_eq!(fs::read_dir(trash.dir()).unwrap().count(), 0);

        // with a settle time, nothing is deleted while trees keep coming
        let settled = Trash::open_settled(&t.path().join("s"), Duration::from_secs(2)).unwrap();
        let first = t.path().join("s/one");
        fs::create_dir_all(first.join("a")).unwrap();
        assert!(settled.discard(&first).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(fs::read_dir(settled.dir()).unwrap().count(), 1, "not yet");
        settled.wait_idle();
        assert_eq!(fs::read_dir(settled.dir()).unwrap().count(), 0);
    }

    #[test]
    fn leftovers_of_a_killed_process_are_purged_when_the_trash_opens() {
        let t = tempfile::tempdir().unwrap();
        let left = t.path().join("trash/0123abcd/diff/etc");
        fs::create_dir_all(&left).unwrap();
        fs::write(left.join("passwd"), b"root:x:0:0").unwrap();
        fs::write(t.path().join("trash/stray-file"), b"x").unwrap();
        let trash = Trash::open(t.path()).unwrap();
        trash.wait_idle();
        assert_eq!(fs::read_dir(trash.dir()).unwrap().count(), 0);
    }
}
