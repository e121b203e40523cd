//! A daemon per test (own data root, exec root, socket, config) and helpers to run
//! `berth`, the real `docker` CLI and docker-py against it.
#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::TestEnv;

pub struct Daemon {
    pub env: TestEnv,
    /// The extra leased subnets given to berthd as address pools.
    pub pools: Vec<String>,
}

pub fn berthd_bin() -> PathBuf {
    // berthd is built next to berth in the same target dir.
    let berth = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    berth.with_file_name("berthd")
}

impl Daemon {
    /// Starts berthd with an optional berth.toml.
    pub fn start_with_config(config: &str) -> Daemon {
        Daemon::start_full(config, 0)
    }

    /// Starts berthd with `pools` extra leased /24s as its `--default-address-pool`s (one
    /// user-defined network each).
    pub fn start_with_pools(pools: usize) -> Daemon {
        Daemon::start_full("", pools)
    }

    fn start_full(config: &str, pools: usize) -> Daemon {
        let mut env = TestEnv::new().expect("test env");
        let mut extra = Vec::new();
        for _ in 0..pools {
            extra.push(env.extra_subnet().expect("lease a subnet").cidr());
        }
        let net = net_args(&env, &extra);
        std::fs::write(env.dir().join("berth.toml"), config).unwrap();
        let log = std::fs::File::create(env.dir().join("berthd.log")).unwrap();
        let child = Command::new(berthd_bin())
            .arg("--data-root")
            .arg(env.data_root())
            .arg("--exec-root")
            .arg(env.run_root())
            .arg("--config")
            .arg(env.dir().join("berth.toml"))
            .arg("-H")
            .arg(format!("unix://{}", env.socket().display()))
            .args(&net)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "spawn {}: {e} (build it: cargo build -p berthd)",
                    berthd_bin().display()
                )
            });
        env.cleanup().child(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(env.socket()).is_err() {
            assert!(Instant::now() < deadline, "berthd did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon { env, pools: extra }
    }

    pub fn start() -> Daemon {
        Daemon::start_with_config("")
    }

    /// kill -9 of this daemon's berthd (its pid file), as a crash.
    pub fn kill_berthd(&self) {
        let pid = std::fs::read_to_string(self.env.run_root().join("berthd.pid")).unwrap();
        let ok = Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -9 {pid}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{}", pid.trim())).exists() {
            // a zombie until the test's cleanup reaps it: stop waiting once it is one
            let st =
                std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
            if st.contains(") Z ") || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // the leader turns zombie while its other threads still exit and hold the
        // listening socket: wait until nothing answers there any more
        while UnixStream::connect(self.env.socket()).is_ok() {
            assert!(Instant::now() < deadline, "the killed berthd still answers");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts another berthd on the same roots, socket and network settings.
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.env.dir().join("berthd-restart.log")).unwrap();
        let child = Command::new(berthd_bin())
            .arg("--data-root")
            .arg(self.env.data_root())
            .arg("--exec-root")
            .arg(self.env.run_root())
            .arg("--config")
            .arg(self.env.dir().join("berth.toml"))
            .arg("-H")
            .arg(self.host())
            .args(net_args(&self.env, &self.pools))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id().to_string();
        self.env.cleanup().child(child);
        // ready once the new daemon wrote its pid (after binding the socket)
        let pid_file = self.env.run_root().join("berthd.pid");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let written = std::fs::read_to_string(&pid_file).unwrap_or_default();
            if written.trim() == pid && UnixStream::connect(self.env.socket()).is_ok() {
                break;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(
                !stat.is_empty() && !stat.contains(") Z "),
                "berthd exited on restart: {}",
                std::fs::read_to_string(self.env.dir().join("berthd-restart.log"))
                    .unwrap_or_default()
            );
            assert!(Instant::now() < deadline, "berthd did not come up again");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.env.socket().display())
    }

    pub fn cli_config(&self) -> PathBuf {
        self.env.dir().join("cli")
    }

    /// `berth -H <sock> args…`.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.berth_stdin(args, None)
    }

    pub fn berth_stdin(&self, args: &[&str], stdin: Option<&Path>) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.arg("-H")
            .arg(self.host())
            .args(args)
            .env("BERTH_CLI_CONFIG", self.cli_config())
            .env_remove("BERTH_HOST");
        c.stdin(match stdin {
            Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
            None => Stdio::null(),
        });
        c.output().unwrap()
    }

    /// `berth …`, asserting success; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.berth(args);
        assert!(
            o.status.success(),
            "berth {args:?} failed: {}{}\n--- the end of berthd's log:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.log_tail(40)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// The last `n` lines of this daemon's log (for failure messages): the restarted
    /// daemon's once there is one.
    pub fn log_tail(&self, n: usize) -> String {
        let dir = self.env.dir();
        let text = std::fs::read_to_string(dir.join("berthd-restart.log"))
            .or_else(|_| std::fs::read_to_string(dir.join("berthd.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The real docker CLI against this daemon; its config dir is the test's.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("/usr/local/bin/docker")
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.env.dir().join("docker-cli"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Loads the cached busybox test image through the API.
    pub fn load_busybox(&self) {
        let archive = berth_testkit::images::busybox_docker_archive().unwrap();
        let out = self.ok(&["load", "-i", archive.to_str().unwrap()]);
        assert_eq!(out, "Loaded image: busybox:latest\n");
    }
}

/// berthd's per-test networking flags: the default bridge `<prefix>b0` on the leased
/// subnet, devices and the nft table named with the test's prefix, and the next `pools`
/// leased subnets as address pools. Pass them to every berthd of a test.
pub fn net_args(env: &TestEnv, pools: &[String]) -> Vec<String> {
    let p = env.prefix();
    let mut v = vec![
        "--bridge".to_owned(),
        format!("{p}b0"),
        "--bip".to_owned(),
        format!("{}/24", env.subnet().gateway()),
        "--net-prefix".to_owned(),
        p.to_owned(),
        "--nft-table".to_owned(),
        p.to_owned(),
    ];
    for cidr in pools {
        v.push("--default-address-pool".to_owned());
        v.push(format!("base={cidr},size=24"));
    }
    v
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The image id of the cached busybox image.
pub fn busybox_id() -> String {
    berth_testkit::images::busybox_digests().unwrap().1
}

/// Kills leftover shims and containers by pid, unmounts rootfs and removes container
/// cgroups of one daemon, even when the test panicked.
pub struct Leftovers {
    containers: PathBuf,
}

impl Leftovers {
    pub fn new(d: &Daemon) -> Leftovers {
        Leftovers {
            containers: d.env.data_root().join("containers"),
        }
    }

    pub fn ids(&self) -> Vec<String> {
        std::fs::read_dir(&self.containers)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `<own cgroup of each v1 hierarchy and the unified one>/berth/<id>`.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    cgroup_dirs_under("berth", id)
}

/// `<own cgroup of each v1 hierarchy and the unified one>/<parent>/<id>`.
pub fn cgroup_dirs_under(parent: &str, id: &str) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrl, path) = (it.next()?, it.next()?, it.next()?);
            let base = if ctrl.is_empty() {
                "unified".to_owned()
            } else {
                ctrl.split(',')
                    .find(|c| !c.starts_with("name="))?
                    .to_owned()
            };
            let root = Path::new("/sys/fs/cgroup").join(&base);
            let root = if root.exists() {
                root
            } else {
                Path::new("/sys/fs/cgroup").join(ctrl.replace("name=", ""))
            };
            Some(
                root.join(path.trim_start_matches('/'))
                    .join(parent)
                    .join(id),
            )
        })
        .collect()
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for id in self.ids() {
            let dir = self.containers.join(&id);
            if let Ok(text) = std::fs::read_to_string(dir.join("config.json"))
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            {
                for k in ["pid", "shim_pid"] {
                    if let Some(p) = v["state"][k].as_i64().filter(|p| *p > 0) {
                        let _ = std::process::Command::new("kill")
                            .args(["-9", &p.to_string()])
                            .status();
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            berth_testkit::cleanup::unmount_under(&dir);
            for cg in cgroup_dirs(&id) {
                let _ = std::fs::remove_dir(&cg);
            }
        }
    }
}

/// The venv with docker-py (PyPI `docker`), made once under the target dir (a file lock
/// keeps parallel tests from making it twice).
pub fn python() -> PathBuf {
    let dir = berth_testkit::images::cache_dir()
        .parent()
        .unwrap()
        .join("berth-pyenv");
    let py = dir.join("bin/python");
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let lock_path = dir.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.lock().unwrap();
    if !dir.join(".ready").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(&dir)
                .status()
                .unwrap()
                .success(),
            "python3 -m venv failed"
        );
        let st = Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "docker"])
            .status()
            .unwrap();
        assert!(st.success(), "pip install docker failed");
        std::fs::write(dir.join(".ready"), b"").unwrap();
    }
    py
}
