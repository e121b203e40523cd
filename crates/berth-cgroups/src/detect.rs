//! Finding the hierarchies and the caller's own cgroup in each.

use std::path::{Path, PathBuf};

use crate::{CgroupVersion, Error, Result, fsutil};

/// v1 controllers a manager drives (others, like `name=systemd`, are ignored).
pub(crate) const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "pids",
    "blkio",
    "freezer",
    "devices",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

/// One v1 hierarchy: its controllers, where it is mounted and the caller's
/// cgroup in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// e.g. `["cpu", "cpuacct"]` for a co-mounted hierarchy.
    pub controllers: Vec<String>,
    /// e.g. `/sys/fs/cgroup/memory`.
    pub mount_point: PathBuf,
    /// The cgroup the mount shows at its mount point (field 4 of mountinfo), usually `/`.
    pub mount_root: String,
    /// The caller's cgroup in this hierarchy, as `/proc/self/cgroup` says.
    pub own: String,
}

impl Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    /// The directory of cgroup `cg` (a path from the hierarchy's root).
    pub fn dir_of(&self, cg: &str) -> PathBuf {
        let root = self.mount_root.trim_end_matches('/');
        let rel = if root.is_empty() {
            cg
        } else {
            cg.strip_prefix(root).unwrap_or(cg)
        };
        fsutil::join_cg(&self.mount_point, rel)
    }
}

/// The cgroup layout of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// v1 (including hybrid, whose controller-less cgroup2 mount is ignored).
    V1 { hierarchies: Vec<Hierarchy> },
    /// Unified: one cgroup2 mount, and the caller's `0::` cgroup.
    V2 { mount_point: PathBuf, own: String },
}

/// A mount of a cgroup file system from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub root: String,
    pub mount_point: PathBuf,
    pub v2: bool,
    pub options: Vec<String>,
}

fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup and cgroup2 mounts in a mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let _source = post.next();
        let super_opts = post.next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let fields: Vec<&str> = pre.split(' ').collect();
        if fields.len() < 5 {
            continue;
        }
        out.push(CgroupMount {
            root: unescape(fields[3]),
            mount_point: PathBuf::from(unescape(fields[4])),
            v2: fstype == "cgroup2",
            options: super_opts.split(',').map(str::to_string).collect(),
        });
    }
    out
}

/// `/proc/<pid>/cgroup` lines as (controllers, path); the v2 line has no controllers.
pub fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            let ctrls = if ctrls.is_empty() {
                Vec::new()
            } else {
                ctrls.split(',').map(str::to_string).collect()
            };
            Some((ctrls, path.to_string()))
        })
        .collect()
}

pub(crate) fn version_from_mountinfo(mountinfo: &str, root: &Path) -> Result<CgroupVersion> {
    let mounts = parse_mountinfo(mountinfo);
    if mounts.iter().any(|m| m.v2 && m.mount_point == root) {
        return Ok(CgroupVersion::V2);
    }
    if mounts.iter().any(|m| {
        !m.v2
            && m.options
                .iter()
                .any(|o| V1_CONTROLLERS.contains(&o.as_str()))
    }) {
        return Ok(CgroupVersion::V1);
    }
    Err(Error::NotMounted)
}

impl Layout {
    /// The layout of this host, from `/proc/self/mountinfo` and `/proc/self/cgroup`.
    pub fn from_host() -> Result<Layout> {
        let mountinfo = fsutil::read(Path::new("/proc/self/mountinfo"))?;
        let own = fsutil::read(Path::new("/proc/self/cgroup"))?;
        Layout::from_texts(&mountinfo, &own, Path::new(crate::DEFAULT_ROOT))
    }

    /// The layout described by a mountinfo text and a `/proc/self/cgroup` text;
    /// `root` is where a unified hierarchy would be mounted.
    pub fn from_texts(mountinfo: &str, own_cgroups: &str, root: &Path) -> Result<Layout> {
        let version = version_from_mountinfo(mountinfo, root)?;
        let mounts = parse_mountinfo(mountinfo);
        let own = parse_proc_cgroup(own_cgroups);
        match version {
            CgroupVersion::V2 => {
                let m = mounts
                    .iter()
                    .find(|m| m.v2 && m.mount_point == root)
                    .ok_or(Error::NotMounted)?;
                let own_path = own
                    .iter()
                    .find(|(c, _)| c.is_empty())
                    .map(|(_, p)| p.clone())
                    .ok_or_else(|| {
                        Error::NoOwnCgroup("the 0:: line of /proc/self/cgroup".into())
                    })?;
                let own_path = strip_mount_root(&m.root, &own_path);
                Ok(Layout::V2 {
                    mount_point: m.mount_point.clone(),
                    own: own_path,
                })
            }
            CgroupVersion::V1 => {
                let mut hierarchies: Vec<Hierarchy> = Vec::new();
                for m in mounts.iter().filter(|m| !m.v2) {
                    let controllers: Vec<String> = m
                        .options
                        .iter()
                        .filter(|o| V1_CONTROLLERS.contains(&o.as_str()))
                        .cloned()
                        .collect();
                    if controllers.is_empty() {
                        continue;
                    }
                    if hierarchies.iter().any(|h| h.controllers == controllers) {
                        continue; // a second mount of the same hierarchy
                    }
                    let Some((_, own_path)) = own
                        .iter()
                        .find(|(c, _)| controllers.iter().any(|x| c.contains(x)))
                    else {
                        continue;
                    };
                    hierarchies.push(Hierarchy {
                        controllers,
                        mount_point: m.mount_point.clone(),
                        mount_root: m.root.clone(),
                        own: own_path.clone(),
                    });
                }
                if hierarchies.is_empty() {
                    return Err(Error::NotMounted);
                }
                Ok(Layout::V1 { hierarchies })
            }
        }
    }

