//! The seccomp BPF cache through real containers (root, real kernel): a profile that
//! denies mkdir with EACCES gives the same denial on the first (compiled) and second
//! (cached) run, in exec too, and a corrupt cache file is ignored and rewritten.

use std::path::PathBuf;

use berth_runtime::{Container, ExecOpts};

mod common;

use common::{Env, unique};

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
