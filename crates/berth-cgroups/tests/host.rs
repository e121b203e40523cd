//! Tests against this host's real cgroups (root; skipped with a message otherwise).

mod common;

use std::path::Path;

use berth_cgroups::{CgroupVersion, Placement};
use common::{Guard, is_root, unique};

#[test]
fn detect_matches_mountinfo() {
    let v = berth_cgroups::detect().expect("detect");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v2_root = mi
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup") && l.contains(" - cgroup2 "));
    assert_eq!(
        v,
        if v2_root {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        }
    );
}

#[test]
fn create_under_own_cgroup_and_destroy() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let name = unique("create");
    let cg = berth_cgroups::open(&Placement::UnderOwn(format!("{name}/leaf"))).unwrap();
    let guard = Guard::new(cg);
    guard.cg.create().unwrap();
    guard.cg.create().unwrap(); // idempotent
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mem_own = own
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .or_else(|| {
            own.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .unwrap();
    let expected = format!("{}/{name}/leaf", mem_own.trim_end_matches('/'));
    assert_eq!(guard.cg.path(), expected);
    let sub = if guard.cg.version() == CgroupVersion::V1 {
        "memory"
    } else {
        ""
    };
    let dir = Path::new("/sys/fs/cgroup")
        .join(sub)
        .join(expected.trim_start_matches('/'));
    assert!(dir.is_dir(), "{dir:?} was not created");
    guard.cg.destroy().unwrap();
    assert!(!dir.exists(), "{dir:?} still exists");
    assert!(
        !dir.parent().unwrap().exists(),
        "the parent this cgroup created is left behind"
    );
    guard.cg.destroy().unwrap(); // already gone = success
}

fn v1_file(cg: &dyn berth_cgroups::Cgroup, ctrl: &str, file: &str) -> std::path::PathBuf {
    // the test's own cgroup per hierarchy, like the manager resolves it
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own_path = own
        .lines()
        .find_map(|l| {
            let mut it = l.splitn(3, ':');
            let _ = it.next();
            let c = it.next()?;
            let p = it.next()?;
            c.split(',').any(|x| x == ctrl).then(|| p.to_string())
        })
        .unwrap();
    let leaf = cg.path().rsplit('/').next().unwrap();
    Path::new("/sys/fs/cgroup")
        .join(ctrl)
        .join(own_path.trim_start_matches('/'))
        .join(leaf)
        .join(file)
}

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {p:?}: {e}"))
        .trim()
        .to_string()
}

fn v1_only() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    if berth_cgroups::detect().unwrap() != CgroupVersion::V1 {
        eprintln!("skipped: host is not cgroup v1");
        return false;
    }
    true
}

