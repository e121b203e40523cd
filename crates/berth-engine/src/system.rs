//! `GET /version` and `GET /info`: real values read from this host and the store.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::Engine;

/// The highest Engine API version berthd speaks (Podman advertises the same).
pub const API_VERSION: &str = "1.44";
/// The lowest Engine API version berthd accepts (moby's minimum).
pub const MIN_API_VERSION: &str = "1.24";
/// berthd's version.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One component of `/version`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Component {
    /// `Engine`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// ApiVersion, MinAPIVersion, GitCommit, … .
    pub details: BTreeMap<String, String>,
}

/// `GET /version`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionInfo {
    /// Platform name.
    pub platform: BTreeMap<String, String>,
    /// Components.
    pub components: Vec<Component>,
    /// Engine version.
    pub version: String,
    /// Max API version.
    pub api_version: String,
    /// Min API version.
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    /// Source revision.
    pub git_commit: String,
    /// Compiler (Docker reports the Go version here).
    pub go_version: String,
    /// `linux`.
    pub os: String,
    /// GOARCH spelling.
    pub arch: String,
    /// uname release.
    pub kernel_version: String,
    /// Build time.
    pub build_time: String,
}

/// `GET /info`, the fields real clients read.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemInfo {
    /// Engine id (persistent).
    #[serde(rename = "ID")]
    pub id: String,
    /// Containers (none in this slice).
    pub containers: u64,
    /// Running containers.
    pub containers_running: u64,
    /// Paused containers.
    pub containers_paused: u64,
    /// Stopped containers.
    pub containers_stopped: u64,
    /// Images in the store.
    pub images: u64,
    /// Storage driver.
    pub driver: String,
    /// Storage driver status pairs.
    pub driver_status: Vec<[String; 2]>,
    /// Plugins by kind.
    pub plugins: BTreeMap<String, Vec<String>>,
    /// Memory limit support.
    pub memory_limit: bool,
    /// Swap limit support.
    pub swap_limit: bool,
    /// CPU CFS support.
    pub cpu_cfs_period: bool,
    /// CPU quota support.
    pub cpu_cfs_quota: bool,
    /// CPU shares support.
    #[serde(rename = "CPUShares")]
    pub cpu_shares: bool,
    /// Cpuset support.
    #[serde(rename = "CPUSet")]
    pub cpu_set: bool,
    /// Pids limit support.
    pub pids_limit: bool,
    /// IPv4 forwarding.
    #[serde(rename = "IPv4Forwarding")]
    pub ipv4_forwarding: bool,
    /// Debug mode.
    pub debug: bool,
    /// Open fds of the daemon.
    pub n_fd: u64,
    /// Goroutines (tokio has no count; threads of the daemon).
    pub n_goroutines: u64,
    /// RFC 3339 now.
    pub system_time: String,
    /// Logging driver.
    pub logging_driver: String,
    /// `cgroupfs`.
    pub cgroup_driver: String,
    /// `1` or `2`.
    pub cgroup_version: String,
    /// Event listeners.
    pub n_events_listener: u64,
    /// uname release.
    pub kernel_version: String,
    /// PRETTY_NAME of os-release.
    pub operating_system: String,
    /// VERSION_ID of os-release.
    pub o_s_version: String,
    /// `linux`.
    #[serde(rename = "OSType")]
    pub os_type: String,
    /// uname machine.
    pub architecture: String,
    /// Registry index.
    pub index_server_address: String,
    /// Registry settings.
    pub registry_config: serde_json::Value,
    /// CPUs.
    #[serde(rename = "NCPU")]
    pub ncpu: u64,
    /// Bytes of RAM.
    pub mem_total: u64,
    /// Hostname.
    pub name: String,
    /// Labels.
    pub labels: Vec<String>,
    /// Experimental.
    pub experimental_build: bool,
    /// Engine version.
    pub server_version: String,
    /// Runtimes.
    pub runtimes: BTreeMap<String, serde_json::Value>,
    /// Default runtime.
    pub default_runtime: String,
    /// Swarm (inactive).
    pub swarm: serde_json::Value,
    /// Live restore.
    pub live_restore_enabled: bool,
    /// Isolation.
    pub isolation: String,
    /// Init binary.
    pub init_binary: String,
    /// Security options.
    pub security_options: Vec<String>,
    /// Data root.
    pub docker_root_dir: String,
    /// Warnings.
    pub warnings: Vec<String>,
}

fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    (get("PRETTY_NAME"), get("VERSION_ID"))
}

fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// `2` when /sys/fs/cgroup is a cgroup2 mount (unified), else `1` (legacy or hybrid).
pub fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

