//! Health checks run by the daemon (`Config.Healthcheck` of the image or the flags):
//! state persisted in the record (`State.Health`), `health_status` events.

use serde::{Deserialize, Serialize};

/// One probe's result (`State.Health.Log[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthLogEntry {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339.
    pub end: String,
    /// The probe's exit code (-1 when it could not run or timed out).
    pub exit_code: i64,
    /// Its output (truncated to 4 KiB as Docker does).
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Consecutive failures.
    pub failing_streak: i64,
    /// The last (up to 5) probes.
    pub log: Vec<HealthLogEntry>,
}

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use berth_types::run::HealthConfig;
use serde_json::Value;

use super::exec::ExecConfig;
use super::{Containers, Status, lock};

/// Docker's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// Output kept per probe, and probes kept (moby's `maxOutputLen`, `maxLogEntries`).
const MAX_OUTPUT: usize = 4096;
const MAX_LOG: usize = 5;

/// The runtime health monitors run their probes on (the daemon's; remembered the first
/// time a container starts from inside it, since policy restarts start containers from
/// plain threads).
static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();

fn runtime() -> Option<tokio::runtime::Handle> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            let _ = RUNTIME.set(h.clone());
            Some(h)
        }
        Err(_) => RUNTIME.get().cloned(),
    }
}

