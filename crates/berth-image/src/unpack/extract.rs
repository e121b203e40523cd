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

/// What the kernel gives a new entry in a directory: its group when the directory is
/// setgid (and setgid itself to a new subdirectory).
#[derive(Debug, Clone, Copy)]
pub(super) struct DirInfo {
    setgid: bool,
    gid: u32,
}

impl DirInfo {
    fn of(fd: BorrowedFd<'_>) -> rustix::io::Result<DirInfo> {
        let st = rustix::fs::fstat(fd)?;
        Ok(DirInfo {
            setgid: st.st_mode & 0o2000 != 0,
            gid: st.st_gid,
        })
    }
}

/// One open directory of the path from the layer root to the last entry's parent.
struct Level {
    name: String,
    fd: Rc<OwnedFd>,
    info: DirInfo,
}

/// Who creates the entries, and the umask they are created under: when an entry's owner
/// and mode are what creating it gives anyway, no chown or chmod is needed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Creds {
    uid: u32,
    gid: u32,
    /// `None` when unknown: every mode is then set explicitly.
    umask: Option<u32>,
}

impl Creds {
    /// This process's effective ids and umask (read from `/proc/self/status`: asking
    /// `umask(2)` would change it for every thread for a moment).
    pub(super) fn current() -> Creds {
        let umask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            });
        Creds {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            umask,
        }
    }
}

/// What [`Extractor::apply_meta`] sets an entry's metadata on.
enum Target<'a> {
    /// An open file or directory.
    Fd(BorrowedFd<'a>),
    /// `name` in a directory, not followed; its type as created.
    At(BorrowedFd<'a>, &'a str, FileType),
}

pub(super) struct Extractor<'a> {
    pub(super) root: BorrowedFd<'a>,
    pub(super) content_bytes: u64,
    pub(super) dir_times: Vec<(PathBuf, Timespec)>,
    /// The copy buffer for file contents, reused for every file.
    pub(super) buf: Vec<u8>,
    /// The directories from the root down to the previous entry's parent, open: a tar
    /// lists a tree depth first, so most entries find their parent here, or below a
    /// directory here, instead of resolving their whole path again. Each level was opened
    /// from the one above without following symlinks, so it is a real directory of the
    /// layer. Emptied whenever an entry removes something that was there, so a replaced
    /// directory is never written through.
    stack: Vec<Level>,
    /// The root as an owned fd, the parent of top-level entries.
    root_dir: Rc<OwnedFd>,
    root_info: DirInfo,
    creds: Creds,
    /// A default ACL decides new entries' modes instead of the umask: set when the root
    /// has one or an entry sets one; every mode is then set explicitly.
    default_acl: bool,
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

