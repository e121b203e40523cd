//! `<data-root>/spare/`: container directories made ahead of time.
//!
//! A new container's directory holds `bundle/`, `upper/`, `work/` and `rootfs/`, and
//! files `create` writes: `hostname`, `hosts`, `resolv.conf`, `bundle/config.json`,
//! `log-config.json`, the record's temp file `.config.json.tmp` (renamed to
//! `config.json` last), and the shim's `shim.log` (opened for appending at each start)
//! and `exit.json.tmp` (renamed to `exit.json` at the first exit). Making them is 4 + 1
//! mkdirs and 8 inode allocations, 0.05-0.5 ms each on an ext4 disk (the container
//! directory's own mkdir is the dearest: its parent is marked to spread directories over
//! block groups). A background thread keeps a few such skeletons ready; `create` takes
//! one with a single rename (same file system) and falls back to making the directory
//! itself when none is ready. A skeleton is made under a `.tmp-` name and renamed to
//! `ready-` once complete, so a crash leaves only whole skeletons to reuse and partial
//! ones to delete when the pool opens again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// How many skeletons are kept ready.
const READY: usize = 4;

/// The subdirectories and empty files of a skeleton.
const DIRS: [&str; 4] = ["bundle", "upper", "work", "rootfs"];
const FILES: [&str; 8] = [
    "hostname",
    "hosts",
    "resolv.conf",
    "shim.log",
    "bundle/config.json",
    "log-config.json",
    ".config.json.tmp",
    "exit.json.tmp",
];

#[derive(Debug, Default)]
struct State {
    ready: Vec<PathBuf>,
    /// A refill thread is running.
    filling: bool,
    /// The containers' directory is on another file system: no pool.
    disabled: bool,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
    idle: Condvar,
}

/// The pool of ready container directories. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Spares {
    shared: Arc<Shared>,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Spares {
    /// Opens (creating) `dir`: whole skeletons left by a previous daemon are reused,
    /// partial ones deleted; then fills the pool in the background.
    pub fn open(dir: &Path) -> std::io::Result<Spares> {
        std::fs::create_dir_all(dir)?;
        berth_image::mark_topdir(dir);
        let mut ready = Vec::new();
        for e in std::fs::read_dir(dir)?.flatten() {
            let p = e.path();
            let whole = e.file_name().to_string_lossy().starts_with("ready-")
                && DIRS.iter().all(|d| p.join(d).is_dir());
            if whole {
                ready.push(p);
            } else {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
        let s = Spares {
            shared: Arc::new(Shared {
                dir: dir.to_owned(),
                state: Mutex::new(State {
                    ready,
                    ..State::default()
                }),
                idle: Condvar::new(),
            }),
        };
        s.refill();
        Ok(s)
    }

    /// Moves a ready skeleton to `dest` (which must not exist, on the same file system).
    /// `false` when none is ready (or the rename failed): make `dest` directly.
    pub fn take(&self, dest: &Path) -> bool {
        let got = lock(&self.shared.state).ready.pop();
        let taken = got.is_some_and(|p| match std::fs::rename(&p, dest) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(from = %p.display(), error = %e, "cannot take a spare container directory");
                let _ = std::fs::remove_dir_all(&p);
                if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) {
                    lock(&self.shared.state).disabled = true;
                }
                false
            }
        });
        self.refill();
        taken
    }

    /// Starts a refill thread unless one runs or the pool is full.
    fn refill(&self) {
        {
            let mut st = lock(&self.shared.state);
            if st.filling || st.disabled || st.ready.len() >= READY {
                return;
            }
            st.filling = true;
        }
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("berth-spares".into())
            .spawn(move || fill(&shared));
        if spawned.is_err() {
            let mut st = lock(&self.shared.state);
            st.filling = false;
            self.shared.idle.notify_all();
        }
    }

    /// Blocks until no refill runs.
    #[cfg(test)]
    fn wait_idle(&self) {
        let mut st = lock(&self.shared.state);
        while st.filling {
            st = self.shared.idle.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn fill(shared: &Shared) {
    loop {
        if lock(&shared.state).ready.len() >= READY {
            break;
        }
        match make(&shared.dir) {
            Ok(p) => lock(&shared.state).ready.push(p),
            Err(e) => {
                tracing::warn!(dir = %shared.dir.display(), error = %e, "cannot make a spare container directory");
                break;
            }
        }
    }
    let mut st = lock(&shared.state);
    st.filling = false;
    shared.idle.notify_all();
}

/// One skeleton, made under a temporary name and renamed whole.
fn make(dir: &Path) -> std::io::Result<PathBuf> {
    let name = super::names::random_id();
    let tmp = dir.join(format!(".tmp-{}", &name[..16]));
    std::fs::create_dir(&tmp)?;
    for d in DIRS {
        std::fs::create_dir(tmp.join(d))?;
    }
    for f in FILES {
        std::fs::File::create(tmp.join(f))?;
    }
    let ready = dir.join(format!("ready-{}", &name[..16]));
    std::fs::rename(&tmp, &ready)?;
    Ok(ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skeletons_are_made_ahead_taken_whole_and_partial_ones_dropped() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("spare");
        std::fs::create_dir_all(dir.join(".tmp-partial/bundle")).unwrap();
        let s = Spares::open(&dir).unwrap();
        s.wait_idle();
        assert!(!dir.join(".tmp-partial").exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), READY);
        for i in 0..READY + 2 {
            let dest = t.path().join(format!("c{i}"));
            if s.take(&dest) {
                for d in DIRS {
                    assert!(dest.join(d).is_dir(), "{d}");
                }
                for f in FILES {
                    assert_eq!(std::fs::metadata(dest.join(f)).unwrap().len(), 0, "{f}");
                }
            } else {
                assert!(!dest.exists());
            }
            s.wait_idle();
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), READY);
        // a new pool reuses the whole skeletons
        drop(s);
        let again = Spares::open(&dir).unwrap();
        again.wait_idle();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), READY);
        assert!(again.take(&t.path().join("reused")));
    }
}
