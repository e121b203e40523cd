//! Container routes: each decodes Docker's request, calls one engine method, encodes the
//! answer. Docker's create body becomes a [`ContainerSpec`] here and nowhere else.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use berth_engine::containers::WaitCondition;
use berth_engine::containers::logs::LogOptions;
use berth_types::spec::{ContainerSpec, NetworkMode, Resources};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::handlers::streamed;
use crate::server::{ApiResult, Ctx, Req};

/// Docker's `POST /containers/create` body (the fields this engine supports; unknown
/// fields are ignored, as moby does).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    /// Image.
    pub image: String,
    /// Cmd (a string is accepted too, as moby's strslice).
    #[serde(deserialize_with = "str_or_list")]
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(deserialize_with = "str_or_list")]
    pub entrypoint: Option<Vec<String>>,
    /// Env.
    pub env: Option<Vec<String>>,
    /// WorkingDir.
    pub working_dir: String,
    /// User.
    pub user: String,
    /// Hostname.
    pub hostname: String,
    /// Tty.
    pub tty: bool,
    /// OpenStdin.
    pub open_stdin: bool,
    /// StdinOnce.
    pub stdin_once: bool,
    /// AttachStdin.
    pub attach_stdin: bool,
    /// AttachStdout.
    pub attach_stdout: bool,
    /// AttachStderr.
    pub attach_stderr: bool,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// HostConfig.
    pub host_config: Option<HostConfigBody>,
    /// Volumes (anonymous volume destinations).
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// Lifecycle fields (Healthcheck, StopSignal, StopTimeout, Domainname).
    #[serde(flatten)]
    pub lifecycle: crate::handlers::lifecycle::LifecycleConfigBody,
    /// Networking fields (ExposedPorts, MacAddress, NetworkingConfig).
    #[serde(flatten)]
    pub net: crate::handlers::networks::NetConfigBody,
}

/// The `HostConfig` fields this engine supports.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfigBody {
    /// AutoRemove.
    pub auto_remove: bool,
    /// ConsoleSize `[height, width]`.
    pub console_size: Option<[u16; 2]>,
    /// NetworkMode.
    pub network_mode: String,
    /// Memory.
    pub memory: i64,
    /// PidsLimit.
    pub pids_limit: Option<i64>,
    /// NanoCpus.
    pub nano_cpus: i64,
    /// CapAdd.
    pub cap_add: Option<Vec<String>>,
    /// CapDrop.
    pub cap_drop: Option<Vec<String>>,
    /// Privileged.
    pub privileged: bool,
    /// ReadonlyRootfs.
    pub readonly_rootfs: bool,
    /// ExtraHosts (`name:ip`).
    pub extra_hosts: Option<Vec<String>>,
    /// Dns.
    pub dns: Option<Vec<String>>,
    /// DnsSearch.
    pub dns_search: Option<Vec<String>>,
    /// DnsOptions.
    pub dns_options: Option<Vec<String>>,
    /// Binds (`-v`).
    pub binds: Option<Vec<String>>,
    /// Mounts (`--mount`).
    pub mounts: Option<Vec<crate::handlers::volumes::ApiMount>>,
    /// Tmpfs (`--tmpfs`).
    pub tmpfs: Option<BTreeMap<String, String>>,
    /// VolumesFrom.
    pub volumes_from: Option<Vec<String>>,
    /// Lifecycle fields (RestartPolicy, Init, Ulimits, ShmSize, SecurityOpt, …).
    #[serde(flatten)]
    pub lifecycle: crate::handlers::lifecycle::LifecycleHostBody,
    /// Networking fields (PortBindings, PublishAllPorts, Links).
    #[serde(flatten)]
    pub net: crate::handlers::networks::NetHostConfigBody,
}

fn str_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<S>::deserialize(d)? {
        None => None,
        Some(S::One(s)) => Some(vec![s]),
        Some(S::Many(v)) => Some(v),
    })
}

