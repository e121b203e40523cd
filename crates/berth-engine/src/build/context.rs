//! The build context: the tar the client sent, unpacked under the build's temp dir,
//! filtered by `.dockerignore` (or `<Dockerfile>.dockerignore`), listed once for COPY
//! planning, with content digests memoised for cache keys.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};

use berth_build::copy::ContextEntry;
use berth_build::dockerignore::{PatternMatcher, keep_build_files, read_patterns};
use sha2::{Digest as _, Sha256};

use super::BuildError;

/// A temp dir removed (after unmounting anything left below it) when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<parent>/<random>`.
    pub fn new(parent: &Path) -> Result<TempDir, BuildError> {
        std::fs::create_dir_all(parent).map_err(BuildError::io("create", parent))?;
        let path = parent.join(&crate::containers::names::random_id()[..16]);
        std::fs::create_dir(&path).map_err(BuildError::io("create", &path))?;
        Ok(TempDir { path })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        unmount_below(&self.path);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Lazily unmounts every mount point at or below `dir` (deepest first).
pub fn unmount_below(dir: &Path) {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let want = dir.display().to_string();
    let mut points: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " ").replace("\\134", "\\"))
        .filter(|m| m == &want || m.starts_with(&format!("{want}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = rustix::mount::unmount(p.as_str(), rustix::mount::UnmountFlags::DETACH);
    }
}

/// The Dockerfile found in the context.
#[derive(Debug)]
pub struct Dockerfile {
    /// Its path relative to the context.
    pub rel: String,
    /// Its text.
    pub text: String,
}

/// Unpacks the context tar (plain or gzip) into `dir` and reads the Dockerfile
/// (`name`, default `Dockerfile`, falling back to `dockerfile` as Docker does). Regular
/// files are hashed while they are written (the digests COPY cache keys need); paths are
/// confined to `dir` (no `..`, no absolute names, never written through a symlink).
pub fn unpack(
    reader: impl Read,
    dir: &Path,
    name: &str,
) -> Result<(Dockerfile, HashMap<PathBuf, String>), BuildError> {
    std::fs::create_dir_all(dir).map_err(BuildError::io("create", dir))?;
    let mut r = BufReader::with_capacity(256 * 1024, reader);
    let gz = r
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .map_err(BuildError::io("read the build context", dir))?;
    let inner: Box<dyn Read> = if gz {
        Box::new(flate2::bufread::MultiGzDecoder::new(r))
    } else {
        Box::new(r)
    };
    let bad = |e: std::io::Error| {
        BuildError::Other(format!(
            "invalid build context (expected a tar archive): {e}"
        ))
    };
    let mut a = tar::Archive::new(inner);
    a.set_preserve_permissions(true);
    a.set_preserve_ownerships(false);
    a.set_unpack_xattrs(false);
    a.set_overwrite(true);
    let mut digests = HashMap::new();
    let mut dirs: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    let mut dir_times: Vec<(PathBuf, u64, u32)> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    for entry in a.entries().map_err(bad)? {
        let mut e = entry.map_err(bad)?;
        let raw = e.path().map_err(bad)?.into_owned();
        let mut rel = PathBuf::new();
        for c in raw.components() {
            match c {
                std::path::Component::Normal(n) => rel.push(n),
                std::path::Component::CurDir => {}
                _ => {
                    return Err(BuildError::Other(format!(
                        "invalid build context: entry {} leaves the context",
                        raw.display()
                    )));
                }
            }
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        // parents: real directories inside `dir` (created when missing)
        let mut cur = dir.to_path_buf();
        if let Some(parent) = rel.parent() {
            for c in parent.components() {
                cur.push(c);
                if dirs.contains(&cur) {
                    continue;
                }
                match std::fs::symlink_metadata(&cur) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(BuildError::Other(format!(
                            "invalid build context: {} is not a directory",
                            cur.display()
                        )));
                    }
                    Err(_) => std::fs::create_dir(&cur).map_err(BuildError::io("create", &cur))?,
                }
                dirs.insert(cur.clone());
            }
        }
        let dest = dir.join(&rel);
        let kind = e.header().entry_type();
        let mode = e.header().mode().unwrap_or(0o644) & 0o7777;
        let mtime = e.header().mtime().unwrap_or(0);
        if kind.is_file() {
            if let Ok(m) = std::fs::symlink_metadata(&dest) {
                if m.is_dir() {
                    std::fs::remove_dir_all(&dest).map_err(BuildError::io("replace", &dest))?;
                } else {
                    std::fs::remove_file(&dest).map_err(BuildError::io("replace", &dest))?;
                }
            }
            let mut f = std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(&dest)
                .map_err(BuildError::io("create", &dest))?;
            let mut h = Sha256::new();
            loop {
                let n = e.read(&mut buf).map_err(bad)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                std::io::Write::write_all(&mut f, &buf[..n])
                    .map_err(BuildError::io("write", &dest))?;
            }
            use std::os::unix::fs::PermissionsExt as _;
            f.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(BuildError::io("chmod", &dest))?;
            let _ = f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime));
            digests.insert(dest, format!("sha256:{}", hex::encode(h.finalize())));
        } else if kind.is_dir() {
            match std::fs::symlink_metadata(&dest) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    std::fs::remove_file(&dest).map_err(BuildError::io("replace", &dest))?;
                    std::fs::create_dir(&dest).map_err(BuildError::io("create", &dest))?;
                }
                Err(_) => std::fs::create_dir(&dest).map_err(BuildError::io("create", &dest))?,
            }
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode | 0o700))
                .map_err(BuildError::io("chmod", &dest))?;
            dirs.insert(dest.clone());
            dir_times.push((dest, mtime, mode));
        } else {
            // symlinks, hard links, devices: the tar crate's confined unpack
            e.unpack_in(dir).map_err(bad)?;
        }
    }
    dir_times.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.as_os_str().len()));
    for (p, t, mode) in dir_times {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode));
        if let Ok(f) = std::fs::File::open(&p) {
            let _ = f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t));
        }
    }
    let name = if name.is_empty() { "Dockerfile" } else { name };
    let rel = berth_build::copy::clean(name.trim_start_matches('/'));
    let mut candidates = vec![rel.clone()];
    if rel == "Dockerfile" {
        candidates.push("dockerfile".into());
    }
    for c in candidates {
        let p = dir.join(&c);
        if p.is_file() {
            let text = std::fs::read_to_string(&p).map_err(BuildError::io("read", &p))?;
            return Ok((Dockerfile { rel: c, text }, digests));
        }
    }
    Err(BuildError::Other(format!(
        "Cannot locate specified Dockerfile: {name}"
    )))
}

