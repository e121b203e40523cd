//! The container's root filesystem: an overlay of the image's layers (lowerdirs, shared)
//! with `upper/` and `work/` under the container's directory, merged at `rootfs/`.

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
}

impl Overlay {
    /// The overlay of the container in `dir` over `lower`.
    pub fn new(dir: &Path, lower: Vec<PathBuf>) -> Overlay {
        Overlay {
            lower,
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("rootfs"),
        }
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
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            self.upper.display(),
            self.work.display()
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

/// Whether `path` is a mount point in our mount namespace (from /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
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
