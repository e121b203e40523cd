//! Containers end to end: `berth` against a per-test berthd, which runs each container
//! through a berth-shim (root; needs `cargo build -p berthd -p berth-shim` first).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Daemon, Leftovers, cgroup_dirs, stderr, stdout};

fn overlay_mounts_under(dir: &Path) -> Vec<PathBuf> {
    berth_testkit::cleanup::mounts_under(dir)
}

#[test]
fn run_rm_echo_prints_hello_and_leaves_nothing() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let o = d.berth(&["run", "--rm", "busybox", "echo", "hello"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello\n");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert!(_g.ids().is_empty(), "container dirs left: {:?}", _g.ids());
    assert!(overlay_mounts_under(&d.env.data_root().join("containers")).is_empty());
}

#[test]
fn env_file_and_label_file_as_docker() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let dir = d.env.dir();
    let env = dir.join("app.env");
    std::fs::write(
        &env,
        "\u{feff}# settings\nA=1\n\n  B= spaced value \nQ=\"quoted\"\nFROM_HOST\nNOT_SET_ANYWHERE\n",
    )
    .unwrap();
    let labels = dir.join("labels");
    std::fs::write(&labels, "tier=web\nteam=core\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["-H", &d.host(), "run", "--name", "envf", "--env-file"])
        .arg(&env)
        .args(["-e", "A=2", "--label-file"])
        .arg(&labels)
        .args(["--label", "team=edge", "busybox", "sh", "-c"])
        .arg("echo \"$A|$B|$Q|$FROM_HOST|${NOT_SET_ANYWHERE-unset}\"")
        .env("FROM_HOST", "host-value")
        .env_remove("NOT_SET_ANYWHERE")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // the file's values as written (quotes kept, spaces kept), -e after the file wins
    assert_eq!(stdout(&o), "2| spaced value |\"quoted\"|host-value|unset\n");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{index .Config.Labels \"tier\"}} {{index .Config.Labels \"team\"}}",
            "envf"
        ]),
        "web edge\n"
    );
    d.ok(&["rm", "envf"]);
    std::fs::write(&env, "BAD KEY=1\n").unwrap();
    let o = d.berth(&[
        "run",
        "--rm",
        "--env-file",
        env.to_str().unwrap(),
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("variable 'BAD KEY' contains whitespaces"),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&[
        "run",
        "--rm",
        "--env-file",
        "/nonexistent/app.env",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("/nonexistent/app.env"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn exit_codes_as_docker() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    for (args, code) in [
        (&["false"][..], 1),
        (&["sh", "-c", "exit 3"][..], 3),
        (&["/no/such"][..], 127),
        (&["/etc"][..], 126),
    ] {
        let mut a = vec!["run", "--rm", "busybox"];
        a.extend_from_slice(args);
        let o = d.berth(&a);
        assert_eq!(o.status.code(), Some(code), "{a:?}: {}", stderr(&o));
        if code >= 126 {
            assert!(
                stderr(&o).starts_with("berth: Error response from daemon: "),
                "{}",
                stderr(&o)
            );
        }
    }
    // a missing image is an engine error: 125 (not pulled: no test reaches for Docker Hub)
    let o = d.berth(&["run", "--rm", "--pull", "never", "nosuchimage"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("No such image"), "{}", stderr(&o));
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn detached_run_ps_stop_rm() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = d
        .ok(&[
            "run", "-d", "--name", "web", "--label", "app=x", "busybox", "sleep", "100",
        ])
        .trim()
        .to_owned();
    assert_eq!(id.len(), 64);
    let ps = d.ok(&["ps"]);
    let mut lines = ps.lines();
    // tabwriter columns: the CREATED/STATUS widths follow their text ("Less than a
    // second ago" or "2 seconds ago" on a loaded machine), so check names and alignment
    let header = lines.next().unwrap();
    let cols: Vec<&str> = header
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cols,
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ],
        "{header}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&format!("{}   busybox   \"sleep 100\"   ", &id[..12])),
        "{row}"
    );
    assert!(row.ends_with("web"), "{row}");
    for (title, cell) in [
        ("IMAGE", "busybox"),
        ("COMMAND", "\"sleep"),
        ("NAMES", "web"),
    ] {
        assert_eq!(
            header.find(title),
            row.find(cell),
            "{title} column:\n{header}\n{row}"
        );
    }
    assert_eq!(
        d.ok(&["ps", "-q", "--filter", "label=app=x"]),
        format!("{}\n", &id[..12])
    );
    assert_eq!(d.ok(&["ps", "-q", "--filter", "name=nothing"]), "");
    // inspect: Docker's shape; the hostname is the short id; the cgroup is under ours
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["inspect", "web"])).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["Name"], "/web");
    assert_eq!(v[0]["State"]["Status"], "running");
    assert_eq!(v[0]["Config"]["Hostname"], &id[..12]);
    let cgroups = cgroup_dirs(&id);
    assert!(cgroups.iter().any(|c| c.exists()), "{cgroups:?}");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.Config.Labels.app}}",
            &id[..8]
        ]),
        "true x\n"
    );
    // removing a running container needs force
    let o = d.berth(&["rm", "web"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "Error response from daemon: cannot remove container \"/web\": container is running: stop the container before removing or force remove\n"
    );
    // the name is taken
    let o = d.berth(&["create", "--name", "web", "busybox"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("is already in use by container"),
        "{}",
        stderr(&o)
    );
    // sleep as pid 1 ignores SIGTERM: SIGKILL after the timeout, 137
    assert_eq!(d.ok(&["stop", "-t", "1", "web"]), "web\n");
    assert_eq!(d.ok(&["wait", "web"]), "137\n");
    assert!(d.ok(&["ps", "-a"]).contains("Exited (137)"));
    assert_eq!(d.ok(&["ps", "-q"]), "");
    assert_eq!(d.ok(&["rm", "web"]), "web\n");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert!(cgroups.iter().all(|c| !c.exists()), "{cgroups:?}");
    assert!(overlay_mounts_under(&d.env.data_root()).is_empty());
    let o = d.berth(&["inspect", "web"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn logs_keep_stdout_and_stderr_apart() {
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
            "echo one; echo two; echo err >&2; exit 5",
        ])
        .trim()
        .to_owned();
    assert_eq!(d.ok(&["wait", &id]), "5\n");
    let o = d.berth(&["logs", &id]);
    assert_eq!(stdout(&o), "one\ntwo\n");
    assert_eq!(stderr(&o), "err\n");
    let o = d.berth(&["logs", "--tail", "1", &id]);
    assert_eq!(stdout(&o) + &stderr(&o), "err\n");
    // the log file is Docker's json-file format
    let log = d
        .env
        .data_root()
        .join("containers")
        .join(&id)
        .join(format!("{id}-json.log"));
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["log"], "one\n");
    assert_eq!(first["stream"], "stdout");
    // a foreground run streams while the container runs
    let o = d.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo a; sleep 0.3; echo b",
    ]);
    assert_eq!(stdout(&o), "a\nb\n");
    // rm -f of a running container
    let id2 = d
        .ok(&["run", "-d", "busybox", "sleep", "100"])
        .trim()
        .to_owned();
    assert_eq!(d.ok(&["rm", "-f", &id2]), format!("{id2}\n"));
    assert_eq!(d.ok(&["rm", &id]), format!("{id}\n"));
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn run_flags_reach_the_container() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let o = d.ok(&[
        "run",
        "--rm",
        "-h",
        "box",
        "-e",
        "A=B",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--network",
        "none",
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        "hostname; echo $A; pwd; id -u; grep -c . /proc/net/dev",
    ]);
    // none: only loopback (2 header lines + lo)
    assert_eq!(o, "box\nB\n/tmp\n65534\n3\n");
    let o = d.ok(&["run", "--rm", "--entrypoint", "/bin/echo", "busybox", "x"]);
    assert_eq!(o, "x\n");
    // Docker's default capability set, and /dev/shm of 64 MB
    let o = d.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "grep CapEff /proc/self/status; df -k /dev/shm | tail -1",
    ]);
    assert!(o.starts_with("CapEff:\t00000000a80425fb\n"), "{o}");
    assert!(o.contains(" 65536 "), "{o}");
}

