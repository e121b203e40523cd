//! Container commands: `create`, `start`, `run`, `ps`, `logs`, `stop`, `kill`, `rm`,
//! `wait`, `inspect` (containers, then images). The clap structs hold what was typed;
//! `CreateArgs::body` resolves them into Docker's create body once.

use std::collections::BTreeMap;
use std::io::Write as _;

use berth_api::client::{Client, ClientError, body_chunks, empty, full};
use berth_types::reference::Reference;
use bytes::{Buf as _, BytesMut};
use clap::{ArgAction, Args};
use futures_util::StreamExt as _;
use hyper::Method;
use serde_json::{Value, json};

use crate::Exit;
use crate::commands::images::print_inspect;
use crate::commands::out;

// The flags `create` and `run` share.
#[derive(Debug, Args, Clone)]
pub struct CreateArgs {
    /// Assign a name to the container
    #[arg(long = "name")]
    pub name: Option<String>,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long = "rm")]
    pub rm: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long = "entrypoint")]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long = "hostname")]
    pub hostname: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file", value_name = "FILE")]
    pub label_file: Vec<std::path::PathBuf>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long = "pull", default_value = "missing", value_name = "string")]
    pub pull: String,
    /// Set platform if server is multi-platform capable
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// Suppress the pull output
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Connect a container to a network (bridge, host, none, container:<name|id>, or a
    /// user-defined network); repeat it to connect to several
    #[arg(long = "network", alias = "net")]
    pub network: Vec<String>,
    /// Networking: --ip, --network-alias, --link, -p, -P, --expose, --mac-address
    #[command(flatten)]
    pub net: crate::commands::run_net::NetFlags,
    /// Memory limit
    #[arg(short = 'm', long = "memory")]
    pub memory: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Number of CPUs
    #[arg(long = "cpus")]
    pub cpus: Option<f64>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long = "privileged")]
    pub privileged: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option")]
    pub dns_option: Vec<String>,
    /// Storage: -v, --mount, --tmpfs, --volumes-from
    #[command(flatten)]
    pub storage: crate::commands::run_mounts::MountFlags,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Set by a foreground `run`: what it attaches (not a flag).
    #[arg(skip)]
    pub foreground: Option<crate::commands::attach::Foreground>,
    /// Restart, health, init, ulimit, security, resource and logging flags
    #[command(flatten)]
    pub lifecycle: crate::commands::run_flags::LifecycleFlags,
    /// Print usage
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
    /// The image
    pub image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

// `run`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// -a, --detach-keys, --sig-proxy
    #[command(flatten)]
    pub attach: crate::commands::attach::RunAttachFlags,
    #[command(flatten)]
    pub create: CreateArgs,
}

// `create`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct CreateCmdArgs {
    #[command(flatten)]
    pub create: CreateArgs,
}

// `start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// -a, -i, --detach-keys
    #[command(flatten)]
    pub attach: crate::commands::attach::StartAttachFlags,
    /// Containers to start
    #[arg(required = true)]
    pub containers: Vec<String>,
}

// `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long = "latest")]
    pub latest: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template ("table", "json" or a template)
    #[arg(long = "format")]
    pub format: Option<String>,
    /// Display total file sizes
    #[arg(short = 's', long = "size")]
    pub size: bool,
}

// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long = "follow")]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long = "tail", default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long = "timestamps")]
    pub timestamps: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long = "since")]
    pub since: Option<String>,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long = "until")]
    pub until: Option<String>,
    /// The container
    pub container: String,
}

// `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "timeout", alias = "time")]
    pub timeout: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long = "signal")]
    pub signal: Option<String>,
    /// Containers to stop
    #[arg(required = true)]
    pub containers: Vec<String>,
}

// `kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long = "signal", default_value = "KILL")]
    pub signal: String,
    /// Containers to kill
    #[arg(required = true)]
    pub containers: Vec<String>,
}

// `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long = "volumes")]
    pub volumes: bool,
    /// Containers to remove
    #[arg(required = true)]
    pub containers: Vec<String>,
}

// `wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Containers to wait for
    #[arg(required = true)]
    pub containers: Vec<String>,
}

// `container inspect`.
#[derive(Debug, Args)]
pub struct ContainerInspectArgs {
    /// Format output using a Go template
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
    /// Display total file sizes
    #[arg(short = 's', long = "size")]
    pub size: bool,
    /// Containers to inspect
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// go-units `RAMInBytes`: `512m`, `1g`, `1.5GB`, `1024` (binary multiples).
pub fn ram_in_bytes(s: &str) -> anyhow::Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size: '{s}'"))?;
    let mult: i64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => anyhow::bail!("invalid size: '{s}'"),
    };
    Ok((n * mult as f64) as i64)
}

