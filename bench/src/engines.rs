//! The Docker-like engines (Berth, Podman, Docker) and raw OCI runtimes (berth-runc, crun,
//! runc), each set up with private state under the work dir and its cgroups under ours.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ctx::{Ctx, sh, which};

/// Why an engine cannot be benchmarked.
#[derive(Debug, Clone)]
pub enum Unavailable {
    /// Berth lacks it (binary or subcommand): "not yet".
    NotYet(String),
    /// A peer is not installed.
    NotInstalled(String),
    /// Set-up failed.
    Failed(String),
}

/// A Docker-CLI-compatible engine with private state.
#[derive(Debug)]
pub struct Engine {
    /// `berth`, `podman` or `docker`.
    pub name: &'static str,
    program: PathBuf,
    global: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    /// Flags every `run`/`create` gets (the cgroup parent).
    pub run_flags: Vec<String>,
    /// Flags for `pull` from the local plain-HTTP registry.
    pub pull_flags: Vec<String>,
    /// Flags for `build`.
    pub build_flags: Vec<String>,
    /// Extra env for `build` (DOCKER_BUILDKIT=0).
    pub build_env: Vec<(String, String)>,
    /// Name fragment in the per-container monitor's cmdline, for the RSS figure.
    pub monitor_exe: &'static str,
    /// Path that appears in the monitor's cmdline and marks it as ours.
    pub state_marker: PathBuf,
    daemon: Option<Child>,
    /// Subcommands the engine lacks (Berth only).
    missing: Vec<String>,
    /// Directories the engine empties in the background after a removal (Berth's trash):
    /// waited for after each scenario, so that one engine's deferred deletes never run
    /// inside the next engine's timings.
    pub background_dirs: Vec<PathBuf>,
}

