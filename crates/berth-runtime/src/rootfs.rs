//! Rootfs preparation inside the container's mount namespace: propagation, the spec's
//! mounts, /dev, pivot_root, masked and read-only paths.

use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};

use berth_sys::mount;
use libc::{
    MS_BIND, MS_DIRSYNC, MS_MANDLOCK, MS_NOATIME, MS_NODEV, MS_NODIRATIME, MS_NOEXEC, MS_NOSUID,
    MS_PRIVATE, MS_RDONLY, MS_REC, MS_RELATIME, MS_REMOUNT, MS_SHARED, MS_SLAVE, MS_STRICTATIME,
    MS_SYNCHRONOUS, MS_UNBINDABLE,
};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::error::{InitError, Stage};

type R<T> = Result<T, InitError>;

/// A mount's options split the way mount(2) wants them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOpts {
    pub flags: u64,
    /// Flags explicitly cleared (`rw`, `suid`, ...), needed for remounts.
    pub clear: u64,
    pub propagation: u64,
    pub data: Vec<String>,
    pub bind: bool,
    pub recursive: bool,
}

/// Parse OCI mount options into flags, propagation and data (runc's table).
pub fn parse_options(opts: &[String]) -> MountOpts {
    let mut m = MountOpts::default();
    for o in opts {
        let (set, clr): (u64, u64) = match o.as_str() {
            "ro" => (MS_RDONLY, 0),
            "rw" => (0, MS_RDONLY),
            "nosuid" => (MS_NOSUID, 0),
            "suid" => (0, MS_NOSUID),
            "nodev" => (MS_NODEV, 0),
            "dev" => (0, MS_NODEV),
            "noexec" => (MS_NOEXEC, 0),
            "exec" => (0, MS_NOEXEC),
            "sync" => (MS_SYNCHRONOUS, 0),
            "async" => (0, MS_SYNCHRONOUS),
            "dirsync" => (MS_DIRSYNC, 0),
            "mand" => (MS_MANDLOCK, 0),
            "nomand" => (0, MS_MANDLOCK),
            "noatime" => (MS_NOATIME, 0),
            "atime" => (0, MS_NOATIME),
            "nodiratime" => (MS_NODIRATIME, 0),
            "diratime" => (0, MS_NODIRATIME),
            "relatime" => (MS_RELATIME, 0),
            "norelatime" => (0, MS_RELATIME),
            "strictatime" => (MS_STRICTATIME, 0),
            "remount" => (MS_REMOUNT, 0),
            "bind" => {
                m.bind = true;
                (0, 0)
            }
            "rbind" => {
                m.bind = true;
                m.recursive = true;
                (0, 0)
            }
            "private" => {
                m.propagation = MS_PRIVATE;
                (0, 0)
            }
            "rprivate" => {
                m.propagation = MS_PRIVATE | MS_REC;
                (0, 0)
            }
            "shared" => {
                m.propagation = MS_SHARED;
                (0, 0)
            }
            "rshared" => {
                m.propagation = MS_SHARED | MS_REC;
                (0, 0)
            }
            "slave" => {
                m.propagation = MS_SLAVE;
                (0, 0)
            }
            "rslave" => {
                m.propagation = MS_SLAVE | MS_REC;
                (0, 0)
            }
            "unbindable" => {
                m.propagation = MS_UNBINDABLE;
                (0, 0)
            }
            "runbindable" => {
                m.propagation = MS_UNBINDABLE | MS_REC;
                (0, 0)
            }
            // options the kernel has no flag for but runtimes accept
            "defaults" | "nosymfollow" | "idmap" | "ridmap" | "tmpcopyup" | "copy-symlink"
            | "z" | "Z" => (0, 0),
            other => {
                m.data.push(other.to_string());
                (0, 0)
            }
        };
        m.flags = (m.flags & !clr) | set;
        m.clear |= clr;
    }
    m
}

fn propagation_of(name: &str) -> Option<u64> {
    Some(match name {
        "private" => MS_PRIVATE,
        "rprivate" => MS_PRIVATE | MS_REC,
        "shared" => MS_SHARED,
        "rshared" => MS_SHARED | MS_REC,
        "slave" => MS_SLAVE,
        "rslave" => MS_SLAVE | MS_REC,
        "unbindable" => MS_UNBINDABLE,
        "runbindable" => MS_UNBINDABLE | MS_REC,
        _ => return None,
    })
}