fn count_dir(p: &str) -> u64 {
    std::fs::read_dir(p).map(|d| d.count() as u64).unwrap_or(0)
}

/// GOARCH spelling of this machine's architecture.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

impl Engine {
    /// `GET /version`.
    pub fn version(&self) -> VersionInfo {
        let uname = rustix::system::uname();
        let kernel = uname.release().to_string_lossy().into_owned();
        let mut details = BTreeMap::new();
        details.insert("ApiVersion".to_owned(), API_VERSION.to_owned());
        details.insert("MinAPIVersion".to_owned(), MIN_API_VERSION.to_owned());
        details.insert("GitCommit".to_owned(), "berth".to_owned());
        details.insert("Os".to_owned(), "linux".to_owned());
        details.insert("Arch".to_owned(), go_arch().to_owned());
        details.insert("KernelVersion".to_owned(), kernel.clone());
        let mut platform = BTreeMap::new();
        platform.insert("Name".to_owned(), format!("Berth Engine {ENGINE_VERSION}"));
        VersionInfo {
            platform,
            components: vec![Component {
                name: "Engine".into(),
                version: ENGINE_VERSION.into(),
                details,
            }],
            version: ENGINE_VERSION.into(),
            api_version: API_VERSION.into(),
            min_api_version: MIN_API_VERSION.into(),
            git_commit: "berth".into(),
            go_version: "rust".into(),
            os: "linux".into(),
            arch: go_arch().into(),
            kernel_version: kernel,
            build_time: String::new(),
        }
    }

    /// `GET /info`.
    pub fn info(&self) -> SystemInfo {
        let uname = rustix::system::uname();
        let (os, os_version) = os_release();
        let mut runtimes = BTreeMap::new();
        runtimes.insert(
            "berth".to_owned(),
            serde_json::json!({"path": "berth-shim"}),
        );
        let mut plugins = BTreeMap::new();
        plugins.insert("Volume".to_owned(), vec!["local".to_owned()]);
        plugins.insert(
            "Network".to_owned(),
            vec!["bridge".to_owned(), "host".to_owned(), "null".to_owned()],
        );
        plugins.insert("Log".to_owned(), vec!["json-file".to_owned()]);
        let registries = &self.config().registries;
        let cgv = cgroup_version();
        let mut warnings = Vec::new();
        if cgv == "1" {
            warnings.push("WARNING: cgroup v1 (hybrid) hierarchy in use".to_owned());
        }
        SystemInfo {
            id: self.id().to_owned(),
            containers: 0,
            containers_running: 0,
            containers_paused: 0,
            containers_stopped: 0,
            images: self.image_store().images().len() as u64,
            driver: "overlay2".into(),
            driver_status: vec![
                ["Backing Filesystem".into(), "extfs".into()],
                ["Supports d_type".into(), "true".into()],
            ],
            plugins,
            memory_limit: true,
            swap_limit: std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
                .exists()
                || cgv == "2",
            cpu_cfs_period: true,
            cpu_cfs_quota: true,
            cpu_shares: true,
            cpu_set: true,
            pids_limit: true,
            ipv4_forwarding: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .map(|s| s.trim() == "1")
                .unwrap_or(false),
            debug: false,
            n_fd: count_dir("/proc/self/fd"),
            n_goroutines: count_dir("/proc/self/task"),
            system_time: jiff::Timestamp::now().to_string(),
            logging_driver: "json-file".into(),
            cgroup_driver: "cgroupfs".into(),
            cgroup_version: cgv.into(),
            n_events_listener: self.events().listeners() as u64,
            kernel_version: uname.release().to_string_lossy().into_owned(),
            operating_system: os,
            o_s_version: os_version,
            os_type: "linux".into(),
            architecture: uname.machine().to_string_lossy().into_owned(),
            index_server_address: "https://index.docker.io/v1/".into(),
            registry_config: serde_json::json!({
                "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                "IndexConfigs": {},
                "Mirrors": registries.mirrors_for("docker.io"),
                "InsecureRegistries": registries.insecure,
            }),
            ncpu: std::thread::available_parallelism()
                .map(|n| n.get() as u64)
                .unwrap_or(1),
            mem_total: mem_total(),
            name: uname.nodename().to_string_lossy().into_owned(),
            labels: vec![],
            experimental_build: false,
            server_version: ENGINE_VERSION.into(),
            runtimes,
            default_runtime: "berth".into(),
            swarm: serde_json::json!({"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null}),
            live_restore_enabled: true,
            isolation: String::new(),
            init_binary: "berth-init".into(),
            security_options: vec!["name=seccomp,profile=builtin".into()],
            docker_root_dir: self.config().data_root.display().to_string(),
            warnings,
        }
    }
}
