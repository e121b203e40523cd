//! Loading a ready classic-BPF seccomp program with `seccomp(2)`, without libseccomp.

use std::io;

/// One classic BPF instruction: the kernel's `struct sock_filter`, same layout.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const _: () =
    assert!(std::mem::size_of::<SockFilter>() == std::mem::size_of::<libc::sock_filter>());

/// `SECCOMP_FILTER_FLAG_TSYNC`: install the filter on every thread of the process.
pub const SECCOMP_FILTER_FLAG_TSYNC: u32 = 1;
/// `SECCOMP_FILTER_FLAG_LOG`: log every action but `SECCOMP_RET_ALLOW`.
pub const SECCOMP_FILTER_FLAG_LOG: u32 = 2;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`: do not force speculative store bypass mitigation.
pub const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 4;
const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
/// The kernel's `BPF_MAXINSNS`: the longest program one filter may have.
pub const BPF_MAXINSNS: usize = 4096;

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)`: install `prog` as a filter of the
/// calling thread (all threads with TSYNC). It does not set no_new_privs: without it the
/// caller needs CAP_SYS_ADMIN in its user namespace (EACCES otherwise). Allocation-free, so
/// it may run in a cloned child. With TSYNC, a thread that could not be synchronised is
/// reported as an error naming its tid.
pub fn seccomp_set_filter(flags: u32, prog: &[SockFilter]) -> io::Result<()> {
    if prog.is_empty() || prog.len() > BPF_MAXINSNS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let fprog = libc::sock_fprog {
        len: prog.len() as libc::c_ushort,
        // same repr(C) layout as libc::sock_filter (size asserted above)
        filter: prog.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `fprog` points at `prog.len()` (checked to fit the u16 length and be non-empty)
    // initialised instructions that live for the whole call; the kernel copies the program
    // and does not keep the pointer. No memory of ours is written.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags as libc::c_uint,
            &fprog as *const libc::sock_fprog,
        )
    };
    match r {
        0 => Ok(()),
        r if r < 0 => Err(io::Error::last_os_error()),
        // with TSYNC: the id of the first thread the kernel could not synchronise
        tid => Err(io::Error::other(format!(
            "seccomp tsync: thread {tid} could not be synchronised"
        ))),
    }
}
