//! The container lifecycle: create (create.rs), exec (exec.rs), and the small verbs
//! here: load, list, status, state, start, wait, kill, delete, pause/resume, update, ps.

mod create;
mod exec;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_cgroups::Cgroup;
use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Spec};

use crate::error::{Error, Result};
use crate::init::{ChildCtx, Mode, child_main};
use crate::state::{State, Status, now_rfc3339, process_start_time};
use crate::sync::{self, Msg};
use crate::{cgroup, hooks};

/// Options for [`Container::create`] (runc's `create` flags).
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    /// State root, e.g. `/run/berth-runc`.
    pub root: PathBuf,
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master (SCM_RIGHTS) when `process.terminal`.
    pub console_socket: Option<PathBuf>,
    /// Fds 3..3+n are passed to the container process.
    pub preserve_fds: u32,
    /// MS_MOVE + chroot instead of pivot_root (for a rootfs on ramfs).
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of giving the container its own.
    pub no_new_keyring: bool,
}

/// Options for [`Container::exec`].
#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// A container known to the runtime (its state loaded from `<root>/<id>`).
#[derive(Debug)]
pub struct Container {
    pub state: State,
    dir: PathBuf,
    /// Held only by the process that created the container: the init's end reports
    /// exec failures after `start`.
    sync: Option<OwnedFd>,
    pidfd: Option<OwnedFd>,
    /// The cgroup as `create` opened it, for this value's `delete` (opening one reads
    /// /proc/self/mountinfo); `None` for a loaded container.
    cg: Option<Box<dyn Cgroup>>,
}

fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 1024 {
        return Err(Error::InvalidId(id.into(), "must be 1 to 1024 characters"));
    }
    if id == "."
        || id == ".."
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
    {
        return Err(Error::InvalidId(
            id.into(),
            "only [a-zA-Z0-9_+.-] are allowed",
        ));
    }
    Ok(())
}

fn ns_flag(t: LinuxNamespaceType) -> u64 {
    (match t {
        LinuxNamespaceType::Mount => berth_sys::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => berth_sys::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => berth_sys::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => berth_sys::CLONE_NEWIPC,
        LinuxNamespaceType::User => berth_sys::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => berth_sys::CLONE_NEWPID,
        LinuxNamespaceType::Network => berth_sys::CLONE_NEWNET,
        LinuxNamespaceType::Time => berth_sys::CLONE_NEWTIME,
    }) as u32 as u64
}

fn ns_file(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

fn open_path(path: &Path, flags: rustix::fs::OFlags) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        flags | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io("failed to open", path, e.into()))
}

fn connect_console(path: &Path) -> Result<OwnedFd> {
    use rustix::net::{
        AddressFamily, SocketAddrUnix, SocketFlags, SocketType, connect, socket_with,
    };
    let s = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys("console socket", e))?;
    let addr = SocketAddrUnix::new(path)
        .map_err(|e| Error::io("invalid console socket path", path, e.into()))?;
    connect(&s, &addr)
        .map_err(|e| Error::io("failed to connect to console socket", path, e.into()))?;
    Ok(s)
}

fn write_id_map(pid: i32, file: &str, maps: &[oci_spec::runtime::LinuxIdMapping]) -> Result<()> {
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, text).map_err(|e| Error::io("failed to write id map", path, e))
}