/// Docker's `--env-file`/`--label-file` format (moby `opts.parseKeyValueFile`): one
/// `KEY=value` per line, the value taken as is (no quotes, no trimming); blank lines and
/// lines starting with `#` skipped; a bare `KEY` takes its value from `lookup`, and is left
/// out when that has none.
pub fn read_kv_file(
    path: &std::path::Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("open {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{}: invalid utf8 bytes in the file", path.display()))?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = if i == 0 {
            raw.trim_start_matches('\u{feff}')
        } else {
            raw
        };
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if key.contains(char::is_whitespace) {
            anyhow::bail!("{}: variable '{key}' contains whitespaces", path.display());
        }
        if key.is_empty() {
            anyhow::bail!("{}: no variable name on line '{line}'", path.display());
        }
        match value {
            Some(v) => out.push(format!("{key}={v}")),
            None => {
                if let Some(v) = lookup(key) {
                    out.push(format!("{key}={v}"));
                }
            }
        }
    }
    Ok(out)
}

fn split_env(e: &str) -> String {
    // `-e NAME` takes NAME's value from the environment, as docker does
    if e.contains('=') {
        e.to_owned()
    } else {
        match std::env::var(e) {
            Ok(v) => format!("{e}={v}"),
            Err(_) => e.to_owned(),
        }
    }
}

impl CreateArgs {
    /// Docker's create body for these flags.
    pub fn body(&self, auto_remove: bool) -> anyhow::Result<Value> {
        let mut labels = BTreeMap::new();
        let mut label_lines = Vec::new();
        for f in &self.label_file {
            label_lines.extend(read_kv_file(f, |_| None)?);
        }
        label_lines.extend(self.label.iter().cloned());
        for l in &label_lines {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            labels.insert(k.to_owned(), v.to_owned());
        }
        // as docker: the files' variables first, then -e (a later one wins in the container)
        let mut env = Vec::new();
        for f in &self.env_file {
            env.extend(read_kv_file(f, |k| std::env::var(k).ok())?);
        }
        env.extend(
            self.env
                .iter()
                .map(|e| split_env(e))
                .filter(|e| e.contains('=')),
        );
        let mut host = json!({
            "AutoRemove": auto_remove,
            "NetworkMode": crate::commands::run_net::network_mode(&self.network),
            "Privileged": self.privileged,
            "ReadonlyRootfs": self.read_only,
        });
        if let Some(m) = &self.memory {
            host["Memory"] = json!(ram_in_bytes(m)?);
        }
        if let Some(p) = self.pids_limit {
            host["PidsLimit"] = json!(p);
        }
        if let Some(c) = self.cpus {
            host["NanoCpus"] = json!((c * 1e9) as i64);
        }
        if !self.cap_add.is_empty() {
            host["CapAdd"] = json!(self.cap_add);
        }
        if !self.cap_drop.is_empty() {
            host["CapDrop"] = json!(self.cap_drop);
        }
        for (key, v) in [
            ("ExtraHosts", &self.add_host),
            ("Dns", &self.dns),
            ("DnsSearch", &self.dns_search),
            ("DnsOptions", &self.dns_option),
        ] {
            if !v.is_empty() {
                host[key] = json!(v);
            }
        }
        let mut body = json!({
            "Image": self.image,
            "Env": env,
            "Labels": labels,
            "Tty": self.tty,
            "OpenStdin": self.interactive,
            "AttachStdout": true,
            "AttachStderr": true,
            "HostConfig": host,
        });
        if !self.command.is_empty() {
            body["Cmd"] = json!(self.command);
        }
        if let Some(e) = &self.entrypoint {
            // `--entrypoint ""` clears the image's entrypoint
            body["Entrypoint"] = if e.is_empty() { json!([]) } else { json!([e]) };
        }
        if let Some(w) = &self.workdir {
            body["WorkingDir"] = json!(w);
        }
        if let Some(u) = &self.user {
            body["User"] = json!(u);
        }
        if let Some(h) = &self.hostname {
            body["Hostname"] = json!(h);
        }
        self.storage.apply(&mut body)?;
        self.lifecycle.apply(&mut body, self.rm)?;
        self.net.apply(&mut body, &self.network)?;
        if let Some(f) = &self.foreground {
            f.apply(&mut body);
        } else if self.interactive {
            // as the docker CLI: `create -i` attaches stdin, closed once it ends
            body["AttachStdin"] = json!(true);
            body["StdinOnce"] = json!(true);
        }
        Ok(body)
    }
}

