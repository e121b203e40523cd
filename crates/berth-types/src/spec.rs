//! `ContainerSpec`: the one normalized description of a container that CLI flags, Docker
//! API bodies, compose services and Kubernetes YAML all become (validated once).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How the container is networked: Docker's `HostConfig.NetworkMode`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum NetworkMode {
    /// Its own network namespace with only loopback (Docker's `none`).
    None,
    /// The host's network namespace.
    Host,
    /// The default `bridge` network (Docker's `default`, what `run` uses without
    /// `--network`).
    #[default]
    Bridge,
    /// A user-defined network, by name or id.
    Named(String),
    /// Another container's network namespace (`container:<name|id>`).
    Container(String),
}

impl NetworkMode {
    /// Parses Docker's `HostConfig.NetworkMode` / `--network`.
    pub fn parse(s: &str) -> Result<NetworkMode, SpecError> {
        match s {
            "" | "default" | "bridge" => Ok(NetworkMode::Bridge),
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            other => match other.strip_prefix("container:") {
                Some("") => Err(SpecError::Network(other.to_owned())),
                Some(c) => Ok(NetworkMode::Container(c.to_owned())),
                None if other.contains(':') => Err(SpecError::Network(other.to_owned())),
                None => Ok(NetworkMode::Named(other.to_owned())),
            },
        }
    }

    /// Docker's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
            NetworkMode::Bridge => "bridge",
            NetworkMode::Named(n) => n,
            NetworkMode::Container(_) => "container",
        }
    }

    /// The network a container in this mode joins at create (bridge or a named one).
    pub fn network_name(&self) -> Option<&str> {
        match self {
            NetworkMode::Bridge => Some("bridge"),
            NetworkMode::Named(n) => Some(n),
            _ => None,
        }
    }

    /// Whether the container gets a network namespace the engine makes and plumbs
    /// (bridge, named, or another container's).
    pub fn is_managed(&self) -> bool {
        matches!(
            self,
            NetworkMode::Bridge | NetworkMode::Named(_) | NetworkMode::Container(_)
        )
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetworkMode::Container(c) => write!(f, "container:{c}"),
            other => f.write_str(other.as_str()),
        }
    }
}

impl From<NetworkMode> for String {
    fn from(m: NetworkMode) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for NetworkMode {
    type Error = SpecError;
    fn try_from(s: String) -> Result<NetworkMode, SpecError> {
        NetworkMode::parse(&s)
    }
}

/// Resource limits (zero means unlimited).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory: i64,
    /// Maximum number of pids (0 or negative: unlimited).
    pub pids_limit: i64,
    /// CPU quota in units of 1e-9 CPUs (Docker's `NanoCpus`).
    pub nano_cpus: i64,
}

