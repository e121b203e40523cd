//! A real registry for tests: Debian's `docker-registry` (distribution 2.8) on a free
//! loopback port with filesystem storage in a temp dir, in several flavours.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::error::{Error, cmdline, run};
use crate::tempdir::TestDir;

/// How the registry is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    /// Plain HTTP, no auth.
    Plain,
    /// Plain HTTP with an htpasswd file (bcrypt) holding one user: 401 without credentials.
    BasicAuth {
        /// User name.
        user: String,
        /// Password.
        pass: String,
    },
    /// HTTPS with a server certificate for 127.0.0.1/localhost signed by a throwaway CA
    /// (see [`Registry::ca_pem`]).
    Tls,
    /// Plain HTTP with distribution's `auth: token` (a Bearer token server the test runs).
    Token {
        /// The token endpoint URL put in the `WWW-Authenticate` challenge.
        realm: String,
        /// The `service` the tokens are for.
        service: String,
        /// The token issuer (`iss`) the registry accepts.
        issuer: String,
        /// PEM bundle of certificates whose keys may sign tokens.
        root_cert_bundle: PathBuf,
    },
}

impl Flavor {
    /// `BasicAuth` with these credentials.
    pub fn basic(user: &str, pass: &str) -> Flavor {
        Flavor::BasicAuth {
            user: user.to_string(),
            pass: pass.to_string(),
        }
    }
}

/// A response to [`Registry::get`].
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header (lower-case name, value) pairs.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running `docker-registry`, killed (by pid) and removed with its storage on drop.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    addr: SocketAddr,
    flavor: Flavor,
    dir: TestDir,
}