impl CreateBody {
    /// The normalized spec (`name` from the query).
    pub fn into_spec(self, name: &str) -> Result<ContainerSpec, ApiError> {
        let hc = self.host_config.unwrap_or_default();
        let network = NetworkMode::parse(&hc.network_mode)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(ContainerSpec {
            image: self.image,
            cmd: self.cmd.unwrap_or_default(),
            entrypoint: self.entrypoint,
            env: self.env.unwrap_or_default(),
            workdir: self.working_dir,
            user: self.user,
            hostname: self.hostname,
            tty: self.tty,
            open_stdin: self.open_stdin,
            labels: self.labels.unwrap_or_default(),
            name: name.to_owned(),
            auto_remove: hc.auto_remove,
            network: network.clone(),
            resources: Resources {
                memory: hc.memory,
                pids_limit: hc.pids_limit.unwrap_or(0),
                nano_cpus: hc.nano_cpus,
            },
            cap_add: hc.cap_add.unwrap_or_default(),
            cap_drop: hc.cap_drop.unwrap_or_default(),
            privileged: hc.privileged,
            read_only: hc.readonly_rootfs,
            extra_hosts: hc.extra_hosts.unwrap_or_default(),
            dns: hc.dns.unwrap_or_default(),
            dns_search: hc.dns_search.unwrap_or_default(),
            dns_options: hc.dns_options.unwrap_or_default(),
            storage: crate::handlers::volumes::storage_spec(
                crate::handlers::volumes::StorageFields {
                    binds: hc.binds,
                    mounts: hc.mounts,
                    tmpfs: hc.tmpfs,
                    volumes_from: hc.volumes_from,
                    volumes: self.volumes,
                },
            )?,
            run: crate::handlers::lifecycle::run_options(&self.lifecycle, &hc.lifecycle)?,
            net: crate::handlers::networks::net_spec(self.net, hc.net, &network)?,
            interactive: berth_types::interactive::InteractiveSpec {
                stdin_once: self.stdin_once,
                attach_stdin: self.attach_stdin,
                attach_stdout: self.attach_stdout,
                attach_stderr: self.attach_stderr,
                console_size: hc.console_size.unwrap_or_default(),
            },
        })
    }
}

/// `POST /containers/create?name=` → 201 `{Id, Warnings}`.
pub async fn create(ctx: &Ctx, req: &Req, body: Body) -> ApiResult {
    let bytes = axum::body::to_bytes(body, 4 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
    let parsed: CreateBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "config cannot be empty in order to create a container",
        ));
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON in request body: {e}")))?
    };
    let spec = parsed.into_spec(req.query.get("name").unwrap_or(""))?;
    let (id, warnings) = ctx.engine.create_container(spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": id, "Warnings": warnings})),
    )
        .into_response())
}

/// Signal names (with or without `SIG`) or numbers.
pub fn parse_signal(s: &str) -> Result<i32, ApiError> {
    if s.is_empty() {
        return Ok(9);
    }
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(ApiError::bad_request(format!("Invalid signal: {s}")));
    }
    const NAMES: [(&str, i32); 20] = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("WINCH", 28),
    ];
    let up = s.to_ascii_uppercase();
    let bare = up.strip_prefix("SIG").unwrap_or(&up);
    NAMES
        .iter()
        .find(|(n, _)| *n == bare)
        .map(|(_, v)| *v)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid signal: {s}")))
}

/// `POST /containers/{id}/start` → 204, or 304 when already running.
pub async fn start(ctx: &Ctx, id: &str) -> ApiResult {
    if ctx.engine.start_container(id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(StatusCode::NOT_MODIFIED.into_response())
    }
}

