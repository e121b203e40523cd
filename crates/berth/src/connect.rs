//! Finding the daemon (resolve second): `-H`, then `BERTH_HOST`, then the default socket
//! `<exec-root>/berth.sock` (`BERTH_RUNROOT`, else /run/berth). Only on the default socket,
//! when nothing answers, `berthd` (next to this binary) is started in the background.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use berth_api::client::Client;

/// TLS files for a tcp:// daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA that signed the daemon's certificate.
    pub ca: PathBuf,
    /// Client certificate and key, when present.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// The TLS flags as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFlags {
    /// `--tlsverify`.
    pub verify: bool,
    /// `--tlscacert`.
    pub ca: Option<PathBuf>,
    /// `--tlscert`.
    pub cert: Option<PathBuf>,
    /// `--tlskey`.
    pub key: Option<PathBuf>,
}

/// Where to connect, and whether berth may start the daemon there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The socket (unix), or `tcp://addr` for a TLS daemon.
    pub socket: PathBuf,
    /// `host:port` and TLS files for a tcp:// daemon.
    pub tcp: Option<(String, TlsFiles)>,
    /// True for the default socket (autostart allowed).
    pub default: bool,
    /// The exec root a started daemon uses (logs go to `<exec-root>/berthd.log`).
    pub exec_root: PathBuf,
}

fn tls_files(
    tls: &TlsFlags,
    env: &impl Fn(&str) -> Option<OsString>,
    h: &str,
) -> anyhow::Result<TlsFiles> {
    let verify = tls.verify || env("BERTH_TLS_VERIFY").is_some_and(|v| !v.is_empty() && v != "0");
    if !verify {
        bail!(
            "invalid host {h:?}: tcp:// daemons are reached only over verified TLS; give --tlsverify (and --tlscacert, --tlscert, --tlskey or BERTH_CERT_PATH)"
        );
    }
    let dir = env("BERTH_CERT_PATH")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let pick = |flag: &Option<PathBuf>, name: &str| {
        flag.clone().or_else(|| dir.as_ref().map(|d| d.join(name)))
    };
    let ca = pick(&tls.ca, "ca.pem")
        .ok_or_else(|| anyhow::anyhow!("--tlsverify needs --tlscacert or BERTH_CERT_PATH"))?;
    let client = match (pick(&tls.cert, "cert.pem"), pick(&tls.key, "key.pem")) {
        (Some(c), Some(k)) if c.is_file() && k.is_file() => Some((c, k)),
        (Some(c), _) if tls.cert.is_some() => {
            bail!("--tlscert {} needs a readable --tlskey", c.display())
        }
        _ => None,
    };
    Ok(TlsFiles { ca, client })
}

/// berthd's default `--exec-root`.
const DEFAULT_EXEC_ROOT: &str = "/run/berth";

type Parsed = (PathBuf, Option<(String, TlsFiles)>);

