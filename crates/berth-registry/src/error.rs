use std::path::PathBuf;

/// Everything the registry client can fail with; each variant carries what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {path:?}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid registry configuration in {path:?}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("invalid credentials file {path:?}: {message}")]
    CredentialsFile { path: PathBuf, message: String },
    #[error("invalid tls material for registry {host} in {path:?}: {message}")]
    Tls {
        host: String,
        path: PathBuf,
        message: String,
    },
    #[error("invalid registry endpoint {endpoint:?}: {message}")]
    Endpoint { endpoint: String, message: String },
    #[error("request to {url} failed: {}", chain(source))]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url} returned {status}: {body}")]
    Status {
        method: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("unauthorized: {url}: {message}")]
    Unauthorized { url: String, message: String },
    #[error("not found: {what}")]
    NotFound { what: String },
    #[error("invalid WWW-Authenticate challenge from {url}: {header:?}")]
    BadChallenge { url: String, header: String },
    #[error("token request to {realm} failed: {message}")]
    Token { realm: String, message: String },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("unsupported manifest media type {media_type:?} for {reference}")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },
    #[error("invalid manifest for {reference}: {message}")]
    InvalidManifest { reference: String, message: String },
    #[error("no manifest for platform {platform} in {reference} (available: {})", available.join(", "))]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: Vec<String>,
    },
    #[error("invalid platform {platform:?}: {message}")]
    InvalidPlatform { platform: String, message: String },
    #[error("all endpoints for {host} failed: {}", errors.join("; "))]
    AllEndpointsFailed { host: String, errors: Vec<String> },
    #[error("blob upload to {url} failed: {message}")]
    Upload { url: String, message: String },
}

impl Error {
    /// Whether another endpoint (the next mirror, the origin) may succeed where this failed.
    pub(crate) fn try_next_endpoint(&self) -> bool {
        !matches!(
            self,
            Error::DigestMismatch { .. }
                | Error::InvalidManifest { .. }
                | Error::UnsupportedMediaType { .. }
                | Error::NoMatchingPlatform { .. }
        )
    }
}

/// An error and its causes, `a: b: c` (reqwest's own message hides the interesting part,
/// e.g. which certificate check failed).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

pub(crate) type Result<T> = std::result::Result<T, Error>;
