//! `/images/...`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use berth_engine::images::ImportRequest;
use berth_image::RemoveItem;
use bytes::Bytes;
use serde::Serialize;

use crate::error::ApiError;
use crate::handlers::{body_stream, streamed};
use crate::jsonmessage::JsonMessage;
use crate::server::{ApiResult, Ctx, Req};

/// `GET /images/json?all=&filters=`.
pub async fn list(ctx: &Ctx, req: &Req) -> ApiResult {
    let filters = req.query.filters().map_err(ApiError::bad_request)?;
    let all = req.query.bool("all");
    Ok(Json(ctx.engine.list_images(&filters, all).await?).into_response())
}

/// `GET /images/{name}/json`.
pub async fn inspect(ctx: &Ctx, name: &str) -> ApiResult {
    Ok(Json(ctx.engine.inspect_image(name).await?).into_response())
}

/// `GET /images/{name}/history`.
pub async fn history(ctx: &Ctx, name: &str) -> ApiResult {
    Ok(Json(ctx.engine.image_history(name).await?).into_response())
}

/// `POST /images/{name}/tag?repo=&tag=` → 201.
pub async fn tag(ctx: &Ctx, name: &str, req: &Req) -> ApiResult {
    let repo = req
        .query
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("repository name (repo) is required"))?;
    ctx.engine
        .tag_image(name, repo, req.query.get("tag"))
        .await?;
    Ok(StatusCode::CREATED.into_response())
}

#[derive(Serialize)]
enum Item<'a> {
    Untagged(&'a str),
    Deleted(&'a str),
}

fn items(list: &[RemoveItem]) -> Vec<Item<'_>> {
    list.iter()
        .map(|i| match i {
            RemoveItem::Untagged(t) => Item::Untagged(t),
            RemoveItem::Deleted(d) => Item::Deleted(d),
        })
        .collect()
}

/// `DELETE /images/{name}?force=&noprune=`.
pub async fn remove(ctx: &Ctx, name: &str, req: &Req) -> ApiResult {
    let removed = ctx
        .engine
        .remove_image(name, req.query.bool("force"))
        .await?;
    Ok(Json(items(&removed)).into_response())
}

/// `POST /images/prune?filters=`.
pub async fn prune(ctx: &Ctx, req: &Req) -> ApiResult {
    let filters = req.query.filters().map_err(ApiError::bad_request)?;
    let report = ctx.engine.prune_images(&filters).await?;
    let deleted = if report.images.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::to_value(items(&report.images)).unwrap_or_default()
    };
    Ok(Json(
        serde_json::json!({"ImagesDeleted": deleted, "SpaceReclaimed": report.space_reclaimed}),
    )
    .into_response())
}

/// `POST /images/load?quiet=`: JSON messages, one `Loaded image: …` per tag.
pub async fn load(ctx: &Ctx, body: axum::body::Body) -> ApiResult {
    let result = ctx.engine.load_images(body_stream(body)).await;
    let lines: Vec<Result<Bytes, std::io::Error>> = match result {
        Ok(loaded) => loaded
            .iter()
            .flat_map(|l| l.messages())
            .map(|m| Ok(JsonMessage::stream(format!("{m}\n")).to_line()))
            .collect(),
        // Like moby, a bad archive is reported inside the 200 stream.
        Err(e) => vec![Ok(JsonMessage::error(e.to_string()).to_line())],
    };
    Ok(streamed(
        "application/json",
        futures_util::stream::iter(lines),
    ))
}

/// `GET /images/get?names=…` and `GET /images/{name}/get`: a docker-archive.
pub async fn save(ctx: &Ctx, names: Vec<String>) -> ApiResult {
    let stream = ctx.engine.save_images(names).await?;
    Ok(streamed("application/x-tar", stream))
}

/// `POST /images/create`: `fromSrc=-` imports the body; `fromImage=` pulls.
pub async fn create(ctx: &Ctx, req: &Req, body: axum::body::Body) -> ApiResult {
    if let Some(src) = req.query.get("fromSrc") {
        if src != "-" {
            return Err(ApiError::bad_request(format!(
                "importing from a URL ({src:?}) is not supported; send the tarball as the request body with fromSrc=-"
            )));
        }
        let r = ImportRequest {
            repo: req.query.get("repo").map(str::to_owned),
            tag: req.query.get("tag").map(str::to_owned),
            changes: req.query.get_all("changes"),
            message: req.query.get("message").map(str::to_owned),
        };
        let line = match ctx.engine.import_image(body_stream(body), r).await {
            Ok(id) => JsonMessage::status(id, None).to_line(),
            Err(e) if e.kind() == berth_engine::ErrorKind::InvalidParameter => return Err(e.into()),
            Err(e) => JsonMessage::error(e.to_string()).to_line(),
        };
        return Ok(streamed(
            "application/json",
            futures_util::stream::iter([Ok::<_, std::io::Error>(line)]),
        ));
    }
    if req.query.get("fromImage").is_some() {
        return crate::handlers::pull::pull(ctx, req).await;
    }
    Err(ApiError::bad_request(
        "either fromImage or fromSrc is required",
    ))
}

/// `POST /images/{name}/push?tag=`.
pub async fn push(ctx: &Ctx, name: &str, req: &Req) -> ApiResult {
    crate::handlers::pull::push(ctx, name, req).await
}

/// `GET /images/search?term=&limit=`.
pub async fn search(ctx: &Ctx, req: &Req) -> ApiResult {
    let term = req.query.get("term").unwrap_or_default();
    let limit = req
        .query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(25);
    Ok(Json(ctx.engine.search_images(term, limit).await?).into_response())
}
