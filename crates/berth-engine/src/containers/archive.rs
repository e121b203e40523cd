//! `cp`: `HEAD|GET|PUT /containers/{id}/archive?path=`. Every path is resolved inside
//! the container's root with `openat2(RESOLVE_IN_ROOT)`, and trees are walked and
//! written through directory fds with `O_NOFOLLOW`, so a symlink (even one swapped in
//! while we work, the CVE-2018-15664 race) can never lead out of the container.
//!
//! The root is `/proc/<pid>/root` for a running container (its mounts included) and,
//! for a stopped one, the overlay rootfs or the source of the volume/bind mounted at
//! the path.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use berth_types::mounts::{MountKind, clean_path};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps};
use serde_json::json;

use super::{Record, Status};
use crate::{Engine, EngineError};

/// What `X-Docker-Container-Path-Stat` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    /// The base name.
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// Go's `os.FileMode` bits.
    pub mode: u32,
    /// RFC 3339.
    pub mtime: String,
    /// For a symlink: the absolute path it points to (in the container).
    pub link_target: String,
}

impl PathStat {
    /// The JSON the header carries (base64-encoded by the API).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "size": self.size,
            "mode": self.mode,
            "mtime": self.mtime,
            "linkTarget": self.link_target,
        })
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & GO_DIR != 0
    }
}

const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_DEVICE: u32 = 1 << 26;
const GO_PIPE: u32 = 1 << 25;
const GO_SOCKET: u32 = 1 << 24;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_CHARDEV: u32 = 1 << 21;
const GO_STICKY: u32 = 1 << 20;

/// Unix `st_mode` → Go's `os.FileMode`.
pub fn go_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    match FileType::from_raw_mode(st_mode) {
        FileType::Directory => m |= GO_DIR,
        FileType::Symlink => m |= GO_SYMLINK,
        FileType::Fifo => m |= GO_PIPE,
        FileType::Socket => m |= GO_SOCKET,
        FileType::CharacterDevice => m |= GO_DEVICE | GO_CHARDEV,
        FileType::BlockDevice => m |= GO_DEVICE,
        _ => {}
    }
    if st_mode & 0o4000 != 0 {
        m |= GO_SETUID;
    }
    if st_mode & 0o2000 != 0 {
        m |= GO_SETGID;
    }
    if st_mode & 0o1000 != 0 {
        m |= GO_STICKY;
    }
    m
}

fn io_err(op: &'static str, path: &str) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.to_owned();
    move |source| EngineError::Io { op, path, source }
}

fn not_found(path: &str, id: &str) -> EngineError {
    EngineError::PathNotFound(format!("Could not find the file {path} in container {id}"))
}

