//! The real docker CLI 28 against berthd for the lifecycle commands the Engine API
//! carries: run flags (init, ulimit, shm, security options, stop signal/timeout, restart
//! policy, health check, log driver, cgroup resources, host namespaces, cidfile),
//! restart, pause/unpause, rename, top, stats, update, container prune, system df,
//! ps -s, logs --since (root; `cargo build -p berthd -p berth-shim` first).

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Leftovers, stderr, stdout};

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn docker_run_flags_reach_the_container_and_inspect() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let cid = d.env.dir().join("cid");
    let id = d
        .docker_ok(&[
            "run", "-d", "--init", "--ulimit", "nofile=100:200", "--shm-size", "2m",
            "--security-opt", "no-new-privileges", "--stop-signal", "SIGUSR1",
            "--stop-timeout", "3", "--restart", "on-failure:1", "--cpu-shares", "512",
            "--pid", "host", "--domainname", "example.org", "--group-add", "10",
            "--cidfile", cid.to_str().unwrap(), "busybox", "sh", "-c",
            "cat /proc/1/cmdline | tr '\\0' ' '; echo; ulimit -Sn; ulimit -Hn; df -k /dev/shm | tail -1; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/sys/kernel/domainname; id -G",
        ])
        .trim()
        .to_owned();
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id);
    assert_eq!(d.docker_ok(&["wait", &id]), "0\n");
    let logs = d.docker_ok(&["logs", &id]);
    let lines: Vec<&str> = logs.lines().collect();
    // with --pid host, pid 1 is the host's init, not docker-init: check the rest
    assert_eq!(lines[1], "100");
    assert_eq!(lines[2], "200");
    assert!(lines[3].contains(" 2048 "), "{logs}");
    assert_eq!(lines[4], "NoNewPrivs:\t1");
    assert_eq!(lines[5], "Seccomp:\t2");
    assert_eq!(lines[6], "example.org");
    assert_eq!(lines[7], "0 10");
    let f = "{{.HostConfig.Init}} {{.HostConfig.ShmSize}} {{json .HostConfig.SecurityOpt}} {{.Config.StopSignal}} {{.Config.StopTimeout}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}} {{.HostConfig.CpuShares}} {{.HostConfig.PidMode}} {{.Config.Domainname}}";
    assert_eq!(
        d.docker_ok(&["inspect", "-f", f, &id]),
        "true 2097152 [\"no-new-privileges\"] SIGUSR1 3 on-failure:1 512 host example.org\n"
    );
    // --init without --pid host: docker-init is pid 1
    let id2 = d
        .docker_ok(&["run", "-d", "--init", "busybox", "cat", "/proc/1/cmdline"])
        .trim()
        .to_owned();
    assert_eq!(d.docker_ok(&["wait", &id2]), "0\n");
    assert_eq!(
        d.docker_ok(&["logs", &id2]).replace('\0', " "),
        "/sbin/docker-init -- cat /proc/1/cmdline "
    );
    // --log-driver none: logs refuses as Docker does
    let id3 = d
        .docker_ok(&["run", "-d", "--log-driver", "none", "busybox", "echo", "x"])
        .trim()
        .to_owned();
    d.docker_ok(&["wait", &id3]);
    let o = d.docker(&["logs", &id3]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("configured logging driver does not support reading"),
        "{}",
        stderr(&o)
    );
    // seccomp=unconfined turns the filter off
    let id4 = d
        .docker_ok(&[
            "run",
            "-d",
            "--security-opt",
            "seccomp=unconfined",
            "busybox",
            "grep",
            "Seccomp:",
            "/proc/self/status",
        ])
        .trim()
        .to_owned();
    d.docker_ok(&["wait", &id4]);
    assert_eq!(d.docker_ok(&["logs", &id4]), "Seccomp:\t0\n");
    d.docker_ok(&["rm", &id, &id2, &id3, &id4]);
}

#[test]
fn docker_restart_pause_rename_top_stats_update() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = d
        .docker_ok(&["run", "-d", "--name", "web", "busybox", "sleep", "100"])
        .trim()
        .to_owned();
    let pid1 = d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "web"]);
    assert_eq!(d.docker_ok(&["restart", "-t", "0", "web"]), "web\n");
    assert_ne!(
        d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "web"]),
        pid1
    );
    assert_eq!(d.docker_ok(&["pause", "web"]), "web\n");
    assert_eq!(
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}}",
            "web"
        ]),
        "paused true\n"
    );
    let ps = d.docker_ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.ends_with("(Paused)\n"), "{ps}");
    let o = d.docker(&["pause", "web"]);
    assert!(stderr(&o).contains("is already paused"), "{}", stderr(&o));
    assert_eq!(d.docker_ok(&["unpause", "web"]), "web\n");
    d.docker_ok(&["rename", "web", "site"]);
    assert_eq!(d.docker_ok(&["ps", "--format", "{{.Names}}"]), "site\n");
    let top = d.docker_ok(&["top", "site"]);
    let header: Vec<&str> = top.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    assert!(top.lines().nth(1).unwrap().ends_with("sleep 100"), "{top}");
    let top = d.docker_ok(&["top", "site", "-o", "pid,comm"]);
    assert!(top.lines().nth(1).unwrap().ends_with("sleep"), "{top}");
    // stats --no-stream: docker's table from moby's JSON
    let s = d.docker_ok(&["stats", "--no-stream", "site"]);
    let mut lines = s.lines();
    let h: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .collect();
    assert_eq!(
        h,
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
        row.starts_with(&format!("{}   site   ", &id[..12])),
        "{row}"
    );
    assert!(row.trim_end().ends_with(" 1"), "{row}");
    let f = d.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}:{{.PIDs}}",
        "site",
    ]);
    assert_eq!(f, "site:1\n");
    // update
    assert_eq!(
        d.docker_ok(&["update", "--cpu-shares", "300", "site"]),
        "site\n"
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.HostConfig.CpuShares}}", "site"]),
        "300\n"
    );
    // stop -s
    let t = d
        .docker_ok(&[
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
    d.docker_ok(&["stop", "-s", "SIGUSR2", &t]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &t]),
        "9\n"
    );
    d.docker_ok(&["rm", &t]);
    // events of all that (`--until 0s` is whole seconds, as the docker CLI sends it)
    std::thread::sleep(Duration::from_millis(1100));
    let ev = d.docker_ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        &format!("container={id}"),
        "--format",
        "{{.Action}}",
    ]);
    for a in ["restart", "pause", "unpause", "rename", "update"] {
        assert!(ev.lines().any(|l| l == a), "{a} missing: {ev}");
    }
    d.docker_ok(&["rm", "-f", "site"]);
}