/// Resolve `unsafe_path` inside `root` the way the container would see it: symlinks are
/// followed relative to `root` and `..` never climbs above it (like filepath-securejoin).
pub fn secure_join(root: &Path, unsafe_path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<std::ffi::OsString> = unsafe_path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let full = root.join(&candidate);
        match std::fs::read_link(&full) {
            Ok(target) if links < 255 => {
                links += 1;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(s) => pending.push(s.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved = candidate,
        }
    }
    root.join(resolved)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap_or("")
}

fn err(stage: Stage, path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> InitError {
    let path = p(path).to_string();
    let what = what.to_string();
    move |e| InitError::new(stage, &e, Some(&path), &what)
}

/// Make the host's mounts invisible to propagation and bind the rootfs onto itself.
pub fn prepare_root(spec: &Spec, rootfs: &Path) -> R<()> {
    let prop = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
        .and_then(|s| propagation_of(&s))
        .unwrap_or(MS_SLAVE | MS_REC);
    mount(None, "/", None, prop | MS_REC, None).map_err(err(
        Stage::Rootfs,
        Path::new("/"),
        "set root propagation",
    ))?;
    if prop & MS_SHARED != 0 {
        // pivot_root refuses a new root whose parent mount is shared: make just that
        // parent private (runc's rootfsParentMountPrivate). Only paid for shared roots.
        let parent = rootfs.parent().unwrap_or(Path::new("/"));
        let mp = mount_point_of(parent);
        mount(None, &mp, None, MS_PRIVATE, None).map_err(err(
            Stage::Rootfs,
            Path::new(&mp),
            "make rootfs parent mount private",
        ))?;
    }
    mount(
        Some(p(rootfs)),
        p(rootfs),
        Some("bind"),
        MS_BIND | MS_REC,
        None,
    )
    .map_err(err(Stage::Rootfs, rootfs, "bind rootfs onto itself"))?;
    Ok(())
}

/// The mount point (from /proc/self/mountinfo) that contains `path`.
fn mount_point_of(path: &Path) -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let path = path.to_string_lossy();
    let mut best = "/".to_string();
    for line in info.lines() {
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let within = mp == "/" || path == mp || path.starts_with(&format!("{mp}/"));
        if within && mp.len() >= best.len() {
            best = mp.to_string();
        }
    }
    best
}

fn ensure_target(dest: &Path, is_file: bool) -> R<()> {
    if dest.exists() {
        return Ok(());
    }
    if is_file {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(err(
                Stage::Mount,
                parent,
                "create mount point parent",
            ))?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dest)
            .map_err(err(Stage::Mount, dest, "create mount point file"))?;
    } else {
        std::fs::create_dir_all(dest).map_err(err(Stage::Mount, dest, "create mount point"))?;
    }
    Ok(())
}

/// Flags a remount must keep because the kernel locks them (in a user namespace).
fn locked_flags(path: &Path) -> u64 {
    use rustix::fs::StatVfsMountFlags as F;
    let Ok(st) = rustix::fs::statvfs(path) else {
        return 0;
    };
    let mut f = 0;
    for (k, v) in [
        (F::NOSUID, MS_NOSUID),
        (F::NODEV, MS_NODEV),
        (F::NOEXEC, MS_NOEXEC),
        (F::RDONLY, MS_RDONLY),
    ] {
        if st.f_flag.contains(k) {
            f |= v;
        }
    }
    for (k, v) in [
        (F::NOATIME, MS_NOATIME),
        (F::NODIRATIME, MS_NODIRATIME),
        (F::RELATIME, MS_RELATIME),
    ] {
        if st.f_flag.contains(k) {
            f |= v;
        }
    }
    f
}