pub(crate) async fn create_container(
    c: &Client,
    a: &CreateArgs,
    auto_remove: bool,
) -> anyhow::Result<String> {
    // a bad flag value is the CLI's error, as docker's: printed, exit 125
    let body = a.body(auto_remove).map_err(|e| {
        if e.downcast_ref::<Exit>().is_none() {
            eprintln!("berth: {e:#}");
        }
        anyhow::Error::from(Exit(125))
    })?;
    a.lifecycle.check_cidfile()?;
    if !matches!(a.pull.as_str(), "always" | "missing" | "never") {
        eprintln!(
            "berth: invalid pull option: '{}': must be one of \"always\", \"missing\" or \"never\"",
            a.pull
        );
        return Err(Exit(125).into());
    }
    let image = Reference::parse(&a.image).ok();
    let pull = async |image: &Reference| -> anyhow::Result<()> {
        crate::commands::transfer::pull_for_run(c, image, a.platform.as_deref(), a.quiet)
            .await
            .map_err(|e| {
                eprintln!("berth: {e:#}");
                anyhow::Error::from(Exit(125))
            })
    };
    if a.pull == "always"
        && let Some(image) = &image
    {
        pull(image).await?;
    }
    let mut query = Vec::new();
    if let Some(n) = &a.name {
        query.push(("name", n.clone()));
    }
    if let Some(p) = &a.platform {
        query.push(("platform", p.clone()));
    }
    let body = serde_json::to_vec(&body)?;
    let headers = [("Content-Type", "application/json".to_owned())];
    let send = || {
        c.send(
            Method::POST,
            "/containers/create",
            &query,
            full(body.clone()),
            &headers,
        )
    };
    let mut resp = send().await;
    // docker's default (`--pull missing`): an image not here is pulled, then created again
    if let (
        Err(ClientError::Daemon {
            status: 404,
            message,
        }),
        Some(image),
    ) = (&resp, &image)
        && message.starts_with("No such image")
        && a.pull == "missing"
    {
        if !a.quiet {
            eprintln!("Unable to find image '{}' locally", image.familiar());
        }
        pull(image).await?;
        resp = send().await;
    }
    let resp = match resp {
        Ok(r) => r,
        Err(ClientError::Daemon {
            status: 404,
            message,
        }) if message.starts_with("No such image") => {
            eprintln!("berth: Error response from daemon: {message}");
            return Err(Exit(125).into());
        }
        Err(e @ ClientError::Daemon { .. }) => {
            eprintln!("berth: {e}");
            return Err(Exit(125).into());
        }
        Err(e) => return Err(e.into()),
    };
    let v: Value = berth_api::client::read_json(resp, "/containers/create").await?;
    for w in v
        .get("Warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(w) = w.as_str() {
            eprintln!("WARNING: {w}");
        }
    }
    let id = v
        .get("Id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the daemon's create answer has no Id"))?;
    a.lifecycle.write_cidfile(&id)?;
    Ok(id)
}

/// `berth create`.
pub async fn create(c: &Client, a: &CreateCmdArgs) -> anyhow::Result<()> {
    let id = create_container(c, &a.create, a.create.rm).await?;
    out(&format!("{id}\n"))
}

async fn post(c: &Client, path: &str, query: &[(&str, String)]) -> Result<(), ClientError> {
    c.send(Method::POST, path, query, empty(), &[])
        .await
        .map(|_| ())
}

/// The exit code for a failed start: the container's recorded 126/127 (structured, set
/// from the init's errno), else 125.
pub(crate) async fn start_failure_code(c: &Client, id: &str) -> u8 {
    let code = c
        .get_json::<Value>(&format!("/containers/{id}/json"), &[])
        .await
        .ok()
        .and_then(|v| v["State"]["ExitCode"].as_i64())
        .unwrap_or(125);
    if code == 126 || code == 127 {
        code as u8
    } else {
        125
    }
}

