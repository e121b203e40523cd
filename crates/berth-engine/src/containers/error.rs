//! Errors of the container side of the engine.

use berth_types::spec::SpecError;

use super::oci::OciError;
use crate::error::ErrorKind;

/// Everything container operations fail with.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No container by that id, prefix or name (Docker's wording).
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// A prefix matched several containers.
    #[error("multiple IDs found with provided prefix: {0}")]
    Ambiguous(String),
    /// The name is taken (Docker's wording, which clients show as is).
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse {
        /// The name asked for.
        name: String,
        /// Who has it.
        id: String,
    },
    /// Removing a running container without force.
    #[error(
        "cannot remove container \"/{0}\": container is running: stop the container before removing or force remove"
    )]
    Running(String),
    /// No exec by that id (Docker's wording).
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    /// The exec was started before.
    #[error("exec command {0} has already run")]
    ExecStarted(String),
    /// The operation needs a running container.
    #[error("Container {0} is not running")]
    NotRunning(String),
    /// The container is being removed.
    #[error("removal of container {0} is already in progress")]
    Removing(String),
    /// `pause` of a paused container.
    #[error("Container {0} is already paused")]
    Paused(String),
    /// `unpause` of a container that is not paused.
    #[error("Container {0} is not paused")]
    NotPaused(String),
    /// A rename that cannot be done.
    #[error("{0}")]
    BadRename(String),
    /// `top` failed.
    #[error("{0}")]
    Top(String),
    /// `update` failed.
    #[error("cannot update container: {0}")]
    Update(String),
    /// The spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The OCI spec could not be built.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// The container's process could not be started (exit code 126/127 for a command
    /// that cannot be run or found, else 125).
    #[error("failed to create task for container: {message}")]
    StartFailed {
        /// What the shim reported.
        message: String,
        /// The exit code the container records.
        exit_code: i32,
    },
    /// The shim died without reporting.
    #[error("container monitor for {id} failed: {why}")]
    Shim {
        /// The container.
        id: String,
        /// What is known.
        why: String,
    },
    /// Mounting or unmounting the rootfs failed.
    #[error("failed to {op} rootfs {path}: {source}")]
    Mount {
        /// mount or unmount.
        op: &'static str,
        /// Where.
        path: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// A file operation failed.
    #[error("failed to {op} {path}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// On what.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The runtime refused an operation.
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
    /// A state file is unreadable.
    #[error("container state {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

impl ContainerError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ContainerError::NoSuchContainer(_) | ContainerError::NoSuchExec(_) => {
                ErrorKind::NotFound
            }
            ContainerError::ExecStarted(_) => ErrorKind::Conflict,
            ContainerError::NameInUse { .. }
            | ContainerError::Running(_)
            | ContainerError::NotRunning(_)
            | ContainerError::Removing(_)
            | ContainerError::Paused(_)
            | ContainerError::NotPaused(_) => ErrorKind::Conflict,
            ContainerError::BadRename(_) => ErrorKind::InvalidParameter,
            ContainerError::Ambiguous(_)
            | ContainerError::Spec(_)
            | ContainerError::Oci(_)
            | ContainerError::StartFailed { .. } => ErrorKind::InvalidParameter,
            _ => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> ContainerError {
        let path = path.display().to_string();
        move |source| ContainerError::Io { op, path, source }
    }
}
