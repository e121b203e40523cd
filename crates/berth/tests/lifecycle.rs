//! The rest of the container lifecycle through `berth` against a per-test berthd (root;
//! `cargo build -p berthd -p berth-shim` first): run flags reaching the container
//! (init, ulimits, shm, seccomp, no-new-privileges, host namespaces, cgroup resources,
//! groups, devices, privileged), cidfile, log drivers, stop signal/timeout, restart
//! policies, pause, rename, top, stats, prune, df, logs --since/--until, ps flags, group
//! help, exit codes, concurrent runs.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Leftovers, cgroup_dirs, stderr, stdout};

fn run_out(d: &Daemon, args: &[&str]) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    d.ok(&a)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One GET over the daemon's socket; the JSON body.
fn api_get(d: &Daemon, path: &str) -> serde_json::Value {
    use std::io::{Read as _, Write as _};
    let mut s = std::os::unix::net::UnixStream::connect(d.env.socket()).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: berth\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn init_ulimit_shm_and_security_options_reach_the_container() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    // --init: Docker's init is pid 1 and runs the command
    let o = run_out(&d, &["--init", "busybox", "cat", "/proc/1/cmdline"]);
    assert_eq!(
        o.replace('\0', " "),
        "/sbin/docker-init -- cat /proc/1/cmdline "
    );
    // --ulimit within the daemon's own hard limit
    let o = run_out(
        &d,
        &[
            "--ulimit",
            "nofile=100:200",
            "busybox",
            "sh",
            "-c",
            "ulimit -Sn; ulimit -Hn",
        ],
    );
    assert_eq!(o, "100\n200\n");
    // above the daemon's own hard limit (no CAP_SYS_RESOURCE here): a clear 125
    let own: u64 = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).and_then(|h| h.parse().ok()))
        .unwrap();
    let has_sys_resource = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap() & (1 << 24) != 0)
        .unwrap();
    if !has_sys_resource {
        let too_high = format!("nofile=10:{}", own + 1);
        let o = d.berth(&["run", "--rm", "--ulimit", &too_high, "busybox", "true"]);
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("above the daemon's own hard limit"),
            "{}",
            stderr(&o)
        );
    }
    // --shm-size
    let o = run_out(
        &d,
        &[
            "--shm-size",
            "2m",
            "busybox",
            "sh",
            "-c",
            "df -k /dev/shm | tail -1",
        ],
    );
    assert!(o.contains(" 2048 "), "{o}");
    // default: the seccomp filter is on, no_new_privs off
    let status = |extra: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&[
            "busybox",
            "grep",
            "-E",
            "^(Seccomp|NoNewPrivs):",
            "/proc/self/status",
        ]);
        d.ok(&a)
    };
    assert_eq!(status(&[]), "NoNewPrivs:\t0\nSeccomp:\t2\n");
    assert_eq!(
        status(&["--security-opt", "no-new-privileges"]),
        "NoNewPrivs:\t1\nSeccomp:\t2\n"
    );
    assert_eq!(
        status(&["--security-opt", "seccomp=unconfined"]),
        "NoNewPrivs:\t0\nSeccomp:\t0\n"
    );
    assert_eq!(status(&["--privileged"]), "NoNewPrivs:\t0\nSeccomp:\t0\n");
    // the default profile refuses unshare without CAP_SYS_ADMIN; unconfined does not
    let o = d.berth(&["run", "--rm", "busybox", "unshare", "-U", "true"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "unshare",
        "-U",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // a profile file (sent as its contents, as the docker CLI does)
    let profile = d.env.dir().join("deny-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = d.berth(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/x",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&["run", "--rm", "--security-opt", "bogus", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("Invalid --security-opt"),
        "{}",
        stderr(&o)
    );
    // inspect shows them
    let id = d
        .ok(&[
            "create",
            "--init",
            "--ulimit",
            "nofile=100:200",
            "--shm-size",
            "2m",
            "--security-opt",
            "no-new-privileges",
            "busybox",
            "true",
        ])
        .trim()
        .to_owned();
    let o = d.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Init}} {{json .HostConfig.Ulimits}} {{.HostConfig.ShmSize}} {{json .HostConfig.SecurityOpt}}",
        &id,
    ]);
    assert_eq!(
        o,
        "true [{\"Hard\":200,\"Name\":\"nofile\",\"Soft\":100}] 2097152 [\"no-new-privileges\"]\n"
    );
    d.ok(&["rm", &id]);
}