impl Registry {
    /// Start a registry and wait until `/v2/` answers (200, or 401 for the auth flavours).
    pub fn start(flavor: Flavor) -> Result<Registry, Error> {
        let dir = TestDir::new("registry")
            .map_err(|e| Error::io("create temp dir in", std::env::temp_dir(), e))?;
        let storage = dir.join("storage");
        fs::create_dir_all(&storage).map_err(|e| Error::io("create directory", &storage, e))?;
        fs::write(
            dir.join("policy.json"),
            br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .map_err(|e| Error::io("write", dir.join("policy.json"), e))?;

        let mut extra = String::new();
        match &flavor {
            Flavor::Plain => {}
            Flavor::BasicAuth { user, pass } => {
                let out = run(Command::new("htpasswd").args(["-Bbn", user, pass]))?;
                let path = dir.join("htpasswd");
                fs::write(&path, &out.stdout).map_err(|e| Error::io("write", &path, e))?;
                extra.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    path.display()
                ));
            }
            Flavor::Tls => {
                make_certs(&dir.join("certs"))?;
            }
            Flavor::Token {
                realm,
                service,
                issuer,
                root_cert_bundle,
            } => {
                extra.push_str(&format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                    root_cert_bundle.display()
                ));
            }
        }

        let mut last_err = None;
        for _attempt in 0..5 {
            let port = free_port()?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let mut http = format!("http:\n  addr: {addr}\n  secret: berth-testkit-secret\n");
            if flavor == Flavor::Tls {
                http.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    dir.join("certs/server.crt").display(),
                    dir.join("certs/server.key").display()
                ));
            }
            let config = format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhealth:\n  storagedriver:\n    enabled: false\n{http}{extra}",
                storage.display()
            );
            let config_path = dir.join("config.yml");
            fs::write(&config_path, config).map_err(|e| Error::io("write", &config_path, e))?;
            let log_path = dir.join("registry.log");
            let log = File::create(&log_path).map_err(|e| Error::io("create", &log_path, e))?;
            let log2 = log
                .try_clone()
                .map_err(|e| Error::io("dup", &log_path, e))?;
            let mut cmd = Command::new("docker-registry");
            cmd.arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2);
            let child = cmd.spawn().map_err(|source| Error::Spawn {
                cmd: cmdline(&cmd),
                source,
            })?;
            let mut child = child;
            let ca = (flavor == Flavor::Tls).then(|| dir.join("certs/ca.crt"));
            match wait_ready(
                &mut child,
                addr,
                ca.as_deref(),
                &log_path,
                Duration::from_secs(15),
            ) {
                Ok(()) => {
                    return Ok(Registry {
                        child,
                        addr,
                        flavor,
                        dir,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let in_use = fs::read_to_string(&log_path)
                        .unwrap_or_default()
                        .contains("address already in use");
                    last_err = Some(e);
                    if !in_use {
                        break;
                    }
                }
            }
        }
        Err(last_err.expect("at least one attempt was made"))
    }

    /// The listening address (127.0.0.1:port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:port`, the registry host part of image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:port` or `https://...` for [`Flavor::Tls`].
    pub fn url(&self) -> String {
        let scheme = if self.flavor == Flavor::Tls {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The flavour it was started with.
    pub fn flavor(&self) -> &Flavor {
        &self.flavor
    }

    /// The CA certificate (PEM) that signed the server certificate ([`Flavor::Tls`] only).
    pub fn ca_pem(&self) -> Option<PathBuf> {
        (self.flavor == Flavor::Tls).then(|| self.dir.join("certs/ca.crt"))
    }

    /// A directory holding only `ca.crt`, laid out like `/etc/docker/certs.d/<host>/` (for
    /// `skopeo --cert-dir` or a certs.d lookup) ([`Flavor::Tls`] only).
    pub fn cert_dir(&self) -> Option<PathBuf> {
        (self.flavor == Flavor::Tls).then(|| self.dir.join("certs/client"))
    }

    /// The basic-auth credentials ([`Flavor::BasicAuth`] only).
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match &self.flavor {
            Flavor::BasicAuth { user, pass } => Some((user, pass)),
            _ => None,
        }
    }

    /// The registry's storage root (`docker/registry/v2/...` below it).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.join("storage")
    }

    /// The registry's log so far (access log included).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// The registry's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A real HTTP/1.1 GET of `path` (TLS verified against [`Registry::ca_pem`] for the TLS
    /// flavour), with optional basic credentials.
    pub fn get(&self, path: &str, basic: Option<(&str, &str)>) -> Result<Response, Error> {
        self.get_with_headers(path, basic, &[])
    }

    /// [`Registry::get`] with extra request headers (e.g. `Accept` for OCI manifests, which
    /// distribution 2.8 only serves when asked for).
    pub fn get_with_headers(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        headers: &[(&str, &str)],
    ) -> Result<Response, Error> {
        let ca = self.ca_pem();
        http_request(self.addr, path, basic, headers, ca.as_deref())
    }

    /// Push a docker-archive to `<host>/<repo_tag>` with skopeo (TLS verified with the CA,
    /// credentials of the basic-auth flavour); returns the pushed reference.
    pub fn push_docker_archive(&self, archive: &Path, repo_tag: &str) -> Result<String, Error> {
        self.push(&format!("docker-archive:{}", archive.display()), repo_tag)
    }

    /// Push the image tagged `tag` of an OCI layout to `<host>/<repo_tag>`.
    pub fn push_oci_layout(
        &self,
        layout: &Path,
        tag: &str,
        repo_tag: &str,
    ) -> Result<String, Error> {
        self.push(&format!("oci:{}:{tag}", layout.display()), repo_tag)
    }

    /// Push the cached busybox test image as `<host>/<repo_tag>`.
    pub fn push_busybox(&self, repo_tag: &str) -> Result<String, Error> {
        self.push_docker_archive(&crate::images::busybox_docker_archive()?, repo_tag)
    }

    /// `skopeo copy SRC docker://<host>/<repo_tag>` with this registry's TLS and credentials.
    pub fn push(&self, src: &str, repo_tag: &str) -> Result<String, Error> {
        let dest = format!("{}/{repo_tag}", self.host());
        let mut cmd = Command::new("skopeo");
        cmd.arg("--policy")
            .arg(self.dir.join("policy.json"))
            .args(["copy", "--quiet"]);
        cmd.args(self.skopeo_dest_flags());
        cmd.arg(src).arg(format!("docker://{dest}"));
        run(&mut cmd)?;
        Ok(dest)
    }

    /// The `--dest-*` flags skopeo needs for this registry.
    pub fn skopeo_dest_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        match &self.flavor {
            Flavor::Tls => {
                flags.push(format!(
                    "--dest-cert-dir={}",
                    self.dir.join("certs/client").display()
                ));
            }
            Flavor::BasicAuth { user, pass } => {
                flags.push("--dest-tls-verify=false".to_string());
                flags.push(format!("--dest-creds={user}:{pass}"));
            }
            Flavor::Plain | Flavor::Token { .. } => {
                flags.push("--dest-tls-verify=false".to_string())
            }
        }
        flags
    }

    /// The `--src-*` flags skopeo needs to read from this registry.
    pub fn skopeo_src_flags(&self) -> Vec<String> {
        self.skopeo_dest_flags()
            .into_iter()
            .map(|f| f.replacen("--dest-", "--src-", 1))
            .collect()
    }

    /// A skopeo `--policy` file accepting anything (for tests that run skopeo themselves).
    pub fn skopeo_policy(&self) -> PathBuf {
        self.dir.join("policy.json")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_ready(
    child: &mut Child,
    addr: SocketAddr,
    ca: Option<&Path>,
    log_path: &Path,
    timeout: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let mut reason = String::from("not started");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            reason = format!("docker-registry exited with {status}");
            break;
        }
        match http_get(addr, "/v2/", None, ca) {
            Ok(r) if r.status == 200 || r.status == 401 => return Ok(()),
            Ok(r) => reason = format!("/v2/ answered {}", r.status),
            Err(e) => reason = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = fs::read_to_string(log_path).unwrap_or_default();
    Err(Error::RegistryNotReady {
        addr: addr.to_string(),
        reason,
        log,
    })
}

fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("bind", "127.0.0.1:0", e))?;
    let port = l
        .local_addr()
        .map_err(|e| Error::io("query", "127.0.0.1:0", e))?
        .port();
    Ok(port)
}

