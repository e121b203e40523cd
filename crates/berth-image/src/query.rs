//! `images`/`image ls` (filters), `image inspect` and `history`, shaped like the Docker
//! Engine API's responses so the API layer only serialises them.

use std::collections::BTreeMap;

use berth_types::reference::Reference;
use serde::Serialize;

use crate::docs::config_str;
use crate::error::StoreError;
use crate::store::{ImageRecord, ImageStore};

/// `GET /images/json` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilters {
    /// `dangling=true|false`.
    pub dangling: Option<bool>,
    /// `reference=pattern` (glob on the familiar name or name:tag); any may match.
    pub reference: Vec<String>,
    /// `label=key` or `label=key=value`; all must match.
    pub label: Vec<String>,
    /// `before=image`: created strictly before it.
    pub before: Option<String>,
    /// `since=image`: created strictly after it.
    pub since: Option<String>,
}

/// One row of `docker images` (the Engine API's ImageSummary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    /// `sha256:…`.
    pub id: String,
    /// The parent image id or "".
    pub parent_id: String,
    /// Familiar tags (`alpine:latest`).
    pub repo_tags: Vec<String>,
    /// Familiar digests (`alpine@sha256:…`).
    pub repo_digests: Vec<String>,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// Unpacked size.
    pub size: u64,
    /// Not computed (-1, as Docker without `shared-size`).
    pub shared_size: i64,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// Number of holds (containers) on the image.
    pub containers: i64,
}

/// `RootFS` of an inspect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The diff ids, bottom first.
    pub layers: Vec<String>,
}

/// `Metadata` of an inspect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectMetadata {
    /// When last tagged (RFC 3339), or "".
    pub last_tag_time: String,
}

/// `docker image inspect` (the Engine API's ImageInspect).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    /// `sha256:…`.
    pub id: String,
    /// Familiar tags.
    pub repo_tags: Vec<String>,
    /// Familiar digests.
    pub repo_digests: Vec<String>,
    /// Parent image id or "".
    pub parent: String,
    /// The config's `comment` or "".
    pub comment: String,
    /// Creation time as the config gives it.
    pub created: String,
    /// The config's `docker_version` or "".
    pub docker_version: String,
    /// The config's `author` or "".
    pub author: String,
    /// The container defaults (`config` of the image config).
    pub config: serde_json::Value,
    /// CPU architecture.
    pub architecture: String,
    /// CPU variant, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Operating system.
    pub os: String,
    /// Unpacked size.
    pub size: u64,
    /// The layer stack.
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    /// Tag time.
    pub metadata: InspectMetadata,
}

/// One row of `docker history` (the Engine API's HistoryResponseItem).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    /// The image id for the top row, `<missing>` below (as Docker for pulled images).
    pub id: String,
    /// Seconds since the epoch.
    pub created: i64,
    /// The instruction.
    pub created_by: String,
    /// Tags of the image, on its row.
    pub tags: Vec<String>,
    /// Layer size (0 for empty layers).
    pub size: u64,
    /// Comment.
    pub comment: String,
}

fn familiar(s: &str) -> String {
    Reference::parse(s)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| s.to_owned())
}

fn unix_seconds(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .unwrap_or(0)
}