/// The check a container runs: its own settings over the image's (`Healthcheck` of the
/// image config), as moby merges them; `None` when there is none or it is `NONE`.
pub fn effective(own: Option<&HealthConfig>, image_config: &Value) -> Option<HealthConfig> {
    let img = &image_config["config"]["Healthcheck"];
    let n = |k: &str| img[k].as_i64().unwrap_or(0);
    let mut h = HealthConfig {
        test: img["Test"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        interval: n("Interval"),
        timeout: n("Timeout"),
        start_period: n("StartPeriod"),
        start_interval: n("StartInterval"),
        retries: n("Retries"),
    };
    if let Some(o) = own {
        if !o.test.is_empty() {
            h.test = o.test.clone();
        }
        for (dst, src) in [
            (&mut h.interval, o.interval),
            (&mut h.timeout, o.timeout),
            (&mut h.start_period, o.start_period),
            (&mut h.start_interval, o.start_interval),
            (&mut h.retries, o.retries),
        ] {
            if src != 0 {
                *dst = src;
            }
        }
    }
    match h.test.first().map(String::as_str) {
        None | Some("NONE") => None,
        _ => Some(h),
    }
}

/// The probe's command line (`CMD args…` or `CMD-SHELL cmd`).
pub fn probe_command(h: &HealthConfig) -> Option<Vec<String>> {
    match h.test.split_first() {
        Some((k, rest)) if k == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        Some((k, rest)) if k == "CMD-SHELL" && !rest.is_empty() => {
            Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
        }
        _ => None,
    }
}

fn dur(ns: i64, default: Duration) -> Duration {
    if ns > 0 {
        Duration::from_nanos(ns as u64)
    } else {
        default
    }
}

/// Applies one probe's result to the state: the new state and whether its status
/// changed (moby's `handleProbeResult`).
pub fn apply_result(
    state: &mut HealthState,
    entry: HealthLogEntry,
    retries: i64,
    in_start_period: bool,
) -> bool {
    let old = state.status.clone();
    if entry.exit_code == 0 {
        state.failing_streak = 0;
        state.status = "healthy".into();
    } else if !(in_start_period && state.status == "starting") {
        state.failing_streak += 1;
        if state.failing_streak >= retries {
            state.status = "unhealthy".into();
        }
    }
    state.log.push(entry);
    if state.log.len() > MAX_LOG {
        let extra = state.log.len() - MAX_LOG;
        state.log.drain(..extra);
    }
    old != state.status
}

impl Containers {
    /// On start: resets the health state to `starting` and runs the monitor while this
    /// run of the container lasts.
    pub(super) fn start_health(self: &Arc<Self>, id: &str) {
        let Ok(rec) = self.get(id) else { return };
        let image_config = rec
            .image_id
            .parse()
            .ok()
            .and_then(|d| self.images.config(&d).ok())
            .unwrap_or(Value::Null);
        let Some(check) = effective(rec.spec.run.healthcheck.as_ref(), &image_config) else {
            return;
        };
        let Some(cmd) = probe_command(&check) else {
            return;
        };
        let Some(rt) = runtime() else {
            tracing::warn!(id, "no runtime for health checks");
            return;
        };
        {
            let mut inner = lock(&self.inner);
            if let Some(r) = inner.map.get_mut(id) {
                r.state.health = Some(HealthState {
                    status: "starting".into(),
                    failing_streak: 0,
                    log: Vec::new(),
                });
                let _ = r.save_hot(&self.dir(id));
            }
        }
        let c = self.clone();
        let id = id.to_owned();
        let started_at = rec.state.started_at.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("health-{}", &id[..12.min(id.len())]))
            .spawn(move || c.health_loop(&rt, &id, &started_at, &check, &cmd));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a health monitor");
        }
    }

    /// Whether this run (identified by its start time) still runs.
    fn same_run(&self, id: &str, started_at: &str) -> bool {
        lock(&self.inner)
            .map
            .get(id)
            .is_some_and(|r| r.state.status == Status::Running && r.state.started_at == started_at)
    }

    fn health_loop(
        self: &Arc<Self>,
        rt: &tokio::runtime::Handle,
        id: &str,
        started_at: &str,
        check: &HealthConfig,
        cmd: &[String],
    ) {
        let started = Instant::now();
        let start_period = Duration::from_nanos(check.start_period.max(0) as u64);
        let retries = if check.retries > 0 {
            check.retries
        } else {
            DEFAULT_RETRIES
        };
        loop {
            let in_start = started.elapsed() < start_period;
            let wait = if in_start && check.start_interval > 0 {
                dur(check.start_interval, DEFAULT_START_INTERVAL)
            } else {
                dur(check.interval, DEFAULT_INTERVAL)
            };
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if !self.same_run(id, started_at) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50).min(wait));
            }
            if !self.same_run(id, started_at) {
                return;
            }
            // a frozen container cannot run a probe: wait for unpause
            if lock(&self.inner)
                .map
                .get(id)
                .is_some_and(|r| r.state.paused)
            {
                continue;
            }
            let timeout = dur(check.timeout, DEFAULT_TIMEOUT);
            let entry = rt.block_on(self.probe(id, cmd, timeout));
            let in_start = started.elapsed() < start_period;
            let mut inner = lock(&self.inner);
            let Some(r) = inner.map.get_mut(id) else {
                return;
            };
            if r.state.status != Status::Running || r.state.started_at != started_at {
                return;
            }
            let h = r.state.health.get_or_insert_with(HealthState::default);
            let changed = apply_result(h, entry, retries, in_start);
            let status = h.status.clone();
            let rec = r.clone();
            drop(inner);
            let _ = rec.save_hot(&self.dir(id));
            if changed {
                self.publish(&rec, &format!("health_status: {status}"), &[]);
            }
            self.bump();
        }
    }

    /// Runs the probe through exec; a timeout kills it (exit code -1, as moby).
    async fn probe(
        self: &Arc<Self>,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> HealthLogEntry {
        let start = jiff::Timestamp::now().to_string();
        let failed = |msg: String| HealthLogEntry {
            start: start.clone(),
            end: jiff::Timestamp::now().to_string(),
            exit_code: -1,
            output: msg,
        };
        let cfg = ExecConfig {
            cmd: cmd.to_vec(),
            attach_stdout: true,
            attach_stderr: true,
            ..Default::default()
        };
        let exec_id = match self.exec_create(id, cfg) {
            Ok(e) => e,
            Err(e) => return failed(e.to_string()),
        };
        let mut session = match self.exec_start(&exec_id, false, None) {
            Ok(s) => s,
            Err(e) => return failed(e.to_string()),
        };
        let mut output = Vec::new();
        let read = async {
            while let Some(o) = session.output.recv().await {
                if output.len() < MAX_OUTPUT {
                    output.extend_from_slice(&o.data);
                }
            }
        };
        if tokio::time::timeout(timeout, read).await.is_err() {
            if let Ok(x) = self.exec_inspect(&exec_id)
                && x.pid > 0
                && let Some(p) = rustix::process::Pid::from_raw(x.pid)
            {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
            return failed(format!(
                "Health check exceeded timeout ({}s)",
                timeout.as_secs_f64()
            ));
        }
        // the exit code arrives with the end of the streams; give it a moment
        let mut code = None;
        for _ in 0..100 {
            code = self
                .exec_inspect(&exec_id)
                .ok()
                .and_then(|x| (!x.running && x.exit_code.is_some()).then_some(x.exit_code))
                .flatten();
            if code.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        output.truncate(MAX_OUTPUT);
        HealthLogEntry {
            start,
            end: jiff::Timestamp::now().to_string(),
            exit_code: code.map(i64::from).unwrap_or(-1),
            output: String::from_utf8_lossy(&output).into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn own_settings_override_the_image_and_none_disables() {
        let img = json!({"config": {"Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5, "Retries": 4}}});
        let h = effective(None, &img).unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "true"]);
        assert_eq!((h.interval, h.retries), (5, 4));
        let own = HealthConfig {
            interval: 7,
            ..Default::default()
        };
        let h = effective(Some(&own), &img).unwrap();
        assert_eq!((h.interval, h.retries), (7, 4));
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert!(effective(Some(&none), &img).is_none());
        assert!(effective(None, &Value::Null).is_none());
        assert_eq!(probe_command(&h).unwrap(), ["/bin/sh", "-c", "true"]);
        let cmd = HealthConfig {
            test: vec!["CMD".into(), "ls".into(), "/".into()],
            ..Default::default()
        };
        assert_eq!(probe_command(&cmd).unwrap(), ["ls", "/"]);
    }

    #[test]
    fn results_move_the_status_as_moby() {
        let mut s = HealthState {
            status: "starting".into(),
            ..Default::default()
        };
        let fail = || HealthLogEntry {
            exit_code: 1,
            ..Default::default()
        };
        // failures in the start period do not count
        assert!(!apply_result(&mut s, fail(), 2, true));
        assert_eq!((s.status.as_str(), s.failing_streak), ("starting", 0));
        assert!(!apply_result(&mut s, fail(), 2, false));
        assert!(apply_result(&mut s, fail(), 2, false));
        assert_eq!((s.status.as_str(), s.failing_streak), ("unhealthy", 2));
        assert!(apply_result(&mut s, HealthLogEntry::default(), 2, false));
        assert_eq!((s.status.as_str(), s.failing_streak), ("healthy", 0));
        for _ in 0..10 {
            apply_result(&mut s, HealthLogEntry::default(), 2, false);
        }
        assert_eq!(s.log.len(), MAX_LOG);
    }
}
