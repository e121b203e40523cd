//! What the runtime's integration tests share: unique ids, and `Env` — a temp dir with a
//! busybox bundle, a runtime root and a cgroup parent, all removed on drop (with any
//! container a test left behind).
#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_runtime::{Container, CreateOpts};

pub fn unique(p: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{p}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub cg_parent: String,
    pub ids: Vec<String>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("berth-runtime-test")
            .tempdir()
            .unwrap();
        let rootfs = dir.path().join("bundle/rootfs");
        for d in ["bin", "etc", "tmp", "proc", "dev", "sys"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("busybox-static (/bin/busybox) is required");
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for a in String::from_utf8_lossy(&list.stdout)
            .lines()
            .filter(|a| *a != "busybox")
        {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
        Env {
            dir,
            cg_parent: unique("berth-rt-test"),
            ids: Vec::new(),
        }
    }

    pub fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn spec(
        &mut self,
        id: &str,
        args: &[&str],
        extra: impl FnOnce(&mut serde_json::Value),
    ) -> oci_spec::runtime::Spec {
        self.ids.push(id.to_string());
        let mut s = serde_json::json!({
            "ociVersion": "1.1.0",
            "process": {"args": args, "cwd": "/", "user": {"uid": 0, "gid": 0},
                        "env": ["PATH=/bin"], "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}},
            "root": {"path": "rootfs", "readonly": true},
            "hostname": "lib",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
            ],
            "linux": {
                "cgroupsPath": format!("{}/{id}", self.cg_parent),
                "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}]
            }
        });
        extra(&mut s);
        serde_json::from_value(s).unwrap()
    }

    pub fn opts(&self) -> CreateOpts {
        CreateOpts {
            root: self.root(),
            bundle: self.bundle(),
            ..Default::default()
        }
    }
}

pub fn rmdir_tree(d: &Path) {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(d);
}

pub fn find_rm(d: &Path, name: &str, depth: u32) {
    let Ok(rd) = std::fs::read_dir(d) else { return };
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            if e.file_name() == name {
                rmdir_tree(&e.path());
            } else if depth > 0 {
                find_rm(&e.path(), name, depth - 1);
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in &self.ids {
            if let Ok(c) = Container::load(&self.root(), id) {
                let _ = c.delete(true);
            }
        }
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                find_rm(&h.path(), &self.cg_parent, 3);
            }
        }
    }
}
