//! Manifests, indexes and image configs: the subset of the OCI image spec and Docker
//! schema2 the store reads and writes. Unknown fields of a config are kept verbatim
//! (the config is stored as its original bytes; only what we need is parsed).

use std::collections::BTreeMap;

use berth_types::reference::Digest;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Docker schema2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// Content digest.
    pub digest: Digest,
    /// Content size.
    pub size: u64,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// A platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, GOARCH spelling.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (Docker schema2 or OCI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config.
    pub config: Descriptor,
    /// The layers, bottom first.
    pub layers: Vec<Descriptor>,
}

/// An image index or manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The entries.
    pub manifests: Vec<Descriptor>,
}

/// Parses a manifest, naming `what` on failure.
pub fn parse_manifest(bytes: &[u8], what: &str) -> Result<Manifest, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::BadDocument {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

/// Parses an index, naming `what` on failure.
pub fn parse_index(bytes: &[u8], what: &str) -> Result<Index, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::BadDocument {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

/// Parses an image config.
pub fn parse_config(bytes: &[u8], id: &Digest) -> Result<serde_json::Value, StoreError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| StoreError::BadDocument {
            what: format!("image config {id}"),
            reason: e.to_string(),
        })?;
    if !v.is_object() {
        return Err(StoreError::BadDocument {
            what: format!("image config {id}"),
            reason: "not a JSON object".into(),
        });
    }
    Ok(v)
}

/// The `rootfs.diff_ids` of a config.
pub fn diff_ids(config: &serde_json::Value, id: &Digest) -> Result<Vec<Digest>, StoreError> {
    let bad = |reason: String| StoreError::BadDocument {
        what: format!("image config {id}"),
        reason,
    };
    let arr = config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .ok_or_else(|| bad("rootfs.diff_ids is missing".into()))?;
    arr.iter()
        .map(|v| {
            let s = v
                .as_str()
                .ok_or_else(|| bad("a diff id is not a string".into()))?;
            Digest::parse(s).map_err(|e| bad(e.to_string()))
        })
        .collect()
}

/// A string field of a config (e.g. `architecture`, `os`, `created`).
pub fn config_str<'a>(config: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    config.get(key).and_then(|v| v.as_str())
}