#[test]
fn v1_limits_are_written_and_read_back() {
    if !v1_only() {
        return;
    }
    let g = Guard::under_own("limits");
    let res: oci_spec::runtime::LinuxResources = serde_json::from_str(
        r#"{
            "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728, "kernel": 1, "kernelTCP": 1},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 42},
            "devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": true, "type": "c", "major": 136, "access": "rw"}
            ]
        }"#,
    )
    .unwrap();
    g.cg.apply(&res).unwrap();
    let cg = g.cg.as_ref();
    assert_eq!(
        read_trim(&v1_file(cg, "memory", "memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(
        read_trim(&v1_file(cg, "memory", "memory.soft_limit_in_bytes")),
        "33554432"
    );
    assert_eq!(
        read_trim(&v1_file(cg, "memory", "memory.memsw.limit_in_bytes")),
        "134217728"
    );
    assert_eq!(read_trim(&v1_file(cg, "cpu", "cpu.shares")), "512");
    assert_eq!(read_trim(&v1_file(cg, "cpu", "cpu.cfs_quota_us")), "50000");
    assert_eq!(
        read_trim(&v1_file(cg, "cpu", "cpu.cfs_period_us")),
        "100000"
    );
    assert_eq!(read_trim(&v1_file(cg, "cpuset", "cpuset.cpus")), "0");
    assert_eq!(read_trim(&v1_file(cg, "pids", "pids.max")), "42");
    let list = read_trim(&v1_file(cg, "devices", "devices.list"));
    let mut lines: Vec<&str> = list.lines().collect();
    lines.sort();
    assert_eq!(lines, ["c 136:* rw", "c 1:3 rwm"]);

    // lowering memory below the current memsw needs limit-then-memsw order
    let lower: oci_spec::runtime::LinuxResources =
        serde_json::from_str(r#"{"memory": {"limit": 16777216, "swap": 33554432}}"#).unwrap();
    g.cg.apply(&lower).unwrap();
    assert_eq!(
        read_trim(&v1_file(cg, "memory", "memory.limit_in_bytes")),
        "16777216"
    );
    assert_eq!(
        read_trim(&v1_file(cg, "memory", "memory.memsw.limit_in_bytes")),
        "33554432"
    );
    // and raising both again needs memsw first
    let raise: oci_spec::runtime::LinuxResources = serde_json::from_str(
        r#"{"memory": {"limit": 268435456, "swap": 536870912}, "pids": {"limit": 0}}"#,
    )
    .unwrap();
    g.cg.apply(&raise).unwrap();
    assert_eq!(
        read_trim(&v1_file(cg, "memory", "memory.limit_in_bytes")),
        "268435456"
    );
    assert_eq!(read_trim(&v1_file(cg, "pids", "pids.max")), "max");
    let st = g.cg.stats().unwrap();
    assert_eq!(st.memory_limit_bytes, 268435456);
    assert_eq!(st.pids_limit, 0);
}

#[test]
fn v1_bad_values_name_what_was_wrong() {
    if !v1_only() {
        return;
    }
    let g = Guard::under_own("bad");
    let res: oci_spec::runtime::LinuxResources =
        serde_json::from_str(r#"{"cpu": {"cpus": "999999"}}"#).unwrap();
    let err = g.cg.apply(&res).unwrap_err().to_string();
    assert!(err.contains("cpuset.cpus"), "{err}");
    let res: oci_spec::runtime::LinuxResources =
        serde_json::from_str(r#"{"unified": {"memory.max": "1"}}"#).unwrap();
    let err = g.cg.apply(&res).unwrap_err().to_string();
    assert!(err.contains("unified"), "{err}");
}

#[test]
fn v1_task_freeze_thaw_kill_and_stats() {
    if !v1_only() {
        return;
    }
    let mut g = Guard::under_own("freeze");
    let pid = g.spawn_busy_sleeper();
    assert_eq!(g.cg.pids().unwrap(), vec![pid]);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(own.contains(g.cg.path()), "{own}");
    g.cg.freeze().unwrap();
    assert_eq!(
        g.cg.freezer_state().unwrap(),
        berth_cgroups::FreezerState::Frozen
    );
    let frozen_state = common::proc_state(pid);
    assert!(
        frozen_state.starts_with('D'),
        "a frozen task shows D, got {frozen_state:?}"
    );
    g.cg.thaw().unwrap();
    assert_eq!(
        g.cg.freezer_state().unwrap(),
        berth_cgroups::FreezerState::Thawed
    );
    let thawed = common::proc_state(pid);
    assert!(
        thawed.starts_with('S'),
        "a thawed sleep shows S, got {thawed:?}"
    );

    let st = g.cg.stats().unwrap();
    assert!(st.cpu_usage_ns > 0, "{st:?}");
    assert!(st.memory_usage_bytes > 0, "{st:?}");
    assert_eq!(st.pids_current, 1, "{st:?}");

    g.cg.kill_all(9).unwrap();
    let status = g.children[0].wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9));
    assert!(g.cg.pids().unwrap().is_empty());
    assert_eq!(
        g.cg.freezer_state().unwrap(),
        berth_cgroups::FreezerState::Thawed
    );
    g.cg.destroy().unwrap();
}

#[test]
fn v1_oom_kill_is_counted() {
    if !v1_only() {
        return;
    }
    let mut g = Guard::under_own("oom");
    let res: oci_spec::runtime::LinuxResources =
        serde_json::from_str(r#"{"memory": {"limit": 16777216, "swap": 16777216}}"#).unwrap();
    g.cg.apply(&res).unwrap();
    assert_eq!(g.cg.oom_kills().unwrap(), 0);
    // a child that waits on stdin until it is in the cgroup, then grows past the limit
    let mut child = std::process::Command::new("busybox")
        .args([
            "sh",
            "-c",
            "read x; exec busybox dd if=/dev/zero of=/dev/null bs=64M count=1",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let stdin = child.stdin.take();
    g.children.push(child);
    g.cg.add_task(pid).unwrap();
    drop(stdin); // `read` returns at EOF: go
    let status = g.children[0].wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "the oom killer should have killed dd: {status:?}"
    );
    let kills = g.cg.oom_kills().unwrap();
    assert!(kills >= 1, "oom_kill count {kills}");
    let st = g.cg.stats().unwrap();
    assert_eq!(st.oom_kills, kills);
    assert!(st.memory_max_usage_bytes > 8 << 20, "{st:?}");
}

#[test]
fn destroy_refuses_own_cgroup_and_placement_rejects_escapes() {
    for bad in ["", "/", "..", "a/../b", "a//b"] {
        let err = berth_cgroups::open(&Placement::UnderOwn(bad.into())).unwrap_err();
        assert!(
            err.to_string().contains("invalid cgroup path"),
            "{bad:?}: {err}"
        );
    }
    if !is_root() {
        return;
    }
    // an absolute placement naming the caller's own cgroup: destroy keeps it
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mem_own = own
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()));
    if let Some(mem_own) = mem_own {
        let cg = berth_cgroups::open(&Placement::Absolute(mem_own.clone())).unwrap();
        cg.destroy().unwrap();
        let dir = Path::new("/sys/fs/cgroup/memory").join(mem_own.trim_start_matches('/'));
        assert!(dir.is_dir(), "own cgroup {dir:?} was removed");
    }
}

#[test]
fn v1_device_rules_gate_mknod() {
    if !v1_only() {
        return;
    }
    let g = Guard::under_own("devices");
    // Docker's default rules: deny all, mknod of any char/block node, rwm on a few
    let res: oci_spec::runtime::LinuxResources = serde_json::from_str(
        r#"{"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "b", "access": "m"},
            {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ]}"#,
    )
    .unwrap();
    g.cg.apply(&res).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "read x; busybox mknod {d}/full c 1 7 && echo mknod-ok; \
         busybox head -c 1 {d}/full > /dev/null && echo read-full-ok; \
         busybox mknod {d}/mem c 1 1 && echo mknod-mem-ok; \
         cat {d}/mem > /dev/null 2>&1 || echo read-mem-denied",
        d = dir.path().display()
    );
    let mut child = std::process::Command::new("busybox")
        .args(["sh", "-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let stdin = child.stdin.take();
    g.cg.add_task(pid).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out,
        "mknod-ok\nread-full-ok\nmknod-mem-ok\nread-mem-denied\n"
    );
}

#[test]
fn reopen_from_saved_path_finds_the_same_cgroup() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut g = Guard::under_own("reopen");
    let saved = g.cg.saved_path();
    let again = berth_cgroups::reopen(&saved).unwrap();
    assert_eq!(again.path(), g.cg.path());
    let pid = g.spawn(&["sleep", "100"]);
    assert_eq!(again.pids().unwrap(), vec![pid]);
    again.freeze().unwrap();
    assert_eq!(
        g.cg.freezer_state().unwrap(),
        berth_cgroups::FreezerState::Frozen
    );
    again.kill_all(9).unwrap();
    g.children[0].wait().unwrap();
    let dirs: Vec<_> = ["memory", "pids", "freezer", "cpu"]
        .iter()
        .filter_map(|c| again.dir_of(c))
        .collect();
    assert!(!dirs.is_empty());
    assert!(dirs.iter().all(|d| d.is_dir()), "{dirs:?}");
    again.destroy().unwrap();
    assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
}

