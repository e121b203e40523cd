//! Builders for test layers: tar streams written entry by entry, including hostile
//! entries that `tar::Builder`'s own checks would refuse.
#![allow(dead_code)]

use std::io::Write;

use tar::{EntryType, Header};

/// Builds a tar stream in memory.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

pub fn header(path: &str, kind: EntryType, size: u64, mode: u32) -> Header {
    let mut h = Header::new_gnu();
    // Write the name raw: set_path refuses "..", absolute paths and the like.
    let bytes = path.as_bytes();
    assert!(bytes.len() < 100, "test path too long");
    h.as_mut_bytes()[..bytes.len()].copy_from_slice(bytes);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h
}

impl Layer {
    pub fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = header(path, EntryType::Directory, 0, mode);
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn file(self, path: &str, data: &[u8]) -> Self {
        self.file_full(path, data, 0o644, 0, 0, 1_600_000_000)
    }

    pub fn file_full(
        mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
    ) -> Self {
        let mut h = header(path, EntryType::Regular, data.len() as u64, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn dir_with_mtime(mut self, path: &str, mode: u32, mtime: u64) -> Self {
        let mut h = header(path, EntryType::Directory, 0, mode);
        h.set_mtime(mtime);
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn dir_full(mut self, path: &str, mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = header(path, EntryType::Directory, 0, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    /// A directory preceded by a PAX header carrying xattrs.
    pub fn dir_with_xattrs(mut self, path: &str, mode: u32, xattrs: &[(&str, &[u8])]) -> Self {
        let keys: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.b
            .append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        let mut h = header(path, EntryType::Directory, 0, mode);
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn symlink_owned(mut self, path: &str, target: &str, uid: u64, gid: u64) -> Self {
        let mut h = header(path, EntryType::Symlink, 0, 0o777);
        h.set_link_name_literal(target).unwrap();
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(path, EntryType::Symlink, 0, 0o777);
        h.set_link_name_literal(target).unwrap();
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(path, EntryType::Link, 0, 0o644);
        h.set_link_name_literal(target).unwrap();
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn device(mut self, path: &str, kind: EntryType, major: u32, minor: u32) -> Self {
        let mut h = header(path, kind, 0, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    /// A file preceded by a PAX header carrying xattrs.
    pub fn file_with_xattrs(mut self, path: &str, data: &[u8], xattrs: &[(&str, &[u8])]) -> Self {
        let keys: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.b
            .append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        let mut h = header(path, EntryType::Regular, data.len() as u64, 0o755);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn tar(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }

    pub fn gzip(self) -> Vec<u8> {
        gzip(&self.tar())
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// A listing of a directory tree (relative path, file type, size) for "unchanged" checks.
pub fn snapshot(dir: &std::path::Path) -> Vec<(String, bool, u64)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let m = e.path().symlink_metadata().unwrap();
        out.push((
            e.path().strip_prefix(dir).unwrap().display().to_string(),
            m.is_dir(),
            if m.is_file() { m.len() } else { 0 },
        ));
    }
    out
}
