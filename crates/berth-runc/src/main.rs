//! berth-runc: runc's command line over berth-runtime, as Podman, containerd and Docker
//! call it.
#![forbid(unsafe_code)]

mod cli;
mod defaults;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use berth_runtime::{Container, CreateOpts, ExecOpts};
use clap::Parser;
use cli::{Cli, Cmd, CreateArgs};

/// An error that carries the exit code `berth-runc` must leave with.
#[derive(Debug)]
struct Exit(i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}
impl std::error::Error for Exit {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            if let Some(Exit(c)) = e.downcast_ref::<Exit>() {
                return ExitCode::from(*c as u8);
            }
            let msg = format!("{e:#}");
            log_error(&cli, &msg);
            let code = e
                .chain()
                .find_map(|c| c.downcast_ref::<berth_runtime::Error>())
                .and_then(|e| match e {
                    berth_runtime::Error::Init(i) => i.exit_code(),
                    _ => None,
                })
                .unwrap_or(1);
            ExitCode::from(code as u8)
        }
    }
}

fn log_error(cli: &Cli, msg: &str) {
    let _ = writeln!(std::io::stderr(), "berth-runc: {msg}");
    log_line(cli, "error", msg);
}

/// Append one line to `--log` in runc's text or JSON format (Podman reads the JSON one).
fn log_line(cli: &Cli, level: &str, msg: &str) {
    if let Some(path) = &cli.log {
        let line = if cli.log_format == "json" {
            serde_json::json!({"level": level, "msg": msg, "time": berth_runtime::state::now_rfc3339()}).to_string()
        } else {
            format!(
                "time=\"{}\" level={level} msg={:?}",
                berth_runtime::state::now_rfc3339(),
                msg
            )
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, pid.to_string())
        .with_context(|| format!("failed to write pid file {tmp:?}"))?;
    std::fs::rename(&tmp, path).with_context(|| format!("failed to write pid file {path:?}"))
}

fn load_spec(bundle: &Path) -> Result<oci_spec::runtime::Spec> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).with_context(|| format!("failed to read {path:?}"))?;
    serde_json::from_slice(&data).with_context(|| format!("invalid OCI spec {path:?}"))
}

fn create(cli: &Cli, a: &CreateArgs) -> Result<Container> {
    let bundle =
        std::fs::canonicalize(&a.bundle).with_context(|| format!("bundle {:?}", a.bundle))?;
    let spec = load_spec(&bundle)?;
    let opts = CreateOpts {
        root: cli.root.clone(),
        bundle,
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds + listen_fds(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
    };
    let c = Container::create(&a.id, spec, &opts)?;
    if let Some(p) = &a.pid_file {
        write_pid_file(p, c.pid())?;
    }
    Ok(c)
}

/// systemd socket activation: LISTEN_FDS=n adds n preserved fds, as runc does.
fn listen_fds() -> u32 {
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Signals `run`/`exec` pass on to the container process, as runc does.
const FORWARDED: [i32; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// Wait for our (already exec'd) child `pid`, forwarding signals we receive to it;
/// returns its exit code (128+n when a signal killed it).
fn forward_signals_until_exit(pid: i32) -> Result<i32> {
    let mut sigs = FORWARDED.to_vec();
    sigs.push(libc::SIGCHLD);
    berth_sys::block_signals(&sigs).context("block signals")?;
    let p = rustix::process::Pid::from_raw(pid).ok_or_else(|| anyhow!("pid 0"))?;
    loop {
        if let Some((_, st)) =
            rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG)
                .context("waitpid")?
        {
            return Ok(berth_runtime::exit_code_of(st));
        }
        match berth_sys::wait_signal(&sigs, 1000).context("wait for signals")? {
            Some(libc::SIGCHLD) | None => {}
            Some(sig) => {
                if let Some(s) = rustix::process::Signal::from_named_raw(sig) {
                    let _ = rustix::process::kill_process(p, s);
                }
            }
        }
    }
}

fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => bail!("unknown signal {s:?}"),
    };
    Ok(n)
}

