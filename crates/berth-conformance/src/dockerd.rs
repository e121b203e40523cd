//! A private dockerd per test binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_cgroups::Placement;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to run {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("io error on {path:?}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("installing docker.io failed ({status}): {stderr}")]
    Install { status: String, stderr: String },
    #[error("dockerd did not answer on {socket:?} within {secs} s; its log:\n{log}")]
    NotReady {
        socket: PathBuf,
        secs: u64,
        log: String,
    },
    #[error("dockerd exited early ({status}); its log:\n{log}")]
    Exited { status: String, log: String },
    #[error("`docker {args}` failed ({status}): {stderr}")]
    Docker {
        args: String,
        status: String,
        stderr: String,
    },
    #[error("no memory cgroup for this process in /proc/self/cgroup")]
    NoOwnCgroup,
    #[error("cgroup error: {0}")]
    Cgroup(#[from] berth_cgroups::Error),
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Install Debian's docker engine when `dockerd` is missing.
pub fn ensure_docker_engine() -> Result<(), Error> {
    if Path::new("/usr/sbin/dockerd").exists() || Path::new("/usr/bin/dockerd").exists() {
        return Ok(());
    }
    let out = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "docker.io"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .map_err(|source| Error::Spawn {
            what: "apt-get install docker.io".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Install {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

/// `target/<profile>/berth-runc` next to the running test binary
/// (`target/<profile>/deps/<test>`), if it has been built.
pub fn berth_runc_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let p = profile_dir.join("berth-runc");
    p.is_file().then_some(p)
}

/// What to start dockerd with.
#[derive(Debug, Clone)]
pub struct DockerdOptions {
    /// Extra runtimes for `daemon.json` `runtimes`: name → binary path.
    pub runtimes: Vec<(String, PathBuf)>,
    /// How long to wait for the API to answer.
    pub ready_timeout: Duration,
}

impl Default for DockerdOptions {
    fn default() -> Self {
        DockerdOptions {
            runtimes: Vec::new(),
            ready_timeout: Duration::from_secs(60),
        }
    }
}

/// The result of one `docker` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: o
                .status
                .code()
                .unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A running private dockerd; torn down on drop.
#[derive(Debug)]
pub struct Dockerd {
    base: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
    cgroup_parent: String,
    /// cgroup directories (per hierarchy) between the hierarchy root and the
    /// parent that did not exist before dockerd started.
    new_cgroup_dirs: Vec<PathBuf>,
    /// Host directories dockerd creates outside its roots (`/run/docker/plugins`)
    /// that did not exist before it started.
    new_host_dirs: Vec<PathBuf>,
}

fn unique_base() -> PathBuf {
    // short: containerd's sockets live below the exec root (sun_path is 108 bytes)
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    PathBuf::from(format!("/tmp/bcd-{}-{:x}", std::process::id(), nanos))
}

fn own_memory_cgroup() -> Result<String, Error> {
    let text = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| io_err(Path::new("/proc/self/cgroup"), e))?;
    berth_cgroups::parse_proc_cgroup(&text)
        .into_iter()
        .find(|(c, _)| c.iter().any(|x| x == "memory"))
        .or_else(|| {
            berth_cgroups::parse_proc_cgroup(&text)
                .into_iter()
                .find(|(c, _)| c.is_empty())
        })
        .map(|(_, p)| p)
        .ok_or(Error::NoOwnCgroup)
}

/// Directories of `cg` and its ancestors (below each hierarchy root) that do not exist yet.
fn missing_cgroup_dirs(cg: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
        return out;
    };
    for ent in rd.flatten() {
        let h = ent.path();
        if !h.join("cgroup.procs").exists() {
            continue;
        }
        let mut d = h.clone();
        for comp in cg.trim_matches('/').split('/') {
            d = d.join(comp);
            if !d.exists() {
                out.push(d.clone());
            }
        }
    }
    out
}

impl Dockerd {
    /// Start dockerd and wait until its API answers.
    pub fn start(opts: &DockerdOptions) -> Result<Dockerd, Error> {
        let base = unique_base();
        std::fs::create_dir_all(&base).map_err(|e| io_err(&base, e))?;
        let tag = base
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("bcd")
            .to_string();
        let own = own_memory_cgroup()?;
        let cgroup_parent = format!("{}/docker-{tag}", own.trim_end_matches('/'));
        let new_cgroup_dirs = missing_cgroup_dirs(&cgroup_parent);
        // dockerd makes /run/docker/plugins, containerd's shims /run/containerd/s
        let new_host_dirs: Vec<PathBuf> = [
            "/run/docker",
            "/run/docker/plugins",
            "/run/containerd",
            "/run/containerd/s",
        ]
        .iter()
        .map(PathBuf::from)
        .filter(|p| !p.exists())
        .collect();
        let socket = base.join("docker.sock");
        let mut runtimes = serde_json::Map::new();
        for (name, path) in &opts.runtimes {
            runtimes.insert(name.clone(), serde_json::json!({ "path": path }));
        }
        let config = serde_json::json!({
            "runtimes": runtimes,
            "cgroup-parent": cgroup_parent,
            "exec-opts": ["native.cgroupdriver=cgroupfs"],
            "storage-driver": "overlay2",
            "log-driver": "json-file",
            "userland-proxy": false,
            "features": { "buildkit": false },
            // otherwise dockerd 20.10 writes its libtrust key to /etc/docker/key.json
            "deprecated-key-path": base.join("key.json"),
        });
        let cfg_path = base.join("daemon.json");
        std::fs::write(
            &cfg_path,
            serde_json::to_vec_pretty(&config).unwrap_or_default(),
        )
        .map_err(|e| io_err(&cfg_path, e))?;
        let log_path = base.join("dockerd.log");
        let log = std::fs::File::create(&log_path).map_err(|e| io_err(&log_path, e))?;
        let log2 = log.try_clone().map_err(|e| io_err(&log_path, e))?;
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(&cfg_path)
            .arg("--data-root")
            .arg(base.join("data"))
            .arg("--exec-root")
            .arg(base.join("exec"))
            .arg("--pidfile")
            .arg(base.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
            ])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|source| Error::Spawn {
                what: "dockerd".into(),
                source,
            })?;
        let mut d = Dockerd {
            base,
            socket,
            child: Some(child),
            cgroup_parent,
            new_cgroup_dirs,
            new_host_dirs,
        };
        d.wait_ready(opts.ready_timeout)?;
        Ok(d)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.base.join("dockerd.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(Error::Exited {
                    status: status.to_string(),
                    log: self.log(),
                });
            }
            if self.socket.exists() {
                let r = self.docker(&["version", "--format", "{{.Server.Version}}"])?;
                if r.code == 0 {
                    return Ok(());
                }
            }
            if start.elapsed() > timeout {
                return Err(Error::NotReady {
                    socket: self.socket.clone(),
                    secs: timeout.as_secs(),
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `cgroup-parent` given to dockerd (a path from each hierarchy's root).
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// The dockerd log so far (for failure messages).
    pub fn daemon_log(&self) -> String {
        self.log()
    }

    /// The directory holding everything of this daemon.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Run the docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Result<Run, Error> {
        let out = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .env("DOCKER_CONFIG", self.base.join("cli"))
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                what: format!("docker {}", args.join(" ")),
                source,
            })?;
        Ok(out.into())
    }

    /// Run the docker CLI with `input` on its stdin.
    pub fn docker_with_stdin(&self, args: &[&str], input: &[u8]) -> Result<Run, Error> {
        use std::io::Write;
        let what = || format!("docker {}", args.join(" "));
        let mut child = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .env("DOCKER_CONFIG", self.base.join("cli"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                what: what(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).map_err(|source| Error::Spawn {
                what: what(),
                source,
            })?;
        }
        let out = child.wait_with_output().map_err(|source| Error::Spawn {
            what: what(),
            source,
        })?;
        Ok(out.into())
    }

    /// Run the docker CLI and require success.
    pub fn docker_ok(&self, args: &[&str]) -> Result<Run, Error> {
        let r = self.docker(args)?;
        if r.code != 0 {
            return Err(Error::Docker {
                args: args.join(" "),
                status: r.code.to_string(),
                stderr: r.stderr,
            });
        }
        Ok(r)
    }

    fn teardown(&mut self) {
        // 1. containers
        if let Ok(r) = self.docker(&["ps", "-aq"]) {
            let ids: Vec<&str> = r.stdout.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = self.docker(&args);
            }
        }
        // 2. dockerd (it stops its containerd on the way out)
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        // 3. processes it started that outlived it: they name our private dirs
        kill_processes_naming(&self.base);
        // 4. whatever still runs in the containers' cgroups, then the cgroups
        if let Ok(cg) = berth_cgroups::open(&Placement::Absolute(self.cgroup_parent.clone())) {
            let _ = cg.kill_all(9);
            let deadline = Instant::now() + Duration::from_secs(5);
            while cg.pids().map(|p| !p.is_empty()).unwrap_or(false) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = cg.destroy();
        }
        for d in self.new_cgroup_dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        // 5. mounts below our directory, deepest first, then the directory
        unmount_under(&self.base);
        let _ = std::fs::remove_dir_all(&self.base);
        // shared host directories only when no other daemon of this harness
        // runs (its shims would still put sockets there)
        if !other_harness_daemons_running() {
            for d in self.new_host_dirs.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// SIGKILL every process whose command line mentions `dir` (our private,
/// uniquely named directory: only processes this daemon started name it).
fn kill_processes_naming(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    for ent in rd.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid as u32 == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(ent.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&needle)
            && let Some(p) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
    }
}

/// Whether a dockerd/containerd of another `Dockerd` (a `/tmp/bcd-` root) is alive.
fn other_harness_daemons_running() -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten().any(|ent| {
        ent.file_name()
            .to_str()
            .is_some_and(|s| s.parse::<u32>().is_ok())
            && std::fs::read(ent.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("/tmp/bcd-"))
                .unwrap_or(false)
    })
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Lazily unmount every mount at or below `dir`, deepest first.
fn unmount_under(dir: &Path) {
    for _ in 0..3 {
        let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let mut points: Vec<PathBuf> = mi
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|p| PathBuf::from(unescape_mountinfo(p)))
            .filter(|p| p.starts_with(dir))
            .collect();
        if points.is_empty() {
            return;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in points {
            let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
        }
    }
}
