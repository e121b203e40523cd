//! Monitor mode: what the shim does once the container runs.
//!
//! After the `Started` line the shim `execve`s itself (`/proc/self/exe --monitor …`): the
//! pid, the children, the child-subreaper flag and every fd without close-on-exec survive,
//! while the code and heap of creating the container (spec parsing, namespaces, mounts,
//! seccomp) are gone, so an idle monitor's resident set is only the pages the poll loop
//! touches. The state crosses the exec on the command line:
//!
//! `berth-shim --monitor <container-dir> <runtime-root> <id> --pid N --dirfd N --berthd N
//! --log N [--rotate SIZE,FILES] [--listener N] [--master N] [--stdin N] [--out N] [--err N]
//! [--stdin-once]`
//!
//! where every `N` after `--pid` is an inherited fd: the container directory, the pipe to
//! berthd (the shim's original stdout), the json-file log, the attach listener, the pty
//! master or the container's stdin/stdout/stderr pipes. The shim's own 0-2 are /dev/null
//! and its log file (shim.log) on both sides of the exec. If the exec fails, the same
//! [`Monitor::run`] runs in place.
//!
//! When the container's output has ended and every exec is over, the monitor reaps the
//! init, writes `exit.json` (temp file + rename), tells berthd `{"exited":<code>}` on the
//! still-open pipe (ignoring EPIPE: berthd may be gone), closes the attached clients, and
//! only then deletes the runtime state (cgroups, state dir).

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

use berth_runtime::Container;

use crate::logfile::{JsonLog, Rotation};
use crate::server::{self, Proc};
use crate::{ShimError, io_err};

/// The first argument that selects monitor mode.
pub const FLAG: &str = "--monitor";

/// The runtime's container, loaded from its state dir only when needed (an exec, the
/// final delete): parsing the state would otherwise cost every idle monitor its pages.
#[derive(Debug)]
pub struct ContainerHandle {
    root: PathBuf,
    id: String,
    loaded: Option<Container>,
}

impl ContainerHandle {
    /// A container to load from `<root>/<id>` when first needed.
    pub fn new(root: PathBuf, id: String) -> ContainerHandle {
        ContainerHandle {
            root,
            id,
            loaded: None,
        }
    }

    /// One already in memory (the monitor running in place).
    pub fn with(root: PathBuf, c: Container) -> ContainerHandle {
        ContainerHandle {
            root,
            id: c.id().to_owned(),
            loaded: Some(c),
        }
    }

    pub fn get(&mut self) -> Result<&Container, berth_runtime::Error> {
        if self.loaded.is_none() {
            self.loaded = Some(Container::load(&self.root, &self.id)?);
        }
        Ok(self.loaded.as_ref().expect("just loaded"))
    }

    fn take(mut self) -> Result<Container, berth_runtime::Error> {
        self.get()?;
        Ok(self.loaded.take().expect("just loaded"))
    }
}

/// Everything the monitor needs; crosses the re-exec as arguments and fds.
#[derive(Debug)]
pub struct Monitor {
    pub dir: PathBuf,
    pub runtime_root: PathBuf,
    pub id: String,
    /// The container's init (our child).
    pub pid: i32,
    pub dirfd: OwnedFd,
    /// The pipe to berthd, for the exit line.
    pub to_berthd: OwnedFd,
    pub log: JsonLog,
    pub listener: Option<OwnedFd>,
    /// The container's stdio as the shim holds it (nothing pending yet).
    pub main: Proc,
}

/// What an idle monitor's arguments look like, parsed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    dir: PathBuf,
    runtime_root: PathBuf,
    id: String,
    pid: i32,
    dirfd: RawFd,
    berthd: RawFd,
    log: RawFd,
    rotate: Option<(u64, u32)>,
    listener: Option<RawFd>,
    master: Option<RawFd>,
    stdin: Option<RawFd>,
    out: Option<RawFd>,
    err: Option<RawFd>,
    stdin_once: bool,
}

