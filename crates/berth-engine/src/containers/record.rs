//! What the engine persists per container: `<data-root>/containers/<id>/config.json`
//! (versioned, written atomically), and the state machine.

use std::path::Path;

use berth_types::spec::ContainerSpec;
use serde::{Deserialize, Serialize};

use super::error::ContainerError;

/// The store format version of config.json.
pub const RECORD_VERSION: u32 = 1;

/// Docker's container states (those this engine has so far).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started, or its start failed.
    #[default]
    Created,
    /// Its shim reported the process started.
    Running,
    /// The process exited.
    Exited,
    /// Removal began (finished on the next daemon start if interrupted).
    Removing,
}

impl Status {
    /// Docker's word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Removing => "removing",
        }
    }

    /// Whether `start` may run it.
    pub fn can_start(&self) -> bool {
        matches!(self, Status::Created | Status::Exited)
    }

    /// Whether it may be removed without force.
    pub fn can_remove(&self) -> bool {
        !matches!(self, Status::Running)
    }
}

/// The runtime side of a container's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// Where it is in its lifecycle.
    pub status: Status,
    /// The init's pid (host namespace) while running.
    pub pid: i32,
    /// The shim's pid and start time (so a recycled pid is never taken for it).
    pub shim_pid: i32,
    /// From /proc/<pid>/stat.
    pub shim_start_time: u64,
    /// The last exit code.
    pub exit_code: i32,
    /// Why the last start failed.
    pub error: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub finished_at: String,
    /// How many times it exited (or failed to start): `wait?condition=next-exit`.
    pub exits: u64,
    /// Frozen by `pause`.
    #[serde(default)]
    pub paused: bool,
    /// Restarts done by the restart policy since the last manual start (`RestartCount`).
    #[serde(default)]
    pub restart_count: u64,
    /// Waiting out the backoff before a policy restart.
    #[serde(default)]
    pub restarting: bool,
    /// Stopped by `stop` (or killed with a fatal signal): policies do not restart it.
    #[serde(default)]
    pub manually_stopped: bool,
    /// The next policy restart's delay in ms (100, doubling; reset after 10 s of running).
    #[serde(default)]
    pub restart_delay_ms: u64,
    /// Health check state (`State.Health`) when the container has a check.
    #[serde(default)]
    pub health: Option<super::health::HealthState>,
}

/// One container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Store format version.
    pub version: u32,
    /// 64 hex.
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    /// RFC 3339 (nanoseconds).
    pub created: String,
    /// The image's id (`sha256:…`).
    pub image_id: String,
    /// What the user asked for.
    pub spec: ContainerSpec,
    /// `Path`.
    pub path: String,
    /// `Args`.
    pub args: Vec<String>,
    /// Effective environment.
    pub env: Vec<String>,
    /// Effective `Cmd`.
    pub cmd: Vec<String>,
    /// Effective `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// Effective working directory.
    pub workdir: String,
    /// The lowerdirs the rootfs was mounted with (top first).
    pub lowerdirs: Vec<std::path::PathBuf>,
    /// Runtime state.
    pub state: RunState,
    /// Volumes, binds and tmpfs mounts, resolved at create.
    #[serde(default)]
    pub mounts: Vec<berth_types::mounts::MountPoint>,
    /// When this copy was written (a stamp that only grows): of `config.json` and
    /// `state.json`, the newer wins ([`Record::load`]).
    #[serde(default)]
    pub seq: u64,
}

impl Record {
    /// Writes `<dir>/config.json` atomically (temp file, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<(), ContainerError> {
        let path = dir.join("config.json");
        let tmp = dir.join(".config.json.tmp");
        let bytes = self.stamped_json(&path, true)?;
        write_atomic(&tmp, &path, &bytes)
    }

    /// This record as JSON, stamped with a new [`Record::seq`].
    pub(super) fn stamped_json(
        &self,
        path: &Path,
        pretty: bool,
    ) -> Result<Vec<u8>, ContainerError> {
        let mut r = self.clone();
        r.seq = next_seq();
        let json = if pretty {
            serde_json::to_vec_pretty(&r)
        } else {
            serde_json::to_vec(&r)
        };
        json.map_err(|e| ContainerError::Io {
            op: "encode",
            path: path.display().to_string(),
            source: std::io::Error::other(e),
        })
    }

    /// Reads the container's record: `<dir>/config.json`, or `<dir>/state.json` (the copy
    /// written in place on the start → exit path) when that one parses and is newer.
    pub fn load(dir: &Path) -> Result<Record, ContainerError> {
        let path = dir.join("config.json");
        let main = std::fs::read(&path)
            .map_err(ContainerError::io("read", &path))
            .and_then(|bytes| {
                serde_json::from_slice::<Record>(&bytes).map_err(|source| ContainerError::Corrupt {
                    path: path.display().to_string(),
                    source,
                })
            });
        let hot = std::fs::read(dir.join(super::fastsave::HOT))
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
        let rec = match (main, hot) {
            (Ok(m), Some(h)) if h.seq > m.seq && h.id == m.id => h,
            (Ok(m), _) => m,
            (Err(_), Some(h)) => h,
            (Err(e), None) => return Err(e),
        };
        note_seq(rec.seq);
        Ok(rec)
    }
}