/// Opens `rel` (an absolute path in the container) below `root` with
/// `RESOLVE_IN_ROOT`: `..` and absolute symlinks stay inside `root`. The final
/// component is followed if it is a symlink (use [`open_parent`] to avoid that).
pub fn open_in_root(root: &Path, rel: &str) -> std::io::Result<OwnedFd> {
    let rootfd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    Ok(rustix::fs::openat2(
        &rootfd,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Opens the directory holding `rel`'s last component (inside `root`) and returns it
/// with that component's name (`.` for the root itself).
fn open_parent(root: &Path, rel: &str) -> std::io::Result<(OwnedFd, String)> {
    let clean = clean_path(&format!("/{rel}"));
    if clean == "/" {
        return Ok((open_dir_in_root(root, "/")?, ".".into()));
    }
    let (dir, base) = clean.rsplit_once('/').unwrap_or(("", &clean));
    Ok((open_dir_in_root(root, dir)?, base.to_owned()))
}

fn open_dir_in_root(root: &Path, rel: &str) -> std::io::Result<OwnedFd> {
    let rootfd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    Ok(rustix::fs::openat2(
        &rootfd,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Where `path` of the container lives on the host: (root to resolve in, path below it).
fn locate(rec: &Record, rootfs: &Path, path: &str) -> (PathBuf, String) {
    let clean = clean_path(&format!("/{path}"));
    if rec.state.status == Status::Running && rec.state.pid > 0 {
        return (
            PathBuf::from(format!("/proc/{}/root", rec.state.pid)),
            clean,
        );
    }
    let best = rec
        .mounts
        .iter()
        .filter(|m| matches!(m.kind, MountKind::Bind | MountKind::Volume))
        .filter(|m| clean == m.destination || clean.starts_with(&format!("{}/", m.destination)))
        .max_by_key(|m| m.destination.len());
    match best {
        Some(m) => (
            PathBuf::from(&m.source),
            clean[m.destination.len()..].to_owned(),
        ),
        None => (rootfs.to_owned(), clean),
    }
}

fn mtime_rfc3339(secs: i64, nsecs: i64) -> String {
    jiff::Timestamp::new(secs, nsecs as i32)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn stat_at(dir: &OwnedFd, name: &str, container_path: &str) -> std::io::Result<PathStat> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let mode = st.st_mode;
    let mut link_target = String::new();
    if FileType::from_raw_mode(mode) == FileType::Symlink {
        let t = rustix::fs::readlinkat(dir, name, Vec::new())?;
        let t = t.to_string_lossy().into_owned();
        let parent = container_path
            .rsplit_once('/')
            .map(|(p, _)| p)
            .unwrap_or("");
        link_target = if t.starts_with('/') {
            clean_path(&t)
        } else {
            clean_path(&format!("{parent}/{t}"))
        };
    }
    Ok(PathStat {
        name: if name == "." {
            "/".into()
        } else {
            name.to_owned()
        },
        size: st.st_size,
        mode: go_mode(mode),
        mtime: mtime_rfc3339(st.st_mtime, st.st_mtime_nsec as i64),
        link_target,
    })
}

/// Stats `path` in the container (the last component not followed).
pub fn stat(rec: &Record, rootfs: &Path, path: &str) -> Result<PathStat, EngineError> {
    let (root, rel) = locate(rec, rootfs, path);
    let (dir, base) = open_parent(&root, &rel).map_err(|_| not_found(path, &rec.name))?;
    stat_at(&dir, &base, &clean_path(&format!("/{path}"))).map_err(|_| not_found(path, &rec.name))
}

fn tar_header(st: &rustix::fs::Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

/// Appends one entry named exactly `name` (the tar crate would drop a leading `./`,
/// which the docker CLI's rebasing of `dir/.` copies relies on); long names and link
/// targets go in GNU long-name entries.
fn append_raw<W: Write, R: Read>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    name: &str,
    link: Option<&str>,
    data: R,
) -> std::io::Result<()> {
    for (kind, value) in [
        (tar::EntryType::GNULongName, Some(name)),
        (tar::EntryType::GNULongLink, link),
    ] {
        let Some(v) = value.filter(|v| v.len() >= 100) else {
            continue;
        };
        let mut lh = tar::Header::new_gnu();
        if let Some(g) = lh.as_gnu_mut() {
            g.name[..13].copy_from_slice(b"././@LongLink");
        }
        lh.set_entry_type(kind);
        lh.set_mode(0o644);
        lh.set_size(v.len() as u64 + 1);
        lh.set_cksum();
        let mut bytes = v.as_bytes().to_vec();
        bytes.push(0);
        b.append(&lh, &bytes[..])?;
    }
    let raw = h.as_old_mut();
    raw.name = [0; 100];
    let n = name.len().min(99);
    raw.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    if let Some(l) = link {
        raw.linkname = [0; 100];
        let n = l.len().min(99);
        raw.linkname[..n].copy_from_slice(&l.as_bytes()[..n]);
    }
    h.set_cksum();
    b.append(h, data)
}

/// Writes entry `name` of `dir` as `tar_path` (recursing into directories through fds).
fn append<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &OwnedFd,
    name: &str,
    tar_path: &str,
) -> std::io::Result<()> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            let mut h = tar_header(&st, tar::EntryType::Directory);
            let p = format!("{}/", tar_path.trim_end_matches('/'));
            append_raw(b, &mut h, &p, None, std::io::empty())?;
            let sub = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let mut names: Vec<String> = rustix::fs::Dir::read_from(&sub)?
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "." && n != "..")
                .collect();
            names.sort();
            for n in names {
                append(
                    b,
                    &sub,
                    &n,
                    &format!("{}/{n}", tar_path.trim_end_matches('/')),
                )?;
            }
        }
        FileType::RegularFile => {
            let fd = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let mut h = tar_header(&st, tar::EntryType::Regular);
            h.set_size(st.st_size as u64);
            let f = std::fs::File::from(fd);
            append_raw(b, &mut h, tar_path, None, f.take(st.st_size as u64))?;
        }
        FileType::Symlink => {
            let t = rustix::fs::readlinkat(dir, name, Vec::new())?;
            let mut h = tar_header(&st, tar::EntryType::Symlink);
            append_raw(
                b,
                &mut h,
                tar_path,
                Some(t.to_string_lossy().as_ref()),
                std::io::empty(),
            )?;
        }
        FileType::Fifo => {
            let mut h = tar_header(&st, tar::EntryType::Fifo);
            append_raw(b, &mut h, tar_path, None, std::io::empty())?;
        }
        // sockets and devices are left out
        _ => {}
    }
    Ok(())
}

/// Writes the tar of `path` (named by its base name, as moby's `TarResourceRebase`) to
/// `w`; returns the path's stat first through `on_stat`.
pub fn write_archive<W: Write>(
    rec: &Record,
    rootfs: &Path,
    path: &str,
    w: W,
) -> Result<(), EngineError> {
    let (root, rel) = locate(rec, rootfs, path);
    let (dir, base) = open_parent(&root, &rel).map_err(|_| not_found(path, &rec.name))?;
    // `dir/.` archives as `.` (the CLI copies the contents); `/` as `.` too
    let trimmed = path.trim_end_matches('/');
    let name = if trimmed.ends_with("/.") || trimmed.is_empty() || trimmed == "." {
        ".".to_owned()
    } else {
        base.clone()
    };
    let mut b = tar::Builder::new(w);
    b.mode(tar::HeaderMode::Complete);
    append(&mut b, &dir, &base, &name).map_err(io_err("archive", path))?;
    b.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io_err("archive", path))
}

