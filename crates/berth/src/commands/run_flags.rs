//! The lifecycle and confinement flags of `run`/`create` (`LifecycleFlags`, flattened into
//! `CreateArgs`): what was typed, and `apply`, which puts them into Docker's create body
//! the way the docker CLI does. `--cidfile` is the CLI's alone.

use std::path::PathBuf;

use berth_types::run::{DeviceMapping, RestartPolicy, Ulimit};
use clap::Args;
use serde_json::{Value, json};

use crate::Exit;
use crate::commands::containers::ram_in_bytes;

// Flags for restart policy, health check, init, stop, ulimits, security, namespaces,
// cgroup resources, logging, groups and devices.
#[derive(Debug, Args, Clone, Default)]
pub struct LifecycleFlags {
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long = "init")]
    pub init: bool,
    /// Restart policy to apply when a container exits
    #[arg(long = "restart", value_name = "POLICY")]
    pub restart: Option<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd", value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval", value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", value_name = "N")]
    pub health_retries: Option<i64>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout", value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period", value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-interval", value_name = "DURATION")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Signal to stop the container
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(
        long = "stop-timeout",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    pub stop_timeout: Option<i64>,
    /// Write the container ID to the file
    #[arg(long = "cidfile", value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    /// Ulimit options
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_name = "BYTES")]
    pub shm_size: Option<String>,
    /// Security Options
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// PID namespace to use
    #[arg(long = "pid")]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long = "ipc")]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long = "uts")]
    pub uts: Option<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Add a host device to the container
    #[arg(long = "device")]
    pub device: Vec<String>,
    /// Container NIS domain name
    #[arg(long = "domainname")]
    pub domainname: Option<String>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Sysctl options
    #[arg(long = "sysctl", value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Optional parent cgroup for the container (under the daemon's own cgroup)
    #[arg(long = "cgroup-parent", value_name = "PATH")]
    pub cgroup_parent: Option<String>,
    /// Skip image verification (Docker's default; accepted for its scripts)
    #[arg(long = "disable-content-trust", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", hide = true)]
    pub disable_content_trust: Option<bool>,
}

/// Go's `time.ParseDuration` (`1h2m3.5s`, `300ms`, `10us`), in nanoseconds.
pub fn go_duration(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow::anyhow!("time: invalid duration \"{s}\"");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| anyhow::anyhow!("time: missing unit in duration \"{s}\""))?;
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            u => anyhow::bail!("time: unknown unit \"{u}\" in duration \"{s}\""),
        };
        total += n * mult;
        rest = &rest[u_end..];
    }
    Ok(if neg { -(total as i64) } else { total as i64 })
}

fn opt_duration(flag: &str, v: &Option<String>) -> anyhow::Result<i64> {
    match v {
        None => Ok(0),
        Some(s) => {
            let d = go_duration(s).map_err(|e| {
                anyhow::anyhow!("invalid argument {s:?} for \"--{flag}\" flag: {e}")
            })?;
            if d < 0 {
                anyhow::bail!("--{flag} cannot be negative");
            }
            Ok(d)
        }
    }
}

impl LifecycleFlags {
    /// Puts the flags into Docker's create body (`Config` keys at the top, `HostConfig`);
    /// `rm`: `--rm` was given. A bad value is the CLI's error: printed, exit 125.
    pub fn apply(&self, body: &mut Value, rm: bool) -> anyhow::Result<()> {
        self.apply_inner(body, rm).map_err(|e| {
            if e.downcast_ref::<Exit>().is_none() {
                eprintln!("berth: {e}");
            }
            anyhow::Error::from(Exit(125))
        })
    }

