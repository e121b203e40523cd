//! The container's root filesystem: an overlay of the image's layers (lowerdirs, shared)
//! with `upper/` and `work/` under the container's directory, merged at `rootfs/`.
//!
//! Throwaway containers (`--rm`, build steps) mount it `volatile` (kernel 5.10+, as Podman
//! does for `--rm`): overlayfs then skips every sync of the upper filesystem, above all
//! the one at unmount, which otherwise writes back the whole host filesystem's dirty data
//! and flushes the disk on the removal path. Their upper layer is never kept, so a crash
//! of the host loses nothing of value; a volatile upper cannot be mounted again after one
//! (the kernel refuses while `work/work/incompat/volatile` exists), and berthd removes such
//! containers at start (moby removes AutoRemove containers that are not running then).

use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use super::error::ContainerError;

/// The paths of a container's overlay.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Image layers, top first.
    pub lower: Vec<PathBuf>,
    /// `<dir>/upper`.
    pub upper: PathBuf,
    /// `<dir>/work`.
    pub work: PathBuf,
    /// `<dir>/rootfs`.
    pub merged: PathBuf,
    /// Mounted with `volatile`: no syncs of the upper filesystem (throwaway containers).
    pub volatile: bool,
}

impl Overlay {
    /// The overlay of the container in `dir` over `lower`.
    pub fn new(dir: &Path, lower: Vec<PathBuf>) -> Overlay {
        Overlay {
            lower,
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("rootfs"),
            volatile: false,
        }
    }

    /// The same overlay, mounted `volatile` when `yes` (see the module docs).
    pub fn volatile(mut self, yes: bool) -> Overlay {
        self.volatile = yes;
        self
    }

    /// Creates the directories and mounts the overlay (a no-op when already mounted).
    pub fn mount(&self) -> Result<(), ContainerError> {
        if is_mounted(&self.merged) {
            return Ok(());
        }
        for d in [&self.upper, &self.work, &self.merged] {
            std::fs::create_dir_all(d).map_err(ContainerError::io("create", d))?;
        }
        let mut lower = self.lower.clone();
        if lower.is_empty() {
            // an image without layers: overlayfs wants at least one lowerdir
            let empty = self.merged.with_file_name("empty-lower");
            std::fs::create_dir_all(&empty).map_err(ContainerError::io("create", &empty))?;
            lower.push(empty);
        }
        let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}{}",
            lower.join(":"),
            self.upper.display(),
            self.work.display(),
            if self.volatile { ",volatile" } else { "" }
        );
        let data = std::ffi::CString::new(data).map_err(|e| ContainerError::Mount {
            op: "mount",
            path: self.merged.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        rustix::mount::mount(
            "overlay",
            &self.merged,
            "overlay",
            MountFlags::empty(),
            data.as_c_str(),
        )
        .map_err(|e| ContainerError::Mount {
            op: "mount",
            path: self.merged.display().to_string(),
            source: e.into(),
        })
    }

    /// Unmounts the overlay ("not mounted" is success).
    pub fn unmount(&self) -> Result<(), ContainerError> {
        unmount(&self.merged)
    }
}

/// Lazily unmounts `path` if it is a mount point.
pub fn unmount(path: &Path) -> Result<(), ContainerError> {
    if !is_mounted(path) {
        return Ok(());
    }
    match rustix::mount::unmount(path, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(ContainerError::Mount {
            op: "unmount",
            path: path.display().to_string(),
            source: e.into(),
        }),
    }
}

/// Whether `path` is a mount point in our mount namespace: one statx (its
/// `STATX_ATTR_MOUNT_ROOT`, kernel 5.8+), else /proc/self/mountinfo (which grows with
/// every container's overlay).
pub fn is_mounted(path: &Path) -> bool {
    use rustix::fs::{AtFlags, CWD, StatxAttributes, StatxFlags};
    match rustix::fs::statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    ) {
        Ok(st) if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
            st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
        }
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => false,
        _ => is_mounted_by_mountinfo(path),
    }
}

fn is_mounted_by_mountinfo(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.display().to_string();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape(m) == want)
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_mounted_sees_a_mount_point_come_and_go() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("m");
        std::fs::create_dir(&m).unwrap();
        assert!(!is_mounted(&m));
        assert!(!is_mounted(&t.path().join("absent")));
        rustix::mount::mount("tmpfs", &m, "tmpfs", MountFlags::empty(), None).unwrap();
        let mounted = is_mounted(&m);
        let by_mountinfo = is_mounted_by_mountinfo(&m);
        unmount(&m).unwrap();
        assert!(mounted, "a tmpfs mounted at {m:?}");
        assert!(by_mountinfo);
        assert!(!is_mounted(&m));
        assert!(!is_mounted_by_mountinfo(&m));
    }
}
