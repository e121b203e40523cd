//! The client side: Engine API requests over a unix socket (one HTTP/1.1 connection per
//! request), version negotiation from `/_ping`, Docker's error bodies decoded.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, TryStreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, BodyStream, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

/// A request body.
pub type ReqBody = BoxBody<Bytes, io::Error>;

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket.
    #[error(
        "cannot connect to the berth daemon at {}: {source}. Is the daemon running?",
        display_target(path)
    )]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The HTTP exchange failed.
    #[error("request to the daemon failed: {0}")]
    Http(#[from] hyper::Error),
    /// The daemon answered with an error.
    #[error("Error response from daemon: {message}")]
    Daemon {
        /// The status code.
        status: u16,
        /// Its message.
        message: String,
    },
    /// An answer could not be decoded.
    #[error("invalid answer from the daemon for {what}: {source}")]
    Decode {
        /// Which request.
        what: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A request could not be built.
    #[error("invalid request: {0}")]
    Request(String),
    /// TLS material or the handshake failed.
    #[error("tls: {0}")]
    Tls(String),
}

impl ClientError {
    /// The HTTP status of a daemon error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn display_target(p: &Path) -> String {
    let s = p.display().to_string();
    if s.starts_with("tcp://") {
        s
    } else {
        format!("unix://{s}")
    }
}

/// An empty body.
pub fn empty() -> ReqBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A body of these bytes.
pub fn full(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A streamed body.
pub fn streaming(s: impl Stream<Item = io::Result<Bytes>> + Send + Sync + 'static) -> ReqBody {
    BodyExt::boxed(StreamBody::new(s.map_ok(Frame::data)))
}

/// The `/_ping` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    /// `Api-Version`.
    pub api_version: Option<String>,
    /// `Ostype`.
    pub os_type: Option<String>,
}

/// Where the daemon listens.
#[derive(Clone)]
pub enum Endpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// `host:port` over TLS.
    Tls {
        /// The address.
        addr: String,
        /// The TLS settings (roots, client certificate).
        config: std::sync::Arc<rustls::ClientConfig>,
    },
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tls { addr, .. } => write!(f, "tcp://{addr} (TLS)"),
        }
    }
}

/// TLS settings for a tcp endpoint: trust `ca`, and present `cert`/`key` when given.
pub fn tls_config(
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, ClientError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &Path, e: &dyn std::fmt::Display| {
        ClientError::Tls(format!("{}: {e}", what.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| bad(ca, &e))? {
        roots
            .add(c.map_err(|e| bad(ca, &e))?)
            .map_err(|e| bad(ca, &e))?;
    }
    let b = rustls::ClientConfig::builder().with_root_certificates(roots);
    Ok(match client {
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| bad(cert, &e))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(cert, &e))?;
            let k = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
            b.with_client_auth_cert(chain, k)
                .map_err(|e| bad(cert, &e))?
        }
        None => b.with_no_client_auth(),
    })
}

/// An Engine API client on a unix socket (or TLS over TCP).
#[derive(Debug)]
pub struct Client {
    socket: PathBuf,
    endpoint: Endpoint,
    version: Mutex<Option<String>>,
    /// A connection already made (the CLI's probe of the socket), used by the next request.
    spare: Mutex<Option<(std::os::unix::net::UnixStream, std::time::Instant)>>,
}

/// The highest API version this client speaks.
pub const CLIENT_MAX_VERSION: &str = "1.44";

