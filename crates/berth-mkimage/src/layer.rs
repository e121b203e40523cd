//! Deterministic layer tarballs from a directory or from an existing tarball.
//!
//! Entries are collected first, sorted by path bytes, then written with headers we build
//! ourselves: owners, modes (including setuid/sticky bits), symlinks, hard links and device
//! nodes are kept; user/group names are left empty; mtimes are clamped to
//! `source_date_epoch` when one is given. The same tree therefore always gives the same bytes.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::Error;

/// Where a regular file's bytes come from.
#[derive(Debug, Clone)]
enum Data {
    Disk(PathBuf),
    Mem(Vec<u8>),
}

#[derive(Debug, Clone)]
enum Kind {
    Dir,
    File(Data),
    Symlink(PathBuf),
    /// A hard link to another entry's path (relative to the layer root).
    Hardlink(PathBuf),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

#[derive(Debug, Clone)]
struct Entry {
    kind: Kind,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    /// Extended attributes, sorted by name, written as `SCHILY.xattr.<name>` PAX records.
    xattrs: Vec<(String, Vec<u8>)>,
}

/// The extended attributes an image keeps from a directory: `security.capability` only,
/// as Docker's archive package does (SELinux labels and the like are host state).
const KEPT_XATTRS: &[&str] = &["security.capability"];

fn read_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut out = Vec::new();
    for name in KEPT_XATTRS {
        let size = match rustix::fs::lgetxattr_query(path, *name) {
            Ok(n) => n,
            Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => continue,
            Err(e) => return Err(Error::io("read extended attributes of", path, e.into())),
        };
        let mut buf = vec![0u8; size];
        let n = rustix::fs::lgetxattr(path, *name, &mut buf[..])
            .map_err(|e| Error::io("read extended attributes of", path, e.into()))?;
        buf.truncate(n);
        out.push((name.to_string(), buf));
    }
    Ok(out)
}

/// A finished layer: the uncompressed tar, its gzip, and both digests.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The uncompressed tar stream.
    pub tar: Vec<u8>,
    /// The gzip-compressed tar (the blob pushed/stored in OCI layouts).
    pub gzip: Vec<u8>,
    /// `sha256:<hex>` of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
    /// `sha256:<hex>` of the gzip blob.
    pub digest: String,
}

impl Layer {
    /// Build a layer from the contents of the directory `root` (not following symlinks).
    pub fn from_dir(root: &Path, source_date_epoch: Option<i64>) -> Result<Layer, Error> {
        let entries = collect_dir(root)?;
        Layer::from_entries(entries, source_date_epoch)
    }

    /// Build a layer from an existing tarball (plain or gzip-compressed, detected from the
    /// magic bytes), normalising it: sorted entries, clamped mtimes, leading `./` and `/`
    /// stripped, hard links re-pointed at the first member in sorted order.
    pub fn from_tarball(path: &Path, source_date_epoch: Option<i64>) -> Result<Layer, Error> {
        let entries = collect_tarball(path)?;
        Layer::from_entries(entries, source_date_epoch)
    }

    /// Build a layer from a directory or a tarball, whichever `path` is.
    pub fn from_path(path: &Path, source_date_epoch: Option<i64>) -> Result<Layer, Error> {
        let meta = fs::metadata(path).map_err(|e| Error::io("stat rootfs", path, e))?;
        if meta.is_dir() {
            Layer::from_dir(path, source_date_epoch)
        } else {
            Layer::from_tarball(path, source_date_epoch)
        }
    }