/// Mount one spec entry below `rootfs`.
pub fn mount_one(
    rootfs: &Path,
    m: &Mount,
    cgroup_path: &str,
    v1_paths: &[(String, String)],
    new_cgroupns: bool,
) -> R<()> {
    let dest = secure_join(rootfs, m.destination());
    let typ = m.typ().clone().unwrap_or_default();
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let source = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned());
    if opts.bind || typ == "bind" {
        let src = source.clone().unwrap_or_default();
        let is_file = !Path::new(&src).is_dir();
        ensure_target(&dest, is_file)?;
        let rec = if opts.recursive { MS_REC } else { 0 };
        mount(Some(&src), p(&dest), Some("bind"), MS_BIND | rec, None).map_err(err(
            Stage::Mount,
            &dest,
            "bind mount",
        ))?;
        let extra = opts.flags & !(MS_REMOUNT);
        if extra != 0 || opts.clear & MS_RDONLY != 0 {
            if opts.recursive && extra & MS_RDONLY != 0 {
                let mut set = berth_sys::MOUNT_ATTR_RDONLY;
                for (f, a) in [
                    (MS_NOSUID, berth_sys::MOUNT_ATTR_NOSUID),
                    (MS_NODEV, berth_sys::MOUNT_ATTR_NODEV),
                    (MS_NOEXEC, berth_sys::MOUNT_ATTR_NOEXEC),
                ] {
                    if extra & f != 0 {
                        set |= a;
                    }
                }
                berth_sys::mount_setattr(p(&dest), berth_sys::AT_RECURSIVE, set, 0)
                    .map_err(err(Stage::Mount, &dest, "make rbind read-only"))?;
            } else {
                let keep = locked_flags(&dest) & !(MS_RDONLY);
                mount(
                    None,
                    p(&dest),
                    None,
                    MS_BIND | MS_REMOUNT | extra | keep,
                    None,
                )
                .map_err(err(
                    Stage::Mount,
                    &dest,
                    "remount bind mount with flags",
                ))?;
            }
        }
    } else if typ == "cgroup" || typ == "cgroup2" {
        mount_cgroup(&dest, &opts, cgroup_path, v1_paths, new_cgroupns)?;
    } else {
        ensure_target(&dest, false)?;
        let data = opts.data.join(",");
        let src = source.unwrap_or_else(|| typ.clone());
        let r = mount(
            Some(&src),
            p(&dest),
            Some(&typ),
            opts.flags & !MS_REMOUNT,
            (!data.is_empty()).then_some(data.as_str()),
        );
        match r {
            Ok(()) => {}
            // sysfs cannot be mounted in a user namespace that does not own the net
            // namespace: fall back to a read-only recursive bind of the host's /sys.
            Err(e) if typ == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
                mount(Some("/sys"), p(&dest), Some("bind"), MS_BIND | MS_REC, None)
                    .map_err(err(Stage::Mount, &dest, "bind /sys"))?;
                berth_sys::mount_setattr(
                    p(&dest),
                    berth_sys::AT_RECURSIVE,
                    berth_sys::MOUNT_ATTR_RDONLY
                        | berth_sys::MOUNT_ATTR_NOSUID
                        | berth_sys::MOUNT_ATTR_NODEV
                        | berth_sys::MOUNT_ATTR_NOEXEC,
                    0,
                )
                .map_err(err(Stage::Mount, &dest, "make /sys read-only"))?;
            }
            Err(e) => {
                return Err(InitError::new(
                    Stage::Mount,
                    &e,
                    Some(p(&dest)),
                    &format!("mount {typ}"),
                ));
            }
        }
    }
    if opts.propagation != 0 {
        mount(None, p(&dest), None, opts.propagation, None).map_err(err(
            Stage::Mount,
            &dest,
            "set mount propagation",
        ))?;
    }
    Ok(())
}

/// A cgroup mount: cgroup2 when the host is v2; on v1, a tmpfs holding each hierarchy's
/// container cgroup bound at `<dest>/<controllers>` (what runc does without cgroupns).
fn mount_cgroup(
    dest: &Path,
    opts: &MountOpts,
    cgroup_path: &str,
    v1_paths: &[(String, String)],
    new_cgroupns: bool,
) -> R<()> {
    ensure_target(dest, false)?;
    let ro = opts.flags & MS_RDONLY;
    let base = opts.flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC);
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        if new_cgroupns {
            return mount(Some("cgroup2"), p(dest), Some("cgroup2"), base | ro, None).map_err(err(
                Stage::Mount,
                dest,
                "mount cgroup2",
            ));
        }
        let host = format!("/sys/fs/cgroup{cgroup_path}");
        mount(Some(&host), p(dest), Some("bind"), MS_BIND, None).map_err(err(
            Stage::Mount,
            dest,
            "bind cgroup",
        ))?;
        return mount(None, p(dest), None, MS_BIND | MS_REMOUNT | base | ro, None).map_err(err(
            Stage::Mount,
            dest,
            "remount cgroup",
        ));
    }
    mount(
        Some("tmpfs"),
        p(dest),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .map_err(err(Stage::Mount, dest, "mount cgroup tmpfs"))?;
    let entries = std::fs::read_dir("/sys/fs/cgroup").map_err(err(
        Stage::Mount,
        Path::new("/sys/fs/cgroup"),
        "list cgroup hierarchies",
    ))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let host_root = e.path();
        let ft = match std::fs::symlink_metadata(&host_root) {
            Ok(m) => m.file_type(),
            Err(_) => continue,
        };
        let target = dest.join(&name);
        if ft.is_symlink() {
            if let Ok(t) = std::fs::read_link(&host_root) {
                let _ = std::os::unix::fs::symlink(t, &target);
            }
            continue;
        }
        let own = v1_paths
            .iter()
            .find(|(h, _)| *h == name)
            .map_or(cgroup_path, |(_, p)| p.as_str());
        let host = host_root.join(own.trim_start_matches('/'));
        let src = if host.is_dir() {
            host
        } else {
            host_root.clone()
        };
        ensure_target(&target, false)?;
        mount(Some(p(&src)), p(&target), Some("bind"), MS_BIND, None).map_err(err(
            Stage::Mount,
            &target,
            "bind cgroup hierarchy",
        ))?;
        mount(
            None,
            p(&target),
            None,
            MS_BIND | MS_REMOUNT | base | ro | locked_flags(&target),
            None,
        )
        .map_err(err(Stage::Mount, &target, "remount cgroup hierarchy"))?;
    }
    if ro != 0 {
        mount(
            None,
            p(dest),
            None,
            MS_REMOUNT | base | MS_RDONLY,
            Some("mode=755"),
        )
        .map_err(err(Stage::Mount, dest, "remount cgroup tmpfs read-only"))?;
    }
    Ok(())
}