impl Client {
    /// A client for the daemon listening at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        let socket = socket.into();
        Client {
            endpoint: Endpoint::Unix(socket.clone()),
            socket,
            version: Mutex::new(None),
            spare: Mutex::new(None),
        }
    }

    /// A client for a daemon served over TLS at `addr` (`host:port`).
    pub fn tls(addr: &str, config: rustls::ClientConfig) -> Client {
        Client {
            socket: PathBuf::from(format!("tcp://{addr}")),
            endpoint: Endpoint::Tls {
                addr: addr.to_owned(),
                config: std::sync::Arc::new(config),
            },
            version: Mutex::new(None),
            spare: Mutex::new(None),
        }
    }

    /// Connects to the daemon's socket now (a listener there answers), keeping the
    /// connection for the next request: the probe costs no extra connection.
    pub fn connect_now(&self) -> std::io::Result<()> {
        let Endpoint::Unix(path) = &self.endpoint else {
            return Ok(());
        };
        let s = std::os::unix::net::UnixStream::connect(path)?;
        if let Ok(mut g) = self.spare.lock() {
            *g = Some((s, std::time::Instant::now()));
        }
        Ok(())
    }

    /// The kept connection or a new one to `path`.
    async fn unix_stream(&self, path: &Path) -> Result<tokio::net::UnixStream, ClientError> {
        let err = |source| ClientError::Connect {
            path: path.to_owned(),
            source,
        };
        // only a fresh one: a daemon may close idle connections (a command that asked
        // the user something first connects again)
        let spare = self.spare.lock().ok().and_then(|mut g| g.take());
        if let Some((s, made)) = spare
            && made.elapsed() < std::time::Duration::from_secs(1)
        {
            s.set_nonblocking(true).map_err(err)?;
            return tokio::net::UnixStream::from_std(s).map_err(err);
        }
        tokio::net::UnixStream::connect(path).await.map_err(err)
    }

    /// Another handle on the same daemon (same endpoint and negotiated version), for
    /// tasks that outlive a borrow.
    pub fn clone_handle(&self) -> Client {
        Client {
            socket: self.socket.clone(),
            endpoint: self.endpoint.clone(),
            version: Mutex::new(self.api_version()),
            spare: Mutex::new(None),
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The negotiated API version, once pinged.
    pub fn api_version(&self) -> Option<String> {
        self.version.lock().ok().and_then(|v| v.clone())
    }

    /// `HEAD /_ping` (GET when HEAD fails), and negotiates the version:
    /// min(ours, the daemon's), as the docker CLI does.
    pub async fn ping(&self) -> Result<Ping, ClientError> {
        let mut resp = self.raw(Method::HEAD, "/_ping", empty(), &[]).await?;
        if resp.status() != StatusCode::OK {
            resp = self.raw(Method::GET, "/_ping", empty(), &[]).await?;
        }
        let h = |k: &str| {
            resp.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let ping = Ping {
            api_version: h("Api-Version"),
            os_type: h("Ostype"),
        };
        let negotiated = match ping.api_version.as_deref() {
            Some(v) if version_lt(v, CLIENT_MAX_VERSION) => v.to_owned(),
            Some(_) => CLIENT_MAX_VERSION.to_owned(),
            None => "1.24".to_owned(),
        };
        if let Ok(mut g) = self.version.lock() {
            *g = Some(negotiated);
        }
        Ok(ping)
    }

    async fn raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: ReqBody,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>, ClientError> {
        let mut b = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("Host", "api.moby.localhost")
            .header(
                "User-Agent",
                concat!("Berth-Client/", env!("CARGO_PKG_VERSION"), " (linux)"),
            );
        for (k, v) in headers {
            b = b.header(*k, v);
        }
        let req = b
            .body(body)
            .map_err(|e| ClientError::Request(e.to_string()))?;
        match &self.endpoint {
            Endpoint::Unix(path) => {
                let stream = self.unix_stream(path).await?;
                exchange(stream, req).await
            }
            Endpoint::Tls { addr, config } => {
                let tcp = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|source| ClientError::Connect {
                        path: self.socket.clone(),
                        source,
                    })?;
                let host = addr
                    .rsplit_once(':')
                    .map_or(addr.as_str(), |(h, _)| h)
                    .trim_matches(['[', ']']);
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| ClientError::Tls(format!("invalid server name {host:?}: {e}")))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| ClientError::Tls(format!("handshake with {addr} failed: {e}")))?;
                exchange(tls, req).await
            }
        }
    }

    /// Sends `method path?query` (prefixed with the negotiated version) and turns a
    /// non-2xx answer into [`ClientError::Daemon`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: ReqBody,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>, ClientError> {
        let mut uri = match self.api_version() {
            Some(v) => format!("/v{v}{path}"),
            None => path.to_owned(),
        };
        if !query.is_empty() {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in query {
                ser.append_pair(k, v);
            }
            uri = format!("{uri}?{}", ser.finish());
        }
        let resp = self.raw(method, &uri, body, headers).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_owned());
        Err(ClientError::Daemon { status, message })
    }

    /// A GET decoded from JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let resp = self.send(Method::GET, path, query, empty(), &[]).await?;
        read_json(resp, path).await
    }
}

/// A hijacked connection (`101 UPGRADED`): the raw bidirectional stream.
pub type Hijacked = TokioIo<hyper::upgrade::Upgraded>;

