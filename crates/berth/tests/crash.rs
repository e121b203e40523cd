//! kill -9 of berthd at random moments while clients run, stop and remove containers,
//! then a restart: no container or exit code is lost, nothing is stuck half-done, and
//! once everything is removed nothing is left (mounts, cgroups, shims, files). Root;
//! `cargo build -p berthd -p berth-shim` first.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, Leftovers, cgroup_dirs, stdout};

/// What the clients saw succeed.
#[derive(Debug, Default)]
struct Seen {
    /// Containers whose `run -d` printed an id, with the exit code they will have.
    created: BTreeMap<String, Option<i32>>,
    /// `rm` was sent (it may or may not have happened before the kill).
    rm_tried: BTreeSet<String>,
    /// `rm` answered success.
    removed: BTreeSet<String>,
}

/// A cheap random number from the clock (no extra crate for one test).
fn jitter(max_ms: u64) -> u64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (n / 1000) % max_ms
}

fn client_loop(d: &Daemon, worker: usize, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let code = ((worker * 31 + i) % 5) as i32 + 1;
        // a short container with a known exit code
        let script = format!("exit {code}");
        let o = d.berth(&[
            "run",
            "-d",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            &script,
        ]);
        if o.status.success() {
            let id = stdout(&o).trim().to_owned();
            seen.lock().unwrap().created.insert(id, Some(code));
        }
        // a long one: run, stop, remove
        let o = d.berth(&["run", "-d", "--network", "none", "busybox", "sleep", "100"]);
        if !o.status.success() {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let id = stdout(&o).trim().to_owned();
        seen.lock().unwrap().created.insert(id.clone(), None);
        let _ = d.berth(&["stop", "-t", "0", &id]);
        seen.lock().unwrap().rm_tried.insert(id.clone());
        if d.berth(&["rm", "-f", &id]).status.success() {
            seen.lock().unwrap().removed.insert(id);
        }
    }
}

fn shims_of(data_root: &std::path::Path) -> Vec<i32> {
    let needle = data_root.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c).into_owned();
                    c.contains("berth-shim") && c.contains(&needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn berthd_killed_at_random_moments_loses_nothing_and_leaks_nothing() {
    let mut d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let seen = Mutex::new(Seen::default());
    for round in 0..4 {
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for w in 0..3 {
                let (d, stop, seen) = (&d, &stop, &seen);
                s.spawn(move || client_loop(d, w, stop, seen));
            }
            std::thread::sleep(Duration::from_millis(300 + jitter(900)));
            d.kill_berthd();
            // the clients see a dead daemon for a moment, then stop
            std::thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::Relaxed);
        });
        d.restart();
        let st = seen.lock().unwrap();
        assert!(
            !st.created.is_empty() || round > 0,
            "no container was created before the first kill"
        );
        let listed: BTreeSet<String> = d
            .ok(&["ps", "-aq", "--no-trunc"])
            .lines()
            .map(str::to_owned)
            .collect();
        for (id, _) in st.created.iter() {
            if st.removed.contains(id) {
                assert!(
                    !listed.contains(id),
                    "round {round}: removed {id} came back"
                );
            } else if !st.rm_tried.contains(id) {
                assert!(
                    listed.contains(id),
                    "round {round}: container {id} was lost"
                );
            }
        }
        drop(st);
        // nothing half-done: every listed container is running (with a live process),
        // created, or exited
        for id in &listed {
            let s = d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", id]);
            let (status, pid) = s.trim().split_once(' ').unwrap();
            assert!(
                ["running", "exited", "created", "restarting"].contains(&status),
                "round {round}: {id} is {status}"
            );
            if status == "running" {
                assert!(
                    std::path::Path::new(&format!("/proc/{pid}")).exists(),
                    "round {round}: {id} says running but pid {pid} is gone"
                );
            }
        }
    }
    // every exit code the short containers had is there (none lost as 255)
    let st = seen.lock().unwrap();
    let mut checked = 0;
    for (id, code) in &st.created {
        let Some(code) = code else { continue };
        let o = d.berth(&["wait", id]);
        assert!(o.status.success(), "wait {id}: {}", common::stderr(&o));
        assert_eq!(stdout(&o), format!("{code}\n"), "exit code of {id}");
        checked += 1;
    }
    assert!(checked > 0, "no short container ran");
    drop(st);
    // remove everything: nothing may be left behind
    let all: Vec<String> = d
        .ok(&["ps", "-aq", "--no-trunc"])
        .lines()
        .map(str::to_owned)
        .collect();
    if !all.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(all.iter().map(String::as_str));
        d.ok(&args);
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let data = d.env.data_root();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !shims_of(&data).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(shims_of(&data), Vec::<i32>::new(), "shims left running");
    assert!(
        berth_testkit::cleanup::mounts_under(&data.join("containers")).is_empty(),
        "mounts left: {:?}",
        berth_testkit::cleanup::mounts_under(&data.join("containers"))
    );
    let left: Vec<_> = std::fs::read_dir(data.join("containers"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "container dirs left: {left:?}");
    let st = seen.lock().unwrap();
    for id in st.created.keys() {
        for cg in cgroup_dirs(id) {
            assert!(!cg.exists(), "cgroup left: {}", cg.display());
        }
    }
    // per-container runtime state (caches of the runtime, such as compiled seccomp
    // filters, are not per container)
    let runtime_left: Vec<_> = std::fs::read_dir(d.env.run_root().join("runtime"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        runtime_left.is_empty(),
        "runtime state left: {runtime_left:?}"
    );
}
