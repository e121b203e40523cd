//! The testkit's error type.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Everything the testkit's helpers can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem or process operation failed.
    #[error("failed to {what} {path}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// What it was applied to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A helper command could not be started (is its package installed?).
    #[error("failed to run {cmd}: {source} (is it installed? scripts/deps installs it)")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The OS error.
        source: io::Error,
    },
    /// A helper command exited with an error.
    #[error("{cmd} exited with {status}: {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// Every /24 in 10.199.0.0/16 is leased or routed.
    #[error(
        "no free test subnet in 10.199.0.0/16: all 256 /24s are leased by running tests or routed on this host"
    )]
    NoFreeSubnet,
    /// The registry did not answer on /v2/ in time.
    #[error("docker-registry on {addr} did not become ready: {reason}; its log:\n{log}")]
    RegistryNotReady {
        /// host:port.
        addr: String,
        /// What went wrong last.
        reason: String,
        /// The registry's log.
        log: String,
    },
    /// An HTTP exchange with the registry failed.
    #[error("HTTP request to {url} failed: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Making a test image failed.
    #[error(transparent)]
    Image(#[from] berth_mkimage::Error),
}

impl Error {
    pub(crate) fn io(what: &'static str, path: impl AsRef<Path>, source: io::Error) -> Error {
        Error::Io {
            what,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// Render a command line for error messages.
pub(crate) fn cmdline(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run `cmd` to completion; an error carries the command line and its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<Output, Error> {
    let out = cmd.output().map_err(|source| Error::Spawn {
        cmd: cmdline(cmd),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            cmd: cmdline(cmd),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}
