//! The exit path (root; `cargo build -p berthd -p berth-shim` first): berthd records an exit
//! when the shim says `{"exited":n}`, before the shim has removed the runtime state and the
//! cgroups; whatever follows — `run --rm`'s auto-remove, `rm`, a new `start` — waits for the
//! shim to be gone, so nothing of a container is left once the command returns, and a
//! removed container's directory leaves through the trash.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Daemon, Leftovers, cgroup_dirs, stderr, stdout};

/// What the runtime and the engine keep of container `id` right now.
fn traces(d: &Daemon, id: &str) -> Vec<PathBuf> {
    let mut left: Vec<PathBuf> = cgroup_dirs(id).into_iter().filter(|p| p.exists()).collect();
    for p in [
        d.env.run_root().join("runtime").join(id),
        d.env.data_root().join("containers").join(id),
    ] {
        if p.exists() {
            left.push(p);
        }
    }
    left
}

fn cid(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

#[test]
fn run_rm_leaves_nothing_once_it_returns() {
    let d = Daemon::start();
    d.load_busybox();
    let _g = Leftovers::new(&d);
    for i in 0..8 {
        let cidfile = d.env.dir().join(format!("cid{i}"));
        let code = i % 3;
        let o = d.berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--cidfile",
            cidfile.to_str().unwrap(),
            "busybox",
            "sh",
            "-c",
            &format!("echo out{i}; exit {code}"),
        ]);
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
        assert_eq!(stdout(&o), format!("out{i}\n"));
        let id = cid(&cidfile);
        assert_eq!(
            traces(&d, &id),
            Vec::<PathBuf>::new(),
            "run --rm {i} left these"
        );
    }
    // the same through the docker CLI (AutoRemove + wait condition=removed)
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    // the trash empties in the background
    let trash = d.env.data_root().join("trash");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&trash).map(|r| r.count()).unwrap_or(0) > 0 {
        assert!(Instant::now() < deadline, "the trash did not empty");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rm_and_start_right_after_an_exit_wait_for_the_shim() {
    let d = Daemon::start();
    d.load_busybox();
    let _g = Leftovers::new(&d);
    // rm at once after the exit is seen
    for _ in 0..5 {
        let id = d.ok(&["run", "-d", "--network", "none", "busybox", "true"]);
        let id = id.trim();
        assert_eq!(d.ok(&["wait", id]).trim(), "0");
        d.ok(&["rm", id]);
        assert_eq!(
            traces(&d, id),
            Vec::<PathBuf>::new(),
            "rm right after the exit"
        );
    }
    // start again at once after each exit: every run recorded, no "already exists"
    let id = d.ok(&[
        "create",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    let id = id.trim();
    for n in 0..5 {
        let o = d.berth(&["start", "-a", id]);
        assert_eq!(o.status.code(), Some(3), "start {n}: {}", stderr(&o));
    }
    let inspect = d.ok(&[
        "inspect",
        "--format",
        "{{.State.ExitCode}} {{.State.Status}}",
        id,
    ]);
    assert_eq!(inspect.trim(), "3 exited");
    d.ok(&["rm", id]);
    assert_eq!(traces(&d, id), Vec::<PathBuf>::new());
}

#[test]
fn run_rm_whose_start_fails_is_removed_by_the_daemon() {
    let d = Daemon::start_with_pools(1);
    d.load_busybox();
    let _g = Leftovers::new(&d);
    let cidr = d.pools[0].clone();
    d.ok(&["network", "create", "--subnet", &cidr, "fixed"]);
    let ip = format!("{}.9", &cidr[..cidr.rfind('.').unwrap()]);
    let holder = d.ok(&[
        "run",
        "-d",
        "--network",
        "fixed",
        "--ip",
        &ip,
        "busybox",
        "sleep",
        "60",
    ]);
    // the address is taken: the start fails after the create; with --rm (AutoRemove)
    // the daemon removes the container and both CLIs return at once (moby does the same;
    // the docker CLI waits for condition=removed)
    for cli in ["berth", "docker"] {
        let args = [
            "run",
            "--rm",
            "--network",
            "fixed",
            "--ip",
            &ip,
            "busybox",
            "true",
        ];
        let t = Instant::now();
        let o = if cli == "berth" {
            d.berth(&args)
        } else {
            d.docker(&args)
        };
        assert!(!o.status.success(), "{cli}: an address handed out twice");
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "{cli} waited {:?}",
            t.elapsed()
        );
        assert_eq!(
            d.ok(&["ps", "-aq", "--no-trunc"]).trim(),
            holder.trim(),
            "{cli}"
        );
    }
    d.ok(&["rm", "-f", holder.trim()]);
}

/// `run -d --rm --network none busybox sleep 60`: the id.
fn run_detached_rm(d: &Daemon) -> String {
    d.ok(&[
        "run",
        "-d",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ])
    .trim()
    .to_owned()
}

/// Waits (10 s at most) until `inspect` no longer finds `id`.
fn wait_removed(d: &Daemon, id: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.berth(&["inspect", id]).status.success() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The mount options of `path` in /proc/self/mountinfo (the superblock's and the mount's).
fn mount_options(path: &std::path::Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = path.display().to_string();
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(4) == Some(&want.as_str())).then(|| l.to_owned())
    })
}

