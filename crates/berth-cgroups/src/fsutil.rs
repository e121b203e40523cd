//! Small file helpers that attach the path to every error.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Error, Result};

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| io_err(path, e))
}

/// Write `value` with one `write(2)`, as cgroup files want.
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    f.write_all(value.as_bytes()).map_err(|e| io_err(path, e))
}

/// Write each of `values` to `path` with its own `write(2)` on one open file
/// (`devices.allow`/`devices.deny` take one rule per write).
pub(crate) struct LineWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl LineWriter {
    pub(crate) fn open(path: &Path) -> Result<LineWriter> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        Ok(LineWriter {
            path: path.to_path_buf(),
            file,
        })
    }

    pub(crate) fn write(&mut self, value: &str) -> Result<()> {
        use std::io::Write;
        self.file
            .write_all(value.as_bytes())
            .map_err(|e| io_err(&self.path, e))
    }
}

pub(crate) fn parse_err(path: &Path, why: impl Into<String>) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// A file holding one number (`max` reads as `None`).
pub(crate) fn read_u64_or_max(path: &Path) -> Result<Option<u64>> {
    let s = read(path)?;
    let t = s.trim();
    if t == "max" {
        return Ok(None);
    }
    t.parse::<u64>()
        .map(Some)
        .map_err(|e| parse_err(path, format!("{t:?} is not a number: {e}")))
}

pub(crate) fn read_u64(path: &Path) -> Result<u64> {
    Ok(read_u64_or_max(path)?.unwrap_or(u64::MAX))
}

/// The value of `key` in a flat-keyed file (`key value` per line), 0 if absent.
pub(crate) fn flat_key(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Pids listed in a `cgroup.procs` file.
pub(crate) fn read_pids(path: &Path) -> Result<Vec<i32>> {
    let s = read(path)?;
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse::<i32>()
                .map_err(|e| parse_err(path, format!("bad pid {l:?}: {e}")))
        })
        .collect()
}

/// `dir` and all directories below it, parents first.
pub(crate) fn walk_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let d = out[i].clone();
        i += 1;
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && i > 1 => continue,
            Err(e) => return Err(io_err(&d, e)),
        };
        for ent in rd {
            let ent = ent.map_err(|e| io_err(&d, e))?;
            if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.push(ent.path());
            }
        }
    }
    Ok(out)
}

/// Remove a cgroup directory: ENOENT is success, EBUSY is retried briefly
/// (the kernel may still be tearing down exited tasks).
pub(crate) fn rmdir_retry(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_millis(2000);
    let mut delay = Duration::from_millis(5);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc_ebusy()) && Instant::now() < deadline => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(e) if e.raw_os_error() == Some(libc_ebusy()) => {
                return Err(Error::Busy(dir.to_path_buf()));
            }
            Err(e) => return Err(io_err(dir, e)),
        }
    }
}

fn libc_ebusy() -> i32 {
    rustix::io::Errno::BUSY.raw_os_error()
}

/// Poll `check` until it returns true or `timeout` passes.
pub(crate) fn poll_until(
    path: &Path,
    what: &'static str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(1);
    loop {
        if check()? {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                path: path.to_path_buf(),
                what,
                waited_ms: start.elapsed().as_millis() as u64,
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// Send `signal` to `pid`; a process already gone is fine.
pub(crate) fn signal_pid(pid: i32, signal: i32) -> Result<()> {
    let sig =
        rustix::process::Signal::from_named_raw(signal).ok_or_else(|| Error::InvalidResource {
            what: "signal",
            why: format!("{signal} is not a known signal"),
        })?;
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return Ok(());
    };
    match rustix::process::kill_process(p, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(io_err(
            Path::new(&format!("/proc/{pid}")),
            std::io::Error::from_raw_os_error(e.raw_os_error()),
        )),
    }
}

/// Signal every pid `pids` lists. With the cgroup frozen one pass is exact;
/// without (no freezer, or freezing failed) a SIGKILL is repeated a few times
/// so children forked meanwhile are caught too.
pub(crate) fn signal_all(
    pids: impl Fn() -> Result<Vec<i32>>,
    signal: i32,
    frozen: bool,
) -> Result<()> {
    let rounds = if frozen || signal != 9 { 1 } else { 5 };
    for round in 0..rounds {
        let list = pids()?;
        if list.is_empty() {
            break;
        }
        if round > 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        for pid in list {
            signal_pid(pid, signal)?;
        }
    }
    Ok(())
}

/// Check a relative cgroup path: non-empty, no `..`, no empty components.
pub(crate) fn check_rel(rel: &str) -> Result<()> {
    let trimmed = rel.trim_matches('/');
    if trimmed.is_empty() {
        return Err(Error::InvalidPath(
            rel.to_string(),
            "empty path would be the caller's own cgroup",
        ));
    }
    for c in trimmed.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(Error::InvalidPath(
                rel.to_string(),
                "components must be non-empty names, not . or ..",
            ));
        }
    }
    Ok(())
}

/// Join a cgroup path (`/a/b`) below a directory.
pub(crate) fn join_cg(base: &Path, cg: &str) -> PathBuf {
    let t = cg.trim_matches('/');
    if t.is_empty() {
        base.to_path_buf()
    } else {
        base.join(t)
    }
}

/// Join two cgroup paths into a `/`-rooted one.
pub(crate) fn cg_join(own: &str, rel: &str) -> String {
    let a = own.trim_end_matches('/');
    let b = rel.trim_matches('/');
    format!("{a}/{b}")
}

/// Create `dir` and its missing parents, returning those it created (parents first).
///
/// The leaf is tried first: in the common case (the parent exists) that is one
/// `mkdir(2)`, without a `stat` of every level.
pub(crate) fn mkdir_all(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::create_dir(dir) {
        Ok(()) => return Ok(vec![dir.to_path_buf()]),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {
            return Ok(Vec::new());
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(dir, e)),
        Err(_) => {}
    }
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    missing.reverse();
    let mut created = Vec::new();
    for d in missing {
        match std::fs::create_dir(&d) {
            Ok(()) => created.push(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(&d, e)),
        }
    }
    Ok(created)
}

/// Remove the cgroup `dir` and any cgroups below it (deepest first). A container
/// rarely makes sub-cgroups, so a plain `rmdir(2)` is tried first; only when it
/// fails (sub-cgroups, or tasks still exiting) is the tree listed. Gone is success.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    let dirs = match walk_dirs(dir) {
        Ok(d) => d,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let mut first = None;
    for d in dirs.iter().rev() {
        if let Err(e) = rmdir_retry(d) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}