impl Engine {
    /// Waits (at most 3 minutes) until the engine's background deletes are done.
    pub fn settle(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        let busy = |d: &PathBuf| fs::read_dir(d).is_ok_and(|mut r| r.next().is_some());
        while self.background_dirs.iter().any(busy) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A command for this engine with its private globals and env.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.global);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.args(args);
        c
    }

    /// `run`/`create` args: `<verb> <run_flags> <rest>`.
    pub fn run_cmd(&self, verb: &str, rest: &[&str]) -> Command {
        let mut c = self.cmd(&[verb]);
        c.args(&self.run_flags);
        c.args(rest);
        c
    }

    /// Why this engine cannot do a scenario needing `subcommands`, if it cannot.
    pub fn lacks(&self, subcommands: &[&str]) -> Option<String> {
        let missing: Vec<&str> = subcommands
            .iter()
            .copied()
            .filter(|s| self.missing.iter().any(|m| m == s))
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "`{} {}` does not exist yet",
                self.name,
                missing.join("`, `")
            )
        })
    }

    /// Remove every container (best effort, in batches).
    pub fn remove_all_containers(&self) {
        if let Ok(ids) = sh(&mut self.cmd(&["ps", "-aq"])) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            for chunk in ids.chunks(100) {
                let mut args = vec!["rm", "-f"];
                args.extend(chunk);
                let _ = sh(&mut self.cmd(&args));
            }
        }
    }

    /// Stop the engine's daemon (SIGTERM, then SIGKILL after 30 s) after removing its
    /// containers.
    pub fn shutdown(&mut self) {
        self.remove_all_containers();
        if self.name == "berth" {
            // berthd is started on demand by the CLI, so it is not our child: find it by
            // its executable name and our state dir in its command line or environment.
            for pid in processes_marked("berthd", &self.state_marker) {
                stop_pid(pid);
            }
        }
        if let Some(mut d) = self.daemon.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(d.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = d.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    /// Load the busybox docker-archive (untimed set-up).
    pub fn load_busybox(&self, ctx: &Ctx) -> Result<(), String> {
        sh(&mut self.cmd(&["load", "-i", &ctx.busybox_archive.to_string_lossy()])).map(|_| ())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Podman with private root/runroot/tmpdir and containers.conf per PEERS.md.
pub fn podman(ctx: &Ctx) -> Result<Engine, Unavailable> {
    let Some(program) = which("podman") else {
        return Err(Unavailable::NotInstalled(
            "podman is not installed (bench/run --install-peers)".into(),
        ));
    };
    let dir = ctx.work.join("podman");
    let runroot = crate::ctx::run_root(ctx.work.path(), "podman");
    let tmp = crate::ctx::run_root(ctx.work.path(), "podman-tmp");
    for d in [
        dir.join("root"),
        runroot.clone(),
        tmp.clone(),
        dir.join("networks"),
    ] {
        fs::create_dir_all(&d).map_err(|e| Unavailable::Failed(format!("mkdir: {e}")))?;
    }
    let conf = dir.join("containers.conf");
    let text = format!(
        "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=20000:20000\"]\n\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = \"{}\"\n\n[network]\nnetwork_config_dir = \"{}\"\n",
        dir.join("events.log").display(),
        dir.join("networks").display()
    );
    fs::write(&conf, text)
        .map_err(|e| Unavailable::Failed(format!("write {}: {e}", conf.display())))?;
    let mut global: Vec<OsString> = Vec::new();
    for (flag, path) in [
        ("--root", dir.join("root")),
        ("--runroot", runroot),
        ("--tmpdir", tmp),
    ] {
        global.push(flag.into());
        global.push(path.into_os_string());
    }
    global.extend(["--storage-driver".into(), "overlay".into()]);
    let engine = Engine {
        name: "podman",
        program,
        global,
        env: vec![("CONTAINERS_CONF".into(), conf.into_os_string())],
        run_flags: vec![format!("--cgroup-parent={}", ctx.cgroups.child("podman"))],
        pull_flags: vec!["--tls-verify=false".into()],
        // PEERS.md: podman build uses --cgroup-parent as the RUN step's exact cgroup and
        // fails on one with children: give it its own empty leaf.
        build_flags: vec![
            "--layers".into(),
            format!("--cgroup-parent={}", ctx.cgroups.child("podman-build")),
        ],
        build_env: vec![],
        monitor_exe: "conmon",
        state_marker: dir.clone(),
        daemon: None,
        missing: vec![],
        background_dirs: vec![],
    };
    engine.load_busybox(ctx).map_err(Unavailable::Failed)?;
    Ok(engine)
}

/// dockerd (Debian's docker.io) with its own data-root, exec-root and socket, cgroupfs
/// driver and cgroup-parent under ours, driven by the docker CLI through DOCKER_HOST.
pub fn docker(ctx: &Ctx) -> Result<Engine, Unavailable> {
    let (Some(dockerd), Some(program)) = (which("dockerd"), which("docker")) else {
        return Err(Unavailable::NotInstalled(
            "dockerd (docker.io) is not installed (bench/run --install-peers)".into(),
        ));
    };
    let dir = ctx.work.join("docker");
    let (data, exec, cli) = (
        dir.join("data"),
        crate::ctx::run_root(ctx.work.path(), "docker"),
        dir.join("cli"),
    );
    for d in [&data, &exec, &cli] {
        fs::create_dir_all(d).map_err(|e| Unavailable::Failed(format!("mkdir: {e}")))?;
    }
    let sock = dir.join("docker.sock");
    let config = serde_json::json!({
        "data-root": data,
        "exec-root": exec,
        "pidfile": dir.join("docker.pid"),
        "hosts": [format!("unix://{}", sock.display())],
        "cgroup-parent": ctx.cgroups.child("docker"),
        "exec-opts": ["native.cgroupdriver=cgroupfs"],
        "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 20000, "Soft": 20000}},
        "storage-driver": "overlay2",
        "log-level": "warn",
    });
    let cfg_path = dir.join("daemon.json");
    fs::write(&cfg_path, config.to_string())
        .map_err(|e| Unavailable::Failed(format!("write daemon.json: {e}")))?;
    let log = fs::File::create(dir.join("dockerd.log"))
        .map_err(|e| Unavailable::Failed(e.to_string()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Unavailable::Failed(e.to_string()))?;
    let child = Command::new(dockerd)
        .arg("--config-file")
        .arg(&cfg_path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| Unavailable::Failed(format!("failed to start dockerd: {e}")))?;
    let engine = Engine {
        name: "docker",
        program,
        global: vec![],
        env: vec![
            (
                "DOCKER_HOST".into(),
                format!("unix://{}", sock.display()).into(),
            ),
            ("DOCKER_CONFIG".into(), cli.into_os_string()),
        ],
        run_flags: vec![],
        pull_flags: vec![],
        build_flags: vec![],
        build_env: vec![("DOCKER_BUILDKIT".into(), "0".into())],
        monitor_exe: "containerd-shim",
        state_marker: dir.clone(),
        daemon: Some(child),
        missing: vec![],
        background_dirs: vec![],
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if sh(&mut engine.cmd(&["version"])).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            let log = fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default();
            let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" / ");
            return Err(Unavailable::Failed(format!(
                "dockerd did not answer within 60 s: {tail}"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    engine.load_busybox(ctx).map_err(Unavailable::Failed)?;
    Ok(engine)
}

/// Berth's CLI, when built; which subcommands exist is probed (`berth <sub> --help`). The
/// CLI starts berthd on demand on the default socket under `BERTH_RUNROOT`.
pub fn berth(ctx: &Ctx) -> Result<Engine, Unavailable> {
    let Some(program) = ctx.berth_bin("berth") else {
        return Err(Unavailable::NotYet(format!(
            "no berth binary in {}",
            ctx.bin_dir.display()
        )));
    };
    let dir = ctx.work.join("berth");
    let (data, run) = (
        dir.join("data"),
        crate::ctx::run_root(ctx.work.path(), "berth"),
    );
    for d in [&data, &run] {
        fs::create_dir_all(d).map_err(|e| Unavailable::Failed(format!("mkdir: {e}")))?;
    }
    let mut engine = Engine {
        name: "berth",
        program,
        global: vec![],
        env: vec![
            ("BERTH_ROOT".into(), data.clone().into_os_string()),
            ("BERTH_RUNROOT".into(), run.clone().into_os_string()),
        ],
        run_flags: vec![],
        pull_flags: vec![],
        build_flags: vec![],
        build_env: vec![],
        monitor_exe: "berth-shim",
        state_marker: dir.clone(),
        daemon: None,
        missing: vec![],
        background_dirs: vec![data.join("trash"), data.join("image/trash")],
    };
    for sub in [
        "run", "load", "exec", "ps", "create", "pull", "build", "rm", "rmi",
    ] {
        let ok = engine
            .cmd(&[sub, "--help"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            engine.missing.push(sub.to_string());
        }
    }
    if engine.missing.iter().any(|m| m == "run" || m == "load") {
        return Err(Unavailable::NotYet(format!(
            "`berth {}` does not exist yet",
            engine.missing.join("`, `")
        )));
    }
    engine.load_busybox(ctx).map_err(Unavailable::Failed)?;
    Ok(engine)
}

/// Pids of processes whose executable name starts with `exe` and whose command line or
/// environment mentions `marker` (our state dir).
fn processes_marked(exe: &str, marker: &Path) -> Vec<u32> {
    let marker = marker.to_string_lossy().into_owned();
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let first = cmdline.split(' ').next().unwrap_or("");
        if !Path::new(first)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(exe))
        {
            continue;
        }
        let environ = fs::read(e.path().join("environ")).unwrap_or_default();
        if cmdline.contains(&marker) || String::from_utf8_lossy(&environ).contains(&marker) {
            out.push(pid);
        }
    }
    out
}

/// SIGTERM a process we started indirectly, wait up to 10 s, then SIGKILL.
fn stop_pid(pid: u32) {
    let alive = || {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
    };
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive() {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    }
}

/// Resident memory (MB) of each of an engine's per-container monitors, found by executable
/// name and our state dir in their command line.
pub fn monitor_rss_mb(engine: &Engine) -> Vec<f64> {
    let marker = engine.state_marker.to_string_lossy().into_owned();
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let pid = e.file_name();
        if !pid.to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let exe = cmdline.split(' ').next().unwrap_or("");
        if !Path::new(exe)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(engine.monitor_exe))
        {
            continue;
        }
        if !cmdline.contains(&marker) {
            continue;
        }
        let Ok(status) = fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        if let Some(kb) = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
        {
            out.push(kb / 1024.0);
        }
    }
    out
}

/// A raw OCI runtime run against a bundle of the busybox rootfs.
#[derive(Debug)]
pub struct Runtime {
    program: PathBuf,
    state: PathBuf,
    /// The bundle directory (config.json; root.path points at the shared rootfs).
    pub bundle: PathBuf,
}

impl Runtime {
    /// `<runtime> --root <state> run --bundle <bundle> <id>`: create, start, wait, delete.
    pub fn run_cmd(&self, id: &str) -> Command {
        let mut c = Command::new(&self.program);
        c.arg("--root")
            .arg(&self.state)
            .arg("run")
            .arg("--bundle")
            .arg(&self.bundle)
            .arg(id);
        c
    }
}

/// Set up a runtime with its own bundle and state dir; the container's cgroup is
/// `<our memory cgroup>/berth-bench-<prefix>/<runtime>/c`.
pub fn runtime(ctx: &Ctx, name: &'static str, args: &[&str]) -> Result<Runtime, Unavailable> {
    let program = if name == "berth-runc" {
        match ctx.berth_bin("berth-runc") {
            Some(p) => p,
            None => {
                return Err(Unavailable::NotYet(format!(
                    "no berth-runc binary in {}",
                    ctx.bin_dir.display()
                )));
            }
        }
    } else {
        match which(name) {
            Some(p) => p,
            None => {
                return Err(Unavailable::NotInstalled(format!(
                    "{name} is not installed (bench/run --install-peers)"
                )));
            }
        }
    };
    let bundle = ctx.work.join(format!("bundle-{name}"));
    let state = ctx.work.join(format!("state-{name}"));
    for d in [&bundle, &state] {
        fs::create_dir_all(d).map_err(|e| Unavailable::Failed(format!("mkdir: {e}")))?;
    }
    let runc = which("runc").or_else(|| which("crun"));
    let Some(runc) = runc else {
        return Err(Unavailable::NotInstalled(
            "runc or crun is needed for `spec`".into(),
        ));
    };
    sh(Command::new(runc).arg("spec").current_dir(&bundle)).map_err(Unavailable::Failed)?;
    let path = bundle.join("config.json");
    let text = fs::read_to_string(&path).map_err(|e| Unavailable::Failed(e.to_string()))?;
    let mut spec: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Unavailable::Failed(e.to_string()))?;
    // Absolute, under our memory cgroup, for every runtime: crun reads a relative path from
    // the hierarchy root, so only an absolute one means the same thing to all three.
    let cgroups_path = ctx.cgroups.child(&format!("{name}/c"));
    spec["process"]["args"] = serde_json::json!(args);
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["root"]["path"] = serde_json::json!(ctx.rootfs);
    spec["root"]["readonly"] = serde_json::json!(true);
    spec["linux"]["cgroupsPath"] = serde_json::json!(cgroups_path);
    fs::write(
        &path,
        serde_json::to_vec_pretty(&spec).map_err(|e| Unavailable::Failed(e.to_string()))?,
    )
    .map_err(|e| Unavailable::Failed(e.to_string()))?;
    let rt = Runtime {
        program,
        state,
        bundle,
    };
    // The runtime must actually work here before it is timed.
    sh(&mut rt.run_cmd(&format!("{}-probe", ctx.prefix))).map_err(Unavailable::Failed)?;
    Ok(rt)
}
