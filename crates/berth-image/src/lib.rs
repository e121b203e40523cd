//! Content-addressed blob store, manifests and configs, path-safe layer unpack, overlay snapshots, GC.
#![forbid(unsafe_code)]

pub mod archive;
pub mod blobs;
pub mod diff;
pub mod docs;
pub mod error;
pub mod import;
pub mod layers;
pub mod manage;
pub mod pull;
pub mod purge;
pub mod push;
pub mod query;
pub mod store;
pub mod unpack;

pub use archive::{ArchiveFormat, LoadedImage};
pub use error::{ErrorKind, StoreError};
pub use import::ImportOptions;
pub use layers::mark_topdir;
pub use manage::{GcReport, PruneReport, RemoveItem};
pub use pull::{Pulled, host_platform};
pub use push::{BlobPush, Pushed};
pub use query::{HistoryItem, ImageInspect, ImageSummary, ListFilters};
pub use store::{ImageRecord, ImageStore, LayerRecord, LayerSpec, Lease, StoreOptions};
pub use unpack::{
    Compression, UnpackError, UnpackOptions, UnpackSummary, unpack_layer, unpack_layer_buffered,
};
