//! The seccomp BPF cache through real containers (root, real kernel): a profile that
//! denies mkdir with EACCES gives the same denial on the first (compiled) and second
//! (cached) run, in exec too, and a corrupt cache file is ignored and rewritten.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_runtime::{Container, CreateOpts, ExecOpts};

fn unique(p: &str) -> String {
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

struct Env {
    dir: tempfile::TempDir,
    cg_parent: String,
    ids: Vec<String>,
}

impl Env {
    fn new() -> Env {
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

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn spec(
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

    fn opts(&self) -> CreateOpts {
        CreateOpts {
            root: self.root(),
            bundle: self.bundle(),
            ..Default::default()
        }
    }
}

fn rmdir_tree(d: &Path) {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(d);
}

fn find_rm(d: &Path, name: &str, depth: u32) {
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

fn seccomp_profile() -> serde_json::Value {
    serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    })
}

/// mkdir must fail with EACCES (the profile's errno), not succeed, in a tmpfs.
const DENIED: &str =
    "mkdir /dev/x 2>&1 | grep -q 'Permission denied' && ! test -d /dev/x && exit 7";

fn run_once(env: &mut Env, nnp: bool) -> i32 {
    let id = unique("sc");
    let spec = env.spec(&id, &["sh", "-c", DENIED], |s| {
        s["linux"]["seccomp"] = seccomp_profile();
        s["process"]["noNewPrivileges"] = serde_json::json!(nnp);
    });
    let mut c = Container::create(&id, spec, &env.opts()).unwrap();
    c.start().unwrap();
    let code = c.wait().unwrap();
    Container::load(&env.root(), &id)
        .unwrap()
        .delete(false)
        .unwrap();
    code
}

fn cache_file(env: &Env) -> PathBuf {
    let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(seccomp_profile()).unwrap();
    berth_runtime::seccomp::cache_path(&env.root(), &s).unwrap()
}

#[test]
fn cached_profile_denies_the_same_on_first_and_second_run() {
    let mut env = Env::new();
    let path = cache_file(&env);
    assert!(!path.exists());
    assert_eq!(run_once(&mut env, false), 7, "first run (compiled)");
    let written = std::fs::metadata(&path).expect("the first run caches the program");
    let good = std::fs::read(&path).unwrap();
    assert_eq!(run_once(&mut env, true), 7, "second run (cached)");
    // a hit reads the file, it does not replace it
    let after = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(written.ino(), after.ino());
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

#[test]
fn corrupt_cache_file_is_ignored_and_rewritten() {
    let mut env = Env::new();
    assert_eq!(run_once(&mut env, false), 7);
    let path = cache_file(&env);
    let good = std::fs::read(&path).unwrap();
    // a program that allows everything, with a wrong checksum: must not be loaded
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 8..].copy_from_slice(&[6, 0, 0, 0, 0, 0, 0xff, 0x7f]);
    std::fs::write(&path, &bad).unwrap();
    assert_eq!(
        run_once(&mut env, false),
        7,
        "corrupt cache must not weaken the filter"
    );
    assert_eq!(std::fs::read(&path).unwrap(), good, "rewritten");
    std::fs::write(&path, b"BERTHBPF").unwrap();
    assert_eq!(run_once(&mut env, true), 7);
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

#[test]
fn exec_uses_the_cached_program() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    let mut env = Env::new();
    let id = unique("sc");
    let spec = env.spec(&id, &["sleep", "100"], |s| {
        s["linux"]["seccomp"] = seccomp_profile();
    });
    let mut c = Container::create(&id, spec, &env.opts()).unwrap();
    c.start().unwrap();
    let path = cache_file(&env);
    let good = std::fs::read(&path).unwrap();
    let mut p = c.state.config.process().clone().unwrap();
    p.set_args(Some(vec!["sh".into(), "-c".into(), DENIED.into()]));
    for round in 0..2 {
        if round == 1 {
            std::fs::write(&path, b"junk").unwrap();
        }
        let pid = c.exec(&p, &ExecOpts::default()).unwrap();
        let (_, st) = rustix::process::waitpid(
            rustix::process::Pid::from_raw(pid),
            rustix::process::WaitOptions::empty(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(st.exit_status(), Some(7), "exec round {round}");
        assert_eq!(std::fs::read(&path).unwrap(), good);
    }
    c.kill(libc::SIGKILL, false).unwrap();
    c.wait().unwrap();
    Container::load(&env.root(), &id)
        .unwrap()
        .delete(false)
        .unwrap();
}
