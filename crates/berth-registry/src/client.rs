use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use berth_types::reference::{Digest, Reference};
use bytes::Bytes;
use reqwest::header::{self, HeaderValue};
use reqwest::{StatusCode, Url};
use sha2::Digest as _;

use crate::auth::{AuthState, Challenge, TokenResponse};
use crate::config::RegistryConfig;
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::manifest::{self, Descriptor, ManifestDoc, Platform, media_types};

/// Largest manifest we accept (distribution's own limit is 4 MiB).
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// One place to talk to: a mirror or the origin registry.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `scheme://host[:port]`, no trailing slash.
    pub base: String,
    /// `host[:port]`: the key for credentials, certs.d and the token cache.
    pub host: String,
    /// The scheme is not settled yet: the host is insecure, so HTTPS (without certificate
    /// verification) is tried first and plain HTTP after it ([`Client::settle`]).
    pub probe: bool,
}

impl Endpoint {
    /// A mirror given as `http(s)://host[:port]` or bare `host[:port]` (HTTP only when the
    /// host is insecure).
    pub(crate) fn mirror(s: &str, cfg: &RegistryConfig) -> Result<Self> {
        let bad = |m: &str| Error::Endpoint {
            endpoint: s.to_owned(),
            message: m.to_owned(),
        };
        let probe = !s.contains("://") && cfg.is_insecure(s.trim_end_matches('/'));
        let with_scheme = if s.contains("://") {
            s.to_owned()
        } else {
            format!("https://{s}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(bad("only http:// and https:// mirrors are supported"));
        }
        let host = url.host_str().ok_or_else(|| bad("no host"))?;
        let host = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let base = with_scheme.trim_end_matches('/').to_owned();
        Ok(Self { base, host, probe })
    }

    /// The registry itself for a reference domain.
    pub(crate) fn origin(domain: &str, cfg: &RegistryConfig) -> Self {
        let host = if domain == berth_types::reference::DEFAULT_DOMAIN {
            crate::DOCKER_HUB_REGISTRY
        } else {
            domain
        };
        Self {
            base: format!("https://{host}"),
            host: host.to_owned(),
            probe: cfg.is_insecure(domain) || cfg.is_insecure(host),
        }
    }
}

/// What a reference resolved to for one platform.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Digest of the single-platform manifest (verified).
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub manifest_bytes: Bytes,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// Digest of the index / manifest list the manifest was picked from, if any.
    pub index_digest: Option<Digest>,
    /// The endpoint (`scheme://host[:port]`) that served the manifest.
    pub endpoint: String,
}

pub(crate) struct Inner {
    pub config: RegistryConfig,
    pub credentials: RwLock<Credentials>,
    http: Mutex<HashMap<String, reqwest::Client>>,
    auth: Mutex<AuthState>,
    /// Insecure host → the scheme (`https`/`http`) it answered on.
    schemes: Mutex<HashMap<String, &'static str>>,
}

/// The registry client. Cheap to clone; clones share connections and tokens.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    pub(crate) retry_attempts: u32,
    pub(crate) retry_delay: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(crate) fn pull_scope(path: &str) -> String {
    format!("repository:{path}:pull")
}

pub(crate) fn push_scope(path: &str) -> String {
    format!("repository:{path}:pull,push")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks leaves only caches behind; keep using them.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn compute_digest(algorithm: &str, data: &[u8]) -> Option<String> {
    Some(match algorithm {
        "sha256" => format!("sha256:{}", hex::encode(sha2::Sha256::digest(data))),
        "sha384" => format!("sha384:{}", hex::encode(sha2::Sha384::digest(data))),
        "sha512" => format!("sha512:{}", hex::encode(sha2::Sha512::digest(data))),
        _ => return None,
    })
}

/// Whether a request failed because nothing listens (ECONNREFUSED somewhere in its causes).
fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cur = c.source();
    }
    false
}

async fn body_text(resp: reqwest::Response) -> String {
    let mut t = resp.text().await.unwrap_or_default();
    t.truncate(512);
    t.trim().to_owned()
}

