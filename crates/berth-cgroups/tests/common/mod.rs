//! Helpers shared by the host tests: unique names and a guard that kills what
//! the test started and destroys the cgroup even when the test panics.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use berth_cgroups::{Cgroup, Placement};

pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "berth-cgtest-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Owns a cgroup and the children spawned into it.
pub struct Guard {
    pub cg: Box<dyn Cgroup>,
    pub children: Vec<Child>,
}

impl Guard {
    pub fn new(cg: Box<dyn Cgroup>) -> Guard {
        Guard {
            cg,
            children: Vec::new(),
        }
    }

    pub fn under_own(tag: &str) -> Guard {
        let cg = berth_cgroups::open(&Placement::UnderOwn(unique(tag))).expect("open cgroup");
        cg.create().expect("create cgroup");
        Guard::new(cg)
    }

    /// Spawn a shell that waits until it is in the cgroup, burns a little CPU
    /// and memory there (so stats are non-zero), then becomes `sleep 100`.
    pub fn spawn_busy_sleeper(&mut self) -> i32 {
        let mut child = Command::new("busybox")
            .args([
                "sh",
                "-c",
                "read x; i=0; s=; while [ $i -lt 3000 ]; do i=$((i+1)); s=\"$s.\"; done; exec sleep 100",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn busybox sh");
        let pid = child.id() as i32;
        let stdin = child.stdin.take();
        self.children.push(child);
        self.cg.add_task(pid).expect("add task");
        drop(stdin);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default()
            .trim()
            != "sleep"
        {
            assert!(
                std::time::Instant::now() < deadline,
                "child {pid} never became sleep"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        pid
    }

    /// Spawn `argv` and move it into the cgroup; returns its pid.
    pub fn spawn(&mut self, argv: &[&str]) -> i32 {
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let pid = child.id() as i32;
        self.children.push(child);
        self.cg.add_task(pid).expect("add task");
        pid
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.cg.thaw();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.cg.destroy();
    }
}

/// The state letter of /proc/<pid>/status, e.g. 'S', 'R', 'D'.
pub fn proc_state(pid: i32) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("State:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}
