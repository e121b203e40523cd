//! `<root>/<id>/state.json`: what a container is, written atomically.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Lifecycle status, as the OCI runtime spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
    pub fn can_start(self) -> bool {
        self == Status::Created
    }
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
    pub fn can_delete(self) -> bool {
        matches!(self, Status::Stopped | Status::Created)
    }
    pub fn can_pause(self) -> bool {
        self == Status::Running
    }
    pub fn can_resume(self) -> bool {
        self == Status::Paused
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What we persist about a container.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub id: String,
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`: a recycled pid has another start time.
    pub pid_start_time: u64,
    /// The status last recorded (refreshed from reality on load).
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub cgroup_path: String,
    pub config: oci_spec::runtime::Spec,
}

impl State {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// Write via temp file + rename, so a reader never sees half a file. No fsync: this
    /// is runtime state (`/run`), describing processes that a power loss ends anyway;
    /// runc does not sync it either. An fsync here cost 0.5-4 ms of every container start
    /// on a busy disk.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let tmp = dir.join(".state.json.tmp");
        let data = serde_json::to_vec(self)
            .map_err(|e| Error::Protocol(format!("serialize state: {e}")))?;
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&data)?;
            drop(f);
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| Error::io("failed to write container state file", &path, e))
    }

    pub fn load(dir: &Path) -> Result<State> {
        let path = Self::path(dir);
        let data = std::fs::read(&path)
            .map_err(|e| Error::io("failed to read container state file", &path, e))?;
        serde_json::from_slice(&data).map_err(|source| Error::CorruptState { path, source })
    }
}

/// Start time of `pid` (clock ticks since boot), or `None` when it is gone or a zombie.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest[0] is field 3 (state); start time is field 22.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(22 - 3)?.parse().ok()
}

/// RFC 3339 UTC timestamp with nanoseconds, computed without a date crate.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil_from_days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_stable_and_dead_pid_has_none() {
        let me = std::process::id() as i32;
        let a = process_start_time(me).unwrap();
        assert_eq!(Some(a), process_start_time(me));
        assert_eq!(process_start_time(i32::MAX), None);
    }

    #[test]
    fn rfc3339_shape() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 30, "{s}");
        assert!(
            s.starts_with("20") && s.ends_with('Z') && &s[10..11] == "T",
            "{s}"
        );
    }

    #[test]
    fn status_guards() {
        assert!(Status::Created.can_start());
        assert!(!Status::Running.can_start());
        assert!(Status::Stopped.can_delete());
        assert!(!Status::Running.can_delete());
        assert!(Status::Running.can_pause() && Status::Paused.can_resume());
    }
}