#[test]
fn host_namespaces_resources_groups_and_devices() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    // --pid host sees the host's processes, the default only its own
    let own = run_out(&d, &["busybox", "sh", "-c", "ls -d /proc/[0-9]* | wc -l"]);
    assert!(own.trim().parse::<u32>().unwrap() <= 3, "{own}");
    let host = run_out(
        &d,
        &[
            "--pid",
            "host",
            "busybox",
            "sh",
            "-c",
            "ls -d /proc/[0-9]* | wc -l",
        ],
    );
    assert!(host.trim().parse::<u32>().unwrap() > 10, "{host}");
    // --uts host: the host's name; --domainname in its own uts namespace
    let hn = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(run_out(&d, &["--uts", "host", "busybox", "hostname"]), hn);
    assert_eq!(
        run_out(
            &d,
            &[
                "--domainname",
                "example.org",
                "busybox",
                "cat",
                "/proc/sys/kernel/domainname"
            ]
        ),
        "example.org\n"
    );
    // --ipc host shares the host's ipc namespace
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    assert_eq!(
        run_out(
            &d,
            &["--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc"]
        )
        .trim(),
        host_ipc.to_str().unwrap()
    );
    assert_ne!(
        run_out(&d, &["busybox", "readlink", "/proc/self/ns/ipc"]).trim(),
        host_ipc.to_str().unwrap()
    );
    // --group-add
    let o = run_out(
        &d,
        &[
            "--group-add",
            "10",
            "--group-add",
            "nobody",
            "busybox",
            "id",
            "-G",
        ],
    );
    assert_eq!(o, "0 10 65534\n");
    // --device with a new path and permissions
    let o = run_out(
        &d,
        &[
            "--device",
            "/dev/null:/dev/xnull:rw",
            "busybox",
            "sh",
            "-c",
            "echo x > /dev/xnull && ls -l /dev/xnull",
        ],
    );
    assert!(o.starts_with("crw-rw-rw-"), "{o}");
    assert!(o.contains("1,   3"), "{o}");
    let o = d.berth(&["run", "--rm", "--device", "/nonexistent", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("/nonexistent"), "{}", stderr(&o));
    // --privileged: every host device
    let devs = run_out(&d, &["--privileged", "busybox", "ls", "/dev"]);
    assert!(devs.lines().count() > 20, "{devs}");
    // cgroup resources, read from the container's own cgroup on the host
    let id = d
        .ok(&[
            "run",
            "-d",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            "--cpu-quota",
            "50000",
            "--cpu-period",
            "100000",
            "-m",
            "64m",
            "--memory-swap",
            "128m",
            "--oom-kill-disable",
            "busybox",
            "sleep",
            "100",
        ])
        .trim()
        .to_owned();
    let dirs = cgroup_dirs(&id);
    let read = |ctrl: &str, file: &str| {
        let dir = dirs
            .iter()
            .find(|d| {
                d.components().any(|c| {
                    c.as_os_str()
                        .to_str()
                        .is_some_and(|s| s.split(',').any(|x| x == ctrl))
                })
            })
            .unwrap_or_else(|| panic!("no {ctrl} cgroup in {dirs:?}"));
        std::fs::read_to_string(dir.join(file))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(read("cpu", "cpu.shares"), "512");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(read("cpuset", "cpuset.cpus"), "0");
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    let swap = dirs
        .iter()
        .find(|d| d.to_string_lossy().contains("memory"))
        .map(|d| d.join("memory.memsw.limit_in_bytes"))
        .unwrap();
    if swap.exists() {
        assert_eq!(
            std::fs::read_to_string(&swap).unwrap().trim(),
            (128u64 << 20).to_string()
        );
    }
    let o = d.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.CpuShares}} {{.HostConfig.CpusetCpus}} {{.HostConfig.CpuQuota}} {{.HostConfig.MemorySwap}} {{.HostConfig.OomKillDisable}}",
        &id,
    ]);
    assert_eq!(o, format!("512 0 50000 {} true\n", 128u64 << 20));
    // update changes the live cgroup and the spec
    assert_eq!(
        d.ok(&["update", "--cpu-shares", "256", "--pids-limit", "50", &id]),
        format!("{id}\n")
    );
    assert_eq!(read("cpu", "cpu.shares"), "256");
    assert_eq!(read("pids", "pids.max"), "50");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.CpuShares}}", &id]),
        "256\n"
    );
    d.ok(&["rm", "-f", &id]);
    // conflicting and invalid values are engine errors
    let o = d.berth(&[
        "run",
        "--rm",
        "--cpus",
        "1",
        "--cpu-period",
        "100000",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("Conflicting options"), "{}", stderr(&o));
    let o = d.berth(&["run", "--rm", "--cpu-period", "10", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("CPU cfs period"), "{}", stderr(&o));
}

#[test]
fn cidfile_log_driver_stop_signal_and_timeout() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let cid = d.env.dir().join("cid");
    let cid_s = cid.to_str().unwrap();
    let id = d
        .ok(&["run", "-d", "--cidfile", cid_s, "busybox", "true"])
        .trim()
        .to_owned();
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id);
    // an existing cidfile is refused before anything is created
    let before = d.ok(&["ps", "-aq"]);
    let o = d.berth(&["run", "-d", "--cidfile", cid_s, "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("container ID file found"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.ok(&["ps", "-aq"]), before);
    // --log-driver none: nothing kept, and logs says so as Docker does
    let id = d
        .ok(&[
            "run",
            "-d",
            "--log-driver",
            "none",
            "busybox",
            "echo",
            "hidden",
        ])
        .trim()
        .to_owned();
    assert_eq!(d.ok(&["wait", &id]), "0\n");
    let o = d.berth(&["logs", &id]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("configured logging driver does not support reading"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", &id]),
        "none\n"
    );
    // json-file with options: recorded, and handed to the shim in log-config.json
    let id = d
        .ok(&[
            "create",
            "--log-driver",
            "json-file",
            "--log-opt",
            "max-size=1m",
            "--log-opt",
            "max-file=2",
            "busybox",
            "true",
        ])
        .trim()
        .to_owned();
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", &id]),
        "{\"Config\":{\"max-file\":\"2\",\"max-size\":\"1m\"},\"Type\":\"json-file\"}\n"
    );
    let cfg = std::fs::read_to_string(
        d.env
            .data_root()
            .join("containers")
            .join(&id)
            .join("log-config.json"),
    )
    .unwrap();
    assert!(cfg.contains("\"max-size\":\"1m\""), "{cfg}");
    let o = d.berth(&["run", "--rm", "--log-driver", "syslog", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    // --stop-signal: stop sends it (the trap exits 7)
    let id = d
        .ok(&[
            "run",
            "-d",
            "--stop-signal",
            "SIGUSR1",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 7' USR1; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_owned();
    std::thread::sleep(Duration::from_millis(300));
    d.ok(&["stop", &id]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{.Config.StopSignal}}",
            &id
        ]),
        "7 SIGUSR1\n"
    );
    // stop -s: another signal just this once
    let id = d
        .ok(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 9' USR2; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_owned();
    std::thread::sleep(Duration::from_millis(300));
    d.ok(&["stop", "-s", "USR2", &id]);
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.ExitCode}}", &id]), "9\n");
    // --stop-timeout: a container that ignores TERM is killed after 1 s, not 10
    let id = d
        .ok(&[
            "run",
            "-d",
            "--stop-timeout",
            "1",
            "busybox",
            "sh",
            "-c",
            "trap '' TERM; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_owned();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    d.ok(&["stop", &id]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{.Config.StopTimeout}}",
            &id
        ]),
        "137 1\n"
    );
}

