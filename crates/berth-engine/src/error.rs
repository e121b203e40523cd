//! The engine's error type, with the class the API maps to an HTTP status.

use berth_image::StoreError;

/// How an error is classified for clients (the API maps it to a status code once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object does not exist (404).
    NotFound,
    /// The request conflicts with the state (409).
    Conflict,
    /// A parameter is invalid (400).
    InvalidParameter,
    /// Credentials were refused (401).
    Unauthorized,
    /// Not supported in this configuration (503 for swarm, 501 otherwise).
    Unavailable,
    /// Anything else (500).
    Internal,
}

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No image by that name, id or prefix. The message is Docker's, capitalised as the
    /// docker CLI and docker-py expect (a Docker quirk we copy).
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// An image store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] berth_registry::Error),
    /// A parameter is invalid.
    #[error("{0}")]
    InvalidParameter(String),
    /// A registry refused the credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Configuration could not be read.
    #[error("invalid configuration {0}")]
    Config(String),
    /// The operation is not supported (yet) by this engine.
    #[error("{0}")]
    NotSupported(String),
    /// An I/O failure outside the store.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// On what.
        path: String,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// A container operation failed.
    #[error(transparent)]
    Container(#[from] crate::containers::ContainerError),
    /// A network operation failed.
    #[error(transparent)]
    Network(#[from] crate::networks::NetworkError),
    /// A background task died.
    #[error("background task failed: {0}")]
    Task(String),
    /// A volume operation failed.
    #[error(transparent)]
    Volume(#[from] crate::volumes::VolumeError),
    /// A path in a container does not exist (`cp`).
    #[error("{0}")]
    PathNotFound(String),
}

impl EngineError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::NoSuchImage(_) => ErrorKind::NotFound,
            EngineError::Store(e) => match e {
                StoreError::ImageNotFound(_) | StoreError::BlobMissing(_) => ErrorKind::NotFound,
                StoreError::InUse { .. } | StoreError::MultipleRepositories { .. } => {
                    ErrorKind::Conflict
                }
                StoreError::AmbiguousId { .. }
                | StoreError::Reference(_)
                | StoreError::Digest(_)
                | StoreError::BadChange(_)
                | StoreError::BadArchive(_) => ErrorKind::InvalidParameter,
                _ => ErrorKind::Internal,
            },
            EngineError::Registry(e) => match e {
                berth_registry::Error::NotFound { .. } => ErrorKind::NotFound,
                berth_registry::Error::Status { status: 404, .. } => ErrorKind::NotFound,
                berth_registry::Error::Unauthorized { .. } => ErrorKind::Unauthorized,
                berth_registry::Error::InvalidPlatform { .. } => ErrorKind::InvalidParameter,
                _ => ErrorKind::Internal,
            },
            EngineError::Container(e) => e.kind(),
            EngineError::Volume(e) => e.kind(),
            EngineError::PathNotFound(_) => ErrorKind::NotFound,
            EngineError::Network(e) => e.kind(),
            EngineError::InvalidParameter(_) => ErrorKind::InvalidParameter,
            EngineError::Unauthorized(_) => ErrorKind::Unauthorized,
            EngineError::NotSupported(_) => ErrorKind::Unavailable,
            EngineError::Config(_) | EngineError::Io { .. } | EngineError::Task(_) => {
                ErrorKind::Internal
            }
        }
    }

    /// Maps a store error, turning "image not found" into Docker's message for `name`.
    pub(crate) fn from_store(e: StoreError, name: &str) -> EngineError {
        match e {
            StoreError::ImageNotFound(_) => EngineError::NoSuchImage(name.to_owned()),
            other => EngineError::Store(other),
        }
    }
}
