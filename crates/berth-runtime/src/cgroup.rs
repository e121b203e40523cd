//! The one place this crate talks to berth-cgroups.

use std::os::fd::OwnedFd;

use berth_cgroups::{Cgroup, Placement};

use crate::error::{Error, Result};

/// The cgroup for a new container (`linux.cgroupsPath` semantics).
pub fn for_spec(cgroups_path: Option<&str>, id: &str) -> Result<Box<dyn Cgroup>> {
    Ok(berth_cgroups::open(&Placement::from_oci(cgroups_path, id))?)
}

/// cgroup v1: the `tasks` file of the container's cgroup in every hierarchy, opened for
/// writing, for the child to join by itself (see [`join_self`]). Empty on v2, where the
/// child is born in its cgroup (`CLONE_INTO_CGROUP`).
///
/// Why not `cgroup.procs` from the parent: on v1 a write of another process's pid takes
/// the global `cgroup_threadgroup_rwsem` for writing, which waits for an RCU grace
/// period (10-30 ms measured here, the largest part of a `run --rm true`). A
/// single-threaded task writing `0` (itself) to `tasks` skips that lock (Linux 5.18+,
/// "cgroup: Optimize single thread migration"): about 50 us per hierarchy.
pub fn v1_task_files(cg: &dyn Cgroup) -> Result<Vec<OwnedFd>> {
    if cg.version() != berth_cgroups::CgroupVersion::V1 {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| Error::io("failed to read", "/proc/self/cgroup", e))?;
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for (ctrls, _) in berth_cgroups::parse_proc_cgroup(&text) {
        let Some(first) = ctrls.first() else { continue };
        if let Some(d) = cg.dir_of(first)
            && !dirs.contains(&d)
        {
            dirs.push(d);
        }
    }
    dirs.iter()
        .map(|d| {
            let f = d.join("tasks");
            rustix::fs::open(
                &f,
                rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| Error::io("failed to open cgroup tasks file", &f, e.into()))
        })
        .collect()
}

/// In the cloned child (single-threaded): join the cgroup whose `tasks` files `fds` are,
/// by writing `0` (this task) to each, then close them.
pub(crate) fn join_self(fds: Vec<OwnedFd>) -> std::result::Result<(), rustix::io::Errno> {
    for fd in fds {
        rustix::io::write(&fd, b"0")?;
    }
    Ok(())
}

/// runc's default device allow-list, appended after the spec's own rules so the default
/// /dev set (and a pty) works even when the spec starts with "deny all".
pub fn with_default_devices(
    res: &oci_spec::runtime::LinuxResources,
) -> oci_spec::runtime::LinuxResources {
    let mut res = res.clone();
    let Some(list) = res.devices().clone() else {
        return res;
    };
    let mut list = list;
    let rule = |typ: &str,
                major: Option<i64>,
                minor: Option<i64>,
                access: &str|
     -> Option<oci_spec::runtime::LinuxDeviceCgroup> {
        serde_json::from_value(serde_json::json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": access})).ok()
    };
    let defaults = [
        rule("c", None, None, "m"),
        rule("b", None, None, "m"),
        rule("c", Some(1), Some(3), "rwm"),
        rule("c", Some(1), Some(5), "rwm"),
        rule("c", Some(1), Some(7), "rwm"),
        rule("c", Some(1), Some(8), "rwm"),
        rule("c", Some(1), Some(9), "rwm"),
        rule("c", Some(5), Some(0), "rwm"),
        rule("c", Some(5), Some(1), "rwm"),
        rule("c", Some(5), Some(2), "rwm"),
        rule("c", Some(136), None, "rwm"),
    ];
    // defaults go first so the spec's later rules (e.g. an explicit deny) still win
    let mut out: Vec<_> = Vec::new();
    let (first_deny_all, rest): (Vec<_>, Vec<_>) = list.drain(..).partition(|d| {
        !d.allow() && d.major().is_none() && d.minor().is_none() && d.typ().is_none()
    });
    out.extend(first_deny_all);
    out.extend(defaults.into_iter().flatten());
    out.extend(rest);
    res.set_devices(Some(out));
    res
}

/// cgroup v1: the container's path in each hierarchy (keyed by the hierarchy's directory
/// name under /sys/fs/cgroup), derived like the cgroup manager does: relative paths go
/// under the caller's own cgroup of that hierarchy, absolute ones are taken as given.
pub fn v1_paths(cgroups_path: Option<&str>, id: &str) -> Vec<(String, String)> {
    let rel = match Placement::from_oci(cgroups_path, id) {
        Placement::Absolute(p) => {
            return own_hierarchies()
                .into_iter()
                .map(|(h, _)| (h, p.clone()))
                .collect();
        }
        Placement::UnderOwn(r) => r,
    };
    own_hierarchies()
        .into_iter()
        .map(|(h, own)| (h, format!("{}/{}", own.trim_end_matches('/'), rel)))
        .collect()
}

fn own_hierarchies() -> Vec<(String, String)> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrl, path) = (it.next()?, it.next()?, it.next()?);
            if ctrl.is_empty() {
                return None;
            }
            Some((
                ctrl.trim_start_matches("name=").to_string(),
                path.to_string(),
            ))
        })
        .collect()
}