/// A container as the user asked for it (before the image's defaults are applied).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The image as typed (`busybox`, an id or a prefix).
    pub image: String,
    /// `Cmd`; empty means the image's.
    pub cmd: Vec<String>,
    /// `Entrypoint`; `None` means the image's, `Some(vec![])` clears it.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=value` entries, added to (and overriding) the image's.
    pub env: Vec<String>,
    /// Working directory; empty means the image's, then `/`.
    pub workdir: String,
    /// `user[:group]` (names or numbers); empty means the image's, then root.
    pub user: String,
    /// Hostname; empty means the short id.
    pub hostname: String,
    /// Allocate a pty.
    pub tty: bool,
    /// Keep stdin open.
    pub open_stdin: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The name (without the leading `/`); empty means a generated one.
    pub name: String,
    /// Remove the container when it exits.
    pub auto_remove: bool,
    /// Networking.
    pub network: NetworkMode,
    /// Limits.
    pub resources: Resources,
    /// Capabilities to add (`NET_ADMIN` or `CAP_NET_ADMIN`, `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities to drop.
    pub cap_drop: Vec<String>,
    /// Every capability, no masked paths, writable /sys.
    pub privileged: bool,
    /// Read-only root filesystem.
    pub read_only: bool,
    /// `--add-host name:ip` entries for /etc/hosts (`HostConfig.ExtraHosts`).
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// `--dns` nameservers (`HostConfig.Dns`); empty means the host's.
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--dns-search` domains (`HostConfig.DnsSearch`); empty means the host's.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// `--dns-option` options (`HostConfig.DnsOptions`); empty means the host's.
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// Lifecycle and confinement options (restart, health, init, ulimits, …).
    #[serde(default)]
    pub run: crate::run::RunOptions,
    /// Volumes, binds, tmpfs, `--volumes-from` (`crate::mounts`).
    #[serde(default)]
    pub storage: crate::mounts::StorageSpec,
    /// Stdin/attach/console size options (`crate::interactive`).
    #[serde(default)]
    pub interactive: crate::interactive::InteractiveSpec,
    /// Networks joined, ports, links (`crate::net`).
    #[serde(default)]
    pub net: crate::net::NetSpec,
}

/// Why a spec is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// No image was given.
    #[error("no image given")]
    NoImage,
    /// An environment entry is malformed.
    #[error("invalid environment variable {0:?}: the name is empty")]
    Env(String),
    /// The name does not match Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    Name(String),
    /// An unsupported network mode.
    #[error("invalid network mode {0:?}")]
    Network(String),
    /// A limit is out of range.
    #[error("invalid {what}: {value}")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// The value given.
        value: i64,
    },
    /// A capability name is unknown.
    #[error("unknown capability: {0:?}")]
    Capability(String),
    /// An `--add-host` entry is not `name:ip` (or asks for the unsupported `host-gateway`).
    #[error("invalid argument {entry:?} for \"--add-host\" flag: {why}")]
    ExtraHost {
        /// The entry as given.
        entry: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A `--dns` entry is not an IP address.
    #[error("{0} is not an ip address")]
    Dns(String),
    /// A lifecycle option is invalid.
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
}

/// Splits an `--add-host` entry (`name:ip` or `name=ip`; the ip may be IPv6) into
/// (name, ip), checking both.
pub fn parse_extra_host(entry: &str) -> Result<(String, std::net::IpAddr), SpecError> {
    let bad = |why| SpecError::ExtraHost {
        entry: entry.to_owned(),
        why,
    };
    let (name, ip) = match entry.split_once('=') {
        Some(p) => p,
        None => entry
            .split_once(':')
            .ok_or_else(|| bad("expected name:ip"))?,
    };
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(bad("invalid host name"));
    }
    if ip == "host-gateway" {
        return Err(bad("host-gateway is not supported yet"));
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = ip.parse().map_err(|_| bad("invalid IP address"))?;
    Ok((name.to_owned(), ip))
}

/// The minimum memory limit Docker accepts (6 MB).
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// Docker's container name rule.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b.len() >= 2
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `CAP_X`/`x` → `CAP_X` (`ALL` stays `ALL`).
pub fn normalize_cap(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up == "ALL" || up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

impl ContainerSpec {
    /// Checks the spec once; everything downstream may rely on it.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.image.is_empty() {
            return Err(SpecError::NoImage);
        }
        for e in &self.env {
            if e.is_empty() || e.starts_with('=') {
                return Err(SpecError::Env(e.clone()));
            }
        }
        if !self.name.is_empty() && !valid_name(self.name.trim_start_matches('/')) {
            return Err(SpecError::Name(self.name.clone()));
        }
        let r = &self.resources;
        if r.memory != 0 && r.memory < MIN_MEMORY {
            return Err(SpecError::Limit {
                what: "memory limit (minimum 6MB)",
                value: r.memory,
            });
        }
        if r.nano_cpus < 0 {
            return Err(SpecError::Limit {
                what: "nano cpus",
                value: r.nano_cpus,
            });
        }
        for c in self.cap_add.iter().chain(&self.cap_drop) {
            let n = normalize_cap(c);
            if n != "ALL" && !n[4..].bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                return Err(SpecError::Capability(c.clone()));
            }
        }
        for h in &self.extra_hosts {
            parse_extra_host(h)?;
        }
        for d in &self.dns {
            if d.parse::<std::net::IpAddr>().is_err() {
                return Err(SpecError::Dns(d.clone()));
            }
        }
        self.run.validate(self.auto_remove)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: "busybox".into(),
            ..Default::default()
        }
    }

    #[test]
    fn validation_names_what_is_wrong() {
        assert_eq!(spec().validate(), Ok(()));
        let mut s = spec();
        s.image.clear();
        assert_eq!(s.validate(), Err(SpecError::NoImage));
        let mut s = spec();
        s.name = "-bad".into();
        assert_eq!(s.validate(), Err(SpecError::Name("-bad".into())));
        let mut s = spec();
        s.name = "/good_name.1".into();
        assert_eq!(s.validate(), Ok(()));
        let mut s = spec();
        s.env = vec!["=x".into()];
        assert!(matches!(s.validate(), Err(SpecError::Env(_))));
        let mut s = spec();
        s.resources.memory = 1024;
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("memory limit")
        );
        let mut s = spec();
        s.cap_add = vec!["net-admin".into()];
        assert_eq!(s.validate(), Err(SpecError::Capability("net-admin".into())));
        let mut s = spec();
        s.extra_hosts = vec!["db:10.0.0.5".into(), "v6=::1".into()];
        s.dns = vec!["192.0.2.53".into()];
        assert_eq!(s.validate(), Ok(()));
        s.dns = vec!["not-an-ip".into()];
        assert_eq!(s.validate(), Err(SpecError::Dns("not-an-ip".into())));
    }

    #[test]
    fn extra_hosts_parse_like_docker() {
        let (n, ip) = parse_extra_host("db:10.0.0.5").unwrap();
        assert_eq!((n.as_str(), ip.to_string().as_str()), ("db", "10.0.0.5"));
        let (n, ip) = parse_extra_host("six:2001:db8::1").unwrap();
        assert_eq!(
            (n.as_str(), ip.to_string().as_str()),
            ("six", "2001:db8::1")
        );
        let (_, ip) = parse_extra_host("br=[::1]").unwrap();
        assert_eq!(ip.to_string(), "::1");
        let e = parse_extra_host("gw:host-gateway").unwrap_err();
        assert!(
            e.to_string().contains("host-gateway is not supported"),
            "{e}"
        );
        let e = parse_extra_host("nocolon").unwrap_err();
        assert!(e.to_string().contains("\"nocolon\""), "{e}");
        assert!(parse_extra_host("x:999.1.1.1").is_err());
    }

    #[test]
    fn network_modes_and_caps() {
        assert_eq!(NetworkMode::parse("host"), Ok(NetworkMode::Host));
        assert_eq!(NetworkMode::parse("default"), Ok(NetworkMode::Bridge));
        assert_eq!(NetworkMode::parse("none"), Ok(NetworkMode::None));
        assert_eq!(
            NetworkMode::parse("mynet"),
            Ok(NetworkMode::Named("mynet".into()))
        );
        assert_eq!(
            NetworkMode::parse("container:db"),
            Ok(NetworkMode::Container("db".into()))
        );
        assert!(NetworkMode::parse("container:").is_err());
        assert!(NetworkMode::parse("bad:mode").is_err());
        let json = serde_json::to_string(&NetworkMode::Container("db".into())).unwrap();
        assert_eq!(json, "\"container:db\"");
        let back: NetworkMode = serde_json::from_str("\"none\"").unwrap();
        assert_eq!(back, NetworkMode::None);
        assert_eq!(normalize_cap("net_admin"), "CAP_NET_ADMIN");
        assert_eq!(normalize_cap("CAP_KILL"), "CAP_KILL");
        assert_eq!(normalize_cap("all"), "ALL");
    }
}