/// Copies a logs/attach stream to stdout/stderr (demultiplexed unless `tty`).
async fn copy_stream(
    resp: hyper::Response<hyper::body::Incoming>,
    tty: bool,
) -> anyhow::Result<()> {
    let mut chunks = Box::pin(body_chunks(resp));
    let mut buf = BytesMut::new();
    while let Some(c) = chunks.next().await {
        let c = c?;
        if tty {
            let mut o = std::io::stdout().lock();
            o.write_all(&c)?;
            o.flush()?;
            continue;
        }
        buf.extend_from_slice(&c);
        while buf.len() >= 8 {
            let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
            if buf.len() < 8 + len {
                break;
            }
            let kind = buf[0];
            buf.advance(8);
            let payload = buf.split_to(len);
            if kind == 2 {
                let mut e = std::io::stderr().lock();
                e.write_all(&payload)?;
                e.flush()?;
            } else {
                let mut o = std::io::stdout().lock();
                o.write_all(&payload)?;
                o.flush()?;
            }
        }
    }
    Ok(())
}

/// `DELETE /containers/{id}?force=1`, errors ignored (a `run --rm` that could not attach).
pub(crate) async fn remove_quietly(c: &Client, id: &str) {
    let path = format!("/containers/{id}");
    let _ = c
        .send(
            Method::DELETE,
            &path,
            &[("force", "1".into()), ("v", "1".into())],
            empty(),
            &[],
        )
        .await;
}

/// `berth run`.
pub async fn run(c: &Client, a: &RunArgs) -> anyhow::Result<()> {
    let ca = &a.create;
    if a.detach {
        // as the docker CLI: a detached run attaches nothing (StdinOnce off)
        let mut detached = ca.clone();
        detached.foreground = Some(crate::commands::attach::Foreground::default());
        let id = create_container(c, &detached, ca.rm).await?;
        if let Err(e) = post(c, &format!("/containers/{id}/start"), &[]).await {
            eprintln!("berth: {e}");
            return Err(Exit(start_failure_code(c, &id).await).into());
        }
        return out(&format!("{id}\n"));
    }
    // Foreground: create, attach, wait, start, stream (commands/attach.rs); --rm is
    // AutoRemove, waited for with `condition=removed` (as the docker CLI)
    crate::commands::attach::run_foreground(c, a).await
}

