//! Content-addressed cache keys for build steps.
//!
//! A step's key is `sha256(parent key, the instruction after expansion, the build args it
//! uses, and for COPY/ADD the digest of its sources)`. Source digests hash paths, modes,
//! owners, sizes, content digests and symlink targets, never mtimes.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::plan::Step;

/// One file of a COPY/ADD source set, as the caller found it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceEntry {
    /// Path relative to the source root, `/`-separated.
    pub path: String,
    /// Full st_mode (file type and permission bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Digest of the content (e.g. `sha256:...`); empty for directories and symlinks.
    pub digest: String,
    pub link_target: Option<String>,
}

fn field(h: &mut Sha256, tag: &str, value: &[u8]) {
    h.update(tag.as_bytes());
    h.update((value.len() as u64).to_le_bytes());
    h.update(value);
}

fn finish(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Digest of a set of source entries; the order of `entries` does not matter.
pub fn sources_digest(entries: &[SourceEntry]) -> String {
    let mut sorted: Vec<&SourceEntry> = entries.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    field(&mut h, "berth-sources-v1", b"");
    for e in sorted {
        field(&mut h, "path", e.path.as_bytes());
        field(&mut h, "mode", &e.mode.to_le_bytes());
        field(&mut h, "uid", &e.uid.to_le_bytes());
        field(&mut h, "gid", &e.gid.to_le_bytes());
        field(&mut h, "size", &e.size.to_le_bytes());
        field(&mut h, "digest", e.digest.as_bytes());
        match &e.link_target {
            Some(t) => field(&mut h, "link", t.as_bytes()),
            None => field(&mut h, "nolink", b""),
        }
    }
    finish(h)
}

/// Digest of file content (`sha256:<hex>`), for [`SourceEntry::digest`].
pub fn content_digest(bytes: &[u8]) -> String {
    finish(Sha256::new_with_prefix(bytes))
}

/// The root key of a stage: its base image id (or `scratch`) and the platform.
pub fn base_key(base_image_id: &str, platform: &str) -> String {
    let mut h = Sha256::new();
    field(&mut h, "berth-base-v1", b"");
    field(&mut h, "base", base_image_id.as_bytes());
    field(&mut h, "platform", platform.as_bytes());
    finish(h)
}

/// Key of a step from its parts.
pub fn key(
    parent: &str,
    instruction: &str,
    used_args: &BTreeMap<String, String>,
    sources: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    field(&mut h, "berth-step-v1", b"");
    field(&mut h, "parent", parent.as_bytes());
    field(&mut h, "instruction", instruction.as_bytes());
    for (k, v) in used_args {
        field(&mut h, "arg", k.as_bytes());
        field(&mut h, "val", v.as_bytes());
    }
    match sources {
        Some(s) => field(&mut h, "sources", s.as_bytes()),
        None => field(&mut h, "nosources", b""),
    }
    finish(h)
}

/// Key of a planned step; `sources` is the [`sources_digest`] of a COPY/ADD's sources
/// (for `COPY --from`, of the files taken from that stage or image).
pub fn step_key(parent: &str, step: &Step, sources: Option<&str>) -> String {
    key(parent, &step.cache_text(), &step.used_args, sources)
}