impl<'a> Extractor<'a> {
    /// An extractor into the (empty) layer directory `root`.
    pub(super) fn new(root: BorrowedFd<'a>, creds: Creds) -> Result<Self, UnpackError> {
        let dest = |e: rustix::io::Errno| UnpackError::Io {
            op: "open layer root",
            entry: ".".to_owned(),
            source: e.into(),
        };
        let root_dir = rustix::fs::openat2(
            root,
            ".",
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH,
        )
        .map_err(dest)?;
        let root_info = DirInfo::of(root).map_err(dest)?;
        // Any answer but "no such attribute" (ENODATA) counts as a default ACL, except a
        // file system without ACLs at all.
        let default_acl = !matches!(
            rustix::fs::fgetxattr(root, "system.posix_acl_default", &mut [0u8; 0][..]),
            Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP)
        );
        Ok(Extractor {
            root,
            content_bytes: 0,
            dir_times: Vec::new(),
            buf: vec![0u8; super::CHUNK],
            stack: Vec::new(),
            root_dir: Rc::new(root_dir),
            root_info,
            creds,
            default_acl,
        })
    }

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

    /// The parent directory of an entry and what new entries in it get: from the open
    /// directories of the previous entry's path as far as they match, then opened (and
    /// created when missing) one level at a time without following symlinks. A parent
    /// reached through a symlink of the layer is resolved from the root instead (beneath
    /// it) and not kept.
    fn parent_fd(
        &mut self,
        parts: &[String],
        entry: &str,
    ) -> Result<(Rc<OwnedFd>, DirInfo), UnpackError> {
        let mut k = 0;
        while k < self.stack.len() && k < parts.len() && self.stack[k].name == parts[k] {
            k += 1;
        }
        self.stack.truncate(k);
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        for part in &parts[k..] {
            let parent = match self.stack.last() {
                Some(l) => l.fd.clone(),
                None => self.root_dir.clone(),
            };
            let mut opened =
                rustix::fs::openat2(&*parent, part.as_str(), flags, Mode::empty(), resolve);
            if let Err(rustix::io::Errno::NOENT) = opened {
                match rustix::fs::mkdirat(&*parent, part.as_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(io_err("mkdir parent", entry)(e)),
                }
                opened =
                    rustix::fs::openat2(&*parent, part.as_str(), flags, Mode::empty(), resolve);
            }
            match opened {
                Ok(fd) => {
                    let info = DirInfo::of(fd.as_fd()).map_err(io_err("stat parent", entry))?;
                    self.stack.push(Level {
                        name: part.clone(),
                        fd: Rc::new(fd),
                        info,
                    });
                }
                Err(_) => {
                    // A symlink (or not a directory): the full, beneath-the-root rules
                    // decide, and their error names what is wrong.
                    let fd = self.open_parent(parts, entry)?;
                    let info = DirInfo::of(fd.as_fd()).map_err(io_err("stat parent", entry))?;
                    return Ok((Rc::new(fd), info));
                }
            }
        }
        Ok(match self.stack.last() {
            Some(l) => (l.fd.clone(), l.info),
            None => (self.root_dir.clone(), self.root_info),
        })
    }

    /// The mode to create an entry with so that no chmod is needed, if there is one: no
    /// special bits, none the umask takes away, no default ACL, and (`inherits`) no setgid
    /// inherited from a parent.
    fn exact_mode(&self, mode: u32, inherits: bool) -> Option<u32> {
        let umask = self.creds.umask?;
        (!self.default_acl && !inherits && mode & 0o7000 == 0 && mode & umask == 0).then_some(mode)
    }

    /// Whether an entry created in a directory described by `parent` needs a chown to get
    /// the owner `meta` gives it.
    fn needs_chown(&self, parent: DirInfo, meta: &Meta) -> bool {
        let gid = if parent.setgid {
            parent.gid
        } else {
            self.creds.gid
        };
        meta.uid != self.creds.uid || meta.gid != gid
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
                // what is removed may be a cached parent or one of its ancestors
                self.stack.clear();
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
                self.apply_meta(Target::Fd(self.root), &meta, &name_str, true, true)?;
                self.root_info = DirInfo {
                    setgid: meta.mode & 0o2000 != 0,
                    gid: meta.gid,
                };
                self.dir_times.push((PathBuf::new(), meta.mtime));
            }
            return Ok(());
        };
        let (parent, pinfo) = self.parent_fd(&parts, &name_str)?;
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
                let exact = self.exact_mode(meta.mode, false);
                let chown = self.needs_chown(pinfo, &meta);
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
                            Mode::from_raw_mode(exact.unwrap_or(0o600)),
                        )
                    })?;
                // clear keeps an existing directory only for a directory entry
                let fd = fd.ok_or_else(|| UnpackError::Io {
                    op: "create file",
                    entry: name_str.clone(),
                    source: io::Error::from(io::ErrorKind::IsADirectory),
                })?;
                let mut file = std::fs::File::from(fd);
                let (mut written, mut kicked) = (0u64, 0u64);
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
                    written += n as u64;
                    if written - kicked >= WRITEBACK_STEP {
                        start_writeback(&file, kicked, written);
                        kicked = written;
                    }
                }
                if written - kicked >= WRITEBACK_TAIL {
                    start_writeback(&file, kicked, written);
                }
                self.apply_meta(
                    Target::Fd(file.as_fd()),
                    &meta,
                    &name_str,
                    chown,
                    exact.is_none(),
                )?;
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
                let exact = self.exact_mode(meta.mode, pinfo.setgid);
                let chown = self.needs_chown(pinfo, &meta);
                let created = self
                    .create_replacing(parent, &base, true, &name_str, "create directory", || {
                        rustix::fs::mkdirat(
                            parent,
                            base.as_str(),
                            Mode::from_raw_mode(exact.unwrap_or(0o700)),
                        )
                    })?
                    .is_some();
                let dir = rustix::fs::openat2(
                    parent,
                    base.as_str(),
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                )
                .map_err(io_err("open directory", &name_str))?;
                // A directory that was there already gets everything set.
                self.apply_meta(
                    Target::Fd(dir.as_fd()),
                    &meta,
                    &name_str,
                    chown || !created,
                    exact.is_none() || !created,
                )?;
                let mut rel: PathBuf = parts.iter().collect();
                rel.push(&base);
                self.dir_times.push((rel, meta.mtime));
                // Its entries usually follow: it becomes the deepest open level, when the
                // levels are its parent's path (not when that was reached through a symlink).
                if self.stack.len() == parts.len()
                    && self.stack.iter().zip(&parts).all(|(l, p)| l.name == *p)
                {
                    self.stack.push(Level {
                        name: base.clone(),
                        fd: Rc::new(dir),
                        info: DirInfo {
                            setgid: meta.mode & 0o2000 != 0,
                            gid: meta.gid,
                        },
                    });
                }
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
                let chown = self.needs_chown(pinfo, &meta);
                self.apply_meta(
                    Target::At(parent, &base, FileType::Symlink),
                    &meta,
                    &name_str,
                    chown,
                    false,
                )?;
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
                self.apply_meta(Target::At(parent, &base, ft), &meta, &name_str, true, true)?;
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

    /// Sets owner (with `chown`), mode (with `chmod`; never on a symlink) and xattrs.
    fn apply_meta(
        &mut self,
        target: Target<'_>,
        meta: &Meta,
        entry: &str,
        chown: bool,
        chmod: bool,
    ) -> Result<(), UnpackError> {
        let uid = Some(Uid::from_raw(meta.uid));
        let gid = Some(Gid::from_raw(meta.gid));
        if meta
            .xattrs
            .iter()
            .any(|(k, _)| k == "system.posix_acl_default")
        {
            self.default_acl = true;
        }
        // chown first: it clears setuid/setgid and security.capability.
        match target {
            Target::Fd(fd) => {
                if chown {
                    rustix::fs::fchown(fd, uid, gid).map_err(io_err("chown", entry))?;
                }
                if chmod {
                    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))
                        .map_err(io_err("chmod", entry))?;
                }
                for (k, v) in &meta.xattrs {
                    rustix::fs::fsetxattr(fd, k.as_str(), v, XattrFlags::empty())
                        .map_err(io_err("set xattr", entry))?;
                }
            }
            Target::At(dir, name, kind) => {
                if chown {
                    rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(io_err("chown", entry))?;
                }
                let is_link = kind == FileType::Symlink;
                if chmod && !is_link {
                    rustix::fs::chmodat(
                        dir,
                        name,
                        Mode::from_raw_mode(meta.mode),
                        AtFlags::empty(),
                    )
                    .map_err(io_err("chmod", entry))?;
                }
                for (k, v) in &meta.xattrs {
                    // The kernel refuses user.* on symlinks and devices (EPERM); Docker skips them too.
                    if k.starts_with("user.") && kind != FileType::RegularFile {
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

/// Bytes of one file written between two writeback starts (see [`start_writeback`]).
const WRITEBACK_STEP: u64 = 4 << 20;
/// The least a file's last part must hold to have its writeback started at once; smaller
/// files are left to the layer's syncfs.
const WRITEBACK_TAIL: u64 = 256 << 10;

/// Starts writing `from..to` of `file` out without waiting: the layer's syncfs at commit
/// then finds most of a large layer on disk already instead of writing it all at the end.
/// `POSIX_FADV_DONTNEED` starts writeback of dirty pages and drops only the clean ones,
/// and just-written pages are dirty, so the page cache keeps them.
fn start_writeback(file: &std::fs::File, from: u64, to: u64) {
    let _ = rustix::fs::fadvise(
        file,
        from,
        std::num::NonZeroU64::new(to - from),
        rustix::fs::Advice::DontNeed,
    );
}
