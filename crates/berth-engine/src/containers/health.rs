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
