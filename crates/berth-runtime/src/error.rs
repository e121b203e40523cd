//! Errors of the runtime library, and the structured error the container init sends back.

use std::path::PathBuf;

/// Where in the container's setup the init failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Namespaces,
    Rootfs,
    Mount,
    Devices,
    PivotRoot,
    Sysctl,
    Hostname,
    Console,
    Hook,
    User,
    Capabilities,
    Rlimits,
    Seccomp,
    Cwd,
    /// Looking up or executing the user's binary.
    Exec,
    ExecFifo,
    Fds,
    /// Joining the container's cgroup (v1: the init writes itself into `tasks`).
    Cgroup,
}

/// An error raised inside the container's init before exec, sent over the sync socket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("container init failed at {stage:?}{}: {msg} (errno {errno})", path.as_deref().map(|p| format!(" on {p:?}")).unwrap_or_default())]
pub struct InitError {
    pub stage: Stage,
    /// The OS error number (0 when the failure was not a syscall).
    pub errno: i32,
    pub path: Option<String>,
    pub msg: String,
}

impl InitError {
    pub fn new(stage: Stage, err: &std::io::Error, path: Option<&str>, what: &str) -> Self {
        InitError {
            stage,
            errno: err.raw_os_error().unwrap_or(0),
            path: path.map(str::to_string),
            msg: format!("{what}: {}", errno_text(err)),
        }
    }
    pub fn plain(stage: Stage, path: Option<&str>, msg: impl Into<String>) -> Self {
        InitError {
            stage,
            errno: 0,
            path: path.map(str::to_string),
            msg: msg.into(),
        }
    }
    /// The exit code a shell (and docker/podman) gives such a failure: 127 when the
    /// command is not found, 126 when it cannot be executed, else `None`.
    pub fn exit_code(&self) -> Option<i32> {
        if self.stage != Stage::Exec {
            return None;
        }
        match self.errno {
            libc::ENOENT | libc::ENOTDIR => Some(127),
            libc::EACCES | libc::EPERM | libc::ENOEXEC | libc::EISDIR | libc::ETXTBSY => Some(126),
            _ => None,
        }
    }
}

/// `No such file or directory (os error 2)` → `no such file or directory`, the wording
/// Go runtimes print and Podman/Docker match on.
pub fn errno_text(err: &std::io::Error) -> String {
    let s = err.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container id {0:?} is invalid: {1}")]
    InvalidId(String, &'static str),
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {id:?} is {status}: cannot {op}")]
    BadStatus {
        id: String,
        status: String,
        op: &'static str,
    },
    #[error("invalid spec: {0}")]
    Spec(String),
    #[error("{what} {path:?}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Init(#[from] InitError),
    #[error("cgroup: {0}")]
    Cgroup(#[from] berth_cgroups::Error),
    #[error("state file {path:?} is corrupt: {source}")]
    CorruptState {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("hook {path:?} ({kind}) failed: {why}")]
    Hook {
        kind: &'static str,
        path: String,
        why: String,
    },
    #[error("container init exited before reporting ready (status {0})")]
    InitVanished(String),
    #[error("protocol error with container init: {0}")]
    Protocol(String),
    #[error("several errors: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    List(Vec<Error>),
}

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
    pub(crate) fn sys(what: &'static str, source: impl Into<std::io::Error>) -> Self {
        Error::Sys {
            what,
            source: source.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
