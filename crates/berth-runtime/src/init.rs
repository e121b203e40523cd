//! What runs in the cloned child until it execs the user's process. Every failure is
//! sent to the runtime as an [`InitError`] (stage, errno, path) before the child exits.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::error::{InitError, Stage};
use crate::sync::{self, Msg};
use crate::{process, rootfs};

type R<T> = Result<T, InitError>;

pub(crate) enum Mode {
    Create {
        rootfs: PathBuf,
        fifo: OwnedFd,
        no_pivot: bool,
        keyring: Option<String>,
        cgroup_path: String,
        v1_paths: Vec<(String, String)>,
        hook_state: serde_json::Value,
        new_mnt: bool,
        new_uts: bool,
        new_cgroupns: bool,
    },
    Exec,
}

pub(crate) struct ChildCtx<'a> {
    pub mode: Mode,
    pub spec: &'a Spec,
    pub process: &'a Process,
    pub sock: OwnedFd,
    pub console: Option<OwnedFd>,
    pub preserve_fds: u32,
    /// Namespaces to join, user first.
    pub join: Vec<(OwnedFd, LinuxNamespaceType)>,
    pub in_userns: bool,
    /// The seccomp program, generated (or read from the cache) by the runtime before the
    /// clone; the child only loads it.
    pub seccomp: Option<crate::seccomp::SeccompProgram>,
    /// cgroup v1: the `tasks` files of the container's cgroup, joined first thing.
    pub cgroup_tasks: Vec<OwnedFd>,
    /// Wait for the runtime's `Go` before anything else: only when the runtime has
    /// something to do to the new process first (a user namespace's id maps). Otherwise
    /// the child goes on at once, one wake-up less on the way to `Ready`.
    pub wait_for_go: bool,
}

/// The child's entry point; returns the exit code for `_exit` on failure.
pub(crate) fn child_main(mut ctx: ChildCtx<'_>) -> i32 {
    match run(&mut ctx) {
        Ok(Some(code)) => code,
        Ok(None) => 0,
        Err(e) => {
            let code = e.exit_code().unwrap_or(1);
            let _ = sync::send(&ctx.sock, &Msg::Error(e));
            code
        }
    }
}

fn sysio(stage: Stage, what: &str) -> impl Fn(rustix::io::Errno) -> InitError + '_ {
    move |e| InitError::new(stage, &e.into(), None, what)
}

/// `Ok(Some(code))`: this process is an intermediate that must exit with `code`.
fn run(ctx: &mut ChildCtx<'_>) -> R<Option<i32>> {
    // Nothing in the container may open /proc/<us>/exe (the host binary) while we
    // still run it; execve of the user's binary resets this.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    if ctx.wait_for_go {
        match sync::recv(&ctx.sock) {
            Ok(Some(Msg::Go)) => {}
            other => {
                return Err(InitError::plain(
                    Stage::Namespaces,
                    None,
                    format!("expected go from runtime, got {other:?}"),
                ));
            }
        }
    }
    crate::cgroup::join_self(std::mem::take(&mut ctx.cgroup_tasks))
        .map_err(sysio(Stage::Cgroup, "join the container's cgroup"))?;
    let mut joined_pid = false;
    for (fd, typ) in ctx.join.drain(..) {
        let t = match typ {
            LinuxNamespaceType::User => rustix::thread::LinkNameSpaceType::User,
            LinuxNamespaceType::Mount => rustix::thread::LinkNameSpaceType::Mount,
            LinuxNamespaceType::Network => rustix::thread::LinkNameSpaceType::Network,
            LinuxNamespaceType::Ipc => rustix::thread::LinkNameSpaceType::InterProcessCommunication,
            LinuxNamespaceType::Uts => rustix::thread::LinkNameSpaceType::HostNameAndNISDomainName,
            LinuxNamespaceType::Cgroup => rustix::thread::LinkNameSpaceType::ControlGroup,
            LinuxNamespaceType::Pid => {
                joined_pid = true;
                rustix::thread::LinkNameSpaceType::ProcessID
            }
            LinuxNamespaceType::Time => rustix::thread::LinkNameSpaceType::Time,
        };
        rustix::thread::move_into_link_name_space(fd.as_fd(), Some(t)).map_err(|e| {
            InitError::new(
                Stage::Namespaces,
                &e.into(),
                None,
                &format!("setns {typ:?}"),
            )
        })?;
    }
    if ctx.in_userns {
        let root_u = rustix::fs::Uid::ROOT;
        let root_g = rustix::fs::Gid::ROOT;
        rustix::thread::set_thread_res_gid(root_g, root_g, root_g)
            .map_err(sysio(Stage::User, "become root gid in user namespace"))?;
        rustix::thread::set_thread_res_uid(root_u, root_u, root_u)
            .map_err(sysio(Stage::User, "become root in user namespace"))?;
    }
    if joined_pid {
        // setns(CLONE_NEWPID) only applies to children: fork once more; the grandchild
        // is the container process, this intermediate reports its pid and leaves.
        let (pid, _) = crate::clone::spawn(0, None, || match run_inner(ctx) {
            Ok(()) => 0,
            Err(e) => {
                let code = e.exit_code().unwrap_or(1);
                let _ = sync::send(&ctx.sock, &Msg::Error(e));
                code
            }
        })
        .map_err(|e| InitError::plain(Stage::Namespaces, None, e.to_string()))?;
        sync::send(&ctx.sock, &Msg::Pid { pid })
            .map_err(|e| InitError::new(Stage::Namespaces, &e, None, "report pid"))?;
        return Ok(Some(0));
    }
    run_inner(ctx)?;
    Ok(None)
}

