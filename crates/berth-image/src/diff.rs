//! Layers made from directories: an overlay upper dir (a build step's or a container's)
//! or a staged COPY tree becomes a reproducible layer tar (sorted entries, overlay
//! whiteouts as `.wh.` files, opaque dirs as `.wh..wh..opq`, xattrs, hard links, mtimes
//! clamped to `SOURCE_DATE_EPOCH`), stored as a blob and published as the layer directory
//! itself (renamed, not unpacked again). Also: new images from a config and layers
//! (`build`, `commit`), and the A/C/D change list of an upper dir (`docker diff`).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use berth_types::reference::{Digest, Reference};

use crate::archive::synth_manifest;
use crate::error::StoreError;
use crate::layers::{LayerMeta, chain_id};
use crate::store::{ImageStore, LayerRecord, Lease};
use crate::unpack::Compression;

/// How a directory becomes a tar.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    /// Clamp every mtime to at most this (seconds since the epoch).
    pub source_date_epoch: Option<i64>,
    /// Translate overlayfs whiteouts and opaque dirs (an upper dir); off for a plain tree.
    pub overlay: bool,
    /// Leave the directory in place (a running container's upper dir): the layer is
    /// unpacked from the blob instead of moving the directory.
    pub keep_source: bool,
}

/// What a written tar held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffSummary {
    /// Entries written.
    pub entries: usize,
    /// Bytes of regular-file content (hard links once).
    pub content_bytes: u64,
}

fn io_at(op: &'static str, p: &Path) -> impl FnOnce(io::Error) -> StoreError {
    StoreError::io(op, p)
}

fn xattrs_of(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(p, &mut names) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        // overlay's own bookkeeping never goes into a layer
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            continue;
        }
        let mut val = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(p, name, &mut val) {
            val.truncate(len);
            out.push((name.to_owned(), val));
        }
    }
    out.sort();
    out
}

fn is_opaque(p: &Path) -> bool {
    let mut v = [0u8; 4];
    matches!(rustix::fs::lgetxattr(p, "trusted.overlay.opaque", &mut v), Ok(1) if v[0] == b'y')
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

struct TarWalk<'a, W: Write> {
    tar: tar::Builder<W>,
    opts: &'a DiffOptions,
    links: HashMap<(u64, u64), String>,
    summary: DiffSummary,
}

