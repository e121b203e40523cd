//! Test support: a real `docker-registry` on loopback, a tiny scripted HTTP server, and
//! small real images (gzip tar layers, a config with matching diff ids).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::TcpListener as StdListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_registry::{Client, Credentials, Descriptor, RegistryConfig, media_types};
use berth_types::reference::Digest;
use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[allow(unused_imports)]
pub use berth_testkit::{Flavor, Registry};

/// A config with the given insecure hosts and mirrors, and certs.d in `certs`.
pub fn config(insecure: &[&str], mirrors: &[(&str, Vec<String>)], certs: &Path) -> RegistryConfig {
    RegistryConfig {
        insecure: insecure.iter().map(|s| s.to_string()).collect(),
        mirrors: mirrors
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        certs_dir: certs.to_owned(),
    }
}

pub fn anon_client(cfg: RegistryConfig) -> Client {
    Client::new(cfg, Credentials::anonymous())
        .unwrap()
        .with_retry(2, Duration::from_millis(20))
}

/// A small real image: gzip tar layers and a config whose diff ids match.
pub struct TestImage {
    pub config: Bytes,
    pub config_desc: Descriptor,
    pub layers: Vec<(Bytes, Descriptor)>,
    pub manifest: Bytes,
    pub manifest_desc: Descriptor,
}

pub fn layer(files: &[(&str, &[u8])]) -> (Bytes, Descriptor, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        tar.append_data(&mut h, name, *data).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let diff_id = Digest::sha256(&raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let gz = Bytes::from(gz.finish().unwrap());
    let desc = Descriptor::of(media_types::OCI_LAYER_GZIP, &gz);
    (gz, desc, diff_id)
}

impl TestImage {
    /// An OCI image for `arch` with `n` layers whose content depends on `seed`.
    pub fn new(seed: &str, arch: &str, n: usize) -> Self {
        Self::build(seed, arch, n, false)
    }

    /// The same with Docker schema 2 media types.
    pub fn docker(seed: &str, arch: &str, n: usize) -> Self {
        Self::build(seed, arch, n, true)
    }

    fn build(seed: &str, arch: &str, n: usize, docker: bool) -> Self {
        let (mt_manifest, mt_config, mt_layer) = if docker {
            (
                media_types::DOCKER_MANIFEST,
                media_types::DOCKER_CONFIG,
                media_types::DOCKER_LAYER_GZIP,
            )
        } else {
            (
                media_types::OCI_MANIFEST,
                media_types::OCI_CONFIG,
                media_types::OCI_LAYER_GZIP,
            )
        };
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for i in 0..n {
            let body = format!("{seed} layer {i}\n").repeat(100 + i * 50);
            let name = format!("file{i}.txt");
            let (b, mut d, diff) = layer(&[(name.as_str(), body.as_bytes())]);
            d.media_type = mt_layer.to_owned();
            layers.push((b, d));
            diff_ids.push(diff.to_string());
        }
        let config = serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Labels": {"seed": seed}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [],
        });
        let config = Bytes::from(serde_json::to_vec(&config).unwrap());
        let config_desc = Descriptor::of(mt_config, &config);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt_manifest,
            "config": config_desc,
            "layers": layers.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
        });
        let manifest = Bytes::from(serde_json::to_vec(&manifest).unwrap());
        let manifest_desc = Descriptor::of(mt_manifest, &manifest);
        Self {
            config,
            config_desc,
            layers,
            manifest,
            manifest_desc,
        }
    }
}

// ---- a tiny scripted HTTP/1.1 server -------------------------------------------------

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Send only this many body bytes (with the full Content-Length), then close.
    pub cut_at: Option<usize>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            cut_at: None,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// Serves `handler` on 127.0.0.1 until dropped; records every request.
pub struct TestServer {
    pub port: u16,
    pub log: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log2 = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let log = log2.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    loop {
                        let Ok(n) = sock.read(&mut tmp).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&tmp[..n]);
                        if buf[0] == 0x16 {
                            // A TLS ClientHello (berth tries https first on loopback): this
                            // server speaks plain HTTP only, so hang up.
                            return;
                        }
                        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let mut lines = head.split("\r\n");
                    let mut first = lines.next().unwrap_or_default().split(' ');
                    let method = first.next().unwrap_or_default().to_owned();
                    let path = first.next().unwrap_or_default().to_owned();
                    let headers = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect::<BTreeMap<_, _>>();
                    // Drain a small request body if any (token POSTs).
                    let want: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = buf[end + 4..].to_vec();
                    while body.len() < want {
                        let Ok(n) = sock.read(&mut tmp).await else {
                            return;
                        };
                        if n == 0 {
                            break;
                        }
                        body.extend_from_slice(&tmp[..n]);
                    }
                    let req = Request {
                        method,
                        path,
                        headers,
                        body,
                    };
                    log.lock().unwrap().push(req.clone());
                    let resp = handler(&req);
                    let mut out = format!(
                        "HTTP/1.1 {} X\r\nConnection: close\r\nContent-Length: {}\r\n",
                        resp.status,
                        resp.body.len()
                    );
                    for (k, v) in &resp.headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    let _ = sock.write_all(out.as_bytes()).await;
                    if req.method != "HEAD" {
                        let n = resp.cut_at.unwrap_or(resp.body.len()).min(resp.body.len());
                        let _ = sock.write_all(&resp.body[..n]).await;
                    }
                    let _ = sock.flush().await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Self { port, log, task }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
