//! Exec routes: `POST /containers/{id}/exec` (201 `{Id}`), `POST /exec/{id}/start`
//! (hijacked as attach is; `Detach` answers 200 at once), `GET /exec/{id}/json`,
//! `POST /exec/{id}/resize`.

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use berth_engine::EngineError;
use berth_engine::containers::exec::{ExecConfig, inspect_json};
use berth_engine::containers::{ContainerError, Status};
use serde::Deserialize;
use serde_json::json;

use super::attach::{hijack_with, parse_detach_keys, size_query};
use crate::error::ApiError;
use crate::server::{ApiResult, Ctx, Req};

/// Docker's exec create body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    /// AttachStdin.
    pub attach_stdin: bool,
    /// AttachStdout.
    pub attach_stdout: bool,
    /// AttachStderr.
    pub attach_stderr: bool,
    /// Tty.
    pub tty: bool,
    /// Cmd.
    pub cmd: Option<Vec<String>>,
    /// Env.
    pub env: Option<Vec<String>>,
    /// User.
    pub user: String,
    /// WorkingDir.
    pub working_dir: String,
    /// Privileged.
    pub privileged: bool,
    /// DetachKeys.
    pub detach_keys: String,
    /// ConsoleSize `[height, width]`.
    pub console_size: Option<[u16; 2]>,
}

impl CreateBody {
    /// The engine's exec config.
    pub fn into_config(self) -> ExecConfig {
        ExecConfig {
            cmd: self.cmd.unwrap_or_default(),
            env: self.env.unwrap_or_default(),
            user: self.user,
            workdir: self.working_dir,
            tty: self.tty,
            privileged: self.privileged,
            attach_stdin: self.attach_stdin,
            attach_stdout: self.attach_stdout,
            attach_stderr: self.attach_stderr,
            console_size: self.console_size.unwrap_or_default(),
        }
    }
}

/// Docker's exec start body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StartBody {
    /// Detach.
    pub detach: bool,
    /// Tty.
    pub tty: bool,
    /// ConsoleSize `[height, width]`.
    pub console_size: Option<[u16; 2]>,
}

async fn json_body<T: for<'de> Deserialize<'de> + Default>(body: Body) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in request body: {e}")))
}

/// `POST /containers/{id}/exec` → 201 `{"Id"}`.
pub async fn create(ctx: &Ctx, id: &str, body: Body) -> ApiResult {
    let b: CreateBody = json_body(body).await?;
    if b.cmd.as_ref().is_none_or(Vec::is_empty) {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    parse_detach_keys(&b.detach_keys).map_err(ApiError::bad_request)?;
    let exec_id = ctx
        .engine
        .containers()
        .exec_create(id, b.into_config())
        .map_err(EngineError::from)?;
    Ok((StatusCode::CREATED, Json(json!({"Id": exec_id}))).into_response())
}

/// `POST /exec/{id}/start`. The process starts once the stream is hijacked.
pub async fn start(ctx: &Ctx, id: &str, req: &Req, body: Body) -> ApiResult {
    let b: StartBody = json_body(body).await?;
    let c = ctx.engine.containers().clone();
    if b.detach {
        let s = c
            .exec_start(id, true, b.console_size)
            .map_err(EngineError::from)?;
        drop(s);
        return Ok(StatusCode::OK.into_response());
    }
    // refuse what would fail before answering 101
    let e = c.exec_inspect(id).map_err(EngineError::from)?;
    if e.started {
        return Err(EngineError::from(ContainerError::ExecStarted(id.to_owned())).into());
    }
    let rec = c.get(&e.container_id).map_err(EngineError::from)?;
    if rec.state.status != Status::Running {
        return Err(EngineError::from(ContainerError::NotRunning(rec.id)).into());
    }
    let exec_id = id.to_owned();
    let cs = b.console_size;
    Ok(hijack_with(
        req,
        e.config.tty,
        move || c.exec_start(&exec_id, false, cs).map_err(|e| e.to_string()),
        super::attach::DEFAULT_DETACH_KEYS.to_vec(),
    ))
}

/// `GET /exec/{id}/json`.
pub async fn inspect(ctx: &Ctx, id: &str) -> ApiResult {
    let e = ctx
        .engine
        .containers()
        .exec_inspect(id)
        .map_err(EngineError::from)?;
    Ok(Json(inspect_json(&e)).into_response())
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn resize(ctx: &Ctx, id: &str, req: &Req) -> ApiResult {
    let (h, w) = size_query(req)?;
    let c = ctx.engine.containers();
    let e = c.exec_inspect(id).map_err(EngineError::from)?;
    c.resize(&e.container_id, Some(id), h, w)
        .await
        .map_err(EngineError::from)?;
    Ok(StatusCode::OK.into_response())
}

/// Routes `/exec/…`; `None` for other paths.
pub async fn route(ctx: &Ctx, req: &Req, body: Body) -> Option<ApiResult> {
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let r = match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["exec", id, "start"]) => start(ctx, id, req, body).await,
        ("GET", ["exec", id, "json"]) => inspect(ctx, id).await,
        ("POST", ["exec", id, "resize"]) => resize(ctx, id, req).await,
        _ => return None,
    };
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_becomes_a_config() {
        let b: CreateBody = serde_json::from_value(json!({
            "AttachStdin": true, "AttachStdout": true, "Tty": true, "Cmd": ["sh"],
            "Env": ["A=1"], "User": "nobody", "WorkingDir": "/tmp", "ConsoleSize": [30, 90]
        }))
        .unwrap();
        let c = b.into_config();
        assert_eq!(c.cmd, vec!["sh"]);
        assert!(c.tty && c.attach_stdin && c.attach_stdout && !c.attach_stderr);
        assert_eq!(c.user, "nobody");
        assert_eq!(c.console_size, [30, 90]);
    }
}