#[test]
fn throwaway_containers_mount_a_volatile_overlay_and_kept_ones_do_not() {
    let d = Daemon::start();
    d.load_busybox();
    let _g = Leftovers::new(&d);
    let rm = run_detached_rm(&d);
    let kept = d
        .ok(&["run", "-d", "--network", "none", "busybox", "sleep", "60"])
        .trim()
        .to_owned();
    let rootfs = |id: &str| d.env.data_root().join("containers").join(id).join("rootfs");
    let rm_opts = mount_options(&rootfs(&rm)).expect("the --rm container's rootfs is mounted");
    let kept_opts = mount_options(&rootfs(&kept)).expect("the container's rootfs is mounted");
    assert!(rm_opts.contains("volatile"), "{rm_opts}");
    assert!(!kept_opts.contains("volatile"), "{kept_opts}");
    // the volatile upper works as any: writes show, and the container goes with its stop
    assert_eq!(
        d.ok(&["exec", &rm, "sh", "-c", "echo hi > /f; cat /f"]),
        "hi\n"
    );
    d.ok(&["stop", "-t", "0", &rm]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !traces(&d, &rm).is_empty() {
        assert!(Instant::now() < deadline, "left: {:?}", traces(&d, &rm));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mount_options(&rootfs(&rm)), None);
    d.ok(&["rm", "-f", &kept]);
}

#[test]
fn auto_remove_containers_not_running_at_daemon_start_are_removed() {
    let mut d = Daemon::start();
    d.load_busybox();
    let _g = Leftovers::new(&d);
    let kept = d
        .ok(&["create", "--rm", "--network", "none", "busybox", "true"])
        .trim()
        .to_owned();
    let rebooted = d
        .ok(&["create", "--rm", "--network", "none", "busybox", "true"])
        .trim()
        .to_owned();
    let running = run_detached_rm(&d);
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", &running]);
    d.kill_berthd();
    // as after a reboot: the overlay of one created container is gone; the running one's
    // process ends while no daemon is there
    let rootfs = d
        .env
        .data_root()
        .join("containers")
        .join(&rebooted)
        .join("rootfs");
    rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH).unwrap();
    std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    d.restart();
    wait_removed(&d, &running, "the exited --rm container is still there");
    let o = d.berth(&["inspect", &rebooted]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("No such"), "{}", stderr(&o));
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", &kept]),
        "created\n"
    );
    // the one kept still runs (its volatile overlay is the one it was created with)
    assert_eq!(d.ok(&["start", "-a", &kept]), "");
    wait_removed(&d, &kept, "--rm container not removed after its run");
    assert!(
        traces(&d, &running).is_empty(),
        "{:?}",
        traces(&d, &running)
    );
    assert!(
        traces(&d, &rebooted).is_empty(),
        "{:?}",
        traces(&d, &rebooted)
    );
}
