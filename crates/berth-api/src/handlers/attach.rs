//! `POST /containers/{id}/attach` and `/resize`, and the hijack plumbing exec shares:
//! the answer is `101 UPGRADED` (`Upgrade: tcp`) and then the raw socket carries the
//! process's output (Docker's 8-byte frames without a tty, raw bytes with one) one way
//! and stdin the other; without `Upgrade` it is a 200 whose body is the output (moby's
//! answer to old clients). Detach keys (default ctrl-p ctrl-q) are watched in stdin.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_engine::containers::attach::{AttachOptions, Input, Session};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::error::ApiError;
use crate::server::{ApiResult, Ctx, Req};
use crate::version::ApiVersion;

/// Docker's default detach sequence: ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// Parses Docker's `detachKeys` (`ctrl-p,ctrl-q`, `a`, `ctrl-@`…); empty = the default.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, String> {
    if s.is_empty() {
        return Ok(DEFAULT_DETACH_KEYS.to_vec());
    }
    s.split(',')
        .map(|k| {
            let k = k.trim();
            if let Some(c) = k.strip_prefix("ctrl-") {
                let b = match c.as_bytes() {
                    [b @ b'a'..=b'z'] => b - b'a' + 1,
                    [b @ b'A'..=b'Z'] => b - b'A' + 1,
                    [b'@'] => 0,
                    [b'['] => 27,
                    [b'\\'] => 28,
                    [b']'] => 29,
                    [b'^'] => 30,
                    [b'_'] => 31,
                    _ => return Err(format!("invalid detach keys: {s:?}")),
                };
                Ok(b)
            } else if k.len() == 1 {
                Ok(k.as_bytes()[0])
            } else {
                Err(format!("invalid detach keys: {s:?}"))
            }
        })
        .collect()
}

/// Watches stdin for the detach sequence: bytes that may start it are held back until
/// it is clear whether they do.
#[derive(Debug)]
pub struct DetachMatcher {
    keys: Vec<u8>,
    held: usize,
}

impl DetachMatcher {
    /// A matcher for `keys` (empty: never detaches).
    pub fn new(keys: Vec<u8>) -> DetachMatcher {
        DetachMatcher { keys, held: 0 }
    }

    /// The bytes to forward, and whether the sequence was completed.
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        if self.keys.is_empty() {
            return (data.to_vec(), false);
        }
        for &b in data {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = 0;
                if b == self.keys[0] {
                    self.held = 1;
                    if self.keys.len() == 1 {
                        return (out, true);
                    }
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + data.len());
    v.extend_from_slice(&[stream, 0, 0, 0]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// Copies a session over a hijacked connection until the output ends or the client
/// detaches.
pub async fn bridge<IO>(io: IO, s: Session, detach_keys: Vec<u8>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let Session {
        tty,
        stdin,
        input,
        mut output,
        ..
    } = s;
    let (detached_tx, mut detached_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut m = DetachMatcher::new(detach_keys);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !stdin {
                continue;
            }
            let (data, detach) = m.feed(&buf[..n]);
            if !data.is_empty() && input.send(Input::Data(Bytes::from(data))).await.is_err() {
                return;
            }
            if detach {
                drop(input);
                let _ = detached_tx.send(());
                return;
            }
        }
        // the client half-closed: stdin ends, the output goes on
        if stdin {
            let _ = input.send(Input::Eof).await;
        }
        std::future::pending::<()>().await;
        drop(input);
    });
    loop {
        tokio::select! {
            o = output.recv() => match o {
                Some(o) => {
                    let bytes = if tty { o.data.to_vec() } else { frame(o.stream, &o.data) };
                    if wr.write_all(&bytes).await.is_err() {
                        break;
                    }
                    let _ = wr.flush().await;
                }
                None => break,
            },
            _ = &mut detached_rx => break,
        }
    }
    let _ = wr.shutdown().await;
    reader.abort();
}

/// The stream's content type: multiplexed without a tty from API 1.42, else raw.
pub fn content_type(tty: bool, version: ApiVersion) -> &'static str {
    if !tty
        && version
            >= (ApiVersion {
                major: 1,
                minor: 42,
            })
    {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    }
}

/// Answers with the hijacked stream: 101 when the client asked to upgrade, else a 200
/// whose body is the output.
pub fn hijack(req: &Req, s: Session, detach_keys: Vec<u8>) -> Response {
    let tty = s.tty;
    hijack_with(req, tty, move || Ok(s), detach_keys)
}

