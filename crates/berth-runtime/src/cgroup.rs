//! The one place this crate talks to berth-cgroups.

use berth_cgroups::{Cgroup, Placement};

use crate::error::Result;

/// The cgroup for a new container (`linux.cgroupsPath` semantics).
pub fn for_spec(cgroups_path: Option<&str>, id: &str) -> Result<Box<dyn Cgroup>> {
    Ok(berth_cgroups::open(&Placement::from_oci(cgroups_path, id))?)
}

/// Re-open an existing container's cgroup from the path recorded in its state.
pub fn at(path: &str) -> Result<Box<dyn Cgroup>> {
    Ok(berth_cgroups::open(&Placement::Absolute(path.to_string()))?)
}

/// runc's default device allow-list, appended after the spec's own rules so the default
/// /dev set (and a pty) works even when the spec starts with "deny all".
pub fn with_default_devices(res: &oci_spec::runtime::LinuxResources) -> oci_spec::runtime::LinuxResources {
    let mut res = res.clone();
    let Some(list) = res.devices().clone() else { return res };
    let mut list = list;
    let rule = |typ: &str, major: Option<i64>, minor: Option<i64>, access: &str| -> Option<oci_spec::runtime::LinuxDeviceCgroup> {
        serde_json::from_value(serde_json::json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": access})).ok()
    };
    let defaults = [
        rule("c", None, None, "m"),
        rule("b", None, None, "m"),
        rule("c", Some(1), Some(3), "rwm"),
        rule("c", Some(1), Some(5), "rwm"),
        rule("c", Some(1), Some(7), "rwm"),
        rule("c", Some(1), Some(8), "rwm"),
        rule("c", Some(1), Some(9), "rwm"),
        rule("c", Some(5), Some(0), "rwm"),
        rule("c", Some(5), Some(1), "rwm"),
        rule("c", Some(5), Some(2), "rwm"),
        rule("c", Some(136), None, "rwm"),
    ];
    // defaults go first so the spec's later rules (e.g. an explicit deny) still win
    let mut out: Vec<_> = Vec::new();
    let (first_deny_all, rest): (Vec<_>, Vec<_>) = list.drain(..).partition(|d| !d.allow() && d.major().is_none() && d.minor().is_none() && d.typ().is_none());
    out.extend(first_deny_all);
    out.extend(defaults.into_iter().flatten());
    out.extend(rest);
    res.set_devices(Some(out));
    res
}
