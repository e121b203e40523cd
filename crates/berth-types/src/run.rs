//! `RunOptions`: the part of a [`crate::spec::ContainerSpec`] that shapes a container's
//! lifecycle and confinement beyond the basics — restart policy, health check, `--init`,
//! stop signal/timeout, ulimits, /dev/shm size, security options, host namespaces, extra
//! cgroup resources, log driver, domain name, supplementary groups and devices.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Docker's restart policy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartName {
    /// Never restart (`no`, or empty).
    #[default]
    No,
    /// Restart when the exit code is not 0, at most `max_retries` times (0 = no limit).
    OnFailure,
    /// Always restart, also when the daemon starts again.
    Always,
    /// As `always`, except after an explicit stop.
    UnlessStopped,
}

impl RestartName {
    /// Docker's word.
    pub fn as_str(&self) -> &'static str {
        match self {
            RestartName::No => "no",
            RestartName::OnFailure => "on-failure",
            RestartName::Always => "always",
            RestartName::UnlessStopped => "unless-stopped",
        }
    }
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// Which policy.
    pub name: RestartName,
    /// For `on-failure`: the retry limit (0 = unlimited).
    pub max_retries: i64,
}

impl RestartPolicy {
    /// Parses the API's (name, count) pair.
    pub fn from_api(name: &str, count: i64) -> Result<RestartPolicy, RunError> {
        let name = match name {
            "" | "no" => RestartName::No,
            "on-failure" => RestartName::OnFailure,
            "always" => RestartName::Always,
            "unless-stopped" => RestartName::UnlessStopped,
            other => return Err(RunError::RestartPolicy(other.to_owned())),
        };
        if count < 0 {
            return Err(RunError::RestartCount(count));
        }
        if count > 0 && name != RestartName::OnFailure {
            return Err(RunError::RestartCountWithout(name.as_str()));
        }
        Ok(RestartPolicy {
            name,
            max_retries: count,
        })
    }

    /// Parses the CLI's `--restart no|on-failure[:N]|always|unless-stopped`.
    pub fn parse(s: &str) -> Result<RestartPolicy, RunError> {
        match s.split_once(':') {
            Some((n, c)) => {
                let count = c
                    .parse::<i64>()
                    .map_err(|_| RunError::RestartPolicy(s.to_owned()))?;
                RestartPolicy::from_api(n, count)
            }
            None => RestartPolicy::from_api(s, 0),
        }
    }

    /// Whether any restarting happens at all.
    pub fn is_none(&self) -> bool {
        self.name == RestartName::No
    }
}

/// A health check (`Config.Healthcheck`; durations in nanoseconds, 0 = Docker's default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args…]`, `["CMD-SHELL", "cmd"]`; empty = inherit the image's.
    pub test: Vec<String>,
    /// Time between checks (default 30 s).
    pub interval: i64,
    /// Time one check may take (default 30 s).
    pub timeout: i64,
    /// Grace period in which failures do not count (default 0).
    pub start_period: i64,
    /// Time between checks during the start period (default 5 s).
    pub start_interval: i64,
    /// Consecutive failures before unhealthy (default 3).
    pub retries: i64,
}

impl HealthConfig {
    /// Whether this disables the image's check.
    pub fn is_disabled(&self) -> bool {
        self.test.first().map(String::as_str) == Some("NONE")
    }
}

/// One `--ulimit name=soft[:hard]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// `nofile`, `nproc`, … (without `RLIMIT_`).
    pub name: String,
    /// Soft limit (-1 = unlimited).
    pub soft: i64,
    /// Hard limit (-1 = unlimited).
    pub hard: i64,
}

/// The rlimit names Docker accepts (go-units `ulimitNameMapping`).
pub const ULIMIT_NAMES: [&str; 16] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
    "as",
];

impl Ulimit {
    /// go-units `ParseUlimit`: `nofile=1024` or `nofile=1024:2048` (`-1` = unlimited).
    pub fn parse(s: &str) -> Result<Ulimit, RunError> {
        let bad = |why: &'static str| RunError::Ulimit {
            value: s.to_owned(),
            why,
        };
        let (name, limits) = s
            .split_once('=')
            .ok_or_else(|| bad("expected name=value"))?;
        if !ULIMIT_NAMES.contains(&name) {
            return Err(bad("unknown ulimit type"));
        }
        let (soft, hard) = match limits.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (limits, None),
        };
        let soft: i64 = soft.parse().map_err(|_| bad("invalid soft limit"))?;
        let hard: i64 = match hard {
            Some(h) => h.parse().map_err(|_| bad("invalid hard limit"))?,
            None => soft,
        };
        if hard != -1 && (soft > hard || soft == -1) {
            return Err(bad("soft limit must be less than or equal to hard limit"));
        }
        Ok(Ulimit {
            name: name.to_owned(),
            soft,
            hard,
        })
    }
}

