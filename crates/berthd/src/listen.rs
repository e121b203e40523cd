//! Unix socket listeners, created atomically with mode 0660: bound under a temporary
//! name in the same directory, chmod'ed, then renamed over the final path, so no client
//! ever sees the socket with looser permissions.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::{Context as _, bail};

/// A socket bound and listening under its temporary name; [`Hidden::publish`] renames it
/// over the final path. The daemon publishes only once its pid file is written.
pub struct Hidden {
    listener: Option<std::os::unix::net::UnixListener>,
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl Hidden {
    /// Renames the socket into place and hands it to tokio.
    pub fn publish(mut self) -> anyhow::Result<tokio::net::UnixListener> {
        if let Err(e) = std::fs::rename(&self.tmp, &self.path) {
            return Err(e).with_context(|| {
                format!(
                    "cannot rename {} to {}",
                    self.tmp.display(),
                    self.path.display()
                )
            });
        }
        let listener = self.listener.take().expect("published once");
        listener.set_nonblocking(true)?;
        Ok(tokio::net::UnixListener::from_std(listener)?)
    }
}

impl Drop for Hidden {
    fn drop(&mut self) {
        if self.listener.is_some() {
            // never published: the temporary name goes with it
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Binds `path` (creating its directory) under a temporary name with mode 0660. Refuses
/// when a live daemon already answers there.
pub fn bind_unix(path: &Path) -> anyhow::Result<Hidden> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another daemon is already listening on {}", path.display());
        }
        tracing::info!(socket = %path.display(), "removing a stale socket");
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "berth.sock".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let std_listener = std::os::unix::net::UnixListener::bind(&tmp)
        .with_context(|| format!("cannot bind {}", tmp.display()))?;
    if let Err(e) = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o660)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot chmod 0660 {}", tmp.display()));
    }
    Ok(Hidden {
        listener: Some(std_listener),
        tmp,
        path: path.to_path_buf(),
    })
}

/// A TLS listener for axum: handshakes run concurrently in a task; finished ones are
/// handed to the server. A failed handshake (plain HTTP, bad client certificate) is
/// logged and the connection dropped.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn server_config(tls: &crate::args::Tls) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .with_context(|| format!("cannot read certificates from {}", tls.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("invalid certificate in {}", tls.cert.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", tls.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .with_context(|| format!("cannot read the private key in {}", tls.key.display()))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("cannot read {}", ca.display()))?
            {
                roots
                    .add(c.with_context(|| format!("invalid certificate in {}", ca.display()))?)
                    .with_context(|| format!("unusable CA certificate in {}", ca.display()))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder(std::sync::Arc::new(roots))
                    .build()
                    .with_context(|| {
                        format!("cannot build a client verifier from {}", ca.display())
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Binds `addr` and serves TLS with `tls`.
pub async fn bind_tls(addr: &str, tls: &crate::args::Tls) -> anyhow::Result<TlsListener> {
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_config(tls)?));
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind tcp://{addr}"))?;
    let local = tcp.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let task = tokio::spawn(async move {
        loop {
            let (stream, peer) = match tcp.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    acceptor.accept(stream),
                )
                .await
                {
                    Ok(Ok(s)) => {
                        let _ = tx.send((s, peer)).await;
                    }
                    Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    Ok(TlsListener {
        rx,
        addr: local,
        task,
    })
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task ended (it only does on abort): never resolve again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