/// Read messages from the init until it is ready; answers hook requests. With
/// `expect_pid` (a pid namespace was joined, so an intermediate forked the real init) also
/// wait for the intermediate's `Pid` report, which may arrive after the init's `Ready`.
fn await_ready(
    sock: &OwnedFd,
    mut on_hooks: impl FnMut() -> Result<()>,
    pid: &mut i32,
    expect_pid: bool,
) -> Result<()> {
    let (mut ready, mut got_pid) = (false, !expect_pid);
    loop {
        if ready && got_pid {
            return Ok(());
        }
        match sync::recv(sock).map_err(|e| Error::Protocol(format!("read from init: {e}")))? {
            Some(Msg::Ready) => ready = true,
            Some(Msg::RunHooks) => {
                on_hooks()?;
                sync::send(sock, &Msg::HooksDone)
                    .map_err(|e| Error::Protocol(format!("write to init: {e}")))?;
            }
            Some(Msg::Pid { pid: p }) => {
                *pid = p;
                got_pid = true;
            }
            Some(Msg::Error(e)) => return Err(Error::Init(e)),
            Some(other) => return Err(Error::Protocol(format!("unexpected message {other:?}"))),
            None => return Err(Error::InitVanished("closed the sync socket".into())),
        }
    }
}

fn reap(pid: i32) -> Option<rustix::process::WaitStatus> {
    let p = rustix::process::Pid::from_raw(pid)?;
    rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty())
        .ok()
        .flatten()
        .map(|(_, s)| s)
}

/// The exit code a shell reports for a wait status (128+n for a signal).
pub fn exit_code_of(st: rustix::process::WaitStatus) -> i32 {
    if let Some(c) = st.exit_status() {
        c
    } else if let Some(sig) = st.terminating_signal() {
        128 + sig
    } else {
        255
    }
}

impl Container {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn id(&self) -> &str {
        &self.state.id
    }
    pub fn pid(&self) -> i32 {
        self.state.pid
    }

