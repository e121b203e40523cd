//! The bench's environment: a private mount + network namespace, a work dir, the busybox
//! image and rootfs, and the cgroup every tool is pointed under.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_testkit::{Cleanup, TestDir};

/// Set in the re-executed child that runs inside the private namespaces.
pub const IN_NS_ENV: &str = "BERTH_BENCH_IN_NS";

/// Run a command, returning stdout; an error carries the command line and stderr.
pub fn sh(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("failed to run {cmd:?}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = if err.trim().is_empty() {
            String::from_utf8_lossy(&out.stdout)
        } else {
            err
        };
        return Err(format!(
            "{cmd:?} exited with {}: {}",
            out.status,
            err.trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Time one run of `cmd` (stdout discarded, stderr kept for the error).
pub fn time(cmd: &mut Command) -> Result<Duration, String> {
    let start = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("failed to run {cmd:?}: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("failed to wait for {cmd:?}: {e}"))?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(took)
}

/// Whether `prog` is on PATH.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Re-execute this binary inside `unshare --mount --net --propagation slave`, so every
/// bridge, firewall rule and mount the peers make stays in namespaces that die with us.
/// Returns the child's exit code.
pub fn reexec_in_namespaces() -> Result<i32> {
    let exe = std::env::current_exe().context("cannot find the berth-bench binary")?;
    let status = Command::new("unshare")
        .args(["--mount", "--net", "--propagation", "slave", "--"])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(IN_NS_ENV, "1")
        .status()
        .context("failed to run unshare (util-linux)")?;
    Ok(status.code().unwrap_or(1))
}

/// Inside the namespaces: loopback up; crun's hybrid-cgroup workaround (PEERS.md: an empty
/// file over the unified hierarchy's cgroup.controllers); tmpfs over the dirs where CNI and
/// netns bind mounts would otherwise touch the host.
pub fn prepare_namespaces(work: &Path) -> Result<()> {
    sh(Command::new("ip").args(["link", "set", "lo", "up"])).map_err(anyhow::Error::msg)?;
    let controllers = Path::new("/sys/fs/cgroup/unified/cgroup.controllers");
    if controllers.exists() && Path::new("/sys/fs/cgroup/memory").is_dir() {
        let empty = work.join("empty-cgroup.controllers");
        fs::write(&empty, b"").context("write empty controllers file")?;
        sh(Command::new("mount")
            .arg("--bind")
            .arg(&empty)
            .arg(controllers))
        .map_err(anyhow::Error::msg)?;
    }
    for d in ["/var/lib/cni", "/run/netns"] {
        if Path::new(d).is_dir() {
            sh(Command::new("mount").args(["-t", "tmpfs", "berth-bench", d]))
                .map_err(anyhow::Error::msg)?;
        }
    }
    // every tool's run root (its /run/<tool> on a real host) on a tmpfs, as /run is
    let run = work.join(RUN_TMPFS);
    fs::create_dir_all(&run).context("create the run-root tmpfs dir")?;
    sh(Command::new("mount")
        .args(["-t", "tmpfs", "berth-bench-run"])
        .arg(&run))
    .map_err(anyhow::Error::msg)?;
    Ok(())
}

/// The work dir's tmpfs for run roots (see [`prepare_namespaces`]).
const RUN_TMPFS: &str = "run-tmpfs";

/// A tool's run root (state of running containers) on the run tmpfs.
pub fn run_root(work: &Path, tool: &str) -> PathBuf {
    work.join(RUN_TMPFS).join(tool)
}

/// Cgroup placement shared by every tool: `<own memory cgroup>/berth-bench-<prefix>`.
#[derive(Debug)]
pub struct CgroupPlan {
    /// Absolute path within each hierarchy (`/process_api/…/berth-bench-bb12ab`).
    pub base: String,
    /// Per hierarchy mount point, the dirs of `base` that did not exist before the run.
    created: Vec<PathBuf>,
    mounts: Vec<PathBuf>,
}

impl CgroupPlan {
    /// Plan the base; notes which intermediate dirs exist, to remove only ours at the end.
    pub fn new(leaf: &str) -> Result<CgroupPlan> {
        let cg = fs::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?;
        let own = cg
            .lines()
            .find_map(|l| {
                let mut p = l.splitn(3, ':');
                let (_, ctrls, path) = (p.next()?, p.next()?, p.next()?);
                ctrls
                    .split(',')
                    .any(|c| c == "memory")
                    .then(|| path.to_string())
            })
            .or_else(|| {
                cg.lines()
                    .find_map(|l| l.strip_prefix("0::").map(str::to_string))
            })
            .context("no memory or unified cgroup in /proc/self/cgroup")?;
        let base = format!("{}/{leaf}", own.trim_end_matches('/'));
        let mi = fs::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
        let mounts: Vec<PathBuf> = mi
            .lines()
            .filter_map(|l| {
                let (pre, post) = l.split_once(" - ")?;
                let fstype = post.split(' ').next()?;
                let mount_point = pre.split(' ').nth(4)?;
                (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(mount_point))
            })
            .collect();
        let mut created = Vec::new();
        for m in &mounts {
            let mut p = m.clone();
            for comp in base.trim_start_matches('/').split('/') {
                p.push(comp);
                if !p.exists() {
                    created.push(p.clone());
                }
            }
        }
        Ok(CgroupPlan {
            base,
            created,
            mounts,
        })
    }

    /// `<base>/<name>`.
    pub fn child(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// Register removal: the base in every hierarchy (processes killed, children first),
    /// then the intermediate dirs we caused to exist, deepest first.
    pub fn register(&self, cleanup: &mut Cleanup) {
        for m in &self.mounts {
            cleanup.cgroup(m.join(self.base.trim_start_matches('/')));
        }
    }

    /// Remove the intermediate dirs created during the run (after the base is gone).
    pub fn remove_intermediates(&self) {
        let mut dirs = self.created.clone();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = fs::remove_dir(&d);
        }
    }
}

/// The work area and shared inputs.
#[derive(Debug)]
pub struct Ctx {
    /// Everything the run writes lives here.
    pub work: TestDir,
    /// Short unique name part (`bb<6 hex>`).
    pub prefix: String,
    /// Where tools put their cgroups.
    pub cgroups: CgroupPlan,
    /// The busybox docker-archive (cached by berth-testkit).
    pub busybox_archive: PathBuf,
    /// A busybox rootfs for the raw OCI bundles.
    pub rootfs: PathBuf,
    /// Directory holding Berth's release binaries.
    pub bin_dir: PathBuf,
    /// Measured runs per scenario (heavy scenarios cap it).
    pub runs: usize,
    /// Warm-up runs.
    pub warmups: usize,
}

impl Ctx {
    /// Make the work dir, busybox rootfs and image, and plan the cgroups.
    pub fn new(runs: usize, warmups: usize, bin_dir: PathBuf) -> Result<Ctx> {
        let work = TestDir::new("bench").context("create work dir")?;
        let prefix = format!("bb{:06x}", std::process::id() & 0xff_ffff);
        let cgroups = CgroupPlan::new(&format!("berth-bench-{prefix}"))?;
        let rootfs = work.join("rootfs");
        berth_testkit::busybox_rootfs(&rootfs).context("make the busybox rootfs")?;
        let busybox_archive =
            berth_testkit::images::busybox_docker_archive().context("make the busybox image")?;
        Ok(Ctx {
            work,
            prefix,
            cgroups,
            busybox_archive,
            rootfs,
            bin_dir,
            runs,
            warmups,
        })
    }

    /// A Berth binary in the bin dir, if built.
    pub fn berth_bin(&self, name: &str) -> Option<PathBuf> {
        let p = self.bin_dir.join(name);
        p.is_file().then_some(p)
    }

    /// `runs` capped for heavy scenarios.
    pub fn runs_capped(&self, cap: usize) -> usize {
        self.runs.min(cap).max(1)
    }

    /// Fail early with a clear message when not root.
    pub fn check_root() -> Result<()> {
        let uid = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
        });
        if uid.as_deref() != Some("0") {
            bail!("bench/run needs root (namespaces, cgroups and the peers' rootful modes)");
        }
        Ok(())
    }
}
