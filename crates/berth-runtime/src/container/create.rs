//! `create`: clone the init into its namespaces and cgroup, wait until it is ready.

use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::*;

impl Container {
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
        }
        r.map(|mut c| {
            // kept for this value's delete, which then leaves the shared parents (`berth/`)
            // alone like a delete of a loaded container
            c.cg = cleanup.1.take();
            if let Some(cg) = &c.cg {
                cg.keep_parents();
            }
            c
        })
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
                crate::seccomp::prepare(&opts.root, s)
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
        // A new network namespace is made on a helper thread meanwhile (clone.rs says
        // why); not with a user namespace, which must own it.
        let netns = (flags & ns_flag(LinuxNamespaceType::Network) != 0 && !in_userns)
            .then(crate::clone::PendingNetns::start)
            .flatten();
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

        // opened once (it reads /proc/self/mountinfo); the guard removes it again if the
        // create fails from here on, a half-made one included
        let cg: &dyn berth_cgroups::Cgroup = &**guard.1.insert(cgroup::for_spec(
            linux.cgroups_path().as_ref().and_then(|p| p.to_str()),
            id,
        )?);
        cg.create()?;
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
        let cgroup_tasks = if cg_fd.is_none() {
            cgroup::v1_task_files(cg)?
        } else {
            Vec::new()
        };
        if let Some(p) = netns {
            // a thread that failed leaves CLONE_NEWNET in the flags: clone3 then makes
            // the namespace, or reports why it cannot
            if let Ok(fd) = p.wait() {
                flags &= !ns_flag(LinuxNamespaceType::Network);
                join.push((fd, LinuxNamespaceType::Network));
            }
        }
        let wait_for_go = new_user || process.oom_score_adj().is_some();
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
            cgroup_tasks,
            // the id maps must be written before the child uses its ids, and
            // oom_score_adj while it certainly still lives (a failing init's own error
            // comes first then); without either the child goes on at once
            wait_for_go,
        };
        // the child's copies of our fds are its own; ours are dropped when `ctx` goes
        let (mut pid, pidfd) =
            crate::clone::spawn(flags, cg_fd.as_ref().map(|f| f.as_fd()), move || {
                child_main(ctx)
            })?;
        let first_pid = pid;
        let mut kill_guard = KillGuard(Some(pid));
        // v1: the child joins the cgroup itself (cgroup::v1_task_files says why)
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
        if wait_for_go {
            sync::send(&parent_sock, &Msg::Go)
                .map_err(|e| Error::Protocol(format!("write to init: {e}")))?;
        }
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
            cg: None,
        })
    }
}
