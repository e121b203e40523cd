//! The container's /etc/hostname, /etc/hosts and /etc/resolv.conf, written as Docker
//! writes them (moby `daemon/container_operations_unix.go`, `libnetwork/etchosts`,
//! `libnetwork/resolvconf`) into the container directory and bind-mounted (rw, even
//! with a read-only rootfs) over the image's files.

use std::path::{Path, PathBuf};

use berth_types::spec::{ContainerSpec, NetworkMode, parse_extra_host};
use serde_json::{Value, json};

use super::ContainerError;

/// The lines Docker starts every container's /etc/hosts with (`etchosts.defaultContent`).
pub const DEFAULT_HOSTS: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
ff00::0\tip6-mcastprefix\n\
ff02::1\tip6-allnodes\n\
ff02::2\tip6-allrouters\n";

/// Docker's fallback nameservers when the host has only loopback ones.
pub const DEFAULT_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// The host files read for the container's copies.
#[derive(Debug, Clone)]
pub struct HostFiles {
    /// The host's resolv.conf (`/etc/resolv.conf`).
    pub resolv_conf: PathBuf,
    /// The host's hosts file (`/etc/hosts`), copied for `--network host`.
    pub hosts: PathBuf,
}

impl Default for HostFiles {
    fn default() -> Self {
        HostFiles {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            hosts: PathBuf::from("/etc/hosts"),
        }
    }
}

/// The paths of the three files in a container directory, as `inspect` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcPaths {
    /// `<dir>/hostname`.
    pub hostname: PathBuf,
    /// `<dir>/hosts`.
    pub hosts: PathBuf,
    /// `<dir>/resolv.conf`.
    pub resolv_conf: PathBuf,
}

impl EtcPaths {
    /// The paths below container directory `dir`.
    pub fn new(dir: &Path) -> EtcPaths {
        EtcPaths {
            hostname: dir.join("hostname"),
            hosts: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
        }
    }

    /// The OCI bind mounts over /etc/hostname, /etc/hosts, /etc/resolv.conf (rw).
    pub fn mounts(&self) -> Vec<Value> {
        [
            ("/etc/resolv.conf", &self.resolv_conf),
            ("/etc/hostname", &self.hostname),
            ("/etc/hosts", &self.hosts),
        ]
        .into_iter()
        .map(|(dest, src)| {
            json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]})
        })
        .collect()
    }
}

/// The container's hostname: the spec's, else the first 12 characters of the id.
pub fn hostname(id: &str, spec: &ContainerSpec) -> String {
    if spec.hostname.is_empty() {
        id.chars().take(12).collect()
    } else {
        spec.hostname.clone()
    }
}

