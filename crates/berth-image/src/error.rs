//! The store's error type.

use std::io;
use std::path::PathBuf;

use berth_types::reference::{Digest, DigestError, ReferenceError};

use crate::unpack::UnpackError;

pub use berth_registry::ErrorKind;

/// Everything the image store can fail with. Each variant names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system operation failed.
    #[error("{op} {path:?} failed: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// Content did not hash to the digest it was fetched or stored under.
    #[error("digest mismatch for blob {expected}: content hashes to {actual}")]
    DigestMismatch {
        /// The digest that was asked for.
        expected: Digest,
        /// What the content hashed to.
        actual: Digest,
    },
    /// A blob's stream failed or was cut short.
    #[error("blob {digest} could not be read: {source}")]
    BlobStream {
        /// The blob.
        digest: Digest,
        /// The failure.
        source: io::Error,
    },
    /// A layer could not be unpacked.
    #[error("layer {digest} could not be unpacked: {source}")]
    Unpack {
        /// The layer blob.
        digest: Digest,
        /// Why.
        #[source]
        source: UnpackError,
    },
    /// The uncompressed layer does not match the DiffID the image config lists.
    #[error("layer {digest} unpacks to diff id {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        /// The layer blob.
        digest: Digest,
        /// From the config.
        expected: Digest,
        /// Computed.
        actual: Digest,
    },
    /// A blob the operation needs is not in the store.
    #[error("blob {0} is not in the store")]
    BlobMissing(Digest),
    /// No image matches the name, id or id prefix.
    #[error("no such image: {0}")]
    ImageNotFound(String),
    /// An id prefix matches several images.
    #[error("image id prefix {prefix:?} is ambiguous: it matches {count} images")]
    AmbiguousId {
        /// The prefix.
        prefix: String,
        /// How many images matched.
        count: usize,
    },
    /// The image is used by a container (a hold) and cannot be removed without force.
    /// The message is Docker's: for a tag, `conflict: unable to remove repository reference
    /// "x" (must force) - container <id12> is using its referenced image <img12>`; for an id,
    /// `conflict: unable to delete <img12> (must be forced) - image is being used by stopped
    /// container <id12>`.
    #[error("{}", in_use_message(image, holder, reference.as_deref()))]
    InUse {
        /// The image id.
        image: String,
        /// The holder that registered the hold (a container id).
        holder: String,
        /// The reference the removal named, when it was a tag (not an id).
        reference: Option<String>,
    },
    /// Removal by id of an image tagged in several repositories needs force.
    #[error(
        "unable to delete {image} (must be forced): image is referenced in multiple repositories ({tags})"
    )]
    MultipleRepositories {
        /// The image id.
        image: String,
        /// Its tags.
        tags: String,
    },
    /// The metadata file is unreadable.
    #[error("image store metadata {path:?} is malformed: {source}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The metadata file was written by a newer format.
    #[error(
        "image store metadata {path:?} has format version {found}; this build reads up to {supported}"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// Ours.
        supported: u32,
    },
    /// A manifest, config or index is malformed or unsupported.
    #[error("{what} is malformed: {reason}")]
    BadDocument {
        /// Which document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// An archive given to `load` is malformed.
    #[error("archive is not a docker-archive or OCI archive: {0}")]
    BadArchive(String),
    /// An `import --change` instruction is not supported or malformed.
    #[error(
        "invalid change {0:?}: supported are CMD, ENTRYPOINT, ENV, WORKDIR, EXPOSE, USER, LABEL"
    )]
    BadChange(String),
    /// A reference is invalid.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A digest is invalid.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] berth_registry::Error),
    /// A background task died.
    #[error("background task failed: {0}")]
    Task(String),
}

/// Docker's short form of an id: without the algorithm, 12 characters.
pub(crate) fn short_id(id: &str) -> &str {
    let hex = id.split_once(':').map_or(id, |(_, h)| h);
    hex.get(..12).unwrap_or(hex)
}

fn in_use_message(image: &str, holder: &str, reference: Option<&str>) -> String {
    match reference {
        Some(r) => format!(
            "conflict: unable to remove repository reference {r:?} (must force) - container {} is using its referenced image {}",
            short_id(holder),
            short_id(image)
        ),
        None => format!(
            "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
            short_id(image),
            short_id(holder)
        ),
    }
}

impl StoreError {
    /// The class of this failure (Docker's errdefs categories), so the API maps it to a
    /// status without matching on messages. Registry failures keep their own kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::ImageNotFound(_) | StoreError::BlobMissing(_) => ErrorKind::NotFound,
            StoreError::InUse { .. } | StoreError::MultipleRepositories { .. } => {
                ErrorKind::Conflict
            }
            StoreError::AmbiguousId { .. }
            | StoreError::Reference(_)
            | StoreError::Digest(_)
            | StoreError::BadChange(_)
            | StoreError::BadArchive(_) => ErrorKind::InvalidParameter,
            StoreError::Registry(e) => e.kind(),
            StoreError::Io { .. }
            | StoreError::DigestMismatch { .. }
            | StoreError::BlobStream { .. }
            | StoreError::Unpack { .. }
            | StoreError::DiffIdMismatch { .. }
            | StoreError::Metadata { .. }
            | StoreError::UnsupportedVersion { .. }
            | StoreError::BadDocument { .. }
            | StoreError::Task(_) => ErrorKind::System,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }
}
