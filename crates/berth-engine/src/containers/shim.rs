//! Spawning `berth-shim` (posix_spawn through `Command`, never a bare fork from our
//! threads) in its own process group, reading its one-line report, and watching it.

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::{ContainerError, Containers, record};

/// A shim that reported a started container.
#[derive(Debug)]
pub struct Started {
    /// The container's init.
    pub pid: i32,
    /// The shim (our child until the daemon restarts).
    pub child: Child,
    /// The shim's report pipe, open until it says `{"exited":n}` (then it cleans up
    /// and exits) or dies.
    pub reports: Option<BufReader<ChildStdout>>,
}

/// Shims that reported their container's exit and are still cleaning up (runtime state,
/// cgroups). A removal or a new start of the same container waits for them.
#[derive(Debug, Default)]
pub struct Draining {
    ids: Mutex<HashSet<String>>,
    gone: Condvar,
}

impl Draining {
    fn begin(&self, id: &str) {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned());
    }

    fn end(&self, id: &str) {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.gone.notify_all();
    }

    /// Waits until the shim of `id` is gone, at most `timeout` (it only has a few
    /// rmdirs and unlinks left to do).
    pub fn wait(&self, id: &str, timeout: Duration) {
        let ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .gone
            .wait_timeout_while(ids, timeout, |ids| ids.contains(id));
    }
}

/// The line a shim writes on its report pipe once the exit is on record.
#[derive(Debug, serde::Deserialize)]
struct Exited {
    #[allow(dead_code)]
    exited: i32,
}

#[derive(Debug, serde::Deserialize)]
struct Report {
    pid: Option<i32>,
    error: Option<String>,
    exit_code: Option<i32>,
}

fn shim_log_tail(dir: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(dir.join("shim.log")) {
        let _ = f.read_to_string(&mut s);
    }
    let s = s.trim();
    s[s.len().saturating_sub(400)..].to_owned()
}

/// Spawns the shim for container `id` (directory `dir`) and waits for its report.
pub fn spawn(
    c: &Containers,
    id: &str,
    dir: &Path,
    io: super::attach::ShimIo,
) -> Result<Started, ContainerError> {
    let log_path = dir.join("shim.log");
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(ContainerError::io("open", &log_path))?;
    let mut child = Command::new(&c.shim)
        .arg(dir)
        .arg(&c.runtime_root)
        .arg(id)
        .args(&io.args)
        .stdin(io.stdin)
        .stdout(Stdio::piped())
        .stderr(log)
        // its own process group: a signal to berthd's group (Ctrl-C, a service
        // manager's stop) does not reach the shim, so containers outlive the daemon
        .process_group(0)
        .spawn()
        .map_err(|e| ContainerError::Shim {
            id: id.to_owned(),
            why: format!("cannot run {}: {e}", c.shim.display()),
        })?;
    let mut line = String::new();
    let mut reports = child.stdout.take().map(BufReader::new);
    if let Some(r) = reports.as_mut() {
        let _ = r.read_line(&mut line);
    }
    let report: Option<Report> = serde_json::from_str(line.trim()).ok();
    match report {
        Some(Report { pid: Some(pid), .. }) => Ok(Started {
            pid,
            child,
            reports,
        }),
        Some(Report {
            error: Some(message),
            exit_code,
            ..
        }) => {
            let _ = child.wait();
            Err(ContainerError::StartFailed {
                message,
                exit_code: exit_code.unwrap_or(125),
            })
        }
        _ => {
            let status = child.wait();
            Err(ContainerError::Shim {
                id: id.to_owned(),
                why: format!(
                    "no report (exit {}): {}",
                    status.map(|s| s.to_string()).unwrap_or_default(),
                    shim_log_tail(dir)
                ),
            })
        }
    }
}

/// Watches our own shim child in a thread: records the exit as soon as the shim
/// reports it (before its cleanup), reaps it, then does what waits for the shim to be
/// gone (leftover runtime state, auto-remove, restart policy).
pub fn watch_child(
    c: Arc<Containers>,
    id: String,
    mut child: Child,
    reports: Option<BufReader<ChildStdout>>,
) {
    let spawned = std::thread::Builder::new()
        .name(format!("shim-{}", &id[..12.min(id.len())]))
        .spawn(move || {
            let mut early = None;
            if let Some(mut r) = reports {
                let mut line = String::new();
                // EOF without the line: a shim that died (or an older one): its exit
                // is recorded once it is reaped
                if matches!(r.read_line(&mut line), Ok(n) if n > 0)
                    && serde_json::from_str::<Exited>(line.trim()).is_ok()
                {
                    c.draining.begin(&id);
                    early = c.record_exit(&id);
                }
            }
            let _ = child.wait();
            c.draining.end(&id);
            match early {
                Some(rec) => c.after_shim(&id, &rec),
                None => c.finish(&id),
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a shim watcher thread");
    }
}

/// Watches a shim adopted after a daemon restart (not our child): polls its pid and
/// start time.
pub fn watch_adopted(c: Arc<Containers>, id: String) {
    let (pid, start) = match c.get(&id) {
        Ok(r) => (r.state.shim_pid, r.state.shim_start_time),
        Err(_) => return,
    };
    let spawned = std::thread::Builder::new()
        .name(format!("shim-{}", &id[..12.min(id.len())]))
        .spawn(move || {
            while record::alive(pid, start) {
                std::thread::sleep(Duration::from_millis(100));
            }
            c.finish(&id);
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a shim watcher thread");
    }
}