impl Client {
    /// A client for `config` using `credentials` (which `login`/`logout` update and save).
    pub fn new(config: RegistryConfig, credentials: Credentials) -> Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                credentials: RwLock::new(credentials),
                http: Mutex::new(HashMap::new()),
                auth: Mutex::new(AuthState::default()),
                schemes: Mutex::new(HashMap::new()),
            }),
            retry_attempts: 3,
            retry_delay: Duration::from_millis(200),
        })
    }

    /// Sets how often an idempotent request is tried on connect errors and 5xx answers, and
    /// the first backoff delay (doubled each time). Defaults: 3 attempts, 200 ms.
    pub fn with_retry(mut self, attempts: u32, first_delay: Duration) -> Self {
        self.retry_attempts = attempts.max(1);
        self.retry_delay = first_delay;
        self
    }

    /// The configuration this client uses.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// The HTTP client for `host`, with its certs.d CA roots and client certificate.
    pub(crate) fn http_for(&self, host: &str) -> Result<reqwest::Client> {
        if let Some(c) = lock(&self.inner.http).get(host) {
            return Ok(c.clone());
        }
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")));
        if self.inner.config.is_insecure(host) {
            // Docker skips certificate verification for insecure registries over HTTPS.
            b = b.danger_accept_invalid_certs(true);
        }
        let dir = self.inner.config.certs_dir.join(host);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut files: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            let tls_err = |path: &std::path::Path, message: String| Error::Tls {
                host: host.to_owned(),
                path: path.to_owned(),
                message,
            };
            let read = |path: &std::path::Path| {
                std::fs::read(path).map_err(|source| Error::Io {
                    path: path.to_owned(),
                    source,
                })
            };
            let mut roots = Vec::new();
            for f in &files {
                match f.extension().and_then(|e| e.to_str()) {
                    Some("crt") => {
                        let pem = read(f)?;
                        let certs = reqwest::Certificate::from_pem_bundle(&pem)
                            .map_err(|e| tls_err(f, e.to_string()))?;
                        if certs.is_empty() {
                            return Err(tls_err(f, "no PEM certificate in file".into()));
                        }
                        roots.extend(certs);
                    }
                    Some("cert") => {
                        // Docker's layout: client.cert pairs with client.key.
                        let key = f.with_extension("key");
                        let mut pem = read(f)?;
                        pem.push(b'\n');
                        pem.extend(read(&key).map_err(|_| {
                            tls_err(f, format!("missing key file {}", key.display()))
                        })?);
                        let id = reqwest::Identity::from_pem(&pem)
                            .map_err(|e| tls_err(f, e.to_string()))?;
                        b = b.identity(id);
                    }
                    _ => {}
                }
            }
            if !roots.is_empty() {
                b = b.tls_certs_merge(roots);
            }
        }
        let client = b.build().map_err(|e| Error::Tls {
            host: host.to_owned(),
            path: dir.clone(),
            message: e.to_string(),
        })?;
        lock(&self.inner.http).insert(host.to_owned(), client.clone());
        Ok(client)
    }

    fn basic_for(&self, host: &str) -> Option<(String, String)> {
        let creds = self
            .inner
            .credentials
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        creds
            .get(host)
            .filter(|e| !e.username.is_empty())
            .map(|e| (e.username.clone(), e.password.clone()))
    }

    /// The Authorization header for a request to `ep` needing `scope`, fetching a token
    /// when the host asked for Bearer and none is cached (or `force`).
    async fn authorization(
        &self,
        ep: &Endpoint,
        scope: &str,
        force: bool,
    ) -> Result<Option<String>> {
        let challenge = lock(&self.inner.auth).challenges.get(&ep.host).cloned();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.basic_for(&ep.host).map(|(u, p)| {
                use base64::Engine as _;
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            })),
            Some(Challenge::Bearer { realm, service, .. }) => {
                if !force && let Some(t) = lock(&self.inner.auth).token(&ep.host, scope) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = self
                    .fetch_token(&ep.host, &realm, service.as_deref(), scope, None)
                    .await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Asks the token server `realm` for a token for `scope` (space-separated scopes),
    /// with the host's credentials (or `explicit` ones, for `login`) when there are any.
    pub(crate) async fn fetch_token(
        &self,
        host: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        explicit: Option<(&str, &str)>,
    ) -> Result<String> {
        let terr = |message: String| Error::Token {
            realm: realm.to_owned(),
            message,
        };
        let mut url = Url::parse(realm).map_err(|e| terr(format!("bad realm: {e}")))?;
        let realm_host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return Err(terr("realm has no host".into())),
        };
        let http = self.http_for(&realm_host)?;
        let creds = match explicit {
            Some((u, p)) => Some((u.to_owned(), p.to_owned(), None)),
            None => {
                let c = self
                    .inner
                    .credentials
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                c.get(host).map(|e| {
                    (
                        e.username.clone(),
                        e.password.clone(),
                        e.identity_token.clone(),
                    )
                })
            }
        };
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        let resp = if let Some((_, _, Some(refresh))) = &creds {
            // OAuth2 refresh-token grant, as the docker CLI does with an identity token.
            let mut form: Vec<(&str, &str)> = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", "berth"),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            let joined = scopes.join(" ");
            if !joined.is_empty() {
                form.push(("scope", &joined));
            }
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            http.post(url.clone())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
        } else {
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in &scopes {
                    q.append_pair("scope", s);
                }
            }
            let mut req = http.get(url.clone());
            if let Some((u, p, _)) = &creds {
                req = req.basic_auth(u, Some(p));
            }
            req.send().await
        }
        .map_err(|e| terr(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(terr(format!(
                "{} {}",
                status.as_u16(),
                body_text(resp).await
            )));
        }
        let tr: TokenResponse = resp
            .json()
            .await
            .map_err(|e| terr(format!("bad token response: {e}")))?;
        let token = tr
            .into_token()
            .ok_or_else(|| terr("response carries no token".into()))?;
        let value = token.value.clone();
        lock(&self.inner.auth)
            .tokens
            .insert((host.to_owned(), scope.to_owned()), token);
        Ok(value)
    }

    /// Sends a request built by `build` to `ep`, authenticating as the host demands
    /// (anonymous first; on 401 the challenge decides) and retrying idempotent requests on
    /// connect errors and 5xx with exponential backoff.
    pub(crate) async fn send(
        &self,
        ep: &Endpoint,
        scope: &str,
        url: &Url,
        idempotent: bool,
        build: &(dyn Fn(&reqwest::Client, &Url) -> reqwest::RequestBuilder + Send + Sync),
    ) -> Result<reqwest::Response> {
        let http = self.http_for(&ep.host)?;
        let mut attempt = 0u32;
        let mut reauthed = false;
        let mut force = false;
        loop {
            attempt += 1;
            let mut req = build(&http, url);
            if let Some(h) = self.authorization(ep, scope, force).await? {
                req = req.header(header::AUTHORIZATION, h);
            }
            force = false;
            let may_retry = idempotent && attempt < self.retry_attempts;
            let resp = match req.send().await {
                Ok(r) => r,
                // a request error on the first try is most often a kept-alive connection
                // the registry closed meanwhile (clients are kept across pulls)
                Err(e)
                    if may_retry
                        && (e.is_connect()
                            || e.is_timeout()
                            || (e.is_request() && attempt == 1)) =>
                {
                    tracing::debug!(url = %url, error = %e, attempt, "retrying after connect error");
                    tokio::time::sleep(self.retry_delay * 2u32.pow(attempt - 1)).await;
                    continue;
                }
                Err(source) => {
                    return Err(Error::Http {
                        url: url.to_string(),
                        source,
                    });
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED {
                let header = resp
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned);
                if !reauthed && let Some(header) = header {
                    let challenge =
                        Challenge::parse(&header).ok_or_else(|| Error::BadChallenge {
                            url: url.to_string(),
                            header: header.clone(),
                        })?;
                    if challenge == Challenge::Basic && self.basic_for(&ep.host).is_none() {
                        return Err(Error::Unauthorized {
                            url: url.to_string(),
                            message: format!(
                                "registry {} wants basic auth and no credentials are configured for it",
                                ep.host
                            ),
                        });
                    }
                    lock(&self.inner.auth)
                        .challenges
                        .insert(ep.host.clone(), challenge);
                    // One more try with fresh authorization; it does not count as a retry.
                    reauthed = true;
                    force = true;
                    attempt -= 1;
                    continue;
                }
                let msg = body_text(resp).await;
                return Err(Error::Unauthorized {
                    url: url.to_string(),
                    message: msg,
                });
            }
            if status.is_server_error() && may_retry {
                tracing::debug!(url = %url, %status, attempt, "retrying after server error");
                tokio::time::sleep(self.retry_delay * 2u32.pow(attempt - 1)).await;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Settles the scheme of an insecure endpoint the way Docker does: HTTPS (without
    /// certificate verification) first, plain HTTP when HTTPS gets no HTTP answer at all
    /// (refused, or the server does not speak TLS). The answer is remembered per host
    /// unless the connection was refused.
    pub(crate) async fn settle(&self, mut ep: Endpoint) -> Result<Endpoint> {
        if !ep.probe {
            return Ok(ep);
        }
        let cached = lock(&self.inner.schemes).get(&ep.host).copied();
        let scheme = match cached {
            Some(s) => s,
            None => {
                let http = self.http_for(&ep.host)?;
                let url = format!("https://{}/v2/", ep.host);
                match http.get(&url).send().await {
                    Ok(_) => {
                        lock(&self.inner.schemes).insert(ep.host.clone(), "https");
                        "https"
                    }
                    Err(e) => {
                        tracing::debug!(%url, error = %e, "insecure registry: https failed, using http");
                        // Nothing listening yet says nothing about TLS: decide again next time.
                        if !refused(&e) {
                            lock(&self.inner.schemes).insert(ep.host.clone(), "http");
                        }
                        "http"
                    }
                }
            }
        };
        ep.base = format!("{scheme}://{}", ep.host);
        ep.probe = false;
        Ok(ep)
    }

    /// The origin endpoint for `domain`, its scheme settled.
    pub(crate) async fn origin(&self, domain: &str) -> Result<Endpoint> {
        self.settle(Endpoint::origin(domain, &self.inner.config))
            .await
    }

    /// Endpoints for a pull from `domain`: its mirrors in order, then the origin.
    pub(crate) fn pull_endpoints(&self, domain: &str) -> Result<Vec<Endpoint>> {
        let cfg = &self.inner.config;
        let mut eps = Vec::new();
        for m in cfg.mirrors_for(domain) {
            eps.push(Endpoint::mirror(m, cfg)?);
        }
        eps.push(Endpoint::origin(domain, cfg));
        Ok(eps)
    }

    /// Runs `f` on each pull endpoint until one succeeds; errors that another endpoint
    /// cannot fix (a bad digest, a bad manifest) stop at once.
    pub(crate) async fn on_pull_endpoints<T, F, Fut>(&self, domain: &str, f: F) -> Result<T>
    where
        F: Fn(Endpoint) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut errors = Vec::new();
        let mut last = crate::error::ErrorKind::Unavailable;
        let eps = self.pull_endpoints(domain)?;
        let n = eps.len();
        for ep in eps {
            let base = ep.base.clone();
            let result = match self.settle(ep).await {
                Ok(ep) => f(ep).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if n == 1 || !e.try_next_endpoint() => return Err(e),
                Err(e) => {
                    tracing::debug!(endpoint = %base, error = %e, "endpoint failed, trying the next");
                    last = e.kind();
                    errors.push(format!("{base}: {e}"));
                }
            }
        }
        Err(Error::AllEndpointsFailed {
            host: domain.to_owned(),
            errors,
            last,
        })
    }

    pub(crate) fn url(ep: &Endpoint, rest: &str) -> Result<Url> {
        let s = format!("{}/v2/{rest}", ep.base);
        Url::parse(&s).map_err(|e| Error::Endpoint {
            endpoint: s,
            message: e.to_string(),
        })
    }

    /// Checks that `host` speaks the distribution API: `GET /v2/`. Returns the auth
    /// challenge it answered with, if any.
    pub async fn ping(&self, host: &str) -> Result<Option<Challenge>> {
        let ep = self.origin(host).await?;
        let url = Self::url(&ep, "")?;
        let http = self.http_for(&ep.host)?;
        let resp = http
            .get(url.clone())
            .send()
            .await
            .map_err(|source| Error::Http {
                url: url.to_string(),
                source,
            })?;
        match resp.status() {
            s if s.is_success() => Ok(None),
            StatusCode::UNAUTHORIZED => {
                let h = resp
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                Challenge::parse(&h).map(Some).ok_or(Error::BadChallenge {
                    url: url.to_string(),
                    header: h,
                })
            }
            s => Err(Error::Status {
                method: "GET".into(),
                url: url.to_string(),
                status: s.as_u16(),
                body: body_text(resp).await,
            }),
        }
    }

    /// Verifies `username`/`password` against `host`'s `/v2/` (Basic, or a Bearer token
    /// fetched with them), then stores them in the credentials file.
    pub async fn login(&self, host: &str, username: &str, password: &str) -> Result<()> {
        self.verify_login(host, username, password).await?;
        let ep = Endpoint::origin(host, &self.inner.config);
        {
            let mut auth = lock(&self.inner.auth);
            auth.tokens.retain(|(h, _), _| h != &ep.host);
        }
        let mut creds = self
            .inner
            .credentials
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        creds.set(host, username, password);
        creds.save()
    }

    /// Verifies `username`/`password` against `host`'s `/v2/` (Basic, or a Bearer token
    /// fetched with them) without storing them anywhere (the API's `POST /auth`). A registry
    /// that asks for no authentication accepts any credentials, as with Docker.
    pub async fn verify_login(&self, host: &str, username: &str, password: &str) -> Result<()> {
        let ep = self.origin(host).await?;
        let url = Self::url(&ep, "")?;
        let http = self.http_for(&ep.host)?;
        let get = |auth: Option<String>| {
            let mut r = http.get(url.clone());
            if let Some(a) = auth {
                r = r.header(header::AUTHORIZATION, a);
            }
            r.send()
        };
        let herr = |source| Error::Http {
            url: url.to_string(),
            source,
        };
        let resp = get(None).await.map_err(herr)?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            let h = resp
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let challenge = Challenge::parse(&h).ok_or(Error::BadChallenge {
                url: url.to_string(),
                header: h,
            })?;
            let auth = match &challenge {
                Challenge::Basic => {
                    use base64::Engine as _;
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{username}:{password}"))
                    )
                }
                Challenge::Bearer { realm, service, .. } => {
                    let t = self
                        .fetch_token(
                            &ep.host,
                            realm,
                            service.as_deref(),
                            "",
                            Some((username, password)),
                        )
                        .await
                        .map_err(|e| Error::Unauthorized {
                            url: url.to_string(),
                            message: format!("login to {host} as {username:?} refused: {e}"),
                        })?;
                    format!("Bearer {t}")
                }
            };
            let resp = get(Some(auth)).await.map_err(herr)?;
            if !resp.status().is_success() {
                return Err(Error::Unauthorized {
                    url: url.to_string(),
                    message: format!(
                        "login to {host} as {username:?} refused: {} {}",
                        resp.status().as_u16(),
                        body_text(resp).await
                    ),
                });
            }
            lock(&self.inner.auth)
                .challenges
                .insert(ep.host.clone(), challenge);
        } else if !resp.status().is_success() {
            return Err(Error::Status {
                method: "GET".into(),
                url: url.to_string(),
                status: resp.status().as_u16(),
                body: body_text(resp).await,
            });
        }
        Ok(())
    }

    /// Forgets `host`'s credentials in berth's file; false when there were none.
    pub fn logout(&self, host: &str) -> Result<bool> {
        let ep = Endpoint::origin(host, &self.inner.config);
        lock(&self.inner.auth)
            .tokens
            .retain(|(h, _), _| h != &ep.host);
        let mut creds = self
            .inner
            .credentials
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let had = creds.remove(host);
        if had {
            creds.save()?;
        }
        Ok(had)
    }

    /// Fetches a manifest by tag or digest, verifying it against `expected` (a pull by
    /// digest) and against the registry's `Docker-Content-Digest`.
    async fn fetch_manifest(
        &self,
        ep: &Endpoint,
        reference: &Reference,
        path: &str,
        tag_or_digest: &str,
        expected: Option<&Digest>,
    ) -> Result<(Bytes, String, Digest)> {
        let url = Self::url(ep, &format!("{path}/manifests/{tag_or_digest}"))?;
        let scope = pull_scope(path);
        let resp = self
            .send(ep, &scope, &url, true, &|c, u| {
                c.get(u.clone())
                    .header(header::ACCEPT, media_types::MANIFEST_ACCEPT)
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(Error::NotFound {
                what: format!(
                    "manifest {tag_or_digest} of {} at {}",
                    reference.name(),
                    ep.base
                ),
            });
        }
        if !status.is_success() {
            return Err(Error::Status {
                method: "GET".into(),
                url: url.to_string(),
                status: status.as_u16(),
                body: body_text(resp).await,
            });
        }
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        if resp
            .content_length()
            .is_some_and(|l| l > MAX_MANIFEST_BYTES as u64)
        {
            return Err(Error::InvalidManifest {
                reference: reference.to_string(),
                message: format!("manifest larger than {MAX_MANIFEST_BYTES} bytes"),
            });
        }
        let bytes = resp.bytes().await.map_err(|source| Error::Http {
            url: url.to_string(),
            source,
        })?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(Error::InvalidManifest {
                reference: reference.to_string(),
                message: format!("manifest larger than {MAX_MANIFEST_BYTES} bytes"),
            });
        }
        let what = format!("manifest {tag_or_digest} of {}", reference.name());
        for want in expected
            .map(Digest::to_string)
            .into_iter()
            .chain(header_digest)
        {
            let alg = want.split(':').next().unwrap_or_default();
            if let Some(actual) = compute_digest(alg, &bytes)
                && actual != want
            {
                return Err(Error::DigestMismatch {
                    what,
                    expected: want,
                    actual,
                });
            }
        }
        let digest = Digest::sha256(&bytes);
        let doc: ManifestDoc =
            serde_json::from_slice(&bytes).map_err(|e| Error::InvalidManifest {
                reference: reference.to_string(),
                message: e.to_string(),
            })?;
        let mt = manifest::media_type_of(ct.as_deref(), &doc).ok_or_else(|| {
            Error::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type: ct.clone().unwrap_or_default(),
            }
        })?;
        if doc.schema_version == Some(1) {
            return Err(Error::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type: "application/vnd.docker.distribution.manifest.v1+json (schema 1)"
                    .into(),
            });
        }
        Ok((bytes, mt, digest))
    }

    async fn resolve_at(
        &self,
        ep: Endpoint,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Resolved> {
        let path = reference.path();
        let (mut bytes, mut mt, mut digest) = self
            .fetch_manifest(
                &ep,
                reference,
                path,
                &reference.manifest_reference(),
                reference.digest(),
            )
            .await?;
        let mut index_digest = None;
        if media_types::is_index(&mt) {
            let doc: ManifestDoc =
                serde_json::from_slice(&bytes).map_err(|e| Error::InvalidManifest {
                    reference: reference.to_string(),
                    message: e.to_string(),
                })?;
            let entries = doc.manifests.unwrap_or_default();
            let pick =
                manifest::select_platform(&reference.to_string(), &entries, platform)?.clone();
            index_digest = Some(digest);
            (bytes, mt, digest) = self
                .fetch_manifest(
                    &ep,
                    reference,
                    path,
                    pick.digest.as_str(),
                    Some(&pick.digest),
                )
                .await?;
        }
        if !media_types::is_manifest(&mt) {
            return Err(Error::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type: mt,
            });
        }
        let doc: ManifestDoc =
            serde_json::from_slice(&bytes).map_err(|e| Error::InvalidManifest {
                reference: reference.to_string(),
                message: e.to_string(),
            })?;
        let config = doc.config.ok_or_else(|| Error::InvalidManifest {
            reference: reference.to_string(),
            message: "manifest has no config".into(),
        })?;
        Ok(Resolved {
            manifest_digest: digest,
            manifest_media_type: mt,
            manifest_bytes: bytes,
            config,
            layers: doc.layers.unwrap_or_default(),
            index_digest,
            endpoint: ep.base,
        })
    }

    /// Resolves `reference` to one platform's manifest: mirrors first, then the origin;
    /// manifest lists and OCI indexes are resolved to `platform`; every manifest fetched
    /// is verified (against the reference's digest when pulled by digest).
    pub async fn resolve(&self, reference: &Reference, platform: &Platform) -> Result<Resolved> {
        self.on_pull_endpoints(reference.domain(), |ep| {
            self.resolve_at(ep, reference, platform)
        })
        .await
    }

    /// Fetches the raw manifest (or index) `reference` names, verified as in `resolve`:
    /// `(bytes, media type, digest)`.
    pub async fn get_manifest(&self, reference: &Reference) -> Result<(Bytes, String, Digest)> {
        self.on_pull_endpoints(reference.domain(), |ep| async move {
            self.fetch_manifest(
                &ep,
                reference,
                reference.path(),
                &reference.manifest_reference(),
                reference.digest(),
            )
            .await
        })
        .await
    }

    /// Uploads a manifest under the reference's tag (or digest); returns its digest.
    pub async fn put_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let ep = self.origin(reference.domain()).await?;
        let digest = Digest::sha256(&bytes);
        let url = Self::url(
            &ep,
            &format!(
                "{}/manifests/{}",
                reference.path(),
                reference.manifest_reference()
            ),
        )?;
        let mt = HeaderValue::from_str(media_type).map_err(|_| Error::UnsupportedMediaType {
            reference: reference.to_string(),
            media_type: media_type.to_owned(),
        })?;
        let resp = self
            .send(&ep, &push_scope(reference.path()), &url, true, &|c, u| {
                c.put(u.clone())
                    .header(header::CONTENT_TYPE, mt.clone())
                    .body(bytes.clone())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(Error::Status {
                method: "PUT".into(),
                url: url.to_string(),
                status: resp.status().as_u16(),
                body: body_text(resp).await,
            });
        }
        if let Some(h) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|h| h.to_str().ok())
            && h != digest.as_str()
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest pushed to {reference}"),
                expected: digest.to_string(),
                actual: h.to_owned(),
            });
        }
        Ok(digest)
    }

    /// Follows `Link: <…>; rel="next"` pages of a JSON list endpoint.
    async fn paged(
        &self,
        ep: &Endpoint,
        scope: &str,
        first: Url,
        field: &str,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            let resp = self
                .send(ep, scope, &url, true, &|c, u| c.get(u.clone()))
                .await?;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND {
                return Err(Error::NotFound {
                    what: format!("{url}"),
                });
            }
            if !status.is_success() {
                return Err(Error::Status {
                    method: "GET".into(),
                    url: url.to_string(),
                    status: status.as_u16(),
                    body: body_text(resp).await,
                });
            }
            let link = resp
                .headers()
                .get(header::LINK)
                .and_then(|h| h.to_str().ok())
                .and_then(|l| {
                    let start = l.find('<')? + 1;
                    let end = l.find('>')?;
                    l.contains("rel=\"next\"").then(|| l[start..end].to_owned())
                });
            let v: serde_json::Value = resp.json().await.map_err(|source| Error::Http {
                url: url.to_string(),
                source,
            })?;
            if let Some(items) = v.get(field).and_then(|x| x.as_array()) {
                out.extend(items.iter().filter_map(|s| s.as_str().map(str::to_owned)));
            }
            if let Some(l) = link {
                next = Some(url.join(&l).map_err(|e| Error::Endpoint {
                    endpoint: l.clone(),
                    message: e.to_string(),
                })?);
            }
        }
        Ok(out)
    }

    /// The repositories a registry lists in `/v2/_catalog` (all pages).
    pub async fn catalog(&self, host: &str) -> Result<Vec<String>> {
        // mirrors first, as for pulls: a host whose images come from a mirror is searched
        // there too (and Docker Hub itself has no catalog)
        self.on_pull_endpoints(host, |ep| async move {
            let url = Self::url(&ep, "_catalog?n=1000")?;
            self.paged(&ep, "registry:catalog:*", url, "repositories")
                .await
        })
        .await
    }

    /// The tags of the reference's repository (all pages; mirrors first).
    pub async fn tags(&self, reference: &Reference) -> Result<Vec<String>> {
        self.on_pull_endpoints(reference.domain(), |ep| async move {
            let url = Self::url(&ep, &format!("{}/tags/list?n=1000", reference.path()))?;
            self.paged(&ep, &pull_scope(reference.path()), url, "tags")
                .await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_pick_scheme_and_host_as_configured() {
        let cfg = RegistryConfig {
            insecure: vec!["10.0.0.1:5000".into()],
            ..RegistryConfig::default()
        };
        let hub = Endpoint::origin("docker.io", &cfg);
        assert_eq!(
            (hub.base.as_str(), hub.host.as_str()),
            ("https://registry-1.docker.io", "registry-1.docker.io")
        );
        assert!(!hub.probe);
        // Insecure: https first, settled by probing (then maybe http).
        let o = Endpoint::origin("10.0.0.1:5000", &cfg);
        assert_eq!((o.base.as_str(), o.probe), ("https://10.0.0.1:5000", true));
        let o = Endpoint::origin("10.0.0.1:5001", &cfg);
        assert_eq!((o.base.as_str(), o.probe), ("https://10.0.0.1:5001", false));
        assert!(Endpoint::origin("127.0.0.1:5001", &cfg).probe);
        assert!(Endpoint::origin("localhost:5001", &cfg).probe);
        let m = Endpoint::mirror("10.0.0.1:5000", &cfg).unwrap();
        assert_eq!(
            (m.base.as_str(), m.host.as_str(), m.probe),
            ("https://10.0.0.1:5000", "10.0.0.1:5000", true)
        );
        // An explicit scheme is used as given.
        assert!(
            !Endpoint::mirror("http://10.0.0.1:5000", &cfg)
                .unwrap()
                .probe
        );
        assert_eq!(
            Endpoint::mirror("mirror.example", &cfg).unwrap().base,
            "https://mirror.example"
        );
        assert_eq!(
            Endpoint::mirror("http://m.example:8080/", &cfg)
                .unwrap()
                .host,
            "m.example:8080"
        );
        let e = Endpoint::mirror("ftp://x", &cfg).unwrap_err().to_string();
        assert!(e.contains("ftp://x"), "{e}");
    }

    #[test]
    fn pull_endpoints_are_mirrors_then_origin() {
        let mut cfg = RegistryConfig::default();
        cfg.mirrors.insert(
            "docker.io".into(),
            vec!["http://a:1".into(), "https://b".into()],
        );
        let c = Client::new(cfg, Credentials::anonymous()).unwrap();
        let eps: Vec<String> = c
            .pull_endpoints("docker.io")
            .unwrap()
            .into_iter()
            .map(|e| e.base)
            .collect();
        assert_eq!(
            eps,
            ["http://a:1", "https://b", "https://registry-1.docker.io"]
        );
        let eps: Vec<String> = c
            .pull_endpoints("quay.io")
            .unwrap()
            .into_iter()
            .map(|e| e.base)
            .collect();
        assert_eq!(eps, ["https://quay.io"]);
    }
}