fn parse_host(
    h: &str,
    tls: &TlsFlags,
    env: &impl Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Parsed> {
    if let Some(p) = h.strip_prefix("unix://").filter(|p| !p.is_empty()) {
        return Ok((PathBuf::from(p), None));
    }
    if h.starts_with('/') {
        return Ok((PathBuf::from(h), None));
    }
    if let Some(addr) = h.strip_prefix("tcp://") {
        let addr = addr.trim_end_matches('/');
        if addr
            .rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
        {
            bail!("invalid host {h:?}: expected tcp://host:port");
        }
        return Ok((
            PathBuf::from(h),
            Some((addr.to_owned(), tls_files(tls, env, h)?)),
        ));
    }
    bail!("invalid host {h:?}: expected unix:///path or tcp://host:port")
}

/// Resolves the target from the flags and the environment.
pub fn resolve(
    flag: Option<&str>,
    tls: &TlsFlags,
    env: impl Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Target> {
    let exec_root = env("BERTH_RUNROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_EXEC_ROOT));
    if let Some(h) = flag {
        let (socket, tcp) = parse_host(h, tls, &env)?;
        return Ok(Target {
            socket,
            tcp,
            default: false,
            exec_root,
        });
    }
    if let Some(h) = env("BERTH_HOST").filter(|v| !v.is_empty()) {
        let (socket, tcp) = parse_host(&h.to_string_lossy(), tls, &env)?;
        return Ok(Target {
            socket,
            tcp,
            default: false,
            exec_root,
        });
    }
    Ok(Target {
        socket: exec_root.join("berth.sock"),
        tcp: None,
        default: true,
        exec_root,
    })
}

/// A client whose version is negotiated, starting the daemon first when allowed.
pub async fn connect(target: &Target) -> anyhow::Result<Client> {
    if let Some((addr, files)) = &target.tcp {
        let client_files = files
            .client
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()));
        let cfg = berth_api::client::tls_config(&files.ca, client_files)?;
        let client = Client::tls(addr, cfg);
        client.ping().await?;
        return Ok(client);
    }
    let client = Client::new(&target.socket);
    // A listener on the socket is enough to go on: requests then use unversioned paths
    // (the daemon's own version), so no `/_ping` round trip is spent on negotiating
    // (commands that show the version ping themselves). The probe's connection carries
    // the first request.
    if client.connect_now().is_ok() {
        return Ok(client);
    }
    match client.ping().await {
        Ok(_) => return Ok(client),
        Err(e) if !target.default => return Err(e.into()),
        Err(_) => {}
    }
    start_daemon(target)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match client.ping().await {
            Ok(_) => return Ok(client),
            Err(e) if Instant::now() > deadline => {
                return Err(anyhow::Error::from(e).context(format!(
                    "berthd did not come up; see {}",
                    target.exec_root.join("berthd.log").display()
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn berthd_path() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find the berth binary's own path")?;
    let dir = me.parent().unwrap_or(Path::new("."));
    let p = dir.join("berthd");
    if !p.is_file() {
        bail!(
            "no daemon answers on the default socket and berthd is not installed next to berth ({})",
            p.display()
        );
    }
    Ok(p)
}

/// Starts berthd detached (own process group, stdio to `<exec-root>/berthd.log`), under a
/// lock so concurrent `berth` calls start it once.
fn start_daemon(target: &Target) -> anyhow::Result<()> {
    std::fs::create_dir_all(&target.exec_root)
        .with_context(|| format!("cannot create {}", target.exec_root.display()))?;
    let lock_path = target.exec_root.join("berthd.start.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    // Someone else may have started it while we waited for the lock.
    if std::os::unix::net::UnixStream::connect(&target.socket).is_ok() {
        return Ok(());
    }
    let berthd = berthd_path()?;
    let log_path = target.exec_root.join("berthd.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let log2 = log.try_clone()?;
    eprintln!(
        "berth: no daemon answered on unix://{}; starting berthd in the background (log: {})",
        target.socket.display(),
        log_path.display()
    );
    let child = Command::new(&berthd)
        .arg("--exec-root")
        .arg(&target.exec_root)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", berthd.display()))?;
    // Wait for the socket while holding the lock, so a concurrent caller finds it up.
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if std::os::unix::net::UnixStream::connect(&target.socket).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    drop(child);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(flag: Option<&str>, env: &[(&str, &str)]) -> anyhow::Result<Target> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resolve(flag, &TlsFlags::default(), |k| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn flag_then_env_then_default() {
        let t = res(None, &[]).unwrap();
        assert_eq!(t.socket, PathBuf::from("/run/berth/berth.sock"));
        assert!(t.default);
        let t = res(None, &[("BERTH_RUNROOT", "/tmp/r")]).unwrap();
        assert_eq!(t.socket, PathBuf::from("/tmp/r/berth.sock"));
        assert!(t.default);
        let t = res(
            None,
            &[
                ("BERTH_HOST", "unix:///e.sock"),
                ("DOCKER_HOST", "unix:///d.sock"),
            ],
        )
        .unwrap();
        assert_eq!(t.socket, PathBuf::from("/e.sock"));
        assert!(!t.default);
        let t = res(Some("unix:///f.sock"), &[("BERTH_HOST", "unix:///e.sock")]).unwrap();
        assert_eq!(t.socket, PathBuf::from("/f.sock"));
        assert!(
            res(Some("tcp://1.2.3.4:2375"), &[])
                .unwrap_err()
                .to_string()
                .contains("verified TLS")
        );
        let t = res(
            Some("tcp://127.0.0.1:2376"),
            &[("BERTH_TLS_VERIFY", "1"), ("BERTH_CERT_PATH", "/certs")],
        )
        .unwrap();
        let (addr, files) = t.tcp.unwrap();
        assert_eq!(addr, "127.0.0.1:2376");
        assert_eq!(files.ca, PathBuf::from("/certs/ca.pem"));
        assert_eq!(files.client, None, "missing client files are not used");
    }
}