/// Docker-style sizes for `update --memory`: 512m, 1g, plain bytes, -1.
fn parse_size(s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.to_ascii_lowercase();
    let (num, mul) = match lower.trim_end_matches('b').chars().last() {
        Some('k') => (&lower[..lower.trim_end_matches('b').len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (lower.trim_end_matches('b'), 1),
    };
    let n: i64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    Ok(n * mul)
}

fn run(cli: &Cli) -> Result<i32> {
    if cli.debug {
        let args: Vec<String> = std::env::args().collect();
        let msg = format!(
            "berth-runc {} invoked as {args:?}",
            env!("CARGO_PKG_VERSION")
        );
        log_line(cli, "debug", &msg);
        if cli.log.is_none() {
            let _ = writeln!(std::io::stderr(), "berth-runc: debug: {msg}");
        }
    }
    if cli.systemd_cgroup {
        bail!(
            "--systemd-cgroup is not supported: there is no systemd on this host; use the cgroupfs manager"
        );
    }
    if cli.rootless.as_deref() == Some("true") {
        bail!(
            "--rootless (rootless containers, also `spec --rootless`) is not supported: berth-runc runs as root"
        );
    }
    match &cli.cmd {
        Cmd::Create(a) => {
            create(cli, a)?;
            Ok(0)
        }
        Cmd::Start { id } => {
            Container::load(&cli.root, id)?.start()?;
            Ok(0)
        }
        Cmd::Run {
            create: a,
            detach,
            keep,
        } => {
            if !detach {
                // the container may be a grandchild (pid namespace joined by path)
                let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
            }
            let mut c = create(cli, a)?;
            if let Err(e) = c.start() {
                let _ = Container::load(&cli.root, &a.id).map(|c| c.delete(true));
                return Err(e.into());
            }
            if *detach {
                return Ok(0);
            }
            let code = forward_signals_until_exit(c.pid())?;
            if !keep {
                Container::load(&cli.root, &a.id)?.delete(true)?;
            }
            Ok(code)
        }
        Cmd::Exec {
            id,
            command,
            process,
            tty,
            console_socket,
            detach,
            pid_file,
            cwd,
            env,
            user,
            additional_gids,
            cap,
            no_new_privs,
            preserve_fds,
            ..
        } => {
            let c = Container::load(&cli.root, id)?;
            let mut p: oci_spec::runtime::Process = match process {
                Some(f) => {
                    let data = std::fs::read(f)
                        .with_context(|| format!("failed to read process file {f:?}"))?;
                    serde_json::from_slice(&data)
                        .with_context(|| format!("invalid process JSON {f:?}"))?
                }
                None => {
                    if command.is_empty() {
                        bail!("exec needs a command or --process");
                    }
                    let mut p = c.state.config.process().clone().unwrap_or_default();
                    p.set_args(Some(command.clone()));
                    p.set_terminal(Some(*tty));
                    p
                }
            };
            if let Some(d) = cwd {
                p.set_cwd(d.into());
            }
            if !env.is_empty() {
                let mut e = p.env().clone().unwrap_or_default();
                e.extend(env.iter().cloned());
                p.set_env(Some(e));
            }
            if let Some(u) = user {
                let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
                p.user_mut().set_uid(
                    uid.parse()
                        .with_context(|| format!("invalid uid in --user {u:?}"))?,
                );
                p.user_mut().set_gid(
                    gid.parse()
                        .with_context(|| format!("invalid gid in --user {u:?}"))?,
                );
            }
            if !additional_gids.is_empty() {
                p.user_mut()
                    .set_additional_gids(Some(additional_gids.clone()));
            }
            if !cap.is_empty() {
                let mut caps = p.capabilities().clone().unwrap_or_default();
                for name in cap {
                    let c: oci_spec::runtime::Capability =
                        serde_json::from_value(serde_json::Value::String(name.clone()))
                            .map_err(|_| anyhow!("unknown capability {name:?}"))?;
                    let add = |s: Option<oci_spec::runtime::Capabilities>| {
                        let mut s = s.unwrap_or_default();
                        s.insert(c);
                        Some(s)
                    };
                    let (b, e, pm) = (
                        add(caps.bounding().clone()),
                        add(caps.effective().clone()),
                        add(caps.permitted().clone()),
                    );
                    caps.set_bounding(b);
                    caps.set_effective(e);
                    caps.set_permitted(pm);
                }
                p.set_capabilities(Some(caps));
            }
            if *no_new_privs {
                p.set_no_new_privileges(Some(true));
            }
            if !detach {
                let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
            }
            let pid = c.exec(
                &p,
                &ExecOpts {
                    console_socket: console_socket.clone(),
                    preserve_fds: *preserve_fds + listen_fds(),
                },
            )?;
            if let Some(f) = pid_file {
                write_pid_file(f, pid)?;
            }
            if *detach {
                return Ok(0);
            }
            forward_signals_until_exit(pid)
        }
        Cmd::State { id } => {
            let c = Container::load(&cli.root, id)?;
            println!("{}", serde_json::to_string_pretty(&c.oci_state())?);
            Ok(0)
        }
        Cmd::Kill { id, signal, all } => {
            let sig = parse_signal(signal.as_deref().unwrap_or("TERM"))?;
            Container::load(&cli.root, id)?.kill(sig, *all)?;
            Ok(0)
        }
        Cmd::Delete { id, force } => {
            match Container::load(&cli.root, id) {
                Ok(c) => c.delete(*force)?,
                // runc: deleting a container that does not exist with --force is fine
                Err(berth_runtime::Error::NotFound(_)) if *force => {}
                Err(e) => return Err(e.into()),
            }
            Ok(0)
        }
        Cmd::List { format, quiet } => {
            let all = Container::list(&cli.root)?;
            let mut out = std::io::stdout().lock();
            if *quiet {
                for c in &all {
                    writeln!(out, "{}", c.id())?;
                }
            } else if format == "json" {
                let v: Vec<serde_json::Value> = all
                    .iter()
                    .map(|c| {
                        let s = c.oci_state();
                        serde_json::json!({
                            "ociVersion": s["ociVersion"], "id": s["id"], "pid": s["pid"], "status": s["status"],
                            "bundle": s["bundle"], "rootfs": s["rootfs"], "created": s["created"], "owner": "root",
                            "annotations": s.get("annotations").cloned().unwrap_or(serde_json::json!({})),
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string(&v)?)?;
            } else if format == "table" {
                writeln!(
                    out,
                    "{:<20} {:<8} {:<10} {:<40} {:<31} OWNER",
                    "ID", "PID", "STATUS", "BUNDLE", "CREATED"
                )?;
                for c in &all {
                    let s = c.oci_state();
                    writeln!(
                        out,
                        "{:<20} {:<8} {:<10} {:<40} {:<31} root",
                        c.id(),
                        s["pid"],
                        c.status(),
                        c.state.bundle.display(),
                        c.state.created
                    )?;
                }
            } else {
                bail!("invalid --format {format:?}: use table or json");
            }
            Ok(0)
        }
        Cmd::Ps { id, format } => {
            let pids = Container::load(&cli.root, id)?.ps()?;
            if format == "json" {
                println!("{}", serde_json::to_string(&pids)?);
            } else {
                println!("PID      CMD");
                for p in pids {
                    let cmd =
                        std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                    println!("{p:<8} {}", cmd.trim());
                }
            }
            Ok(0)
        }
        Cmd::Pause { id } => {
            Container::load(&cli.root, id)?.pause()?;
            Ok(0)
        }
        Cmd::Resume { id } => {
            Container::load(&cli.root, id)?.resume()?;
            Ok(0)
        }
        Cmd::Update {
            id,
            resources,
            memory,
            memory_reservation,
            memory_swap,
            pids_limit,
            cpu_shares,
            cpu_quota,
            cpu_period,
            cpuset_cpus,
            cpuset_mems,
            blkio_weight,
        } => {
            let c = Container::load(&cli.root, id)?;
            let mut v = match resources {
                Some(f) if f.as_os_str() == "-" => {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                    serde_json::from_str(&s).context("invalid resources JSON on stdin")?
                }
                Some(f) => serde_json::from_slice(
                    &std::fs::read(f).with_context(|| format!("failed to read {f:?}"))?,
                )
                .with_context(|| format!("invalid resources JSON {f:?}"))?,
                None => serde_json::json!({}),
            };
            let obj = v
                .as_object_mut()
                .ok_or_else(|| anyhow!("resources must be a JSON object"))?;
            let mut mem = serde_json::Map::new();
            if let Some(m) = memory {
                mem.insert("limit".into(), parse_size(m)?.into());
            }
            if let Some(m) = memory_reservation {
                mem.insert("reservation".into(), parse_size(m)?.into());
            }
            if let Some(m) = memory_swap {
                mem.insert("swap".into(), parse_size(m)?.into());
            }
            if !mem.is_empty() {
                obj.insert("memory".into(), mem.into());
            }
            if let Some(p) = pids_limit {
                obj.insert("pids".into(), serde_json::json!({"limit": p}));
            }
            let mut cpu = serde_json::Map::new();
            if let Some(x) = cpu_shares {
                cpu.insert("shares".into(), (*x).into());
            }
            if let Some(x) = cpu_quota {
                cpu.insert("quota".into(), (*x).into());
            }
            if let Some(x) = cpu_period {
                cpu.insert("period".into(), (*x).into());
            }
            if let Some(x) = cpuset_cpus {
                cpu.insert("cpus".into(), x.clone().into());
            }
            if let Some(x) = cpuset_mems {
                cpu.insert("mems".into(), x.clone().into());
            }
            if !cpu.is_empty() {
                obj.insert("cpu".into(), cpu.into());
            }
            if let Some(w) = blkio_weight {
                obj.insert("blockIO".into(), serde_json::json!({"weight": w}));
            }
            let res: oci_spec::runtime::LinuxResources =
                serde_json::from_value(v).context("invalid linux.resources")?;
            c.update(&res)?;
            Ok(0)
        }
        Cmd::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("file {path:?} exists: remove it first");
            }
            std::fs::write(&path, serde_json::to_string_pretty(&defaults::spec())?)
                .with_context(|| format!("failed to write {path:?}"))?;
            Ok(0)
        }
        Cmd::Features => {
            println!("{}", serde_json::to_string_pretty(&defaults::features())?);
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert!(parse_signal("NOPE").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("x").is_err());
    }
}
