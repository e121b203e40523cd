//! TestEnv and Cleanup: fresh roots, unique names and subnets, and teardown that leaves
//! nothing behind even when the test panics.
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_testkit::cleanup::{links_with_prefix, mounts_under, nft_tables_with_prefix};
use berth_testkit::{Cleanup, LEASE_DIR, SubnetLease, TestEnv, own_cgroup_dirs};

fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn env_has_fresh_roots_prefix_and_subnet() {
    let env = TestEnv::new().unwrap();
    assert!(env.data_root().is_dir() && env.run_root().is_dir());
    assert_eq!(fs::read_dir(env.data_root()).unwrap().count(), 0);
    assert!(env.socket().starts_with(env.run_root()));
    assert!(
        env.socket().as_os_str().len() < 100,
        "fits sun_path: {}",
        env.socket().display()
    );
    let p = env.prefix();
    assert_eq!(p.len(), 8);
    assert!(p.starts_with("bt") && p[2..].chars().all(|c| c.is_ascii_hexdigit()));
    let s = env.subnet();
    assert!(s.cidr().starts_with("10.199.") && s.cidr().ends_with(".0/24"));
    assert_eq!(s.gateway().octets()[3], 1);
    assert_eq!(env.cgroup_name(), format!("berth-test-{p}"));
    let other = TestEnv::new().unwrap();
    assert_ne!(other.prefix(), env.prefix());
    assert_ne!(other.subnet().cidr(), env.subnet().cidr());
    let dir = env.dir().to_path_buf();
    drop(env);
    assert!(!dir.exists());
}

#[test]
fn subnet_leases_are_exclusive_and_released_on_drop() {
    let leases: Vec<SubnetLease> = (0..20).map(|_| SubnetLease::acquire().unwrap()).collect();
    let mut cidrs: Vec<String> = leases.iter().map(|l| l.cidr()).collect();
    cidrs.sort();
    cidrs.dedup();
    assert_eq!(cidrs.len(), 20, "distinct: {cidrs:?}");
    let n = leases[0].network().octets()[2];
    let lock = Path::new(LEASE_DIR).join(format!("{n}.lock"));
    let f = OpenOptions::new().write(true).open(&lock).unwrap();
    assert!(f.try_lock().is_err(), "held while the lease lives");
    drop(leases);
    // Free again (unless another test's random pick landed on exactly this one meanwhile).
    assert!(f.try_lock().is_ok());
}

/// Make one of everything under `env`, return what to check afterwards.
fn make_mess(env: &mut TestEnv) -> (PathBuf, String, Vec<PathBuf>, u32) {
    let p = env.prefix().to_string();
    // Mounts, nested.
    let m = env.dir().join("mnt");
    fs::create_dir_all(&m).unwrap();
    sh(&format!(
        "mount -t tmpfs t {0} && mkdir {0}/inner && mount -t tmpfs t {0}/inner",
        m.display()
    ));
    // A veth pair, a bridge and an nft table carrying the prefix.
    sh(&format!(
        "ip link add {p}a type veth peer name {p}b && ip link add {p}br type bridge"
    ));
    sh(&format!("nft add table inet {p}t"));
    // A cgroup (under our own memory cgroup) holding a process.
    let cgs: Vec<PathBuf> = own_cgroup_dirs()
        .into_iter()
        .filter(|d| d.to_string_lossy().contains("/memory"))
        .map(|d| d.join(env.cgroup_name()))
        .collect();
    assert!(!cgs.is_empty(), "a memory cgroup: {:?}", own_cgroup_dirs());
    fs::create_dir_all(cgs[0].join("child")).unwrap();
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/child/cgroup.procs && exec sleep 1000",
            cgs[0].display()
        ))
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until it is in the cgroup.
    for _ in 0..200 {
        if fs::read_to_string(cgs[0].join("child/cgroup.procs"))
            .unwrap()
            .contains(&pid.to_string())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    env.cleanup().child(child);
    // A process registered by pid only.
    let sleeper = Command::new("sleep").arg("1000").spawn().unwrap();
    let spid = sleeper.id();
    env.cleanup().pid(spid as i32);
    std::mem::forget(sleeper); // reaped by nobody here: the guard must still kill it
    assert_eq!(mounts_under(&m).len(), 2);
    assert_eq!(links_with_prefix(&p).len(), 3);
    assert_eq!(nft_tables_with_prefix(&p).len(), 1);
    (env.dir().to_path_buf(), p, cgs, spid)
}

fn assert_clean(dir: &Path, prefix: &str, cgs: &[PathBuf], pid: u32) {
    assert!(
        mounts_under(dir).is_empty(),
        "mounts left: {:?}",
        mounts_under(dir)
    );
    assert!(!dir.exists(), "dir left: {}", dir.display());
    assert!(
        links_with_prefix(prefix).is_empty(),
        "links left: {:?}",
        links_with_prefix(prefix)
    );
    assert!(nft_tables_with_prefix(prefix).is_empty());
    for cg in cgs {
        assert!(!cg.exists(), "cgroup left: {}", cg.display());
    }
    let alive = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z"))
        .unwrap_or(false);
    assert!(!alive, "pid {pid} still alive");
}

#[test]
fn env_drop_removes_mounts_links_nft_cgroups_and_processes() {
    let mut env = TestEnv::new().unwrap();
    let (dir, prefix, cgs, pid) = make_mess(&mut env);
    drop(env);
    assert_clean(&dir, &prefix, &cgs, pid);
}

#[test]
fn cleanup_runs_when_the_test_panics() {
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut env = TestEnv::new().unwrap();
        seen = Some(make_mess(&mut env));
        panic!("the test fails half way");
    }));
    assert!(result.is_err());
    let (dir, prefix, cgs, pid) = seen.unwrap();
    assert_clean(&dir, &prefix, &cgs, pid);
}

#[test]
fn cleanup_run_reports_nothing_for_things_already_gone() {
    let mut c = Cleanup::new();
    c.pid(i32::MAX - 7)
        .mounts_under("/nonexistent-berth-testkit")
        .cgroup("/sys/fs/cgroup/memory/nonexistent-berth-testkit")
        .links_with_prefix("btnone")
        .nft_table("inet", "btnonexistent")
        .dir("/nonexistent-berth-testkit-dir");
    assert_eq!(c.run(), Vec::<String>::new());
}

#[test]
fn netns_with_prefix_is_deleted() {
    let mut env = TestEnv::new().unwrap();
    let ns = format!("{}ns", env.prefix());
    sh(&format!("ip netns add {ns}"));
    let _ = env.cleanup();
    drop(env);
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&ns));
}
