//! The HTTP side of berthd: one dispatcher that strips the version prefix, routes by
//! method and path (image names are matched greedily, slashes and all, as moby does),
//! calls the handler and stamps moby's headers on every answer.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_engine::Engine;
use berth_engine::system::{API_VERSION, ENGINE_VERSION};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::handlers::{images, system};
use crate::query::Query;
use crate::version::{ApiVersion, split_version};

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Becomes true when the daemon shuts down (ends live streams).
    pub shutdown: watch::Receiver<bool>,
}

/// One request, decoded for handlers.
#[derive(Debug)]
pub struct Req {
    /// The method.
    pub method: Method,
    /// The version the client asked for (the maximum when unversioned).
    pub version: ApiVersion,
    /// The path without the version prefix.
    pub path: String,
    /// The query.
    pub query: Query,
    /// The headers.
    pub headers: HeaderMap,
    /// The connection upgrade (hijacked attach/exec streams take it).
    pub upgrade: std::sync::Mutex<Option<hyper::upgrade::OnUpgrade>>,
}

/// What handlers return.
pub type ApiResult = Result<Response, ApiError>;

/// The `Server` header value.
pub fn server_header() -> String {
    format!("Berth/{ENGINE_VERSION} (linux)")
}

/// The router berthd serves.
pub fn router(engine: Arc<Engine>, shutdown: watch::Receiver<bool>) -> Router {
    Router::new()
        .fallback(dispatch)
        .with_state(Ctx { engine, shutdown })
}

fn stamp(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    if let Ok(v) = HeaderValue::from_str(&server_header()) {
        h.insert("Server", v);
    }
    resp
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-decodes a path (clients rarely escape, but may).
fn decode_path(p: &str) -> String {
    let bytes = p.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn dispatch(State(ctx): State<Ctx>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let raw_path = decode_path(parts.uri.path());
    let resp = match split_version(&raw_path) {
        Err(msg) => ApiError::bad_request(msg).into_response(),
        Ok((version, path)) => {
            let r = Req {
                method: parts.method,
                version,
                path: path.trim_end_matches('/').to_owned(),
                query: Query::parse(parts.uri.query()),
                headers: parts.headers,
                upgrade: std::sync::Mutex::new(upgrade),
            };
            tracing::debug!(method = %r.method, path = %raw_path, "request");
            route(&ctx, r, body)
                .await
                .unwrap_or_else(IntoResponse::into_response)
        }
    };
    stamp(resp)
}

fn not_found(path: &str) -> ApiError {
    ApiError::not_found(format!("page not found: {path}"))
}

async fn route(ctx: &Ctx, req: Req, body: Body) -> ApiResult {
    let path = req.path.clone();
    let m = req.method.clone();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segs.first() == Some(&"build") {
        return crate::handlers::build::route(ctx, &req, body)
            .await
            .unwrap_or_else(|| Err(not_found(&path)));
    }
    if crate::handlers::commit::serves(&req) {
        return crate::handlers::commit::route(ctx, &req, body)
            .await
            .unwrap_or_else(|| Err(not_found(&path)));
    }
    if segs.first() == Some(&"volumes") {
        return crate::handlers::volumes::route(ctx, &req, body)
            .await
            .unwrap_or_else(|| Err(not_found(&path)));
    }
    if segs.first() == Some(&"networks") {
        return crate::handlers::networks::route(ctx, &req, body)
            .await
            .unwrap_or_else(|| Err(not_found(&path)));
    }
    if segs.first() == Some(&"exec") {
        return crate::handlers::exec::route(ctx, &req, body)
            .await
            .unwrap_or_else(|| Err(not_found(&path)));
    }
    if segs.first() == Some(&"containers") {
        return crate::containers::route(ctx, &req, body)
            .await
            .unwrap_or_else(|| Err(not_found(&path)));
    }
    match (m.as_str(), segs.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => Ok(system::ping(&m)),
        ("GET", ["version"]) => system::version(ctx),
        ("GET", ["info"]) => system::info(ctx),
        ("GET", ["system", "df"]) => crate::handlers::lifecycle::system_df(ctx, &req).await,
        ("GET", ["events"]) => system::events(ctx, &req),
        ("POST", ["auth"]) => system::auth(ctx, body).await,
        ("GET", ["plugins"]) => Ok(axum::Json(serde_json::json!([])).into_response()),
        (_, ["swarm", "leave"]) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "This node is not part of a swarm",
        )),
        (
            _,
            ["swarm", ..]
            | ["services", ..]
            | ["nodes", ..]
            | ["secrets", ..]
            | ["configs", ..]
            | ["tasks", ..],
        ) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
        )),
        ("GET", ["images", "json"]) => images::list(ctx, &req).await,
        ("POST", ["images", "create"]) => images::create(ctx, &req, body).await,
        ("POST", ["images", "load"]) => images::load(ctx, body).await,
        ("GET", ["images", "get"]) => images::save(ctx, req.query.get_all("names")).await,
        ("POST", ["images", "prune"]) => images::prune(ctx, &req).await,
        ("GET", ["images", "search"]) => images::search(ctx, &req).await,
        (_, ["images", _, ..]) => {
            let name_and_op = &path["/images/".len()..];
            let (name, op) = match name_and_op.rsplit_once('/') {
                Some((n, op @ ("json" | "history" | "tag" | "push" | "get"))) => (n, op),
                _ => (name_and_op, ""),
            };
            match (m.as_str(), op) {
                ("GET", "json") => images::inspect(ctx, name).await,
                ("GET", "history") => images::history(ctx, name).await,
                ("POST", "tag") => images::tag(ctx, name, &req).await,
                ("POST", "push") => images::push(ctx, name, &req).await,
                ("GET", "get") => images::save(ctx, vec![name.to_owned()]).await,
                ("DELETE", "") => images::remove(ctx, name, &req).await,
                _ => Err(not_found(&path)),
            }
        }
        _ => Err(not_found(&path)),
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; live streams end when the
/// `stop` sender (the one the router's watch came from) flips.
pub async fn serve_unix(
    listener: tokio::net::UnixListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
