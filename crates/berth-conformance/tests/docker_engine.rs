//! The Docker engine (Debian's docker.io, a private dockerd) running containers
//! with `--runtime berth` (berth-runc), each case checked against its expected
//! value and against the same run under the default runc runtime.
//!
//! One test function runs every case against one daemon: dockerd takes seconds
//! to start and nextest runs each test in its own process.

use std::time::Instant;

use berth_conformance::{Dockerd, DockerdOptions, Run, berth_runc_path, ensure_docker_engine};

const IMAGE: &str = "berth-conformance/busybox:latest";

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Collects failures so one broken case does not hide the others.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    passed: Vec<String>,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        if ok {
            self.passed.push(name.to_string());
        } else {
            self.failures.push(format!("{name}: {}", detail()));
        }
    }
}

fn run(d: &Dockerd, runtime: &str, args: &[&str]) -> Run {
    let mut v = vec!["run", "--runtime", runtime, "--network", "none"];
    v.extend_from_slice(args);
    d.docker(&v).expect("run docker cli")
}

/// `docker run --rm <flags> IMAGE <cmd>` under `runtime`.
fn run_rm(d: &Dockerd, runtime: &str, flags: &[&str], cmd: &[&str]) -> Run {
    let mut v = vec!["--rm"];
    v.extend_from_slice(flags);
    v.push(IMAGE);
    v.extend_from_slice(cmd);
    run(d, runtime, &v)
}

fn load_busybox(d: &Dockerd) {
    let scratch = tempfile::tempdir().unwrap();
    let img = berth_mkimage::busybox_image(scratch.path(), IMAGE, Some(0)).expect("busybox image");
    let tar = scratch.path().join("busybox.tar");
    img.write_docker_archive(&tar, false)
        .expect("write docker-archive");
    d.docker_ok(&["load", "-i", tar.to_str().unwrap()])
        .expect("docker load");
}

