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
    AllEndpointsFailed {
        host: String,
        errors: Vec<String>,
        /// The kind of the last endpoint's (the origin's) error.
        last: ErrorKind,
    },
    #[error("blob upload to {url} failed: {message}")]
    Upload { url: String, message: String },
}

/// What class of failure an error is, Docker's errdefs categories, so callers (the API)
/// map errors to HTTP statuses without matching on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The thing asked for does not exist (404).
    NotFound,
    /// Credentials are missing or wrong (401).
    Unauthorized,
    /// The request itself is malformed: a bad reference, platform, option (400).
    InvalidParameter,
    /// The request conflicts with the current state, e.g. an image in use (409).
    Conflict,
    /// A remote could not be reached or failed (502/503).
    Unavailable,
    /// Anything else: corrupt data, local I/O (500).
    System,
}

impl Error {
    /// The class of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } | Error::NoMatchingPlatform { .. } => ErrorKind::NotFound,
            Error::Unauthorized { .. } | Error::BadChallenge { .. } | Error::Token { .. } => {
                ErrorKind::Unauthorized
            }
            Error::Status { status, .. } => match status {
                404 => ErrorKind::NotFound,
                401 | 403 => ErrorKind::Unauthorized,
                400 | 405 | 413 | 415 | 422 => ErrorKind::InvalidParameter,
                409 => ErrorKind::Conflict,
                _ => ErrorKind::Unavailable,
            },
            Error::Config { .. }
            | Error::Endpoint { .. }
            | Error::InvalidPlatform { .. }
            | Error::CredentialsFile { .. } => ErrorKind::InvalidParameter,
            Error::AllEndpointsFailed { last, .. } => *last,
            Error::Http { .. } | Error::Upload { .. } => ErrorKind::Unavailable,
            Error::Io { .. }
            | Error::Tls { .. }
            | Error::DigestMismatch { .. }
            | Error::SizeMismatch { .. }
            | Error::UnsupportedMediaType { .. }
            | Error::InvalidManifest { .. } => ErrorKind::System,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_classify_errors_without_looking_at_messages() {
        let status = |status| Error::Status {
            method: "GET".into(),
            url: "http://r/v2/".into(),
            status,
            body: String::new(),
        };
        assert_eq!(status(404).kind(), ErrorKind::NotFound);
        assert_eq!(status(401).kind(), ErrorKind::Unauthorized);
        assert_eq!(status(403).kind(), ErrorKind::Unauthorized);
        assert_eq!(status(400).kind(), ErrorKind::InvalidParameter);
        assert_eq!(status(503).kind(), ErrorKind::Unavailable);
        let nf = Error::NotFound {
            what: "manifest x".into(),
        };
        assert_eq!(nf.kind(), ErrorKind::NotFound);
        let un = Error::Unauthorized {
            url: "u".into(),
            message: "m".into(),
        };
        assert_eq!(un.kind(), ErrorKind::Unauthorized);
        let bad = Error::InvalidPlatform {
            platform: "x".into(),
            message: "m".into(),
        };
        assert_eq!(bad.kind(), ErrorKind::InvalidParameter);
        let dm = Error::DigestMismatch {
            what: "w".into(),
            expected: "a".into(),
            actual: "b".into(),
        };
        assert_eq!(dm.kind(), ErrorKind::System);
        let all = Error::AllEndpointsFailed {
            host: "h".into(),
            errors: vec![],
            last: ErrorKind::NotFound,
        };
        assert_eq!(all.kind(), ErrorKind::NotFound);
    }
}