#[test]
fn restart_pause_rename_top_and_events() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let since = jiff::Timestamp::now().as_second().to_string();
    let id = d
        .ok(&["run", "-d", "--name", "box", "busybox", "sleep", "100"])
        .trim()
        .to_owned();
    let pid1 = d.ok(&["inspect", "-f", "{{.State.Pid}}", "box"]);
    assert_eq!(d.ok(&["restart", "-t", "0", "box"]), "box\n");
    let pid2 = d.ok(&["inspect", "-f", "{{.State.Pid}} {{.State.Status}}", "box"]);
    assert_ne!(pid1.trim(), pid2.split(' ').next().unwrap());
    assert!(pid2.ends_with(" running\n"), "{pid2}");
    // pause: frozen in the freezer, shown in ps and inspect
    assert_eq!(d.ok(&["pause", "box"]), "box\n");
    let pid = pid2.split(' ').next().unwrap().to_owned();
    let state = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        state.contains("State:\tD") || state.contains("State:\tS"),
        "{state}"
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}} {{.State.Running}}",
            "box"
        ]),
        "paused true true\n"
    );
    let ps = d.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.ends_with("(Paused)\n"), "{ps}");
    assert_eq!(
        d.ok(&["ps", "-q", "--filter", "status=paused"]),
        format!("{}\n", &id[..12])
    );
    let o = d.berth(&["pause", "box"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is already paused"), "{}", stderr(&o));
    assert_eq!(d.ok(&["unpause", "box"]), "box\n");
    let o = d.berth(&["unpause", "box"]);
    assert!(stderr(&o).contains("is not paused"), "{}", stderr(&o));
    // rename
    d.ok(&["rename", "box", "crate"]);
    assert_eq!(d.ok(&["ps", "--format", "{{.Names}}"]), "crate\n");
    let o = d.berth(&["rename", "crate", "-bad"]);
    assert_ne!(o.status.code(), Some(0));
    d.ok(&["run", "-d", "--name", "other", "busybox", "sleep", "100"]);
    let o = d.berth(&["rename", "other", "crate"]);
    assert!(stderr(&o).contains("is already in use"), "{}", stderr(&o));
    // top: the host's ps for the container's pids
    let top = d.ok(&["top", "crate"]);
    let mut lines = top.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("UID") && header.contains("PID") && header.ends_with("CMD"),
        "{header}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{top}");
    assert!(rows[0].ends_with("sleep 100"), "{top}");
    let top = d.ok(&["top", "crate", "-o", "pid,comm"]);
    assert_eq!(
        top.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["PID", "COMMAND"]
    );
    assert!(top.lines().nth(1).unwrap().ends_with("sleep"), "{top}");
    let o = d.berth(&["top", "nosuch"]);
    assert!(
        stderr(&o).contains("No such container: nosuch"),
        "{}",
        stderr(&o)
    );
    // events: kill, die, start, restart, pause, unpause, rename
    let until = (jiff::Timestamp::now().as_second() + 1).to_string();
    let ev = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        &format!("container={id}"),
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = ev.lines().collect();
    for a in ["die", "start", "restart", "pause", "unpause", "rename"] {
        assert!(actions.contains(&a), "{a} missing in {actions:?}");
    }
    let di = actions.iter().position(|a| *a == "die").unwrap();
    assert!(actions[di + 1..].contains(&"start"), "{actions:?}");
    d.ok(&["rm", "-f", "crate", "other"]);
}

