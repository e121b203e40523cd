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
