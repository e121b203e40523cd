//! berth-shim: one per container, single-threaded (berth-runtime's clone3 contract), small.
//!
//! `berth-shim <container-dir> <runtime-root> <id>`, spawned by berthd in its own process
//! group with stdout a pipe to berthd and stderr the shim's log file. It
//! 1. creates the container from `<container-dir>/bundle/config.json` with the
//!    container's stdout/stderr on two pipes (stdin /dev/null) and starts it;
//! 2. writes one JSON line on its stdout — `{"pid":n}` or `{"error":…,"exit_code":n}`;
//!    after an error it exits, after `{"pid":n}` the pipe stays open;
//! 3. re-executes itself into monitor mode (`monitor.rs`: `berth-shim --monitor …`, same
//!    pid, children and fds), which accepts the attach clients berthd queued before the
//!    start, copies both pipes into `<container-dir>/<id>-json.log` in Docker's json-file
//!    format and to attached clients until both reach EOF, runs execs, then reaps the init
//!    (a container that ended within [`QUICK_EXIT`] of its start is monitored in place:
//!    the re-exec would only delay its exit report);
//! 4. writes `<container-dir>/exit.json` atomically FIRST, then one more line
//!    `{"exited":<code>}` to berthd (ignored if berthd is gone) and closes the pipe, then
//!    deletes the runtime state (cgroup, state dir) and exits. berthd learns of the exit
//!    from that line or the shim's exit (its child) or, after a daemon restart, from
//!    exit.json.
#![forbid(unsafe_code)]

mod logfile;
mod monitor;
mod proto;
mod server;

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_runtime::{Container, CreateOpts};

use crate::logfile::JsonLog;

/// What the shim reports to berthd on its stdout (one line).
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
enum Report {
    Started { pid: i32 },
    Failed { error: String, exit_code: i32 },
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ShimError {
    #[error(
        "usage: berth-shim <container-dir> <runtime-root> <id> [--attach] [--stdin] [--stdin-once] [--console-size H,W]"
    )]
    Usage,
    #[error("{what} {path:?}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: {1}")]
    Sys(&'static str, std::io::Error),
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ShimError + 'a {
    move |source| ShimError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let r = if args.get(1).map(String::as_str) == Some(monitor::FLAG) {
        monitor::Monitor::from_args(&args[2..]).and_then(|(m, c)| m.run(c))
    } else {
        run(&args)
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // stderr is the shim's own log file
            eprintln!("berth-shim: {e}");
            ExitCode::from(1)
        }
    }
}

fn report(out: &OwnedFd, r: &Report) {
    let mut line = serde_json::to_vec(r).unwrap_or_default();
    line.push(b'\n');
    // berthd may have gone away; the container runs on regardless
    let _ = berth_sys::write_all_fd(out, &line);
}

/// The options after the three positional arguments.
#[derive(Debug, Default)]
struct Opts {
    /// fd 0 is the attach listener berthd bound at `<dir>/attach.sock`.
    attach: bool,
    /// The container's stdin is a pipe the shim holds (`OpenStdin`).
    stdin: bool,
    /// Close it when an attached client's stdin ends (`StdinOnce`).
    stdin_once: bool,
    /// The pty's size before the container starts.
    console_size: Option<(u16, u16)>,
}

fn parse_opts(rest: &[String]) -> Result<Opts, ShimError> {
    let mut o = Opts::default();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--attach" => o.attach = true,
            "--stdin" => o.stdin = true,
            "--stdin-once" => o.stdin_once = true,
            "--console-size" => {
                let v = it.next().ok_or(ShimError::Usage)?;
                let (h, w) = v.split_once(',').ok_or(ShimError::Usage)?;
                o.console_size = Some((
                    h.parse().map_err(|_| ShimError::Usage)?,
                    w.parse().map_err(|_| ShimError::Usage)?,
                ));
            }
            _ => return Err(ShimError::Usage),
        }
    }
    Ok(o)
}