impl<W: Write> TarWalk<'_, W> {
    fn mtime(&self, md: &fs::Metadata) -> u64 {
        let t = md.mtime().max(0);
        match self.opts.source_date_epoch {
            Some(e) if t > e => e.max(0) as u64,
            _ => t as u64,
        }
    }

    fn header(&self, md: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(md.uid() as u64);
        h.set_gid(md.gid() as u64);
        h.set_mtime(self.mtime(md));
        h.set_size(0);
        h
    }

    fn append(
        &mut self,
        h: &mut tar::Header,
        name: &str,
        data: impl io::Read,
        xattrs: &[(String, Vec<u8>)],
    ) -> io::Result<()> {
        if !xattrs.is_empty() {
            let ext: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                .collect();
            self.tar
                .append_pax_extensions(ext.iter().map(|(k, v)| (k.as_str(), *v)))?;
        }
        self.summary.entries += 1;
        self.tar.append_data(h, name, data)
    }

    fn whiteout(&mut self, name: &str, md: &fs::Metadata) -> io::Result<()> {
        let mut h = self.header(md, tar::EntryType::Regular);
        h.set_mode(0o600);
        self.append(&mut h, name, io::empty(), &[])
    }

    fn walk(&mut self, dir: &Path, rel: &str) -> Result<(), StoreError> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(io_at("read directory", dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_at("read directory", dir))?;
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        for n in names {
            let path = dir.join(&n);
            let name = n.to_string_lossy();
            let tar_name = format!("{rel}{name}");
            let md = fs::symlink_metadata(&path).map_err(io_at("stat", &path))?;
            let ft = md.file_type();
            let err = io_at("write layer tar entry", &path);
            if self.opts.overlay && is_whiteout(&md) {
                self.whiteout(&format!("{rel}.wh.{name}"), &md)
                    .map_err(err)?;
                continue;
            }
            let xattrs = xattrs_of(&path);
            if ft.is_dir() {
                let mut h = self.header(&md, tar::EntryType::Directory);
                self.append(&mut h, &format!("{tar_name}/"), io::empty(), &xattrs)
                    .map_err(err)?;
                if self.opts.overlay && is_opaque(&path) {
                    self.whiteout(&format!("{tar_name}/.wh..wh..opq"), &md)
                        .map_err(io_at("write layer tar entry", &path))?;
                }
                self.walk(&path, &format!("{tar_name}/"))?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(io_at("read link", &path))?;
                let mut h = self.header(&md, tar::EntryType::Symlink);
                h.set_link_name(&target).map_err(err)?;
                self.append(&mut h, &tar_name, io::empty(), &xattrs)
                    .map_err(io_at("write layer tar entry", &path))?;
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    let key = (md.dev(), md.ino());
                    if let Some(first) = self.links.get(&key).cloned() {
                        let mut h = self.header(&md, tar::EntryType::Link);
                        h.set_link_name(&first).map_err(err)?;
                        self.append(&mut h, &tar_name, io::empty(), &[])
                            .map_err(io_at("write layer tar entry", &path))?;
                        continue;
                    }
                    self.links.insert(key, tar_name.clone());
                }
                let mut h = self.header(&md, tar::EntryType::Regular);
                h.set_size(md.len());
                let f = fs::File::open(&path).map_err(io_at("open", &path))?;
                self.summary.content_bytes += md.len();
                self.append(&mut h, &tar_name, f, &xattrs).map_err(err)?;
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                let kind = if ft.is_char_device() {
                    tar::EntryType::Char
                } else if ft.is_block_device() {
                    tar::EntryType::Block
                } else {
                    tar::EntryType::Fifo
                };
                let mut h = self.header(&md, kind);
                let rdev = md.rdev();
                h.set_device_major(rustix::fs::major(rdev)).map_err(err)?;
                h.set_device_minor(rustix::fs::minor(rdev))
                    .map_err(io_at("write layer tar entry", &path))?;
                self.append(&mut h, &tar_name, io::empty(), &xattrs)
                    .map_err(io_at("write layer tar entry", &path))?;
            }
            // sockets are not archived (as Docker's archive package)
        }
        Ok(())
    }
}

/// Writes `dir` as a layer tar to `out`: entries sorted by name, directories before their
/// contents, no entry for `dir` itself.
pub fn write_layer_tar(
    dir: &Path,
    out: impl Write,
    opts: &DiffOptions,
) -> Result<DiffSummary, StoreError> {
    let mut w = TarWalk {
        tar: tar::Builder::new(out),
        opts,
        links: HashMap::new(),
        summary: DiffSummary::default(),
    };
    w.tar.mode(tar::HeaderMode::Complete);
    w.walk(dir, "")?;
    w.tar
        .into_inner()
        .and_then(|mut o| o.flush())
        .map_err(io_at("finish layer tar", dir))?;
    Ok(w.summary)
}

/// One entry of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Absolute path in the container.
    pub path: String,
    /// 0 modified, 1 added, 2 deleted (Docker's `Kind`).
    pub kind: u8,
}

fn exists_below(lowers: &[PathBuf], rel: &str) -> bool {
    lowers
        .iter()
        .any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
}

