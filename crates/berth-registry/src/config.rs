use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Where berth's configuration lives unless `BERTH_CONFIG` (read by the caller) says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/berth/berth.toml";
/// Docker-style per-registry TLS material: `<dir>/<host:port>/{ca.crt,client.cert,client.key}`.
pub const DEFAULT_CERTS_DIR: &str = "/etc/berth/certs.d";

/// The `[registries]` table of `berth.toml`:
///
/// ```toml
/// [registries]
/// insecure = ["127.0.0.1:5000"]
/// certs_dir = "/etc/berth/certs.d"      # optional
/// [registries.mirrors]
/// "docker.io" = ["http://127.0.0.1:5000"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Hosts (`host[:port]`) listed as insecure: HTTPS without certificate verification is
    /// tried first, then plain HTTP. Loopback hosts (`localhost`, `127.0.0.0/8`, `::1`) are
    /// insecure without being listed, as in Docker.
    pub insecure: Vec<String>,
    /// Registry host → mirror endpoints, tried in order before the origin on pulls.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// The certs.d directory.
    pub certs_dir: PathBuf,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            mirrors: BTreeMap::new(),
            certs_dir: PathBuf::from(DEFAULT_CERTS_DIR),
        }
    }
}

#[derive(Deserialize, Default)]
struct File {
    #[serde(default)]
    registries: Option<Section>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default)]
    insecure: Vec<String>,
    #[serde(default)]
    mirrors: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    certs_dir: Option<PathBuf>,
}

impl RegistryConfig {
    /// Loads the `[registries]` table from a berth.toml at `path` (other tables are left to
    /// their owners). A missing file is an error; see [`RegistryConfig::load_or_default`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Like [`RegistryConfig::load`], but a missing file gives the defaults.
    pub fn load_or_default(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(Error::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses berth.toml text; `path` only names the source in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let file: File = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: e.to_string().trim().to_owned(),
        })?;
        let section = file.registries.unwrap_or_default();
        let cfg = Self {
            insecure: section.insecure,
            mirrors: section.mirrors,
            certs_dir: section
                .certs_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CERTS_DIR)),
        };
        for (host, list) in &cfg.mirrors {
            for m in list {
                crate::client::Endpoint::mirror(m, &cfg).map_err(|e| Error::Config {
                    path: path.to_owned(),
                    message: format!("mirror {m:?} of {host:?}: {e}"),
                })?;
            }
        }
        Ok(cfg)
    }

    /// Whether `host` (`host[:port]`) is insecure: listed, or a loopback host (Docker's
    /// default insecure range `127.0.0.0/8`, plus `::1` and `localhost`). Insecure hosts are
    /// tried over HTTPS without certificate verification first, then over plain HTTP.
    pub fn is_insecure(&self, host: &str) -> bool {
        self.insecure.iter().any(|h| h == host) || is_loopback_host(host)
    }

    /// The mirrors configured for registry `host` (the reference's domain, e.g. `docker.io`).
    pub fn mirrors_for(&self, host: &str) -> &[String] {
        self.mirrors.get(host).map_or(&[], Vec::as_slice)
    }
}

/// Whether `host[:port]` names a loopback address: `localhost`, an IPv4 address in
/// `127.0.0.0/8`, or `::1` (bracketed when a port follows). Names are not resolved.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, _)) => inside,
            None => return false,
        }
    } else if host.matches(':').count() > 1 {
        host // a bare IPv6 address without port
    } else {
        host.split(':').next().unwrap_or(host)
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_table_and_ignores_other_tables() {
        let text = r#"
[network]
default = "bridge"
[registries]
insecure = ["127.0.0.1:5000"]
[registries.mirrors]
"docker.io" = ["http://127.0.0.1:5000"]
"gcr.io" = ["http://127.0.0.1:5000", "https://mirror.example:443"]
"#;
        let cfg = RegistryConfig::from_toml(text, Path::new("t.toml")).unwrap();
        assert_eq!(cfg.insecure, ["127.0.0.1:5000"]);
        assert!(cfg.is_insecure("127.0.0.1:5000"));
        assert!(!cfg.is_insecure("10.0.0.1:5001"));
        assert!(!cfg.is_insecure("registry.example:5000"));
        assert_eq!(cfg.mirrors_for("docker.io"), ["http://127.0.0.1:5000"]);
        assert_eq!(cfg.mirrors_for("gcr.io").len(), 2);
        assert!(cfg.mirrors_for("quay.io").is_empty());
        assert_eq!(cfg.certs_dir, PathBuf::from(DEFAULT_CERTS_DIR));
    }

    #[test]
    fn loopback_hosts_are_insecure_by_default() {
        let cfg = RegistryConfig::default();
        for h in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost",
            "LOCALHOST:443",
            "[::1]:5000",
            "::1",
        ] {
            assert!(cfg.is_insecure(h), "{h}");
        }
        for h in [
            "128.0.0.1:5000",
            "docker.io",
            "registry-1.docker.io",
            "10.0.0.1",
            "[::2]:5000",
            "localhost.example",
            "[::1",
        ] {
            assert!(!cfg.is_insecure(h), "{h}");
        }
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let e =
            RegistryConfig::from_toml("[registries]\ninsecur = []\n", Path::new("/x/berth.toml"))
                .unwrap_err()
                .to_string();
        assert!(e.contains("/x/berth.toml") && e.contains("insecur"), "{e}");
        let e = RegistryConfig::from_toml(
            "[registries.mirrors]\n\"docker.io\" = [\"ftp://x\"]\n",
            Path::new("b.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ftp://x"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        assert!(matches!(
            RegistryConfig::load(&missing),
            Err(Error::Io { .. })
        ));
        assert_eq!(
            RegistryConfig::load_or_default(&missing).unwrap(),
            RegistryConfig::default()
        );
        std::fs::write(&missing, "[registries]\ncerts_dir = \"/tmp/c\"\n").unwrap();
        assert_eq!(
            RegistryConfig::load(&missing).unwrap().certs_dir,
            PathBuf::from("/tmp/c")
        );
    }
}
