//! `POST /build` (the classic builder's API, what `DOCKER_BUILDKIT=0 docker build` and
//! docker-py/compose send) and `POST /build/prune`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::response::IntoResponse;
use berth_engine::build::{BuildMessage, BuildRequest};
use bytes::Bytes;
use futures_util::StreamExt as _;

use crate::error::ApiError;
use crate::handlers::{body_stream, streamed};
use crate::jsonmessage::{ErrorDetail, JsonMessage};
use crate::server::{ApiResult, Ctx, Req};

/// Routes `/build…`; `None` when the path is not one of these.
pub async fn route(ctx: &Ctx, req: &Req, body: Body) -> Option<ApiResult> {
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/build") => Some(build(ctx, req, body).await),
        ("POST", "/build/prune") => Some(prune(ctx).await),
        _ => None,
    }
}

fn json_map(req: &Req, key: &str) -> Result<BTreeMap<String, String>, ApiError> {
    match req.query.get(key).filter(|s| !s.is_empty()) {
        None => Ok(BTreeMap::new()),
        Some(s) => {
            // buildargs values may be null (`--build-arg NAME` with NAME unset)
            let m: BTreeMap<String, Option<String>> = serde_json::from_str(s).map_err(|e| {
                ApiError::bad_request(format!("invalid {key} parameter {s:?}: {e}"))
            })?;
            Ok(m.into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect())
        }
    }
}

/// Decodes Docker's build query.
pub fn request(req: &Req) -> Result<BuildRequest, ApiError> {
    let q = &req.query;
    Ok(BuildRequest {
        dockerfile: q.get("dockerfile").unwrap_or_default().to_owned(),
        tags: q
            .get_all("t")
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect(),
        build_args: json_map(req, "buildargs")?,
        target: q.get("target").filter(|t| !t.is_empty()).map(str::to_owned),
        no_cache: q.bool("nocache"),
        pull: q.bool("pull"),
        labels: json_map(req, "labels")?,
        quiet: q.bool("q"),
        network: q
            .get("networkmode")
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        platform: q
            .get("platform")
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
    })
}

async fn drain(body: Body) {
    let mut s = body.into_data_stream();
    while let Some(Ok(_)) = s.next().await {}
}

/// `POST /build`: 200 and the JSON message stream; a failed build ends with an error
/// message (`errorDetail.code` 1), as moby's.
pub async fn build(ctx: &Ctx, req: &Req, body: Body) -> ApiResult {
    let r = match request(req).and_then(|r| {
        berth_engine::Engine::check_build_request(&r)?;
        Ok(r)
    }) {
        Ok(r) => r,
        Err(e) => {
            drain(body).await;
            return Err(e);
        }
    };
    let rx = match ctx.engine.build_image(body_stream(body), r).await {
        Ok(rx) => rx,
        Err(e) => return Err(e.into()),
    };
    let stream = tokio_stream_of(rx).map(|m| {
        let msg = match m {
            BuildMessage::Stream(s) => JsonMessage::stream(s),
            BuildMessage::Aux(v) => JsonMessage {
                aux: Some(v),
                ..JsonMessage::default()
            },
            BuildMessage::Error(e) => JsonMessage {
                error: Some(e.clone()),
                error_detail: Some(ErrorDetail {
                    code: Some(1),
                    message: e,
                }),
                ..JsonMessage::default()
            },
        };
        Ok::<Bytes, std::io::Error>(msg.to_line())
    });
    Ok(streamed("application/json", stream))
}

fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<BuildMessage>,
) -> impl futures_util::Stream<Item = BuildMessage> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
}

/// `POST /build/prune`.
pub async fn prune(ctx: &Ctx) -> ApiResult {
    let (ids, space) = ctx.engine.prune_build_cache().await?;
    Ok(Json(serde_json::json!({"CachesDeleted": ids, "SpaceReclaimed": space})).into_response())
}
