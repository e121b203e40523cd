//! Lifecycle routes (restart, pause/unpause, rename, top, stats, update, container prune,
//! system df) and the create-body fields of `RunOptions` (`Config.Healthcheck`,
//! `StopSignal`, `HostConfig.RestartPolicy`, `Ulimits`, …): each decodes Docker's request,
//! calls one engine method, encodes the answer.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use berth_types::run::{DeviceMapping, HealthConfig, NsMode, RestartPolicy, RunOptions, Ulimit};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::handlers::streamed;
use crate::server::{ApiResult, Ctx, Req};

/// `Config` fields of the create body for [`RunOptions`].
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LifecycleConfigBody {
    /// Healthcheck.
    pub healthcheck: Option<HealthBody>,
    /// StopSignal.
    pub stop_signal: Option<String>,
    /// StopTimeout.
    pub stop_timeout: Option<i64>,
    /// Domainname.
    pub domainname: Option<String>,
}

/// `Config.Healthcheck`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthBody {
    /// Test.
    pub test: Option<Vec<String>>,
    /// Interval (ns).
    pub interval: i64,
    /// Timeout (ns).
    pub timeout: i64,
    /// StartPeriod (ns).
    pub start_period: i64,
    /// StartInterval (ns).
    pub start_interval: i64,
    /// Retries.
    pub retries: i64,
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartBody {
    /// Name.
    pub name: String,
    /// MaximumRetryCount.
    pub maximum_retry_count: i64,
}

/// `HostConfig.Ulimits[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UlimitBody {
    /// Name.
    pub name: String,
    /// Soft.
    pub soft: i64,
    /// Hard.
    pub hard: i64,
}

/// `HostConfig.Devices[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceBody {
    /// PathOnHost.
    pub path_on_host: String,
    /// PathInContainer.
    pub path_in_container: String,
    /// CgroupPermissions.
    pub cgroup_permissions: String,
}

/// `HostConfig.LogConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfigBody {
    /// Type.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Config.
    pub config: Option<BTreeMap<String, String>>,
}

