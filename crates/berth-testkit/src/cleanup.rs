//! A guard that undoes what a test set up, on drop, even when the test panics.
//!
//! Teardown follows the project's rule: reverse order of kinds (processes first, then
//! mounts, cgroups, network objects), keep going after a failure, treat "already gone" as
//! success. Failures are collected and can be read with [`Cleanup::run`]; on drop they are
//! ignored (a panicking test already reports its own failure).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rustix::mount::{UnmountFlags, unmount};
use rustix::process::{Pid, Signal, kill_process};

/// Registers what a test made and removes it on drop.
#[derive(Debug, Default)]
pub struct Cleanup {
    children: Vec<Child>,
    pids: Vec<i32>,
    mount_roots: Vec<PathBuf>,
    cgroups: Vec<PathBuf>,
    link_prefixes: Vec<String>,
    netns_prefixes: Vec<String>,
    nft_tables: Vec<(String, String)>,
    nft_prefixes: Vec<String>,
    dirs: Vec<PathBuf>,
}

impl Cleanup {
    /// An empty guard.
    pub fn new() -> Cleanup {
        Cleanup::default()
    }

    /// Kill (SIGKILL) and reap a child the test spawned.
    pub fn child(&mut self, child: Child) -> &mut Self {
        self.children.push(child);
        self
    }

    /// SIGKILL this pid (one the test started, e.g. a daemonised container process) and wait
    /// until it is gone.
    pub fn pid(&mut self, pid: i32) -> &mut Self {
        self.pids.push(pid);
        self
    }

    /// Unmount (MNT_DETACH) everything mounted at or below `dir`, deepest and newest first.
    pub fn mounts_under(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.mount_roots.push(dir.into());
        self
    }

    /// Remove this cgroup directory (e.g. `/sys/fs/cgroup/memory/<own>/test-x`): its
    /// processes are killed, its child cgroups removed depth first, a v1 freezer thawed.
    pub fn cgroup(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.cgroups.push(dir.into());
        self
    }

    /// Delete every network link whose name starts with `prefix` (veths, bridges).
    pub fn links_with_prefix(&mut self, prefix: impl Into<String>) -> &mut Self {
        self.link_prefixes.push(prefix.into());
        self
    }

    /// Delete every named network namespace (`ip netns`) whose name starts with `prefix`.
    pub fn netns_with_prefix(&mut self, prefix: impl Into<String>) -> &mut Self {
        self.netns_prefixes.push(prefix.into());
        self
    }

    /// Delete the nftables table `family name` (e.g. `inet`, `berth-xyz`).
    pub fn nft_table(&mut self, family: impl Into<String>, name: impl Into<String>) -> &mut Self {
        self.nft_tables.push((family.into(), name.into()));
        self
    }

    /// Delete every nftables table whose name starts with `prefix`, in any family.
    pub fn nft_tables_with_prefix(&mut self, prefix: impl Into<String>) -> &mut Self {
        self.nft_prefixes.push(prefix.into());
        self
    }

    /// Remove this directory tree (after the unmounts).
    pub fn dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.dirs.push(dir.into());
        self
    }

    /// Tear everything down now; returns every error met (empty when all went well).
    /// Registered items are forgotten, so a second call (or the drop) does nothing.
    pub fn run(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        for mut child in self.children.drain(..).rev() {
            // Already exited is fine: kill fails with InvalidInput only when reaped.
            let _ = child.kill();
            if let Err(e) = child.wait() {
                errors.push(format!("failed to reap child {}: {e}", child.id()));
            }
        }
        for pid in self.pids.drain(..).rev() {
            if let Err(e) = kill_and_wait(pid) {
                errors.push(e);
            }
        }
        for dir in self.mount_roots.drain(..).rev() {
            errors.extend(unmount_under(&dir));
        }
        for cg in self.cgroups.drain(..).rev() {
            errors.extend(remove_cgroup(&cg));
        }
        for prefix in self.netns_prefixes.drain(..) {
            errors.extend(delete_netns(&prefix));
        }
        for prefix in self.link_prefixes.drain(..) {
            errors.extend(delete_links(&prefix));
        }
        for (family, name) in self.nft_tables.drain(..) {
            if let Err(e) = delete_nft_table(&family, &name) {
                errors.push(e);
            }
        }
        for prefix in self.nft_prefixes.drain(..) {
            errors.extend(delete_nft_tables_with_prefix(&prefix));
        }
        for dir in self.dirs.drain(..).rev() {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => errors.push(format!("failed to remove {}: {e}", dir.display())),
            }
        }
        errors
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.run();
    }
}

