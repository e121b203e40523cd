//! Podman (Debian's 4.3, as installed) driving berth-runc with `--runtime`. Each test has
//! its own podman --root/--runroot (vfs, so no mounts), its own containers.conf (ulimits
//! the sandbox allows, cgroupfs, file events) and a cgroup parent under our own memory
//! cgroup; everything is removed on drop.

mod common;
use common::*;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Podman {
    dir: tempfile::TempDir,
    cg_parent: String,
}

impl Podman {
    fn new() -> Podman {
        assert!(
            Command::new("podman")
                .arg("--version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false),
            "podman is required for these tests (apt-get install podman)"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-podman-test")
            .tempdir()
            .unwrap();
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .unwrap()
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
            .expect("a v1 memory hierarchy");
        let cg_parent = format!("{}/{}", own.trim_end_matches('/'), unique("podman-test"));
        std::fs::write(
            dir.path().join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=20000:20000\"]\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
        let p = Podman { dir, cg_parent };
        // a busybox image as a docker-archive: layer.tar + config + manifest
        let arch = p.dir.path().join("arch");
        let rootfs = p.dir.path().join("rootfs");
        busybox_rootfs(&rootfs);
        std::fs::create_dir_all(&arch).unwrap();
        let layer = arch.join("layer.tar");
        assert!(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&layer)
                .arg(".")
                .status()
                .unwrap()
                .success()
        );
        let sum = Command::new("sha256sum").arg(&layer).output().unwrap();
        let hex = stdout(&sum).split_whitespace().next().unwrap().to_string();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{hex}")]}
        });
        std::fs::write(arch.join("config.json"), config.to_string()).unwrap();
        std::fs::write(
            arch.join("manifest.json"),
            serde_json::json!([{"Config": "config.json", "RepoTags": ["localhost/berth-busybox:latest"], "Layers": ["layer.tar"]}]).to_string(),
        )
        .unwrap();
        let image = p.dir.path().join("image.tar");
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
        let o = p.cmd(&["load", "-i", image.to_str().unwrap()]);
        assert!(o.status.success(), "podman load: {}", stderr(&o));
        p
    }

    fn base(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("runroot"))
            .args(["--storage-driver", "vfs", "--runtime", BERTH])
            .stdin(std::process::Stdio::null());
        c
    }

    fn cmd(&self, args: &[&str]) -> Output {
        self.base().args(args).output().unwrap()
    }

    /// `podman run --rm --network none --cgroup-parent ... [opts] IMAGE args...`
    fn run(&self, opts: &[&str], args: &[&str]) -> Output {
        let parent = format!("--cgroup-parent={}", self.cg_parent);
        let mut a = vec!["run", "--rm", "--network", "none", &parent];
        a.extend_from_slice(opts);
        a.push("localhost/berth-busybox");
        a.extend_from_slice(args);
        self.cmd(&a)
    }

    /// For `run -d`: conmon keeps podman's stdio, so only collect the status.
    fn detached(&self, name: &str, args: &[&str]) {
        let parent = format!("--cgroup-parent={}", self.cg_parent);
        let mut a = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            &parent,
            "localhost/berth-busybox",
        ];
        a.extend_from_slice(args);
        let errf = self.dir.path().join(format!("{name}.err"));
        let st = self
            .base()
            .args(&a)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&errf).unwrap())
            .status()
            .unwrap();
        assert!(
            st.success(),
            "run -d: {}",
            std::fs::read_to_string(&errf).unwrap_or_default()
        );
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .base()
            .args(["rm", "-af", "-t", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
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
fn podman_run_rm_true_and_exit_codes() {
    let p = Podman::new();
    let o = p.run(&[], &["true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(p.run(&[], &["false"]).status.code(), Some(1));
    let o = p.run(&[], &["/no/such"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("/no/such"), "{}", stderr(&o));
    assert_eq!(p.run(&[], &["/etc/passwd"]).status.code(), Some(126));
    // 137: killed by SIGKILL
    p.detached("k137", &["sleep", "1000"]);
    assert!(p.cmd(&["kill", "-s", "KILL", "k137"]).status.success());
    let w = p.cmd(&["wait", "k137"]);
    assert_eq!(stdout(&w).trim(), "137", "{}", stderr(&w));
}

#[test]
fn podman_detached_stop_and_exec() {
    let p = Podman::new();
    p.detached("d1", &["sleep", "1000"]);
    let o = p.cmd(&[
        "exec",
        "d1",
        "sh",
        "-c",
        "echo exec-ok; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "exec-ok\nsleep 1000 ");
    assert_eq!(
        p.cmd(&["exec", "d1", "sh", "-c", "exit 5"]).status.code(),
        Some(5)
    );
    let o = p.cmd(&["exec", "--user", "65534", "d1", "id", "-u"]);
    assert_eq!(stdout(&o), "65534\n", "{}", stderr(&o));
    // exec -t: a new pty, its master handed to conmon over the console socket
    let o = p.cmd(&["exec", "-t", "d1", "tty"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("/dev/pts/"), "{}", stdout(&o));
    // -i: stdin reaches the container
    let o = p
        .base()
        .args(["exec", "-i", "d1", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"through stdin\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(stdout(&o), "through stdin\n");
    let o = p.cmd(&["stop", "-t", "1", "d1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = p.cmd(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        "d1",
    ]);
    assert_eq!(stdout(&o).trim(), "exited 137", "{}", stderr(&o));
}

#[test]
fn podman_limits_user_caps_readonly() {
    let p = Podman::new();
    let o = p.run(
        &["--memory", "64m", "--pids-limit", "33", "--cap-drop", "ALL", "--user", "65534:65534", "--read-only"],
        &["sh", "-c", "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes; id -u; id -g; grep CapEff /proc/self/status; touch /x 2>/dev/null || echo read-only"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "33\n{}\n65534\n65534\nCapEff:\t0000000000000000\nread-only\n",
            64 << 20
        )
    );
}

#[test]
fn podman_network_none_and_tty() {
    let p = Podman::new();
    let o = p.run(&[], &["sh", "-c", "ls /sys/class/net | tr '\\n' ' '"]);
    assert_eq!(stdout(&o), "lo ", "{}", stderr(&o));
    // -t: the pty master reaches conmon through --console-socket
    let o = p.run(&["-t"], &["tty"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "/dev/pts/0\r\n");
    // -i: stdin is passed through conmon to the container
    let parent = format!("--cgroup-parent={}", p.cg_parent);
    let o = p
        .base()
        .args([
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            &parent,
            "localhost/berth-busybox",
            "sh",
            "-c",
            "cat; echo end",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"hello stdin\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(stdout(&o), "hello stdin\nend\n");
}
