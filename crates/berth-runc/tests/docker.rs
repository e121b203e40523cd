//! Debian's Docker engine (dockerd 20.10 + containerd 1.6 + containerd-shim-runc-v2) with
//! berth-runc registered as a runtime (`--add-runtime berth=...`). Each test starts its
//! own dockerd with private data/exec roots, a private socket, no bridge and no iptables
//! (so it touches no host network state), vfs storage, and a cgroup parent under our own
//! memory cgroup; it is stopped (SIGTERM, then SIGKILL) and everything removed on drop.

mod common;
use common::*;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Docker {
    dir: tempfile::TempDir,
    daemon: Child,
    cg_parent: String,
}

impl Docker {
    fn new() -> Docker {
        assert!(
            Command::new("dockerd")
                .arg("--version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false),
            "dockerd is required (apt-get install docker.io)"
        );
        // short path: the unix socket path must fit in sun_path
        let dir = tempfile::Builder::new()
            .prefix("bdk")
            .tempdir_in("/tmp")
            .unwrap();
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .unwrap()
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
            .expect("a v1 memory hierarchy");
        let cg_parent = format!("{}/{}", own.trim_end_matches('/'), unique("docker-test"));
        let d = dir.path();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        // our own (empty) daemon.json: whatever /etc/docker/daemon.json says must not apply
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        let daemon = Command::new("dockerd")
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("sock").display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--userland-proxy=false",
            ])
            .args([
                "--storage-driver",
                "vfs",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
            ])
            .arg(format!("--cgroup-parent={cg_parent}"))
            .arg(format!("--add-runtime=berth={BERTH}"))
            .args(["--default-ulimit", "nofile=20000:20000"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let dk = Docker {
            dir,
            daemon,
            cg_parent,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !dk.cmd(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up: {}",
                std::fs::read_to_string(dk.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // the busybox image as a docker-archive
        let arch = dk.dir.path().join("arch");
        busybox_rootfs(&dk.dir.path().join("rootfs"));
        std::fs::create_dir_all(&arch).unwrap();
        assert!(
            Command::new("tar")
                .arg("-C")
                .arg(dk.dir.path().join("rootfs"))
                .arg("-cf")
                .arg(arch.join("layer.tar"))
                .arg(".")
                .status()
                .unwrap()
                .success()
        );
        let sum = stdout(
            &Command::new("sha256sum")
                .arg(arch.join("layer.tar"))
                .output()
                .unwrap(),
        );
        let hex = sum.split_whitespace().next().unwrap();
        std::fs::write(
            arch.join("config.json"),
            serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
                "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{hex}")]}}).to_string(),
        )
        .unwrap();
        std::fs::write(arch.join("manifest.json"), r#"[{"Config":"config.json","RepoTags":["berth-busybox:latest"],"Layers":["layer.tar"]}]"#).unwrap();
        let image = dk.dir.path().join("image.tar");
        assert!(
            Command::new("tar")
                .arg("-C")
                .arg(&arch)
                .arg("-cf")
                .arg(&image)
                .args(["manifest.json", "config.json", "layer.tar"])
                .status()
                .unwrap()
                .success()
        );
        let o = dk.cmd(&["load", "-i", image.to_str().unwrap()]);
        assert!(o.status.success(), "docker load: {}", stderr(&o));
        dk
    }

    fn base(&self) -> Command {
        let mut c = Command::new("docker");
        c.env(
            "DOCKER_HOST",
            format!("unix://{}", self.dir.path().join("sock").display()),
        )
        .env("DOCKER_CONFIG", self.dir.path().join("cli"))
        .stdin(Stdio::null());
        c
    }

    fn cmd(&self, args: &[&str]) -> Output {
        self.base().args(args).output().unwrap()
    }

    fn run(&self, opts: &[&str], args: &[&str]) -> Output {
        let mut a = vec!["run", "--rm", "--runtime", "berth", "--network", "none"];
        a.extend_from_slice(opts);
        a.push("berth-busybox");
        a.extend_from_slice(args);
        self.cmd(&a)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let _ = self
            .base()
            .args(["rm", "-f", "d1", "k1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let pid = rustix::process::Pid::from_raw(self.daemon.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = self.daemon.kill();
                let _ = self.daemon.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // dockerd bind-mounts its data root; a clean exit undoes it, a killed one may not
        let data = self.dir.path().join("data");
        if std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .contains(data.to_str().unwrap())
        {
            let _ = berth_sys::umount2(data.to_str().unwrap(), libc::MNT_DETACH);
        }
        // conmon / the shim may still be leaving its cgroup (podman's exit command runs
        // asynchronously): retry until the tree is gone, up to 10 s
        let name = self.cg_parent.rsplit('/').next().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut left = false;
            if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
                for h in rd.flatten() {
                    let d = h.path().join(self.cg_parent.trim_start_matches('/'));
                    if d.ends_with(&name) && d.exists() {
                        rmdir_tree(&d);
                        left |= d.exists();
                    }
                }
            }
            if !left || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn rmdir_tree(dir: &std::path::Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[test]
fn docker_runs_containers_with_berth_runc() {
    let dk = Docker::new();
    // exit codes
    assert_eq!(dk.run(&[], &["true"]).status.code(), Some(0));
    assert_eq!(dk.run(&[], &["false"]).status.code(), Some(1));
    let o = dk.run(&[], &["/no/such"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("/no/such"), "{}", stderr(&o));
    assert_eq!(dk.run(&[], &["/etc/passwd"]).status.code(), Some(126));
    // limits, user, caps, read-only, network none
    let o = dk.run(
        &["--memory", "64m", "--pids-limit", "33", "--cap-drop", "ALL", "--user", "65534:65534", "--read-only"],
        &["sh", "-c", "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes; id -u; grep CapEff /proc/self/status; touch /x 2>/dev/null || echo read-only; ls /sys/class/net"],
    );
    assert_eq!(
        stdout(&o),
        format!(
            "33\n{}\n65534\nCapEff:\t0000000000000000\nread-only\nlo\n",
            64 << 20
        ),
        "{}",
        stderr(&o)
    );
    // -t
    let o = dk.run(&["-t"], &["tty"]);
    assert_eq!(stdout(&o), "/dev/pts/0\r\n", "{}", stderr(&o));
}

#[test]
fn docker_detached_exec_stop_kill() {
    let dk = Docker::new();
    let o = dk.cmd(&[
        "run",
        "-d",
        "--name",
        "d1",
        "--runtime",
        "berth",
        "--network",
        "none",
        "berth-busybox",
        "sleep",
        "1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = dk.cmd(&["exec", "d1", "sh", "-c", "echo exec-ok; exit 4"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(4), "exec-ok\n"),
        "{}",
        stderr(&o)
    );
    let o = dk.cmd(&["stop", "-t", "1", "d1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&dk.cmd(&["inspect", "-f", "{{.State.ExitCode}}", "d1"])).trim(),
        "137"
    );
    let o = dk.cmd(&[
        "run",
        "-d",
        "--name",
        "k1",
        "--runtime",
        "berth",
        "--network",
        "none",
        "berth-busybox",
        "sleep",
        "1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dk.cmd(&["kill", "k1"]).status.success());
    assert_eq!(stdout(&dk.cmd(&["wait", "k1"])).trim(), "137");
}