/// Every case once under `runtime`, checked against the expected values;
/// returns the outputs keyed by case for the cross-runtime comparison.
fn cases(d: &Dockerd, rt: &str, rep: &mut Report) -> Vec<(String, i32, String)> {
    let mut seen = Vec::new();
    let note = |name: &str, r: &Run, seen: &mut Vec<(String, i32, String)>| {
        seen.push((name.to_string(), r.code, r.stdout.clone()));
    };

    // --rm true: exit 0 and nothing left behind
    let r = run_rm(d, rt, &["--name", &format!("rm-true-{rt}")], &["true"]);
    rep.check(
        &format!("[{rt}] run --rm true exits 0"),
        r.code == 0,
        || format!("{r:?}"),
    );
    let left = d
        .docker(&["ps", "-aq", "--filter", &format!("name=rm-true-{rt}")])
        .unwrap();
    rep.check(
        &format!("[{rt}] --rm leaves no container"),
        left.code == 0 && left.stdout.trim().is_empty(),
        || format!("{left:?}"),
    );
    note("true", &r, &mut seen);

    // exit codes
    for (name, cmd, want) in [
        ("exit 1", vec!["false"], 1),
        ("exit 0 via sh", vec!["sh", "-c", "exit 0"], 0),
        ("not executable", vec!["/etc"], 126),
        ("not found", vec!["/no/such/binary"], 127),
        ("exit 42", vec!["sh", "-c", "exit 42"], 42),
    ] {
        let r = run_rm(d, rt, &[], &cmd);
        rep.check(&format!("[{rt}] {name} -> {want}"), r.code == want, || {
            format!("{r:?}")
        });
        note(name, &r, &mut seen);
    }

    // docker kill -> 137
    let name = format!("kill-{rt}");
    let _ = run(d, rt, &["-d", "--name", &name, IMAGE, "sleep", "300"]);
    let k = d.docker(&["kill", &name]).unwrap();
    let w = d.docker(&["wait", &name]).unwrap();
    let _ = d.docker(&["rm", "-f", &name]);
    rep.check(
        &format!("[{rt}] docker kill -> 137"),
        k.code == 0 && w.stdout.trim() == "137",
        || format!("kill {k:?} wait {w:?}"),
    );
    note("kill", &w, &mut seen);

    // stdout comes back
    let r = run_rm(d, rt, &[], &["echo", "hello from busybox"]);
    rep.check(
        &format!("[{rt}] stdout"),
        r.code == 0 && r.stdout == "hello from busybox\n",
        || format!("{r:?}"),
    );
    note("echo", &r, &mut seen);

    // pid 1 and hostname
    let r = run_rm(
        d,
        rt,
        &["--hostname", "berthbox"],
        &["sh", "-c", "echo $$; hostname"],
    );
    rep.check(
        &format!("[{rt}] pid 1 and hostname"),
        r.stdout == "1\nberthbox\n",
        || format!("{r:?}"),
    );
    note("pid-hostname", &r, &mut seen);

    // --memory: the limit is the container's memory cgroup limit
    let r = run_rm(
        d,
        rt,
        &["--memory", "32m"],
        &["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"],
    );
    rep.check(
        &format!("[{rt}] --memory 32m seen inside"),
        r.stdout.trim() == "33554432",
        || format!("{r:?}"),
    );
    note("memory", &r, &mut seen);

    // --memory: an allocation past it is OOM-killed
    let name = format!("oom-{rt}");
    let r = run(
        d,
        rt,
        &[
            "--name",
            &name,
            "--memory",
            "16m",
            "--memory-swap",
            "16m",
            IMAGE,
            // containerd's shim subscribes to the OOM event only after `start`
            // returns: an allocation in the first instant races it (with any
            // runtime; a fast one loses more often), so wait a moment first.
            "sh",
            "-c",
            "sleep 0.5; exec dd if=/dev/zero of=/dev/null bs=64M count=1",
        ],
    );
    let oom = d
        .docker(&["inspect", "-f", "{{.State.OOMKilled}}", &name])
        .unwrap();
    let _ = d.docker(&["rm", "-f", &name]);
    rep.check(
        &format!("[{rt}] --memory 16m OOM kill -> 137, OOMKilled"),
        r.code == 137 && oom.stdout.trim() == "true",
        || format!("{r:?} OOMKilled={oom:?}"),
    );
    note("oom", &r, &mut seen);

    // --pids-limit
    let r = run_rm(
        d,
        rt,
        &["--pids-limit", "10"],
        &["cat", "/sys/fs/cgroup/pids/pids.max"],
    );
    rep.check(
        &format!("[{rt}] --pids-limit 10 seen inside"),
        r.stdout.trim() == "10",
        || format!("{r:?}"),
    );
    note("pids", &r, &mut seen);

    // --cpus / --cpu-shares / --cpuset-cpus
    let r = run_rm(
        d,
        rt,
        &["--cpus", "0.5", "--cpu-shares", "512", "--cpuset-cpus", "0"],
        &[
            "cat",
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
            "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
            "/sys/fs/cgroup/cpu/cpu.shares",
            "/sys/fs/cgroup/cpuset/cpuset.cpus",
        ],
    );
    rep.check(
        &format!("[{rt}] --cpus --cpu-shares --cpuset-cpus seen inside"),
        r.stdout == "50000\n100000\n512\n0\n",
        || format!("{r:?}"),
    );
    note("cpu", &r, &mut seen);

    // --cap-drop ALL
    let r = run_rm(
        d,
        rt,
        &["--cap-drop", "ALL"],
        &["sh", "-c", "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status"],
    );
    let want = "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n";
    rep.check(&format!("[{rt}] --cap-drop ALL"), r.stdout == want, || {
        format!("{r:?}")
    });
    note("cap-drop", &r, &mut seen);

    // --user
    let r = run_rm(
        d,
        rt,
        &["--user", "65534:65534"],
        &["sh", "-c", "id -u; id -g"],
    );
    rep.check(
        &format!("[{rt}] --user 65534:65534"),
        r.stdout == "65534\n65534\n",
        || format!("{r:?}"),
    );
    note("user", &r, &mut seen);

    // --read-only
    let r = run_rm(
        d,
        rt,
        &["--read-only"],
        &["sh", "-c", "touch /x 2>&1; echo rc=$?"],
    );
    rep.check(
        &format!("[{rt}] --read-only"),
        r.stdout.contains("Read-only file system") && r.stdout.contains("rc=1"),
        || format!("{r:?}"),
    );
    note("read-only", &r, &mut seen);

    // -i: stdin reaches the container and EOF ends it
    let r = d
        .docker_with_stdin(
            &[
                "run",
                "--runtime",
                rt,
                "--network",
                "none",
                "--rm",
                "-i",
                IMAGE,
                "sh",
                "-c",
                "wc -l; cat",
            ],
            b"one\ntwo\n",
        )
        .unwrap();
    rep.check(
        &format!("[{rt}] -i passes stdin"),
        r.code == 0 && r.stdout.trim_start() == "2\n",
        || format!("{r:?}"),
    );
    note("stdin", &r, &mut seen);

    // -t: stdout is a terminal
    let r = run_rm(d, rt, &["-t"], &["sh", "-c", "test -t 1 && echo tty"]);
    rep.check(
        &format!("[{rt}] -t gives a tty"),
        r.code == 0 && r.stdout.trim_end() == "tty",
        || format!("{r:?}"),
    );
    note("tty", &r, &mut seen);

    // -d, exec, stop
    let name = format!("detached-{rt}");
    let r = run(d, rt, &["-d", "--name", &name, IMAGE, "sleep", "300"]);
    rep.check(
        &format!("[{rt}] run -d"),
        r.code == 0 && r.stdout.trim().len() == 64,
        || format!("{r:?}"),
    );
    let running = d
        .docker(&["inspect", "-f", "{{.State.Running}}", &name])
        .unwrap();
    rep.check(
        &format!("[{rt}] -d container is running"),
        running.stdout.trim() == "true",
        || format!("{running:?}"),
    );
    let ex = d
        .docker(&[
            "exec",
            &name,
            "sh",
            "-c",
            "echo in-exec; cat /proc/1/cmdline | tr '\\0' ' '",
        ])
        .unwrap();
    rep.check(
        &format!("[{rt}] exec"),
        ex.code == 0 && ex.stdout == "in-exec\nsleep 300 ",
        || format!("{ex:?}"),
    );
    note("exec", &ex.clone(), &mut seen);
    let ex = d.docker(&["exec", &name, "sh", "-c", "exit 3"]).unwrap();
    rep.check(&format!("[{rt}] exec exit code"), ex.code == 3, || {
        format!("{ex:?}")
    });
    let ex = d
        .docker(&["exec", "--user", "65534", &name, "id", "-u"])
        .unwrap();
    rep.check(
        &format!("[{rt}] exec --user"),
        ex.stdout == "65534\n",
        || format!("{ex:?}"),
    );
    let ex = d
        .docker(&["exec", "-t", &name, "sh", "-c", "test -t 1 && echo tty"])
        .unwrap();
    rep.check(
        &format!("[{rt}] exec -t"),
        ex.code == 0 && ex.stdout.trim_end() == "tty",
        || format!("{ex:?}"),
    );
    // pause / unpause (the runtime's freezer), top (runtime ps), update (runtime update)
    let pa = d.docker(&["pause", &name]).unwrap();
    let st = d
        .docker(&["inspect", "-f", "{{.State.Status}}", &name])
        .unwrap();
    let ex_paused = d.docker(&["exec", &name, "true"]).unwrap();
    let up = d.docker(&["unpause", &name]).unwrap();
    let st2 = d
        .docker(&["inspect", "-f", "{{.State.Status}}", &name])
        .unwrap();
    rep.check(
        &format!("[{rt}] pause/unpause"),
        pa.code == 0 && st.stdout.trim() == "paused" && ex_paused.code != 0 && up.code == 0 && st2.stdout.trim() == "running",
        || format!("pause {pa:?} state {st:?} exec-while-paused {ex_paused:?} unpause {up:?} state {st2:?}"),
    );
    note("pause", &st, &mut seen);
    let top = d.docker(&["top", &name, "-o", "pid,comm"]).unwrap();
    rep.check(
        &format!("[{rt}] top lists sleep"),
        top.code == 0 && top.stdout.lines().any(|l| l.trim_end().ends_with("sleep")),
        || format!("{top:?}"),
    );
    let upd = d
        .docker(&[
            "update",
            "--memory",
            "48m",
            "--memory-swap",
            "96m",
            "--pids-limit",
            "20",
            &name,
        ])
        .unwrap();
    let seen_limits = d
        .docker(&[
            "exec",
            &name,
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/pids/pids.max",
        ])
        .unwrap();
    rep.check(
        &format!("[{rt}] update --memory --pids-limit"),
        upd.code == 0 && seen_limits.stdout == "50331648\n20\n",
        || format!("update {upd:?} limits {seen_limits:?}"),
    );
    note("update", &seen_limits, &mut seen);
    let t0 = Instant::now();
    let st = d.docker(&["stop", "-t", "1", &name]).unwrap();
    let code = d
        .docker(&[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{.State.Running}}",
            &name,
        ])
        .unwrap();
    rep.check(
        &format!("[{rt}] stop (sleep as pid 1 ignores TERM -> KILL -> 137)"),
        st.code == 0 && code.stdout.trim() == "137 false",
        || format!("stop {st:?} state {code:?} after {:?}", t0.elapsed()),
    );
    note("stop", &code, &mut seen);
    let rm = d.docker(&["rm", &name]).unwrap();
    rep.check(&format!("[{rt}] rm after stop"), rm.code == 0, || {
        format!("{rm:?}")
    });
    // the runtime's delete removed the container's cgroup in every hierarchy
    let id = r.stdout.trim();
    let left: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| {
            h.path()
                .join(d.cgroup_parent().trim_start_matches('/'))
                .join(id)
        })
        .filter(|p| !id.is_empty() && p.exists())
        .collect();
    rep.check(
        &format!("[{rt}] rm removes the container's cgroups"),
        left.is_empty(),
        || format!("left: {left:?}"),
    );

    // a process that handles TERM stops with its own code
    let name = format!("trap-{rt}");
    let _ = run(
        d,
        rt,
        &[
            "-d",
            "--name",
            &name,
            IMAGE,
            "sh",
            "-c",
            "trap 'exit 7' TERM; while :; do sleep 0.1; done",
        ],
    );
    let _ = d.docker(&["stop", "-t", "5", &name]);
    let code = d
        .docker(&["inspect", "-f", "{{.State.ExitCode}}", &name])
        .unwrap();
    let _ = d.docker(&["rm", "-f", &name]);
    rep.check(
        &format!("[{rt}] stop delivers TERM"),
        code.stdout.trim() == "7",
        || format!("{code:?}"),
    );
    note("stop-trap", &code, &mut seen);

    seen
}