/// A listening unix socket at `path` (close-on-exec).
pub(crate) fn listen_unix(path: &Path) -> Result<OwnedFd, String> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let s = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket: {e}"))?;
    let addr = SocketAddrUnix::new(path).map_err(|e| format!("socket path {path:?}: {e}"))?;
    rustix::net::bind(&s, &addr).map_err(|e| format!("bind {path:?}: {e}"))?;
    rustix::net::listen(&s, 16).map_err(|e| format!("listen {path:?}: {e}"))?;
    Ok(s)
}

fn run(args: &[String]) -> Result<(), ShimError> {
    let [_, dir, runtime_root, id, rest @ ..] = args else {
        return Err(ShimError::Usage);
    };
    let opts = parse_opts(rest)?;
    let dir = PathBuf::from(dir);
    let bundle = dir.join("bundle");
    let log_path = dir.join(format!("{id}-json.log"));
    let sys = |what, e: rustix::io::Errno| ShimError::Sys(what, e.into());

    // exec'd processes are grandchildren: adopt them so their exits can be waited for
    rustix::process::set_child_subreaper(rustix::process::getpid().into())
        .map_err(|e| sys("set child subreaper", e))?;
    let dirfd = rustix::fs::open(
        &dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| ShimError::Io {
        what: "failed to open",
        path: dir.clone(),
        source: e.into(),
    })?;
    // fd 1 is berthd's pipe: keep it aside, put the container's pipes on 0-2 for
    // the init to inherit.
    let to_berthd =
        rustix::io::fcntl_dupfd_cloexec(std::io::stdout().as_fd(), 3).map_err(|e| sys("dup", e))?;
    let shim_log =
        rustix::io::fcntl_dupfd_cloexec(std::io::stderr().as_fd(), 3).map_err(|e| sys("dup", e))?;
    let listener = if opts.attach {
        Some(
            rustix::io::fcntl_dupfd_cloexec(std::io::stdin().as_fd(), 3)
                .map_err(|e| sys("dup", e))?,
        )
    } else {
        None
    };
    let devnull: OwnedFd = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(io_err("failed to open", Path::new("/dev/null")))?
        .into();
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json"));
    let tty = spec
        .as_ref()
        .ok()
        .and_then(|s| s.process().as_ref())
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let pipe =
        || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| sys("pipe", e));
    let mut main = server::Proc {
        stdin_once: opts.stdin_once,
        ..Default::default()
    };
    let (mut child_in, mut child_out, mut child_err) = (None, None, None);
    let mut console = None;
    if tty {
        let path = PathBuf::from(format!("/proc/self/fd/{}/console.sock", dirfd.as_raw_fd()));
        let _ = std::fs::remove_file(&path);
        let l = listen_unix(&path)
            .map_err(|e| ShimError::Sys("console socket", std::io::Error::other(e)))?;
        console = Some((l, path));
    } else {
        let (or, ow) = pipe()?;
        let (er, ew) = pipe()?;
        main.out = Some(or);
        main.err = Some(er);
        child_out = Some(ow);
        child_err = Some(ew);
        if opts.stdin {
            let (ir, iw) = pipe()?;
            main.stdin = Some(iw);
            child_in = Some(ir);
        }
    }
    let dup2 = |what, r: rustix::io::Result<()>| r.map_err(|e| ShimError::Sys(what, e.into()));
    dup2(
        "dup2 stdin",
        rustix::stdio::dup2_stdin(child_in.as_ref().unwrap_or(&devnull)),
    )?;
    dup2(
        "dup2 stdout",
        rustix::stdio::dup2_stdout(child_out.as_ref().unwrap_or(&devnull)),
    )?;
    dup2(
        "dup2 stderr",
        rustix::stdio::dup2_stderr(child_err.as_ref().unwrap_or(&devnull)),
    )?;

    let rotation = logfile::Rotation::from_config(&dir.join("log-config.json"));
    let log = JsonLog::open_rotating(&log_path, rotation)
        .map_err(io_err("failed to open log", &log_path))?;
    let created = create(
        id,
        spec,
        &bundle,
        Path::new(runtime_root),
        console.as_ref().map(|c| c.1.clone()),
    );

    // The init holds its own copies now: the shim's 0-2 go back to /dev/null and its
    // log, so the pipes reach EOF when the container's processes are gone.
    dup2("dup2 stdin", rustix::stdio::dup2_stdin(&devnull))?;
    dup2("dup2 stdout", rustix::stdio::dup2_stdout(&shim_log))?;
    dup2("dup2 stderr", rustix::stdio::dup2_stderr(&shim_log))?;
    drop((child_in, child_out, child_err));

    let mut container = match created {
        Ok(c) => c,
        Err((error, exit_code)) => {
            if let Some((_, p)) = &console {
                let _ = std::fs::remove_file(p);
            }
            report(&to_berthd, &Report::Failed { error, exit_code });
            return Ok(());
        }
    };
    if let Some((l, path)) = console {
        let got = rustix::net::accept_with(&l, rustix::net::SocketFlags::CLOEXEC)
            .map_err(std::io::Error::from)
            .and_then(|s| berth_sys::recv_fd(s.as_fd()));
        let _ = std::fs::remove_file(&path);
        match got {
            Ok((master, _)) => {
                if let Some((h, w)) = opts.console_size.filter(|(h, w)| *h > 0 && *w > 0) {
                    let ws = rustix::termios::Winsize {
                        ws_row: h,
                        ws_col: w,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    let _ = rustix::termios::tcsetwinsize(&master, ws);
                }
                main.master = Some(master);
            }
            Err(e) => {
                let _ = container.delete(true);
                let error = format!("cannot receive the container's pty: {e}");
                report(
                    &to_berthd,
                    &Report::Failed {
                        error,
                        exit_code: 125,
                    },
                );
                return Ok(());
            }
        }
    }
    if let Err(e) = container.start() {
        let exit_code = classify(&e);
        let _ = container.delete(true);
        let error = format!("OCI runtime start failed: {e}");
        report(&to_berthd, &Report::Failed { error, exit_code });
        return Ok(());
    }
    report(
        &to_berthd,
        &Report::Started {
            pid: container.pid(),
        },
    );
    // the pipe to berthd stays open for the exit line
    let over = ended_within(container.pid(), QUICK_EXIT);
    let m = monitor::Monitor {
        dir,
        runtime_root: PathBuf::from(runtime_root),
        id: id.clone(),
        pid: container.pid(),
        dirfd,
        to_berthd,
        log,
        listener,
        main,
    };
    if over {
        // nothing left to keep small: report the exit now rather than after an exec
        return m.run_in_place(container);
    }
    m.exec_or_run(container)
}

