//! Command line (what was typed) and its resolution against the environment (what runs).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::bail;
use berth_engine::config::{DEFAULT_CONFIG_FILE, DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT};

/// berthd's flags.
#[derive(Debug, clap::Parser)]
#[command(
    name = "berthd",
    version,
    about = "The Berth daemon: serves the Docker Engine API"
)]
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
    /// Require TLS client certificates signed by --tlscacert (tcp hosts)
    #[arg(long = "tlsverify")]
    pub tlsverify: bool,
    /// CA bundle that signs accepted client certificates
    #[arg(long = "tlscacert", value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Server certificate chain (PEM) for tcp hosts
    #[arg(long = "tlscert", value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Server private key (PEM) for tcp hosts
    #[arg(long = "tlskey", value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// Networking flags.
    #[command(flatten)]
    pub net: crate::net_args::NetArgs,
}

/// A listen address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A unix socket path.
    Unix(PathBuf),
    /// A TCP address (`host:port`), served only with TLS.
    Tcp(String),
}

/// TLS material for tcp hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server key.
    pub key: PathBuf,
    /// Client CA: when set, clients must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
}

/// Resolved settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `--data-root`.
    pub data_root: PathBuf,
    /// `--exec-root`.
    pub exec_root: PathBuf,
    /// Addresses to serve.
    pub hosts: Vec<Host>,
    /// TLS for tcp hosts.
    pub tls: Option<Tls>,
    /// berth.toml.
    pub config_file: PathBuf,
    /// Debug logging.
    pub debug: bool,
    /// Networking.
    pub net: berth_engine::config::NetOptions,
}

/// Parses one `-H` value.
pub fn parse_host(h: &str) -> anyhow::Result<Host> {
    if let Some(p) = h.strip_prefix("unix://") {
        if p.is_empty() {
            bail!("invalid host {h:?}: the unix socket path is empty");
        }
        return Ok(Host::Unix(PathBuf::from(p)));
    }
    if h.starts_with('/') {
        return Ok(Host::Unix(PathBuf::from(h)));
    }
    if let Some(addr) = h.strip_prefix("tcp://") {
        let addr = addr.trim_end_matches('/');
        if addr
            .rsplit_once(':')
            .is_none_or(|(_, port)| port.parse::<u16>().is_err())
        {
            bail!("invalid host {h:?}: expected tcp://host:port");
        }
        return Ok(Host::Tcp(addr.to_owned()));
    }
    bail!("invalid host {h:?}: expected unix:///path or tcp://host:port (with TLS)")
}

impl Settings {
    /// Flags win over environment variables, which win over defaults.
    pub fn resolve(args: Args, env: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<Settings> {
        let pick = |flag: Option<PathBuf>, var: &str, default: &str| {
            flag.or_else(|| env(var).filter(|v| !v.is_empty()).map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(default))
        };
        let data_root = pick(args.data_root, "BERTH_ROOT", DEFAULT_DATA_ROOT);
        let exec_root = pick(args.exec_root, "BERTH_RUNROOT", DEFAULT_EXEC_ROOT);
        let config_file = pick(args.config, "BERTH_CONFIG", DEFAULT_CONFIG_FILE);
        let hosts = if args.hosts.is_empty() {
            vec![Host::Unix(exec_root.join("berth.sock"))]
        } else {
            args.hosts
                .iter()
                .map(|h| parse_host(h))
                .collect::<anyhow::Result<_>>()?
        };
        let tls = match (args.tlscert, args.tlskey) {
            (Some(cert), Some(key)) => Some(Tls {
                cert,
                key,
                client_ca: args.tlscacert.clone(),
            }),
            (None, None) => None,
            _ => bail!("--tlscert and --tlskey go together"),
        };
        if args.tlsverify && args.tlscacert.is_none() {
            bail!("--tlsverify needs --tlscacert (the CA that signs client certificates)");
        }
        if tls.is_none()
            && let Some(Host::Tcp(a)) = hosts.iter().find(|h| matches!(h, Host::Tcp(_)))
        {
            bail!(
                "refusing to listen on tcp://{a} without TLS: the API gives root on this host; give --tlscert and --tlskey (and --tlsverify --tlscacert to require client certificates), or use a unix socket"
            );
        }
        Ok(Settings {
            data_root,
            exec_root,
            hosts,
            tls,
            config_file,
            debug: args.debug,
            net: args.net.resolve()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn resolve(argv: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let args = Args::try_parse_from(std::iter::once("berthd").chain(argv.iter().copied()))?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::resolve(args, |k| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn defaults_then_env_then_flags() {
        let s = resolve(&[], &[]).unwrap();
        assert_eq!(s.data_root, PathBuf::from("/var/lib/berth"));
        assert_eq!(s.exec_root, PathBuf::from("/run/berth"));
        assert_eq!(
            s.hosts,
            [Host::Unix(PathBuf::from("/run/berth/berth.sock"))]
        );
        assert_eq!(s.config_file, PathBuf::from("/etc/berth/berth.toml"));
        let s = resolve(
            &[],
            &[
                ("BERTH_ROOT", "/a"),
                ("BERTH_RUNROOT", "/b"),
                ("BERTH_CONFIG", "/c.toml"),
            ],
        )
        .unwrap();
        assert_eq!(
            (s.data_root, s.exec_root.clone(), s.config_file),
            (
                PathBuf::from("/a"),
                PathBuf::from("/b"),
                PathBuf::from("/c.toml")
            )
        );
        assert_eq!(s.hosts, [Host::Unix(PathBuf::from("/b/berth.sock"))]);
        let s = resolve(
            &["--data-root", "/x", "-H", "unix:///s1", "-H", "unix:///s2"],
            &[("BERTH_ROOT", "/a")],
        )
        .unwrap();
        assert_eq!(s.data_root, PathBuf::from("/x"));
        assert_eq!(
            s.hosts,
            [
                Host::Unix(PathBuf::from("/s1")),
                Host::Unix(PathBuf::from("/s2"))
            ]
        );
    }

    #[test]
    fn plain_tcp_is_refused_with_a_reason() {
        let e = resolve(&["-H", "tcp://0.0.0.0:2375"], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("tcp://0.0.0.0:2375") && e.contains("TLS"), "{e}");
        assert!(resolve(&["-H", "unix://"], &[]).is_err());
        assert!(resolve(&["-H", "tcp://127.0.0.1"], &[]).is_err());
        let s = resolve(
            &[
                "-H",
                "tcp://127.0.0.1:2376",
                "--tlscert",
                "c.pem",
                "--tlskey",
                "k.pem",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(s.hosts, [Host::Tcp("127.0.0.1:2376".into())]);
        assert_eq!(s.tls.unwrap().client_ca, None);
        assert!(resolve(&["--tlscert", "c.pem"], &[]).is_err());
        assert!(
            resolve(
                &["--tlsverify", "--tlscert", "c.pem", "--tlskey", "k.pem"],
                &[]
            )
            .is_err()
        );
        assert!(resolve(&["-H", "bogus"], &[]).is_err());
    }
}