static LAST_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A stamp above every one written or read so far: the wall clock in ns when it moves
/// forward, else the last stamp + 1 (a clock set back never makes a newer copy older).
fn next_seq() -> u64 {
    use std::sync::atomic::Ordering;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut last = LAST_SEQ.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST_SEQ.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(l) => last = l,
        }
    }
}

fn note_seq(seq: u64) {
    LAST_SEQ.fetch_max(seq, std::sync::atomic::Ordering::Relaxed);
}

/// temp file, fsync, rename.
pub fn write_atomic(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), ContainerError> {
    use std::io::Write as _;
    let mut f = std::fs::File::create(tmp).map_err(ContainerError::io("create", tmp))?;
    f.write_all(bytes)
        .map_err(ContainerError::io("write", tmp))?;
    f.sync_all().map_err(ContainerError::io("sync", tmp))?;
    std::fs::rename(tmp, path).map_err(ContainerError::io("rename into place", path))
}

/// What the shim leaves in `<dir>/exit.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ExitFile {
    /// The exit code (128+n for a signal).
    pub exit_code: i32,
    /// RFC 3339.
    pub finished_at: String,
}

impl ExitFile {
    /// Reads `<dir>/exit.json` if it is there.
    pub fn read(dir: &Path) -> Option<ExitFile> {
        let bytes = std::fs::read(dir.join("exit.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// A process's start time (field 22 of /proc/<pid>/stat), to tell a pid from a recycled one.
pub fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(19)?.parse().ok()
}

/// The parent pid of `pid` (field 4 of /proc/<pid>/stat).
pub fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(1)?.parse().ok()
}

/// Whether the process `pid` that started at `start` is still there (a zombie counts as
/// gone).
pub fn alive(pid: i32, start: u64) -> bool {
    if start_time(pid) != Some(start) {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 2..].chars().next())
        .unwrap_or('X');
    !matches!(state, 'Z' | 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let r = Record {
            version: RECORD_VERSION,
            seq: 0,
            id: "a".repeat(64),
            name: "x".into(),
            created: "2026-01-01T00:00:00Z".into(),
            image_id: "sha256:00".into(),
            spec: ContainerSpec::default(),
            path: "sh".into(),
            args: vec![],
            env: vec![],
            cmd: vec!["sh".into()],
            entrypoint: vec![],
            workdir: "/".into(),
            lowerdirs: vec![],
            state: RunState::default(),
            mounts: vec![],
        };
        r.save(dir.path()).unwrap();
        let unstamped = |mut r: Record| {
            r.seq = 0;
            r
        };
        assert_eq!(unstamped(Record::load(dir.path()).unwrap()), r);
        assert!(!dir.path().join(".config.json.tmp").exists());

        // the in-place copy: the newer one wins, a torn one loses, it never shrinks
        let mut running = r.clone();
        running.state.status = Status::Running;
        running.state.error = "x".repeat(300);
        running.save_hot(dir.path()).unwrap();
        assert_eq!(unstamped(Record::load(dir.path()).unwrap()), running);
        let long = std::fs::metadata(dir.path().join("state.json"))
            .unwrap()
            .len();
        let mut exited = running.clone();
        exited.state.status = Status::Exited;
        exited.state.error.clear();
        exited.save_hot(dir.path()).unwrap();
        assert_eq!(unstamped(Record::load(dir.path()).unwrap()), exited);
        assert_eq!(
            std::fs::metadata(dir.path().join("state.json"))
                .unwrap()
                .len(),
            long,
            "padded, not truncated"
        );
        let renamed = Record {
            name: "y".into(),
            ..exited.clone()
        };
        renamed.save(dir.path()).unwrap();
        assert_eq!(unstamped(Record::load(dir.path()).unwrap()), renamed);
        exited.save_hot(dir.path()).unwrap();
        let hot = std::fs::read(dir.path().join("state.json")).unwrap();
        std::fs::write(dir.path().join("state.json"), &hot[..hot.len() / 2]).unwrap();
        assert_eq!(
            unstamped(Record::load(dir.path()).unwrap()),
            renamed,
            "a torn state.json loses to config.json"
        );
        std::fs::write(dir.path().join("config.json"), b"{").unwrap();
        assert!(
            Record::load(dir.path())
                .unwrap_err()
                .to_string()
                .contains("is corrupt")
        );
    }

    #[test]
    fn own_process_is_alive_and_state_guards() {
        let me = std::process::id() as i32;
        let st = start_time(me).unwrap();
        assert!(alive(me, st));
        assert!(!alive(me, st + 1));
        assert!(Status::Exited.can_start());
        assert!(!Status::Running.can_start());
        assert!(!Status::Running.can_remove());
    }
}
