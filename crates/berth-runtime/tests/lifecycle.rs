//! The library API used directly (root, real kernel): lifecycle, structured init
//! errors, exec, and the recycled-pid guard.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_runtime::{Container, CreateOpts, Error, ExecOpts, Stage, Status};

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

#[test]
fn create_start_wait_delete() {
    let mut env = Env::new();
    let id = unique("c");
    let spec = env.spec(
        &id,
        &[
            "sh",
            "-c",
            "test $(hostname) = lib && test $$ = 1 && exit 3",
        ],
        |_| {},
    );
    let mut c = Container::create(&id, spec, &env.opts()).unwrap();
    assert_eq!(c.status(), Status::Created);
    assert!(c.dir().join("state.json").exists());
    c.start().unwrap();
    assert_eq!(c.wait().unwrap(), 3);
    let c = Container::load(&env.root(), &id).unwrap();
    assert_eq!(c.status(), Status::Stopped);
    let dir = c.dir().to_path_buf();
    c.delete(false).unwrap();
    assert!(!dir.exists());
    assert!(matches!(
        Container::load(&env.root(), &id),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn missing_binary_is_a_structured_error_and_nothing_is_left() {
    let mut env = Env::new();
    let id = unique("c");
    let spec = env.spec(&id, &["/no/such/bin"], |_| {});
    match Container::create(&id, spec, &env.opts()) {
        Err(Error::Init(e)) => {
            assert_eq!(e.stage, Stage::Exec);
            assert_eq!(e.errno, libc::ENOENT);
            assert_eq!(e.path.as_deref(), Some("/no/such/bin"));
            assert_eq!(e.exit_code(), Some(127));
        }
        other => panic!("expected an init error, got {other:?}"),
    }
    assert!(!env.root().join(&id).exists(), "state dir left behind");
}

#[test]
fn failed_mount_names_its_path() {
    let mut env = Env::new();
    let id = unique("c");
    let spec = env.spec(&id, &["true"], |s| {
        s["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/data", "type": "bind", "source": "/no/such/source", "options": ["rbind"]
        }));
    });
    match Container::create(&id, spec, &env.opts()) {
        Err(Error::Init(e)) => {
            assert_eq!(e.stage, Stage::Mount);
            assert_eq!(e.errno, libc::ENOENT);
            assert!(e.path.as_deref().unwrap().ends_with("rootfs/data"), "{e}");
        }
        other => panic!("expected an init error, got {other:?}"),
    }
}

#[test]
fn recycled_pid_is_never_signalled() {
    let mut env = Env::new();
    let id = unique("c");
    let spec = env.spec(&id, &["sleep", "100"], |_| {});
    let c = Container::create(&id, spec, &env.opts()).unwrap();
    let mut st = c.state.clone();
    // pretend the pid was recycled: same pid, another start time
    st.pid_start_time += 1;
    st.save(c.dir()).unwrap();
    let fake = Container::load(&env.root(), &id).unwrap();
    assert_eq!(fake.status(), Status::Stopped);
    assert!(matches!(
        fake.kill(libc::SIGKILL, false),
        Err(Error::BadStatus { .. })
    ));
    // the real init is untouched
    assert!(Path::new(&format!("/proc/{}", c.pid())).exists());
    c.state.save(c.dir()).unwrap();
    Container::load(&env.root(), &id)
        .unwrap()
        .delete(true)
        .unwrap();
}

#[test]
fn exec_joins_namespaces_and_cgroup() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    let mut env = Env::new();
    let id = unique("c");
    let spec = env.spec(&id, &["sleep", "100"], |_| {});
    let mut c = Container::create(&id, spec, &env.opts()).unwrap();
    c.start().unwrap();
    let mut p = c.state.config.process().clone().unwrap();
    // same uts and pid namespace as the init, and in the container's cgroup in every
    // v1 hierarchy the process can see (no cgroup namespace here, so full paths)
    let script = format!(
        "test $(hostname) = lib && grep -q 'sleep' /proc/1/cmdline && test $(grep -v ':/$' /proc/self/cgroup | grep -c {}) -ge 8 && exit 9",
        env.cg_parent
    );
    p.set_args(Some(vec!["sh".into(), "-c".into(), script]));
    let pid = c.exec(&p, &ExecOpts::default()).unwrap();
    let (_, st) = rustix::process::waitpid(
        rustix::process::Pid::from_raw(pid),
        rustix::process::WaitOptions::empty(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(st.exit_status(), Some(9));
    let err = c.exec(
        &{
            let mut q = p.clone();
            q.set_args(Some(vec!["/nope".into()]));
            q
        },
        &ExecOpts::default(),
    );
    assert!(
        matches!(err, Err(Error::Init(ref e)) if e.exit_code() == Some(127)),
        "{err:?}"
    );
    c.kill(libc::SIGKILL, false).unwrap();
    c.wait().unwrap();
    Container::load(&env.root(), &id)
        .unwrap()
        .delete(false)
        .unwrap();
}

#[test]
fn init_is_born_into_its_cgroup_in_every_hierarchy() {
    let mut env = Env::new();
    let id = unique("c");
    let spec = env.spec(&id, &["sleep", "100"], |_| {});
    let c = Container::create(&id, spec, &env.opts()).unwrap();
    // before start: the init (which joined by itself, see cgroup::v1_task_files) is in
    // the container's cgroup in every hierarchy a cgroup manager drives
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let theirs = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).unwrap();
    let v1 = berth_cgroups::detect().unwrap() == berth_cgroups::CgroupVersion::V1;
    let mut checked = 0;
    for (line, own_line) in theirs.lines().zip(own.lines()) {
        let ctrls = line.split(':').nth(1).unwrap();
        // v1 (hybrid too): the controller hierarchies; v2: the one `0::` line
        if ctrls.starts_with("name=") || (v1 && ctrls.is_empty()) {
            continue;
        }
        checked += 1;
        let path = line.splitn(3, ':').nth(2).unwrap();
        let own_path = own_line.splitn(3, ':').nth(2).unwrap();
        let want = format!("{}/{}/{id}", own_path.trim_end_matches('/'), env.cg_parent);
        assert_eq!(path, want, "hierarchy {ctrls}: {theirs}");
    }
    assert!(
        checked >= if v1 { 5 } else { 1 },
        "only {checked} checked in {theirs}"
    );
    c.kill(libc::SIGKILL, false).unwrap();
    Container::load(&env.root(), &id)
        .unwrap()
        .delete(true)
        .unwrap();
}