/// Runs `f` for each container, printing Docker's per-container error lines; exit 1 if
/// any failed.
async fn each<F, Fut>(names: &[String], mut f: F) -> anyhow::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, ClientError>>,
{
    let mut failed = false;
    for n in names {
        match f(n.clone()).await {
            Ok(Some(line)) => out(&format!("{line}\n"))?,
            Ok(None) => {}
            Err(e @ ClientError::Daemon { .. }) => {
                eprintln!("{e}");
                failed = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// `berth start`.
pub async fn start(c: &Client, a: &StartArgs) -> anyhow::Result<()> {
    if a.attach.attach || a.attach.interactive {
        return crate::commands::attach::start_attached(c, a).await;
    }
    each(&a.containers, |n| async move {
        post(c, &format!("/containers/{n}/start"), &[]).await?;
        Ok(Some(n))
    })
    .await
}

/// `berth stop`.
pub async fn stop(c: &Client, a: &StopArgs) -> anyhow::Result<()> {
    let mut q = Vec::new();
    if let Some(t) = a.timeout {
        q.push(("t", t.to_string()));
    }
    if let Some(s) = &a.signal {
        q.push(("signal", s.clone()));
    }
    each(&a.containers, |n| {
        let q = q.clone();
        async move {
            post(c, &format!("/containers/{n}/stop"), &q).await?;
            Ok(Some(n))
        }
    })
    .await
}

/// `berth kill`.
pub async fn kill(c: &Client, a: &KillArgs) -> anyhow::Result<()> {
    each(&a.containers, |n| async move {
        post(
            c,
            &format!("/containers/{n}/kill"),
            &[("signal", a.signal.clone())],
        )
        .await?;
        Ok(Some(n))
    })
    .await
}

/// `berth rm`.
pub async fn rm(c: &Client, a: &RmArgs) -> anyhow::Result<()> {
    each(&a.containers, |n| async move {
        let q = [
            ("force", if a.force { "1" } else { "0" }.to_owned()),
            ("v", if a.volumes { "1" } else { "0" }.to_owned()),
        ];
        c.send(
            Method::DELETE,
            &format!("/containers/{n}"),
            &q,
            empty(),
            &[],
        )
        .await?;
        Ok(Some(n))
    })
    .await
}

/// `berth wait`.
pub async fn wait(c: &Client, a: &WaitArgs) -> anyhow::Result<()> {
    each(&a.containers, |n| async move {
        let resp = c
            .send(
                Method::POST,
                &format!("/containers/{n}/wait"),
                &[],
                empty(),
                &[],
            )
            .await?;
        let v: Value = berth_api::client::read_json(resp, "wait").await?;
        Ok(Some(v["StatusCode"].as_i64().unwrap_or(-1).to_string()))
    })
    .await
}

/// `berth logs`.
pub async fn logs(c: &Client, a: &LogsArgs) -> anyhow::Result<()> {
    let info: Value = c
        .get_json(&format!("/containers/{}/json", a.container), &[])
        .await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let mut q = vec![
        ("stdout", "1".to_owned()),
        ("stderr", "1".to_owned()),
        ("tail", a.tail.clone()),
    ];
    if a.follow {
        q.push(("follow", "1".into()));
    }
    if a.timestamps {
        q.push(("timestamps", "1".into()));
    }
    let now = jiff::Timestamp::now();
    if let Some(s) = &a.since {
        q.push(("since", crate::commands::lifecycle::get_timestamp(s, now)?));
    }
    if let Some(u) = &a.until {
        q.push(("until", crate::commands::lifecycle::get_timestamp(u, now)?));
    }
    let resp = c
        .send(
            Method::GET,
            &format!("/containers/{}/logs", a.container),
            &q,
            empty(),
            &[],
        )
        .await?;
    copy_stream(resp, tty).await
}

pub use crate::commands::ps::{ps, ps_row};

/// `berth inspect` (containers, then images) and `berth container inspect`.
pub async fn inspect(
    c: &Client,
    names: &[String],
    format: Option<&str>,
    kind: Option<&str>,
    size: bool,
) -> anyhow::Result<()> {
    if let Some(k) = kind.filter(|k| !["container", "image", "volume"].contains(k)) {
        anyhow::bail!("\"{k}\" is not a valid value for --type");
    }
    let mut found = Vec::new();
    let mut failed = false;
    let size_query = [("size", "1".to_owned())];
    let container_query: &[(&str, String)] = if size { &size_query } else { &[] };
    for n in names {
        let mut hit = None;
        if kind != Some("image") && kind != Some("volume") {
            match c
                .get_json::<Value>(&format!("/containers/{n}/json"), container_query)
                .await
            {
                Ok(v) => hit = Some(v),
                Err(ClientError::Daemon { status: 404, .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if hit.is_none() && kind != Some("container") && kind != Some("volume") {
            match c.get_json::<Value>(&format!("/images/{n}/json"), &[]).await {
                Ok(v) => hit = Some(v),
                Err(ClientError::Daemon { status: 404, .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if hit.is_none() && kind.is_none_or(|k| k == "volume") {
            match c.get_json::<Value>(&format!("/volumes/{n}"), &[]).await {
                Ok(v) => hit = Some(v),
                Err(ClientError::Daemon { status: 404, .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match hit {
            Some(v) => found.push(v),
            None => {
                eprintln!("Error: No such {}: {n}", kind.unwrap_or("object"));
                failed = true;
            }
        }
    }
    print_inspect(&found, format)?;
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn run_flags_become_a_create_body() {
        let t = T::try_parse_from([
            "run",
            "--rm",
            "-e",
            "A=1",
            "-w",
            "/tmp",
            "-u",
            "1:2",
            "--entrypoint",
            "",
            "-h",
            "box",
            "--label",
            "x=y",
            "--network",
            "host",
            "-m",
            "64m",
            "--pids-limit",
            "10",
            "--cpus",
            "0.5",
            "busybox",
            "sh",
            "-c",
            "echo -n hi",
        ])
        .unwrap();
        let b = t.run.create.body(false).unwrap();
        assert_eq!(b["Cmd"], json!(["sh", "-c", "echo -n hi"]));
        assert_eq!(b["Entrypoint"], json!([]));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["WorkingDir"], "/tmp");
        assert_eq!(b["User"], "1:2");
        assert_eq!(b["Hostname"], "box");
        assert_eq!(b["Labels"], json!({"x": "y"}));
        assert_eq!(b["HostConfig"]["NetworkMode"], "host");
        assert_eq!(b["HostConfig"]["Memory"], 64 << 20);
        assert_eq!(b["HostConfig"]["PidsLimit"], 10);
        assert_eq!(b["HostConfig"]["NanoCpus"], 500_000_000);
        assert!(t.run.create.rm);
    }

    #[test]
    fn sizes_and_ellipsis() {
        use crate::commands::ps::ellipsis;
        assert_eq!(ram_in_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(ram_in_bytes("1GB").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("100").unwrap(), 100);
        assert!(ram_in_bytes("12x").is_err());
        assert_eq!(
            ellipsis("sh -c 'echo hello world'", 20),
            "sh -c 'echo hello w…"
        );
        assert_eq!(ellipsis("true", 20), "true");
    }
}