/// Starts another berthd on the same roots and socket (after the first was killed).
fn restart_berthd(d: &mut Daemon) {
    let log = std::fs::File::create(d.env.dir().join("berthd2.log")).unwrap();
    let child = std::process::Command::new(common::berthd_bin())
        .arg("--data-root")
        .arg(d.env.data_root())
        .arg("--exec-root")
        .arg(d.env.run_root())
        .arg("--config")
        .arg(d.env.dir().join("berth.toml"))
        .arg("-H")
        .arg(d.host())
        .args(common::net_args(&d.env, &d.pools))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    d.env.cleanup().child(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(d.env.socket()).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "berthd did not come up again"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn containers_and_exit_codes_survive_a_berthd_kill() {
    let mut d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let long = d
        .ok(&["run", "-d", "busybox", "sleep", "100"])
        .trim()
        .to_owned();
    let short = d
        .ok(&["run", "-d", "busybox", "sh", "-c", "sleep 0.5; exit 7"])
        .trim()
        .to_owned();
    let pid: i32 = std::fs::read_to_string(d.env.run_root().join("berthd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // kill -9 the daemon: the shims (own process group) and containers live on
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(std::time::Duration::from_millis(1000));
    restart_berthd(&mut d);
    // the short one exited while no daemon ran: its exit.json was read on start (or
    // its shim is watched again)
    assert_eq!(d.ok(&["wait", &short]), "7\n");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", &long]),
        "running\n"
    );
    assert_eq!(d.ok(&["ps", "-q"]), format!("{}\n", &long[..12]));
    assert_eq!(d.ok(&["kill", &long]), format!("{long}\n"));
    assert_eq!(d.ok(&["wait", &long]), "137\n");
    d.ok(&["rm", &long, &short]);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert!(overlay_mounts_under(&d.env.data_root()).is_empty());
}

/// The real docker CLI 28: `run -d` (it waits for the headers of `wait` before it
/// sends `start`), `wait`, `logs`, `ps`, `inspect`, `stop`, `rm`. (Foreground `docker
/// run` needs the hijacked attach, which is not in this slice.)
#[test]
fn docker_cli_runs_detached_containers() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = d
        .docker_ok(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "echo hi; echo e >&2; exit 4",
        ])
        .trim()
        .to_owned();
    assert_eq!(id.len(), 64);
    assert_eq!(d.docker_ok(&["wait", &id]), "4\n");
    let o = d.docker(&["logs", &id]);
    assert_eq!(stdout(&o), "hi\n");
    assert_eq!(stderr(&o), "e\n");
    assert_eq!(
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            &id
        ]),
        "exited 4\n"
    );
    let long = d
        .docker_ok(&["run", "-d", "--name", "dk", "busybox", "sleep", "100"])
        .trim()
        .to_owned();
    assert_eq!(
        d.docker_ok(&["ps", "--format", "{{.Names}} {{.Command}}"]),
        "dk \"sleep 100\"\n"
    );
    let o = d.docker(&["rm", "dk"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("container is running"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.docker_ok(&["stop", "-t", "1", "dk"]), "dk\n");
    assert_eq!(d.docker_ok(&["rm", "dk", &id]), format!("dk\n{id}\n"));
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let _ = long;
}

/// `run -d --rm`: the daemon removes the container when it exits (AutoRemove), and the
/// engine holds the image while the container exists.
#[test]
fn detached_auto_remove_and_image_hold() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = d
        .ok(&["run", "-d", "--rm", "busybox", "sleep", "0.3"])
        .trim()
        .to_owned();
    let o = d.berth(&["rmi", "busybox"]);
    assert_eq!(o.status.code(), Some(1), "a held image was removed");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !d.ok(&["ps", "-aq"]).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{id} was not auto-removed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!d.env.data_root().join("containers").join(&id).exists());
    assert!(overlay_mounts_under(&d.env.data_root()).is_empty());
    d.ok(&["rmi", "busybox"]);
}

/// `inspect --size` (and `container inspect -s`) adds SizeRw and SizeRootFs, as docker's.
#[test]
fn inspect_size_adds_the_container_sizes() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&[
        "run",
        "--name",
        "sz",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /big",
    ]);
    let rw: u64 = d
        .ok(&["inspect", "--size", "-f", "{{.SizeRw}}", "sz"])
        .trim()
        .parse()
        .unwrap();
    assert!(rw >= 100_000, "{rw}");
    let root: u64 = d
        .ok(&["container", "inspect", "-s", "-f", "{{.SizeRootFs}}", "sz"])
        .trim()
        .parse()
        .unwrap();
    assert!(root > rw, "{root} {rw}");
    assert_eq!(
        d.docker_ok(&["inspect", "--size", "-f", "{{.SizeRw}}", "sz"])
            .trim(),
        rw.to_string()
    );
    // without --size there is no such field
    let plain = d.ok(&["inspect", "sz"]);
    assert!(!plain.contains("\"SizeRw\""), "{plain}");
    d.ok(&["rm", "sz"]);
}