    /// A layout rooted at `root`: for v1 each `/proc/self/cgroup` line with
    /// controllers is the directory `<root>/<controllers>` (or `<root>/<first
    /// controller>` when that exists instead); for v2 `root` is the mount.
    pub fn at(root: &Path, version: CgroupVersion, own_cgroups: &str) -> Result<Layout> {
        let own = parse_proc_cgroup(own_cgroups);
        match version {
            CgroupVersion::V2 => {
                let own_path = own
                    .iter()
                    .find(|(c, _)| c.is_empty())
                    .map(|(_, p)| p.clone())
                    .ok_or_else(|| Error::NoOwnCgroup(own_cgroups.to_string()))?;
                Ok(Layout::V2 {
                    mount_point: root.to_path_buf(),
                    own: own_path,
                })
            }
            CgroupVersion::V1 => {
                let mut hierarchies = Vec::new();
                for (ctrls, path) in own {
                    let controllers: Vec<String> = ctrls
                        .iter()
                        .filter(|c| V1_CONTROLLERS.contains(&c.as_str()))
                        .cloned()
                        .collect();
                    if controllers.is_empty() {
                        continue;
                    }
                    let joined = root.join(controllers.join(","));
                    let first = root.join(&controllers[0]);
                    let mount_point = if !joined.exists() && first.exists() {
                        first
                    } else {
                        joined
                    };
                    hierarchies.push(Hierarchy {
                        controllers,
                        mount_point,
                        mount_root: "/".into(),
                        own: path,
                    });
                }
                if hierarchies.is_empty() {
                    return Err(Error::NoOwnCgroup(own_cgroups.to_string()));
                }
                Ok(Layout::V1 { hierarchies })
            }
        }
    }
}

fn strip_mount_root(mount_root: &str, own: &str) -> String {
    let r = mount_root.trim_end_matches('/');
    if r.is_empty() {
        return own.to_string();
    }
    match own.strip_prefix(r) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => own.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const OWN: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";

    #[test]
    fn hybrid_is_v1_and_ignores_unified_and_named() {
        let root = Path::new("/sys/fs/cgroup");
        assert_eq!(
            version_from_mountinfo(HYBRID, root).unwrap(),
            CgroupVersion::V1
        );
        let Layout::V1 { hierarchies } = Layout::from_texts(HYBRID, OWN, root).unwrap() else {
            panic!("expected v1")
        };
        let names: Vec<_> = hierarchies
            .iter()
            .map(|h| h.controllers.join(","))
            .collect();
        assert_eq!(names, ["cpu", "memory", "pids"]);
        let mem = hierarchies.iter().find(|h| h.has("memory")).unwrap();
        assert_eq!(mem.own, "/process_api/abc");
        assert_eq!(
            mem.dir_of("/process_api/abc/berth/x"),
            Path::new("/sys/fs/cgroup/memory/process_api/abc/berth/x")
        );
    }

    #[test]
    fn unified_at_root_is_v2() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let root = Path::new("/sys/fs/cgroup");
        assert_eq!(version_from_mountinfo(mi, root).unwrap(), CgroupVersion::V2);
        let l = Layout::from_texts(mi, "0::/user.slice/x\n", root).unwrap();
        assert_eq!(
            l,
            Layout::V2 {
                mount_point: root.into(),
                own: "/user.slice/x".into()
            }
        );
    }

    #[test]
    fn nothing_mounted_is_an_error() {
        let mi = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n";
        assert!(matches!(
            version_from_mountinfo(mi, Path::new("/sys/fs/cgroup")),
            Err(Error::NotMounted)
        ));
    }

    #[test]
    fn comounted_and_escaped_mounts() {
        let mi = "32 31 0:29 / /cg/cpu\\054cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let own = "2:cpu,cpuacct:/a\n";
        let Layout::V1 { hierarchies } =
            Layout::from_texts(mi, own, Path::new("/sys/fs/cgroup")).unwrap()
        else {
            panic!("expected v1")
        };
        assert_eq!(hierarchies[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(hierarchies[0].mount_point, Path::new("/cg/cpu,cpuacct"));
        assert_eq!(hierarchies[0].own, "/a");
    }

    #[test]
    fn mount_root_is_stripped() {
        let h = Hierarchy {
            controllers: vec!["memory".into()],
            mount_point: "/sys/fs/cgroup/memory".into(),
            mount_root: "/docker/x".into(),
            own: "/docker/x".into(),
        };
        assert_eq!(
            h.dir_of("/docker/x/berth/1"),
            Path::new("/sys/fs/cgroup/memory/berth/1")
        );
        assert_eq!(strip_mount_root("/docker/x", "/docker/x"), "/");
    }
}
