//! Messages between the runtime and the container init over a SOCK_SEQPACKET pair.

use std::os::fd::{AsFd, OwnedFd};

use crate::error::{Error, InitError};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Msg {
    /// parent → child: ids mapped, cgroup joined; go on.
    Go,
    /// child → parent: mounts done, run prestart/createRuntime hooks now.
    RunHooks,
    /// parent → child: hooks ran.
    HooksDone,
    /// child → parent: the real init (after a pid-namespace fork) has this pid.
    Pid {
        pid: i32,
    },
    /// child → parent: ready to exec, waiting for start.
    Ready,
    Error(InitError),
}

pub fn pair() -> Result<(OwnedFd, OwnedFd), Error> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
    socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys("create sync socketpair", e))
}

pub fn send(fd: impl AsFd, m: &Msg) -> std::io::Result<()> {
    let data = serde_json::to_vec(m).map_err(std::io::Error::other)?;
    rustix::io::write(fd, &data)?;
    Ok(())
}

/// `Ok(None)` on EOF (the peer exec'd or exited).
pub fn recv(fd: impl AsFd) -> std::io::Result<Option<Msg>> {
    let mut buf = vec![0u8; 65536];
    let n = loop {
        match rustix::io::read(&fd, &mut buf) {
            Ok(n) => break n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if n == 0 {
        return Ok(None);
    }
    serde_json::from_slice(&buf[..n])
        .map(Some)
        .map_err(std::io::Error::other)
}
