//! The extractor: one tar entry at a time, placed relative to an fd of the layer root.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{
    AtFlags, Dev, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags,
};

use super::UnpackError;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// The metadata of one entry, with PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

pub(super) struct Extractor<'a> {
    pub(super) root: BorrowedFd<'a>,
    pub(super) content_bytes: u64,
    pub(super) dir_times: Vec<(PathBuf, Timespec)>,
    /// The copy buffer for file contents, reused for every file.
    pub(super) buf: Vec<u8>,
    /// The parent directory of the previous entry, by its components: a tar lists a
    /// directory's entries together, so most entries reuse it instead of resolving their
    /// path again (two syscalls and a path walk each). Dropped whenever an entry removes
    /// something that was there, so a replaced directory is never written through.
    pub(super) last_parent: Option<(Vec<String>, Rc<OwnedFd>)>,
}

fn display(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Splits a tar path into safe, normal components; refuses `..` and absolute paths.
pub(super) fn normalize(raw: &Path) -> Result<Vec<String>, UnpackError> {
    let entry = display(raw);
    let mut parts = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(s) => {
                let s = s.to_str().ok_or_else(|| UnpackError::BadHeader {
                    entry: entry.clone(),
                    reason: "path is not valid UTF-8".into(),
                })?;
                parts.push(s.to_owned());
            }
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(UnpackError::Escape {
                    entry,
                    reason: "path contains \"..\"",
                });
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(UnpackError::Escape {
                    entry,
                    reason: "path is absolute",
                });
            }
        }
    }
    Ok(parts)
}

