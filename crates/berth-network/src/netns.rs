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
