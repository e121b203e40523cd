//! Attached containers: foreground `run` (create → attach → wait → start → stream),
//! `start -a [-i]`, `attach`; the hijacked stream pumped to and from the terminal (raw
//! with `-t`, window size at start and on SIGWINCH, detach keys, signals proxied).

use std::io::Write as _;

use berth_api::client::{Client, ClientError, Hijacked, empty};
use berth_api::handlers::attach::{DetachMatcher, parse_detach_keys};
use clap::Args;
use hyper::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::Exit;
use crate::commands::containers::{RunArgs, StartArgs};
use crate::terminal;

// `run` flags about attaching.
#[derive(Debug, Args, Clone, Default)]
pub struct RunAttachFlags {
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach", value_name = "STREAM")]
    pub attach: Vec<String>,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
}

// `start` flags about attaching.
#[derive(Debug, Args, Clone, Default)]
pub struct StartAttachFlags {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long = "attach")]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
}

// `attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// The container
    pub container: String,
}

/// What a foreground `run` adds to the create body (`AttachStdin`, `StdinOnce`,
/// `ConsoleSize`).
#[derive(Debug, Clone, Default)]
pub struct Foreground {
    /// Attach each stream.
    pub stdin: bool,
    /// Attach stdout.
    pub stdout: bool,
    /// Attach stderr.
    pub stderr: bool,
    /// The terminal's size when `-t`.
    pub console_size: Option<[u16; 2]>,
}

impl Foreground {
    /// Sets its fields in Docker's create body.
    pub fn apply(&self, body: &mut Value) {
        body["AttachStdin"] = json!(self.stdin);
        body["AttachStdout"] = json!(self.stdout);
        body["AttachStderr"] = json!(self.stderr);
        // `run -i`: the container's stdin closes when ours ends
        body["StdinOnce"] = json!(self.stdin);
        if let Some(cs) = self.console_size {
            body["HostConfig"]["ConsoleSize"] = json!(cs);
        }
    }
}

/// Which streams an attach carries.
#[derive(Debug, Clone, Copy)]
pub struct Streams {
    /// stdin.
    pub stdin: bool,
    /// stdout.
    pub stdout: bool,
    /// stderr.
    pub stderr: bool,
}

fn detach_keys(flag: Option<&str>) -> anyhow::Result<(String, Vec<u8>)> {
    let s = flag.unwrap_or("").to_owned();
    let keys = parse_detach_keys(&s).map_err(|e| anyhow::anyhow!(e))?;
    Ok((s, keys))
}

/// Opens the hijacked attach stream of container `id`.
pub async fn open(
    c: &Client,
    id: &str,
    s: Streams,
    detach_keys: &str,
) -> Result<Hijacked, ClientError> {
    let b = |v: bool| if v { "1" } else { "0" }.to_owned();
    let mut q = vec![
        ("stream", "1".to_owned()),
        ("stdin", b(s.stdin)),
        ("stdout", b(s.stdout)),
        ("stderr", b(s.stderr)),
    ];
    if !detach_keys.is_empty() {
        q.push(("detachKeys", detach_keys.to_owned()));
    }
    c.hijack(&format!("/containers/{id}/attach"), &q, Vec::new())
        .await
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The process's output ended.
    Done,
    /// The user typed the detach keys.
    Detached,
}

/// Pumps the local stdin into `conn` (when `stdin`) and its output to stdout/stderr
/// (demultiplexed unless `tty`) until the output ends or the detach keys are typed.
pub async fn pump(conn: Hijacked, tty: bool, stdin: bool, keys: Vec<u8>) -> anyhow::Result<Ended> {
    let (mut rd, mut wr) = tokio::io::split(conn);
    let (detached_tx, mut detached_rx) = tokio::sync::oneshot::channel::<()>();
    let mut detached_tx = Some(detached_tx);
    let input = tokio::spawn(async move {
        if !stdin {
            // as the docker CLI: half-close at once when stdin is not attached
            let _ = wr.shutdown().await;
            std::future::pending::<()>().await;
            return;
        }
        let mut chunks = terminal::stdin_chunks();
        let mut m = DetachMatcher::new(if tty { keys } else { Vec::new() });
        while let Some(chunk) = chunks.recv().await {
            let (data, detach) = m.feed(&chunk);
            if !data.is_empty() && wr.write_all(&data).await.is_err() {
                break;
            }
            if detach {
                if let Some(t) = detached_tx.take() {
                    let _ = t.send(());
                }
                std::future::pending::<()>().await;
            }
        }
        let _ = wr.shutdown().await;
        std::future::pending::<()>().await;
    });
    let mut buf = vec![0u8; 32 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let ended = loop {
        let n = tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break Ended::Done,
                Ok(n) => n,
            },
            _ = &mut detached_rx => break Ended::Detached,
        };
        if tty {
            let mut o = std::io::stdout().lock();
            o.write_all(&buf[..n])?;
            o.flush()?;
            continue;
        }
        pending.extend_from_slice(&buf[..n]);
        while pending.len() >= 8 {
            let len = u32::from_be_bytes([pending[4], pending[5], pending[6], pending[7]]) as usize;
            if pending.len() < 8 + len {
                break;
            }
            let kind = pending[0];
            let payload = &pending[8..8 + len];
            if kind == 2 || kind == 3 {
                let mut e = std::io::stderr().lock();
                e.write_all(payload)?;
                e.flush()?;
            } else {
                let mut o = std::io::stdout().lock();
                o.write_all(payload)?;
                o.flush()?;
            }
            pending.drain(..8 + len);
        }
    };
    input.abort();
    Ok(ended)
}

