//! Running a closure inside another network namespace.
//!
//! `setns(CLONE_NEWNET)` changes the namespace of the calling *thread* only, so every
//! namespace-bound operation here runs on a short-lived thread that joins the namespace first.
//! Sockets (netlink, TCP, UDP) keep the namespace they were created in, and a child process
//! (`nft`) inherits the namespace of the thread that spawned it.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// Errors entering a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file could not be opened.
    #[error("failed to open network namespace {path:?}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `setns` refused the namespace.
    #[error("failed to enter network namespace {path:?}: {source}")]
    Enter {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The worker thread panicked.
    #[error("a thread working inside network namespace {path:?} panicked")]
    Panicked { path: PathBuf },
}

/// Join the network namespace at `path` on the current thread. Only call this on a thread
/// that is thrown away afterwards (it never goes back).
pub fn enter(path: &Path) -> Result<(), NetnsError> {
    let file = File::open(path).map_err(|source| NetnsError::Open {
        path: path.to_owned(),
        source,
    })?;
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network)).map_err(|e| {
        NetnsError::Enter {
            path: path.to_owned(),
            source: e.into(),
        }
    })
}

/// Run `f` inside the network namespace at `ns` (or in the caller's namespace when `None`).
pub fn run_in<T: Send>(ns: Option<&Path>, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    let Some(path) = ns else { return Ok(f()) };
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(path)?;
            Ok(f())
        })
        .join()
        .map_err(|_| NetnsError::Panicked {
            path: path.to_owned(),
        })?
    })
}

/// Run an async block on a fresh single-threaded tokio runtime inside `ns`.
pub fn block_on_in<T: Send, F: Future<Output = T>>(
    ns: Option<&Path>,
    f: impl FnOnce() -> F + Send,
) -> Result<T, NetnsError> {
    let path = ns
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"));
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(p) = ns {
                enter(p)?;
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| NetnsError::Enter {
                    path: path.clone(),
                    source,
                })?;
            Ok(rt.block_on(f()))
        })
        .join()
        .map_err(|_| NetnsError::Panicked { path: path.clone() })?
    })
}

/// Errors making or releasing a persistent (bind-mounted) network namespace.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The new namespace could not be made.
    #[error("failed to create network namespace for {path:?}: {source}")]
    Unshare {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The mount point file or its bind mount could not be made.
    #[error("failed to {op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The worker thread panicked.
    #[error("the thread creating network namespace {path:?} panicked")]
    Panicked { path: PathBuf },
}

/// Make a new network namespace that lives on after every process in it has gone, held by a
/// bind mount of it on `path` (as `ip netns add` does, anywhere). A namespace already
/// mounted there is left as is.
pub fn create_persistent(path: &Path) -> Result<(), PersistError> {
    if is_netns_mount(path) {
        return Ok(());
    }
    let io = |op: &'static str| {
        move |source: std::io::Error| PersistError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create directory for"))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io("create mount point"))?;
    let res = std::thread::scope(|s| {
        s.spawn(|| {
            // unshare(CLONE_NEWNET) moves only this short-lived thread into a new network
            // namespace; no file table or fs state is unshared, so nothing the rest of the
            // process relies on changes (the reason rustix deprecated the general form).
            #[allow(deprecated)]
            rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNET).map_err(|e| {
                PersistError::Unshare {
                    path: path.to_owned(),
                    source: e.into(),
                }
            })?;
            rustix::mount::mount_bind("/proc/thread-self/ns/net", path)
                .map_err(|e| io("bind-mount the namespace on")(e.into()))
        })
        .join()
        .map_err(|_| PersistError::Panicked {
            path: path.to_owned(),
        })?
    });
    if res.is_err() {
        let _ = std::fs::remove_file(path);
    }
    res
}

/// Bind another namespace file (`/proc/<pid>/ns/net`) on `path`, to hold it the same way.
pub fn bind_existing(source: &Path, path: &Path) -> Result<(), PersistError> {
    let io = |op: &'static str| {
        move |source: std::io::Error| PersistError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create directory for"))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io("create mount point"))?;
    rustix::mount::mount_bind(source, path).map_err(|e| {
        let _ = std::fs::remove_file(path);
        io("bind-mount the namespace on")(e.into())
    })
}

/// Whether `path` is a mounted network namespace (an nsfs mount).
pub fn is_netns_mount(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type == 0x6e73_6673)
}

/// Unmount (lazily) and delete a namespace mount made by [`create_persistent`]. Missing is
/// fine; the namespace itself goes when the last process in it does.
pub fn remove_persistent(path: &Path) -> Result<(), PersistError> {
    if is_netns_mount(path) {
        rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH).map_err(|e| {
            PersistError::Io {
                op: "unmount",
                path: path.to_owned(),
                source: e.into(),
            }
        })?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PersistError::Io {
            op: "remove",
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod persist_tests {
    use super::*;

    #[test]
    fn persistent_namespace_is_made_held_and_released() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ns/c1");
        create_persistent(&p).unwrap();
        assert!(is_netns_mount(&p));
        // it is a different namespace than ours, with only lo in it
        let ours = std::fs::metadata("/proc/self/ns/net").unwrap();
        let theirs = std::fs::metadata(&p).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(ours.ino(), theirs.ino());
        let inside = run_in(Some(&p), || {
            std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino())
        })
        .unwrap()
        .unwrap();
        assert_eq!(inside, theirs.ino());
        // idempotent
        create_persistent(&p).unwrap();
        remove_persistent(&p).unwrap();
        assert!(!p.exists());
        remove_persistent(&p).unwrap();
    }
}
