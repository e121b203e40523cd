//! `berth compose …`: runs a compose provider against berthd, as `podman compose` does.
//!
//! The provider is `$BERTH_COMPOSE_PROVIDER`, else `docker-compose` on `PATH` (Debian's
//! compose 1.29, or Docker's compose v2 binary), else Docker's compose v2 CLI plugin where
//! Docker installs it. It gets every argument as typed and `DOCKER_HOST` (with the TLS
//! variables for a tcp:// daemon) set to the daemon this `berth` talks to, which is started
//! first when berth may start it. The provider then drives berthd through the Docker Engine
//! API like any Docker client: `up --build`, `--scale`, `down -v`, `logs -f`, `exec`, …
//! berth replaces itself with the provider (exec), so the terminal, Ctrl-C and the exit
//! code are the provider's own.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::connect::{self, Target};

/// `berth compose [ARGS]…`.
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct ComposeArgs {
    /// Everything after `compose`, given to the compose provider as typed.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<OsString>,
}

/// Where Docker installs its compose v2 CLI plugin (`~/.docker/cli-plugins` first).
const PLUGIN_DIRS: &[&str] = &[
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
];

/// The compose provider to run, or an error that says how to get one.
pub fn find_provider(env: &impl Fn(&str) -> Option<OsString>) -> anyhow::Result<PathBuf> {
    if let Some(p) = env("BERTH_COMPOSE_PROVIDER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if let Some(found) = executable(&p, env) {
            return Ok(found);
        }
        anyhow::bail!(
            "BERTH_COMPOSE_PROVIDER is {}, which is not an executable file",
            p.display()
        );
    }
    if let Some(found) = executable(Path::new("docker-compose"), env) {
        return Ok(found);
    }
    let home = env("HOME").map(PathBuf::from);
    let plugin_dirs = home
        .iter()
        .map(|h| h.join(".docker/cli-plugins"))
        .chain(PLUGIN_DIRS.iter().map(PathBuf::from));
    for dir in plugin_dirs {
        let p = dir.join("docker-compose");
        if is_executable(&p) {
            return Ok(p);
        }
    }
    anyhow::bail!(
        "berth compose runs a compose provider against berthd, and none was found: install one \
         (Debian: apt-get install docker-compose; or Docker's compose v2 plugin) or set \
         BERTH_COMPOSE_PROVIDER to its path"
    )
}

/// `name` itself when it holds a slash, else its first match on `PATH`.
fn executable(name: &Path, env: &impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    if name.components().count() > 1 || name.is_absolute() {
        return is_executable(name).then(|| name.to_owned());
    }
    let path = env("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The environment that points a Docker client at `target`.
pub fn docker_env(target: &Target) -> Vec<(&'static str, OsString)> {
    match &target.tcp {
        None => vec![(
            "DOCKER_HOST",
            format!("unix://{}", target.socket.display()).into(),
        )],
        Some((addr, files)) => {
            let mut v = vec![
                ("DOCKER_HOST", format!("tcp://{addr}").into()),
                ("DOCKER_TLS_VERIFY", "1".into()),
            ];
            // Docker clients read ca.pem, cert.pem and key.pem from one directory
            if let Some(dir) = files.ca.parent() {
                v.push(("DOCKER_CERT_PATH", dir.as_os_str().to_owned()));
            }
            v
        }
    }
}

/// Whether the provider will talk to the daemon: not for help and version.
fn needs_daemon(args: &[OsString]) -> bool {
    let quiet = ["-h", "--help", "-v", "--version", "help", "version"];
    !args.iter().any(|a| quiet.iter().any(|q| a == q))
}

/// Starts the daemon when allowed, then replaces this process with the provider.
pub async fn compose(target: &Target, a: &ComposeArgs) -> anyhow::Result<()> {
    let provider = find_provider(&|k| std::env::var_os(k))?;
    if needs_daemon(&a.args) {
        connect::connect(target).await?;
    }
    let mut cmd = Command::new(&provider);
    cmd.args(&a.args);
    // a context or another host of the caller's environment must not win over ours
    cmd.env_remove("DOCKER_CONTEXT");
    cmd.env_remove("DOCKER_TLS_VERIFY");
    cmd.env_remove("DOCKER_CERT_PATH");
    for (k, v) in docker_env(target) {
        cmd.env(k, v);
    }
    let err = cmd.exec();
    anyhow::bail!(
        "cannot run the compose provider {}: {err}",
        provider.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_provider_comes_from_the_variable_then_path_then_the_plugin_dir() {
        let t = tempfile::tempdir().unwrap();
        let bin = t.path().join("bin");
        let home = t.path().join("home");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(home.join(".docker/cli-plugins")).unwrap();
        let make = |p: &Path| {
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let plugin = home.join(".docker/cli-plugins/docker-compose");
        make(&plugin);
        let env = |vars: Vec<(&'static str, OsString)>| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let base = vec![
            ("PATH", bin.clone().into_os_string()),
            ("HOME", home.clone().into_os_string()),
        ];
        assert_eq!(find_provider(&env(base.clone())).unwrap(), plugin);
        let on_path = bin.join("docker-compose");
        make(&on_path);
        assert_eq!(find_provider(&env(base.clone())).unwrap(), on_path);
        let mut with_var = base.clone();
        with_var.push(("BERTH_COMPOSE_PROVIDER", plugin.clone().into_os_string()));
        assert_eq!(find_provider(&env(with_var)).unwrap(), plugin);
        let mut bad = base.clone();
        bad.push((
            "BERTH_COMPOSE_PROVIDER",
            t.path().join("nope").into_os_string(),
        ));
        let e = find_provider(&env(bad)).unwrap_err().to_string();
        assert!(
            e.contains("BERTH_COMPOSE_PROVIDER is") && e.contains("nope"),
            "{e}"
        );
        // a file that is not executable is no provider
        std::fs::set_permissions(&on_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::remove_file(&plugin).unwrap();
        let e = find_provider(&env(base)).unwrap_err().to_string();
        assert!(e.contains("apt-get install docker-compose"), "{e}");
    }

    #[test]
    fn help_and_version_start_no_daemon() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(!needs_daemon(&args(&["--help"])));
        assert!(!needs_daemon(&args(&["up", "--help"])));
        assert!(!needs_daemon(&args(&["version"])));
        assert!(needs_daemon(&args(&["up", "-d", "--build"])));
        assert!(needs_daemon(&args(&[])));
    }

    #[test]
    fn the_provider_is_pointed_at_our_daemon() {
        let unix = Target {
            socket: PathBuf::from("/run/x/berth.sock"),
            tcp: None,
            default: false,
            exec_root: PathBuf::from("/run/x"),
        };
        assert_eq!(
            docker_env(&unix),
            vec![("DOCKER_HOST", OsString::from("unix:///run/x/berth.sock"))]
        );
        let tcp = Target {
            tcp: Some((
                "127.0.0.1:2376".into(),
                connect::TlsFiles {
                    ca: PathBuf::from("/certs/ca.pem"),
                    client: None,
                },
            )),
            ..unix
        };
        assert_eq!(
            docker_env(&tcp),
            vec![
                ("DOCKER_HOST", OsString::from("tcp://127.0.0.1:2376")),
                ("DOCKER_TLS_VERIFY", OsString::from("1")),
                ("DOCKER_CERT_PATH", OsString::from("/certs")),
            ]
        );
    }
}