/// Sends the terminal's size now and on every SIGWINCH (`path` is the resize
/// endpoint). The task ends with the returned handle.
pub fn follow_size(c: &Client, path: String) -> Option<tokio::task::JoinHandle<()>> {
    let send = |c: &Client, path: String, [h, w]: [u16; 2]| {
        let c2 = c.clone_handle();
        async move {
            let _ = c2
                .send(
                    Method::POST,
                    &path,
                    &[("h", h.to_string()), ("w", w.to_string())],
                    empty(),
                    &[],
                )
                .await;
        }
    };
    let size = terminal::size()?;
    let mut winch =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()?;
    let c2 = c.clone_handle();
    Some(tokio::spawn(async move {
        send(&c2, path.clone(), size).await;
        while winch.recv().await.is_some() {
            if let Some(s) = terminal::size() {
                send(&c2, path.clone(), s).await;
            }
        }
    }))
}

/// Forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the container
/// (`--sig-proxy`).
pub fn proxy_signals(c: &Client, id: &str) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let c2 = c.clone_handle();
    let id = id.to_owned();
    // registered now, before any output is shown, so a signal that follows it is ours
    let kinds = [
        (SignalKind::interrupt(), 2),
        (SignalKind::terminate(), 15),
        (SignalKind::hangup(), 1),
        (SignalKind::quit(), 3),
        (SignalKind::user_defined1(), 10),
        (SignalKind::user_defined2(), 12),
    ];
    let streams: Vec<_> = kinds
        .into_iter()
        .filter_map(|(k, n)| signal(k).ok().map(|s| (s, n)))
        .collect();
    tokio::spawn(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<i32>(8);
        for (mut s, n) in streams {
            let tx = tx.clone();
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx.send(n).await.is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        while let Some(n) = rx.recv().await {
            let _ = c2
                .send(
                    Method::POST,
                    &format!("/containers/{id}/kill"),
                    &[("signal", n.to_string())],
                    empty(),
                    &[],
                )
                .await;
        }
    })
}

async fn wait_next_exit(
    c: &Client,
    id: &str,
    condition: &str,
) -> Result<tokio::task::JoinHandle<Option<i64>>, ClientError> {
    let resp = c
        .send(
            Method::POST,
            &format!("/containers/{id}/wait"),
            &[("condition", condition.to_owned())],
            empty(),
            &[],
        )
        .await?;
    Ok(tokio::spawn(async move {
        let v: Value = berth_api::client::read_json(resp, "wait").await.ok()?;
        v["StatusCode"].as_i64()
    }))
}

fn exit_for(code: i64) -> anyhow::Result<()> {
    if code != 0 {
        return Err(Exit(code.clamp(0, 255) as u8).into());
    }
    Ok(())
}

/// Foreground `berth run`: create, attach, wait, start, stream; the exit code is the
/// container's.
pub async fn run_foreground(c: &Client, a: &RunArgs) -> anyhow::Result<()> {
    let f = &a.attach;
    let (keys_s, keys) = detach_keys(f.detach_keys.as_deref())?;
    let mut ca = a.create.clone();
    let streams = if f.attach.is_empty() {
        Streams {
            stdin: ca.interactive,
            stdout: true,
            stderr: true,
        }
    } else {
        let has = |s: &str| f.attach.iter().any(|x| x.eq_ignore_ascii_case(s));
        for x in &f.attach {
            if !["stdin", "stdout", "stderr"].contains(&x.to_ascii_lowercase().as_str()) {
                eprintln!(
                    "berth: invalid argument \"{x}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"
                );
                return Err(Exit(125).into());
            }
        }
        Streams {
            stdin: has("stdin"),
            stdout: has("stdout"),
            stderr: has("stderr"),
        }
    };
    if ca.tty && streams.stdin && !terminal::stdin_is_terminal() {
        eprintln!("the input device is not a TTY");
        return Err(Exit(1).into());
    }
    ca.foreground = Some(Foreground {
        stdin: streams.stdin,
        stdout: streams.stdout,
        stderr: streams.stderr,
        console_size: if ca.tty { terminal::size() } else { None },
    });
    // --rm as the docker CLI does it: AutoRemove, so the daemon removes the container as
    // soon as its monitor is gone, and the wait below returns once it is removed
    let rm = ca.rm;
    let id = crate::commands::containers::create_container(c, &ca, rm).await?;
    let conn = match open(c, &id, streams, &keys_s).await {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("berth: {e}");
            if rm {
                crate::commands::containers::remove_quietly(c, &id).await;
            }
            return Err(Exit(125).into());
        }
    };
    let waiter = wait_next_exit(c, &id, if rm { "removed" } else { "next-exit" }).await?;
    if let Err(e) = c
        .send(
            Method::POST,
            &format!("/containers/{id}/start"),
            &[],
            empty(),
            &[],
        )
        .await
    {
        eprintln!("berth: {e}");
        let code = if rm {
            // removed by the daemon after the failed start; the wait has its exit code
            // (a daemon that does not remove it: remove it here)
            match tokio::time::timeout(std::time::Duration::from_secs(10), waiter).await {
                Ok(Ok(Some(code @ (126 | 127)))) => code as u8,
                Ok(_) => 125,
                Err(_) => {
                    crate::commands::containers::remove_quietly(c, &id).await;
                    125
                }
            }
        } else {
            crate::commands::containers::start_failure_code(c, &id).await
        };
        return Err(Exit(code).into());
    }
    let code = stream_and_wait(
        c,
        &id,
        conn,
        ca.tty,
        streams.stdin,
        keys,
        f.sig_proxy,
        waiter,
    )
    .await?;
    exit_for(code.unwrap_or(0))
}