#[test]
fn restart_policies_as_docker() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    // on-failure:2: two restarts, then it stays exited
    let id = d
        .ok(&[
            "run",
            "-d",
            "--restart",
            "on-failure:2",
            "busybox",
            "sh",
            "-c",
            "exit 3",
        ])
        .trim()
        .to_owned();
    wait_for("two restarts", || {
        d.ok(&["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", &id]) == "2 exited\n"
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.ExitCode}} {{json .HostConfig.RestartPolicy}}",
            &id
        ]),
        "2 3 {\"MaximumRetryCount\":2,\"Name\":\"on-failure\"}\n"
    );
    // during the backoff it is "restarting", listed by a plain ps
    let slow = d
        .ok(&[
            "run",
            "-d",
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "exit 1",
        ])
        .trim()
        .to_owned();
    wait_for("restarting", || {
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Restarting}} {{.State.Running}}",
            &slow,
        ]) == "restarting true true\n"
    });
    wait_for("listed as restarting", || {
        d.ok(&[
            "ps",
            "--filter",
            &format!("id={slow}"),
            "--format",
            "{{.Status}}",
        ])
        .starts_with("Restarting (1) ")
    });
    d.ok(&["rm", "-f", &slow]);
    // on-failure does not restart a clean exit
    let ok = d
        .ok(&["run", "-d", "--restart", "on-failure", "busybox", "true"])
        .trim()
        .to_owned();
    assert_eq!(d.ok(&["wait", &ok]), "0\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.ok(&["inspect", "-f", "{{.RestartCount}}", &ok]), "0\n");
    // always: restarts a clean exit; a stop ends it
    let al = d
        .ok(&[
            "run",
            "-d",
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "sleep 0.2",
        ])
        .trim()
        .to_owned();
    wait_for("always restarts", || {
        d.ok(&["inspect", "-f", "{{.RestartCount}}", &al])
            .trim()
            .parse::<u32>()
            .unwrap()
            >= 2
    });
    d.ok(&["stop", "-t", "0", &al]);
    let n = d.ok(&["inspect", "-f", "{{.RestartCount}}", &al]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", &al]),
        format!("{} exited\n", n.trim())
    );
    // a manual start resets the count
    d.ok(&["start", &al]);
    assert_eq!(d.ok(&["inspect", "-f", "{{.RestartCount}}", &al]), "0\n");
    // kill with a fatal signal disables the policy until the next start (Docker's docs);
    // a non-fatal one does not
    let k = d
        .ok(&[
            "run",
            "-d",
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 3' USR1; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_owned();
    std::thread::sleep(Duration::from_millis(300));
    d.ok(&["kill", "-s", "USR1", &k]);
    wait_for("restart after a non-fatal kill", || {
        d.ok(&["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", &k]) == "1 running\n"
    });
    d.ok(&["kill", &k]);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
            &k
        ]),
        "1 exited 137\n"
    );
    d.ok(&["rm", "-f", &k]);
    d.ok(&["rm", "-f", &al]);
    // --rm with a restart policy is refused
    let o = d.berth(&["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--restart and --rm"), "{}", stderr(&o));
    let o = d.berth(&["run", "-d", "--restart", "sometimes", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn always_restarts_when_berthd_starts_again_unless_stopped_does_not() {
    let mut d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let al = d
        .ok(&[
            "run",
            "-d",
            "--restart",
            "always",
            "busybox",
            "sleep",
            "100",
        ])
        .trim()
        .to_owned();
    let us = d
        .ok(&[
            "run",
            "-d",
            "--restart",
            "unless-stopped",
            "busybox",
            "sleep",
            "100",
        ])
        .trim()
        .to_owned();
    let us2 = d
        .ok(&[
            "run",
            "-d",
            "--restart",
            "unless-stopped",
            "busybox",
            "sleep",
            "100",
        ])
        .trim()
        .to_owned();
    d.ok(&["stop", "-t", "0", &al, &us]);
    d.kill_berthd();
    d.restart();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::os::unix::net::UnixStream::connect(d.env.socket()).is_ok(),
        "berthd died after its restart: {}",
        std::fs::read_to_string(d.env.dir().join("berthd-restart.log")).unwrap_or_default()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.ok(&["inspect", "-f", "{{.State.Status}}", &al]) != "running\n" {
        assert!(
            Instant::now() < deadline,
            "the always container is not running again: {}\n--- berthd's log:\n{}",
            d.ok(&["inspect", "-f", "{{json .State}}", &al]),
            d.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // started again on its network (the restart waits for the networks' reconcile)
    let ip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &al]);
    assert!(ip.trim().parse::<std::net::Ipv4Addr>().is_ok(), "{ip:?}");
    let o = d.ok(&["exec", &al, "ip", "-4", "addr", "show", "eth0"]);
    assert!(o.contains(ip.trim()), "{o}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", &us]),
        "exited\n"
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", &us2]),
        "running\n"
    );
    d.ok(&["rm", "-f", &al, &us, &us2]);
}

