//! `/_ping`, `/version`, `/info`, `/events`, `/auth`.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_engine::EventFilter;
use berth_engine::system::API_VERSION;
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::handlers::streamed;
use crate::server::{ApiResult, Ctx, Req};

/// `HEAD|GET /_ping` with the headers the docker CLI negotiates from.
pub fn ping(method: &Method) -> Response {
    let body = if method == Method::HEAD { "" } else { "OK" };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    h.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    h.insert(
        "Content-Type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `GET /version`.
pub fn version(ctx: &Ctx) -> ApiResult {
    Ok(Json(ctx.engine.version()).into_response())
}

/// `GET /info`.
pub fn info(ctx: &Ctx) -> ApiResult {
    Ok(Json(ctx.engine.info()).into_response())
}

/// Parses `since`/`until`: Unix `seconds[.nanos]` (what the CLI sends) or RFC 3339.
pub fn parse_event_time(s: &str) -> Result<i64, String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_nanosecond() as i64);
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().map_err(|_| {
        format!("invalid timestamp {s:?}: expected seconds[.nanoseconds] or RFC 3339")
    })?;
    let mut nanos: i64 = 0;
    if !frac.is_empty() {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits
            .parse()
            .map_err(|_| format!("invalid timestamp {s:?}: bad fraction"))?;
    }
    Ok(secs * 1_000_000_000 + nanos)
}

/// `GET /events?since=&until=&filters=`: replay from `since`, then live until `until`
/// (or until the client goes away / the daemon stops).
pub fn events(ctx: &Ctx, req: &Req) -> ApiResult {
    let filters = req.query.filters().map_err(ApiError::bad_request)?;
    let filter = EventFilter::from_map(&filters).map_err(ApiError::bad_request)?;
    let since = req
        .query
        .get("since")
        .filter(|s| !s.is_empty())
        .map(parse_event_time)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let until = req
        .query
        .get("until")
        .filter(|s| !s.is_empty())
        .map(parse_event_time)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let (past, rx) = ctx.engine.events().subscribe(since);
    let now = berth_engine::events::now_nanos();
    let deadline = until.map(|u| {
        tokio::time::Instant::now() + Duration::from_nanos(u.saturating_sub(now).max(0) as u64)
    });
    let replay: Vec<Result<Bytes, std::io::Error>> = past
        .into_iter()
        .filter(|e| filter.matches(e) && until.is_none_or(|u| e.time_nano <= u))
        .map(|e| Ok(Bytes::from(e.to_json() + "\n")))
        .collect();
    let shutdown = ctx.shutdown.clone();
    let live = futures_util::stream::unfold(
        (rx, shutdown, filter),
        move |(mut rx, mut shutdown, filter)| async move {
            loop {
                if *shutdown.borrow() {
                    return None;
                }
                let next = async {
                    match deadline {
                        Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok(),
                        None => Some(rx.recv().await),
                    }
                };
                let got = tokio::select! {
                    g = next => g,
                    _ = shutdown.changed() => None,
                };
                match got {
                    None => return None,
                    Some(Err(RecvError::Closed)) => return None,
                    Some(Err(RecvError::Lagged(n))) => {
                        tracing::warn!(missed = n, "events subscriber lagged")
                    }
                    Some(Ok(e)) => {
                        if until.is_some_and(|u| e.time_nano > u) {
                            return None;
                        }
                        if filter.matches(&e) {
                            return Some((
                                Ok(Bytes::from(e.to_json() + "\n")),
                                (rx, shutdown, filter),
                            ));
                        }
                    }
                }
            }
        },
    );
    let stream = futures_util::StreamExt::chain(futures_util::stream::iter(replay), live);
    Ok(streamed("application/json", stream))
}

#[derive(Debug, Deserialize)]
struct AuthBody {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    serveraddress: String,
}

/// `POST /auth`.
pub async fn auth(ctx: &Ctx, body: axum::body::Body) -> ApiResult {
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
    let body: AuthBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid auth body: {e}")))?;
    ctx.engine
        .check_login(&body.serveraddress, &body.username, &body.password)
        .await?;
    Ok(Json(serde_json::json!({"Status": "Login Succeeded", "IdentityToken": ""})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_parse_cli_and_rfc3339_forms() {
        assert_eq!(
            parse_event_time("1735689600.000000000").unwrap(),
            1_735_689_600_000_000_000
        );
        assert_eq!(
            parse_event_time("1735689600.5").unwrap(),
            1_735_689_600_500_000_000
        );
        assert_eq!(
            parse_event_time("1735689600").unwrap(),
            1_735_689_600_000_000_000
        );
        assert_eq!(
            parse_event_time("2025-01-01T00:00:00Z").unwrap(),
            1_735_689_600_000_000_000
        );
        assert!(parse_event_time("yesterday").is_err());
    }
}