/// /etc/hosts: Docker's default lines (or the host's file for `--network host`), then
/// one `ip\tname` line per `--add-host`. Without a network there is no container-IP line.
pub fn hosts(spec: &ContainerSpec, host: &HostFiles) -> Result<String, ContainerError> {
    let mut out = match spec.network {
        NetworkMode::Host => {
            let mut s = std::fs::read_to_string(&host.hosts)
                .map_err(ContainerError::io("read", &host.hosts))?;
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
            s
        }
        NetworkMode::None
        | NetworkMode::Bridge
        | NetworkMode::Named(_)
        | NetworkMode::Container(_) => DEFAULT_HOSTS.to_owned(),
    };
    for h in &spec.extra_hosts {
        let (name, ip) = parse_extra_host(h)?;
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    Ok(out)
}

fn is_loopback_nameserver(line: &str) -> bool {
    let mut f = line.split_whitespace();
    f.next() == Some("nameserver")
        && f.next()
            .and_then(|a| a.split('%').next()?.parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| ip.is_loopback())
}

fn keyword(line: &str) -> Option<&str> {
    line.split_whitespace().next()
}

/// /etc/resolv.conf from the host's text: loopback nameservers dropped (Docker's
/// defaults if none remain), then `--dns`, `--dns-search`, `--dns-option` replace the
/// nameserver, search and options lines. `--network host` keeps the host's text as is
/// unless one of those flags is given.
pub fn resolv_conf(spec: &ContainerSpec, host_text: &str) -> String {
    let overridden =
        !spec.dns.is_empty() || !spec.dns_search.is_empty() || !spec.dns_options.is_empty();
    if spec.network == NetworkMode::Host && !overridden {
        return host_text.to_owned();
    }
    let mut lines: Vec<String> = Vec::new();
    let mut servers: Vec<String> = Vec::new();
    let mut search: Option<String> = None;
    let mut options: Option<String> = None;
    for line in host_text.lines() {
        match keyword(line) {
            Some("nameserver") => {
                if spec.network == NetworkMode::Host || !is_loopback_nameserver(line) {
                    servers.push(line.trim().to_owned());
                }
            }
            Some("search") | Some("domain") => search = Some(line.trim().to_owned()),
            Some("options") => options = Some(line.trim().to_owned()),
            _ => lines.push(line.to_owned()),
        }
    }
    if !spec.dns.is_empty() {
        servers = spec.dns.iter().map(|d| format!("nameserver {d}")).collect();
    } else if servers.is_empty() {
        servers = DEFAULT_NAMESERVERS
            .iter()
            .map(|d| format!("nameserver {d}"))
            .collect();
    }
    if !spec.dns_search.is_empty() {
        search = Some(format!("search {}", spec.dns_search.join(" ")));
    }
    if !spec.dns_options.is_empty() {
        options = Some(format!("options {}", spec.dns_options.join(" ")));
    }
    let mut out = String::new();
    for l in lines.iter().filter(|l| !l.trim().is_empty()) {
        out.push_str(l);
        out.push('\n');
    }
    for l in servers.iter().chain(&search).chain(&options) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Writes the three files into container directory `dir`.
pub fn write(
    dir: &Path,
    id: &str,
    spec: &ContainerSpec,
    host: &HostFiles,
) -> Result<EtcPaths, ContainerError> {
    let paths = EtcPaths::new(dir);
    let host_resolv = match std::fs::read_to_string(&host.resolv_conf) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(ContainerError::io("read", &host.resolv_conf)(e)),
    };
    let files = [
        (&paths.hostname, format!("{}\n", hostname(id, spec))),
        (&paths.hosts, hosts(spec, host)?),
        (&paths.resolv_conf, resolv_conf(spec, &host_resolv)),
    ];
    for (p, text) in files {
        std::fs::write(p, text).map_err(ContainerError::io("write", p))?;
    }
    Ok(paths)
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

    const HOST: &str = "# comment\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.1\nsearch example.org\noptions edns0\n";

    #[test]
    fn resolv_conf_drops_loopback_and_applies_flags() {
        let out = resolv_conf(&spec(), HOST);
        assert_eq!(
            out,
            "# comment\nnameserver 192.0.2.1\nsearch example.org\noptions edns0\n"
        );
        let only_local = "nameserver 127.0.0.1\n";
        assert_eq!(
            resolv_conf(&spec(), only_local),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let mut s = spec();
        s.dns = vec!["192.0.2.53".into()];
        s.dns_search = vec!["a.test".into(), "b.test".into()];
        s.dns_options = vec!["ndots:2".into()];
        assert_eq!(
            resolv_conf(&s, HOST),
            "# comment\nnameserver 192.0.2.53\nsearch a.test b.test\noptions ndots:2\n"
        );
        let mut s = spec();
        s.network = NetworkMode::Host;
        assert_eq!(resolv_conf(&s, HOST), HOST);
    }

    #[test]
    fn hosts_has_docker_defaults_and_extra_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostFiles {
            resolv_conf: dir.path().join("resolv.conf"),
            hosts: dir.path().join("hosts"),
        };
        let mut s = spec();
        s.extra_hosts = vec!["db:10.0.0.5".into(), "six:2001:db8::1".into()];
        let h = hosts(&s, &host).unwrap();
        assert!(h.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost"));
        assert!(h.ends_with("10.0.0.5\tdb\n2001:db8::1\tsix\n"), "{h}");
        s.extra_hosts = vec!["gw:host-gateway".into()];
        assert!(
            hosts(&s, &host)
                .unwrap_err()
                .to_string()
                .contains("host-gateway")
        );
        // --network host copies the host's file; a missing one is named in the error
        s.extra_hosts.clear();
        s.network = NetworkMode::Host;
        let e = hosts(&s, &host).unwrap_err().to_string();
        assert!(e.contains("hosts"), "{e}");
        std::fs::write(&host.hosts, "127.0.0.1 myhost").unwrap();
        assert_eq!(hosts(&s, &host).unwrap(), "127.0.0.1 myhost\n");
    }

    #[test]
    fn write_puts_the_three_files_in_the_container_dir() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostFiles {
            resolv_conf: dir.path().join("host-resolv.conf"),
            hosts: dir.path().join("host-hosts"),
        };
        std::fs::write(&host.resolv_conf, HOST).unwrap();
        let mut s = spec();
        s.hostname = "box".into();
        let p = write(dir.path(), "0123456789abcdef", &s, &host).unwrap();
        assert_eq!(std::fs::read_to_string(&p.hostname).unwrap(), "box\n");
        assert_eq!(std::fs::read_to_string(&p.hosts).unwrap(), DEFAULT_HOSTS);
        assert!(
            std::fs::read_to_string(&p.resolv_conf)
                .unwrap()
                .contains("nameserver 192.0.2.1\n")
        );
        assert_eq!(hostname("0123456789abcdef", &spec()), "0123456789ab");
        let m = p.mounts();
        assert_eq!(m.len(), 3);
        assert_eq!(m[1]["destination"], "/etc/hostname");
        assert_eq!(m[1]["source"], json!(p.hostname));
    }
}