#[test]
fn stats_prune_df_and_ps_flags() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "busy",
            "-m",
            "64m",
            "busybox",
            "sh",
            "-c",
            "while true; do :; done",
        ])
        .trim()
        .to_owned();
    let s = d.ok(&["stats", "--no-stream", "busy"]);
    let mut lines = s.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        ]
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&format!("{}   busy   ", &id[..12])),
        "{row}"
    );
    assert!(row.contains(" / 64MiB "), "{row}");
    let cpu: f64 = row
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(cpu > 10.0, "a busy loop uses CPU: {row}");
    assert!(
        row.trim_end().ends_with(" 1") || row.trim_end().ends_with(" 2"),
        "{row}"
    );
    let f = d.ok(&["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}"]);
    assert!(f == "busy 1\n" || f == "busy 2\n", "{f}");
    // exited containers, filters of ps
    let e3 = d
        .ok(&[
            "run", "-d", "--label", "keep=1", "busybox", "sh", "-c", "exit 3",
        ])
        .trim()
        .to_owned();
    let e0 = d.ok(&["run", "-d", "busybox", "true"]).trim().to_owned();
    d.ok(&["wait", &e3, &e0]);
    assert_eq!(
        d.ok(&["ps", "-q", "--filter", "exited=3"]),
        format!("{}\n", &e3[..12])
    );
    assert_eq!(
        d.ok(&["ps", "-aq", "--filter", "ancestor=busybox"])
            .lines()
            .count(),
        3
    );
    assert_eq!(d.ok(&["ps", "-q", "-l"]), format!("{}\n", &e0[..12]));
    assert_eq!(
        d.ok(&["ps", "-q", "-n", "2"]),
        format!("{}\n{}\n", &e0[..12], &e3[..12])
    );
    let sized = d.ok(&["ps", "-s"]);
    assert!(sized.lines().next().unwrap().ends_with("SIZE"), "{sized}");
    assert!(
        sized.lines().nth(1).unwrap().contains("(virtual "),
        "{sized}"
    );
    // the API's stats JSON (moby's shape; the default bridge gives an eth0)
    let v = api_get(&d, "/containers/busy/stats?stream=0");
    for k in [
        "cpu_stats",
        "precpu_stats",
        "memory_stats",
        "pids_stats",
        "blkio_stats",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    assert!(
        v["precpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert_eq!(v["memory_stats"]["limit"], 64 << 20);
    assert_eq!(v["name"], "/busy");
    if d.ok(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", "busy"]) != "none\n" {
        assert!(v["networks"]["eth0"]["rx_bytes"].is_u64(), "{v}");
    }
    let one = api_get(&d, "/containers/busy/stats?stream=0&one-shot=1");
    assert_eq!(one["precpu_stats"]["cpu_usage"]["total_usage"], 0);
    // system df
    let df = d.ok(&["system", "df"]);
    let rows: Vec<Vec<&str>> = df
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(rows[0], ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    assert_eq!(&rows[1][..3], ["Images", "1", "1"]);
    assert_eq!(&rows[2][..3], ["Containers", "3", "1"]);
    assert!(
        d.ok(&["system", "df", "-v"])
            .contains("Containers space usage:")
    );
    // container prune: the label filter keeps e3, then prune takes it
    let o = d.ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert_eq!(
        o,
        format!("Deleted Containers:\n{e0}\n\nTotal reclaimed space: 0B\n")
    );
    let o = d.ok(&["container", "prune", "-f"]);
    assert!(
        o.starts_with(&format!("Deleted Containers:\n{e3}\n")),
        "{o}"
    );
    assert_eq!(d.ok(&["ps", "-aq"]), format!("{}\n", &id[..12]));
    // system prune: stopped containers go, the running one and its image stay
    d.ok(&["stop", "-t", "0", "busy"]);
    let o = d.ok(&["system", "prune", "-f"]);
    assert!(o.contains(&id), "{o}");
    assert!(o.ends_with("Total reclaimed space: 0B\n"), "{o}");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert_eq!(d.ok(&["images", "-q"]).lines().count(), 1);
}

#[test]
fn logs_since_and_until() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = d
        .ok(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "echo early; sleep 2; echo late",
        ])
        .trim()
        .to_owned();
    std::thread::sleep(Duration::from_millis(1000));
    let mid = jiff::Timestamp::now();
    assert_eq!(d.ok(&["wait", &id]), "0\n");
    let mid_s = mid.to_string();
    assert_eq!(d.ok(&["logs", "--since", &mid_s, &id]), "late\n");
    assert_eq!(d.ok(&["logs", "--until", &mid_s, &id]), "early\n");
    let unix = format!("{}.{:09}", mid.as_second(), mid.subsec_nanosecond());
    assert_eq!(d.ok(&["logs", "--since", &unix, &id]), "late\n");
    assert_eq!(d.ok(&["logs", "--since", "1h", &id]), "early\nlate\n");
    assert_eq!(d.ok(&["logs", "--until", "1h", &id]), "");
    let o = d.berth(&["logs", "--since", "yesterday", &id]);
    assert_ne!(o.status.code(), Some(0));
    d.ok(&["rm", &id]);
}

#[test]
fn group_help_lists_commands() {
    let d = Daemon::start();
    let o = d.ok(&["container", "help"]);
    assert!(
        o.starts_with("\nUsage:  berth container COMMAND\n\nManage containers\n\nCommands:\n"),
        "{o}"
    );
    for c in [
        "  pause       Pause all processes",
        "  prune       Remove all stopped containers",
        "  top         ",
    ] {
        assert!(o.contains(c), "{c} missing: {o}");
    }
    assert!(
        o.ends_with("\nRun 'berth container COMMAND --help' for more information on a command.\n")
    );
    assert_eq!(d.ok(&["help", "container"]), o);
    let o = d.ok(&["system", "help"]);
    assert!(o.contains("  df          Show docker disk usage"), "{o}");
    let o = d.ok(&["restart", "--help"]);
    assert!(o.contains("Restart one or more containers"), "{o}");
}

#[test]
fn exit_codes_table() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    for (args, code) in [
        (&["true"][..], 0),
        (&["sh", "-c", "exit 42"][..], 42),
        (&["/no/such/binary"][..], 127),
        (&["/etc/passwd"][..], 126),
        // a child killed by a signal: the shell reports 128+n as its own code
        (&["sh", "-c", "sh -c 'kill -USR1 $$'; exit $?"][..], 138),
    ] {
        let mut a = vec!["run", "--rm", "busybox"];
        a.extend_from_slice(args);
        let o = d.berth(&a);
        assert_eq!(o.status.code(), Some(code), "{a:?}: {}", stderr(&o));
    }
    // the container's init killed by a signal: 128+n (through --init, TERM reaches a
    // process without a handler; pid 1 itself ignores it)
    for (sig, code) in [("TERM", "143"), ("KILL", "137")] {
        let id = d
            .ok(&["run", "-d", "--init", "busybox", "sleep", "100"])
            .trim()
            .to_owned();
        std::thread::sleep(Duration::from_millis(200));
        d.ok(&["kill", "-s", sig, &id]);
        assert_eq!(d.ok(&["wait", &id]), format!("{code}\n"), "{sig}");
        d.ok(&["rm", &id]);
    }
    // engine errors are 125: a bad flag value, a missing image, an invalid option
    for args in [
        &["run", "--rm", "--ulimit", "bogus=1", "busybox", "true"][..],
        &["run", "--rm", "--pull", "never", "nosuchimage"][..],
        &["run", "--rm", "--pid", "container:x", "busybox", "true"][..],
        &["run", "--rm", "-p", "a:b:c:d", "busybox", "true"][..],
        &["run", "--rm", "--memory", "lots", "busybox", "true"][..],
    ] {
        let o = d.berth(args);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("berth: "), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn twenty_concurrent_detached_runs_get_unique_names() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let outs: Vec<std::process::Output> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..20)
            .map(|_| s.spawn(|| d.berth(&["run", "-d", "busybox", "sleep", "60"])))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &outs {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    }
    let ids: std::collections::BTreeSet<String> =
        outs.iter().map(|o| stdout(o).trim().to_owned()).collect();
    assert_eq!(ids.len(), 20);
    let names: std::collections::BTreeSet<String> = d
        .ok(&["ps", "--format", "{{.Names}}"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(names.len(), 20, "{names:?}");
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut rm = vec!["rm", "-f"];
    rm.extend(all);
    d.ok(&rm);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn health_checks_run_by_the_daemon() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let h = d
        .ok(&[
            "run",
            "-d",
            "--health-cmd",
            "test -e /tmp/ok",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "--health-start-period",
            "5s",
            "busybox",
            "sh",
            "-c",
            "sleep 1; touch /tmp/ok; sleep 100",
        ])
        .trim()
        .to_owned();
    // failures inside the start period leave it "starting"
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Health.Status}} {{.State.Health.FailingStreak}}",
            &h
        ]),
        "starting 0\n"
    );
    assert!(
        d.ok(&["ps", "--format", "{{.Status}}"])
            .ends_with("(health: starting)\n")
    );
    wait_for("healthy", || {
        d.ok(&["inspect", "-f", "{{.State.Health.Status}}", &h]) == "healthy\n"
    });
    assert!(
        d.ok(&["ps", "--format", "{{.Status}}"])
            .ends_with("(healthy)\n")
    );
    assert_eq!(
        d.ok(&["ps", "-q", "--filter", "health=healthy"]),
        format!("{}\n", &h[..12])
    );
    assert_eq!(d.ok(&["ps", "-q", "--filter", "health=unhealthy"]), "");
    // no probes while paused (they could not run in the frozen cgroup)
    d.ok(&["pause", &h]);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Health.Status}} {{.State.Health.FailingStreak}}",
            &h
        ]),
        "healthy 0\n"
    );
    d.ok(&["unpause", &h]);
    let u = d
        .ok(&[
            "run",
            "-d",
            "--health-cmd",
            "echo sick; exit 1",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "--health-timeout",
            "2s",
            "busybox",
            "sleep",
            "100",
        ])
        .trim()
        .to_owned();
    wait_for("unhealthy", || {
        d.ok(&["inspect", "-f", "{{.State.Health.Status}}", &u]) == "unhealthy\n"
    });
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{(index .State.Health.Log 0).ExitCode}} {{(index .State.Health.Log 0).Output}}",
            &u
        ]),
        "1 sick\n\n"
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .Config.Healthcheck}}", &u]),
        "{\"Interval\":200000000,\"Retries\":2,\"StartInterval\":0,\"StartPeriod\":0,\"Test\":[\"CMD-SHELL\",\"echo sick; exit 1\"],\"Timeout\":2000000000}\n"
    );
    // a probe that outlives its timeout fails with -1
    let t = d
        .ok(&[
            "run",
            "-d",
            "--health-cmd",
            "sleep 5",
            "--health-interval",
            "200ms",
            "--health-timeout",
            "300ms",
            "--health-retries",
            "1",
            "busybox",
            "sleep",
            "100",
        ])
        .trim()
        .to_owned();
    wait_for("timed-out probe", || {
        d.ok(&["inspect", "-f", "{{.State.Health.Status}}", &t]) == "unhealthy\n"
    });
    let o = d.ok(&[
        "inspect",
        "-f",
        "{{(index .State.Health.Log 0).ExitCode}} {{(index .State.Health.Log 0).Output}}",
        &t,
    ]);
    assert!(o.starts_with("-1 Health check exceeded timeout"), "{o}");
    std::thread::sleep(Duration::from_millis(1100));
    let until = jiff::Timestamp::now().as_second().to_string();
    let ev = d.ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        &until,
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}} {{.ID}}",
    ]);
    assert!(ev.contains(&format!("health_status: healthy {h}")), "{ev}");
    assert!(
        ev.contains(&format!("health_status: unhealthy {u}")),
        "{ev}"
    );
    d.ok(&["rm", "-f", &h, &u, &t]);
    // --no-healthcheck and the flags together are refused
    let o = d.berth(&[
        "run",
        "-d",
        "--no-healthcheck",
        "--health-cmd",
        "true",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn stats_streams_live() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = d
        .ok(&["run", "-d", "--name", "live", "busybox", "sleep", "100"])
        .trim()
        .to_owned();
    for cli in ["berth", "docker"] {
        let mut c = if cli == "berth" {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
            c.args(["-H", &d.host(), "stats", "live"]);
            c
        } else {
            let mut c = std::process::Command::new("/usr/local/bin/docker");
            c.args(["stats", "live"])
                .env("DOCKER_HOST", d.host())
                .env("DOCKER_CONFIG", d.env.dir().join("docker-cli"));
            c
        };
        let mut child = c
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(3500));
        // the docker CLI keeps streaming on SIGTERM: SIGKILL ends both
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let frames = text.matches("CONTAINER ID").count();
        assert!(frames >= 2, "{cli}: {frames} frames: {text:?}");
        assert!(
            text.contains(&id[..12]) && text.contains("live"),
            "{cli}: {text:?}"
        );
    }
    d.ok(&["rm", "-f", &id]);
}

