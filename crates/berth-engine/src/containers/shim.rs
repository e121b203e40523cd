//! Spawning `berth-shim` (posix_spawn through `Command`, never a bare fork from our
//! threads) in its own process group, reading its one-line report, and watching it.

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::{ContainerError, Containers, record};

/// A shim that reported a started container.
#[derive(Debug)]
pub struct Started {
    /// The container's init.
    pub pid: i32,
    /// The shim (our child until the daemon restarts).
    pub child: Child,
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
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let report: Option<Report> = serde_json::from_str(line.trim()).ok();
    match report {
        Some(Report { pid: Some(pid), .. }) => Ok(Started { pid, child }),
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

/// Reaps our own shim child in a thread, then records the exit.
pub fn watch_child(c: Arc<Containers>, id: String, mut child: Child) {
    let spawned = std::thread::Builder::new()
        .name(format!("shim-{}", &id[..12.min(id.len())]))
        .spawn(move || {
            let _ = child.wait();
            c.finish(&id);
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
