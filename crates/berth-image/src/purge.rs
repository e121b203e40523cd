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
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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
    /// Pulls, loads and imports in flight ([`Trash::hold`]): the purger pauses for them.
    holds: usize,
    /// Callers of [`Trash::wait_idle`]: the purger does not pause while one waits.
    waiters: usize,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    idle: Condvar,
    /// Wake-ups for a purger waiting for quiet ([`Trash::open_settled`]).
    queued: Condvar,
    /// How long no tree must have been queued (nor a hold released) before deleting starts
    /// (zero: at once).
    settle: Duration,
}

/// With a settle time, deleting starts anyway once this many trees wait.
const MAX_WAITING: usize = 64;

/// Entries deleted between two looks at [`Trash::hold`]s.
const BATCH: usize = 32;
/// The longest the purger pauses for holds at a time; then it deletes for [`RUN_AFTER_PAUSE`]
/// before pausing again, so that a store never idle still gets its trash deleted.
const PAUSE_MAX: Duration = Duration::from_secs(30);
const RUN_AFTER_PAUSE: Duration = Duration::from_secs(1);

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

    /// Blocks until everything queued so far is deleted (holds do not pause the purger
    /// meanwhile).
    pub fn wait_idle(&self) {
        let mut q = lock(&self.shared.queue);
        q.waiters += 1;
        self.shared.queued.notify_all();
        while q.running {
            q = self.shared.idle.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        q.waiters -= 1;
    }

    /// Pauses the purger until the returned guard drops (at most [`PAUSE_MAX`] at a time):
    /// a pull is CPU- and disk-bound, and deleting a big tree beside it (thousands of
    /// unlinks, each freed extent trimmed on a `discard` mount, journal commits its fsyncs
    /// must wait for) slowed a Debian pull right after an `rmi` by 15% and at times 4x.
    pub fn hold(&self) -> Hold {
        lock(&self.shared.queue).holds += 1;
        Hold {
            shared: self.shared.clone(),
        }
    }
}

/// A pull (or load, import) in flight; see [`Trash::hold`].
#[must_use = "the purger pauses only while the hold lives"]
#[derive(Debug)]
pub struct Hold {
    shared: Arc<Shared>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut q = lock(&self.shared.queue);
        q.holds -= 1;
        // the settle time counts from the end of the last pull
        q.last = Some(Instant::now());
        if q.holds == 0 {
            self.shared.queued.notify_all();
        }
    }
}

/// Deletes queued trees until the queue is empty, then marks the purger idle.
fn purge(shared: &Shared) {
    loop {
        let next = {
            let mut q = lock(&shared.queue);
            // wait for quiet, unless many trees wait
            if q.trees.len() < MAX_WAITING {
                q = wait_quiet(shared, q);
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
        let res = Purger {
            shared,
            free_until: None,
        }
        .remove(&next);
        if let Err(e) = res
            && e.kind() != std::io::ErrorKind::NotFound
        {
            // Left for the next open to retry; nothing else depends on it.
            tracing::warn!(path = %next.display(), error = %e, "cannot delete from the trash");
        }
    }
}

/// Deletes one tree, pausing between batches of entries while the trash is held.
struct Purger<'a> {
    shared: &'a Shared,
    /// After a pause that ran out, deleting goes on without looking until then.
    free_until: Option<Instant>,
}

impl Purger<'_> {
    fn remove(&mut self, path: &Path) -> std::io::Result<()> {
        if !fs::symlink_metadata(path)?.is_dir() {
            return fs::remove_file(path);
        }
        self.remove_contents(path)?;
        fs::remove_dir(path)
    }

    fn remove_contents(&mut self, dir: &Path) -> std::io::Result<()> {
        for (n, e) in fs::read_dir(dir)?.enumerate() {
            if n % BATCH == 0 {
                self.gate();
            }
            let e = e?;
            let p = e.path();
            let res = if e.file_type()?.is_dir() {
                self.remove_contents(&p).and_then(|()| fs::remove_dir(&p))
            } else {
                fs::remove_file(&p)
            };
            match res {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Pauses while the store is busy (see [`wait_quiet`]); after a pause that ran out,
    /// deletes for [`RUN_AFTER_PAUSE`] before looking again.
    fn gate(&mut self) {
        if self.free_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let start = Instant::now();
        drop(wait_quiet(self.shared, lock(&self.shared.queue)));
        if start.elapsed() >= PAUSE_MAX {
            self.free_until = Some(Instant::now() + RUN_AFTER_PAUSE);
        }
    }
}

/// Waits (at most [`PAUSE_MAX`]) until the store is quiet: no hold, and nothing queued or
/// released for `settle`. Returns at once while someone waits for the trash to empty.
fn wait_quiet<'a>(shared: &Shared, mut q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
    let start = Instant::now();
    while q.waiters == 0 {
        let quiet = q.last.map_or(shared.settle, |t| t.elapsed());
        let wait = if q.holds > 0 {
            PAUSE_MAX
        } else if quiet < shared.settle {
            shared.settle - quiet
        } else {
            break;
        };
        let left = PAUSE_MAX.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        q = shared
            .queued
            .wait_timeout(q, wait.min(left))
            .map_or_else(|p| p.into_inner().0, |(q, _)| q);
    }
    q
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
    fn a_hold_pauses_the_purger_and_wait_idle_overrides_it() {
        let t = tempfile::tempdir().unwrap();
        let trash = Trash::open(t.path()).unwrap();
        let hold = trash.hold();
        let tree = t.path().join("layer/diff");
        fs::create_dir_all(&tree).unwrap();
        for f in 0..10 {
            fs::write(tree.join(format!("f{f}")), b"x").unwrap();
        }
        assert!(trash.discard(&t.path().join("layer")).unwrap());
        std::thread::sleep(Duration::from_millis(200));
        let in_trash = fs::read_dir(trash.dir())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert_eq!(
            fs::read_dir(in_trash.join("diff")).unwrap().count(),
            10,
            "nothing deleted while held"
        );
        drop(hold);
        trash.wait_idle();
        assert_eq!(fs::read_dir(trash.dir()).unwrap().count(), 0);

        // a waiter does not wait for the hold to go
        let _hold = trash.hold();
        fs::create_dir_all(t.path().join("again/a/b")).unwrap();
        fs::write(t.path().join("again/a/b/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("again/link")).unwrap();
        assert!(trash.discard(&t.path().join("again")).unwrap());
        let start = Instant::now();
        trash.wait_idle();
        assert!(start.elapsed() < PAUSE_MAX, "wait_idle overrode the hold");
        assert_eq!(fs::read_dir(trash.dir()).unwrap().count(), 0);
        assert!(Path::new("/etc/passwd").exists());
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