#[test]
fn image_healthcheck_runs_unless_disabled() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let ctx = d.env.dir().join("hc-ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nHEALTHCHECK --interval=200ms --retries=1 CMD test -e /etc/passwd\n",
    )
    .unwrap();
    let o = d.berth(&["build", "-q", "-t", "hc", ctx.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = d.ok(&["run", "-d", "hc", "sleep", "100"]).trim().to_owned();
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .Config.Healthcheck.Test}}", &id]),
        "[\"CMD-SHELL\",\"test -e /etc/passwd\"]\n"
    );
    wait_for("healthy from the image's check", || {
        d.ok(&["inspect", "-f", "{{.State.Health.Status}}", &id]) == "healthy\n"
    });
    // the flags override the image's command
    let bad = d
        .ok(&["run", "-d", "--health-cmd", "false", "hc", "sleep", "100"])
        .trim()
        .to_owned();
    wait_for("unhealthy with the flag's command", || {
        d.ok(&["inspect", "-f", "{{.State.Health.Status}}", &bad]) == "unhealthy\n"
    });
    let off = d
        .ok(&["run", "-d", "--no-healthcheck", "hc", "sleep", "100"])
        .trim()
        .to_owned();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Health}}", &off]),
        "<no value>\n"
    );
    let st = d.ok(&[
        "ps",
        "--filter",
        &format!("id={off}"),
        "--format",
        "{{.Status}}",
    ]);
    assert!(st.starts_with("Up ") && !st.contains("health"), "{st}");
    d.ok(&["rm", "-f", &id, &bad, &off]);
}

