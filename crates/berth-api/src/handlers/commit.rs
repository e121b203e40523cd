//! `POST /commit`, `GET /containers/{id}/changes`, `GET /containers/{id}/export`.

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use berth_engine::containers::commit::CommitRequest;
use serde_json::json;

use crate::handlers::streamed;
use crate::server::{ApiResult, Ctx, Req};

/// Routes `/commit` and `/containers/{id}/changes|export`; `None` for other paths.
pub async fn route(ctx: &Ctx, req: &Req, _body: Body) -> Option<ApiResult> {
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["commit"]) => Some(commit(ctx, req).await),
        ("GET", ["containers", id, "changes"]) => Some(changes(ctx, id).await),
        ("GET", ["containers", id, "export"]) => Some(export(ctx, id).await),
        _ => None,
    }
}

/// Whether [`route`] serves this request (so the dispatcher can hand it over).
pub fn serves(req: &Req) -> bool {
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    matches!(
        (req.method.as_str(), segs.as_slice()),
        ("POST", ["commit"]) | ("GET", ["containers", _, "changes" | "export"])
    )
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&changes=&pause=` → 201 `{"Id"}`.
pub async fn commit(ctx: &Ctx, req: &Req) -> ApiResult {
    let q = &req.query;
    let r = CommitRequest {
        container: q.get("container").unwrap_or_default().to_owned(),
        repo: q.get("repo").map(str::to_owned),
        tag: q.get("tag").map(str::to_owned),
        comment: q.get("comment").map(str::to_owned),
        author: q.get("author").map(str::to_owned),
        changes: q.get_all("changes"),
        // Docker's default is to pause
        pause: q.get("pause").is_none_or(crate::query::parse_bool),
    };
    let id = ctx.engine.commit_container(r).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id}))).into_response())
}

/// `GET /containers/{id}/changes`: `[{"Path","Kind"}]` (null when nothing changed, as
/// moby answers).
pub async fn changes(ctx: &Ctx, id: &str) -> ApiResult {
    let list = ctx.engine.container_changes(id).await?;
    if list.is_empty() {
        return Ok(Json(serde_json::Value::Null).into_response());
    }
    let v: Vec<_> = list
        .iter()
        .map(|c| json!({"Path": c.path, "Kind": c.kind}))
        .collect();
    Ok(Json(v).into_response())
}

/// `GET /containers/{id}/export`: the merged root file system as a tar.
pub async fn export(ctx: &Ctx, id: &str) -> ApiResult {
    let stream = ctx.engine.export_container(id).await?;
    Ok(streamed("application/x-tar", stream))
}
