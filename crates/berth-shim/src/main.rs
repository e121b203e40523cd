//! berth-shim: one per container, single-threaded (berth-runtime's clone3 contract), small.
//!
//! `berth-shim <container-dir> <runtime-root> <id>`, spawned by berthd in its own process
//! group with stdout a pipe to berthd and stderr the shim's log file. It
//! 1. creates the container from `<container-dir>/bundle/config.json` with the
//!    container's stdout/stderr on two pipes (stdin /dev/null) and starts it;
//! 2. writes one JSON line on its stdout — `{"pid":n}` or `{"error":…,"exit_code":n}` —
//!    and closes it (berthd may be gone later: the shim never writes there again);
//! 3. copies both pipes into `<container-dir>/<id>-json.log` in Docker's json-file
//!    format until both reach EOF, reaps the init;
//! 4. writes `<container-dir>/exit.json` atomically FIRST, then deletes the runtime state
//!    (cgroup, state dir) and exits. berthd learns of the exit from the shim's exit (its
//!    child) or, after a daemon restart, from exit.json.
#![forbid(unsafe_code)]

mod logfile;

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_runtime::{Container, CreateOpts};
use rustix::event::{PollFd, PollFlags, poll};

use crate::logfile::{JsonLog, Stream};

/// What the shim reports to berthd on its stdout (one line).
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
enum Report {
    Started { pid: i32 },
    Failed { error: String, exit_code: i32 },
}

/// What the shim records when the container's init is gone.
#[derive(Debug, serde::Serialize)]
struct ExitStatus {
    exit_code: i32,
    finished_at: String,
}

#[derive(Debug, thiserror::Error)]
enum ShimError {
    #[error("usage: berth-shim <container-dir> <runtime-root> <id>")]
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

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ShimError + 'a {
    move |source| ShimError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // stderr is the shim's own log file
            eprintln!("berth-shim: {e}");
            ExitCode::from(1)
        }
    }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ShimError> {
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp).map_err(io_err("failed to create", &tmp))?;
    f.write_all(bytes)
        .map_err(io_err("failed to write", &tmp))?;
    f.sync_all().map_err(io_err("failed to sync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("failed to rename into place", path))?;
    Ok(())
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

fn report(out: OwnedFd, r: &Report) {
    let mut f = File::from(out);
    let mut line = serde_json::to_vec(r).unwrap_or_default();
    line.push(b'\n');
    // berthd may have gone away; the container runs on regardless
    let _ = f.write_all(&line);
}

fn run(args: &[String]) -> Result<(), ShimError> {
    let [_, dir, runtime_root, id] = args else {
        return Err(ShimError::Usage);
    };
    let dir = PathBuf::from(dir);
    let bundle = dir.join("bundle");
    let exit_path = dir.join("exit.json");
    let log_path = dir.join(format!("{id}-json.log"));

    // fd 1 is berthd's pipe: keep it aside, put the container's pipes on 1 and 2 for
    // the init to inherit, and /dev/null on 0.
    let to_berthd =
        rustix::io::dup(std::io::stdout().as_fd()).map_err(|e| ShimError::Sys("dup", e.into()))?;
    let shim_log =
        rustix::io::dup(std::io::stderr().as_fd()).map_err(|e| ShimError::Sys("dup", e.into()))?;
    let devnull = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(io_err("failed to open", Path::new("/dev/null")))?;
    let (out_r, out_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| ShimError::Sys("pipe", e.into()))?;
    let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| ShimError::Sys("pipe", e.into()))?;
    let dup2 = |what, r: rustix::io::Result<()>| r.map_err(|e| ShimError::Sys(what, e.into()));
    dup2("dup2 stdin", rustix::stdio::dup2_stdin(&devnull))?;
    dup2("dup2 stdout", rustix::stdio::dup2_stdout(&out_w))?;
    dup2("dup2 stderr", rustix::stdio::dup2_stderr(&err_w))?;
    drop(out_w);
    drop(err_w);

    let mut log = JsonLog::open(&log_path).map_err(io_err("failed to open log", &log_path))?;
    let started = create_and_start(id, &bundle, Path::new(runtime_root));

    // The init holds its own copies now: the shim's 1 and 2 go back to its log, so the
    // pipes reach EOF when the container's processes are gone.
    dup2("dup2 stdout", rustix::stdio::dup2_stdout(&shim_log))?;
    dup2("dup2 stderr", rustix::stdio::dup2_stderr(&shim_log))?;

    let mut container = match started {
        Ok(c) => c,
        Err((error, exit_code, leftover)) => {
            if let Some(c) = leftover {
                let _ = (*c).delete(true);
            }
            report(to_berthd, &Report::Failed { error, exit_code });
            return Ok(());
        }
    };
    report(
        to_berthd,
        &Report::Started {
            pid: container.pid(),
        },
    );

    pump(&out_r, &err_r, &mut log)?;
    let exit_code = container.wait().unwrap_or(255);
    let status = ExitStatus {
        exit_code,
        finished_at: now(),
    };
    write_atomic(&exit_path, &serde_json::to_vec(&status).unwrap_or_default())?;
    if let Err(e) = container.delete(true) {
        eprintln!("berth-shim: cleanup of container {id}: {e}");
    }
    Ok(())
}

type StartFailure = (String, i32, Option<Box<Container>>);

fn create_and_start(id: &str, bundle: &Path, root: &Path) -> Result<Container, StartFailure> {
    let config = bundle.join("config.json");
    let spec = oci_spec::runtime::Spec::load(&config)
        .map_err(|e| (format!("invalid spec {}: {e}", config.display()), 125, None))?;
    let opts = CreateOpts {
        root: root.to_owned(),
        bundle: bundle.to_owned(),
        ..Default::default()
    };
    let classify = |e: &berth_runtime::Error| match e {
        berth_runtime::Error::Init(ie) => ie.exit_code().unwrap_or(125),
        _ => 125,
    };
    let mut c = Container::create(id, spec, &opts).map_err(|e| {
        let code = classify(&e);
        (format!("OCI runtime create failed: {e}"), code, None)
    })?;
    match c.start() {
        Ok(()) => Ok(c),
        Err(e) => {
            let code = classify(&e);
            Err((
                format!("OCI runtime start failed: {e}"),
                code,
                Some(Box::new(c)),
            ))
        }
    }
}

/// Copies both pipes into the log until both are at EOF.
fn pump(out: &OwnedFd, err: &OwnedFd, log: &mut JsonLog) -> Result<(), ShimError> {
    let mut open = [true, true];
    let mut buf = vec![0u8; 64 * 1024];
    while open[0] || open[1] {
        let mut fds = Vec::with_capacity(2);
        let mut which = Vec::with_capacity(2);
        if open[0] {
            fds.push(PollFd::new(out, PollFlags::IN));
            which.push(0);
        }
        if open[1] {
            fds.push(PollFd::new(err, PollFlags::IN));
            which.push(1);
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(ShimError::Sys("poll", e.into())),
        }
        let ready: Vec<(usize, bool)> = fds
            .iter()
            .zip(&which)
            .map(|(f, w)| (*w, !f.revents().is_empty()))
            .collect();
        drop(fds);
        for (w, is_ready) in ready {
            if !is_ready {
                continue;
            }
            let fd = if w == 0 { out } else { err };
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => {
                    open[w] = false;
                    log.flush_partial(if w == 0 {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    });
                }
                Ok(n) => log.write(
                    if w == 0 {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    },
                    &buf[..n],
                ),
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(_) => open[w] = false,
            }
        }
    }
    Ok(())
}