/// One entry of the context as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
    /// Bytes (files).
    pub size: u64,
    /// `sha256:<hex>` of the content (files).
    pub digest: String,
    /// Target (symlinks).
    pub link: Option<String>,
}

/// The raw context tar, kept until a step needs the files on disk.
#[derive(Debug)]
enum Raw {
    Memory(Vec<Vec<u8>>),
    File(PathBuf),
}

/// Contexts up to this size stay in memory until needed; bigger ones go to a file.
const MEMORY_LIMIT: usize = 512 << 20;

struct Tee<R> {
    inner: R,
    /// The tar so far, in the chunks it was read in (no reallocation copies).
    mem: Vec<Vec<u8>>,
    mem_len: usize,
    file: Option<(std::io::BufWriter<std::fs::File>, PathBuf)>,
    spill: PathBuf,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        match &mut self.file {
            Some((f, _)) => std::io::Write::write_all(f, &buf[..n])?,
            None => {
                self.mem.push(buf[..n].to_vec());
                self.mem_len += n;
                if self.mem_len > MEMORY_LIMIT {
                    let mut f = std::io::BufWriter::new(std::fs::File::create(&self.spill)?);
                    for c in &self.mem {
                        std::io::Write::write_all(&mut f, c)?;
                    }
                    self.mem = Vec::new();
                    self.file = Some((f, self.spill.clone()));
                }
            }
        }
        Ok(n)
    }
}

