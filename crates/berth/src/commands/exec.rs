//! `berth exec`: create the exec, start it hijacked (or detached), stream, then read
//! its exit code from `GET /exec/{id}/json` (126/127 when it could not be run).

use berth_api::client::{Client, ClientError, full};
use clap::Args;
use hyper::Method;
use serde_json::{Value, json};

use crate::Exit;
use crate::commands::attach::{Ended, follow_size, pump};
use crate::terminal;

// `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long = "privileged")]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// The container
    pub container: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// `KEY=value` lines of env files (comments and blank lines skipped; a bare `KEY`
/// takes the local value, as Docker does).
fn env_files(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("cannot read env file {}: {e}", f.display()))?;
        for l in text.lines() {
            let l = l.trim_start();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if l.contains('=') {
                out.push(l.to_owned());
            } else if let Ok(v) = std::env::var(l) {
                out.push(format!("{l}={v}"));
            }
        }
    }
    Ok(out)
}

/// The exec create body.
pub fn create_body(a: &ExecArgs, console_size: Option<[u16; 2]>) -> anyhow::Result<Value> {
    let mut env = env_files(&a.env_file)?;
    env.extend(a.env.iter().cloned());
    let mut b = json!({
        "AttachStdin": a.interactive && !a.detach,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "Tty": a.tty,
        "Cmd": a.command,
        "Env": env,
        "Privileged": a.privileged,
        "Detach": a.detach,
    });
    if let Some(u) = &a.user {
        b["User"] = json!(u);
    }
    if let Some(w) = &a.workdir {
        b["WorkingDir"] = json!(w);
    }
    if let Some(k) = &a.detach_keys {
        b["DetachKeys"] = json!(k);
    }
    if let Some(cs) = console_size {
        b["ConsoleSize"] = json!(cs);
    }
    Ok(b)
}

/// `berth exec`.
pub async fn exec(c: &Client, a: &ExecArgs) -> anyhow::Result<()> {
    if a.tty && a.interactive && !terminal::stdin_is_terminal() {
        eprintln!("the input device is not a TTY");
        return Err(Exit(1).into());
    }
    let console_size = if a.tty { terminal::size() } else { None };
    let body = create_body(a, console_size)?;
    let resp = c
        .send(
            Method::POST,
            &format!("/containers/{}/exec", a.container),
            &[],
            full(serde_json::to_vec(&body)?),
            &[("Content-Type", "application/json".to_owned())],
        )
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e @ ClientError::Daemon { .. }) => {
            eprintln!("{e}");
            return Err(Exit(1).into());
        }
        Err(e) => return Err(e.into()),
    };
    let v: Value = berth_api::client::read_json(resp, "exec create").await?;
    let id = v["Id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the daemon's exec create answer has no Id"))?
        .to_owned();
    let start = json!({"Detach": a.detach, "Tty": a.tty, "ConsoleSize": console_size});
    if a.detach {
        c.send(
            Method::POST,
            &format!("/exec/{id}/start"),
            &[],
            full(serde_json::to_vec(&start)?),
            &[("Content-Type", "application/json".to_owned())],
        )
        .await?;
        return Ok(());
    }
    let conn = c
        .hijack(
            &format!("/exec/{id}/start"),
            &[],
            serde_json::to_vec(&start)?,
        )
        .await?;
    let resizer = if a.tty {
        follow_size(c, format!("/exec/{id}/resize"))
    } else {
        None
    };
    let keys =
        berth_api::handlers::attach::parse_detach_keys(a.detach_keys.as_deref().unwrap_or(""))
            .map_err(|e| anyhow::anyhow!(e))?;
    let raw = if a.tty && a.interactive {
        terminal::RawMode::enable()
    } else {
        None
    };
    let ended = pump(conn, a.tty, a.interactive, keys).await;
    drop(raw);
    if let Some(r) = resizer {
        r.abort();
    }
    if ended? == Ended::Detached {
        return Ok(());
    }
    let info: Value = c.get_json(&format!("/exec/{id}/json"), &[]).await?;
    let code = info["ExitCode"].as_i64().unwrap_or(0);
    if code != 0 {
        return Err(Exit(code.clamp(0, 255) as u8).into());
    }
    Ok(())
}