/// The devices every container gets (runc's default set).
pub fn default_devices() -> Vec<(&'static str, u32, u32)> {
    vec![
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
}

#[allow(clippy::too_many_arguments)] // one device's fields, passed flat
fn make_device(
    rootfs: &Path,
    path: &Path,
    kind: LinuxDeviceType,
    major: i64,
    minor: i64,
    mode: u32,
    uid: u32,
    gid: u32,
    bind: bool,
) -> R<()> {
    let dest = secure_join(rootfs, path);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(err(
            Stage::Devices,
            parent,
            "create device directory",
        ))?;
    }
    if bind {
        ensure_target(&dest, true)?;
        return mount(Some(p(path)), p(&dest), Some("bind"), MS_BIND, None).map_err(err(
            Stage::Devices,
            &dest,
            "bind device from host",
        ));
    }
    use rustix::fs::{FileType, Mode};
    let ft = match kind {
        LinuxDeviceType::B => FileType::BlockDevice,
        LinuxDeviceType::P => FileType::Fifo,
        _ => FileType::CharacterDevice,
    };
    let _ = std::fs::remove_file(&dest);
    let dev = rustix::fs::makedev(major as u32, minor as u32);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &dest,
        ft,
        Mode::from_bits_truncate(mode & 0o7777),
        dev,
    )
    .map_err(|e| InitError::new(Stage::Devices, &e.into(), Some(p(&dest)), "mknod"))?;
    rustix::fs::chmod(&dest, Mode::from_bits_truncate(mode & 0o7777))
        .map_err(|e| InitError::new(Stage::Devices, &e.into(), Some(p(&dest)), "chmod device"))?;
    rustix::fs::chown(
        &dest,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(|e| InitError::new(Stage::Devices, &e.into(), Some(p(&dest)), "chown device"))?;
    Ok(())
}

/// Create the default devices, the spec's devices, and the /dev symlinks.
pub fn setup_dev(spec: &Spec, rootfs: &Path, in_userns: bool) -> R<()> {
    let devices: &[LinuxDevice] = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or(&[]);
    for (path, major, minor) in default_devices() {
        if devices.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        make_device(
            rootfs,
            Path::new(path),
            LinuxDeviceType::C,
            major.into(),
            minor.into(),
            0o666,
            0,
            0,
            in_userns,
        )?;
    }
    for d in devices {
        make_device(
            rootfs,
            d.path(),
            d.typ(),
            d.major(),
            d.minor(),
            d.file_mode().unwrap_or(0o666),
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
            in_userns,
        )?;
    }
    let dev = secure_join(rootfs, Path::new("/dev"));
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let l = dev.join(name);
        if std::fs::symlink_metadata(&l).is_err() {
            std::os::unix::fs::symlink(target, &l).map_err(err(
                Stage::Devices,
                &l,
                "create /dev symlink",
            ))?;
        }
    }
    if Path::new("/proc/kcore").exists() {
        let _ = std::os::unix::fs::symlink("/proc/kcore", dev.join("core"));
    }
    if dev.join("pts/ptmx").exists() {
        let ptmx = dev.join("ptmx");
        let _ = std::fs::remove_file(&ptmx);
        std::os::unix::fs::symlink("pts/ptmx", &ptmx).map_err(err(
            Stage::Devices,
            &ptmx,
            "create /dev/ptmx symlink",
        ))?;
    }
    Ok(())
}