/// One `--device /dev/x[:/dev/y[:rwm]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMapping {
    /// The host's device node.
    pub path_on_host: String,
    /// Where it appears in the container (default: the same path).
    pub path_in_container: String,
    /// `rwm` or a subset.
    pub cgroup_permissions: String,
}

impl DeviceMapping {
    /// docker CLI `parseDevice`.
    pub fn parse(s: &str) -> Result<DeviceMapping, RunError> {
        let parts: Vec<&str> = s.split(':').collect();
        let perms_ok = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
        let (host, ctr, perms) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, p] if perms_ok(p) => (*h, *h, *p),
            [h, c] => (*h, *c, "rwm"),
            [h, c, p] if perms_ok(p) => (*h, *c, *p),
            _ => return Err(RunError::Device(s.to_owned())),
        };
        if !host.starts_with('/') || !ctr.starts_with('/') {
            return Err(RunError::Device(s.to_owned()));
        }
        Ok(DeviceMapping {
            path_on_host: host.to_owned(),
            path_in_container: ctr.to_owned(),
            cgroup_permissions: perms.to_owned(),
        })
    }
}

/// A namespace the container may share with the host (`--pid/--ipc/--uts host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsMode {
    /// Its own (Docker's default; for ipc: `private`/`shareable`).
    #[default]
    Private,
    /// The host's.
    Host,
}

impl NsMode {
    /// Parses `--pid`/`--ipc`/`--uts` (`""`, `private`, `shareable`, `host`).
    pub fn parse(flag: &'static str, s: &str) -> Result<NsMode, RunError> {
        match s {
            "" | "private" | "shareable" => Ok(NsMode::Private),
            "host" => Ok(NsMode::Host),
            other => Err(RunError::NsMode {
                flag,
                value: other.to_owned(),
            }),
        }
    }

    /// Docker's word in `HostConfig` (empty for the default).
    pub fn as_str(&self, default: &'static str) -> &'static str {
        match self {
            NsMode::Private => default,
            NsMode::Host => "host",
        }
    }
}

/// Seccomp as `--security-opt seccomp=…` chose it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompChoice {
    /// Docker's default profile.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile (the JSON text; the docker CLI sends the file's contents).
    Profile(String),
}

/// The parsed `--security-opt` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    /// `no-new-privileges[=true]`.
    pub no_new_privileges: bool,
    /// `seccomp=…`.
    pub seccomp: SeccompChoice,
}

impl SecurityOpts {
    /// Parses Docker's `SecurityOpt` entries (`key=value` or `key:value`, as moby).
    pub fn parse(opts: &[String]) -> Result<SecurityOpts, RunError> {
        let mut out = SecurityOpts::default();
        for o in opts {
            let (k, v) = match o.split_once('=').or_else(|| o.split_once(':')) {
                Some((k, v)) => (k, Some(v)),
                None => (o.as_str(), None),
            };
            match (k, v) {
                ("no-new-privileges", None | Some("true")) => out.no_new_privileges = true,
                ("no-new-privileges", Some("false")) => out.no_new_privileges = false,
                ("seccomp", Some("unconfined")) => out.seccomp = SeccompChoice::Unconfined,
                ("seccomp", Some("builtin" | "default")) => out.seccomp = SeccompChoice::Default,
                ("seccomp", Some(p)) if p.trim_start().starts_with('{') => {
                    out.seccomp = SeccompChoice::Profile(p.to_owned())
                }
                ("label" | "apparmor", Some(_)) => {} // no LSM on this engine: accepted, as moby without one
                _ => return Err(RunError::SecurityOpt(o.clone())),
            }
        }
        Ok(out)
    }
}

