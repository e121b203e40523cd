//! Content-addressed blob store, manifests and configs, path-safe layer unpack, overlay snapshots, GC.
#![forbid(unsafe_code)]

pub mod blobs;
pub mod docs;
pub mod error;
pub mod layers;
pub mod manage;
pub mod store;
pub mod unpack;

pub use error::StoreError;
pub use manage::{GcReport, PruneReport, RemoveItem};
pub use store::{ImageRecord, ImageStore, LayerRecord, LayerSpec, Lease, StoreOptions};
pub use unpack::{Compression, UnpackError, UnpackOptions, UnpackSummary, unpack_layer};
