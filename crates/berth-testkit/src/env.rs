//! Per-test environments: roots, socket, network names and a subnet nobody else uses.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cleanup::Cleanup;
use crate::error::Error;
use crate::tempdir::TestDir;

/// Where subnet leases live (flock'ed files: released by the kernel when a test process
/// exits, however it exits).
pub const LEASE_DIR: &str = "/run/berth-testkit/subnets";

/// A random u64 (std's per-instance random hasher keys; no extra dependency).
pub(crate) fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A /24 out of 10.199.0.0/16 held for this test: an exclusive flock on
/// `/run/berth-testkit/subnets/<n>.lock` for as long as the lease lives, and not routed on
/// the host when taken.
#[derive(Debug)]
pub struct SubnetLease {
    n: u8,
    _lock: File,
}

impl SubnetLease {
    /// Lease a free /24, starting the search at a random point.
    pub fn acquire() -> Result<SubnetLease, Error> {
        fs::create_dir_all(LEASE_DIR).map_err(|e| Error::io("create directory", LEASE_DIR, e))?;
        let routed = routed_prefixes();
        let start = (random_u64() % 256) as u16;
        for i in 0..256u16 {
            let n = ((start + i) % 256) as u8;
            let path = Path::new(LEASE_DIR).join(format!("{n}.lock"));
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io("open", &path, e))?;
            match f.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
            }
            if routed
                .iter()
                .any(|r| r.starts_with(&format!("10.199.{n}.")))
            {
                continue; // someone outside the testkit uses it; the lock drops here
            }
            return Ok(SubnetLease { n, _lock: f });
        }
        Err(Error::NoFreeSubnet)
    }

    /// `10.199.N.0/24`.
    pub fn cidr(&self) -> String {
        format!("10.199.{}.0/24", self.n)
    }

    /// The network address `10.199.N.0`.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 199, self.n, 0)
    }

    /// `10.199.N.1`, the conventional gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.host(1)
    }

    /// `10.199.N.<i>`.
    pub fn host(&self, i: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 199, self.n, i)
    }
}

/// Addresses and routes currently on the host (`ip -4 route`, `ip -4 addr`), as text.
fn routed_prefixes() -> Vec<String> {
    let mut out = Vec::new();
    for args in [
        &["-4", "route", "show", "table", "all"][..],
        &["-4", "-o", "addr", "show"][..],
    ] {
        if let Ok(o) = Command::new("ip").args(args).output() {
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                out.extend(
                    l.split_whitespace()
                        .filter(|w| w.starts_with("10.199."))
                        .map(str::to_string),
                );
            }
        }
    }
    out
}

/// A fresh environment for one test: data root, run root, socket path, a short unique
/// network-name prefix, a leased subnet, and a [`Cleanup`] that removes the links, netns
/// and nft tables carrying the prefix, the test's cgroups and every mount under its dirs.
///
/// On drop (also on panic): cleanup runs first, then the directories are removed, then the
/// subnet lease is released.
#[derive(Debug)]
pub struct TestEnv {
    cleanup: Cleanup,
    prefix: String,
    subnets: Vec<SubnetLease>,
    dir: TestDir,
}

impl TestEnv {
    /// Make a new environment (directories under `$TMPDIR`/`/tmp`, prefix `bt<6 hex>`).
    pub fn new() -> Result<TestEnv, Error> {
        let dir = TestDir::new("env")
            .map_err(|e| Error::io("create temp dir in", std::env::temp_dir(), e))?;
        for d in ["data", "run"] {
            fs::create_dir_all(dir.join(d))
                .map_err(|e| Error::io("create directory", dir.join(d), e))?;
        }
        let prefix = format!("bt{:06x}", random_u64() & 0xff_ffff);
        let subnet = SubnetLease::acquire()?;
        let mut cleanup = Cleanup::new();
        cleanup
            .mounts_under(dir.path().to_path_buf())
            .netns_with_prefix(prefix.clone())
            .links_with_prefix(prefix.clone())
            .nft_tables_with_prefix(prefix.clone());
        for cg in own_cgroup_dirs() {
            cleanup.cgroup(cg.join(format!("berth-test-{prefix}")));
        }
        Ok(TestEnv {
            cleanup,
            prefix,
            subnets: vec![subnet],
            dir,
        })
    }

    /// The environment's top directory (holds `data/` and `run/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh data root (`--data-root`, `BERTH_ROOT`).
    pub fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A fresh run root (`--exec-root`, `BERTH_RUNROOT`).
    pub fn run_root(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// The daemon's socket path, inside the run root (short enough for `sun_path`).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/berth.sock")
    }

    /// `bt<6 hex>`: prefix every bridge, veth, netns and nft table the test makes with it
    /// (8 characters, leaving 7 of the 15 allowed in an interface name).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The leased /24.
    pub fn subnet(&self) -> &SubnetLease {
        &self.subnets[0]
    }

    /// Lease one more /24 for this test (held until the environment drops).
    pub fn extra_subnet(&mut self) -> Result<&SubnetLease, Error> {
        self.subnets.push(SubnetLease::acquire()?);
        Ok(self.subnets.last().expect("just pushed"))
    }

    /// `berth-test-<prefix>`: name the test's cgroup so; it is removed under the test's
    /// own cgroup of every hierarchy on drop.
    pub fn cgroup_name(&self) -> String {
        format!("berth-test-{}", self.prefix)
    }

    /// The cleanup guard, to register processes, mounts or cgroups the test makes.
    pub fn cleanup(&mut self) -> &mut Cleanup {
        &mut self.cleanup
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = self.cleanup.run();
        // Then `dir` (removed) and `subnets` (unlocked) drop.
    }
}

/// This process's own cgroup directory in every mounted hierarchy (from /proc/self/cgroup
/// and /proc/self/mountinfo), e.g. `/sys/fs/cgroup/memory/process_api/0698…`.
pub fn own_cgroup_dirs() -> Vec<PathBuf> {
    let cgroups = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // (mount point, fstype, super options, root within the hierarchy)
    let mounts: Vec<(String, String, String, String)> = mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some((
                pre.get(4)?.to_string(),
                post.first()?.to_string(),
                post.get(2)?.to_string(),
                pre.get(3)?.to_string(),
            ))
        })
        .filter(|(_, fstype, _, _)| fstype == "cgroup" || fstype == "cgroup2")
        .collect();
    let mut out = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let found = mounts.iter().find(|(_, fstype, opts, _)| {
            if ctrls.is_empty() {
                fstype == "cgroup2"
            } else {
                fstype == "cgroup" && ctrls.split(',').all(|c| opts.split(',').any(|o| o == c))
            }
        });
        if let Some((mp, _, _, root)) = found {
            let rel = path
                .strip_prefix(root.as_str())
                .unwrap_or(path)
                .trim_start_matches('/');
            out.push(Path::new(mp).join(rel));
        }
    }
    out
}