/// `HostConfig` fields for [`RunOptions`].
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LifecycleHostBody {
    /// RestartPolicy.
    pub restart_policy: Option<RestartBody>,
    /// Init.
    pub init: Option<bool>,
    /// Ulimits.
    pub ulimits: Option<Vec<UlimitBody>>,
    /// ShmSize.
    pub shm_size: i64,
    /// SecurityOpt.
    pub security_opt: Option<Vec<String>>,
    /// PidMode.
    pub pid_mode: String,
    /// IpcMode.
    pub ipc_mode: String,
    /// UTSMode.
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    /// MemorySwap.
    pub memory_swap: i64,
    /// CpuShares.
    pub cpu_shares: i64,
    /// CpusetCpus.
    pub cpuset_cpus: String,
    /// CpusetMems.
    pub cpuset_mems: String,
    /// CpuQuota.
    pub cpu_quota: i64,
    /// CpuPeriod.
    pub cpu_period: i64,
    /// LogConfig.
    pub log_config: Option<LogConfigBody>,
    /// OomKillDisable.
    pub oom_kill_disable: Option<bool>,
    /// GroupAdd.
    pub group_add: Option<Vec<String>>,
    /// Devices.
    pub devices: Option<Vec<DeviceBody>>,
    /// Sysctls.
    pub sysctls: Option<BTreeMap<String, String>>,
    /// OomScoreAdj.
    pub oom_score_adj: i64,
    /// MemoryReservation.
    pub memory_reservation: i64,
    /// CgroupParent.
    pub cgroup_parent: String,
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// The create body's lifecycle fields → [`RunOptions`].
pub fn run_options(c: &LifecycleConfigBody, h: &LifecycleHostBody) -> Result<RunOptions, ApiError> {
    let restart = match &h.restart_policy {
        Some(r) => RestartPolicy::from_api(&r.name, r.maximum_retry_count).map_err(bad)?,
        None => RestartPolicy::default(),
    };
    let healthcheck = c.healthcheck.as_ref().map(|hb| HealthConfig {
        test: hb.test.clone().unwrap_or_default(),
        interval: hb.interval,
        timeout: hb.timeout,
        start_period: hb.start_period,
        start_interval: hb.start_interval,
        retries: hb.retries,
    });
    let ulimits = h
        .ulimits
        .iter()
        .flatten()
        .map(|u| Ulimit {
            name: u.name.clone(),
            soft: u.soft,
            hard: u.hard,
        })
        .collect();
    let devices = h
        .devices
        .iter()
        .flatten()
        .map(|d| {
            let ctr = if d.path_in_container.is_empty() {
                &d.path_on_host
            } else {
                &d.path_in_container
            };
            let perms = if d.cgroup_permissions.is_empty() {
                "rwm"
            } else {
                &d.cgroup_permissions
            };
            DeviceMapping::parse(&format!("{}:{ctr}:{perms}", d.path_on_host))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let (log_driver, log_opts) = match &h.log_config {
        Some(l) => (l.kind.clone(), l.config.clone().unwrap_or_default()),
        None => (String::new(), BTreeMap::new()),
    };
    Ok(RunOptions {
        restart,
        healthcheck,
        init: h.init.unwrap_or(false),
        stop_signal: c.stop_signal.clone().unwrap_or_default(),
        stop_timeout: c.stop_timeout,
        ulimits,
        shm_size: h.shm_size,
        security_opt: h.security_opt.clone().unwrap_or_default(),
        pid_mode: NsMode::parse("pid", &h.pid_mode).map_err(bad)?,
        ipc_mode: NsMode::parse("ipc", &h.ipc_mode).map_err(bad)?,
        uts_mode: NsMode::parse("uts", &h.uts_mode).map_err(bad)?,
        memory_swap: h.memory_swap,
        cpu_shares: h.cpu_shares,
        cpuset_cpus: h.cpuset_cpus.clone(),
        cpuset_mems: h.cpuset_mems.clone(),
        cpu_quota: h.cpu_quota,
        cpu_period: h.cpu_period,
        log_driver,
        log_opts,
        domainname: c.domainname.clone().unwrap_or_default(),
        oom_kill_disable: h.oom_kill_disable.unwrap_or(false),
        group_add: h.group_add.clone().unwrap_or_default(),
        devices,
        sysctls: h.sysctls.clone().unwrap_or_default(),
        oom_score_adj: h.oom_score_adj,
        memory_reservation: h.memory_reservation,
        cgroup_parent: h.cgroup_parent.clone(),
    })
}

fn timeout_of(req: &Req) -> Result<Option<Duration>, ApiError> {
    match req.query.get("t").filter(|t| !t.is_empty()) {
        Some(t) => {
            let n = t
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid value for t: {t}")))?;
            // -1: wait forever (moby); a day is forever enough here
            Ok(Some(Duration::from_secs(if n < 0 {
                86_400
            } else {
                n as u64
            })))
        }
        None => Ok(None),
    }
}

/// `POST /containers/{id}/restart?t=` → 204.
pub async fn restart(ctx: &Ctx, id: &str, req: &Req) -> ApiResult {
    let signal = match req.query.get("signal").filter(|s| !s.is_empty()) {
        Some(s) => Some(crate::containers::parse_signal(s)?),
        None => None,
    };
    ctx.engine
        .restart_container(id, timeout_of(req)?, signal)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/pause` → 204.
pub async fn pause(ctx: &Ctx, id: &str) -> ApiResult {
    ctx.engine.pause_container(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/unpause` → 204.
pub async fn unpause(ctx: &Ctx, id: &str) -> ApiResult {
    ctx.engine.unpause_container(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/rename?name=` → 204.
pub async fn rename(ctx: &Ctx, id: &str, req: &Req) -> ApiResult {
    let new = req.query.get("name").unwrap_or("");
    ctx.engine.rename_container(id, new).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /containers/{id}/top?ps_args=` → `{Titles, Processes}`.
pub async fn top(ctx: &Ctx, id: &str, req: &Req) -> ApiResult {
    let args = req.query.get("ps_args").unwrap_or("");
    Ok(Json(ctx.engine.top_container(id, args).await?).into_response())
}

/// `GET /containers/{id}/stats?stream=&one-shot=` → JSON lines.
pub async fn stats(ctx: &Ctx, id: &str, req: &Req) -> ApiResult {
    // moby: stream defaults to true
    let stream = match req.query.get("stream") {
        None | Some("") => true,
        Some(_) => req.query.bool("stream"),
    };
    let one_shot = req.query.bool("one-shot");
    let s = ctx.engine.container_stats(id, stream, one_shot).await?;
    Ok(streamed("application/json", s))
}

/// `POST /containers/prune?filters=` → `{ContainersDeleted, SpaceReclaimed}`.
pub async fn prune(ctx: &Ctx, req: &Req) -> ApiResult {
    let filters = req.query.filters().map_err(ApiError::bad_request)?;
    Ok(Json(ctx.engine.prune_containers(filters).await?).into_response())
}

/// `POST /containers/{id}/update` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateBody {
    /// Memory.
    pub memory: Option<i64>,
    /// MemorySwap.
    pub memory_swap: Option<i64>,
    /// PidsLimit.
    pub pids_limit: Option<i64>,
    /// NanoCpus.
    pub nano_cpus: Option<i64>,
    /// CpuShares.
    pub cpu_shares: Option<i64>,
    /// CpusetCpus.
    pub cpuset_cpus: Option<String>,
    /// CpuQuota.
    pub cpu_quota: Option<i64>,
    /// CpuPeriod.
    pub cpu_period: Option<i64>,
    /// RestartPolicy.
    pub restart_policy: Option<RestartBody>,
}

/// `POST /containers/{id}/update` → `{Warnings}`.
pub async fn update(ctx: &Ctx, id: &str, body: Body) -> ApiResult {
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
    let b: UpdateBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in request body: {e}")))?;
    let nz = |v: Option<i64>| v.filter(|x| *x != 0);
    let u = berth_engine::containers::ops::UpdateRequest {
        memory: nz(b.memory),
        memory_swap: nz(b.memory_swap),
        pids_limit: nz(b.pids_limit),
        nano_cpus: nz(b.nano_cpus),
        cpu_shares: nz(b.cpu_shares),
        cpuset_cpus: b.cpuset_cpus.filter(|s| !s.is_empty()),
        cpu_quota: nz(b.cpu_quota),
        cpu_period: nz(b.cpu_period),
        restart: match b.restart_policy {
            Some(r) if !r.name.is_empty() => {
                Some(RestartPolicy::from_api(&r.name, r.maximum_retry_count).map_err(bad)?)
            }
            _ => None,
        },
    };
    let warnings = ctx.engine.update_container(id, u).await?;
    Ok(Json(json!({"Warnings": warnings})).into_response())
}

/// `GET /system/df`.
pub async fn system_df(ctx: &Ctx, req: &Req) -> ApiResult {
    let types = req.query.get_all("type");
    Ok(Json(ctx.engine.system_df(&types).await?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_lifecycle_fields_become_run_options() {
        let c: LifecycleConfigBody = serde_json::from_value(json!({
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 1000000000, "Retries": 2},
            "StopSignal": "SIGUSR1", "StopTimeout": 3, "Domainname": "d.org"
        }))
        .unwrap();
        let h: LifecycleHostBody = serde_json::from_value(json!({
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 4},
            "Init": true, "Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 20}],
            "ShmSize": 1048576, "SecurityOpt": ["no-new-privileges"], "PidMode": "host",
            "UTSMode": "host", "LogConfig": {"Type": "none", "Config": {}},
            "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "", "CgroupPermissions": ""}]
        }))
        .unwrap();
        let o = run_options(&c, &h).unwrap();
        assert_eq!(o.restart.max_retries, 4);
        assert!(o.init);
        assert_eq!(o.ulimits[0].hard, 20);
        assert_eq!(o.pid_mode, NsMode::Host);
        assert_eq!(o.uts_mode, NsMode::Host);
        assert_eq!(o.ipc_mode, NsMode::Private);
        assert_eq!(o.log_driver(), "none");
        assert_eq!(o.devices[0].path_in_container, "/dev/null");
        assert_eq!(o.healthcheck.as_ref().unwrap().retries, 2);
        assert_eq!(o.stop_timeout(), 3);
        let h: LifecycleHostBody =
            serde_json::from_value(json!({"RestartPolicy": {"Name": "sometimes"}})).unwrap();
        assert_eq!(
            run_options(&c, &h).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
}