/// Lifecycle and confinement options of a container (all default to Docker's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunOptions {
    /// `--restart`.
    pub restart: RestartPolicy,
    /// `--health-*` / `--no-healthcheck` (`None`: the image's).
    pub healthcheck: Option<HealthConfig>,
    /// `--init`.
    pub init: bool,
    /// `--stop-signal` (empty: the image's, then SIGTERM).
    pub stop_signal: String,
    /// `--stop-timeout` seconds (`None`: 10).
    pub stop_timeout: Option<i64>,
    /// `--ulimit`.
    pub ulimits: Vec<Ulimit>,
    /// `--shm-size` bytes (0: 64 MiB).
    pub shm_size: i64,
    /// `--security-opt` as given.
    pub security_opt: Vec<String>,
    /// `--pid`.
    pub pid_mode: NsMode,
    /// `--ipc`.
    pub ipc_mode: NsMode,
    /// `--uts`.
    pub uts_mode: NsMode,
    /// `--memory-swap` bytes (0: unset, -1: unlimited).
    pub memory_swap: i64,
    /// `--cpu-shares`.
    pub cpu_shares: i64,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: String,
    /// `--cpuset-mems`.
    pub cpuset_mems: String,
    /// `--cpu-quota` µs.
    pub cpu_quota: i64,
    /// `--cpu-period` µs.
    pub cpu_period: i64,
    /// `--log-driver` (empty: json-file).
    pub log_driver: String,
    /// `--log-opt`.
    pub log_opts: BTreeMap<String, String>,
    /// `--domainname`.
    pub domainname: String,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: bool,
    /// `--group-add` (names or gids).
    pub group_add: Vec<String>,
    /// `--device`.
    pub devices: Vec<DeviceMapping>,
    /// `--sysctl` (namespaced ones only, see [`check_sysctl`]).
    pub sysctls: BTreeMap<String, String>,
    /// `--oom-score-adj` (-1000…1000).
    pub oom_score_adj: i64,
    /// `--memory-reservation` bytes (0: none), the soft limit.
    pub memory_reservation: i64,
    /// `--cgroup-parent`: the container's cgroup is `<parent>/<id>` under the daemon's own
    /// cgroup (empty: `berth/<id>`).
    pub cgroup_parent: String,
}

/// The sysctls a container may set, in its own namespaces (Docker's `ValidateSysctl`): the
/// IPC ones, `fs.mqueue.*` and `net.*`; any other would change the host.
pub fn check_sysctl(key: &str) -> Result<(), RunError> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") || key.starts_with("net.") {
        Ok(())
    } else {
        Err(RunError::Sysctl(key.to_owned()))
    }
}

/// Whether `key` is an IPC namespace sysctl (refused with `--ipc host`).
pub fn is_ipc_sysctl(key: &str) -> bool {
    key.starts_with("kernel.") || key.starts_with("fs.mqueue.")
}

/// The stop timeout Docker uses when none is set.
pub const DEFAULT_STOP_TIMEOUT: i64 = 10;

impl RunOptions {
    /// The log driver's name (`json-file` by default).
    pub fn log_driver(&self) -> &str {
        if self.log_driver.is_empty() {
            "json-file"
        } else {
            &self.log_driver
        }
    }

    /// The directory of the container's cgroup under the daemon's own: `--cgroup-parent`
    /// without its outer slashes, else `berth`.
    pub fn cgroup_parent_dir(&self) -> &str {
        match self.cgroup_parent.trim_matches('/') {
            "" => "berth",
            p => p,
        }
    }

