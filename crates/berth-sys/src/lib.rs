//! The unsafe boundary: clone3, setns, pidfd, the mount API, pivot_root, fd passing.
//!
//! Everything rustix already wraps safely is used from rustix directly by the callers;
//! this crate holds the calls rustix deliberately leaves out (`clone3`, `execveat` with
//! our own argv/envp, `mount(2)` with raw `MS_*` flags, `mount_setattr`, `close_range`)
//! and the SCM_RIGHTS helpers.
#![allow(unsafe_code)] // the unsafe boundary: every block carries a `// SAFETY:` line

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `CLONE_INTO_CGROUP` as the u64 `clone_args.flags` wants (libc's i32 constant overflows).
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

mod seccomp;
pub use seccomp::{
    BPF_MAXINSNS, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    SECCOMP_FILTER_FLAG_TSYNC, SockFilter, seccomp_set_filter,
};

pub use libc::{
    CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWTIME,
    CLONE_NEWUSER, CLONE_NEWUTS, CLONE_PIDFD,
};

/// What `clone3` returned in the calling process.
#[derive(Debug)]
pub enum Forked {
    /// We are the new child.
    Child,
    /// We are the parent; the child has this pid and, when asked for, a pidfd.
    Parent { pid: i32, pidfd: Option<OwnedFd> },
}

/// `clone3(2)` without a new stack (fork semantics): `flags` may carry namespace flags,
/// `CLONE_PIDFD` and `CLONE_INTO_CGROUP` (then `cgroup` must be the cgroup v2 dir fd).
/// The exit signal is SIGCHLD so the parent can `waitpid` the child normally.
///
/// # Safety
/// Like `fork(2)`: in a multi-threaded process the child may only rely on state no other
/// thread could have held locked at the time of the call. Callers run it from a
/// single-threaded process, or from a thread whose siblings are idle.
pub unsafe fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let mut flags = flags;
    if cgroup.is_some() {
        flags |= CLONE_INTO_CGROUP;
    }
    // SAFETY: clone_args is a plain C struct; all-zero is its documented default.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags;
    args.exit_signal = libc::SIGCHLD as u64;
    args.pidfd = &mut pidfd as *mut libc::c_int as u64;
    if let Some(fd) = cgroup {
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: args is a valid clone_args of the size we pass; stack is 0, so the child
    // continues on a copy of our stack exactly as with fork(2). The caller upholds the
    // fork-safety contract above.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => {
            let pidfd = if flags & CLONE_PIDFD as u64 != 0 && pidfd >= 0 {
                // SAFETY: the kernel just handed us this fd and nobody else owns it.
                Some(unsafe { OwnedFd::from_raw_fd(pidfd) })
            } else {
                None
            };
            Ok(Forked::Parent {
                pid: pid as i32,
                pidfd,
            })
        }
    }
}

/// `execveat(2)`. Returns only on failure.
pub fn execveat(
    dir: BorrowedFd<'_>,
    path: &CStr,
    argv: &[CString],
    envp: &[CString],
    flags: i32,
) -> io::Error {
    let mut av: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    av.push(std::ptr::null());
    let mut ev: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    ev.push(std::ptr::null());
    // SAFETY: every pointer refers to a NUL-terminated string kept alive by argv/envp for
    // the duration of the call; both arrays are NULL-terminated.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            dir.as_raw_fd(),
            path.as_ptr(),
            av.as_ptr(),
            ev.as_ptr(),
            flags,
        );
    }
    io::Error::last_os_error()
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `mount(2)` with raw `MS_*` flags, as the OCI mount options map to them.
pub fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> io::Result<()> {
    let src = source.map(cstr).transpose()?;
    let tgt = cstr(target)?;
    let fst = fstype.map(cstr).transpose()?;
    let dat = data.map(cstr).transpose()?;
    // SAFETY: every pointer is either NULL or a NUL-terminated string alive for the call.
    let r = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            tgt.as_ptr(),
            fst.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags as libc::c_ulong,
            dat.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr() as *const libc::c_void),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `umount2(2)`.
