//! The busybox root filesystem: Debian's busybox-static plus its applet links.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

/// Where Debian's `busybox-static` installs the statically linked binary.
pub const BUSYBOX_BIN: &str = "/bin/busybox";

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\n";

/// Populate `dir` (created if missing) with a busybox root filesystem built from
/// [`BUSYBOX_BIN`]. See [`busybox_rootfs_from`].
pub fn busybox_rootfs(dir: &Path) -> io::Result<()> {
    busybox_rootfs_from(Path::new(BUSYBOX_BIN), dir)
}

/// Populate `dir` with a busybox root filesystem made from the static binary `busybox`:
///
/// - `/bin/busybox` (mode 0755) and one hard link per applet at the path
///   `busybox --list-full` gives (`bin/sh`, `usr/bin/env`, ...), as in Docker Hub's image,
/// - `/etc/passwd` and `/etc/group` with `root` (0) and `nobody` (65534),
/// - `/tmp` mode 1777, `/root` 0700, and empty `/dev /proc /sys /etc /var /home`.
///
/// Every mode is set explicitly, so the result does not depend on the umask.
pub fn busybox_rootfs_from(busybox: &Path, dir: &Path) -> io::Result<()> {
    let listing = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("failed to run {} --list-full: {e}", busybox.display()),
            )
        })?;
    if !listing.status.success() {
        return Err(io::Error::other(format!(
            "{} --list-full exited with {}",
            busybox.display(),
            listing.status
        )));
    }
    let listing = String::from_utf8_lossy(&listing.stdout);

    for (d, mode) in [
        ("", 0o755),
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("etc", 0o755),
        ("var", 0o755),
        ("home", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
    ] {
        let p = dir.join(d);
        fs::create_dir_all(&p).map_err(|e| with_path(e, "create directory", &p))?;
        set_mode(&p, mode)?;
    }

    let bin = dir.join("bin/busybox");
    fs::copy(busybox, &bin).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "failed to copy {} to {}: {e}",
                busybox.display(),
                bin.display()
            ),
        )
    })?;
    set_mode(&bin, 0o755)?;

    for applet in listing.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let rel = applet.trim_start_matches('/');
        if rel == "bin/busybox" || rel.split('/').any(|c| c == ".." || c.is_empty()) {
            continue;
        }
        let link = dir.join(rel);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(|e| with_path(e, "create directory", parent))?;
        }
        match fs::symlink_metadata(&link) {
            Ok(_) => fs::remove_file(&link).map_err(|e| with_path(e, "remove", &link))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(with_path(e, "stat", &link)),
        }
        // Hard links, as in Docker Hub's busybox image; fall back to a symlink if the
        // filesystem refuses (never happens within one directory tree on ext4/tmpfs).
        if fs::hard_link(&bin, &link).is_err() {
            symlink("/bin/busybox", &link).map_err(|e| with_path(e, "symlink", &link))?;
        }
    }

    for (name, content) in [("etc/passwd", PASSWD), ("etc/group", GROUP)] {
        let p = dir.join(name);
        fs::write(&p, content).map_err(|e| with_path(e, "write", &p))?;
        set_mode(&p, 0o644)?;
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .map_err(|e| with_path(e, &format!("chmod {mode:o}"), p))
}

fn with_path(e: io::Error, what: &str, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("failed to {what} {}: {e}", p.display()))
}