impl Args {
    fn to_vec(&self) -> Vec<String> {
        let mut v = vec![
            FLAG.to_owned(),
            self.dir.to_string_lossy().into_owned(),
            self.runtime_root.to_string_lossy().into_owned(),
            self.id.clone(),
            "--pid".into(),
            self.pid.to_string(),
            "--dirfd".into(),
            self.dirfd.to_string(),
            "--berthd".into(),
            self.berthd.to_string(),
            "--log".into(),
            self.log.to_string(),
        ];
        if let Some((size, files)) = self.rotate {
            v.push("--rotate".into());
            v.push(format!("{size},{files}"));
        }
        for (name, fd) in [
            ("--listener", self.listener),
            ("--master", self.master),
            ("--stdin", self.stdin),
            ("--out", self.out),
            ("--err", self.err),
        ] {
            if let Some(fd) = fd {
                v.push(name.into());
                v.push(fd.to_string());
            }
        }
        if self.stdin_once {
            v.push("--stdin-once".into());
        }
        v
    }

    /// Parses what follows [`FLAG`].
    fn parse(args: &[String]) -> Result<Args, ShimError> {
        let [dir, runtime_root, id, rest @ ..] = args else {
            return Err(ShimError::Usage);
        };
        let mut a = Args {
            dir: dir.into(),
            runtime_root: runtime_root.into(),
            id: id.clone(),
            dirfd: -1,
            berthd: -1,
            log: -1,
            ..Args::default()
        };
        let mut it = rest.iter();
        let num = |v: Option<&String>| -> Result<i32, ShimError> {
            v.and_then(|v| v.parse().ok()).ok_or(ShimError::Usage)
        };
        while let Some(k) = it.next() {
            match k.as_str() {
                "--pid" => a.pid = num(it.next())?,
                "--dirfd" => a.dirfd = num(it.next())?,
                "--berthd" => a.berthd = num(it.next())?,
                "--log" => a.log = num(it.next())?,
                "--listener" => a.listener = Some(num(it.next())?),
                "--master" => a.master = Some(num(it.next())?),
                "--stdin" => a.stdin = Some(num(it.next())?),
                "--out" => a.out = Some(num(it.next())?),
                "--err" => a.err = Some(num(it.next())?),
                "--stdin-once" => a.stdin_once = true,
                "--rotate" => {
                    let v = it.next().ok_or(ShimError::Usage)?;
                    let (s, f) = v.split_once(',').ok_or(ShimError::Usage)?;
                    a.rotate = Some((
                        s.parse().map_err(|_| ShimError::Usage)?,
                        f.parse().map_err(|_| ShimError::Usage)?,
                    ));
                }
                _ => return Err(ShimError::Usage),
            }
        }
        if a.pid <= 0 || a.dirfd < 0 || a.berthd < 0 || a.log < 0 {
            return Err(ShimError::Usage);
        }
        Ok(a)
    }
}

/// Takes an fd inherited across the re-exec, close-on-exec again so that it cannot leak
/// into a process the monitor starts (an exec).
fn inherited(fd: RawFd) -> Result<OwnedFd, ShimError> {
    let fd = berth_sys::own_inherited_fd(fd).ok_or_else(|| {
        ShimError::Sys(
            "inherited fd",
            std::io::Error::other(format!("fd {fd} is not open")),
        )
    })?;
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
        .map_err(|e| ShimError::Sys("set close-on-exec", e.into()))?;
    Ok(fd)
}

fn keep_across_exec(fd: impl AsFd) -> Result<RawFd, ShimError> {
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty())
        .map_err(|e| ShimError::Sys("clear close-on-exec", e.into()))?;
    Ok(fd.as_fd().as_raw_fd())
}

/// The exit line for berthd.
#[derive(serde::Serialize)]
struct Exited {
    exited: i32,
}

/// What the shim records when the container's init is gone.
#[derive(Debug, serde::Serialize)]
struct ExitStatus {
    exit_code: i32,
    finished_at: String,
}

