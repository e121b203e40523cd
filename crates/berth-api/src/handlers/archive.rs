//! `HEAD|GET|PUT /containers/{id}/archive?path=` (`cp`): the path's stat travels in
//! the `X-Docker-Container-Path-Stat` header (base64 JSON), the content as a tar.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use berth_engine::containers::archive::{ExtractOptions, PathStat};

use crate::error::ApiError;
use crate::handlers::{body_stream, streamed};
use crate::server::{ApiResult, Ctx, Req};

/// The header name moby uses.
pub const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn with_stat(mut r: Response, st: &PathStat) -> Response {
    let enc = base64::engine::general_purpose::STANDARD.encode(st.to_json().to_string());
    if let Ok(v) = HeaderValue::from_str(&enc) {
        r.headers_mut().insert(STAT_HEADER, v);
    }
    r
}

/// Serves one archive request for container `id`.
pub async fn handle(ctx: &Ctx, id: &str, req: &Req, body: Body) -> ApiResult {
    let path = req
        .query
        .get("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("path is required"))?
        .to_owned();
    match req.method.as_str() {
        "HEAD" => {
            let st = ctx.engine.stat_container_path(id, &path).await?;
            Ok(with_stat(StatusCode::OK.into_response(), &st))
        }
        "GET" => {
            let (st, stream) = ctx.engine.get_container_archive(id, &path).await?;
            Ok(with_stat(streamed("application/x-tar", stream), &st))
        }
        _ => {
            let opts = ExtractOptions {
                copy_uid_gid: req.query.bool("copyUIDGID"),
                no_overwrite_dir_non_dir: req.query.bool("noOverwriteDirNonDir"),
            };
            ctx.engine
                .put_container_archive(id, &path, body_stream(body), opts)
                .await?;
            let mut r = StatusCode::OK.into_response();
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            Ok(r)
        }
    }
}
