//! The managers' file logic against a temp-dir layout (no root needed).

use std::fs;
use std::path::Path;

use berth_cgroups::{CgroupVersion, Placement, open_at};
use oci_spec::runtime::LinuxResources;

fn put(p: &Path, content: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn get(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {p:?}: {e}"))
        .trim()
        .to_string()
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

const OWN_V1: &str = "8:pids:/\n4:memory:/svc/own\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n6:freezer:/\n9:name=systemd:/\n0::/\n";

/// A v1 tree under `root` whose leaf `x` already has the files the kernel would make.
fn v1_tree(root: &Path, memsw: bool) {
    let mem = root.join("memory/svc/own/x");
    for (f, v) in [
        ("memory.limit_in_bytes", "9223372036854771712"),
        ("memory.soft_limit_in_bytes", "9223372036854771712"),
        ("memory.usage_in_bytes", "4096"),
        ("memory.max_usage_in_bytes", "8192"),
        ("memory.stat", "cache 10\nrss 20\ntotal_cache 30\n"),
        (
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        ),
        ("cgroup.procs", ""),
    ] {
        put(&mem.join(f), v);
    }
    if memsw {
        put(
            &mem.join("memory.memsw.limit_in_bytes"),
            "9223372036854771712",
        );
    }
    let cpu = root.join("cpu/x");
    for f in [
        "cpu.shares",
        "cpu.cfs_quota_us",
        "cpu.cfs_period_us",
        "cgroup.procs",
    ] {
        put(&cpu.join(f), "");
    }
    put(
        &cpu.join("cpu.stat"),
        "nr_periods 5\nnr_throttled 2\nthrottled_time 777\n",
    );
    put(&root.join("cpuacct/x/cpuacct.usage"), "123456\n");
    put(&root.join("cpuacct/x/cpuacct.stat"), "user 7\nsystem 3\n");
    put(&root.join("cpuacct/x/cgroup.procs"), "");
    put(&root.join("cpuset/cpuset.cpus"), "0-1\n");
    put(&root.join("cpuset/cpuset.mems"), "0\n");
    put(&root.join("cpuset/x/cpuset.cpus"), "");
    put(&root.join("cpuset/x/cpuset.mems"), "");
    put(&root.join("cpuset/x/cgroup.procs"), "");
    put(&root.join("pids/x/pids.max"), "max");
    put(&root.join("pids/x/pids.current"), "2");
    put(&root.join("pids/x/cgroup.procs"), "");
    put(&root.join("freezer/x/freezer.state"), "THAWED");
    put(&root.join("freezer/x/cgroup.procs"), "11\n12\n");
}

#[test]
fn v1_paths_follow_each_hierarchys_own_cgroup() {
    let t = tempfile::tempdir().unwrap();
    v1_tree(t.path(), true);
    let cg = open_at(
        t.path(),
        CgroupVersion::V1,
        OWN_V1,
        &Placement::UnderOwn("x".into()),
    )
    .unwrap();
    assert_eq!(cg.version(), CgroupVersion::V1);
    assert_eq!(cg.path(), "/svc/own/x");
    cg.create().unwrap();
    // cpuset inherited the parent's cpus and mems so tasks can join
    assert_eq!(get(&t.path().join("cpuset/x/cpuset.cpus")), "0-1");
    assert_eq!(get(&t.path().join("cpuset/x/cpuset.mems")), "0");
    cg.add_task(4242).unwrap();
    assert_eq!(get(&t.path().join("memory/svc/own/x/cgroup.procs")), "4242");
    assert_eq!(get(&t.path().join("pids/x/cgroup.procs")), "4242");
    assert!(cg.dir_fd_for_clone().unwrap().is_none());
    assert_eq!(cg.pids().unwrap(), vec![4242]);
}

#[test]
fn v1_apply_writes_each_file() {
    let t = tempfile::tempdir().unwrap();
    v1_tree(t.path(), true);
    let cg = open_at(
        t.path(),
        CgroupVersion::V1,
        OWN_V1,
        &Placement::UnderOwn("x".into()),
    )
    .unwrap();
    cg.apply(&res(
        r#"{"memory":{"limit":1048576,"reservation":524288,"swap":2097152,"disableOOMKiller":true},
            "cpu":{"shares":256,"quota":20000,"period":50000},
            "pids":{"limit":7}}"#,
    ))
    .unwrap();
    let mem = t.path().join("memory/svc/own/x");
    assert_eq!(get(&mem.join("memory.limit_in_bytes")), "1048576");
    assert_eq!(get(&mem.join("memory.memsw.limit_in_bytes")), "2097152");
    assert_eq!(get(&mem.join("memory.soft_limit_in_bytes")), "524288");
    assert!(get(&mem.join("memory.oom_control")).starts_with('1'));
    assert_eq!(get(&t.path().join("cpu/x/cpu.shares")), "256");
    assert_eq!(get(&t.path().join("cpu/x/cpu.cfs_quota_us")), "20000");
    assert_eq!(get(&t.path().join("cpu/x/cpu.cfs_period_us")), "50000");
    assert_eq!(get(&t.path().join("pids/x/pids.max")), "7");
}

#[test]
fn v1_swap_without_memsw_is_a_clear_error_and_missing_controllers_are_named() {
    let t = tempfile::tempdir().unwrap();
    v1_tree(t.path(), false);
    let cg = open_at(
        t.path(),
        CgroupVersion::V1,
        OWN_V1,
        &Placement::UnderOwn("x".into()),
    )
    .unwrap();
    let err = cg
        .apply(&res(r#"{"memory":{"limit":1048576,"swap":2097152}}"#))
        .unwrap_err();
    assert!(err.to_string().contains("swap"), "{err}");
    // a memory limit alone still works
    cg.apply(&res(r#"{"memory":{"limit":1048576}}"#)).unwrap();
    let err = cg.apply(&res(r#"{"blockIO":{"weight":500}}"#)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "blkio controller is not available: cannot apply block io limits"
    );
    let err = cg
        .apply(&res(r#"{"devices":[{"allow":false}]}"#))
        .unwrap_err();
    assert!(err.to_string().contains("devices controller"), "{err}");
}

#[test]
fn v1_stats_are_parsed() {
    let t = tempfile::tempdir().unwrap();
    v1_tree(t.path(), true);
    let cg = open_at(
        t.path(),
        CgroupVersion::V1,
        OWN_V1,
        &Placement::UnderOwn("x".into()),
    )
    .unwrap();
    let s = cg.stats().unwrap();
    let hz = rustix::param::clock_ticks_per_second();
    assert_eq!(s.cpu_usage_ns, 123456);
    assert_eq!(s.cpu_user_ns, 7 * (1_000_000_000 / hz));
    assert_eq!(s.cpu_system_ns, 3 * (1_000_000_000 / hz));
    assert_eq!(s.cpu_throttled_periods, 2);
    assert_eq!(s.cpu_throttled_ns, 777);
    assert_eq!(s.memory_usage_bytes, 4096);
    assert_eq!(s.memory_max_usage_bytes, 8192);
    assert_eq!(s.memory_limit_bytes, u64::MAX);
    assert_eq!(s.memory_cache_bytes, 30);
    assert_eq!(s.oom_kills, 3);
    assert_eq!(s.pids_current, 2);
    assert_eq!(s.pids_limit, 0);
    assert_eq!(cg.oom_kills().unwrap(), 3);
}

/// A v2 tree: the caller is in `/own`, the leaf `x` exists with its files.
fn v2_tree(root: &Path) {
    put(&root.join("cgroup.controllers"), "cpu io memory pids\n");
    put(&root.join("own/cgroup.controllers"), "cpu io memory pids\n");
    put(&root.join("own/cgroup.subtree_control"), "");
    let x = root.join("own/x");
    for (f, v) in [
        ("cgroup.controllers", ""),
        ("cgroup.procs", "5\n"),
        ("memory.max", "max"),
        ("memory.low", "0"),
        ("memory.swap.max", "max"),
        ("cpu.weight", "100"),
        ("cpu.max", "max 100000"),
        ("pids.max", "max"),
        ("io.weight", "default 100"),
        (
            "cpu.stat",
            "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_throttled 1\nthrottled_usec 2\n",
        ),
        ("memory.current", "100"),
        ("memory.peak", "200"),
        ("memory.stat", "anon 1\nfile 50\n"),
        ("memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n"),
        ("pids.current", "1"),
        (
            "io.stat",
            "8:0 rbytes=100 wbytes=20 rios=1 wios=1\n8:16 rbytes=1 wbytes=2\n",
        ),
    ] {
        put(&x.join(f), v);
    }
    put(&x.join("child/cgroup.procs"), "6\n");
}

#[test]
fn v2_apply_converts_and_delegates() {
    let t = tempfile::tempdir().unwrap();
    v2_tree(t.path());
    let cg = open_at(
        t.path(),
        CgroupVersion::V2,
        "0::/own\n",
        &Placement::UnderOwn("x".into()),
    )
    .unwrap();
    assert_eq!(cg.version(), CgroupVersion::V2);
    assert_eq!(cg.path(), "/own/x");
    cg.create().unwrap();
    cg.apply(&res(r#"{"pids":{"limit":9}}"#)).unwrap();
    // the controller was enabled in the caller's cgroup for its children
    assert_eq!(get(&t.path().join("own/cgroup.subtree_control")), "+pids");
    let x = t.path().join("own/x");
    assert_eq!(get(&x.join("pids.max")), "9");
    put(&x.join("cgroup.controllers"), "cpu io memory pids\n");
    cg.apply(&res(
        r#"{"memory":{"limit":1048576,"reservation":4096,"swap":3145728},
            "cpu":{"shares":1024,"quota":50000,"period":100000},
            "blockIO":{"weight":500}}"#,
    ))
    .unwrap();
    assert_eq!(get(&x.join("memory.max")), "1048576");
    assert_eq!(get(&x.join("memory.low")), "4096");
    assert_eq!(get(&x.join("memory.swap.max")), "2097152");
    assert_eq!(get(&x.join("cpu.weight")), "39");
    assert_eq!(get(&x.join("cpu.max")), "50000 100000");
    assert_eq!(get(&x.join("io.weight")), "4950");
    cg.apply(&res(
        r#"{"memory":{"limit":-1},"cpu":{"quota":-1,"period":100000},"pids":{"limit":-1}}"#,
    ))
    .unwrap();
    assert_eq!(get(&x.join("memory.max")), "max");
    assert_eq!(get(&x.join("memory.swap.max")), "max");
    assert_eq!(get(&x.join("cpu.max")), "max 100000");
    assert_eq!(get(&x.join("pids.max")), "max");
    let err = cg.apply(&res(r#"{"cpu":{"cpus":"0"}}"#)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cpuset controller is not available: cannot apply cpuset cpus/mems"
    );
    let err = cg
        .apply(&res(r#"{"memory":{"limit":1048576,"swap":1024}}"#))
        .unwrap_err();
    assert!(err.to_string().contains("below the memory limit"), "{err}");
}

#[test]
fn v2_stats_pids_and_fd() {
    let t = tempfile::tempdir().unwrap();
    v2_tree(t.path());
    let cg = open_at(
        t.path(),
        CgroupVersion::V2,
        "0::/own\n",
        &Placement::UnderOwn("x".into()),
    )
    .unwrap();
    let s = cg.stats().unwrap();
    assert_eq!(s.cpu_usage_ns, 10_000);
    assert_eq!(s.cpu_user_ns, 6_000);
    assert_eq!(s.cpu_system_ns, 4_000);
    assert_eq!(s.cpu_throttled_periods, 1);
    assert_eq!(s.cpu_throttled_ns, 2_000);
    assert_eq!(s.memory_usage_bytes, 100);
    assert_eq!(s.memory_max_usage_bytes, 200);
    assert_eq!(s.memory_limit_bytes, u64::MAX);
    assert_eq!(s.memory_cache_bytes, 50);
    assert_eq!(s.oom_kills, 2);
    assert_eq!(s.pids_current, 1);
    assert_eq!(s.pids_limit, 0);
    assert_eq!(s.io_read_bytes, 101);
    assert_eq!(s.io_write_bytes, 22);
    assert_eq!(cg.pids().unwrap(), vec![5, 6]);
    let fd = cg.dir_fd_for_clone().unwrap().expect("v2 gives a dir fd");
    let st = rustix::fs::fstat(&fd).unwrap();
    assert!(rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir());
    let fl = rustix::io::fcntl_getfd(&fd).unwrap();
    assert!(fl.contains(rustix::io::FdFlags::CLOEXEC));
}

#[test]
fn conversions_match_runc() {
    use berth_cgroups::{blkio_weight_to_io_weight, shares_to_weight, swap_to_v2};
    assert_eq!(shares_to_weight(0), 0);
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(blkio_weight_to_io_weight(10), 1);
    assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    assert_eq!(swap_to_v2(0, -1).unwrap(), -1);
    assert_eq!(swap_to_v2(-1, 100).unwrap(), -1);
    assert_eq!(swap_to_v2(300, 100).unwrap(), 200);
    assert!(swap_to_v2(300, 0).is_err());
}

#[test]
fn v1_saved_path_reopens_every_hierarchy_exactly() {
    let t = tempfile::tempdir().unwrap();
    v1_tree(t.path(), true);
    let layout = berth_cgroups::Layout::at(t.path(), CgroupVersion::V1, OWN_V1).unwrap();
    let cg = berth_cgroups::open_with(&layout, &Placement::UnderOwn("x".into())).unwrap();
    let saved = cg.saved_path();
    assert!(
        saved.contains("memory=/svc/own/x") && saved.contains("pids=/x"),
        "{saved}"
    );
    for again in [
        berth_cgroups::reopen_with(&layout, &saved).unwrap(),
        berth_cgroups::open_with(&layout, &Placement::Absolute(saved.clone())).unwrap(),
    ] {
        assert_eq!(again.path(), "/svc/own/x");
        assert_eq!(again.saved_path(), saved);
        assert_eq!(
            again.dir_of("memory").unwrap(),
            t.path().join("memory/svc/own/x")
        );
        assert_eq!(again.dir_of("freezer").unwrap(), t.path().join("freezer/x"));
        assert_eq!(
            again.freezer_state().unwrap(),
            berth_cgroups::FreezerState::Thawed
        );
        assert_eq!(again.oom_kills().unwrap(), 3);
    }
    // the same path everywhere stays a plain path
    let abs = berth_cgroups::open_with(&layout, &Placement::Absolute("/x".into())).unwrap();
    assert_eq!(abs.saved_path(), "/x");
    assert_eq!(abs.dir_of("memory").unwrap(), t.path().join("memory/x"));
    let err = berth_cgroups::reopen_with(&layout, "memory=relative").unwrap_err();
    assert!(err.to_string().contains("invalid cgroup path"), "{err}");
}

#[test]
fn v1_blkio_weight_uses_cfq_or_bfq_files() {
    for (weight, device) in [
        ("blkio.weight", "blkio.weight_device"),
        ("blkio.bfq.weight", "blkio.bfq.weight_device"),
    ] {
        let t = tempfile::tempdir().unwrap();
        let own = "7:blkio:/\n";
        put(&t.path().join("blkio/x").join(weight), "100");
        put(&t.path().join("blkio/x").join(device), "");
        put(&t.path().join("blkio/x/blkio.throttle.read_bps_device"), "");
        let cg = open_at(
            t.path(),
            CgroupVersion::V1,
            own,
            &Placement::UnderOwn("x".into()),
        )
        .unwrap();
        cg.apply(&res(
            r#"{"blockIO":{"weight":300,"weightDevice":[{"major":8,"minor":0,"weight":700}],
                "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":4096}]}}"#,
        ))
        .unwrap();
        assert_eq!(get(&t.path().join("blkio/x").join(weight)), "300");
        assert_eq!(get(&t.path().join("blkio/x").join(device)), "8:0 700");
        assert_eq!(
            get(&t.path().join("blkio/x/blkio.throttle.read_bps_device")),
            "8:0 4096"
        );
    }
}
