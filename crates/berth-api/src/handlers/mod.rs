//! Handlers: each decodes its request, calls one engine method and encodes the answer.

pub mod archive;
pub mod attach;
pub mod build;
pub mod commit;
pub mod exec;
pub mod images;
pub mod lifecycle;
pub mod networks;
pub mod pull;
pub mod system;
pub mod volumes;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;

/// A 200 with a streamed body of `content_type`.
pub fn streamed(
    content_type: &'static str,
    stream: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> Response {
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    *r.status_mut() = StatusCode::OK;
    r
}

/// The request body as the engine's byte stream.
pub fn body_stream(body: Body) -> berth_engine::io::ByteStream {
    use futures_util::TryStreamExt;
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}