/// What [`receive`] read.
#[derive(Debug)]
pub struct Received {
    /// The Dockerfile.
    pub dockerfile: Dockerfile,
    /// Every entry of the tar.
    pub index: BTreeMap<String, IndexEntry>,
    /// The Dockerfile and ignore files' text, by path.
    pub small: Vec<(String, String)>,
    /// The raw tar.
    pub raw: RawContext,
}

/// Reads the context tar (plain or gzip) without writing its files: every entry is
/// indexed (mode, size, content digest, link target) and the raw tar kept (in memory, or
/// in `spill` when large) until a COPY needs the files. Returns the Dockerfile
/// (`name`, default `Dockerfile`, falling back to `dockerfile`) and the index.
pub fn receive(
    reader: impl Read,
    spill: &Path,
    name: &str,
    ignore_names: &[String],
) -> Result<Received, BuildError> {
    let mut r = BufReader::with_capacity(256 * 1024, reader);
    let gz = r
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .map_err(BuildError::io("read the build context", spill))?;
    let inner: Box<dyn Read> = if gz {
        Box::new(flate2::bufread::MultiGzDecoder::new(r))
    } else {
        Box::new(r)
    };
    let tee = Tee {
        inner,
        mem: Vec::new(),
        mem_len: 0,
        file: None,
        spill: spill.to_owned(),
    };
    let bad = |e: std::io::Error| {
        BuildError::Other(format!(
            "invalid build context (expected a tar archive): {e}"
        ))
    };
    let name = if name.is_empty() { "Dockerfile" } else { name };
    let df_rel = berth_build::copy::clean(name.trim_start_matches('/'));
    let mut wanted: Vec<String> = vec![df_rel.clone(), "dockerfile".into(), ".dockerignore".into()];
    wanted.extend(ignore_names.iter().cloned());
    let mut small: Vec<(String, String)> = Vec::new();
    let mut index = BTreeMap::new();
    let mut a = tar::Archive::new(tee);
    let mut buf = vec![0u8; 256 * 1024];
    {
        let entries = a.entries().map_err(bad)?;
        for entry in entries {
            let mut e = entry.map_err(bad)?;
            let raw = e.path().map_err(bad)?.into_owned();
            let mut parts = Vec::new();
            for c in raw.components() {
                match c {
                    std::path::Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
                    std::path::Component::CurDir => {}
                    _ => {
                        return Err(BuildError::Other(format!(
                            "invalid build context: entry {} leaves the context",
                            raw.display()
                        )));
                    }
                }
            }
            if parts.is_empty() {
                continue;
            }
            let rel = parts.join("/");
            // parents exist implicitly
            for i in 1..parts.len() {
                index.entry(parts[..i].join("/")).or_insert(IndexEntry {
                    mode: 0o040755,
                    size: 0,
                    digest: String::new(),
                    link: None,
                });
            }
            let kind = e.header().entry_type();
            let perm = e.header().mode().unwrap_or(0o644) & 0o7777;
            let mut ie = IndexEntry {
                mode: perm,
                size: 0,
                digest: String::new(),
                link: None,
            };
            if kind.is_file() {
                ie.mode |= 0o100000;
                let keep = wanted.contains(&rel);
                let mut content = Vec::new();
                let mut h = Sha256::new();
                loop {
                    let n = e.read(&mut buf).map_err(bad)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    ie.size += n as u64;
                    if keep {
                        content.extend_from_slice(&buf[..n]);
                    }
                }
                ie.digest = format!("sha256:{}", hex::encode(h.finalize()));
                if keep {
                    small.push((rel.clone(), String::from_utf8_lossy(&content).into_owned()));
                }
            } else if kind.is_dir() {
                ie.mode |= 0o040000;
            } else if kind.is_symlink() {
                ie.mode |= 0o120000;
                ie.link = e.link_name().map_err(bad)?.map(|l| l.display().to_string());
            } else if kind.is_hard_link() {
                // a hard link has its target's content
                let target = e
                    .link_name()
                    .map_err(bad)?
                    .map(|l| berth_build::copy::clean(&l.display().to_string()));
                if let Some(t) = target.and_then(|t| index.get(&t).cloned()) {
                    ie = t;
                }
            } else {
                continue;
            }
            index.insert(rel, ie);
        }
    }
    let mut tee = a.into_inner();
    std::io::copy(&mut tee, &mut std::io::sink()).map_err(bad)?;
    let raw = match tee.file.take() {
        Some((mut f, path)) => {
            std::io::Write::flush(&mut f).map_err(BuildError::io("write", &path))?;
            Raw::File(path)
        }
        None => Raw::Memory(std::mem::take(&mut tee.mem)),
    };
    for c in [df_rel.clone(), "dockerfile".to_owned()] {
        if c == "dockerfile" && df_rel != "Dockerfile" {
            continue;
        }
        if let Some((_, text)) = small.iter().find(|(p, _)| *p == c) {
            let text = text.clone();
            return Ok(Received {
                dockerfile: Dockerfile { rel: c, text },
                index,
                small,
                raw: RawContext(std::sync::Arc::new(std::sync::Mutex::new(Some(raw)))),
            });
        }
    }
    Err(BuildError::Other(format!(
        "Cannot locate specified Dockerfile: {name}"
    )))
}