    /// The stop timeout in seconds.
    pub fn stop_timeout(&self) -> i64 {
        self.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT)
    }

    /// Checks what can be checked without I/O (`auto_remove`: `--rm` was given).
    pub fn validate(&self, auto_remove: bool) -> Result<(), RunError> {
        if auto_remove && !self.restart.is_none() {
            return Err(RunError::RestartWithAutoRemove);
        }
        SecurityOpts::parse(&self.security_opt)?;
        for k in self.sysctls.keys() {
            check_sysctl(k)?;
        }
        if !(-1000..=1000).contains(&self.oom_score_adj) {
            return Err(RunError::OomScoreAdj(self.oom_score_adj));
        }
        let parent = self.cgroup_parent.trim_matches('/');
        if parent
            .split('/')
            .any(|c| c == ".." || c == "." || (c.is_empty() && !parent.is_empty()))
            || parent.contains('\0')
        {
            return Err(RunError::CgroupParent(self.cgroup_parent.clone()));
        }
        if self.memory_reservation < 0 {
            return Err(RunError::Negative(
                "memory reservation",
                self.memory_reservation,
            ));
        }
        match self.log_driver() {
            "json-file" | "none" | "local" => {}
            other => return Err(RunError::LogDriver(other.to_owned())),
        }
        for k in self.log_opts.keys() {
            if ![
                "max-size", "max-file", "compress", "labels", "env", "tag", "mode",
            ]
            .contains(&k.as_str())
            {
                return Err(RunError::LogOpt {
                    key: k.clone(),
                    driver: self.log_driver().to_owned(),
                });
            }
        }
        if self.shm_size < 0 {
            return Err(RunError::Negative("shm size", self.shm_size));
        }
        if self.cpu_shares < 0 {
            return Err(RunError::Negative("cpu shares", self.cpu_shares));
        }
        if self.cpu_period != 0 && !(1000..=1_000_000).contains(&self.cpu_period) {
            return Err(RunError::CpuPeriod(self.cpu_period));
        }
        if self.cpu_quota != 0 && self.cpu_quota < 1000 && self.cpu_quota != -1 {
            return Err(RunError::CpuQuota(self.cpu_quota));
        }
        if !self.cpuset_cpus.is_empty() && !valid_cpuset(&self.cpuset_cpus) {
            return Err(RunError::Cpuset(self.cpuset_cpus.clone()));
        }
        if let Some(h) = &self.healthcheck {
            for (what, v) in [
                ("Interval", h.interval),
                ("Timeout", h.timeout),
                ("StartPeriod", h.start_period),
            ] {
                if v != 0 && v < 1_000_000 {
                    return Err(RunError::HealthDuration(what));
                }
            }
            if h.retries < 0 {
                return Err(RunError::Negative("health retries", h.retries));
            }
        }
        for u in &self.ulimits {
            if !ULIMIT_NAMES.contains(&u.name.as_str()) {
                return Err(RunError::Ulimit {
                    value: u.name.clone(),
                    why: "unknown ulimit type",
                });
            }
        }
        Ok(())
    }
}

