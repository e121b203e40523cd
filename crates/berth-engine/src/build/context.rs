//! The build context: the tar the client sent, unpacked under the build's temp dir,
//! filtered by `.dockerignore` (or `<Dockerfile>.dockerignore`), listed once for COPY
//! planning, with content digests memoised for cache keys.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};

use berth_build::copy::ContextEntry;
use berth_build::dockerignore::{PatternMatcher, ignore_file_for, keep_build_files, read_patterns};
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

/// An unpacked, filtered context.
#[derive(Debug, Clone)]
pub struct Context {
    /// The directory.
    pub root: PathBuf,
    /// Every path in it (relative, `/`-separated), sorted.
    pub entries: Vec<ContextEntry>,
    digests: HashMap<PathBuf, String>,
}

impl Context {
    /// Applies the ignore file (removing what it excludes) and lists the rest.
    pub fn scan(
        root: PathBuf,
        dockerfile_rel: &str,
        digests: HashMap<PathBuf, String>,
    ) -> Result<Context, BuildError> {
        let df = root.join(dockerfile_rel);
        let ignore = ignore_file_for(&root, &df, &|p: &Path| p.is_file());
        let matcher = match ignore {
            Some(f) => {
                let text = std::fs::read_to_string(&f).map_err(BuildError::io("read", &f))?;
                let pats = keep_build_files(read_patterns(&text), Some(dockerfile_rel));
                Some(
                    PatternMatcher::new(&pats)
                        .map_err(|e| BuildError::Other(format!("{}: {e}", f.display())))?,
                )
            }
            None => None,
        };
        let mut entries = Vec::new();
        walk(&root, "", matcher.as_ref(), &mut entries)?;
        entries.sort();
        Ok(Context {
            root,
            entries,
            digests,
        })
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

impl Context {
    /// Digests of many files, computed in parallel (one thread per core) for those not
    /// yet known.
    pub fn digest_many(&mut self, paths: &[PathBuf]) -> Result<(), BuildError> {
        let todo: Vec<&PathBuf> = paths
            .iter()
            .filter(|p| !self.digests.contains_key(*p))
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(todo.len())
            .max(1);
        let chunk = todo.len().div_ceil(threads);
        let results: Vec<Result<Vec<(PathBuf, String)>, BuildError>> = std::thread::scope(|s| {
            let handles: Vec<_> = todo
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|p| file_digest(p).map(|d| ((*p).clone(), d)))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(BuildError::Other("a hashing thread panicked".into()))
                    })
                })
                .collect()
        });
        for r in results {
            for (p, d) in r? {
                self.digests.insert(p, d);
            }
        }
        Ok(())
    }
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