/// How long the shim waits, after reporting the start, for a container that ends at
/// once (`run --rm … true`) before it re-executes itself into the small monitor. The
/// re-exec (a new image, glibc's start-up: ≈0.8 ms here) only pays for a container that
/// keeps running; for one that is already over it would stand between its exit and the
/// `{"exited":n}` report. A container that is still running after this only gets its
/// small monitor this much later; its output waits in the pipes meanwhile.
const QUICK_EXIT: std::time::Duration = std::time::Duration::from_millis(5);

/// Whether the process `pid` (our child) exits within `wait` (not reaped: the monitor
/// reaps it). False when it cannot be watched.
fn ended_within(pid: i32, wait: std::time::Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return false;
    };
    let ts = Timespec {
        tv_sec: wait.as_secs() as _,
        tv_nsec: wait.subsec_nanos() as _,
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    matches!(rustix::event::poll(&mut fds, Some(&ts)), Ok(n) if n > 0)
}

fn classify(e: &berth_runtime::Error) -> i32 {
    match e {
        berth_runtime::Error::Init(ie) => ie.exit_code().unwrap_or(125),
        _ => 125,
    }
}

/// Creates the container (its init waits on the exec fifo until `start`).
fn create(
    id: &str,
    spec: Result<oci_spec::runtime::Spec, oci_spec::OciSpecError>,
    bundle: &Path,
    root: &Path,
    console_socket: Option<PathBuf>,
) -> Result<Container, (String, i32)> {
    let config = bundle.join("config.json");
    let spec = spec.map_err(|e| (format!("invalid spec {}: {e}", config.display()), 125))?;
    let opts = CreateOpts {
        root: root.to_owned(),
        bundle: bundle.to_owned(),
        console_socket,
        ..Default::default()
    };
    Container::create(id, spec, &opts)
        .map_err(|e| (format!("OCI runtime create failed: {e}"), classify(&e)))
}