/// The raw tar, shared by the builders of one build; taken by the first materialization.
#[derive(Debug, Clone)]
pub struct RawContext(std::sync::Arc<std::sync::Mutex<Option<Raw>>>);

/// The build context: its index, filtered by the ignore file, and (once a step needs the
/// files) its unpacked directory.
#[derive(Debug, Clone)]
pub struct Context {
    /// Where the files are (once materialized).
    pub root: PathBuf,
    /// Every kept path (relative, `/`-separated), sorted.
    pub entries: Vec<ContextEntry>,
    /// Mode, size, digest of every kept path.
    pub index: BTreeMap<String, IndexEntry>,
    raw: RawContext,
    digests: HashMap<PathBuf, String>,
}

impl Context {
    /// Applies the ignore file (`<Dockerfile>.dockerignore` or `.dockerignore`, from the
    /// small files `receive` kept) to the index.
    pub fn new(
        root: PathBuf,
        dockerfile_rel: &str,
        index: BTreeMap<String, IndexEntry>,
        small: &[(String, String)],
        raw: RawContext,
    ) -> Result<Context, BuildError> {
        let specific = format!("{dockerfile_rel}.dockerignore");
        let ignore = small
            .iter()
            .find(|(p, _)| *p == specific)
            .or_else(|| small.iter().find(|(p, _)| p == ".dockerignore"));
        let matcher = match ignore {
            Some((p, text)) => {
                let pats = keep_build_files(read_patterns(text), Some(dockerfile_rel));
                Some(
                    PatternMatcher::new(&pats)
                        .map_err(|e| BuildError::Other(format!("{p}: {e}")))?,
                )
            }
            None => None,
        };
        let mut kept: BTreeMap<String, IndexEntry> = BTreeMap::new();
        for (p, e) in &index {
            if matcher.as_ref().is_some_and(|m| m.excludes(p)) {
                continue;
            }
            kept.insert(p.clone(), e.clone());
        }
        // the parents of what a `!` pattern re-included stay
        let parents: Vec<String> = kept
            .keys()
            .flat_map(|p| {
                let parts: Vec<&str> = p.split('/').collect();
                (1..parts.len())
                    .map(move |i| parts[..i].join("/"))
                    .collect::<Vec<_>>()
            })
            .collect();
        for p in parents {
            if let Some(e) = index.get(&p) {
                kept.entry(p).or_insert_with(|| e.clone());
            }
        }
        let entries = kept
            .iter()
            .map(|(p, e)| ContextEntry {
                path: p.clone(),
                is_dir: e.mode & 0o170000 == 0o040000,
            })
            .collect();
        Ok(Context {
            root,
            entries,
            index: kept,
            raw,
            digests: HashMap::new(),
        })
    }