/// Go's `path.Match` subset Docker uses for `reference=`: `*`, `?` (not matching `/`)
/// and literal characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn rec(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| rec(rest, &t[i..])),
            Some(('?', rest)) => t.first().is_some_and(|&c| c != '/') && rec(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && rec(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    rec(&p, &t)
}

fn labels_of(config: &serde_json::Value) -> BTreeMap<String, String> {
    config
        .pointer("/config/Labels")
        .and_then(|v| v.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl ImageStore {
    fn created_of(&self, rec: &ImageRecord) -> String {
        self.config(&rec.id)
            .ok()
            .and_then(|c| config_str(&c, "created").map(str::to_owned))
            .unwrap_or_else(|| rec.added.clone())
    }

    /// `docker images`: every image matching the filters, newest first. `all` also
    /// lists untagged images that are parents of other images (hidden by default).
    pub fn list(&self, filters: &ListFilters, all: bool) -> Result<Vec<ImageSummary>, StoreError> {
        let images = self.images();
        let before = filters
            .before
            .as_deref()
            .map(|n| self.resolve(n).map(|r| unix_seconds(&self.created_of(&r))))
            .transpose()?;
        let since = filters
            .since
            .as_deref()
            .map(|n| self.resolve(n).map(|r| unix_seconds(&self.created_of(&r))))
            .transpose()?;
        let parents: Vec<_> = images.iter().filter_map(|i| i.parent.clone()).collect();
        let mut out = Vec::new();
        for rec in &images {
            let dangling = rec.repo_tags.is_empty();
            if !all && dangling && parents.contains(&rec.id) {
                continue;
            }
            if let Some(want) = filters.dangling
                && want != dangling
            {
                continue;
            }
            let config = self.config(&rec.id)?;
            let created = unix_seconds(config_str(&config, "created").unwrap_or(&rec.added));
            if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
                continue;
            }
            let labels = labels_of(&config);
            let label_ok = filters.label.iter().all(|f| match f.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
                None => labels.contains_key(f.as_str()),
            });
            if !label_ok {
                continue;
            }
            let tags: Vec<String> = rec.repo_tags.iter().map(|t| familiar(t)).collect();
            if !filters.reference.is_empty() {
                let hit = rec.repo_tags.iter().any(|t| {
                    let Ok(r) = Reference::parse(t) else {
                        return false;
                    };
                    let name = r.familiar_name();
                    let full = r.familiar();
                    filters
                        .reference
                        .iter()
                        .any(|p| glob_match(p, &name) || glob_match(p, &full))
                });
                if !hit {
                    continue;
                }
            }
            out.push(ImageSummary {
                id: rec.id.to_string(),
                parent_id: rec
                    .parent
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                repo_tags: tags,
                repo_digests: rec.repo_digests.iter().map(|d| familiar(d)).collect(),
                created,
                size: rec.size,
                shared_size: -1,
                labels,
                containers: self.holders(&rec.id).len() as i64,
            });
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// `docker image inspect` by name, id or id prefix.
    pub fn inspect(&self, name: &str) -> Result<ImageInspect, StoreError> {
        let rec = self.resolve(name)?;
        let config = self.config(&rec.id)?;
        let s = |k: &str| config_str(&config, k).unwrap_or_default().to_owned();
        Ok(ImageInspect {
            id: rec.id.to_string(),
            repo_tags: rec.repo_tags.iter().map(|t| familiar(t)).collect(),
            repo_digests: rec.repo_digests.iter().map(|d| familiar(d)).collect(),
            parent: rec
                .parent
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            comment: s("comment"),
            created: config_str(&config, "created")
                .map(str::to_owned)
                .unwrap_or_else(|| rec.added.clone()),
            docker_version: s("docker_version"),
            author: s("author"),
            config: config
                .get("config")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            architecture: s("architecture"),
            variant: config_str(&config, "variant").map(str::to_owned),
            os: s("os"),
            size: rec.size,
            root_fs: RootFs {
                kind: "layers".into(),
                layers: rec.layers.iter().map(|l| l.diff_id.to_string()).collect(),
            },
            metadata: InspectMetadata {
                last_tag_time: rec.last_tag_time.clone().unwrap_or_default(),
            },
        })
    }

    /// `docker history`: newest first; layer sizes from the unpacked layers.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryItem>, StoreError> {
        let rec = self.resolve(name)?;
        let config = self.config(&rec.id)?;
        let entries = config
            .get("history")
            .and_then(|h| h.as_array())
            .cloned()
            .unwrap_or_default();
        let mut layer_sizes = Vec::new();
        for l in &rec.layers {
            layer_sizes.push(self.layers().meta(&l.chain_id)?.size);
        }
        let mut rows = Vec::new();
        let mut li = 0;
        if entries.is_empty() {
            // No history in the config: one row per layer.
            for size in &layer_sizes {
                rows.push(HistoryItem {
                    id: "<missing>".into(),
                    created: 0,
                    created_by: String::new(),
                    tags: vec![],
                    size: *size,
                    comment: String::new(),
                });
            }
        }
        for h in &entries {
            let empty = h
                .get("empty_layer")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let size = if empty {
                0
            } else {
                let s = layer_sizes.get(li).copied().unwrap_or(0);
                li += 1;
                s
            };
            let text = |k: &str| {
                h.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            rows.push(HistoryItem {
                id: "<missing>".into(),
                created: unix_seconds(&text("created")),
                created_by: text("created_by"),
                tags: vec![],
                size,
                comment: text("comment"),
            });
        }
        rows.reverse();
        if let Some(top) = rows.first_mut() {
            top.id = rec.id.to_string();
            top.tags = rec.repo_tags.iter().map(|t| familiar(t)).collect();
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_matches_like_go_path_match() {
        assert!(glob_match("busy*", "busybox"));
        assert!(glob_match("busybox:*", "busybox:latest"));
        assert!(!glob_match("*", "library/busybox"));
        assert!(glob_match("*/app", "user/app"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("alpine", "alpine:latest"));
    }
}