#[test]
fn health_checks_go_on_after_a_berthd_restart() {
    let mut d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = d
        .ok(&[
            "run",
            "-d",
            "--health-cmd",
            "true",
            "--health-interval",
            "200ms",
            "busybox",
            "sleep",
            "100",
        ])
        .trim()
        .to_owned();
    wait_for("healthy", || {
        d.ok(&["inspect", "-f", "{{.State.Health.Status}}", &id]) == "healthy\n"
    });
    d.kill_berthd();
    d.restart();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::os::unix::net::UnixStream::connect(d.env.socket()).is_ok(),
        "berthd died after its restart: {}",
        std::fs::read_to_string(d.env.dir().join("berthd-restart.log")).unwrap_or_default()
    );
    wait_for("healthy again after the restart", || {
        d.ok(&["inspect", "-f", "{{.State.Health.Status}}", &id]) == "healthy\n"
    });
    let first = d.ok(&["inspect", "-f", "{{json .State.Health.Log}}", &id]);
    std::thread::sleep(Duration::from_millis(800));
    assert_ne!(
        d.ok(&["inspect", "-f", "{{json .State.Health.Log}}", &id]),
        first,
        "no new probes"
    );
    d.ok(&["rm", "-f", &id]);
}

/// `--sysctl`: namespaced keys set inside the container only (the host keeps its values),
/// shown by inspect; keys that would change the host refused at create (also through the
/// API, which the docker CLI's own check does not guard), net.* refused with host network.
#[test]
fn sysctls_are_set_in_the_container_only() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let host_port_start =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--sysctl",
        "net.ipv4.ip_unprivileged_port_start=0",
        "--sysctl",
        "kernel.shmmax=65536",
        "busybox",
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmax",
    ]);
    assert_eq!(out, "0\n65536\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap(),
        host_port_start
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
    // the docker CLI sends HostConfig.Sysctls
    let o = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--sysctl",
        "net.ipv4.ping_group_range=0 0",
        "busybox",
        "cat",
        "/proc/sys/net/ipv4/ping_group_range",
    ]);
    assert_eq!(o.split_whitespace().collect::<Vec<_>>(), ["0", "0"]);
    let id = d
        .ok(&[
            "create",
            "--network",
            "none",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "busybox",
        ])
        .trim()
        .to_owned();
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .HostConfig.Sysctls}}", &id]),
        "{\"net.ipv4.ip_forward\":\"1\"}\n"
    );
    d.ok(&["rm", &id]);
    // refused: not namespaced (the CLI's check, then the daemon's), net.* with host network
    let o = d.berth(&[
        "run",
        "--rm",
        "--sysctl",
        "kernel.hostname=x",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("sysctl 'kernel.hostname' is not allowed"),
        "{}",
        stderr(&o)
    );
    let o = std::process::Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(d.env.socket())
        .args([
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"Image":"busybox","HostConfig":{"Sysctls":{"kernel.core_pattern":"|/bin/x"}}}"#,
            "http://berth/containers/create",
        ])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&o),
        "{\"message\":\"sysctl 'kernel.core_pattern' is not allowed\"}"
    );
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--sysctl",
        "net.core.somaxconn=100",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("not allowed in the host network namespace"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

/// `--oom-score-adj` (raised here: lowering it needs CAP_SYS_RESOURCE, which this machine's
/// sandbox lacks) and `--memory-reservation` (the cgroup's soft limit), with docker's range
/// checks; `--disable-content-trust` accepted as docker's scripts pass it.
#[test]
fn oom_score_adj_and_memory_reservation() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--disable-content-trust",
        "--oom-score-adj",
        "500",
        "--memory",
        "64m",
        "--memory-reservation",
        "32m",
        "busybox",
        "sh",
        "-c",
        "cat /proc/self/oom_score_adj; cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes \
         2>/dev/null || cat /sys/fs/cgroup/memory.low",
    ]);
    assert_eq!(out, "500\n33554432\n");
    let id = d
        .ok(&[
            "create",
            "--oom-score-adj",
            "300",
            "--memory-reservation",
            "16m",
            "busybox",
        ])
        .trim()
        .to_owned();
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.OomScoreAdj}} {{.HostConfig.MemoryReservation}}",
            &id
        ]),
        "300 16777216\n"
    );
    d.ok(&["rm", &id]);
    let o = d.berth(&["run", "--rm", "--oom-score-adj", "1001", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("Invalid value 1001, range for oom score adj is [-1000, 1000]"),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&[
        "run",
        "--rm",
        "--memory",
        "16m",
        "--memory-reservation",
        "32m",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("Minimum memory limit can not be less than memory reservation limit"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

/// Removes the test's `--cgroup-parent` directories (deepest first), even on a failure.
struct CgroupParents(Vec<std::path::PathBuf>);

impl Drop for CgroupParents {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// `--cgroup-parent`: the container's cgroup is `<parent>/<id>` under the daemon's own
/// cgroup (an absolute parent too: never from a hierarchy's root); `..` refused.
#[test]
fn cgroup_parent_places_the_container_under_the_daemons_cgroup() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let top = format!("{}ci", d.env.prefix());
    let parent = format!("{top}/jobs");
    let mut made: Vec<_> = common::cgroup_dirs_under(&parent, "").into_iter().collect();
    made.extend(common::cgroup_dirs_under(&top, ""));
    let _cleanup = CgroupParents(made);
    let id = d
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--cgroup-parent",
            &format!("/{parent}"),
            "busybox",
            "sleep",
            "100",
        ])
        .trim()
        .to_owned();
    let dirs = common::cgroup_dirs_under(&parent, &id);
    assert!(dirs.iter().any(|p| p.exists()), "{dirs:?}");
    assert!(cgroup_dirs(&id).iter().all(|p| !p.exists()));
    let own = d.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    assert!(own.contains(&format!("/{parent}/{id}")), "{own}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.CgroupParent}}", &id]),
        format!("/{parent}\n")
    );
    d.ok(&["rm", "-f", &id]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while dirs.iter().any(|p| p.exists()) {
        assert!(Instant::now() < deadline, "cgroup left: {dirs:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = d.berth(&[
        "run",
        "--rm",
        "--cgroup-parent",
        "../escape",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("invalid cgroup parent"),
        "{}",
        stderr(&o)
    );
}
