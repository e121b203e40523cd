//! The library API used directly (root, real kernel): lifecycle, structured init
//! errors, exec, and the recycled-pid guard.

use std::path::Path;

use berth_runtime::{Container, Error, ExecOpts, Stage, Status};

mod common;

use common::{Env, unique};

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
