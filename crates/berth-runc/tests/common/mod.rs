//! Test support: a busybox bundle per test, a private state root, and a guard that
//! force-deletes containers and removes the test's cgroup parent even on panic.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth-runc");

static N: AtomicU32 = AtomicU32::new(0);

pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Build `<dir>/rootfs` from the static busybox with every applet linked.
pub fn busybox_rootfs(rootfs: &Path) {
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("busybox-static must be installed (/bin/busybox)");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnobody:x:65534:\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/hostname"), "from-image\n").unwrap();
}

/// A bundle + state root + cgroup parent that all disappear on drop.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub cg_parent: String,
    pub ids: std::cell::RefCell<Vec<(String, String)>>,
}

impl Env {
    pub fn new(args: &[&str]) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("berth-runc-test")
            .tempdir()
            .unwrap();
        let bundle = dir.path().join("bundle");
        busybox_rootfs(&bundle.join("rootfs"));
        let cg_parent = unique("berth-test");
        let out = Command::new(BERTH)
            .args(["spec", "-b"])
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = Env {
            root: dir.path().join("state"),
            bundle,
            dir,
            cg_parent,
            ids: Default::default(),
        };
        env.edit(|s| {
            s["process"]["terminal"] = false.into();
            s["process"]["args"] = serde_json::json!(args);
        });
        env
    }

    /// A `crun` wrapper for this host (PEERS.md): crun 1.8 refuses hybrid cgroups, so it
    /// runs in a private mount namespace where the unified hierarchy's
    /// cgroup.controllers is hidden behind an empty file. Touches no hierarchy.
    pub fn crun(&self) -> String {
        let empty = self.dir.path().join("empty");
        let wrapper = self.dir.path().join("crun-wrapper");
        if !wrapper.exists() {
            std::fs::write(&empty, "").unwrap();
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\nexec unshare --mount --propagation slave sh -c 'mount --bind {} /sys/fs/cgroup/unified/cgroup.controllers && exec crun \"$@\"' sh \"$@\"\n",
                    empty.display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        wrapper.to_string_lossy().into_owned()
    }

    pub fn spec(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.bundle.join("config.json")).unwrap()).unwrap()
    }

    pub fn edit(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let mut s = self.spec();
        f(&mut s);
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&s).unwrap(),
        )
        .unwrap();
    }

    /// A fresh id whose cgroup goes under this test's parent.
    pub fn id(&self, runtime: &str) -> String {
        let id = unique("c");
        self.edit(|s| s["linux"]["cgroupsPath"] = format!("{}/{id}", self.cg_parent).into());
        self.ids
            .borrow_mut()
            .push((runtime.to_string(), id.clone()));
        id
    }

    pub fn root_for(&self, runtime: &str) -> PathBuf {
        self.root.join(runtime.replace('/', "_"))
    }

    /// Run `berth-runc` (or another runtime binary) with `--root` set.
    pub fn rt(&self, runtime: &str, args: &[&str]) -> Output {
        let mut c = Command::new(runtime);
        c.arg("--root").arg(self.root_for(runtime)).args(args);
        c.output().unwrap()
    }

    /// For verbs that leave a container running (`create`, `run -d`): its init keeps
    /// whatever stdio we give, so give it none and only collect the status + stderr file.
    pub fn berth_detached(&self, args: &[&str]) -> Output {
        let errf = self.dir.path().join(unique("stderr"));
        let status = Command::new(BERTH)
            .arg("--root")
            .arg(self.root_for(BERTH))
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&errf).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: Vec::new(),
            stderr: std::fs::read(&errf).unwrap_or_default(),
        }
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.rt(BERTH, args)
    }

    /// `run` the bundle with a fresh id; returns the output.
    pub fn run_with(&self, runtime: &str) -> Output {
        let id = self.id(runtime);
        let b = self.bundle.to_str().unwrap().to_string();
        self.rt(runtime, &["run", "-b", &b, &id])
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn find_and_remove(dir: &Path, name: &str, depth: u32) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        if e.file_name() == name {
            remove_cgroup_tree(&e.path());
        } else if depth > 0 {
            find_and_remove(&e.path(), name, depth - 1);
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for (runtime, id) in self.ids.borrow().iter() {
            let _ = self.rt(runtime, &["delete", "--force", id]);
        }
        // the cgroup parent sits under our own cgroup in every hierarchy
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                find_and_remove(&h.path(), &self.cg_parent, 3);
            }
        }
    }
}