fn start_daemon() -> Option<Dockerd> {
    if !is_root() {
        eprintln!("skipped: needs root (dockerd)");
        return None;
    }
    ensure_docker_engine().expect("docker.io installed");
    let mut runtimes = Vec::new();
    match berth_runc_path() {
        Some(p) => {
            warn_if_stale(&p);
            runtimes.push(("berth".to_string(), p))
        }
        None => {
            eprintln!("note: target/<profile>/berth-runc is not built (cargo build -p berth-runc)")
        }
    }
    let started = Instant::now();
    let d = Dockerd::start(&DockerdOptions {
        runtimes,
        ..Default::default()
    })
    .expect("start dockerd");
    eprintln!("dockerd up in {:?}", started.elapsed());
    load_busybox(&d);
    Some(d)
}

/// berth-runc is found, not built, by this crate: say so when its sources are newer.
fn warn_if_stale(bin: &std::path::Path) {
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok();
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let newest = [
        "berth-runc/src",
        "berth-runtime/src",
        "berth-cgroups/src",
        "berth-sys/src",
    ]
    .iter()
    .filter_map(|d| std::fs::read_dir(crates.join(d)).ok())
    .flat_map(|rd| rd.flatten())
    .filter_map(|e| e.metadata().and_then(|m| m.modified()).ok())
    .max();
    if let (Some(b), Some(n)) = (built, newest)
        && n > b
    {
        eprintln!(
            "warning: {bin:?} is older than its sources: run `cargo build -p berth-runc` first"
        );
    }
}

