//! The container's cgroup (root, real kernel): the value `create` returns keeps the cgroup
//! it opened for its own `delete`, which removes the container's cgroup and leaves the
//! parent it created on the way (shared by the containers that come next).

use berth_runtime::Container;

mod common;

use common::{Env, unique};

/// The container cgroup's directory and its parent's in every v1 hierarchy (or the
/// unified one) the runtime drives.
fn dirs(cg_parent: &str, id: &str) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let v2 = berth_cgroups::detect().unwrap() == berth_cgroups::CgroupVersion::V2;
    own.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, c, p) = (it.next()?, it.next()?, it.next()?);
            let keep = if v2 {
                c.is_empty()
            } else {
                !c.is_empty() && !c.starts_with("name=")
            };
            keep.then(|| {
                let base = std::path::Path::new("/sys/fs/cgroup");
                let h = if v2 { base.to_path_buf() } else { base.join(c) };
                let parent = h.join(p.trim_start_matches('/')).join(cg_parent);
                (parent.join(id), parent)
            })
        })
        .collect()
}

#[test]
fn delete_of_the_created_value_removes_the_cgroup_and_keeps_the_parent() {
    let mut env = Env::new();
    let id = unique("c");
    let spec = env.spec(&id, &["true"], |_| {});
    let mut c = Container::create(&id, spec, &env.opts()).unwrap();
    let dirs = dirs(&env.cg_parent, &id);
    assert!(!dirs.is_empty());
    for (leaf, _) in &dirs {
        assert!(leaf.is_dir(), "{} missing", leaf.display());
    }
    c.start().unwrap();
    assert_eq!(c.wait().unwrap(), 0);
    c.delete(false).unwrap();
    for (leaf, parent) in &dirs {
        assert!(!leaf.exists(), "{} left behind", leaf.display());
        assert!(parent.is_dir(), "{} was removed", parent.display());
    }
}