/// `POST /containers/{id}/wait?condition=` → `{"StatusCode":n,"Error":…}`. As moby,
/// the 200 and headers go out at once and the body when the condition is met: the
/// docker CLI waits for the headers before it sends `start`.
pub async fn wait(ctx: &Ctx, id: &str, req: &Req) -> ApiResult {
    let cond = WaitCondition::parse(req.query.get("condition").unwrap_or(""))?;
    // a missing container is a 404 before any byte of the answer
    let id = ctx
        .engine
        .containers()
        .resolve(id)
        .map_err(berth_engine::EngineError::from)?;
    let engine = ctx.engine.clone();
    let body = futures_util::stream::once(async move {
        let v = match engine.wait_container(&id, cond).await {
            Ok(r) => {
                let mut v = json!({"StatusCode": r.status_code});
                if let Some(e) = r.error {
                    v["Error"] = json!({"Message": e});
                }
                v
            }
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.to_string()}}),
        };
        let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
        bytes.push(b'\n');
        Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))
    });
    Ok(streamed("application/json", body))
}

/// `POST /containers/{id}/kill?signal=` → 204.
pub async fn kill(ctx: &Ctx, id: &str, req: &Req) -> ApiResult {
    let sig = parse_signal(req.query.get("signal").unwrap_or(""))?;
    ctx.engine.kill_container(id, sig).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/stop?t=` → 204, or 304 when not running.
pub async fn stop(ctx: &Ctx, id: &str, req: &Req) -> ApiResult {
    let t = match req.query.get("t").filter(|t| !t.is_empty()) {
        Some(t) => t
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid value for t: {t}")))?,
        // the container's --stop-timeout, else Docker's 10 s
        None => ctx
            .engine
            .containers()
            .get(id)
            .map(|r| r.spec.run.stop_timeout())
            .unwrap_or(10),
    };
    let timeout = Duration::from_secs(t.max(0) as u64);
    // `stop -s`: a signal other than the container's stop signal
    let signal = match req.query.get("signal").filter(|s| !s.is_empty()) {
        Some(s) => Some(parse_signal(s)?),
        None => None,
    };
    if ctx.engine.stop_container_with(id, timeout, signal).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(StatusCode::NOT_MODIFIED.into_response())
    }
}

/// `DELETE /containers/{id}?force=` → 204.
pub async fn remove(ctx: &Ctx, id: &str, req: &Req) -> ApiResult {
    ctx.engine
        .remove_container_with_volumes(id, req.query.bool("force"), req.query.bool("v"))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /containers/{id}/json`.
pub async fn inspect(ctx: &Ctx, id: &str, req: &Req) -> ApiResult {
    let v = ctx.engine.inspect_container(id).await?;
    if !req.query.bool("size") {
        return Ok(Json(v).into_response());
    }
    // `?size=1`: SizeRw and SizeRootFs, as `ps -s` has them
    let mut one = [v];
    ctx.engine.add_container_sizes(&mut one).await?;
    let [v] = one;
    Ok(Json(v).into_response())
}

/// `GET /containers/json?all=&limit=&filters=`.
pub async fn list(ctx: &Ctx, req: &Req) -> ApiResult {
    let filters = req.query.filters().map_err(ApiError::bad_request)?;
    let limit = req
        .query
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let all = req.query.bool("all");
    let body = ctx
        .engine
        .list_containers(all, filters, limit, req.query.bool("size"))
        .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// `GET /containers/{id}/logs?stdout=&stderr=&follow=&tail=&timestamps=`.
pub async fn logs(ctx: &Ctx, id: &str, req: &Req) -> ApiResult {
    let q = &req.query;
    let tail = match q.get("tail") {
        None | Some("" | "all") => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid value for tail: {t}")))?
                .max(0) as usize,
        ),
    };
    let opts = LogOptions {
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        follow: q.bool("follow"),
        tail,
        timestamps: q.bool("timestamps"),
        since: q
            .get("since")
            .and_then(berth_engine::containers::logs::parse_unix_nanos),
        until: q
            .get("until")
            .and_then(berth_engine::containers::logs::parse_unix_nanos),
    };
    let (stream, tty) = ctx.engine.container_logs(id, opts).await?;
    // the multiplexed content type exists from API 1.42 (moby sends raw-stream before)
    let ct = if !tty
        && req.version
            >= (crate::version::ApiVersion {
                major: 1,
                minor: 42,
            }) {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    };
    Ok(streamed(ct, stream))
}

/// Routes `/containers/…`; `None` when the path is not a container route.
pub async fn route(ctx: &Ctx, req: &Req, body: Body) -> Option<ApiResult> {
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let m = req.method.as_str();
    let r = match (m, segs.as_slice()) {
        ("POST", ["containers", _, "attach" | "resize" | "exec"]) => {
            return crate::handlers::attach::route(ctx, req, body).await;
        }
        ("POST", ["containers", "create"]) => create(ctx, req, body).await,
        ("GET", ["containers", "json"]) => list(ctx, req).await,
        ("GET", ["containers", id, "json"]) => inspect(ctx, id, req).await,
        ("POST", ["containers", id, "start"]) => start(ctx, id).await,
        ("POST", ["containers", id, "wait"]) => wait(ctx, id, req).await,
        ("POST", ["containers", id, "kill"]) => kill(ctx, id, req).await,
        ("POST", ["containers", id, "stop"]) => stop(ctx, id, req).await,
        ("GET", ["containers", id, "logs"]) => logs(ctx, id, req).await,
        ("DELETE", ["containers", id]) => remove(ctx, id, req).await,
        ("POST", ["containers", "prune"]) => crate::handlers::lifecycle::prune(ctx, req).await,
        ("POST", ["containers", id, "restart"]) => {
            crate::handlers::lifecycle::restart(ctx, id, req).await
        }
        ("POST", ["containers", id, "pause"]) => crate::handlers::lifecycle::pause(ctx, id).await,
        ("POST", ["containers", id, "unpause"]) => {
            crate::handlers::lifecycle::unpause(ctx, id).await
        }
        ("POST", ["containers", id, "rename"]) => {
            crate::handlers::lifecycle::rename(ctx, id, req).await
        }
        ("GET", ["containers", id, "top"]) => crate::handlers::lifecycle::top(ctx, id, req).await,
        ("GET", ["containers", id, "stats"]) => {
            crate::handlers::lifecycle::stats(ctx, id, req).await
        }
        ("POST", ["containers", id, "update"]) => {
            crate::handlers::lifecycle::update(ctx, id, body).await
        }
        ("HEAD" | "GET" | "PUT", ["containers", id, "archive"]) => {
            crate::handlers::archive::handle(ctx, id, req, body).await
        }
        _ => return None,
    };
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_becomes_a_spec() {
        let b: CreateBody = serde_json::from_value(json!({
            "Image": "busybox", "Cmd": "true", "Env": ["A=1"], "Tty": false,
            "Labels": {"a": "b"},
            "HostConfig": {"AutoRemove": true, "NetworkMode": "host", "Memory": 67108864,
                           "PidsLimit": 5, "CapDrop": ["KILL"], "Unknown": 1},
            "ExposedPorts": {}
        }))
        .unwrap();
        let s = b.into_spec("web").unwrap();
        assert_eq!(s.cmd, vec!["true"]);
        assert_eq!(s.entrypoint, None);
        assert_eq!(s.name, "web");
        assert!(s.auto_remove);
        assert_eq!(s.network, NetworkMode::Host);
        assert_eq!(s.resources.pids_limit, 5);
        assert_eq!(s.labels["a"], "b");
        let b: CreateBody = serde_json::from_value(json!({
            "Image": "busybox", "HostConfig": {"NetworkMode": "bad:mode"}
        }))
        .unwrap();
        assert_eq!(b.into_spec("").unwrap_err().status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert_eq!(parse_signal("").unwrap(), 9);
        assert_eq!(
            parse_signal("NOPE").unwrap_err().message,
            "Invalid signal: NOPE"
        );
    }
}