    fn from_entries(
        entries: BTreeMap<Vec<u8>, Entry>,
        source_date_epoch: Option<i64>,
    ) -> Result<Layer, Error> {
        let tar = write_tar(entries, source_date_epoch)?;
        let gzip = gzip(&tar)?;
        Ok(Layer {
            diff_id: sha256_digest(&tar),
            digest: sha256_digest(&gzip),
            tar,
            gzip,
        })
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Gzip with a fixed header (mtime 0, no file name), so equal input gives equal output.
pub(crate) fn gzip(data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut enc = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(data.len() / 2 + 64),
        flate2::Compression::default(),
    );
    io::Write::write_all(&mut enc, data).map_err(Error::Compress)?;
    enc.finish().map_err(Error::Compress)
}

fn collect_dir(root: &Path) -> Result<BTreeMap<Vec<u8>, Entry>, Error> {
    let mut out = BTreeMap::new();
    let mut walk: Vec<walkdir::DirEntry> = Vec::new();
    for item in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
        let item = item.map_err(|e| {
            let p = e.path().unwrap_or(root).to_path_buf();
            let source = e
                .into_io_error()
                .unwrap_or_else(|| io::Error::other("filesystem loop"));
            Error::io("walk rootfs", &p, source)
        })?;
        walk.push(item);
    }
    // Sorted by full path bytes, so the first member of a hard-link group is stable.
    walk.sort_by(|a, b| {
        a.path()
            .as_os_str()
            .as_bytes()
            .cmp(b.path().as_os_str().as_bytes())
    });
    let mut seen_inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for item in walk {
        let path = item.path();
        let rel = path
            .strip_prefix(root)
            .expect("walkdir yields paths under its root")
            .to_path_buf();
        let meta = fs::symlink_metadata(path).map_err(|e| Error::io("stat", path, e))?;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(fs::read_link(path).map_err(|e| Error::io("read link", path, e))?)
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                match seen_inodes.get(&(meta.dev(), meta.ino())) {
                    Some(first) => Kind::Hardlink(first.clone()),
                    None => {
                        seen_inodes.insert((meta.dev(), meta.ino()), rel.clone());
                        Kind::File(Data::Disk(path.to_path_buf()))
                    }
                }
            } else {
                Kind::File(Data::Disk(path.to_path_buf()))
            }
        } else if ft.is_char_device() {
            Kind::Char(major(meta.rdev()), minor(meta.rdev()))
        } else if ft.is_block_device() {
            Kind::Block(major(meta.rdev()), minor(meta.rdev()))
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            // Sockets cannot be stored in a tar stream; docker build skips them too.
            continue;
        };
        let xattrs = match kind {
            Kind::Hardlink(_) => Vec::new(),
            _ => read_xattrs(path)?,
        };
        out.insert(
            rel.as_os_str().as_bytes().to_vec(),
            Entry {
                kind,
                mode: meta.mode() & 0o7777,
                uid: u64::from(meta.uid()),
                gid: u64::from(meta.gid()),
                mtime: u64::try_from(meta.mtime()).unwrap_or(0),
                xattrs,
            },
        );
    }
    Ok(out)
}

fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as u32
}

fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as u32
}

/// Normalise a path from a tarball: strip `./` and `/`, refuse `..`. Returns None for the
/// root itself.
fn normalise(p: &Path) -> Result<Option<PathBuf>, Error> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::UnsafePath(p.to_path_buf()));
            }
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