/// Writes `bytes` to `path` atomically: a temp file renamed into place. No fsync: the
/// record must survive a crash of berthd or of the shim, which the page cache does; a
/// crash of the OS takes the containers with it anyway.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ShimError> {
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp).map_err(io_err("failed to create", &tmp))?;
    f.write_all(bytes)
        .map_err(io_err("failed to write", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err("failed to rename into place", path))?;
    Ok(())
}

/// Reaps the init; its exit code (128+n for a signal), 255 if it cannot be waited for.
fn reap(pid: i32) -> i32 {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return 255;
    };
    loop {
        match rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, st))) => return berth_runtime::exit_code_of(st),
            Err(rustix::io::Errno::INTR) => {}
            Ok(None) | Err(_) => return 255,
        }
    }
}

impl Monitor {
    fn fds(&self) -> impl Iterator<Item = std::os::fd::BorrowedFd<'_>> {
        let m = &self.main;
        [
            Some(&self.dirfd),
            Some(&self.to_berthd),
            self.listener.as_ref(),
        ]
        .into_iter()
        .chain([&m.master, &m.stdin, &m.out, &m.err].map(Option::as_ref))
        .flatten()
        .map(|f| f.as_fd())
        .chain(std::iter::once(self.log.file().as_fd()))
    }

    fn args(&self) -> Result<Vec<String>, ShimError> {
        let opt = |fd: &Option<OwnedFd>| fd.as_ref().map(keep_across_exec).transpose();
        let a = Args {
            dir: self.dir.clone(),
            runtime_root: self.runtime_root.clone(),
            id: self.id.clone(),
            pid: self.pid,
            dirfd: keep_across_exec(&self.dirfd)?,
            berthd: keep_across_exec(&self.to_berthd)?,
            log: keep_across_exec(self.log.file())?,
            rotate: self.log.rotation().map(|r| (r.max_size, r.max_file)),
            listener: opt(&self.listener)?,
            master: opt(&self.main.master)?,
            stdin: opt(&self.main.stdin)?,
            out: opt(&self.main.out)?,
            err: opt(&self.main.err)?,
            stdin_once: self.main.stdin_once,
        };
        Ok(a.to_vec())
    }

    /// Re-executes the shim in monitor mode; runs the monitor in place if that fails.
    pub fn exec_or_run(self, container: Container) -> Result<(), ShimError> {
        match self.args() {
            Ok(args) => {
                let e = std::process::Command::new("/proc/self/exe")
                    .arg0("berth-shim")
                    .args(args)
                    .exec();
                eprintln!("berth-shim: re-exec into monitor mode: {e}; monitoring in place");
            }
            Err(e) => eprintln!("berth-shim: re-exec into monitor mode: {e}; monitoring in place"),
        }
        self.run_in_place(container)
    }

    /// Monitors without the re-exec (the container is already over, or the exec failed).
    pub fn run_in_place(self, container: Container) -> Result<(), ShimError> {
        for fd in self.fds() {
            let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
        }
        let root = self.runtime_root.clone();
        self.run(ContainerHandle::with(root, container))
    }

    /// Monitor mode's entry: `args` is what follows [`FLAG`].
    pub fn from_args(args: &[String]) -> Result<(Monitor, ContainerHandle), ShimError> {
        let a = Args::parse(args)?;
        // exec'd as /proc/self/exe (which survives a replaced binary), the comm is "exe"
        let _ = rustix::thread::set_name(c"berth-shim");
        let log_file = File::from(inherited(a.log)?);
        let log_path = a.dir.join(format!("{}-json.log", a.id));
        let rotation = a
            .rotate
            .map(|(max_size, max_file)| Rotation { max_size, max_file });
        let opt = |fd: Option<RawFd>| fd.map(inherited).transpose();
        let m = Monitor {
            dirfd: inherited(a.dirfd)?,
            to_berthd: inherited(a.berthd)?,
            log: JsonLog::from_file(log_file, &log_path, rotation),
            listener: opt(a.listener)?,
            main: Proc {
                master: opt(a.master)?,
                stdin: opt(a.stdin)?,
                out: opt(a.out)?,
                err: opt(a.err)?,
                stdin_once: a.stdin_once,
                ..Proc::default()
            },
            pid: a.pid,
            dir: a.dir,
            runtime_root: a.runtime_root.clone(),
            id: a.id.clone(),
        };
        let h = ContainerHandle::new(a.runtime_root, a.id);
        Ok((m, h))
    }

    /// Serves the container until its output ends, then records its exit and cleans up.
    pub fn run(self, mut container: ContainerHandle) -> Result<(), ShimError> {
        let sys = |what, e: rustix::io::Errno| ShimError::Sys(what, e.into());
        // the shim's own 0-2: /dev/null and its log
        let devnull = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdin(), 3)
            .map_err(|e| sys("dup", e))?;
        let shim_log = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stderr(), 3)
            .map_err(|e| sys("dup", e))?;
        let Monitor {
            dir,
            id,
            pid,
            dirfd,
            to_berthd,
            log,
            listener,
            main,
            ..
        } = self;
        let mut srv = server::Server::new(dirfd, listener, main, log, devnull, shim_log);
        srv.accept_early(&mut container);
        srv.run(&mut container);
        let clients = srv.take_clients();
        drop(srv);
        let exit_code = reap(pid);
        let status = ExitStatus {
            exit_code,
            finished_at: jiff::Timestamp::now().to_string(),
        };
        let recorded = write_atomic(
            &dir.join("exit.json"),
            &serde_json::to_vec(&status).unwrap_or_default(),
        );
        if recorded.is_ok() {
            let mut line = serde_json::to_vec(&Exited { exited: exit_code }).unwrap_or_default();
            line.push(b'\n');
            // berthd may be gone (EPIPE): the record is in exit.json
            let _ = File::from(to_berthd).write_all(&line);
        }
        // attached clients see their stream end only once the exit is on record
        drop(clients);
        let _ = std::fs::remove_file(dir.join("attach.sock"));
        match container.take() {
            Ok(c) => {
                if let Err(e) = c.delete(true) {
                    eprintln!("berth-shim: cleanup of container {id}: {e}");
                }
            }
            Err(e) => eprintln!("berth-shim: cleanup of container {id}: {e}"),
        }
        recorded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_args_round_trip() {
        let a = Args {
            dir: "/var/lib/berth/containers/abc".into(),
            runtime_root: "/run/berth/runtime".into(),
            id: "abc".into(),
            pid: 4242,
            dirfd: 3,
            berthd: 4,
            log: 5,
            rotate: Some((10 << 20, 3)),
            listener: Some(6),
            master: None,
            stdin: Some(7),
            out: Some(8),
            err: Some(9),
            stdin_once: true,
        };
        let v = a.to_vec();
        assert_eq!(v[0], FLAG);
        assert_eq!(Args::parse(&v[1..]).unwrap(), a);
        let b = Args {
            rotate: None,
            listener: None,
            master: Some(6),
            stdin: None,
            out: None,
            err: None,
            stdin_once: false,
            ..a
        };
        assert_eq!(Args::parse(&b.to_vec()[1..]).unwrap(), b);
    }

    #[test]
    fn monitor_args_need_the_pid_and_fds() {
        let v: Vec<String> = [
            "/d", "/r", "id", "--dirfd", "3", "--berthd", "4", "--log", "5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(matches!(Args::parse(&v), Err(ShimError::Usage)));
        let mut w = v.clone();
        w.extend(["--pid".to_owned(), "x".to_owned()]);
        assert!(matches!(Args::parse(&w), Err(ShimError::Usage)));
        let mut ok = v;
        ok.extend(["--pid".to_owned(), "12".to_owned()]);
        assert_eq!(Args::parse(&ok).unwrap().pid, 12);
    }
}
