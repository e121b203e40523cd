//! The runc verbs in order, as Podman/containerd drive them.

mod common;
use common::*;

fn ok(o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn state(env: &Env, id: &str) -> serde_json::Value {
    serde_json::from_str(&ok(env.berth(&["state", id]))).unwrap()
}

fn wait_status(env: &Env, id: &str, want: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = state(env, id);
        if s["status"] == want {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status never became {want}: {s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn create_start_exec_pause_kill_delete() {
    let env = Env::new(&["sleep", "1000"]);
    let id = env.id(BERTH);
    let b = env.bundle.to_str().unwrap().to_string();
    let pidf = env.dir.path().join("pid");
    ok(env.berth_detached(&[
        "create",
        "-b",
        &b,
        "--pid-file",
        pidf.to_str().unwrap(),
        &id,
    ]));
    let s = state(&env, &id);
    assert_eq!(s["status"], "created");
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["bundle"], b.as_str());
    let pid: i64 = std::fs::read_to_string(&pidf).unwrap().parse().unwrap();
    assert_eq!(s["pid"], pid);
    // a second create with the same id fails
    assert!(
        !env.berth_detached(&["create", "-b", &b, &id])
            .status
            .success()
    );

    let list: serde_json::Value =
        serde_json::from_str(&ok(env.berth(&["list", "--format", "json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());

    ok(env.berth(&["start", &id]));
    wait_status(&env, &id, "running");
    assert!(
        !env.berth(&["delete", &id]).status.success(),
        "delete of a running container needs --force"
    );

    let ps: Vec<i64> =
        serde_json::from_str(&ok(env.berth(&["ps", "--format", "json", &id]))).unwrap();
    assert!(ps.contains(&pid), "{ps:?} lacks {pid}");

    let out = ok(env.berth(&[
        "exec",
        "--cwd",
        "/tmp",
        "--env",
        "X=42",
        &id,
        "sh",
        "-c",
        "echo $X $(pwd) $$",
    ]));
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(&parts[..2], &["42", "/tmp"]);
    assert_ne!(parts[2], "1", "exec'd process must not be pid 1");
    let ex = env.berth(&["exec", &id, "sh", "-c", "exit 3"]);
    assert_eq!(ex.status.code(), Some(3));
    let ex = env.berth(&["exec", &id, "/no/such"]);
    assert_eq!(ex.status.code(), Some(127), "{}", stderr(&ex));
    let process = env.dir.path().join("process.json");
    std::fs::write(
        &process,
        serde_json::json!({"args": ["id", "-u"], "cwd": "/", "user": {"uid": 65534, "gid": 65534}})
            .to_string(),
    )
    .unwrap();
    assert_eq!(
        ok(env.berth(&["exec", "--process", process.to_str().unwrap(), &id])).trim(),
        "65534"
    );

    ok(env.berth(&["pause", &id]));
    assert_eq!(state(&env, &id)["status"], "paused");
    ok(env.berth(&["resume", &id]));
    assert_eq!(state(&env, &id)["status"], "running");

    ok(env.berth(&["update", "--pids-limit", "17", "--memory", "64m", &id]));
    let out = ok(env.berth(&[
        "exec",
        &id,
        "cat",
        "/sys/fs/cgroup/pids/pids.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]));
    assert_eq!(out, format!("17\n{}\n", 64 << 20));

    let res = env.dir.path().join("res.json");
    std::fs::write(&res, r#"{"pids": {"limit": 21}, "cpu": {"shares": 512}}"#).unwrap();
    ok(env.berth(&["update", "-r", res.to_str().unwrap(), &id]));
    let out = ok(env.berth(&[
        "exec",
        &id,
        "cat",
        "/sys/fs/cgroup/pids/pids.max",
        "/sys/fs/cgroup/cpu/cpu.shares",
    ]));
    assert_eq!(out, "21\n512\n");

    ok(env.berth(&["kill", &id, "SIGKILL"]));
    wait_status(&env, &id, "stopped");
    ok(env.berth(&["delete", &id]));
    assert!(!env.berth(&["state", &id]).status.success());
    assert!(ok(env.berth(&["list", "-q"])).is_empty());
}

#[test]
fn kill_all_and_delete_force() {
    let env = Env::new(&["sh", "-c", "sleep 1000 & sleep 1000"]);
    let id = env.id(BERTH);
    let b = env.bundle.to_str().unwrap().to_string();
    ok(env.berth_detached(&["run", "-d", "-b", &b, &id]));
    wait_status(&env, &id, "running");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while serde_json::from_str::<Vec<i64>>(&ok(env.berth(&["ps", "-f", "json", &id])))
        .unwrap()
        .len()
        < 2
    {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    ok(env.berth(&["kill", "--all", &id, "9"]));
    wait_status(&env, &id, "stopped");
    ok(env.berth(&["delete", "--force", &id]));
    // force-deleting something that is gone is fine, plain delete is not
    ok(env.berth(&["delete", "--force", &id]));
    assert!(!env.berth(&["delete", &id]).status.success());
}

#[test]
fn hooks_run_with_state_on_stdin() {
    let env = Env::new(&["sh", "-c", "cat /tmp/started"]);
    let out = env.dir.path().join("hooks.log");
    let o = out.to_str().unwrap();
    let hook = |name: &str| serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} $(cat) >> {o}")]});
    env.edit(|s| {
        s["hooks"] = serde_json::json!({
            "prestart": [hook("prestart")], "createRuntime": [hook("createRuntime")],
            "poststart": [hook("poststart")], "poststop": [hook("poststop")],
            // runs in the container's namespaces before pivot_root: host paths still work
            "createContainer": [hook("createContainer")],
            // runs inside the container after start: container paths
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/started"]}]
        });
        s["root"]["readonly"] = false.into();
    });
    let id = env.id(BERTH);
    let started = ok(env.berth(&["run", "-b", env.bundle.to_str().unwrap(), &id]));
    let log = std::fs::read_to_string(&out).unwrap();
    let kinds: Vec<&str> = log.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ],
        "{log}"
    );
    for l in log.lines() {
        assert!(l.contains(&format!("\"id\":\"{id}\"")), "{l}");
    }
    let st: serde_json::Value = serde_json::from_str(&started).unwrap();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert!(st["pid"].as_i64().unwrap() > 1, "{st}");
}

#[test]
fn terminal_master_goes_to_console_socket() {
    use std::os::fd::AsFd;
    let env = Env::new(&["sh", "-c", "tty; stty size"]);
    env.edit(|s| {
        s["process"]["terminal"] = true.into();
        s["process"]["consoleSize"] = serde_json::json!({"height": 33, "width": 101});
    });
    let sock_path = env.dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let id = env.id(BERTH);
    let b = env.bundle.to_str().unwrap().to_string();
    let mut child = std::process::Command::new(BERTH)
        .arg("--root")
        .arg(env.root_for(BERTH))
        .args([
            "run",
            "-b",
            &b,
            "--console-socket",
            sock_path.to_str().unwrap(),
            &id,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let (master, name) = berth_sys::recv_fd(conn.as_fd()).unwrap();
    assert!(
        String::from_utf8_lossy(&name).starts_with("/dev/pts/"),
        "{name:?}"
    );
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match rustix::io::read(&master, &mut buf) {
            Ok(0) | Err(_) => break, // EIO once the slave side closes
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("33 101"), "{text}");
    assert!(child.wait().unwrap().success());
}

#[test]
fn clear_errors_for_unsupported_options_and_json_log() {
    let env = Env::new(&["true"]);
    let o = env.berth(&["--systemd-cgroup", "list"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no systemd"), "{}", stderr(&o));
    let log = env.dir.path().join("log.json");
    let b = env.bundle.to_str().unwrap().to_string();
    let id = env.id(BERTH);
    env.edit(|s| s["process"]["args"] = serde_json::json!(["/no/such"]));
    let o = env.berth(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "-b",
        &b,
        &id,
    ]);
    assert_eq!(o.status.code(), Some(127));
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("/no/such"), "{line}");
    // spec features berth does not implement are refused by name, never ignored
    let id = env.id(BERTH);
    env.edit(|s| {
        s["process"]["args"] = serde_json::json!(["true"]);
        s["linux"]["personality"] = serde_json::json!({"domain": "LINUX32"});
    });
    let o = env.berth(&["run", "-b", &b, &id]);
    assert!(
        !o.status.success() && stderr(&o).contains("linux.personality"),
        "{}",
        stderr(&o)
    );
    let o = env.berth(&["spec", "--rootless"]);
    assert!(!o.status.success() && stderr(&o).contains("not supported"));
}

#[test]
fn features_and_version() {
    let env = Env::new(&["true"]);
    let f: serde_json::Value = serde_json::from_str(&ok(env.berth(&["features"]))).unwrap();
    assert_eq!(f["ociVersionMax"], "1.1.0");
    assert!(
        f["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "user")
    );
    assert!(f["linux"]["capabilities"].as_array().unwrap().len() >= 40);
    let v = ok(env.berth(&["--version"]));
    assert!(v.contains("spec: 1.1.0"), "{v}");
}

#[test]
fn user_namespace_with_mappings() {
    let env = Env::new(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; id -u",
    ]);
    env.edit(|s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(serde_json::json!({"type": "user"}));
        s["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        s["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        // a rootfs owned by host root is fine for reading; /sys needs the bind fallback
    });
    let o = env.run_with(BERTH);
    let out = ok(o);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", "100000", "65536"]);
    assert_eq!(lines[1], ["0", "100000", "65536"]);
    assert_eq!(lines[2], ["0"]);
}

#[test]
fn force_delete_of_a_paused_container() {
    let env = Env::new(&["sh", "-c", "sleep 1000 & sleep 1000"]);
    let id = env.id(BERTH);
    ok(env.berth_detached(&["run", "-d", "-b", env.bundle.to_str().unwrap(), &id]));
    wait_status(&env, &id, "running");
    ok(env.berth(&["pause", &id]));
    assert_eq!(state(&env, &id)["status"], "paused");
    assert!(
        !env.berth(&["exec", &id, "true"]).status.success(),
        "exec into a paused container must fail"
    );
    let pid = state(&env, &id)["pid"].as_i64().unwrap();
    ok(env.berth(&["delete", "--force", &id]));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
    );
    assert!(!env.berth(&["state", &id]).status.success());
}