/// How extracted files are owned.
#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions {
    /// Keep the archive's uid/gid (`copyUIDGID`); else the container's root owns them.
    pub copy_uid_gid: bool,
    /// Refuse to replace a directory with a non-directory and vice versa.
    pub no_overwrite_dir_non_dir: bool,
}

fn split_components(p: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c.to_owned()),
        }
    }
    Some(out)
}

/// Walks (and creates) the directories of `comps` below `base` through fds, never
/// following a symlink.
fn walk_dirs(base: &OwnedFd, comps: &[String]) -> std::io::Result<OwnedFd> {
    let mut cur = rustix::fs::openat(
        base,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for c in comps {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let next = match rustix::fs::openat(&cur, c.as_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                rustix::fs::mkdirat(&cur, c.as_str(), Mode::from_raw_mode(0o755))?;
                rustix::fs::openat(&cur, c.as_str(), flags, Mode::empty())?
            }
            Err(e) => return Err(e.into()),
        };
        cur = next;
    }
    Ok(cur)
}

fn is_dir_at(dir: &OwnedFd, name: &str) -> Option<bool> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// Extracts a tar into the directory `path` of the container.
pub fn extract<R: Read>(
    rec: &Record,
    rootfs: &Path,
    path: &str,
    r: R,
    opts: ExtractOptions,
) -> Result<(), EngineError> {
    let mut ar = tar::Archive::new(r);
    let res = (|| {
        let (root, rel) = locate(rec, rootfs, path);
        let st = stat(rec, rootfs, path)?;
        if !st.is_dir() {
            return Err(EngineError::InvalidParameter(
                "extraction point is not a directory".into(),
            ));
        }
        let dest = open_dir_in_root(&root, &rel).map_err(|_| not_found(path, &rec.name))?;
        // Docker refuses writes the container itself could not make: a read-only root
        // (also while stopped, unless the path is on a volume) or a read-only mount
        let ro_mount = rustix::fs::fstatvfs(&dest)
            .is_ok_and(|v| v.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
        if ro_mount || (rec.spec.read_only && root == rootfs) {
            let on_volume = rec.mounts.iter().any(|m| {
                let c = clean_path(&format!("/{path}"));
                c == m.destination || c.starts_with(&format!("{}/", m.destination))
            });
            return Err(EngineError::InvalidParameter(
                if on_volume {
                    "mounted volume is marked read-only"
                } else {
                    "container rootfs is marked read-only"
                }
                .into(),
            ));
        }
        extract_entries(&mut ar, &dest, path, opts)
    })();
    // read the upload to its end whatever happened, so the client sees our answer
    // rather than a broken pipe
    let _ = std::io::copy(&mut ar.into_inner(), &mut std::io::sink());
    res
}

fn extract_entries<R: Read>(
    ar: &mut tar::Archive<R>,
    dest: &OwnedFd,
    path: &str,
    opts: ExtractOptions,
) -> Result<(), EngineError> {
    let bad = |m: String| EngineError::InvalidParameter(m);
    for entry in ar.entries().map_err(io_err("read archive for", path))? {
        let mut e = entry.map_err(io_err("read archive for", path))?;
        let ep = e.path_bytes();
        let ep = String::from_utf8_lossy(&ep).into_owned();
        let Some(comps) = split_components(&ep) else {
            return Err(bad(format!(
                "invalid archive entry {ep:?}: it leaves the destination"
            )));
        };
        let Some((last, parents)) = comps.split_last() else {
            continue;
        };
        let h = e.header().clone();
        let kind = h.entry_type();
        let werr = |op: &'static str| io_err(op, &ep);
        let dir = walk_dirs(dest, parents).map_err(werr("create directories for"))?;
        let existing = is_dir_at(&dir, last);
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        if opts.no_overwrite_dir_non_dir {
            match (existing, kind.is_dir()) {
                (Some(true), false) => {
                    return Err(bad(format!(
                        "cannot overwrite directory \"{}\" with non-directory \"{ep}\"",
                        clean_path(&format!("{path}/{ep}"))
                    )));
                }
                (Some(false), true) => {
                    return Err(bad(format!(
                        "cannot overwrite non-directory \"{}\" with directory \"{ep}\"",
                        clean_path(&format!("{path}/{ep}"))
                    )));
                }
                _ => {}
            }
        }
        let name = last.as_str();
        match kind {
            tar::EntryType::Directory => {
                if existing != Some(true) {
                    if existing == Some(false) {
                        rustix::fs::unlinkat(&dir, name, AtFlags::empty())
                            .map_err(|e| werr("replace")(e.into()))?;
                    }
                    rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(mode))
                        .map_err(|e| werr("create directory")(e.into()))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if existing == Some(false) {
                    rustix::fs::unlinkat(&dir, name, AtFlags::empty())
                        .map_err(|e| werr("replace")(e.into()))?;
                }
                let fd = rustix::fs::openat(
                    &dir,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(mode),
                )
                .map_err(|e| werr("create")(e.into()))?;
                let mut f = std::fs::File::from(fd);
                std::io::copy(&mut e, &mut f).map_err(werr("write"))?;
            }
            tar::EntryType::Symlink => {
                let target = h
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if existing.is_some() {
                    rustix::fs::unlinkat(&dir, name, AtFlags::empty())
                        .map_err(|e| werr("replace")(e.into()))?;
                }
                rustix::fs::symlinkat(target.as_str(), &dir, name)
                    .map_err(|e| werr("create symlink")(e.into()))?;
            }
            tar::EntryType::Link => {
                let target = h
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Some(tc) = split_components(&target) else {
                    return Err(bad(format!("invalid hard link target {target:?}")));
                };
                let Some((tlast, tparents)) = tc.split_last() else {
                    continue;
                };
                let tdir = walk_dirs(dest, tparents).map_err(werr("open link target of"))?;
                if existing.is_some() {
                    rustix::fs::unlinkat(&dir, name, AtFlags::empty())
                        .map_err(|e| werr("replace")(e.into()))?;
                }
                rustix::fs::linkat(&tdir, tlast.as_str(), &dir, name, AtFlags::empty())
                    .map_err(|e| werr("link")(e.into()))?;
                continue;
            }
            // devices, fifos and others are not extracted
            _ => continue,
        }
        let (uid, gid) = if opts.copy_uid_gid {
            (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32)
        } else {
            (0, 0)
        };
        let (u, g) = (
            rustix::fs::Uid::from_raw(uid),
            rustix::fs::Gid::from_raw(gid),
        );
        rustix::fs::chownat(&dir, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| werr("chown")(e.into()))?;
        if kind != tar::EntryType::Symlink {
            rustix::fs::chmodat(&dir, name, Mode::from_raw_mode(mode), AtFlags::empty())
                .map_err(|e| werr("chmod")(e.into()))?;
        }
        let mt = h.mtime().unwrap_or(0) as i64;
        let ts = rustix::fs::Timespec {
            tv_sec: mt,
            tv_nsec: 0,
        };
        let _ = rustix::fs::utimensat(
            &dir,
            name,
            &Timestamps {
                last_access: ts,
                last_modification: ts,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        );
    }
    Ok(())
}

/// `cp` as the API calls it.
impl Engine {
    fn archive_target(&self, name: &str) -> Result<(Record, PathBuf), EngineError> {
        let rec = self.containers.get(name)?;
        let rootfs = self.containers.dir(&rec.id).join("rootfs");
        Ok((rec, rootfs))
    }

    /// `HEAD /containers/{id}/archive?path=`.
    pub async fn stat_container_path(
        &self,
        name: &str,
        path: &str,
    ) -> Result<PathStat, EngineError> {
        let (rec, rootfs) = self.archive_target(name)?;
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || stat(&rec, &rootfs, &path))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?
    }

    /// `GET /containers/{id}/archive?path=`: the stat and the tar stream.
    pub async fn get_container_archive(
        &self,
        name: &str,
        path: &str,
    ) -> Result<(PathStat, crate::io::ByteStream), EngineError> {
        let st = self.stat_container_path(name, path).await?;
        let (rec, rootfs) = self.archive_target(name)?;
        let (w, stream) = crate::io::channel_writer();
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut w = w;
            let r = write_archive(&rec, &rootfs, &path, std::io::BufWriter::new(&mut w));
            if let Err(e) = r {
                w.fail(std::io::Error::other(e.to_string()));
            }
        });
        Ok((st, stream))
    }

    /// `PUT /containers/{id}/archive?path=&copyUIDGID=&noOverwriteDirNonDir=`.
    pub async fn put_container_archive(
        &self,
        name: &str,
        path: &str,
        body: crate::io::ByteStream,
        opts: ExtractOptions,
    ) -> Result<(), EngineError> {
        let (rec, rootfs) = match self.archive_target(name) {
            Ok(t) => t,
            Err(e) => {
                // read the upload to its end first, or the client sees a broken pipe
                // instead of this error (as for import)
                let mut body = body;
                while let Some(Ok(_)) = futures_util::StreamExt::next(&mut body).await {}
                return Err(e);
            }
        };
        let reader = crate::io::StreamReader::new(body);
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || extract(&rec, &rootfs, &path, reader, opts))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        serde_json::from_value(json!({
            "version": 1, "id": "c".repeat(64), "name": "x", "created": "", "image_id": "",
            "spec": serde_json::to_value(berth_types::spec::ContainerSpec::default()).unwrap(), "path": "sh", "args": [], "env": [], "cmd": [],
            "entrypoint": [], "workdir": "/", "lowerdirs": [], "state": {
                "status": "exited", "pid": 0, "shim_pid": 0, "shim_start_time": 0,
                "exit_code": 0, "error": "", "started_at": "", "finished_at": "", "exits": 0
            }
        }))
        .unwrap()
    }

    #[test]
    fn symlinks_never_lead_out_of_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"host").unwrap();
        std::os::unix::fs::symlink("/", root.path().join("hostroot")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/hostname"), b"box").unwrap();
        let r = rec();
        // through the link to "/" we land in the container's root, not the host's
        let st = stat(&r, root.path(), "/hostroot/etc/hostname").unwrap();
        assert_eq!((st.name.as_str(), st.size), ("hostname", 3));
        let e = stat(&r, root.path(), "/out/secret").unwrap_err();
        assert!(e.to_string().starts_with("Could not find the file"), "{e}");
        let st = stat(&r, root.path(), "/out").unwrap();
        assert_eq!(st.mode & GO_SYMLINK, GO_SYMLINK);
        assert_eq!(
            st.link_target,
            clean_path(&outside.path().display().to_string())
        );
        // extraction through a symlinked directory stays inside too
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        tar.append_data(&mut h, "f", &b"data"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        let opts = ExtractOptions {
            copy_uid_gid: false,
            no_overwrite_dir_non_dir: true,
        };
        extract(&r, root.path(), "/hostroot/etc", &bytes[..], opts).unwrap();
        assert_eq!(std::fs::read(root.path().join("etc/f")).unwrap(), b"data");
        // an entry climbing out is refused
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.as_gnu_mut().unwrap().name[..6].copy_from_slice(b"../esc");
        h.set_cksum();
        tar.append(&h, &b"x"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        let e = extract(&r, root.path(), "/etc", &bytes[..], opts).unwrap_err();
        assert!(e.to_string().contains("leaves the destination"), "{e}");
    }

    #[test]
    fn archives_rebase_on_the_base_name() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("srv/d/sub")).unwrap();
        std::fs::write(root.path().join("srv/d/sub/a"), b"A").unwrap();
        std::os::unix::fs::symlink("sub/a", root.path().join("srv/d/l")).unwrap();
        let mut out = Vec::new();
        write_archive(&rec(), root.path(), "/srv/d", &mut out).unwrap();
        let mut ar = tar::Archive::new(&out[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["d/", "d/l", "d/sub/", "d/sub/a"]);
        let st = stat(&rec(), root.path(), "/srv/d").unwrap();
        assert!(st.is_dir());
        assert_eq!(go_mode(0o40755), GO_DIR | 0o755);
    }
}
