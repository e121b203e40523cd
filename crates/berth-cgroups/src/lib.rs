//! cgroup v1 and v2 managers behind one trait: create, limits, freeze, kill, stats.
//!
//! The contract other crates code against lives in this file; the v1 and v2
//! managers implement it. Which one is used is detected at run time from
//! `/proc/self/mountinfo` (cgroup2 at `/sys/fs/cgroup` = v2; v1 hierarchies, with
//! or without a controller-less `unified` mount = v1, the "hybrid" case).
//!
//! Placement rule: a container's cgroup goes under the cgroup the *caller* runs
//! in, per hierarchy (`/proc/self/cgroup`), never at a hierarchy's root, unless
//! the caller gives an absolute path. No process is ever moved out of the cgroup
//! it started in.
#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;
use std::path::Path;

mod detect;
mod fsutil;
mod v1;
mod v2;

pub use detect::{Hierarchy, Layout, parse_mountinfo, parse_proc_cgroup};
pub use v1::V1Cgroup;
pub use v2::{V2Cgroup, blkio_weight_to_io_weight, shares_to_weight, swap_to_v2};

/// Where the cgroup file systems live on a normal host.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup model this host has, from `/proc/self/mountinfo`: cgroup2 mounted
/// at `/sys/fs/cgroup` is v2; any v1 controller hierarchy (with or without a
/// controller-less `unified` cgroup2 mount, the "hybrid" case) is v1.
pub fn detect() -> Result<CgroupVersion> {
    let mountinfo = fsutil::read(Path::new("/proc/self/mountinfo"))?;
    detect::version_from_mountinfo(&mountinfo, Path::new(DEFAULT_ROOT))
}

/// Open the cgroup for `placement` on this host (nothing is created until
/// [`Cgroup::create`]). The model is detected at run time; for
/// [`Placement::UnderOwn`] the caller's own cgroup is read from
/// `/proc/self/cgroup`, per hierarchy.
pub fn open(placement: &Placement) -> Result<Box<dyn Cgroup>> {
    let layout = Layout::from_host()?;
    open_with(&layout, placement)
}

/// Open the cgroup for `placement` in an explicit layout (tests, or a host
/// where the hierarchies are mounted somewhere unusual).
pub fn open_with(layout: &Layout, placement: &Placement) -> Result<Box<dyn Cgroup>> {
    if let Placement::Absolute(p) = placement
        && !p.starts_with('/')
        && p.contains('=')
    {
        return reopen_with(layout, p); // a saved per-hierarchy form
    }
    Ok(match layout {
        Layout::V1 { hierarchies } => Box::new(V1Cgroup::new(hierarchies, placement)?),
        Layout::V2 { mount_point, own } => Box::new(V2Cgroup::new(mount_point, own, placement)?),
    })
}

/// Open with the hierarchy root injected: for v1, each hierarchy is the
/// directory `<root>/<controllers>` named by a `/proc/self/cgroup`-format
/// `own_cgroups` text; for v2, `root` is the cgroup2 mount and the `0::` line of
/// `own_cgroups` is the caller's cgroup. Nothing is read from the host.
pub fn open_at(
    root: &Path,
    version: CgroupVersion,
    own_cgroups: &str,
    placement: &Placement,
) -> Result<Box<dyn Cgroup>> {
    let layout = Layout::at(root, version, own_cgroups)?;
    open_with(&layout, placement)
}

/// Which cgroup model a manager drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Frozen or not, as the freezer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FreezerState {
    Thawed,
    Freezing,
    Frozen,
}

/// What `stats` reports; fields a hierarchy does not have stay zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Total CPU time in nanoseconds.
    pub cpu_usage_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    pub cpu_throttled_periods: u64,
    pub cpu_throttled_ns: u64,
    pub memory_usage_bytes: u64,
    pub memory_max_usage_bytes: u64,
    /// `u64::MAX` when unlimited.
    pub memory_limit_bytes: u64,
    pub memory_cache_bytes: u64,
    pub oom_kills: u64,
    pub pids_current: u64,
    /// 0 when unlimited.
    pub pids_limit: u64,
    pub io_read_bytes: u64,
    pub io_write_bytes: u64,
}

/// Where a container's cgroup goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// `<caller's own cgroup>/<rel>` in every hierarchy (the default: `berth/<id>`).
    UnderOwn(String),
    /// An absolute path from each hierarchy's root (OCI `cgroupsPath` starting with `/`).
    Absolute(String),
}