    fn apply_inner(&self, body: &mut Value, rm: bool) -> anyhow::Result<()> {
        if rm && self.restart.as_deref().is_some_and(|r| r != "no") {
            anyhow::bail!("Conflicting options: --restart and --rm");
        }
        let h = &mut body["HostConfig"];
        if self.init {
            h["Init"] = json!(true);
        }
        if let Some(r) = &self.restart {
            let p = RestartPolicy::parse(r)?;
            h["RestartPolicy"] =
                json!({"Name": p.name.as_str(), "MaximumRetryCount": p.max_retries});
        }
        if !self.ulimit.is_empty() {
            let list = self
                .ulimit
                .iter()
                .map(|u| {
                    Ulimit::parse(u)
                        .map(|u| json!({"Name": u.name, "Soft": u.soft, "Hard": u.hard}))
                })
                .collect::<Result<Vec<_>, _>>()?;
            h["Ulimits"] = json!(list);
        }
        if let Some(s) = &self.shm_size {
            h["ShmSize"] = json!(ram_in_bytes(s)?);
        }
        if !self.security_opt.is_empty() {
            let mut opts = Vec::new();
            for o in &self.security_opt {
                // as the docker CLI: seccomp=<file> is sent as the file's contents
                match o.split_once('=').or_else(|| o.split_once(':')) {
                    Some(("seccomp", f)) if !["unconfined", "builtin", "default"].contains(&f) => {
                        let text = std::fs::read_to_string(f).map_err(|e| {
                            anyhow::anyhow!("opening seccomp profile ({f}) failed: {e}")
                        })?;
                        let v: Value = serde_json::from_str(&text).map_err(|e| {
                            anyhow::anyhow!("compacting json for seccomp profile ({f}) failed: {e}")
                        })?;
                        opts.push(format!("seccomp={}", serde_json::to_string(&v)?));
                    }
                    _ => opts.push(o.clone()),
                }
            }
            h["SecurityOpt"] = json!(opts);
        }
        if let Some(m) = &self.memory_swap {
            h["MemorySwap"] = json!(if m == "-1" { -1 } else { ram_in_bytes(m)? });
        }
        if let Some(c) = self.cpu_shares {
            h["CpuShares"] = json!(c);
        }
        if let Some(c) = &self.cpuset_cpus {
            h["CpusetCpus"] = json!(c);
        }
        if let Some(c) = &self.cpuset_mems {
            h["CpusetMems"] = json!(c);
        }
        if let Some(q) = self.cpu_quota {
            h["CpuQuota"] = json!(q);
        }
        if let Some(p) = self.cpu_period {
            h["CpuPeriod"] = json!(p);
        }
        for (key, v) in [
            ("PidMode", &self.pid),
            ("IpcMode", &self.ipc),
            ("UTSMode", &self.uts),
        ] {
            if let Some(v) = v {
                h[key] = json!(v);
            }
        }
        if self.log_driver.is_some() || !self.log_opt.is_empty() {
            let mut cfg = serde_json::Map::new();
            for o in &self.log_opt {
                let (k, v) = o.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!("invalid key value pair format in log-opt {o:?}")
                })?;
                cfg.insert(k.to_owned(), json!(v));
            }
            h["LogConfig"] =
                json!({"Type": self.log_driver.clone().unwrap_or_default(), "Config": cfg});
        }
        if !self.group_add.is_empty() {
            h["GroupAdd"] = json!(self.group_add);
        }
        if !self.device.is_empty() {
            let list = self
                .device
                .iter()
                .map(|d| {
                    DeviceMapping::parse(d).map(|d| {
                        json!({"PathOnHost": d.path_on_host, "PathInContainer": d.path_in_container,
                               "CgroupPermissions": d.cgroup_permissions})
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            h["Devices"] = json!(list);
        }
        if self.oom_kill_disable {
            h["OomKillDisable"] = json!(true);
        }
        if let Some(p) = &self.cgroup_parent {
            h["CgroupParent"] = json!(p);
        }
        if let Some(adj) = self.oom_score_adj {
            h["OomScoreAdj"] = json!(adj);
        }
        if let Some(m) = &self.memory_reservation {
            h["MemoryReservation"] = json!(ram_in_bytes(m)?);
        }
        if !self.sysctl.is_empty() {
            // docker's opts.ValidateSysctl: KEY=VALUE, a namespaced key
            let mut map = serde_json::Map::new();
            for kv in &self.sysctl {
                let Some((k, v)) = kv.split_once('=') else {
                    anyhow::bail!(
                        "invalid argument {kv:?} for \"--sysctl\" flag: sysctl '{kv}' is not allowed"
                    );
                };
                berth_types::run::check_sysctl(k).map_err(|e| {
                    anyhow::anyhow!("invalid argument {kv:?} for \"--sysctl\" flag: {e}")
                })?;
                map.insert(k.to_owned(), json!(v));
            }
            h["Sysctls"] = Value::Object(map);
        }
        if let Some(s) = &self.stop_signal {
            body["StopSignal"] = json!(s);
        }
        if let Some(t) = self.stop_timeout {
            body["StopTimeout"] = json!(t);
        }
        if let Some(d) = &self.domainname {
            body["Domainname"] = json!(d);
        }
        self.apply_health(body)
    }

    fn apply_health(&self, body: &mut Value) -> anyhow::Result<()> {
        let any = self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_retries.is_some()
            || self.health_timeout.is_some()
            || self.health_start_period.is_some()
            || self.health_start_interval.is_some();
        if self.no_healthcheck {
            if any {
                anyhow::bail!("--no-healthcheck conflicts with --health-* options");
            }
            body["Healthcheck"] = json!({"Test": ["NONE"]});
            return Ok(());
        }
        if !any {
            return Ok(());
        }
        let test = match &self.health_cmd {
            Some(c) => json!(["CMD-SHELL", c]),
            None => json!([]),
        };
        let retries = self.health_retries.unwrap_or(0);
        if retries < 0 {
            anyhow::bail!("--health-retries cannot be negative");
        }
        body["Healthcheck"] = json!({
            "Test": test,
            "Interval": opt_duration("health-interval", &self.health_interval)?,
            "Timeout": opt_duration("health-timeout", &self.health_timeout)?,
            "StartPeriod": opt_duration("health-start-period", &self.health_start_period)?,
            "StartInterval": opt_duration("health-start-interval", &self.health_start_interval)?,
            "Retries": retries,
        });
        Ok(())
    }

    /// Before create: refuse an existing `--cidfile` (as Docker does).
    pub fn check_cidfile(&self) -> anyhow::Result<()> {
        if let Some(p) = &self.cidfile
            && p.exists()
        {
            eprintln!(
                "berth: container ID file found, make sure the other container isn't running or delete {}",
                p.display()
            );
            return Err(Exit(125).into());
        }
        Ok(())
    }

    /// After create: write the id to `--cidfile`.
    pub fn write_cidfile(&self, id: &str) -> anyhow::Result<()> {
        if let Some(p) = &self.cidfile {
            use std::io::Write as _;
            let mut f = std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(p)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "failed to create the container ID file {}: {e}",
                        p.display()
                    )
                })?;
            f.write_all(id.as_bytes()).map_err(|e| {
                anyhow::anyhow!("failed to write the container ID to {}: {e}", p.display())
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct T {
        #[command(flatten)]
        f: LifecycleFlags,
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(go_duration("250ms").unwrap(), 250_000_000);
        assert_eq!(go_duration("1.5h").unwrap(), 5_400_000_000_000);
        assert_eq!(go_duration("0").unwrap(), 0);
        assert!(go_duration("10").is_err());
        assert!(go_duration("3x").is_err());
    }

    #[test]
    fn flags_become_docker_body_fields() {
        let t = T::try_parse_from([
            "x",
            "--init",
            "--restart",
            "on-failure:2",
            "--ulimit",
            "nofile=100:200",
            "--shm-size",
            "128m",
            "--security-opt",
            "no-new-privileges",
            "--memory-swap",
            "-1",
            "-c",
            "512",
            "--cpuset-cpus",
            "0",
            "--cpu-quota",
            "50000",
            "--cpu-period",
            "100000",
            "--pid",
            "host",
            "--log-driver",
            "none",
            "--log-opt",
            "max-size=1m",
            "--group-add",
            "10",
            "--device",
            "/dev/null:/dev/xnull:rw",
            "--domainname",
            "example.org",
            "--stop-signal",
            "SIGUSR1",
            "--stop-timeout",
            "3",
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
            "--health-retries",
            "2",
        ])
        .unwrap();
        let mut b = json!({"HostConfig": {}});
        t.f.apply(&mut b, false).unwrap();
        let h = &b["HostConfig"];
        assert_eq!(h["Init"], true);
        assert_eq!(
            h["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 2})
        );
        assert_eq!(
            h["Ulimits"],
            json!([{"Name": "nofile", "Soft": 100, "Hard": 200}])
        );
        assert_eq!(h["ShmSize"], 128 << 20);
        assert_eq!(h["SecurityOpt"], json!(["no-new-privileges"]));
        assert_eq!(h["MemorySwap"], -1);
        assert_eq!(h["CpuShares"], 512);
        assert_eq!(h["PidMode"], "host");
        assert_eq!(
            h["LogConfig"],
            json!({"Type": "none", "Config": {"max-size": "1m"}})
        );
        assert_eq!(h["Devices"][0]["PathInContainer"], "/dev/xnull");
        assert_eq!(b["Domainname"], "example.org");
        assert_eq!(b["StopSignal"], "SIGUSR1");
        assert_eq!(b["StopTimeout"], 3);
        assert_eq!(
            b["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000i64, "Timeout": 0,
                   "StartPeriod": 0, "StartInterval": 0, "Retries": 2})
        );
        let t = T::try_parse_from(["x", "--no-healthcheck"]).unwrap();
        let mut b = json!({"HostConfig": {}});
        t.f.apply(&mut b, false).unwrap();
        assert_eq!(b["Healthcheck"], json!({"Test": ["NONE"]}));
        let t = T::try_parse_from(["x", "--restart", "bogus"]).unwrap();
        assert!(t.f.apply(&mut json!({"HostConfig": {}}), false).is_err());
        let t = T::try_parse_from(["x", "--restart", "always"]).unwrap();
        assert!(t.f.apply(&mut json!({"HostConfig": {}}), true).is_err());
    }
}