fn run_inner(ctx: &mut ChildCtx<'_>) -> R<()> {
    let spec = ctx.spec;
    let mut fifo_fd: Option<i32> = None;
    let mut start_hook_state = Vec::new();
    if let Mode::Create {
        rootfs,
        fifo,
        no_pivot,
        keyring,
        cgroup_path,
        v1_paths,
        hook_state,
        new_mnt,
        new_uts,
        new_cgroupns,
    } = &ctx.mode
    {
        if *new_uts {
            if let Some(h) = spec.hostname() {
                rustix::system::sethostname(h.as_bytes()).map_err(|e| {
                    InitError::new(
                        Stage::Hostname,
                        &e.into(),
                        None,
                        &format!("sethostname {h:?}"),
                    )
                })?;
            }
            if let Some(d) = spec.domainname() {
                rustix::system::setdomainname(d.as_bytes()).map_err(|e| {
                    InitError::new(
                        Stage::Hostname,
                        &e.into(),
                        None,
                        &format!("setdomainname {d:?}"),
                    )
                })?;
            }
        }
        if let Some(name) = keyring {
            match berth_sys::join_session_keyring(name) {
                Ok(_) => {}
                // no keyrings in this kernel, or the user namespace's quota: runc goes on too
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOSYS) | Some(libc::EDQUOT) | Some(libc::EACCES)
                    ) => {}
                Err(e) => {
                    return Err(InitError::new(
                        Stage::Namespaces,
                        &e,
                        None,
                        "join a new session keyring",
                    ));
                }
            }
        }
        if !*new_mnt {
            return Err(InitError::plain(
                Stage::Rootfs,
                None,
                "a container needs its own mount namespace",
            ));
        }
        rootfs::prepare_root(spec, rootfs)?;
        let mut dev_is_tmpfs = false;
        for m in spec.mounts().as_deref().unwrap_or(&[]) {
            rootfs::mount_one(rootfs, m, cgroup_path, v1_paths, *new_cgroupns)?;
            if m.destination() == Path::new("/dev") {
                dev_is_tmpfs = m.typ().as_deref() == Some("tmpfs");
            }
        }
        if dev_is_tmpfs {
            rootfs::setup_dev(spec, rootfs, ctx.in_userns)?;
        }
        // the runtime runs prestart/createRuntime hooks now, between the mounts and
        // pivot_root; without any there is nothing to wait for
        let runtime_hooks = spec.hooks().as_ref().is_some_and(|h| {
            h.prestart().as_ref().is_some_and(|v| !v.is_empty())
                || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
        });
        if runtime_hooks {
            sync::send(&ctx.sock, &Msg::RunHooks)
                .map_err(|e| InitError::new(Stage::Hook, &e, None, "ask for hooks"))?;
            match sync::recv(&ctx.sock) {
                Ok(Some(Msg::HooksDone)) => {}
                other => {
                    return Err(InitError::plain(
                        Stage::Hook,
                        None,
                        format!("prestart/createRuntime hooks did not finish: {other:?}"),
                    ));
                }
            }
        }
        if let Some(h) = spec.hooks() {
            // still on the host's /proc: /proc/self is our host pid, which hooks expect
            let host_pid: i64 = std::fs::read_link("/proc/self")
                .ok()
                .and_then(|p| p.to_str()?.parse().ok())
                .unwrap_or(0);
            let mut st = hook_state.clone();
            st["pid"] = host_pid.into();
            st["status"] = "creating".into();
            crate::hooks::run_hooks(
                "createContainer",
                h.create_container().as_ref(),
                &serde_json::to_vec(&st).unwrap_or_default(),
            )
            .map_err(|e| InitError::plain(Stage::Hook, None, e.to_string()))?;
            st["status"] = "created".into();
            start_hook_state = serde_json::to_vec(&st).unwrap_or_default();
        }
        rootfs::enter_root(rootfs, *no_pivot)?;
        for (k, v) in spec
            .linux()
            .as_ref()
            .and_then(|l| l.sysctl().as_ref())
            .into_iter()
            .flatten()
        {
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            std::fs::write(&path, v).map_err(|e| {
                InitError::new(
                    Stage::Sysctl,
                    &e,
                    Some(&path),
                    &format!("set sysctl {k}={v}"),
                )
            })?;
        }
        fifo_fd = Some(fifo.as_raw_fd());
    }
    if ctx.process.terminal().unwrap_or(false) {
        setup_console(ctx)?;
    }
    if matches!(ctx.mode, Mode::Create { .. }) {
        if let Some(l) = spec.linux() {
            for p in l.readonly_paths().as_deref().unwrap_or(&[]) {
                rootfs::readonly_path(p)?;
            }
            for p in l.masked_paths().as_deref().unwrap_or(&[]) {
                rootfs::mask_path(p)?;
            }
        }
        if spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false)
        {
            rootfs::readonly_root()?;
        }
    }
    let p = ctx.process;
    process::set_rlimits(p.rlimits().as_deref().unwrap_or(&[]))?;
    let nnp = p.no_new_privileges().unwrap_or(false);
    if nnp {
        rustix::thread::set_no_new_privs(true)
            .map_err(sysio(Stage::Capabilities, "set no_new_privs"))?;
    }
    let seccomp = ctx.seccomp.as_ref();
    if let (Some(s), false) = (seccomp, nnp) {
        // without no_new_privs the filter needs CAP_SYS_ADMIN: load it while we have it
        process::load_seccomp(s)?;
    }
    // Open the exec fifo read-write while still root: after the uid switch we could not
    // open /proc/self/fd (we are non-dumpable), and O_RDWR on a fifo never blocks.
    let fifo_rw = match fifo_fd {
        Some(fd) => {
            let path = format!("/proc/self/fd/{fd}");
            Some(
                rustix::fs::open(
                    &path,
                    rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| {
                    InitError::new(Stage::ExecFifo, &e.into(), Some(&path), "open exec fifo")
                })?,
            )
        }
        None => None,
    };
    process::drop_bounding(p)?;
    let setgroups_allowed = !ctx.in_userns
        || std::fs::read_to_string("/proc/self/setgroups")
            .map(|s| s.trim() == "allow")
            .unwrap_or(true);
    process::set_user(p, setgroups_allowed)?;
    process::set_capabilities(p)?;
    let cwd = p.cwd().to_string_lossy().into_owned();
    rustix::process::chdir(p.cwd())
        .map_err(|e| InitError::new(Stage::Cwd, &e.into(), Some(&cwd), "chdir to process.cwd"))?;
    // CVE-2024-21626: the working directory must be inside the container's root.
    match rustix::process::getcwd(Vec::new()) {
        Ok(c) if c.to_bytes().starts_with(b"/") => {}
        _ => {
            return Err(InitError::plain(
                Stage::Cwd,
                Some(&cwd),
                "working directory is outside the container root",
            ));
        }
    }
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    if process::env_get(&env, "HOME").is_none() {
        env.push(format!(
            "HOME={}",
            if p.user().uid() == 0 { "/root" } else { "/" }
        ));
    }
    let args = p.args().clone().unwrap_or_default();
    let exe = process::lookup_exec(args.first().map(String::as_str).unwrap_or(""), &env)?;
    process::refuse_runtime_binary(&exe)?;
    sync::send(&ctx.sock, &Msg::Ready)
        .map_err(|e| InitError::new(Stage::ExecFifo, &e, None, "report ready"))?;
    if let Some(f) = fifo_rw {
        // Blocks until `start` writes a byte. We hold both ends, so there is no EOF.
        let mut b = [0u8; 1];
        loop {
            match rustix::io::read(&f, &mut b) {
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    return Err(InitError::new(
                        Stage::ExecFifo,
                        &e.into(),
                        None,
                        "read exec fifo",
                    ));
                }
            }
        }
        drop(f);
        if let Some(h) = spec.hooks() {
            crate::hooks::run_hooks(
                "startContainer",
                h.start_container().as_ref(),
                &start_hook_state,
            )
            .map_err(|e| InitError::plain(Stage::Hook, None, e.to_string()))?;
        }
    }
    if let (Some(s), true) = (seccomp, nnp) {
        process::load_seccomp(s)?;
    }
    // CVE-2024-21626: nothing of the host but 0-2 and the preserved fds crosses exec.
    let first = 3 + ctx.preserve_fds;
    berth_sys::cloexec_from(first)
        .map_err(|e| InitError::new(Stage::Fds, &e, None, "mark fds close-on-exec"))?;
    for fd in 3..first {
        let _ = berth_sys::clear_cloexec(fd as i32);
    }
    let argv = process::cstrings(&args)?;
    let envp = process::cstrings(&env)?;
    let path = std::ffi::CString::new(exe.as_os_str().as_encoded_bytes())
        .map_err(|_| InitError::plain(Stage::Exec, None, "executable path contains NUL"))?;
    let e = berth_sys::execveat(rustix::fs::CWD, &path, &argv, &envp, 0);
    Err(InitError::new(
        Stage::Exec,
        &e,
        Some(&exe.to_string_lossy()),
        "execve",
    ))
}