/// As [`hijack`], with the session made by `make` — after the upgrade when there is
/// one, so that the process's first output cannot reach the client together with the
/// 101's headers (docker-py reads the stream past its HTTP reader's buffer, and would
/// lose it). A failure of `make` is written to the stream.
pub fn hijack_with(
    req: &Req,
    tty: bool,
    make: impl FnOnce() -> Result<Session, String> + Send + 'static,
    detach_keys: Vec<u8>,
) -> Response {
    let ct = content_type(tty, req.version);
    let wants_upgrade = req
        .headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tcp"));
    let on_upgrade = req.upgrade.lock().ok().and_then(|mut u| u.take());
    // The 101 is flushed when the upgrade resolves, but a client may not have read it
    // yet. The Go clients (docker CLI, berth) hand over what they read past the
    // headers; docker-py and other unknown ones may not: they get a moment first, so
    // the first output arrives apart from the headers.
    let ua = req
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let careful = !(ua.starts_with("Docker-Client/") || ua.starts_with("Berth-Client/"));
    match (wants_upgrade, on_upgrade) {
        (true, Some(on)) => {
            tokio::spawn(async move {
                match on.await {
                    Ok(up) => {
                        let mut io = TokioIo::new(up);
                        if careful {
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                        match make() {
                            Ok(s) => bridge(io, s, detach_keys).await,
                            Err(msg) => {
                                let m = format!("{msg}\r\n");
                                let bytes = if tty {
                                    m.into_bytes()
                                } else {
                                    frame(3, m.as_bytes())
                                };
                                let _ = io.write_all(&bytes).await;
                                let _ = io.shutdown().await;
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "hijack failed"),
                }
            });
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
            r
        }
        _ => {
            let s = match make() {
                Ok(s) => s,
                Err(msg) => {
                    return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, msg).into_response();
                }
            };
            // the input stays open (not a detach) while the body streams
            let body = futures_util::stream::unfold(s, move |mut s| async move {
                let o = s.output.recv().await?;
                let bytes = if tty {
                    o.data
                } else {
                    Bytes::from(frame(o.stream, &o.data))
                };
                Some((Ok::<_, std::io::Error>(bytes), s))
            });
            super::streamed(ct, body)
        }
    }
}

/// `POST /containers/{id}/attach?stream=&stdin=&stdout=&stderr=&logs=&detachKeys=`.
pub async fn attach(ctx: &Ctx, id: &str, req: &Req, body: Body) -> ApiResult {
    // a declared body (dockerode sends one) is not stdin
    let _ = axum::body::to_bytes(body, 1 << 20).await;
    let q = &req.query;
    let keys =
        parse_detach_keys(q.get("detachKeys").unwrap_or("")).map_err(ApiError::bad_request)?;
    let opts = AttachOptions {
        stdin: q.bool("stdin"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        logs: q.bool("logs"),
        stream: q.bool("stream"),
    };
    let c = ctx.engine.containers().clone();
    if !opts.stream {
        // only the log: read after the upgrade (see `hijack_with`)
        let tty = c.get(id).map_err(berth_engine::EngineError::from)?.spec.tty;
        let id = id.to_owned();
        let make = move || c.attach(&id, opts).map_err(|e| e.to_string());
        return Ok(hijack_with(req, tty, make, keys));
    }
    // registered now: a start that follows must find this attach waiting
    let s = c
        .attach(id, opts)
        .map_err(berth_engine::EngineError::from)?;
    Ok(hijack(req, s, keys))
}

/// Parses `h` and `w` of a resize.
pub fn size_query(req: &Req) -> Result<(u16, u16), ApiError> {
    let n = |k: &str| -> Result<u16, ApiError> {
        let v = req.query.get(k).unwrap_or("");
        v.parse::<u16>()
            .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}")))
    };
    Ok((n("h")?, n("w")?))
}

/// `POST /containers/{id}/resize?h=&w=` → 200.
pub async fn resize(ctx: &Ctx, id: &str, req: &Req) -> ApiResult {
    let (h, w) = size_query(req)?;
    ctx.engine
        .containers()
        .resize(id, None, h, w)
        .await
        .map_err(berth_engine::EngineError::from)?;
    Ok(StatusCode::OK.into_response())
}

/// Routes the interactive container paths; `None` for others.
pub async fn route(ctx: &Ctx, req: &Req, body: Body) -> Option<ApiResult> {
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["containers", id, "attach"]) => Some(attach(ctx, id, req, body).await),
        ("POST", ["containers", id, "resize"]) => Some(resize(ctx, id, req).await),
        ("POST", ["containers", id, "exec"]) => Some(super::exec::create(ctx, id, body).await),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_docker() {
        assert_eq!(parse_detach_keys("").unwrap(), vec![0x10, 0x11]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert_eq!(parse_detach_keys("ctrl-@,ctrl-_").unwrap(), vec![0, 31]);
        assert!(parse_detach_keys("ctrl-ab").is_err());
        assert!(parse_detach_keys("abc").is_err());
    }

    #[test]
    fn matcher_holds_partial_sequences_and_detaches() {
        let mut m = DetachMatcher::new(vec![0x10, 0x11]);
        assert_eq!(m.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(m.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(m.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(m.feed(b"\x11rest"), (Vec::new(), true));
        let mut none = DetachMatcher::new(Vec::new());
        assert_eq!(none.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }

    #[tokio::test]
    async fn bridge_frames_output_and_forwards_stdin_until_detach() {
        let (client, server) = tokio::io::duplex(1024);
        let (in_tx, mut in_rx) = tokio::sync::mpsc::channel(8);
        let (out_tx, out_rx) = tokio::sync::mpsc::channel(8);
        let s = Session {
            id: "c".into(),
            tty: false,
            stdin: true,
            input: in_tx,
            output: out_rx,
        };
        let t = tokio::spawn(bridge(server, s, DEFAULT_DETACH_KEYS.to_vec()));
        out_tx
            .send(berth_engine::containers::attach::Output {
                stream: 2,
                data: Bytes::from_static(b"err"),
            })
            .await
            .unwrap();
        let (mut cr, mut cw) = tokio::io::split(client);
        let mut got = [0u8; 11];
        cr.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [2, 0, 0, 0, 0, 0, 0, 3, b'e', b'r', b'r']);
        cw.write_all(b"hi\x10\x11").await.unwrap();
        assert_eq!(
            in_rx.recv().await,
            Some(Input::Data(Bytes::from_static(b"hi")))
        );
        // detached: the input is dropped without an EOF, the stream closes
        assert_eq!(in_rx.recv().await, None);
        t.await.unwrap();
        let mut rest = Vec::new();
        cr.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}
