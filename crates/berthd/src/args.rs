//! Command line (what was typed) and its resolution against the environment (what runs).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::bail;
use berth_engine::config::{DEFAULT_CONFIG_FILE, DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT};

/// berthd's flags.
#[derive(Debug, clap::Parser)]
#[command(name = "berthd", version, about = "The Berth daemon: serves the Docker Engine API")]
pub struct Args {
    /// Persistent state directory [env: BERTH_ROOT] [default: /var/lib/berth]
    #[arg(long = "data-root", value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Runtime state directory [env: BERTH_RUNROOT] [default: /run/berth]
    #[arg(long = "exec-root", value_name = "DIR")]
    pub exec_root: Option<PathBuf>,
    /// Socket to listen on, repeatable (unix:///path) [default: unix://<exec-root>/berth.sock]
    #[arg(short = 'H', long = "host", value_name = "ADDR")]
    pub hosts: Vec<String>,
    /// Configuration file [env: BERTH_CONFIG] [default: /etc/berth/berth.toml]
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Debug logging.
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,
}

/// Resolved settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `--data-root`.
    pub data_root: PathBuf,
    /// `--exec-root`.
    pub exec_root: PathBuf,
    /// Unix sockets to serve.
    pub hosts: Vec<PathBuf>,
    /// berth.toml.
    pub config_file: PathBuf,
    /// Debug logging.
    pub debug: bool,
}

/// Parses one `-H` value into a unix socket path; plain TCP is refused.
pub fn parse_host(h: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = h.strip_prefix("unix://") {
        if p.is_empty() {
            bail!("invalid host {h:?}: the unix socket path is empty");
        }
        return Ok(PathBuf::from(p));
    }
    if h.starts_with('/') {
        return Ok(PathBuf::from(h));
    }
    if h.starts_with("tcp://") || h.contains(':') {
        bail!(
            "refusing to listen on {h:?}: the API gives root on this host, and berthd serves TCP only with TLS, which this build does not offer; use a unix socket (-H unix:///path)"
        );
    }
    bail!("invalid host {h:?}: expected unix:///path")
}

impl Settings {
    /// Flags win over environment variables, which win over defaults.
    pub fn resolve(args: Args, env: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<Settings> {
        let pick = |flag: Option<PathBuf>, var: &str, default: &str| {
            flag.or_else(|| env(var).filter(|v| !v.is_empty()).map(PathBuf::from)).unwrap_or_else(|| PathBuf::from(default))
        };
        let data_root = pick(args.data_root, "BERTH_ROOT", DEFAULT_DATA_ROOT);
        let exec_root = pick(args.exec_root, "BERTH_RUNROOT", DEFAULT_EXEC_ROOT);
        let config_file = pick(args.config, "BERTH_CONFIG", DEFAULT_CONFIG_FILE);
        let hosts = if args.hosts.is_empty() {
            vec![exec_root.join("berth.sock")]
        } else {
            args.hosts.iter().map(|h| parse_host(h)).collect::<anyhow::Result<_>>()?
        };
        Ok(Settings { data_root, exec_root, hosts, config_file, debug: args.debug })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn resolve(argv: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let args = Args::try_parse_from(std::iter::once("berthd").chain(argv.iter().copied()))?;
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::resolve(args, |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| OsString::from(v)))
    }

    #[test]
    fn defaults_then_env_then_flags() {
        let s = resolve(&[], &[]).unwrap();
        assert_eq!(s.data_root, PathBuf::from("/var/lib/berth"));
        assert_eq!(s.exec_root, PathBuf::from("/run/berth"));
        assert_eq!(s.hosts, [PathBuf::from("/run/berth/berth.sock")]);
        assert_eq!(s.config_file, PathBuf::from("/etc/berth/berth.toml"));
        let s = resolve(&[], &[("BERTH_ROOT", "/a"), ("BERTH_RUNROOT", "/b"), ("BERTH_CONFIG", "/c.toml")]).unwrap();
        assert_eq!((s.data_root, s.exec_root.clone(), s.config_file), (PathBuf::from("/a"), PathBuf::from("/b"), PathBuf::from("/c.toml")));
        assert_eq!(s.hosts, [PathBuf::from("/b/berth.sock")]);
        let s = resolve(&["--data-root", "/x", "-H", "unix:///s1", "-H", "unix:///s2"], &[("BERTH_ROOT", "/a")]).unwrap();
        assert_eq!(s.data_root, PathBuf::from("/x"));
        assert_eq!(s.hosts, [PathBuf::from("/s1"), PathBuf::from("/s2")]);
    }

    #[test]
    fn plain_tcp_is_refused_with_a_reason() {
        let e = resolve(&["-H", "tcp://0.0.0.0:2375"], &[]).unwrap_err().to_string();
        assert!(e.contains("tcp://0.0.0.0:2375") && e.contains("TLS"), "{e}");
        assert!(resolve(&["-H", "unix://"], &[]).is_err());
        assert!(resolve(&["-H", "bogus"], &[]).is_err());
    }
}