fn setup_console(ctx: &mut ChildCtx<'_>) -> R<()> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let sock = ctx.console.take().ok_or_else(|| {
        InitError::plain(
            Stage::Console,
            None,
            "process.terminal is set but no console socket was given",
        )
    })?;
    let e = |what: &'static str| {
        move |x: rustix::io::Errno| InitError::new(Stage::Console, &x.into(), None, what)
    };
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .map_err(e("open /dev/ptmx"))?;
    grantpt(&master).map_err(e("grantpt"))?;
    unlockpt(&master).map_err(e("unlockpt"))?;
    let name = ptsname(&master, Vec::new()).map_err(e("ptsname"))?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(e("open pty slave"))?;
    if let Some(sz) = ctx.process.console_size() {
        let ws = rustix::termios::Winsize {
            ws_row: sz.height() as u16,
            ws_col: sz.width() as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&master, ws).map_err(e("set console size"))?;
    }
    if matches!(ctx.mode, Mode::Create { .. }) && Path::new("/dev").exists() {
        let name_s = name.to_string_lossy().into_owned();
        if std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/dev/console")
            .is_ok()
        {
            let _ = berth_sys::mount(
                Some(&name_s),
                "/dev/console",
                Some("bind"),
                libc::MS_BIND,
                None,
            );
        }
    }
    berth_sys::send_fd(sock.as_fd(), master.as_fd(), name.to_bytes()).map_err(|x| {
        InitError::new(
            Stage::Console,
            &x,
            None,
            "send pty master over console socket",
        )
    })?;
    drop(master);
    drop(sock);
    rustix::process::setsid().map_err(e("setsid"))?;
    rustix::process::ioctl_tiocsctty(&slave).map_err(e("make pty the controlling terminal"))?;
    for fd in 0..3 {
        berth_sys::dup2_raw(slave.as_fd(), fd)
            .map_err(|x| InitError::new(Stage::Console, &x, None, "dup pty onto stdio"))?;
    }
    Ok(())
}