fn fail_with_log(d: &Dockerd, rep: &Report) {
    if rep.failures.is_empty() {
        return;
    }
    let log = d.daemon_log();
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    panic!(
        "{} of {} checks failed:\n{}\n--- dockerd log tail ---\n{}",
        rep.failures.len(),
        rep.failures.len() + rep.passed.len(),
        rep.failures.join("\n"),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

/// The expectations hold for Docker's default runtime (runc), and the private
/// daemon leaves nothing behind: no directory, mount, process or cgroup.
#[test]
fn docker_engine_runc_baseline_and_cleanup() {
    let key_before = std::path::Path::new("/etc/docker/key.json").exists();
    let Some(d) = start_daemon() else { return };
    let mut rep = Report::default();
    cases(&d, "runc", &mut rep);
    let base = d.base().to_path_buf();
    let parent = d.cgroup_parent().to_string();
    if rep.failures.is_empty() {
        eprintln!("{} runc checks passed", rep.passed.len());
    }
    fail_with_log(&d, &rep);
    drop(d);
    assert!(!base.exists(), "{base:?} left behind");
    assert!(
        key_before || !std::path::Path::new("/etc/docker/key.json").exists(),
        "dockerd wrote /etc/docker/key.json"
    );
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let needle = base.to_string_lossy().into_owned();
    assert!(!mi.contains(&needle), "mounts left under {base:?}");
    for ent in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(ent.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            assert!(!cmd.contains(&needle), "process left behind: {cmd}");
        }
    }
    // runc creates the parent in every hierarchy, named ones and `unified` too
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = h.path().join(parent.trim_start_matches('/'));
        assert!(!dir.exists(), "cgroup {dir:?} left behind");
    }
}

/// Every case with `--runtime berth` (berth-runc), checked against the
/// expected values and against runc's output for the same run.
#[test]
fn docker_engine_with_berth_runtime_matches_runc() {
    if berth_runc_path().is_none() {
        eprintln!(
            "skipped: target/<profile>/berth-runc is not built yet (cargo build -p berth-runc)"
        );
        return;
    }
    let Some(d) = start_daemon() else { return };
    let started = Instant::now();
    let mut rep = Report::default();
    let runc = cases(&d, "runc", &mut rep);
    assert!(
        rep.failures.is_empty(),
        "the expectations are wrong, runc disagrees:\n{}",
        rep.failures.join("\n")
    );
    let berth = cases(&d, "berth", &mut rep);
    for ((name, rc, out), (_, bc, bout)) in runc.iter().zip(berth.iter()) {
        rep.check(
            &format!("[compare] {name}: berth == runc"),
            rc == bc && out == bout,
            || format!("runc ({rc}, {out:?}) berth ({bc}, {bout:?})"),
        );
    }
    eprintln!(
        "{} checks passed in {:?}",
        rep.passed.len(),
        started.elapsed()
    );
    fail_with_log(&d, &rep);
}