fn kill_and_wait(pid: i32) -> Result<(), String> {
    let Some(p) = Pid::from_raw(pid) else {
        return Err(format!("refusing to kill pid {pid}"));
    };
    match kill_process(p, Signal::KILL) {
        Ok(()) => {}
        Err(rustix::io::Errno::SRCH) => return Ok(()),
        Err(e) => return Err(format!("failed to kill pid {pid}: {e}")),
    }
    // We cannot reap a process that is not our child; wait until it is gone or a zombie.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return Ok(()),
            Ok(stat) => {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next());
                if matches!(state, Some('Z' | 'X')) {
                    return Ok(());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!("pid {pid} still alive 5 s after SIGKILL"))
}

/// Decode mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points at or below `dir` in this mount namespace, in mountinfo order.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .filter(|m| m.starts_with(&dir))
        .collect()
}

/// Unmount everything at or below `dir`, newest first, with MNT_DETACH; repeated until
/// nothing is left (stacked mounts), at most 10 rounds.
pub fn unmount_under(dir: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    for _ in 0..10 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return errors;
        }
        errors.clear();
        for m in mounts.iter().rev() {
            match unmount(m, UnmountFlags::DETACH) {
                Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => {}
                Err(e) => errors.push(format!("failed to unmount {}: {e}", m.display())),
            }
        }
    }
    errors
}

fn remove_cgroup(dir: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    if !dir.exists() {
        return errors;
    }
    // Children first.
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                errors.extend(remove_cgroup(&e.path()));
            }
        }
    }
    // A frozen v1 cgroup cannot let its killed tasks exit.
    let freezer = dir.join("freezer.state");
    if freezer.exists() {
        let _ = fs::write(&freezer, "THAWED");
    }
    let v2_freeze = dir.join("cgroup.freeze");
    if v2_freeze.exists() {
        let _ = fs::write(&v2_freeze, "0");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        for pid in &pids {
            if let Some(p) = Pid::from_raw(*pid) {
                let _ = kill_process(p, Signal::KILL);
            }
        }
        match fs::remove_dir(dir) {
            Ok(()) => return errors,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return errors,
            Err(e) if Instant::now() >= deadline => {
                errors.push(format!(
                    "failed to remove cgroup {}: {e} (pids: {pids:?})",
                    dir.display()
                ));
                return errors;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn output(cmd: &mut Command) -> Option<String> {
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Names of links (`ip -o link show`) starting with `prefix`.
pub fn links_with_prefix(prefix: &str) -> Vec<String> {
    let Some(out) = output(Command::new("ip").args(["-o", "link", "show"])) else {
        return Vec::new();
    };
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| !prefix.is_empty() && n.starts_with(prefix))
        .collect()
}

fn delete_links(prefix: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for name in links_with_prefix(prefix) {
        let out = Command::new("ip").args(["link", "delete", &name]).output();
        match out {
            Ok(o) if o.status.success() => {}
            // Deleting one end of a veth removes the other: "Cannot find device".
            Ok(o) if String::from_utf8_lossy(&o.stderr).contains("Cannot find device") => {}
            Ok(o) => errors.push(format!(
                "failed to delete link {name}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => errors.push(format!("failed to run ip link delete {name}: {e}")),
        }
    }
    errors
}

fn delete_netns(prefix: &str) -> Vec<String> {
    let Some(out) = output(Command::new("ip").args(["netns", "list"])) else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    for name in out.lines().filter_map(|l| l.split_whitespace().next()) {
        if prefix.is_empty() || !name.starts_with(prefix) {
            continue;
        }
        match Command::new("ip").args(["netns", "delete", name]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => errors.push(format!(
                "failed to delete netns {name}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => errors.push(format!("failed to run ip netns delete {name}: {e}")),
        }
    }
    errors
}

/// `(family, name)` of nftables tables whose name starts with `prefix`.
pub fn nft_tables_with_prefix(prefix: &str) -> Vec<(String, String)> {
    let Some(out) = output(Command::new("nft").args(["list", "tables"])) else {
        return Vec::new();
    };
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("table"), Some(family), Some(name)) => {
                    Some((family.to_string(), name.to_string()))
                }
                _ => None,
            }
        })
        .filter(|(_, n)| !prefix.is_empty() && n.starts_with(prefix))
        .collect()
}

fn delete_nft_table(family: &str, name: &str) -> Result<(), String> {
    match Command::new("nft")
        .args(["delete", "table", family, name])
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("No such file or directory") => Ok(()),
        Ok(o) => Err(format!(
            "failed to delete nft table {family} {name}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!(
            "failed to run nft delete table {family} {name}: {e}"
        )),
    }
}

fn delete_nft_tables_with_prefix(prefix: &str) -> Vec<String> {
    nft_tables_with_prefix(prefix)
        .into_iter()
        .filter_map(|(f, n)| delete_nft_table(&f, &n).err())
        .collect()
}