pub(super) fn parse_pax_time(v: &str) -> Option<Timespec> {
    let (secs, frac) = match v.split_once('.') {
        Some((s, f)) => (s, f),
        None => (v, ""),
    };
    let tv_sec: i64 = secs.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let tv_nsec: i64 = if frac.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some(Timespec { tv_sec, tv_nsec })
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, UnpackError> {
    let bad = |reason: String| UnpackError::BadHeader {
        entry: name.to_owned(),
        reason,
    };
    let h = entry.header();
    // Go's archive/tar reads an empty numeric field (all NULs or spaces) as 0; so do we.
    let blank = |f: &[u8]| f.iter().all(|&b| b == 0 || b == b' ');
    let old = h.as_old();
    let num = |r: io::Result<u64>, field: &[u8], what: &str| match r {
        Ok(v) => Ok(v),
        Err(_) if blank(field) => Ok(0),
        Err(e) => Err(bad(format!("{what}: {e}"))),
    };
    let mode = num(h.mode().map(u64::from), &old.mode, "mode")? as u32 & 0o7777;
    let mut uid = u32::try_from(num(h.uid(), &old.uid, "uid")?)
        .map_err(|_| bad("uid out of range".into()))?;
    let mut gid = u32::try_from(num(h.gid(), &old.gid, "gid")?)
        .map_err(|_| bad("gid out of range".into()))?;
    let secs = num(h.mtime(), &old.mtime, "mtime")?;
    let mut mtime = Timespec {
        tv_sec: i64::try_from(secs).map_err(|_| bad("mtime out of range".into()))?,
        tv_nsec: 0,
    };
    let mut xattrs = Vec::new();
    if let Some(exts) = entry
        .pax_extensions()
        .map_err(|e| bad(format!("pax header: {e}")))?
    {
        for ext in exts {
            let ext = ext.map_err(|e| bad(format!("pax record: {e}")))?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
                xattrs.push((attr.to_owned(), value.to_vec()));
            } else if key == "uid" || key == "gid" {
                let v: u32 = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad(format!("pax {key} is not a number")))?;
                if key == "uid" {
                    uid = v;
                } else {
                    gid = v;
                }
            } else if key == "mtime" {
                mtime = std::str::from_utf8(value)
                    .ok()
                    .and_then(parse_pax_time)
                    .ok_or_else(|| bad("pax mtime is not a time".into()))?;
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

fn io_err<'a>(
    op: &'static str,
    entry: &'a str,
) -> impl FnOnce(rustix::io::Errno) -> UnpackError + 'a {
    move |e| UnpackError::Io {
        op,
        entry: entry.to_owned(),
        source: e.into(),
    }
}

fn proc_path(dir: BorrowedFd<'_>, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), name))
}

impl Extractor<'_> {
    pub(super) fn run<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
    ) -> Result<(), UnpackError> {
        let entries = archive.entries().map_err(UnpackError::Stream)?;
        for entry in entries {
            let mut entry = entry.map_err(UnpackError::Stream)?;
            self.extract(&mut entry)?;
        }
        Ok(())
    }

    /// Opens (creating missing directories) the parent directory of an entry,
    /// never leaving the layer root.
    fn open_parent(&self, parts: &[String], entry: &str) -> Result<OwnedFd, UnpackError> {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        let escape = |reason| UnpackError::Escape {
            entry: entry.to_owned(),
            reason,
        };
        let map = |e: rustix::io::Errno| match e {
            rustix::io::Errno::XDEV => escape("a parent is a symlink that leaves the layer"),
            rustix::io::Errno::LOOP => escape("too many symlinks in a parent"),
            rustix::io::Errno::NOTDIR => escape("a parent is not a directory"),
            other => UnpackError::Io {
                op: "open parent",
                entry: entry.to_owned(),
                source: other.into(),
            },
        };
        let joined = if parts.is_empty() {
            ".".to_owned()
        } else {
            parts.join("/")
        };
        match rustix::fs::openat2(self.root, joined.as_str(), flags, Mode::empty(), resolve) {
            Ok(fd) => return Ok(fd),
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(map(e)),
        }
        // Walk component by component, creating what is missing.
        let mut cur =
            rustix::fs::openat2(self.root, ".", flags, Mode::empty(), resolve).map_err(map)?;
        for part in parts {
            match rustix::fs::openat2(&cur, part.as_str(), flags, Mode::empty(), resolve) {
                Ok(fd) => cur = fd,
                Err(rustix::io::Errno::NOENT) => {
                    match rustix::fs::mkdirat(&cur, part.as_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(io_err("mkdir parent", entry)(e)),
                    }
                    cur = rustix::fs::openat2(&cur, part.as_str(), flags, Mode::empty(), resolve)
                        .map_err(map)?;
                }
                Err(e) => return Err(map(e)),
            }
        }
        Ok(cur)
    }

    /// The parent directory of an entry: the previous entry's when it is the same,
    /// else resolved (and created) beneath the root.
    fn parent_fd(&mut self, parts: &[String], entry: &str) -> Result<Rc<OwnedFd>, UnpackError> {
        if let Some((p, fd)) = &self.last_parent
            && p.as_slice() == parts
        {
            return Ok(fd.clone());
        }
        let fd = Rc::new(self.open_parent(parts, entry)?);
        self.last_parent = Some((parts.to_vec(), fd.clone()));
        Ok(fd)
    }

    /// Runs `create` for `name` in `dir`; when something is already there (EEXIST), clears
    /// it like [`Extractor::clear`] and runs `create` once more. `None` when an existing
    /// directory was kept for a directory entry. Creating first saves a stat per entry:
    /// layers rarely replace what they created.
    fn create_replacing<T>(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &str,
        new_is_dir: bool,
        entry: &str,
        op: &'static str,
        mut create: impl FnMut() -> rustix::io::Result<T>,
    ) -> Result<Option<T>, UnpackError> {
        match create() {
            Ok(v) => Ok(Some(v)),
            Err(rustix::io::Errno::EXIST) => {
                if self.clear(dir, name, new_is_dir, entry)? {
                    return Ok(None);
                }
                create().map(Some).map_err(io_err(op, entry))
            }
            Err(e) => Err(io_err(op, entry)(e)),
        }
    }

    /// Removes whatever sits at `name` in `dir` unless both it and the new entry are
    /// directories. Returns true when a directory is kept.
    fn clear(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &str,
        new_is_dir: bool,
        entry: &str,
    ) -> Result<bool, UnpackError> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(io_err("stat existing", entry)(e)),
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if is_dir && new_is_dir {
                    return Ok(true);
                }
                // what is removed may be the cached parent or one of its ancestors
                self.last_parent = None;
                if is_dir {
                    std::fs::remove_dir_all(proc_path(dir, name)).map_err(|source| {
                        UnpackError::Io {
                            op: "remove existing directory",
                            entry: entry.to_owned(),
                            source,
                        }
                    })?;
                } else {
                    rustix::fs::unlinkat(dir, name, AtFlags::empty())
                        .map_err(io_err("remove existing entry", entry))?;
                }
                Ok(false)
            }
        }
    }

    fn extract<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw_path = entry.path().map_err(UnpackError::Stream)?.into_owned();
        let name_str = display(&raw_path);
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader) {
            return Ok(());
        }
        let mut parts = normalize(&raw_path)?;
        let meta = read_meta(entry, &name_str)?;
        let Some(base) = parts.pop() else {
            // The layer root itself ("./"): take its metadata.
            if kind.is_dir() {
                self.apply_meta(self.root, ".", &meta, &name_str, true)?;
                self.dir_times.push((PathBuf::new(), meta.mtime));
            }
            return Ok(());
        };
        let parent = self.parent_fd(&parts, &name_str)?;
        let parent = parent.as_fd();

        if base == OPAQUE_MARKER {
            rustix::fs::fsetxattr(parent, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                .map_err(io_err("set trusted.overlay.opaque", &name_str))?;
            return Ok(());
        }
        if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty()
                || hidden == "."
                || hidden == ".."
                || hidden.starts_with(WHITEOUT_PREFIX)
            {
                return Err(UnpackError::BadHeader {
                    entry: name_str,
                    reason: "invalid whiteout name".into(),
                });
            }
            self.create_replacing(parent, hidden, false, &name_str, "create whiteout", || {
                rustix::fs::mknodat(
                    parent,
                    hidden,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
            })?;
            return Ok(());
        }

        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd =
                    self.create_replacing(parent, &base, false, &name_str, "create file", || {
                        rustix::fs::openat(
                            parent,
                            base.as_str(),
                            OFlags::CREATE
                                | OFlags::EXCL
                                | OFlags::WRONLY
                                | OFlags::NOFOLLOW
                                | OFlags::CLOEXEC,
                            Mode::from_raw_mode(0o600),
                        )
                    })?;
                // clear keeps an existing directory only for a directory entry
                let fd = fd.ok_or_else(|| UnpackError::Io {
                    op: "create file",
                    entry: name_str.clone(),
                    source: io::Error::from(io::ErrorKind::IsADirectory),
                })?;
                let mut file = std::fs::File::from(fd);
                loop {
                    let n = match entry.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(UnpackError::Stream(e)),
                    };
                    file.write_all(&self.buf[..n])
                        .map_err(|source| UnpackError::Io {
                            op: "write file",
                            entry: name_str.clone(),
                            source,
                        })?;
                    self.content_bytes += n as u64;
                }
                self.apply_meta(file.as_fd(), ".", &meta, &name_str, true)?;
                rustix::fs::futimens(
                    &file,
                    &Timestamps {
                        last_access: meta.mtime,
                        last_modification: meta.mtime,
                    },
                )
                .map_err(io_err("set mtime", &name_str))?;
            }
            tar::EntryType::Directory => {
                self.create_replacing(parent, &base, true, &name_str, "create directory", || {
                    rustix::fs::mkdirat(parent, base.as_str(), Mode::from_raw_mode(0o700))
                })?;
                let dir = rustix::fs::openat2(
                    parent,
                    base.as_str(),
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                )
                .map_err(io_err("open directory", &name_str))?;
                self.apply_meta(dir.as_fd(), ".", &meta, &name_str, true)?;
                let mut rel: PathBuf = parts.iter().collect();
                rel.push(&base);
                self.dir_times.push((rel, meta.mtime));
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Stream)?
                    .ok_or_else(|| UnpackError::BadHeader {
                        entry: name_str.clone(),
                        reason: "symlink without a target".into(),
                    })?
                    .into_owned();
                self.create_replacing(parent, &base, false, &name_str, "create symlink", || {
                    rustix::fs::symlinkat(target.as_path(), parent, base.as_str())
                })?;
                self.apply_meta(parent, &base, &meta, &name_str, false)?;
                rustix::fs::utimensat(
                    parent,
                    base.as_str(),
                    &Timestamps {
                        last_access: meta.mtime,
                        last_modification: meta.mtime,
                    },
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(io_err("set symlink mtime", &name_str))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Stream)?
                    .ok_or_else(|| UnpackError::BadHeader {
                        entry: name_str.clone(),
                        reason: "hard link without a target".into(),
                    })?
                    .into_owned();
                let target_str = display(&target);
                let link_err = |source: io::Error| UnpackError::HardLinkTarget {
                    entry: name_str.clone(),
                    target: target_str.clone(),
                    source,
                };
                let mut tparts = normalize(&target).map_err(|_| {
                    link_err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "target leaves the layer",
                    ))
                })?;
                let Some(tbase) = tparts.pop() else {
                    return Err(link_err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "target is the layer root",
                    )));
                };
                let tparent = self.open_parent_existing(&tparts).map_err(link_err)?;
                if tparts == parts && tbase == base {
                    return Ok(());
                }
                let linked = rustix::fs::linkat(
                    &tparent,
                    tbase.as_str(),
                    parent,
                    base.as_str(),
                    AtFlags::empty(),
                );
                if let Err(rustix::io::Errno::EXIST) = linked {
                    self.clear(parent, &base, false, &name_str)?;
                    rustix::fs::linkat(
                        &tparent,
                        tbase.as_str(),
                        parent,
                        base.as_str(),
                        AtFlags::empty(),
                    )
                    .map_err(|e| link_err(e.into()))?;
                } else {
                    linked.map_err(|e| link_err(e.into()))?;
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let h = entry.header();
                let bad = |what: &str, e: io::Error| UnpackError::BadHeader {
                    entry: name_str.clone(),
                    reason: format!("{what}: {e}"),
                };
                let major = h
                    .device_major()
                    .map_err(|e| bad("device major", e))?
                    .unwrap_or(0);
                let minor = h
                    .device_minor()
                    .map_err(|e| bad("device minor", e))?
                    .unwrap_or(0);
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev: Dev = rustix::fs::makedev(major, minor);
                self.create_replacing(
                    parent,
                    &base,
                    false,
                    &name_str,
                    "create device node",
                    || {
                        rustix::fs::mknodat(
                            parent,
                            base.as_str(),
                            ft,
                            Mode::from_raw_mode(0o600),
                            dev,
                        )
                    },
                )?;
                self.apply_meta(parent, &base, &meta, &name_str, false)?;
                rustix::fs::utimensat(
                    parent,
                    base.as_str(),
                    &Timestamps {
                        last_access: meta.mtime,
                        last_modification: meta.mtime,
                    },
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(io_err("set mtime", &name_str))?;
            }
            other => {
                return Err(UnpackError::UnsupportedEntry {
                    entry: name_str,
                    kind: format!("{other:?}"),
                });
            }
        }
        Ok(())
    }

    /// Opens an existing directory of the layer (no creation) for hard-link targets.
    fn open_parent_existing(&self, parts: &[String]) -> Result<OwnedFd, io::Error> {
        let joined = if parts.is_empty() {
            ".".to_owned()
        } else {
            parts.join("/")
        };
        rustix::fs::openat2(
            self.root,
            joined.as_str(),
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(io::Error::from)
    }

    /// Sets owner, mode and xattrs. With `is_fd` the object is `dir` itself (name "."),
    /// otherwise it is `name` inside `dir` and is not followed.
    fn apply_meta(
        &self,
        dir: BorrowedFd<'_>,
        name: &str,
        meta: &Meta,
        entry: &str,
        is_fd: bool,
    ) -> Result<(), UnpackError> {
        let uid = Some(Uid::from_raw(meta.uid));
        let gid = Some(Gid::from_raw(meta.gid));
        // chown first: it clears setuid/setgid and security.capability.
        if is_fd {
            rustix::fs::fchown(dir, uid, gid).map_err(io_err("chown", entry))?;
            rustix::fs::fchmod(dir, Mode::from_raw_mode(meta.mode))
                .map_err(io_err("chmod", entry))?;
            for (k, v) in &meta.xattrs {
                rustix::fs::fsetxattr(dir, k.as_str(), v, XattrFlags::empty())
                    .map_err(io_err("set xattr", entry))?;
            }
        } else {
            rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err("chown", entry))?;
            let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err("stat", entry))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                rustix::fs::chmodat(dir, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())
                    .map_err(io_err("chmod", entry))?;
            }
            let is_link = FileType::from_raw_mode(st.st_mode) == FileType::Symlink;
            for (k, v) in &meta.xattrs {
                // The kernel refuses user.* on symlinks and devices (EPERM); Docker skips them too.
                if k.starts_with("user.")
                    && FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
                {
                    tracing::debug!(entry, xattr = %k, "skipping user xattr on a non-regular file");
                    continue;
                }
                match rustix::fs::lsetxattr(
                    proc_path(dir, name),
                    k.as_str(),
                    v,
                    XattrFlags::empty(),
                ) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::NOTSUP) if is_link => {
                        tracing::debug!(entry, xattr = %k, "file system has no xattrs on symlinks");
                    }
                    Err(e) => return Err(io_err("set xattr", entry)(e)),
                }
            }
        }
        Ok(())
    }

    /// Sets directory mtimes last (children change them while being created).
    pub(super) fn finish(&mut self) -> Result<(), UnpackError> {
        for (rel, mtime) in self.dir_times.iter().rev() {
            let path = if rel.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                rel.clone()
            };
            let entry = display(&path);
            let fd = match rustix::fs::openat2(
                self.root,
                &path,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            ) {
                Ok(fd) => fd,
                // Replaced by a later entry of another type: nothing to stamp.
                Err(
                    rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP,
                ) => continue,
                Err(e) => return Err(io_err("open directory for mtime", &entry)(e)),
            };
            rustix::fs::futimens(
                &fd,
                &Timestamps {
                    last_access: *mtime,
                    last_modification: *mtime,
                },
            )
            .map_err(io_err("set directory mtime", &entry))?;
        }
        Ok(())
    }
}