#[test]
fn v1_blkio_throttle_and_missing_weight() {
    if !v1_only() {
        return;
    }
    let g = Guard::under_own("blkio");
    let Some(blk) = g.cg.dir_of("blkio") else {
        eprintln!("skipped: no blkio hierarchy");
        return;
    };
    // the block device behind /
    let dev = rustix::fs::stat("/").unwrap().st_dev;
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let res: oci_spec::runtime::LinuxResources = serde_json::from_str(&format!(
        r#"{{"blockIO": {{"throttleReadBpsDevice": [{{"major": {major}, "minor": {minor}, "rate": 1048576}}],
                          "throttleWriteIOPSDevice": [{{"major": {major}, "minor": {minor}, "rate": 100}}]}}}}"#
    ))
    .unwrap();
    g.cg.apply(&res).unwrap();
    assert_eq!(
        read_trim(&blk.join("blkio.throttle.read_bps_device")),
        format!("{major}:{minor} 1048576")
    );
    assert_eq!(
        read_trim(&blk.join("blkio.throttle.write_iops_device")),
        format!("{major}:{minor} 100")
    );
    let weight: oci_spec::runtime::LinuxResources =
        serde_json::from_str(r#"{"blockIO": {"weight": 500}}"#).unwrap();
    let has_weight = blk.join("blkio.weight").exists() || blk.join("blkio.bfq.weight").exists();
    match g.cg.apply(&weight) {
        Ok(()) => assert!(has_weight, "a weight was accepted without a weight file"),
        Err(e) => {
            assert!(!has_weight, "{e}");
            assert!(e.to_string().contains("blkio.weight"), "{e}");
        }
    }
}