/// The changes an overlay upper dir holds against its lower dirs (top first).
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, StoreError> {
    fn walk(
        dir: &Path,
        rel: &str,
        lowers: &[PathBuf],
        out: &mut Vec<Change>,
    ) -> Result<(), StoreError> {
        for e in fs::read_dir(dir).map_err(io_at("read directory", dir))? {
            let e = e.map_err(io_at("read directory", dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let r = format!("{rel}/{name}");
            let md = fs::symlink_metadata(e.path()).map_err(io_at("stat", &e.path()))?;
            if is_whiteout(&md) {
                out.push(Change { path: r, kind: 2 });
                continue;
            }
            let existed = exists_below(lowers, r.trim_start_matches('/'));
            out.push(Change {
                path: r.clone(),
                kind: if existed { 0 } else { 1 },
            });
            if md.is_dir() {
                walk(&e.path(), &r, lowers, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(upper, "", lowers, &mut out)?;
    out.sort();
    Ok(out)
}

/// Docker's media type of an uncompressed layer.
pub const TAR_MEDIA_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar";

impl ImageStore {
    /// Makes `dir` a layer on top of `parent` (a chain id): writes its tar as a blob and
    /// publishes `dir` itself as the layer directory (moved; it must be on the store's
    /// file system, else it is unpacked from the blob). `Ok(None)` when `dir` is empty
    /// (an empty layer, which images do not record). The blob and layer are leased.
    pub fn commit_dir_layer(
        &self,
        dir: &Path,
        parent: Option<&Digest>,
        opts: &DiffOptions,
        lease: &Lease,
    ) -> Result<Option<LayerRecord>, StoreError> {
        let mut w = self.blobs().writer()?;
        let summary = {
            let mut bw = io::BufWriter::with_capacity(256 * 1024, &mut w);
            let s = write_layer_tar(dir, &mut bw, opts)?;
            bw.flush().map_err(io_at("write layer blob", dir))?;
            s
        };
        if summary.entries == 0 {
            return Ok(None);
        }
        let (blob, size) = w.commit(None)?;
        lease.add_blob(&blob);
        let diff_id = blob.clone();
        let chain = chain_id(parent, &diff_id);
        lease.add_layer(&chain);
        let record = LayerRecord {
            blob: blob.clone(),
            media_type: TAR_MEDIA_TYPE.to_owned(),
            size,
            diff_id: diff_id.clone(),
            chain_id: chain.clone(),
        };
        if self.layers().contains(&chain) {
            return Ok(Some(record));
        }
        let meta = LayerMeta {
            version: 1,
            chain_id: chain.clone(),
            diff_id,
            parent: parent.cloned(),
            size: summary.content_bytes,
            tar_size: size,
        };
        let tmp = self.layers().begin(&chain)?;
        let target = tmp.diff();
        fs::remove_dir(&target).map_err(io_at("prepare layer", &target))?;
        if opts.keep_source || fs::rename(dir, &target).is_err() {
            fs::create_dir(&target).map_err(io_at("create layer", &target))?;
            let f = self.blobs().open_blob(&blob)?;
            crate::unpack::unpack_layer(
                io::BufReader::new(f),
                Some(Compression::None.docker_media_type()),
                &target,
                &self.inner.opts.unpack,
            )
            .map_err(|e| StoreError::Unpack {
                digest: blob.clone(),
                source: e,
            })?;
        }
        tmp.commit(&meta)?;
        Ok(Some(record))
    }

    /// Stores an image config and records the image with `layers` (bottom first), its
    /// `parent` image and `tags` (moved from any image that had them). Returns the id.
    pub fn create_image(
        &self,
        config: &serde_json::Value,
        layers: Vec<LayerRecord>,
        parent: Option<&Digest>,
        tags: &[Reference],
        lease: &Lease,
    ) -> Result<Digest, StoreError> {
        let cbytes = serde_json::to_vec(config).map_err(|e| StoreError::Task(e.to_string()))?;
        lease.add_blob(&Digest::sha256(&cbytes));
        let id = self.blobs().put(&cbytes)?;
        lease.add_image(&id);
        let manifest = synth_manifest(&id, cbytes.len() as u64, &layers, false);
        let mbytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::Task(e.to_string()))?;
        lease.add_blob(&Digest::sha256(&mbytes));
        let mdigest = self.blobs().put(&mbytes)?;
        self.commit_image(&id, Some(mdigest), layers, tags, None, lease)?;
        if let Some(p) = parent {
            self.update(|s| {
                if let Some(r) = s.image_mut(&id)
                    && r.parent.is_none()
                {
                    r.parent = Some(p.clone());
                }
                Ok(())
            })?;
        }
        Ok(id)
    }

    /// Removes untagged images no container holds and no lease protects, among `ids`
    /// (the build cache's intermediate images), then collects garbage. Returns the ids
    /// removed and the bytes reclaimed.
    pub fn remove_untagged(&self, ids: &[Digest]) -> Result<(Vec<Digest>, u64), StoreError> {
        let leased: std::collections::BTreeSet<Digest> = crate::store::lock(&self.inner.leases)
            .values()
            .flat_map(|l| l.images.iter().cloned())
            .collect();
        let mut removed = Vec::new();
        self.update(|s| {
            for id in ids {
                let keep = match s.image_mut(id) {
                    None => true,
                    Some(r) => !r.repo_tags.is_empty(),
                };
                if keep || leased.contains(id) || !self.holders(id).is_empty() {
                    continue;
                }
                s.remove_image(id);
                removed.push(id.clone());
            }
            Ok(())
        })?;
        let space = self.gc()?.space;
        Ok((removed, space))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(bytes: &[u8]) -> Vec<(String, tar::EntryType, u64)> {
        let mut a = tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                    e.header().mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn upper_dir_becomes_sorted_tar_with_whiteouts() {
        let t = tempfile::tempdir().unwrap();
        let u = t.path();
        fs::create_dir(u.join("etc")).unwrap();
        fs::write(u.join("etc/b"), b"bb").unwrap();
        fs::write(u.join("etc/a"), b"a").unwrap();
        fs::hard_link(u.join("etc/a"), u.join("etc/a2")).unwrap();
        std::os::unix::fs::symlink("a", u.join("etc/l")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            u.join("gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        fs::create_dir(u.join("opq")).unwrap();
        rustix::fs::setxattr(
            u.join("opq"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let f = fs::File::options()
            .write(true)
            .open(u.join("etc/b"))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(5_000))
            .unwrap();
        let mut out = Vec::new();
        let opts = DiffOptions {
            source_date_epoch: Some(1_000),
            overlay: true,
            keep_source: true,
        };
        let s = write_layer_tar(u, &mut out, &opts).unwrap();
        let got = entries(&out);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/a",
                "etc/a2",
                "etc/b",
                "etc/l",
                ".wh.gone",
                "opq/",
                "opq/.wh..wh..opq"
            ]
        );
        assert_eq!(got[2].1, tar::EntryType::Link);
        assert_eq!(got[4].1, tar::EntryType::Symlink);
        assert!(got.iter().all(|e| e.2 <= 1_000), "{got:?}");
        assert_eq!(s.content_bytes, 3);
        // byte-identical on a second run
        let mut again = Vec::new();
        write_layer_tar(u, &mut again, &opts).unwrap();
        assert_eq!(out, again);
        // changes against a lower dir
        let lower = tempfile::tempdir().unwrap();
        fs::create_dir(lower.path().join("etc")).unwrap();
        fs::write(lower.path().join("gone"), b"x").unwrap();
        let ch = changes(u, &[lower.path().to_owned()]).unwrap();
        assert!(ch.contains(&Change {
            path: "/etc".into(),
            kind: 0
        }));
        assert!(ch.contains(&Change {
            path: "/etc/a".into(),
            kind: 1
        }));
        assert!(ch.contains(&Change {
            path: "/gone".into(),
            kind: 2
        }));
    }
}
