//! cgroup v2 against a real cgroup2 mount: `/sys/fs/cgroup` on a v2 host, or the
//! hybrid host's `unified` mount (no controllers there, but freeze, kill, procs,
//! cpu.stat and clone fds are core v2 features).

mod common;

use std::path::Path;

use berth_cgroups::{Cgroup, CgroupVersion, FreezerState, Placement, V2Cgroup};
use common::{Guard, is_root, unique};

fn open_v2(tag: &str) -> Option<Guard> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    let placement = Placement::UnderOwn(unique(tag));
    let cg: Box<dyn Cgroup> = if berth_cgroups::detect().unwrap() == CgroupVersion::V2 {
        berth_cgroups::open(&placement).unwrap()
    } else {
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let Some(mp) = mi
            .lines()
            .filter(|l| l.contains(" - cgroup2 "))
            .find_map(|l| l.split(' ').nth(4).map(str::to_string))
        else {
            eprintln!("skipped: no cgroup2 mount");
            return None;
        };
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let own = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap()
            .to_string();
        Box::new(V2Cgroup::new(Path::new(&mp), &own, &placement).unwrap())
    };
    cg.create().unwrap();
    Some(Guard::new(cg))
}

#[test]
fn v2_task_freeze_thaw_kill_stats_destroy() {
    let Some(mut g) = open_v2("v2freeze") else {
        return;
    };
    let pid = g.spawn_busy_sleeper();
    assert_eq!(g.cg.pids().unwrap(), vec![pid]);
    let cgfile = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgfile
            .lines()
            .any(|l| l.starts_with("0::") && l.ends_with(g.cg.path())),
        "{cgfile}"
    );

    g.cg.freeze().unwrap();
    assert_eq!(g.cg.freezer_state().unwrap(), FreezerState::Frozen);
    // a frozen task sits in the v2 freezer trap: its wait channel says so. The
    // kernel counts a task frozen in cgroup_enter_frozen(), just before it
    // schedules out, so cgroup.events can say "frozen 1" a moment before the
    // task is off the CPU: give it a bounded moment to get there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let (wchan, stat) = loop {
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        let stat = common::proc_state(pid);
        if (wchan == "get_signal" && !stat.starts_with('R')) || std::time::Instant::now() > deadline
        {
            break (wchan, stat);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(!stat.starts_with('R'), "frozen task is running: {stat}");
    assert_eq!(
        wchan, "get_signal",
        "frozen task is not in the freezer trap"
    );
    g.cg.thaw().unwrap();
    assert_eq!(g.cg.freezer_state().unwrap(), FreezerState::Thawed);
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    assert_ne!(
        wchan, "get_signal",
        "thawed task is still in the freezer trap"
    );

    let st = g.cg.stats().unwrap();
    assert!(st.cpu_usage_ns > 0, "{st:?}");

    // SIGTERM goes through freeze, signal each pid, thaw
    g.cg.kill_all(15).unwrap();
    let status = g.children[0].wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15));

    let pid2 = g.spawn(&["sleep", "100"]);
    assert_eq!(g.cg.pids().unwrap(), vec![pid2]);
    g.cg.kill_all(9).unwrap(); // cgroup.kill
    assert_eq!(g.children[1].wait().unwrap().signal(), Some(9));
    assert_eq!(g.cg.freezer_state().unwrap(), FreezerState::Thawed);
    let fd =
        g.cg.dir_fd_for_clone()
            .unwrap()
            .expect("v2 gives a cgroup fd");
    drop(fd);
    g.cg.destroy().unwrap();
    g.cg.destroy().unwrap();
}
