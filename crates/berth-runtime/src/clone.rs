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

/// A network namespace being made on a helper thread while the caller prepares the
/// rest of the container (spec checks, cgroups, seccomp, the exec fifo).
///
/// Creating a network namespace is the most expensive part of `clone3` here (the
/// kernel runs every subsystem's per-namespace init: loopback, ipv4/ipv6 sysctl
/// tables, netfilter, ...; ≈1 ms of a 4 ms create on this machine). Made on another
/// thread it overlaps the caller's own work when a core is free; the init then joins it
/// with `setns` instead of getting `CLONE_NEWNET`. The namespace is the same kind of
/// object either way: new, owned by the caller's user namespace, only `lo` — which the
/// thread brings up (made in `clone3`, when no thread could be started, it stays down).
/// The thread is always joined ([`PendingNetns::wait`], or on drop), so the process is
/// single-threaded again before it calls `clone3`.
#[derive(Debug)]
pub struct PendingNetns(Option<std::thread::JoinHandle<std::io::Result<OwnedFd>>>);

impl PendingNetns {
    /// Starts making the namespace; `None` if no thread could be started (the caller
    /// then clones with `CLONE_NEWNET` as before).
    pub fn start() -> Option<PendingNetns> {
        std::thread::Builder::new()
            .name("berth-netns".into())
            .stack_size(64 * 1024)
            .spawn(|| {
                // SAFETY: only CLONE_NEWNET, which changes this thread's network
                // namespace and nothing shared: not CLONE_FILES, so every thread keeps
                // seeing the same fd table. The thread ends right after.
                unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }?;
                loopback_up()?;
                let fd = rustix::fs::open(
                    "/proc/thread-self/ns/net",
                    rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )?;
                Ok(fd)
            })
            .ok()
            .map(|h| PendingNetns(Some(h)))
    }

    /// Waits for the thread: an fd of the new namespace, or why it could not be made.
    pub fn wait(mut self) -> std::io::Result<OwnedFd> {
        match self.0.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            _ => Err(std::io::Error::other("network namespace thread panicked")),
        }
    }
}

/// Brings `lo` up in the calling thread's network namespace: a new namespace's only
/// device starts down, and Docker's sandboxes (and crun) bring it up; the kernel then
/// gives it 127.0.0.1/8 and ::1.
fn loopback_up() -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    // SAFETY: ifreq is plain old data, all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_ifru.ifru_flags of `req`, which
    // outlives the call; `sock` is an open socket.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just filled the flags member of the union.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads ifr_name and ifr_ifru.ifru_flags of `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for PendingNetns {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}
