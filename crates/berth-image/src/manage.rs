//! `tag`, `rmi`, `image prune` and garbage collection.

use std::collections::BTreeSet;

use berth_types::reference::{Digest, Reference};
use serde::Serialize;

use crate::error::StoreError;
use crate::store::{ImageStore, lock, now_rfc3339};

/// One line of `docker rmi` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RemoveItem {
    /// A tag was removed (familiar form, e.g. `alpine:latest`).
    Untagged(String),
    /// An image was deleted (its id).
    Deleted(String),
}

/// What `prune` or `gc` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Untagged and deleted images.
    pub images: Vec<RemoveItem>,
    /// Bytes freed in blobs and layers.
    pub space_reclaimed: u64,
}

/// What a GC sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub blobs: Vec<Digest>,
    /// Layers deleted (chain ids).
    pub layers: Vec<Digest>,
    /// Bytes freed.
    pub space: u64,
}

fn familiar(tag: &str) -> String {
    Reference::parse(tag)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| tag.to_owned())
}

/// Bytes of regular-file content under `p`, each inode counted once (hard links share
/// their content: busybox has hundreds of links to one binary).
fn dir_size(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut seen: std::collections::HashSet<(u64, u64)> = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

impl ImageStore {
    /// Tags the image `source` (name, id or prefix) as `target`; the tag moves from any
    /// image that had it.
    pub fn tag(&self, source: &str, target: &str) -> Result<Reference, StoreError> {
        let target_ref = Reference::parse(target)?;
        if target_ref.digest().is_some() {
            return Err(StoreError::Reference(
                berth_types::reference::ReferenceError::InvalidFormat {
                    reference: target.to_owned(),
                },
            ));
        }
        let t = target_ref.to_string();
        self.update(|s| {
            let rec = s.resolve(source)?;
            s.untag_everywhere(&t);
            let now = now_rfc3339();
            if let Some(r) = s.image_mut(&rec.id) {
                r.repo_tags.push(t.clone());
                r.last_tag_time = Some(now);
            }
            Ok(())
        })?;
        Ok(target_ref)
    }

    fn check_hold(&self, id: &Digest, reference: Option<&str>) -> Result<(), StoreError> {
        if let Some(holder) = self.holders(id).into_iter().next() {
            return Err(StoreError::InUse {
                image: id.to_string(),
                holder,
                reference: reference.map(str::to_owned),
            });
        }
        Ok(())
    }

    /// `docker rmi` (moby's `daemon/images/image_delete.go`): by tag, untags, and deletes
    /// the image when that was its last tag. By id, deletes (with `force` even when it has
    /// several tags). An image a container holds is never deleted: without `force` the
    /// removal is refused with Docker's conflict message naming the container; with `force`
    /// its tags go and the image stays, dangling, while the container exists.
    pub fn remove(&self, name: &str, force: bool) -> Result<Vec<RemoveItem>, StoreError> {
        let rec = self.resolve(name)?;
        let by_ref = Reference::parse(name).ok().filter(|r| {
            let s = match r.digest() {
                Some(_) => return false,
                None => r.to_string(),
            };
            rec.repo_tags.contains(&s)
        });
        let held = !self.holders(&rec.id).is_empty();
        let mut out = Vec::new();
        if let Some(r) = by_ref {
            let tag = r.to_string();
            let last = rec.repo_tags.len() == 1;
            if last && !force {
                self.check_hold(&rec.id, Some(name))?;
            }
            let delete = last && !held;
            self.update(|s| {
                s.untag_everywhere(&tag);
                if delete {
                    s.remove_image(&rec.id);
                }
                Ok(())
            })?;
            out.push(RemoveItem::Untagged(familiar(&tag)));
            if !delete {
                return Ok(out);
            }
        } else {
            if !force {
                self.check_hold(&rec.id, None)?;
            }
            if rec.repo_tags.len() > 1 && !force {
                let tags: Vec<String> = rec.repo_tags.iter().map(|t| familiar(t)).collect();
                return Err(StoreError::MultipleRepositories {
                    image: rec.id.to_string(),
                    tags: tags.join(", "),
                });
            }
            self.update(|s| {
                if held {
                    if let Some(i) = s.image_mut(&rec.id) {
                        i.repo_tags.clear();
                        i.repo_digests.clear();
                    }
                } else {
                    s.remove_image(&rec.id);
                }
                Ok(())
            })?;
            out.extend(
                rec.repo_tags
                    .iter()
                    .map(|t| RemoveItem::Untagged(familiar(t))),
            );
            if held {
                out.extend(rec.repo_digests.iter().cloned().map(RemoveItem::Untagged));
                return Ok(out);
            }
        }
        for d in &rec.repo_digests {
            out.push(RemoveItem::Untagged(d.clone()));
        }
        out.push(RemoveItem::Deleted(rec.id.to_string()));
        self.gc()?;
        Ok(out)
    }

    /// `docker image prune`: deletes dangling (untagged) images, or with `all` every
    /// image no container holds. Leased and held images are kept.
    pub fn prune(&self, all: bool) -> Result<PruneReport, StoreError> {
        let leased: BTreeSet<Digest> = lock(&self.inner.leases)
            .values()
            .flat_map(|l| l.images.iter().cloned())
            .collect();
        let holds: BTreeSet<Digest> = lock(&self.inner.holds).keys().cloned().collect();
        let mut report = PruneReport::default();
        let victims: Vec<_> = self
            .images()
            .into_iter()
            .filter(|i| {
                (all || i.repo_tags.is_empty()) && !holds.contains(&i.id) && !leased.contains(&i.id)
            })
            .collect();
        if victims.is_empty() {
            return Ok(report);
        }
        self.update(|s| {
            for v in &victims {
                s.remove_image(&v.id);
            }
            Ok(())
        })?;
        for v in &victims {
            report.images.extend(
                v.repo_tags
                    .iter()
                    .map(|t| RemoveItem::Untagged(familiar(t))),
            );
            report.images.push(RemoveItem::Deleted(v.id.to_string()));
        }
        report.space_reclaimed = self.gc()?.space;
        Ok(report)
    }

    /// Deletes every blob and layer that no image, lease or held image references.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        // Holding the lease lock for the whole sweep: a pull that registers a blob in its
        // lease before writing it either ran before (and is seen) or waits until after.
        // The image list is read after taking it: an operation commits its image before
        // dropping its lease, so whatever it wrote is either leased or referenced here.
        let leases = lock(&self.inner.leases);
        let state_images = self.images();
        let mut keep_blobs: BTreeSet<Digest> = BTreeSet::new();
        let mut keep_layers: BTreeSet<Digest> = BTreeSet::new();
        for l in leases.values() {
            keep_blobs.extend(l.blobs.iter().cloned());
            keep_layers.extend(l.layers.iter().cloned());
        }
        let leased_images: BTreeSet<Digest> = leases
            .values()
            .flat_map(|l| l.images.iter().cloned())
            .collect();
        for i in &state_images {
            keep_blobs.insert(i.id.clone());
            if let Some(m) = &i.manifest {
                keep_blobs.insert(m.clone());
            }
            for l in &i.layers {
                keep_blobs.insert(l.blob.clone());
                keep_layers.insert(l.chain_id.clone());
            }
        }
        // Leased images not yet committed keep their config (already in blobs).
        keep_blobs.extend(leased_images);
        let mut report = GcReport::default();
        for b in self.blobs().list()? {
            if !keep_blobs.contains(&b) {
                report.space += self.blobs().size(&b).unwrap_or(0);
                self.blobs().remove(&b)?;
                report.blobs.push(b);
            }
        }
        for l in self.layers().list()? {
            if !keep_layers.contains(&l) {
                // The size recorded at unpack time; walking the tree only for a layer whose
                // metadata is unreadable.
                report.space += match self.layers().meta(&l) {
                    Ok(m) => m.size,
                    Err(_) => dir_size(&self.layers().layer_dir(&l)),
                };
                self.layers().remove(&l)?;
                report.layers.push(l);
            }
        }
        drop(leases);
        if report
            .blobs
            .iter()
            .any(|b| !self.blob_sources(b).is_empty())
        {
            let live: BTreeSet<Digest> = self.blobs().list()?.into_iter().collect();
            self.update(|s| {
                s.forget_blob_sources(&live);
                Ok(())
            })?;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_size_counts_each_inode_once() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("bin")).unwrap();
        std::fs::write(t.path().join("bin/busybox"), vec![7u8; 10_000]).unwrap();
        for name in ["sh", "ls", "cat", "echo"] {
            std::fs::hard_link(
                t.path().join("bin/busybox"),
                t.path().join("bin").join(name),
            )
            .unwrap();
        }
        std::fs::write(t.path().join("other"), b"12345").unwrap();
        std::os::unix::fs::symlink("bin/busybox", t.path().join("link")).unwrap();
        assert_eq!(dir_size(t.path()), 10_005);
    }
}
