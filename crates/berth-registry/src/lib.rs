//! OCI distribution client: auth, mirrors, verified pulls, pushes, platform selection.
//!
//! [`Client`] speaks the OCI distribution protocol (and Docker's schema 2 dialect of it) over
//! reqwest with rustls. It reads [`RegistryConfig`] (mirrors, insecure registries, a Docker
//! style `certs.d`) and [`Credentials`] (a docker-compatible `config.json`), negotiates Basic
//! and Bearer auth from `WWW-Authenticate`, resolves manifest lists to a [`Platform`], streams
//! blobs with Range resume ([`BlobStream`]) and pushes blobs and manifests.
#![forbid(unsafe_code)]

mod auth;
mod blob;
mod client;
mod config;
mod credentials;
mod error;
mod manifest;
mod progress;

pub use auth::Challenge;
pub use blob::{BlobSource, BlobStream};
pub use client::{Client, Resolved};
pub use config::{DEFAULT_CERTS_DIR, DEFAULT_CONFIG_PATH, RegistryConfig};
pub use credentials::{AuthEntry, Credentials};
pub use error::{Error, ErrorKind};
pub use manifest::{Descriptor, Platform, media_types};
pub use progress::{NoProgress, Progress};

/// The registry host that serves `docker.io` names.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