impl Placement {
    /// OCI `linux.cgroupsPath` semantics: absolute paths are taken from each
    /// hierarchy's root, relative ones go under the caller's own cgroup, and no
    /// path at all means `berth/<id>` under the caller's own cgroup.
    pub fn from_oci(cgroups_path: Option<&str>, id: &str) -> Placement {
        match cgroups_path {
            Some(p) if p.starts_with('/') => Placement::Absolute(p.to_string()),
            Some(p) if !p.is_empty() => Placement::UnderOwn(p.to_string()),
            _ => Placement::UnderOwn(format!("berth/{id}")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cgroup io error on {path:?}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroups are not mounted at /sys/fs/cgroup")]
    NotMounted,
    #[error("invalid cgroup path {0:?}: {1}")]
    InvalidPath(String, &'static str),
    #[error("{controller} controller is not available: cannot apply {what}")]
    ControllerMissing {
        controller: &'static str,
        what: &'static str,
    },
    #[error("invalid resource value for {what}: {why}")]
    InvalidResource { what: &'static str, why: String },
    #[error("cgroup {0:?} still has processes")]
    Busy(std::path::PathBuf),
    #[error("cannot parse {path:?}: {why}")]
    Parse {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("timed out after {waited_ms} ms waiting for {what} in {path:?}")]
    Timeout {
        path: std::path::PathBuf,
        what: &'static str,
        waited_ms: u64,
    },
    #[error("no cgroup hierarchy for the caller in {0}")]
    NoOwnCgroup(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One container's cgroup, in whichever model the host has.
pub trait Cgroup: Send + Sync + std::fmt::Debug {
    fn version(&self) -> CgroupVersion;
    /// Create the cgroup (every hierarchy, for v1); idempotent.
    fn create(&self) -> Result<()>;
    /// Write `linux.resources` (memory, cpu, cpuset, pids, blkio/io, ...).
    fn apply(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()>;
    /// Move `pid` into this cgroup (every hierarchy, for v1).
    fn add_task(&self, pid: i32) -> Result<()>;
    /// v2 only: an `O_DIRECTORY` fd of the cgroup for `clone3(CLONE_INTO_CGROUP)`;
    /// `None` on v1, where the caller uses `add_task` instead.
    fn dir_fd_for_clone(&self) -> Result<Option<OwnedFd>>;
    /// Every pid in the cgroup (and, for v1, in its descendants).
    fn pids(&self) -> Result<Vec<i32>>;
    fn freeze(&self) -> Result<()>;
    fn thaw(&self) -> Result<()>;
    fn freezer_state(&self) -> Result<FreezerState>;
    /// Send `signal` to every process (v2 with SIGKILL: `cgroup.kill`).
    fn kill_all(&self, signal: i32) -> Result<()>;
    fn stats(&self) -> Result<Stats>;
    /// OOM kills so far (memory.events `oom_kill` on v2, memory.oom_control on v1).
    fn oom_kills(&self) -> Result<u64>;
    /// Remove the cgroup once empty; a cgroup already gone is success.
    fn destroy(&self) -> Result<()>;
    /// Forget the parent directories [`Cgroup::create`] made: [`Cgroup::destroy`] then
    /// removes only the cgroup itself, as it does for a value opened anew (the parents
    /// are shared by every container once one runs).
    fn keep_parents(&self) {}
    /// The path below each hierarchy's root, e.g. `/process_api/abc/berth/<id>`
    /// (on v1, the memory hierarchy's; see [`Cgroup::saved_path`]).
    fn path(&self) -> &str;
    /// What to record in a container's state to find this cgroup again from
    /// another process with [`reopen`]: the plain path when it is the same in
    /// every hierarchy, else `controllers=path` per v1 hierarchy joined by `;`
    /// (the caller's own cgroup differs per hierarchy on hybrid hosts).
    fn saved_path(&self) -> String {
        self.path().to_string()
    }
    /// This cgroup's directory in the hierarchy of `controller` (v2: any
    /// controller name, or `unified`), e.g. for a cgroup mount in the container.
    fn dir_of(&self, controller: &str) -> Option<std::path::PathBuf> {
        let _ = controller;
        None
    }
}

/// Open a cgroup from what [`Cgroup::saved_path`] returned (a plain path is
/// taken from each hierarchy's root, like [`Placement::Absolute`]).
pub fn reopen(saved: &str) -> Result<Box<dyn Cgroup>> {
    let layout = Layout::from_host()?;
    reopen_with(&layout, saved)
}

/// [`reopen`] in an explicit layout.
pub fn reopen_with(layout: &Layout, saved: &str) -> Result<Box<dyn Cgroup>> {
    match (layout, v1::parse_saved(saved)?) {
        (Layout::V1 { hierarchies }, Some(entries)) => {
            Ok(Box::new(V1Cgroup::exact(hierarchies, &entries)?))
        }
        (Layout::V2 { .. }, Some(_)) => Err(Error::InvalidPath(
            saved.to_string(),
            "per-hierarchy paths are a cgroup v1 form but this host is v2",
        )),
        (_, None) => open_with(layout, &Placement::Absolute(saved.to_string())),
    }
}