impl Client {
    /// `POST path?query` with `Connection: Upgrade` / `Upgrade: tcp` (attach, exec
    /// start): the daemon's `101` turns the connection into the raw stream.
    pub async fn hijack(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Hijacked, ClientError> {
        let mut uri = match self.api_version() {
            Some(v) => format!("/v{v}{path}"),
            None => path.to_owned(),
        };
        if !query.is_empty() {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in query {
                ser.append_pair(k, v);
            }
            uri = format!("{uri}?{}", ser.finish());
        }
        let ct = if body.is_empty() {
            "text/plain"
        } else {
            "application/json"
        };
        let req = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header("Host", "api.moby.localhost")
            .header(
                "User-Agent",
                concat!("Berth-Client/", env!("CARGO_PKG_VERSION"), " (linux)"),
            )
            .header("Connection", "Upgrade")
            .header("Upgrade", "tcp")
            .header("Content-Type", ct)
            .body(full(body))
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let resp = match &self.endpoint {
            Endpoint::Unix(p) => {
                let stream = self.unix_stream(p).await?;
                exchange_upgrade(stream, req).await?
            }
            Endpoint::Tls { addr, config } => {
                let tcp = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|source| ClientError::Connect {
                        path: self.socket.clone(),
                        source,
                    })?;
                let host = addr
                    .rsplit_once(':')
                    .map_or(addr.as_str(), |(h, _)| h)
                    .trim_matches(['[', ']']);
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| ClientError::Tls(format!("invalid server name {host:?}: {e}")))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| ClientError::Tls(format!("handshake with {addr} failed: {e}")))?;
                exchange_upgrade(tls, req).await?
            }
        };
        let status = resp.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let bytes = resp.into_body().collect().await?.to_bytes();
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| {
                    format!("unable to upgrade to tcp, received {}", status.as_u16())
                });
            return Err(ClientError::Daemon {
                status: status.as_u16(),
                message,
            });
        }
        let up = hyper::upgrade::on(resp).await?;
        Ok(TokioIo::new(up))
    }
}

async fn exchange_upgrade<IO>(
    io: IO,
    req: Request<ReqBody>,
) -> Result<Response<Incoming>, ClientError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "connection closed with an error");
        }
    });
    Ok(sender.send_request(req).await?)
}

async fn exchange<IO>(io: IO, req: Request<ReqBody>) -> Result<Response<Incoming>, ClientError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection closed with an error");
        }
    });
    Ok(sender.send_request(req).await?)
}

/// The whole body decoded from JSON.
pub async fn read_json<T: DeserializeOwned>(
    resp: Response<Incoming>,
    what: &str,
) -> Result<T, ClientError> {
    let bytes = resp.into_body().collect().await?.to_bytes();
    serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
        what: what.to_owned(),
        source,
    })
}

/// The body as a stream of chunks.
pub fn body_chunks(resp: Response<Incoming>) -> impl Stream<Item = Result<Bytes, ClientError>> {
    BodyStream::new(resp.into_body()).filter_map(|f| async move {
        match f {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(ClientError::Http(e))),
        }
    })
}

/// Calls `f` for each newline-delimited JSON value of a streamed body.
pub async fn for_each_json_line<T: DeserializeOwned>(
    resp: Response<Incoming>,
    what: &str,
    mut f: impl FnMut(T) -> Result<(), ClientError>,
) -> Result<(), ClientError> {
    let mut buf = BytesMut::new();
    let mut chunks = Box::pin(body_chunks(resp));
    while let Some(c) = chunks.next().await {
        buf.extend_from_slice(&c?);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(i + 1);
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            f(
                serde_json::from_slice(line).map_err(|source| ClientError::Decode {
                    what: what.to_owned(),
                    source,
                })?,
            )?;
        }
    }
    if !buf.iter().all(u8::is_ascii_whitespace) {
        f(
            serde_json::from_slice(&buf).map_err(|source| ClientError::Decode {
                what: what.to_owned(),
                source,
            })?,
        )?;
    }
    Ok(())
}

/// `a < b` for `major.minor` versions.
pub fn version_lt(a: &str, b: &str) -> bool {
    let p = |s: &str| {
        let (x, y) = s.split_once('.').unwrap_or((s, "0"));
        (x.parse::<u32>().unwrap_or(0), y.parse::<u32>().unwrap_or(0))
    };
    p(a) < p(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_lt("1.9", "1.44"));
        assert!(version_lt("1.41", "1.44"));
        assert!(!version_lt("1.50", "1.44"));
    }
}