/// `0-3,5` style lists.
pub fn valid_cpuset(s: &str) -> bool {
    s.split(',').all(|part| {
        let mut it = part.splitn(2, '-');
        let a = it.next().unwrap_or("");
        let ok = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        match it.next() {
            None => ok(a),
            Some(b) => ok(a) && ok(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok(),
        }
    })
}

/// Why run options are invalid (messages as Docker's where it has one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// An unknown restart policy.
    #[error(
        "invalid restart policy: unknown policy '{0}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
    )]
    RestartPolicy(String),
    /// A negative retry count.
    #[error("invalid restart policy: maximum retry count cannot be negative: {0}")]
    RestartCount(i64),
    /// A retry count with a policy other than on-failure.
    #[error(
        "invalid restart policy: maximum retry count can only be used with 'on-failure'; got {0}"
    )]
    RestartCountWithout(&'static str),
    /// `--rm` with a restart policy.
    #[error("conflicting options: cannot specify both --restart and --rm")]
    RestartWithAutoRemove,
    /// A bad `--ulimit`.
    #[error("invalid ulimit argument {value:?}: {why}")]
    Ulimit {
        /// As given.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A bad `--device`.
    #[error("invalid device specification: {0}")]
    Device(String),
    /// A `--cgroup-parent` that is not a plain path.
    #[error("invalid cgroup parent {0:?}: use a path of names (no \"..\", \".\" or empty parts)")]
    CgroupParent(String),
    /// `--oom-score-adj` out of range.
    #[error("Invalid value {0}, range for oom score adj is [-1000, 1000]")]
    OomScoreAdj(i64),
    /// A sysctl outside the container's namespaces.
    #[error("sysctl '{0}' is not allowed")]
    Sysctl(String),
    /// A bad `--pid/--ipc/--uts`.
    #[error("invalid {flag} mode: {value:?} (only \"host\" or the default are supported)")]
    NsMode {
        /// Which flag.
        flag: &'static str,
        /// As given.
        value: String,
    },
    /// An unknown `--security-opt`.
    #[error("Invalid --security-opt: {0:?}")]
    SecurityOpt(String),
    /// An unsupported log driver.
    #[error("logging driver {0:?} is not supported (json-file, local or none)")]
    LogDriver(String),
    /// An unknown log option.
    #[error("unknown log opt '{key}' for {driver} log driver")]
    LogOpt {
        /// The key.
        key: String,
        /// The driver.
        driver: String,
    },
    /// A negative value.
    #[error("invalid {0}: {1} (must not be negative)")]
    Negative(&'static str, i64),
    /// `--cpu-period` out of range.
    #[error(
        "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000): {0}"
    )]
    CpuPeriod(i64),
    /// `--cpu-quota` too small.
    #[error("CPU cfs quota can not be less than 1ms (i.e. 1000): {0}")]
    CpuQuota(i64),
    /// `--cpuset-cpus` malformed.
    #[error("invalid value {0} for cpuset cpus")]
    Cpuset(String),
    /// A health duration below 1 ms.
    #[error("{0} in Healthcheck cannot be less than 1ms")]
    HealthDuration(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_sysctls_pass() {
        for ok in [
            "net.ipv4.ip_forward",
            "net.core.somaxconn",
            "kernel.shmmax",
            "kernel.sem",
            "fs.mqueue.msg_max",
        ] {
            assert!(check_sysctl(ok).is_ok(), "{ok}");
        }
        for bad in [
            "kernel.core_pattern",
            "kernel.hostname",
            "vm.overcommit_memory",
            "fs.file-max",
            "net",
        ] {
            assert_eq!(
                check_sysctl(bad).unwrap_err().to_string(),
                format!("sysctl '{bad}' is not allowed")
            );
        }
        let o = RunOptions {
            sysctls: [("kernel.modprobe".to_owned(), "/x".to_owned())].into(),
            ..RunOptions::default()
        };
        assert!(o.validate(false).is_err());
    }

    #[test]
    fn restart_policies_parse_like_docker() {
        assert_eq!(
            RestartPolicy::parse("no").unwrap(),
            RestartPolicy::default()
        );
        let p = RestartPolicy::parse("on-failure:3").unwrap();
        assert_eq!((p.name, p.max_retries), (RestartName::OnFailure, 3));
        assert_eq!(
            RestartPolicy::parse("unless-stopped").unwrap().name,
            RestartName::UnlessStopped
        );
        assert!(
            RestartPolicy::parse("sometimes")
                .unwrap_err()
                .to_string()
                .contains("unknown policy 'sometimes'")
        );
        assert_eq!(
            RestartPolicy::parse("always:2").unwrap_err(),
            RunError::RestartCountWithout("always")
        );
        assert!(RestartPolicy::parse("on-failure:x").is_err());
    }

    #[test]
    fn ulimits_devices_and_modes() {
        let u = Ulimit::parse("nofile=100:200").unwrap();
        assert_eq!((u.soft, u.hard), (100, 200));
        assert_eq!(Ulimit::parse("nproc=7").unwrap().hard, 7);
        assert!(Ulimit::parse("nofile=300:200").is_err());
        assert!(
            Ulimit::parse("bogus=1")
                .unwrap_err()
                .to_string()
                .contains("unknown ulimit type")
        );
        let d = DeviceMapping::parse("/dev/null:/dev/xnull:r").unwrap();
        assert_eq!(d.path_in_container, "/dev/xnull");
        assert_eq!(d.cgroup_permissions, "r");
        assert_eq!(
            DeviceMapping::parse("/dev/zero:rw")
                .unwrap()
                .path_in_container,
            "/dev/zero"
        );
        assert!(DeviceMapping::parse("zero").is_err());
        assert_eq!(NsMode::parse("pid", "host").unwrap(), NsMode::Host);
        assert!(NsMode::parse("pid", "container:x").is_err());
    }

    #[test]
    fn security_opts_and_validation() {
        let s = SecurityOpts::parse(&["no-new-privileges".into(), "seccomp=unconfined".into()])
            .unwrap();
        assert!(s.no_new_privileges);
        assert_eq!(s.seccomp, SeccompChoice::Unconfined);
        let s = SecurityOpts::parse(&["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}".into()])
            .unwrap();
        assert!(matches!(s.seccomp, SeccompChoice::Profile(_)));
        assert!(SecurityOpts::parse(&["bogus".into()]).is_err());
        let mut o = RunOptions::default();
        assert_eq!(o.validate(true), Ok(()));
        o.restart = RestartPolicy::parse("always").unwrap();
        assert_eq!(o.validate(true), Err(RunError::RestartWithAutoRemove));
        o.restart = RestartPolicy::default();
        o.log_driver = "syslog".into();
        assert!(o.validate(false).is_err());
        o.log_driver = "none".into();
        o.cpu_period = 10;
        assert_eq!(o.validate(false), Err(RunError::CpuPeriod(10)));
        o.cpu_period = 0;
        o.cpuset_cpus = "0-1,3".into();
        assert_eq!(o.validate(false), Ok(()));
        o.cpuset_cpus = "a".into();
        assert!(o.validate(false).is_err());
        assert!(valid_cpuset("0"));
        assert!(!valid_cpuset("3-1"));
    }
}