#[test]
fn docker_restart_policy_and_health_check() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = d
        .docker_ok(&[
            "run",
            "-d",
            "--restart",
            "on-failure:2",
            "busybox",
            "sh",
            "-c",
            "exit 4",
        ])
        .trim()
        .to_owned();
    wait_for("restarts", || {
        d.docker_ok(&["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", &id]) == "2 exited\n"
    });
    let h = d
        .docker_ok(&[
            "run",
            "-d",
            "--health-cmd",
            "test -e /tmp/ok",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "busybox",
            "sh",
            "-c",
            "sleep 1; touch /tmp/ok; sleep 100",
        ])
        .trim()
        .to_owned();
    assert!(
        d.docker_ok(&["ps", "--format", "{{.Status}}"])
            .contains("(health: starting)")
    );
    wait_for("healthy", || {
        d.docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", &h]) == "healthy\n"
    });
    assert!(
        d.docker_ok(&["ps", "--format", "{{.Status}}"])
            .contains("(healthy)")
    );
    let u = d
        .docker_ok(&[
            "run",
            "-d",
            "--health-cmd",
            "echo sick; exit 1",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "busybox",
            "sleep",
            "100",
        ])
        .trim()
        .to_owned();
    wait_for("unhealthy", || {
        d.docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", &u]) == "unhealthy\n"
    });
    let log = d.docker_ok(&[
        "inspect",
        "-f",
        "{{(index .State.Health.Log 0).Output}}",
        &u,
    ]);
    assert_eq!(log, "sick\n\n");
    std::thread::sleep(Duration::from_millis(1100));
    let ev = d.docker_ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
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
    // --no-healthcheck records Test NONE and runs no check
    let n = d
        .docker_ok(&["run", "-d", "--no-healthcheck", "busybox", "sleep", "100"])
        .trim()
        .to_owned();
    assert_eq!(
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{json .Config.Healthcheck.Test}} {{.State.Health}}",
            &n
        ]),
        "[\"NONE\"] <nil>\n"
    );
    d.docker_ok(&["rm", "-f", &id, &h, &u, &n]);
}

#[test]
fn docker_prune_df_ps_size_and_logs_since() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let a = d
        .docker_ok(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "echo early; sleep 1.5; echo late",
        ])
        .trim()
        .to_owned();
    std::thread::sleep(Duration::from_millis(700));
    let mid = jiff::Timestamp::now().to_string();
    assert_eq!(d.docker_ok(&["wait", &a]), "0\n");
    assert_eq!(d.docker_ok(&["logs", "--since", &mid, &a]), "late\n");
    assert_eq!(d.docker_ok(&["logs", "--until", &mid, &a]), "early\n");
    let r = d
        .docker_ok(&["run", "-d", "busybox", "sleep", "100"])
        .trim()
        .to_owned();
    let ps = d.docker_ok(&["ps", "-s"]);
    assert!(ps.lines().next().unwrap().ends_with("SIZE"), "{ps}");
    assert!(ps.contains("(virtual "), "{ps}");
    let df = d.docker_ok(&["system", "df"]);
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
    assert_eq!(&rows[2][..3], ["Containers", "2", "1"]);
    assert!(rows[1][4].ends_with("(0%)"), "{df}");
    let o = d.docker_ok(&["container", "prune", "-f"]);
    assert_eq!(
        o,
        format!("Deleted Containers:\n{a}\n\nTotal reclaimed space: 0B\n")
    );
    assert_eq!(d.docker_ok(&["ps", "-aq"]), format!("{}\n", &r[..12]));
    let o = d.docker(&["container", "prune", "-f", "--filter", "bogus=1"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("invalid filter 'bogus'"),
        "{}",
        stderr(&o)
    );
    // system prune: the stopped container goes, the image (dangling only) stays
    d.docker_ok(&["stop", "-t", "0", &r]);
    let o = d.docker_ok(&["system", "prune", "-f"]);
    assert!(o.starts_with(&format!("Deleted Containers:\n{r}\n")), "{o}");
    assert!(o.ends_with("Total reclaimed space: 0B\n"), "{o}");
    assert_eq!(stdout(&d.docker(&["ps", "-aq"])), "");
    assert_eq!(d.docker_ok(&["images", "-q"]).lines().count(), 1);
}
