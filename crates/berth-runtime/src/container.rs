//! The container lifecycle: create, start, state, kill, delete, exec, pause/resume,
//! update, ps. One file per concern would be nicer; the verbs are small enough here.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_cgroups::Cgroup;
use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Process, Spec};

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

    /// runc `create`: namespaces and rootfs set up, the init waits on the exec fifo.
    pub fn create(id: &str, spec: Spec, opts: &CreateOpts) -> Result<Container> {
        validate_id(id)?;
        let dir = opts.root.join(id);
        std::fs::create_dir_all(&opts.root)
            .map_err(|e| Error::io("failed to create state root", &opts.root, e))?;
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(id.into()));
            }
            Err(e) => return Err(Error::io("failed to create state dir", &dir, e)),
        }
        let mut cleanup = DirGuard(Some(dir.clone()), None);
        let r = Self::create_in(id, spec, opts, &dir, &mut cleanup);
        if r.is_ok() {
            cleanup.0 = None;
            cleanup.1 = None;
        }
        r
    }

    fn create_in(
        id: &str,
        spec: Spec,
        opts: &CreateOpts,
        dir: &Path,
        guard: &mut DirGuard,
    ) -> Result<Container> {
        let process = spec
            .process()
            .clone()
            .ok_or_else(|| Error::Spec("process is missing".into()))?;
        crate::process::check_supported(&spec).map_err(Error::Spec)?;
        let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(
                crate::process::compile_seccomp(s)
                    .map_err(|e| Error::Spec(format!("linux.seccomp: {e}")))?,
            ),
            None => None,
        };
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::Spec("root is missing".into()))?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            opts.bundle.join(root.path())
        };
        let rootfs = rootfs
            .canonicalize()
            .map_err(|e| Error::io("rootfs", &rootfs, e))?;
        let linux = spec.linux().clone().unwrap_or_default();
        let namespaces = linux.namespaces().clone().unwrap_or_default();
        let mut flags = berth_sys::CLONE_PIDFD as u64;
        let mut join = Vec::new();
        for ns in &namespaces {
            match ns.path() {
                Some(p) => join.push((open_path(p, rustix::fs::OFlags::RDONLY)?, ns.typ())),
                None => flags |= ns_flag(ns.typ()),
            }
        }
        let joins_pid = join.iter().any(|(_, t)| *t == LinuxNamespaceType::Pid);
        // user namespace first, so the others are joined with its privileges
        join.sort_by_key(|(_, t)| *t != LinuxNamespaceType::User);
        let new_user = flags & ns_flag(LinuxNamespaceType::User) != 0;
        let in_userns = new_user || join.iter().any(|(_, t)| *t == LinuxNamespaceType::User);
        if process.terminal().unwrap_or(false) && opts.console_socket.is_none() {
            return Err(Error::Spec(
                "process.terminal is true but no console socket was given".into(),
            ));
        }
        let console = opts
            .console_socket
            .as_deref()
            .map(connect_console)
            .transpose()?;

        let cg = cgroup::for_spec(linux.cgroups_path().as_ref().and_then(|p| p.to_str()), id)?;
        cg.create()?;
        guard.1 = Some(cgroup::for_spec(
            linux.cgroups_path().as_ref().and_then(|p| p.to_str()),
            id,
        )?);
        if let Some(res) = linux.resources() {
            cg.apply(&cgroup::with_default_devices(res))?;
        }
        let fifo = dir.join("exec.fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_bits_truncate(0o622),
            0,
        )
        .map_err(|e| Error::io("failed to create exec fifo", &fifo, e.into()))?;
        if new_user {
            // the init opens the fifo as the container's root: make it that user's
            let host = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
                maps.as_deref()
                    .unwrap_or(&[])
                    .iter()
                    .find(|m| m.container_id() == 0)
                    .map(|m| m.host_id())
            };
            let (u, g) = (host(linux.uid_mappings()), host(linux.gid_mappings()));
            rustix::fs::chown(
                &fifo,
                u.map(rustix::fs::Uid::from_raw),
                g.map(rustix::fs::Gid::from_raw),
            )
            .map_err(|e| Error::io("failed to chown exec fifo", &fifo, e.into()))?;
        }
        let fifo_fd = open_path(&fifo, rustix::fs::OFlags::PATH)?;
        let (parent_sock, child_sock) = sync::pair()?;
        let cg_fd = cg.dir_fd_for_clone()?;
        let ctx = ChildCtx {
            mode: Mode::Create {
                rootfs: rootfs.clone(),
                fifo: fifo_fd,
                no_pivot: opts.no_pivot,
                keyring: (!opts.no_new_keyring).then(|| format!("_ses.{id}")),
                cgroup_path: cg.path().to_string(),
                hook_state: serde_json::from_slice(&oci_state_json(
                    id,
                    "creating",
                    0,
                    &opts.bundle,
                    &spec,
                ))
                .unwrap_or_default(),
                v1_paths: cgroup::v1_paths(
                    linux.cgroups_path().as_ref().and_then(|p| p.to_str()),
                    id,
                ),
                new_mnt: flags & ns_flag(LinuxNamespaceType::Mount) != 0
                    || join.iter().any(|(_, t)| *t == LinuxNamespaceType::Mount),
                new_uts: flags & ns_flag(LinuxNamespaceType::Uts) != 0,
                new_cgroupns: flags & ns_flag(LinuxNamespaceType::Cgroup) != 0,
            },
            spec: &spec,
            process: &process,
            sock: child_sock,
            console,
            preserve_fds: opts.preserve_fds,
            join,
            in_userns,
            seccomp,
        };
        // the child's copies of our fds are its own; ours are dropped when `ctx` goes
        let (mut pid, pidfd) =
            crate::clone::spawn(flags, cg_fd.as_ref().map(|f| f.as_fd()), move || {
                child_main(ctx)
            })?;
        let first_pid = pid;
        let mut kill_guard = KillGuard(Some(pid));
        if cg_fd.is_none() {
            cg.add_task(pid)?;
        }
        if new_user {
            // gid_map needs setgroups denied only for an unprivileged writer; we are root
            write_id_map(
                pid,
                "uid_map",
                linux.uid_mappings().as_deref().unwrap_or(&[]),
            )?;
            write_id_map(
                pid,
                "gid_map",
                linux.gid_mappings().as_deref().unwrap_or(&[]),
            )?;
        }
        if let Some(adj) = process.oom_score_adj() {
            let path = format!("/proc/{pid}/oom_score_adj");
            std::fs::write(&path, adj.to_string())
                .map_err(|e| Error::io("failed to set oom_score_adj", path, e))?;
        }
        sync::send(&parent_sock, &Msg::Go)
            .map_err(|e| Error::Protocol(format!("write to init: {e}")))?;
        let bundle = opts.bundle.clone();
        let hook_state = |pid: i32| oci_state_json(id, "creating", pid, &bundle, &spec);
        let hooks = spec.hooks().clone();
        let hook_pid = pid;
        let res = await_ready(
            &parent_sock,
            || {
                if let Some(h) = &hooks {
                    let st = hook_state(hook_pid);
                    hooks::run_hooks("prestart", h.prestart().as_ref(), &st)?;
                    hooks::run_hooks("createRuntime", h.create_runtime().as_ref(), &st)?;
                }
                Ok(())
            },
            &mut pid,
            joins_pid,
        );
        if pid != first_pid {
            // the intermediate of a pid-namespace join: reap it
            reap(first_pid);
            kill_guard.0 = Some(pid);
        }
        if let Err(e) = res {
            kill_guard.kill_and_reap(first_pid);
            return Err(e);
        }
        let start_time = process_start_time(pid)
            .ok_or_else(|| Error::InitVanished("exited right after setup".into()))?;
        let state = State {
            id: id.to_string(),
            pid,
            pid_start_time: start_time,
            status: Status::Created,
            bundle: opts.bundle.clone(),
            rootfs,
            created: now_rfc3339(),
            cgroup_path: cg.path().to_string(),
            config: spec,
        };
        state.save(dir)?;
        kill_guard.0 = None;
        Ok(Container {
            state,
            dir: dir.to_path_buf(),
            sync: Some(parent_sock),
            pidfd: if pid == first_pid { pidfd } else { None },
        })
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
        self.state.status = Status::Running;
        self.state.save(&self.dir)?;
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
    pub fn delete(self, force: bool) -> Result<()> {
        let status = self.status();
        if !status.can_delete() && !force {
            return Err(Error::BadStatus {
                id: self.state.id.clone(),
                status: status.to_string(),
                op: "delete (use --force)",
            });
        }
        let mut errors = Vec::new();
        let cg = self.cgroup();
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
            if self.alive()
                && let Err(e) = self.kill(libc::SIGKILL, false)
            {
                errors.push(e);
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

    /// Start `process` inside the running container (its namespaces and cgroup). Returns
    /// the new process's host pid. The process is a grandchild of the caller (a pid
    /// namespace can only be entered by a child): a caller that wants to wait for it
    /// must be a child subreaper (`PR_SET_CHILD_SUBREAPER`).
    pub fn exec(&self, process: &Process, opts: &ExecOpts) -> Result<i32> {
        let status = self.status();
        if !matches!(status, Status::Running | Status::Created) {
            return Err(Error::BadStatus {
                id: self.state.id.clone(),
                status: status.to_string(),
                op: "exec",
            });
        }
        let namespaces = self
            .state
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let mut join = Vec::new();
        for ns in &namespaces {
            let path = PathBuf::from(format!("/proc/{}/ns/{}", self.state.pid, ns_file(ns.typ())));
            join.push((open_path(&path, rustix::fs::OFlags::RDONLY)?, ns.typ()));
        }
        if !self.alive() {
            return Err(Error::BadStatus {
                id: self.state.id.clone(),
                status: "stopped".into(),
                op: "exec",
            });
        }
        // mount last: after it, /proc/<pid>/ns paths would no longer resolve (we hold fds)
        join.sort_by_key(|(_, t)| match t {
            LinuxNamespaceType::User => 0,
            LinuxNamespaceType::Mount => 2,
            _ => 1,
        });
        let in_userns = join.iter().any(|(_, t)| *t == LinuxNamespaceType::User);
        if !join.iter().any(|(_, t)| *t == LinuxNamespaceType::Pid) {
            // no pid namespace of its own: still fork once through the same path by
            // joining the init's (= the host's) pid namespace
            let p = PathBuf::from(format!("/proc/{}/ns/pid", self.state.pid));
            join.push((
                open_path(&p, rustix::fs::OFlags::RDONLY)?,
                LinuxNamespaceType::Pid,
            ));
        }
        if process.terminal().unwrap_or(false) && opts.console_socket.is_none() {
            return Err(Error::Spec(
                "process.terminal is true but no console socket was given".into(),
            ));
        }
        let console = opts
            .console_socket
            .as_deref()
            .map(connect_console)
            .transpose()?;
        let cg = self.cgroup()?;
        let cg_fd = cg.dir_fd_for_clone()?;
        let (parent_sock, child_sock) = sync::pair()?;
        let spec = &self.state.config;
        let preserve_fds = opts.preserve_fds;
        let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(
                crate::process::compile_seccomp(s)
                    .map_err(|e| Error::Spec(format!("linux.seccomp: {e}")))?,
            ),
            None => None,
        };
        let (first, _) = crate::clone::spawn(
            berth_sys::CLONE_PIDFD as u64,
            cg_fd.as_ref().map(|f| f.as_fd()),
            move || {
                child_main(ChildCtx {
                    mode: Mode::Exec,
                    spec,
                    process,
                    sock: child_sock,
                    console,
                    preserve_fds,
                    join,
                    in_userns,
                    seccomp,
                })
            },
        )?;
        let mut guard = KillGuard(Some(first));
        if cg_fd.is_none() {
            cg.add_task(first)?;
        }
        sync::send(&parent_sock, &Msg::Go)
            .map_err(|e| Error::Protocol(format!("write to exec child: {e}")))?;
        let mut pid = first;
        let res = await_ready(&parent_sock, || Ok(()), &mut pid, true);
        reap(first);
        if let Err(e) = res {
            if pid != first {
                guard.0 = Some(pid);
                guard.kill_and_reap(0);
            }
            guard.0 = None;
            return Err(e);
        }
        guard.0 = None;
        // EOF = exec'd; an error here means execve itself failed
        if let Ok(Some(Msg::Error(e))) = sync::recv(&parent_sock) {
            return Err(Error::Init(e));
        }
        Ok(pid)
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
