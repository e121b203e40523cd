use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use berth_testkit::{TestDir, busybox_rootfs};

#[test]
fn busybox_rootfs_has_applets_users_and_modes() {
    let dir = TestDir::new("rootfs").unwrap();
    let root = dir.join("rootfs");
    busybox_rootfs(&root).unwrap();

    let bb = fs::metadata(root.join("bin/busybox")).unwrap();
    assert_eq!(bb.permissions().mode() & 0o7777, 0o755);
    for applet in ["bin/sh", "bin/true", "bin/cat", "bin/sleep", "usr/bin/env"] {
        let m = fs::metadata(root.join(applet)).unwrap();
        assert_eq!(m.ino(), bb.ino(), "{applet} is a hard link to /bin/busybox");
    }
    assert!(bb.nlink() > 200, "applet links: {}", bb.nlink());

    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.contains("root:x:0:0:"));
    assert!(passwd.contains("nobody:x:65534:65534:"));
    let group = fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(group.contains("root:x:0:") && group.contains("nobody:x:65534:"));

    assert_eq!(
        fs::metadata(root.join("tmp")).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        fs::metadata(root.join("root"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o700
    );
    for d in ["dev", "proc", "sys", "etc", "var"] {
        assert!(root.join(d).is_dir(), "{d}");
    }
}

#[test]
fn busybox_rootfs_runs_under_chroot() {
    let dir = TestDir::new("rootfs").unwrap();
    busybox_rootfs(dir.path()).unwrap();
    // Real execution of the applets inside the tree (we run as root).
    let out = Command::new("chroot")
        .arg(dir.path())
        .args(["/bin/sh", "-c", "id -un; echo hello | cat; ls -d /tmp"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "root\nhello\n/tmp\n");
}

#[test]
fn busybox_rootfs_is_idempotent() {
    let dir = TestDir::new("rootfs").unwrap();
    busybox_rootfs(dir.path()).unwrap();
    busybox_rootfs(dir.path()).unwrap();
    assert!(dir.join("bin/sh").exists());
}

#[test]
fn test_dir_is_removed_on_drop() {
    let dir = TestDir::new("drop").unwrap();
    let p = dir.path().to_path_buf();
    fs::write(dir.join("f"), b"x").unwrap();
    drop(dir);
    assert!(!p.exists());
}
