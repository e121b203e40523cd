//! Creating the container's processes: the only place this crate calls `clone3`.
#![allow(unsafe_code)] // calls berth_sys::clone3; see the SAFETY notes

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::error::{Error, Result};

/// Run `child` in a new process created with `flags` (namespaces, CLONE_PIDFD), born in
/// the cgroup `cgroup` when given (v2). Returns the child's pid and pidfd.
pub fn spawn(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
    child: impl FnOnce() -> i32,
) -> Result<(i32, Option<OwnedFd>)> {
    // SAFETY: the runtime calls this from a single-threaded process (berth-runc, a shim)
    // or from a thread whose siblings are idle (tests); the child runs only our init code
    // and leaves with _exit, never returning into the caller's stack frames.
    match unsafe { berth_sys::clone3(flags, cgroup) }.map_err(|e| Error::sys("clone3", e))? {
        berth_sys::Forked::Child => {
            let code = child();
            berth_sys::exit_now(code)
        }
        berth_sys::Forked::Parent { pid, pidfd } => Ok((pid, pidfd)),
    }
}
