//! Restart policies run by the daemon, as moby's restart manager: `no`, `on-failure[:N]`,
//! `always`, `unless-stopped`; a backoff of 100 ms doubling up to a minute, reset once a
//! run lasted 10 s; `RestartCount`; a manual `stop` (or a kill with a fatal signal)
//! cancels restarts until the next manual start, and on daemon start `always` containers
//! (and `unless-stopped` ones not stopped by hand) are started again.

use std::sync::Arc;
use std::time::Duration;

use berth_types::run::RestartName;

use super::{Containers, Record, Status, lock};

/// The first backoff.
pub const FIRST_DELAY_MS: u64 = 100;
/// The longest backoff.
pub const MAX_DELAY_MS: u64 = 60_000;

fn ran_secs(r: &Record) -> i64 {
    let p = |s: &str| s.parse::<jiff::Timestamp>().ok();
    match (p(&r.state.started_at), p(&r.state.finished_at)) {
        (Some(a), Some(b)) => b.as_second() - a.as_second(),
        _ => 0,
    }
}

/// moby's `ShouldRestart`: whether the policy restarts `r` after its exit (`on_boot`: the
/// daemon is starting, where a manual stop no longer cancels `always`).
pub fn should_restart(r: &Record, on_boot: bool) -> bool {
    let p = &r.spec.run.restart;
    if r.state.manually_stopped && !on_boot {
        return false;
    }
    match p.name {
        RestartName::No => false,
        RestartName::Always => true,
        RestartName::UnlessStopped => !r.state.manually_stopped,
        RestartName::OnFailure => {
            r.state.exit_code != 0
                && (p.max_retries == 0 || (r.state.restart_count as i64) < p.max_retries)
        }
    }
}

/// The delay before the next restart and the one after it.
pub fn next_delay(r: &Record) -> (u64, u64) {
    let delay = if ran_secs(r) >= 10 || r.state.restart_delay_ms == 0 {
        FIRST_DELAY_MS
    } else {
        r.state.restart_delay_ms.min(MAX_DELAY_MS)
    };
    (delay, (delay * 2).min(MAX_DELAY_MS))
}

impl Containers {
    /// After an exit was recorded: schedules a policy restart if one is due.
    pub(super) fn after_exit(self: &Arc<Self>, id: &str) {
        let delay = {
            let mut inner = lock(&self.inner);
            let Some(r) = inner.map.get_mut(id) else {
                return;
            };
            if r.state.status != Status::Exited || !should_restart(r, false) {
                return;
            }
            let (delay, next) = next_delay(r);
            r.state.restarting = true;
            r.state.restart_delay_ms = next;
            let rec = r.clone();
            if let Err(e) = rec.save(&self.dir(id)) {
                tracing::warn!(id, error = %e, "cannot persist restart state");
            }
            delay
        };
        self.bump();
        self.schedule_restart(id.to_owned(), Duration::from_millis(delay));
    }

    fn schedule_restart(self: &Arc<Self>, id: String, delay: Duration) {
        let c = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("restart-{}", &id[..12.min(id.len())]))
            .spawn(move || {
                std::thread::sleep(delay);
                {
                    let mut inner = lock(&c.inner);
                    let Some(r) = inner.map.get_mut(&id) else {
                        return;
                    };
                    // cancelled by stop/kill/rm/start meanwhile
                    if !r.state.restarting || r.state.status == Status::Running {
                        return;
                    }
                    r.state.restarting = false;
                    r.state.restart_count += 1;
                    let rec = r.clone();
                    let _ = rec.save(&c.dir(&id));
                }
                if let Err(e) = c.start(&id) {
                    tracing::warn!(id, error = %e, "policy restart failed");
                    c.bump();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a restart thread");
        }
    }

    /// Cancels policy restarts until the next manual start (`stop`, fatal `kill`).
    pub(super) fn mark_manually_stopped(&self, id: &str) {
        let mut inner = lock(&self.inner);
        if let Some(r) = inner.map.get_mut(id) {
            r.state.manually_stopped = true;
            r.state.restarting = false;
            let rec = r.clone();
            let _ = rec.save(&self.dir(id));
        }
    }

    /// A start asked for by the user: resets the restart manager (count, backoff,
    /// manual stop), as moby does.
    pub fn start_by_user(self: &Arc<Self>, name: &str) -> Result<bool, crate::EngineError> {
        let id = self.resolve(name)?;
        {
            let mut inner = lock(&self.inner);
            if let Some(r) = inner.map.get_mut(&id)
                && r.state.status != Status::Running
            {
                r.state.manually_stopped = false;
                r.state.restarting = false;
                r.state.restart_count = 0;
                r.state.restart_delay_ms = 0;
            }
        }
        self.start(&id)
    }

    /// On daemon start, once networks and volumes are attached and reconciled: starts the
    /// containers whose policy says so.
    pub(crate) fn restart_on_boot(self: &Arc<Self>) {
        let due: Vec<String> = lock(&self.inner)
            .map
            .values()
            .filter(|r| r.state.status == Status::Exited && should_restart(r, true))
            .map(|r| r.id.clone())
            .collect();
        for id in due {
            {
                let mut inner = lock(&self.inner);
                if let Some(r) = inner.map.get_mut(&id) {
                    r.state.restarting = true;
                }
            }
            self.schedule_restart(id, Duration::ZERO);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_types::run::RestartPolicy;
    use berth_types::spec::ContainerSpec;

    fn rec(policy: &str, exit: i32) -> Record {
        let mut spec = ContainerSpec {
            image: "busybox".into(),
            ..Default::default()
        };
        spec.run.restart = RestartPolicy::parse(policy).unwrap();
        let mut r: Record = serde_json::from_value(serde_json::json!({
            "version": 1, "id": "a".repeat(64), "name": "x", "created": "", "image_id": "",
            "spec": spec, "path": "", "args": [], "env": [], "cmd": [], "entrypoint": [],
            "workdir": "", "lowerdirs": [], "state": super::super::RunState::default(),
        }))
        .unwrap();
        r.state.status = Status::Exited;
        r.state.exit_code = exit;
        r
    }

    #[test]
    fn policies_decide_as_moby() {
        assert!(!should_restart(&rec("no", 1), false));
        assert!(should_restart(&rec("always", 0), false));
        assert!(should_restart(&rec("on-failure", 1), false));
        assert!(!should_restart(&rec("on-failure", 0), false));
        let mut r = rec("on-failure:2", 1);
        r.state.restart_count = 2;
        assert!(!should_restart(&r, false));
        let mut r = rec("always", 0);
        r.state.manually_stopped = true;
        assert!(!should_restart(&r, false));
        assert!(
            should_restart(&r, true),
            "always restarts when the daemon starts"
        );
        let mut r = rec("unless-stopped", 0);
        r.state.manually_stopped = true;
        assert!(!should_restart(&r, true));
    }

    #[test]
    fn backoff_doubles_and_resets_after_ten_seconds() {
        let mut r = rec("always", 0);
        assert_eq!(next_delay(&r), (100, 200));
        r.state.restart_delay_ms = 200;
        r.state.started_at = "2026-01-01T00:00:00Z".into();
        r.state.finished_at = "2026-01-01T00:00:01Z".into();
        assert_eq!(next_delay(&r), (200, 400));
        r.state.restart_delay_ms = 60_000;
        assert_eq!(next_delay(&r), (60_000, 60_000));
        r.state.finished_at = "2026-01-01T00:00:10Z".into();
        assert_eq!(next_delay(&r), (100, 200));
    }
}