    /// The container's cgroup, re-resolved from its spec (on v1 each hierarchy has its
    /// own parent, so one recorded path is not enough).
    fn cgroup(&self) -> Result<Box<dyn Cgroup>> {
        let path = self
            .state
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone());
        cgroup::for_spec(path.as_ref().and_then(|p| p.to_str()), &self.state.id)
    }

    fn fifo_path(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }

    /// Load a container's recorded state.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = root.join(id);
        if !State::path(&dir).exists() {
            return Err(Error::NotFound(id.into()));
        }
        let state = State::load(&dir)?;
        Ok(Container {
            state,
            dir,
            sync: None,
            pidfd: None,
            cg: None,
        })
    }

    /// Every container under `root`.
    pub fn list(root: &Path) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("failed to list state root", root, e)),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(c) = Container::load(root, &name) {
                out.push(c);
            }
        }
        out.sort_by(|a, b| a.state.id.cmp(&b.state.id));
        Ok(out)
    }

    fn alive(&self) -> bool {
        self.state.pid > 0 && process_start_time(self.state.pid) == Some(self.state.pid_start_time)
    }

    /// The status right now (a dead or recycled pid means stopped).
    pub fn status(&self) -> Status {
        if !self.alive() {
            return Status::Stopped;
        }
        if self.fifo_path().exists() {
            return Status::Created;
        }
        if let Ok(cg) = self.cgroup()
            && matches!(
                cg.freezer_state(),
                Ok(berth_cgroups::FreezerState::Frozen | berth_cgroups::FreezerState::Freezing)
            )
        {
            return Status::Paused;
        }
        Status::Running
    }

    /// runc's `state` JSON.
    pub fn oci_state(&self) -> serde_json::Value {
        let status = self.status();
        let pid = if status == Status::Stopped {
            0
        } else {
            self.state.pid
        };
        let mut v = serde_json::json!({
            "ociVersion": "1.1.0",
            "id": self.state.id,
            "pid": pid,
            "status": status.as_str(),
            "bundle": self.state.bundle,
            "rootfs": self.state.rootfs,
            "created": self.state.created,
            "owner": "",
        });
        if let Some(a) = self.state.config.annotations() {
            v["annotations"] = serde_json::to_value(a).unwrap_or_default();
        }
        v
    }

    /// runc `start`: release the init from the exec fifo.
    pub fn start(&mut self) -> Result<()> {
        let status = self.status();
        if !status.can_start() {
            return Err(Error::BadStatus {
                id: self.state.id.clone(),
                status: status.to_string(),
                op: "start",
            });
        }
        let fifo = self.fifo_path();
        // the init holds the fifo open for reading: without a reader this is ENXIO
        let fd = match open_path(
            &fifo,
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK,
        ) {
            Ok(fd) => fd,
            Err(e) => {
                if let Some(sock) = self.sync.take()
                    && let Ok(Some(Msg::Error(ie))) = sync::recv(&sock)
                {
                    return Err(Error::Init(ie));
                }
                return Err(e);
            }
        };
        berth_sys::write_all_fd(&fd, b"0")
            .map_err(|e| Error::io("failed to write exec fifo", &fifo, e))?;
        drop(fd);
        let _ = std::fs::remove_file(&fifo);
        if let Some(sock) = self.sync.take() {
            // EOF = exec happened; otherwise the init tells us what failed.
            if let Ok(Some(Msg::Error(e))) = sync::recv(&sock) {
                return Err(Error::Init(e));
            }
        }
        // no state write here: the status is derived from reality (fifo gone, pid alive),
        // which saves an fsync on the hot path
        self.state.status = Status::Running;
        if let Some(h) = self.state.config.hooks().clone() {
            let st = oci_state_json(
                &self.state.id,
                "running",
                self.state.pid,
                &self.state.bundle,
                &self.state.config,
            );
            hooks::run_hooks("poststart", h.poststart().as_ref(), &st)?;
        }
        Ok(())
    }

    /// Wait for the init to exit (only in the process that created it) and return its
    /// exit code, 128+n for a signal.
    pub fn wait(&mut self) -> Result<i32> {
        if let Some(fd) = self.pidfd.take() {
            drop(fd);
        }
        match reap(self.state.pid) {
            Some(st) => Ok(exit_code_of(st)),
            None => Err(Error::sys("waitpid", std::io::Error::last_os_error())),
        }
    }

    /// Send `signal` to the init (pidfd, start time checked), or with `all` to every
    /// process of the container's cgroup.
    pub fn kill(&self, signal: i32, all: bool) -> Result<()> {
        let status = self.status();
        if all {
            let cg = self.cgroup()?;
            if status == Status::Paused && signal != libc::SIGKILL {
                cg.kill_all(signal)?;
                return Ok(());
            }
            cg.kill_all(signal)?;
            return Ok(());
        }
        if !status.can_kill() {
            return Err(Error::BadStatus {
                id: self.state.id.clone(),
                status: status.to_string(),
                op: "kill",
            });
        }
        let pid = rustix::process::Pid::from_raw(self.state.pid)
            .ok_or_else(|| Error::Protocol("pid 0".into()))?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .map_err(|e| Error::sys("pidfd_open", e))?;
        // the pid could have been recycled between status() and pidfd_open: check again
        if !self.alive() {
            return Err(Error::BadStatus {
                id: self.state.id.clone(),
                status: "stopped".into(),
                op: "kill",
            });
        }
        // SAFETY-free: rustix's Signal from a raw number the caller chose
        let sig = rustix::process::Signal::from_named_raw(signal)
            .ok_or_else(|| Error::Spec(format!("unknown signal number {signal}")))?;
        rustix::process::pidfd_send_signal(&pidfd, sig)
            .map_err(|e| Error::sys("pidfd_send_signal", e))?;
        Ok(())
    }

    /// runc `delete`: with `force` kill a running container first. Runs poststop hooks,
    /// removes the cgroup and the state dir; reports every failure at the end.
    pub fn delete(mut self, force: bool) -> Result<()> {
        let status = self.status();
        if !status.can_delete() && !force {
            return Err(Error::BadStatus {
                id: self.state.id.clone(),
                status: status.to_string(),
                op: "delete (use --force)",
            });
        }
        let mut errors = Vec::new();
        let cg = match self.cg.take() {
            Some(cg) => Ok(cg),
            None => self.cgroup(),
        };
        if status != Status::Stopped {
            if let Ok(cg) = &cg {
                if status == Status::Paused {
                    let _ = cg.kill_all(libc::SIGKILL);
                    let _ = cg.thaw();
                }
                if let Err(e) = cg.kill_all(libc::SIGKILL) {
                    errors.push(Error::from(e));
                }
            }
            // dying between our check and the signal is the outcome we want: "already
            // stopped" is success here
            if self.alive() {
                match self.kill(libc::SIGKILL, false) {
                    Ok(()) | Err(Error::BadStatus { .. }) => {}
                    Err(Error::Sys { source, .. })
                        if source.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => errors.push(e),
                }
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.alive() && Instant::now() < deadline {
                // our own child: reap it; otherwise wait for its parent to
                let _ = rustix::process::waitpid(
                    rustix::process::Pid::from_raw(self.state.pid),
                    rustix::process::WaitOptions::NOHANG,
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        match cg {
            Ok(cg) => {
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    match cg.destroy() {
                        Ok(()) => break,
                        Err(berth_cgroups::Error::Busy(_)) if Instant::now() < deadline => {
                            let _ = cg.kill_all(libc::SIGKILL);
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => {
                            errors.push(e.into());
                            break;
                        }
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        if let Some(h) = self.state.config.hooks() {
            let st = oci_state_json(
                &self.state.id,
                "stopped",
                0,
                &self.state.bundle,
                &self.state.config,
            );
            if let Err(e) = hooks::run_hooks("poststop", h.poststop().as_ref(), &st) {
                errors.push(e);
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            errors.push(Error::io("failed to remove state dir", &self.dir, e));
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::List(errors)),
        }
    }

    pub fn pause(&mut self) -> Result<()> {
        let status = self.status();
        if !status.can_pause() {
            return Err(Error::BadStatus {
                id: self.state.id.clone(),
                status: status.to_string(),
                op: "pause",
            });
        }
        self.cgroup()?.freeze()?;
        self.state.status = Status::Paused;
        self.state.save(&self.dir)
    }

    pub fn resume(&mut self) -> Result<()> {
        let status = self.status();
        if !status.can_resume() {
            return Err(Error::BadStatus {
                id: self.state.id.clone(),
                status: status.to_string(),
                op: "resume",
            });
        }
        self.cgroup()?.thaw()?;
        self.state.status = Status::Running;
        self.state.save(&self.dir)
    }

    /// Apply new resource limits to the container's cgroup.
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        self.cgroup()?.apply(resources)?;
        Ok(())
    }

    /// Host pids of every process in the container.
    pub fn ps(&self) -> Result<Vec<i32>> {
        Ok(self.cgroup()?.pids()?)
    }

    pub fn stats(&self) -> Result<berth_cgroups::Stats> {
        Ok(self.cgroup()?.stats()?)
    }
}

/// The OCI state JSON hooks get on stdin.
fn oci_state_json(id: &str, status: &str, pid: i32, bundle: &Path, spec: &Spec) -> Vec<u8> {
    let mut v = serde_json::json!({"ociVersion": "1.1.0", "id": id, "status": status, "pid": pid, "bundle": bundle});
    if let Some(a) = spec.annotations() {
        v["annotations"] = serde_json::to_value(a).unwrap_or_default();
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Removes a half-created container's state dir and cgroup unless disarmed.
struct DirGuard(Option<PathBuf>, Option<Box<dyn Cgroup>>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(cg) = self.1.take() {
            let _ = cg.kill_all(libc::SIGKILL);
            for _ in 0..200 {
                if cg.destroy().is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if let Some(d) = self.0.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Kills and reaps a child we spawned unless disarmed.
struct KillGuard(Option<i32>);

impl KillGuard {
    fn kill_and_reap(&mut self, also: i32) {
        if let Some(pid) = self.0.take() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid).expect("nonzero pid"),
                rustix::process::Signal::KILL,
            );
            reap(pid);
        }
        if also > 0 {
            reap(also);
        }
    }
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        self.kill_and_reap(0);
    }
}
