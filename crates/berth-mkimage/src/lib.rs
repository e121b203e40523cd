//! Make container images from local files: a rootfs directory or tarball becomes an OCI
//! image layout or a docker-archive, byte for byte reproducibly.
//!
//! ```no_run
//! use berth_mkimage::{Image, ImageOptions};
//! # fn main() -> Result<(), berth_mkimage::Error> {
//! let opts = ImageOptions { cmd: Some(vec!["sh".into()]), ..Default::default() };
//! let image = Image::from_rootfs("rootfs".as_ref(), "busybox:latest", &opts)?;
//! image.write_oci_layout("out-oci".as_ref())?;
//! image.write_docker_archive("busybox.tar".as_ref(), false)?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod busybox;
pub mod config;
mod image;
mod layer;

use std::io;
use std::path::{Path, PathBuf};

pub use busybox::{BUSYBOX_BIN, busybox_rootfs, busybox_rootfs_from};
pub use config::{ImageConfig, ImageOptions};
pub use image::{IMAGE_NAME, Image, REF_NAME, Reference};
pub use layer::{Layer, sha256_digest};

/// Everything that can go wrong while making an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("failed to {what} {path}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Gzip compression failed.
    #[error("failed to gzip a layer: {0}")]
    Compress(io::Error),
    /// A tarball entry escapes the root (`..`).
    #[error("tarball entry {0:?} escapes the root")]
    UnsafePath(PathBuf),
    /// A tarball entry cannot be represented.
    #[error("tarball entry {0:?}: {1}")]
    BadTarEntry(PathBuf, &'static str),
    /// The image name is not `repository[:tag]`.
    #[error("invalid image reference {0:?}: {1}")]
    InvalidReference(String, &'static str),
    /// An image option (env, port, time) is malformed.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// An existing `index.json` could not be parsed.
    #[error("invalid OCI index {0}: {1}")]
    BadIndex(PathBuf, serde_json::Error),
    /// JSON serialisation failed.
    #[error("failed to serialise JSON: {0}")]
    Json(serde_json::Error),
    /// An image needs at least one layer.
    #[error("an image needs at least one layer")]
    NoLayers,
    /// The busybox rootfs could not be made.
    #[error("failed to make the busybox rootfs: {0}")]
    Busybox(io::Error),
}

impl Error {
    pub(crate) fn io(what: &'static str, path: &Path, source: io::Error) -> Error {
        Error::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The options of Docker Hub's `busybox` image: `Cmd ["sh"]`.
pub fn busybox_options(source_date_epoch: Option<i64>) -> ImageOptions {
    ImageOptions {
        cmd: Some(vec!["sh".to_string()]),
        source_date_epoch,
        ..Default::default()
    }
}

/// The built-in busybox recipe: [`busybox_rootfs`] in a scratch directory under `scratch`,
/// one layer, `Cmd ["sh"]`.
pub fn busybox_image(
    scratch: &Path,
    tag: &str,
    source_date_epoch: Option<i64>,
) -> Result<Image, Error> {
    let root = scratch.join("busybox-rootfs");
    busybox_rootfs(&root).map_err(Error::Busybox)?;
    let image = Image::from_rootfs(&root, tag, &busybox_options(source_date_epoch));
    let _ = std::fs::remove_dir_all(&root);
    image
}