/// A throwaway CA and a server certificate for 127.0.0.1/localhost, with the openssl CLI.
fn make_certs(dir: &Path) -> Result<(), Error> {
    let client = dir.join("client");
    fs::create_dir_all(&client).map_err(|e| Error::io("create directory", &client, e))?;
    let p = |f: &str| dir.join(f);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt"))
        .args(["-days", "2", "-subj", "/CN=berth-testkit throwaway CA"])
        .args([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]))?;
    run(Command::new("openssl")
        .arg("req")
        .args(ec)
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr"))
        .args(["-subj", "/CN=localhost"]))?;
    let ext = p("server.ext");
    fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| Error::io("write", &ext, e))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-in"])
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .args(["-CAcreateserial", "-days", "2", "-extfile"])
        .arg(&ext)
        .arg("-out")
        .arg(p("server.crt")))?;
    fs::copy(p("ca.crt"), client.join("ca.crt"))
        .map_err(|e| Error::io("copy", client.join("ca.crt"), e))?;
    Ok(())
}

/// A minimal HTTP/1.1 GET with `Connection: close`, over TLS (verified against `ca_pem`
/// only) when `ca_pem` is given.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    basic: Option<(&str, &str)>,
    ca_pem: Option<&Path>,
) -> Result<Response, Error> {
    http_request(addr, path, basic, &[], ca_pem)
}

/// [`http_get`] with extra request headers.
pub fn http_request(
    addr: SocketAddr,
    path: &str,
    basic: Option<(&str, &str)>,
    headers: &[(&str, &str)],
    ca_pem: Option<&Path>,
) -> Result<Response, Error> {
    let scheme = if ca_pem.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}{path}");
    let fail = |reason: String| Error::Http {
        url: url.clone(),
        reason,
    };
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: berth-testkit\r\nConnection: close\r\n"
    );
    if let Some((u, p)) = basic {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| fail(e.to_string()))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| fail(e.to_string()))?;
    let mut raw = Vec::new();
    match ca_pem {
        None => {
            let mut tcp = tcp;
            tcp.write_all(req.as_bytes())
                .map_err(|e| fail(e.to_string()))?;
            tcp.read_to_end(&mut raw).map_err(|e| fail(e.to_string()))?;
        }
        Some(ca) => {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(ca)
                .map_err(|e| fail(format!("cannot read CA {}: {e}", ca.display())))?;
            for c in certs {
                let c = c.map_err(|e| fail(format!("bad CA PEM {}: {e}", ca.display())))?;
                roots
                    .add(c)
                    .map_err(|e| fail(format!("bad CA certificate {}: {e}", ca.display())))?;
            }
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let conn = rustls::ClientConnection::new(Arc::new(config), name)
                .map_err(|e| fail(e.to_string()))?;
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            tls.write_all(req.as_bytes())
                .map_err(|e| fail(e.to_string()))?;
            match tls.read_to_end(&mut raw) {
                Ok(_) => {}
                // A peer closing without close_notify after a complete response is fine.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
                Err(e) => return Err(fail(e.to_string())),
            }
        }
    }
    parse_response(&raw).ok_or_else(|| {
        fail(format!(
            "malformed response: {:?}",
            String::from_utf8_lossy(&raw)
        ))
    })
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_str = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}