pub fn umount2(target: &str, flags: i32) -> io::Result<()> {
    let tgt = cstr(target)?;
    // SAFETY: tgt is a NUL-terminated string alive for the call.
    let r = unsafe { libc::umount2(tgt.as_ptr(), flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const AT_RECURSIVE: u32 = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)` on `path` (recursively with `AT_RECURSIVE`): used to make a whole
/// rbind tree read-only in one call, which `mount(MS_REMOUNT)` can only do per mount.
pub fn mount_setattr(path: &str, flags: u32, attr_set: u64, attr_clr: u64) -> io::Result<()> {
    let p = cstr(path)?;
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: p is NUL-terminated, attr is a correctly laid out mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            p.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Mark every fd from `first` upwards close-on-exec (`close_range(CLOSE_RANGE_CLOEXEC)`),
/// so nothing of the host leaks into the container while our own fds still work until exec.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range takes plain integers and touches only our fd table.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Clear close-on-exec on `fd` (a preserved fd that must survive exec).
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an integer fd; an invalid fd yields EBADF, which we report.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Duplicate `fd` to the lowest free number `>= min`, close-on-exec.
pub fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, min)?)
}

/// `dup2(from, to)` where `to` is one of 0/1/2 (or a preserved slot) we deliberately overwrite.
pub fn dup2_raw(from: BorrowedFd<'_>, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only changes our fd table; `to` is a number the caller owns by contract.
    let r = unsafe { libc::dup2(from.as_raw_fd(), to) };
    if r >= 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Take ownership of an inherited fd number (e.g. a descriptor the parent passed by number).
///
/// Returns `None` when `fd` is not open.
pub fn own_inherited_fd(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: F_GETFD only queries; a negative result means the fd is not open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the fd is open and, by the caller's contract, not owned by anything else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `_exit(2)`: leave a forked child without running the parent's atexit/destructors.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// Send one fd (and a small payload) over a unix socket with SCM_RIGHTS.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>, payload: &[u8]) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let fds = [fd];
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    anc.push(SendAncillaryMessage::ScmRights(&fds));
    let iov = [io::IoSlice::new(if payload.is_empty() {
        b"\0"
    } else {
        payload
    })];
    sendmsg(sock, &iov, &mut anc, SendFlags::empty())?;
    Ok(())
}

/// Receive one fd sent with [`send_fd`]; returns it with the payload bytes.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<(OwnedFd, Vec<u8>)> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg(sock, &mut iov, &mut anc, RecvFlags::CMSG_CLOEXEC)?;
    let n = msg.bytes;
    let mut got = None;
    for m in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            got = fds.next();
        }
    }
    match got {
        Some(fd) => Ok((fd, buf[..n].to_vec())),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no file descriptor in SCM_RIGHTS message",
        )),
    }
}

/// Write `s` to a raw fd ignoring errors (used by a child that is about to `_exit`).
pub fn write_all_fd(fd: impl AsFd, mut s: &[u8]) -> io::Result<()> {
    while !s.is_empty() {
        let n = rustix::io::write(&fd, s)?;
        s = &s[n..];
    }
    Ok(())
}

/// Give the calling process a new session keyring named `name` (runc's default, so
/// containers do not share the host's session keyring), readable/writable/searchable by
/// its possessor and viewable by its user. Returns the keyring serial.
pub fn join_session_keyring(name: &str) -> io::Result<i64> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    const KEYCTL_SETPERM: libc::c_long = 5;
    let n = cstr(name)?;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING, name) reads one NUL-terminated string.
    let id = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, n.as_ptr()) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    // possessor: all but setattr; user: view (runc's 0x3f1f0000 minus what we do not need)
    let perm: libc::c_ulong = 0x3f01_0000 | 0x0000_0001;
    // SAFETY: keyctl(SETPERM, serial, perm) takes integers only.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, id, perm) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t we own; invalid signal numbers are ignored by
    // sigaddset (it returns EINVAL, which we do not need).
    unsafe {
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
    }
    set
}

/// Block `sigs` for the calling thread so they can be taken with [`wait_signal`].
/// (A runtime forwarding signals to its container does this only after the container
/// process has exec'd, since the mask is inherited across clone and exec.)
pub fn block_signals(sigs: &[i32]) -> io::Result<()> {
    let set = sigset(sigs);
    // SAFETY: valid set pointer, NULL old-set pointer is allowed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// Wait up to `timeout_ms` for one of the (blocked) `sigs`; `Ok(None)` on timeout.
pub fn wait_signal(sigs: &[i32], timeout_ms: u64) -> io::Result<Option<i32>> {
    let set = sigset(sigs);
    let ts = libc::timespec {
        tv_sec: (timeout_ms / 1000) as libc::time_t,
        tv_nsec: ((timeout_ms % 1000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: valid set and timespec pointers; the siginfo pointer may be NULL.
    let r = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    if r >= 0 {
        return Ok(Some(r));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_passing_round_trip() {
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let (r, w) = rustix::pipe::pipe().unwrap();
        send_fd(a.as_fd(), w.as_fd(), b"hello").unwrap();
        let (got, payload) = recv_fd(b.as_fd()).unwrap();
        assert_eq!(payload, b"hello");
        write_all_fd(&got, b"x").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(rustix::io::read(&r, &mut buf).unwrap(), 1);
        assert_eq!(&buf, b"x");
    }

    #[test]
    fn clone3_child_exit_status_reaches_parent() {
        // SAFETY (test): the child only calls _exit.
        match unsafe { clone3(CLONE_PIDFD as u64, None) }.unwrap() {
            Forked::Child => exit_now(7),
            Forked::Parent { pid, pidfd } => {
                assert!(pidfd.is_some());
                let (_, st) = rustix::process::waitpid(
                    Some(rustix::process::Pid::from_raw(pid).unwrap()),
                    rustix::process::WaitOptions::empty(),
                )
                .unwrap()
                .unwrap();
                assert_eq!(st.exit_status(), Some(7));
            }
        }
    }

    #[test]
    fn mount_rejects_interior_nul() {
        let e = mount(None, "/a\0b", None, 0, None).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }

    fn stmt(code: u32, k: u32) -> SockFilter {
        SockFilter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }

    #[test]
    fn raw_seccomp_filter_denies_with_its_errno_in_a_child() {
        // getppid -> ERRNO(EPERM), everything else allowed
        let prog = [
            stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
            SockFilter {
                code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                jt: 0,
                jf: 1,
                k: libc::SYS_getppid as u32,
            },
            stmt(
                libc::BPF_RET | libc::BPF_K,
                0x0005_0000 | libc::EPERM as u32,
            ),
            stmt(libc::BPF_RET | libc::BPF_K, 0x7fff_0000),
        ];
        // SAFETY (test): the child only makes raw syscalls and calls _exit.
        match unsafe { clone3(0, None) }.unwrap() {
            Forked::Child => {
                // SAFETY (test): prctl with integer arguments.
                unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                if seccomp_set_filter(0, &prog).is_err() {
                    exit_now(2);
                }
                // SAFETY (test): a raw getppid, no memory involved.
                let r = unsafe { libc::syscall(libc::SYS_getppid) };
                let errno = io::Error::last_os_error().raw_os_error();
                exit_now(if r == -1 && errno == Some(libc::EPERM) {
                    0
                } else {
                    3
                });
            }
            Forked::Parent { pid, .. } => {
                let (_, st) = rustix::process::waitpid(
                    Some(rustix::process::Pid::from_raw(pid).unwrap()),
                    rustix::process::WaitOptions::empty(),
                )
                .unwrap()
                .unwrap();
                assert_eq!(st.exit_status(), Some(0), "2: load failed, 3: not denied");
            }
        }
    }

    #[test]
    fn raw_seccomp_filter_rejects_empty_and_oversized_programs() {
        let e = seccomp_set_filter(0, &[]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        let big = vec![stmt(libc::BPF_RET | libc::BPF_K, 0x7fff_0000); BPF_MAXINSNS + 1];
        let e = seccomp_set_filter(0, &big).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
}