fn collect_tarball(path: &Path) -> Result<BTreeMap<Vec<u8>, Entry>, Error> {
    let mut file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut magic = [0u8; 2];
    let n = file
        .read(&mut magic)
        .map_err(|e| Error::io("read", path, e))?;
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let bad = |e: io::Error| Error::io("read tarball", path, e);
    let mut archive = tar::Archive::new(reader);
    let mut out = BTreeMap::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let entry_path = entry.path().map_err(bad)?.into_owned();
        let Some(rel) = normalise(&entry_path)? else {
            continue;
        };
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions().map_err(bad)? {
            for ext in exts {
                let ext = ext.map_err(bad)?;
                if let Ok(key) = ext.key()
                    && let Some(name) = key.strip_prefix("SCHILY.xattr.")
                {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        xattrs.sort();
        let h = entry.header();
        let mode = h.mode().map_err(bad)? & 0o7777;
        let uid = h.uid().map_err(bad)?;
        let gid = h.gid().map_err(bad)?;
        let mtime = h.mtime().map_err(bad)?;
        let et = h.entry_type();
        let link = || -> Result<PathBuf, Error> {
            entry
                .link_name()
                .map_err(bad)?
                .map(|l| l.into_owned())
                .ok_or_else(|| Error::BadTarEntry(entry_path.clone(), "link without a target"))
        };
        let kind = match et {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(link()?),
            tar::EntryType::Link => match normalise(&link()?)? {
                Some(t) => Kind::Hardlink(t),
                None => return Err(Error::BadTarEntry(entry_path, "hard link to the root")),
            },
            tar::EntryType::Char | tar::EntryType::Block => {
                let maj = h.device_major().map_err(bad)?.unwrap_or(0);
                let min = h.device_minor().map_err(bad)?.unwrap_or(0);
                if et == tar::EntryType::Char {
                    Kind::Char(maj, min)
                } else {
                    Kind::Block(maj, min)
                }
            }
            tar::EntryType::Fifo => Kind::Fifo,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(bad)?;
                Kind::File(Data::Mem(data))
            }
            // PAX/GNU extension headers are consumed by the tar crate; anything else is
            // something we cannot represent faithfully.
            _ => return Err(Error::BadTarEntry(entry_path, "unsupported entry type")),
        };
        // Later entries win, as when the tarball is extracted.
        out.insert(
            rel.as_os_str().as_bytes().to_vec(),
            Entry {
                kind,
                mode,
                uid,
                gid,
                mtime,
                xattrs,
            },
        );
    }
    Ok(out)
}

fn write_tar(
    mut entries: BTreeMap<Vec<u8>, Entry>,
    source_date_epoch: Option<i64>,
) -> Result<Vec<u8>, Error> {
    // Hard-link groups: every member of a group points (possibly through a chain) at a
    // regular file. The first member in sorted order carries the data; the others link to
    // it, so an extractor always meets the data before a link to it.
    let mut group_first: HashMap<Vec<u8>, Vec<u8>> = HashMap::new(); // root -> first member
    let keys: Vec<Vec<u8>> = entries.keys().cloned().collect();
    let mut root_of: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for k in &keys {
        if let Kind::Hardlink(_) = entries[k].kind {
            let mut cur = k.clone();
            let mut hops = 0;
            while let Some(Entry {
                kind: Kind::Hardlink(t),
                ..
            }) = entries.get(&cur)
            {
                cur = t.as_os_str().as_bytes().to_vec();
                hops += 1;
                if hops > keys.len() {
                    return Err(Error::BadTarEntry(bytes_path(k), "hard link loop"));
                }
            }
            match entries.get(&cur) {
                Some(Entry {
                    kind: Kind::File(_),
                    ..
                }) => {}
                _ => {
                    return Err(Error::BadTarEntry(
                        bytes_path(k),
                        "hard link to a missing regular file",
                    ));
                }
            }
            root_of.insert(k.clone(), cur.clone());
            let first = group_first
                .entry(cur.clone())
                .or_insert_with(|| cur.clone());
            if k < first {
                *first = k.clone();
            }
        }
    }
    // Move the data to the first member where it is not the root.
    for (root, first) in &group_first {
        if root != first {
            let data_entry = entries[root].clone();
            let link_meta = entries[first].clone();
            entries.insert(
                first.clone(),
                Entry {
                    kind: data_entry.kind.clone(),
                    xattrs: data_entry.xattrs.clone(),
                    ..link_meta
                },
            );
            entries.insert(
                root.clone(),
                Entry {
                    kind: Kind::Hardlink(bytes_path(first)),
                    xattrs: Vec::new(),
                    ..data_entry
                },
            );
        }
    }
    for (k, root) in &root_of {
        let first = &group_first[root];
        if k != first
            && let Some(e) = entries.get_mut(k)
        {
            e.kind = Kind::Hardlink(bytes_path(first));
        }
    }

    let clamp = |mtime: u64| match source_date_epoch {
        Some(epoch) => mtime.min(u64::try_from(epoch).unwrap_or(0)),
        None => mtime,
    };
    let mut builder = tar::Builder::new(Vec::new());
    for (k, e) in entries {
        let path = bytes_path(&k);
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(clamp(e.mtime));
        h.set_size(0);
        let terr = |err: io::Error| Error::io("write tar entry", &path, err);
        if !e.xattrs.is_empty() {
            let records: Vec<(String, &[u8])> = e
                .xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                .collect();
            builder
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(terr)?;
        }
        match e.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                builder
                    .append_data(&mut h, &path, io::empty())
                    .map_err(terr)?;
            }
            Kind::File(Data::Disk(src)) => {
                let f = File::open(&src).map_err(|err| Error::io("open", &src, err))?;
                let len = f
                    .metadata()
                    .map_err(|err| Error::io("stat", &src, err))?
                    .len();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(len);
                // take(len): a file that grows while we read cannot corrupt the stream.
                builder
                    .append_data(&mut h, &path, f.take(len))
                    .map_err(terr)?;
            }
            Kind::File(Data::Mem(data)) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                builder
                    .append_data(&mut h, &path, data.as_slice())
                    .map_err(terr)?;
            }
            Kind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut h, &path, &target).map_err(terr)?;
            }
            Kind::Hardlink(target) => {
                h.set_entry_type(tar::EntryType::Link);
                builder.append_link(&mut h, &path, &target).map_err(terr)?;
            }
            Kind::Char(maj, min) | Kind::Block(maj, min) => {
                h.set_entry_type(if matches!(e.kind, Kind::Char(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                h.set_device_major(maj).map_err(terr)?;
                h.set_device_minor(min).map_err(terr)?;
                builder
                    .append_data(&mut h, &path, io::empty())
                    .map_err(terr)?;
            }
            Kind::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                builder
                    .append_data(&mut h, &path, io::empty())
                    .map_err(terr)?;
            }
        }
    }
    builder
        .into_inner()
        .map_err(|e| Error::io("finish tar", Path::new("<layer>"), e))
}

fn bytes_path(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}