/// Streams until the output ends (then the exit code from `waiter`) or a detach
/// (`None`).
#[allow(clippy::too_many_arguments)]
async fn stream_and_wait(
    c: &Client,
    id: &str,
    conn: Hijacked,
    tty: bool,
    stdin: bool,
    keys: Vec<u8>,
    sig_proxy: bool,
    waiter: tokio::task::JoinHandle<Option<i64>>,
) -> anyhow::Result<Option<i64>> {
    let resizer = if tty {
        follow_size(c, format!("/containers/{id}/resize"))
    } else {
        None
    };
    let proxy = (sig_proxy && !tty).then(|| proxy_signals(c, id));
    let raw = if tty && stdin {
        terminal::RawMode::enable()
    } else {
        None
    };
    let ended = pump(conn, tty, stdin, keys).await;
    drop(raw);
    if let Some(r) = resizer {
        r.abort();
    }
    if let Some(p) = proxy {
        p.abort();
    }
    if ended? == Ended::Detached {
        waiter.abort();
        return Ok(None);
    }
    Ok(Some(waiter.await.ok().flatten().unwrap_or(125)))
}

/// `berth start -a [-i]` of one container.
pub async fn start_attached(c: &Client, a: &StartArgs) -> anyhow::Result<()> {
    let f = &a.attach;
    let [name] = a.containers.as_slice() else {
        anyhow::bail!("you cannot start and attach multiple containers at once");
    };
    let (keys_s, keys) = detach_keys(f.detach_keys.as_deref())?;
    let info: Value = c.get_json(&format!("/containers/{name}/json"), &[]).await?;
    let id = info["Id"].as_str().unwrap_or(name).to_owned();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let open_stdin = info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let streams = Streams {
        stdin: f.interactive && open_stdin,
        stdout: f.attach,
        stderr: f.attach,
    };
    let conn = open(c, &id, streams, &keys_s).await?;
    let waiter = wait_next_exit(c, &id, "next-exit").await?;
    if let Err(e) = c
        .send(
            Method::POST,
            &format!("/containers/{id}/start"),
            &[],
            empty(),
            &[],
        )
        .await
    {
        eprintln!("{e}");
        let code = crate::commands::containers::start_failure_code(c, &id).await;
        return Err(Exit(code).into());
    }
    let code = stream_and_wait(c, &id, conn, tty, streams.stdin, keys, true, waiter).await?;
    exit_for(code.unwrap_or(0))
}

/// `berth attach`.
pub async fn attach(c: &Client, a: &AttachArgs) -> anyhow::Result<()> {
    let (keys_s, keys) = detach_keys(a.detach_keys.as_deref())?;
    let info: Value = c
        .get_json(&format!("/containers/{}/json", a.container), &[])
        .await?;
    if !info["State"]["Running"].as_bool().unwrap_or(false) {
        anyhow::bail!("You cannot attach to a stopped container, start it first");
    }
    let id = info["Id"].as_str().unwrap_or(&a.container).to_owned();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !a.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    if tty && stdin && !terminal::stdin_is_terminal() {
        anyhow::bail!("the input device is not a TTY");
    }
    let waiter = wait_next_exit(c, &id, "not-running").await?;
    let conn = open(
        c,
        &id,
        Streams {
            stdin,
            stdout: true,
            stderr: true,
        },
        &keys_s,
    )
    .await?;
    let code = stream_and_wait(c, &id, conn, tty, stdin, keys, a.sig_proxy, waiter).await?;
    exit_for(code.unwrap_or(0))
}