/// Switch the root to `rootfs`: pivot_root(".", ".") then detach the old root (runc's way,
/// no temporary directory needed), or MS_MOVE + chroot with `no_pivot`.
pub fn enter_root(rootfs: &Path, no_pivot: bool) -> R<()> {
    use rustix::fs::{Mode, OFlags, open};
    let e = |what: &'static str| {
        move |x: rustix::io::Errno| InitError::new(Stage::PivotRoot, &x.into(), None, what)
    };
    if no_pivot {
        rustix::process::chdir(rootfs).map_err(e("chdir to rootfs"))?;
        mount(Some(p(rootfs)), "/", None, libc::MS_MOVE, None).map_err(err(
            Stage::PivotRoot,
            rootfs,
            "move rootfs to /",
        ))?;
        rustix::process::chroot(".").map_err(e("chroot"))?;
        rustix::process::chdir("/").map_err(e("chdir /"))?;
        return Ok(());
    }
    let old = open(
        "/",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(e("open old root"))?;
    let new = open(
        rootfs,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(e("open rootfs"))?;
    rustix::process::fchdir(new.as_fd()).map_err(e("fchdir rootfs"))?;
    rustix::process::pivot_root(".", ".").map_err(e("pivot_root"))?;
    rustix::process::fchdir(old.as_fd()).map_err(e("fchdir old root"))?;
    mount(None, ".", None, MS_SLAVE | MS_REC, None).map_err(err(
        Stage::PivotRoot,
        Path::new("."),
        "make old root slave",
    ))?;
    berth_sys::umount2(".", libc::MNT_DETACH).map_err(err(
        Stage::PivotRoot,
        Path::new("."),
        "detach old root",
    ))?;
    rustix::process::chdir("/").map_err(e("chdir /"))?;
    Ok(())
}

/// Hide a path (inside the new root): directories get an empty read-only tmpfs,
/// files get /dev/null bound over them.
pub fn mask_path(path: &str) -> R<()> {
    let md = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(InitError::new(
                Stage::Mount,
                &e,
                Some(path),
                "stat masked path",
            ));
        }
    };
    let r = if md.is_dir() {
        mount(Some("tmpfs"), path, Some("tmpfs"), MS_RDONLY, None)
    } else {
        mount(Some("/dev/null"), path, Some("bind"), MS_BIND, None)
    };
    r.map_err(|e| InitError::new(Stage::Mount, &e, Some(path), "mask path"))
}

/// Make `path` read-only with a bind remount that keeps the kernel-locked flags.
pub fn readonly_path(path: &str) -> R<()> {
    match mount(Some(path), path, Some("bind"), MS_BIND | MS_REC, None) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(InitError::new(
                Stage::Mount,
                &e,
                Some(path),
                "bind read-only path",
            ));
        }
    }
    let keep = locked_flags(Path::new(path));
    mount(
        None,
        path,
        None,
        MS_BIND | MS_REMOUNT | MS_RDONLY | keep,
        None,
    )
    .map_err(|e| InitError::new(Stage::Mount, &e, Some(path), "remount read-only path"))
}

/// Remount the (new) root read-only.
pub fn readonly_root() -> R<()> {
    let keep = locked_flags(Path::new("/"));
    mount(
        None,
        "/",
        None,
        MS_BIND | MS_REMOUNT | MS_RDONLY | keep,
        None,
    )
    .map_err(|e| InitError::new(Stage::Rootfs, &e, Some("/"), "remount rootfs read-only"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options_map_to_flags_propagation_and_data() {
        let m = parse_options(&v(&[
            "nosuid",
            "noexec",
            "ro",
            "rslave",
            "mode=755",
            "size=65536k",
        ]));
        assert_eq!(m.flags, MS_NOSUID | MS_NOEXEC | MS_RDONLY);
        assert_eq!(m.propagation, MS_SLAVE | MS_REC);
        assert_eq!(m.data, v(&["mode=755", "size=65536k"]));
        let m = parse_options(&v(&["rbind", "ro", "rw"]));
        assert!(m.bind && m.recursive);
        assert_eq!(m.flags & MS_RDONLY, 0);
        assert_eq!(m.clear, MS_RDONLY);
    }

    #[test]
    fn secure_join_stays_inside_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/abs")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("a/b/up")).unwrap();
        assert_eq!(
            secure_join(root, Path::new("/a/abs/passwd")),
            root.join("etc/passwd")
        );
        assert_eq!(secure_join(root, Path::new("/a/b/up/x")), root.join("x"));
        assert_eq!(secure_join(root, Path::new("../../etc")), root.join("etc"));
    }
}