    /// Writes the files to `root` (once per build, shared by parallel stages), without
    /// what the ignore file excludes.
    pub fn materialize(&self) -> Result<(), BuildError> {
        let mut g = self.raw.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(raw) = g.take() else {
            return Ok(());
        };
        match &raw {
            Raw::Memory(v) => {
                let chained = v
                    .iter()
                    .fold(Box::new(std::io::empty()) as Box<dyn Read + '_>, |r, c| {
                        Box::new(r.chain(c.as_slice()))
                    });
                unpack(chained, &self.root, "")
                    .map(|_| ())
                    .or_else(|e| match e {
                        BuildError::Other(m) if m.starts_with("Cannot locate") => Ok(()),
                        e => Err(e),
                    })?;
            }
            Raw::File(p) => {
                let f = std::fs::File::open(p).map_err(BuildError::io("open", p))?;
                unpack(f, &self.root, "").map(|_| ()).or_else(|e| match e {
                    BuildError::Other(m) if m.starts_with("Cannot locate") => Ok(()),
                    e => Err(e),
                })?;
                let _ = std::fs::remove_file(p);
            }
        }
        prune_to(&self.root, "", &self.index)
    }

    /// `sha256:<hex>` of a file's content, computed once per build.
    pub fn digest(&mut self, path: &Path) -> Result<String, BuildError> {
        if let Some(d) = self.digests.get(path) {
            return Ok(d.clone());
        }
        let d = file_digest(path)?;
        self.digests.insert(path.to_owned(), d.clone());
        Ok(d)
    }
}

/// Removes from `dir` what is not in `keep`.
fn prune_to(dir: &Path, rel: &str, keep: &BTreeMap<String, IndexEntry>) -> Result<(), BuildError> {
    let rd = std::fs::read_dir(dir).map_err(BuildError::io("read directory", dir))?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let r = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let p = e.path();
        if !keep.contains_key(&r) {
            let res = if e.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            res.map_err(BuildError::io("remove", &p))?;
        } else if e.file_type().is_ok_and(|t| t.is_dir()) {
            prune_to(&p, &r, keep)?;
        }
    }
    Ok(())
}

/// `sha256:<hex>` of a file's content.
pub fn file_digest(path: &Path) -> Result<String, BuildError> {
    let mut f = std::fs::File::open(path).map_err(BuildError::io("open", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(BuildError::io("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

fn walk(
    dir: &Path,
    rel: &str,
    m: Option<&PatternMatcher>,
    out: &mut Vec<ContextEntry>,
) -> Result<(), BuildError> {
    let rd = std::fs::read_dir(dir).map_err(BuildError::io("read directory", dir))?;
    for e in rd {
        let e = e.map_err(BuildError::io("read directory", dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let r = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let ft = e.file_type().map_err(BuildError::io("stat", e.path()))?;
        let excluded = m.is_some_and(|m| m.excludes(&r));
        if ft.is_dir() {
            if excluded && !m.is_some_and(|m| m.may_include_below(&r)) {
                std::fs::remove_dir_all(e.path()).map_err(BuildError::io("remove", e.path()))?;
                continue;
            }
            walk(&e.path(), &r, m, out)?;
            if excluded {
                // kept only for what a `!` pattern re-includes below it
                let empty = std::fs::read_dir(e.path())
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false);
                if empty {
                    let _ = std::fs::remove_dir(e.path());
                    continue;
                }
            }
            out.push(ContextEntry {
                path: r,
                is_dir: true,
            });
        } else if excluded {
            std::fs::remove_file(e.path()).map_err(BuildError::io("remove", e.path()))?;
        } else {
            out.push(ContextEntry {
                path: r,
                is_dir: false,
            });
        }
    }
    Ok(())
}

/// Lists a directory tree as context entries (for `COPY --from`).
pub fn list_tree(root: &Path) -> Result<Vec<ContextEntry>, BuildError> {
    let mut out = Vec::new();
    walk(root, "", None, &mut out)?;
    out.sort();
    Ok(out)
}

/// Bytes of regular files below `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}
