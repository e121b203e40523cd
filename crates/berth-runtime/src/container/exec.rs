//! `exec`: a new process in a running container's namespaces and cgroup.

use std::os::fd::AsFd;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::*;

impl Container {
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
        let cgroup_tasks = if cg_fd.is_none() {
            cgroup::v1_task_files(cg.as_ref())?
        } else {
            Vec::new()
        };
        let (parent_sock, child_sock) = sync::pair()?;
        let spec = &self.state.config;
        let preserve_fds = opts.preserve_fds;
        let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(
                crate::seccomp::prepare(self.dir.parent().unwrap_or(&self.dir), s)
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
                    cgroup_tasks,
                    wait_for_go: false,
                })
            },
        )?;
        let mut guard = KillGuard(Some(first));
        // v1: the child joins the cgroup itself (cgroup::v1_task_files says why), and
        // it needs no go-ahead from us
        let mut pid = first;
        let res = await_ready(&parent_sock, || Ok(()), &mut pid, true);
        reap(first);
        if let Err(e) = res {
            if pid == first {
                // The process in the container reported its error before `first` reported
                // its pid: `first` has exited (reaped above), so the pid is in the socket
                // by now. Unreaped, that process would be a zombie in the container's pid
                // namespace holding the init's exit (zap_pid_ns_processes) for good.
                while let Ok(Some(m)) = sync::recv(&parent_sock) {
                    if let Msg::Pid { pid: p } = m {
                        pid = p;
                        break;
                    }
                }
            }
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
            // the child exits right after reporting; nobody else knows its pid, and a
            // zombie left in the container's pid namespace would hold the init's exit
            // (zap_pid_ns_processes waits for it) for as long as the caller lives
            reap(pid);
            return Err(Error::Init(e));
        }
        Ok(pid)
    }
}
