//! Image references and content digests, parsed and normalized exactly as Docker does
//! (distribution/reference's grammar plus docker's `ParseNormalizedNamed`).
//!
//! `alpine` → `docker.io/library/alpine:latest`; `user/app` → `docker.io/user/app:latest`;
//! `localhost/x`, `host:port/a/b:tag`, `name@sha256:<hex>` and `name:tag@digest` keep what was
//! given. [`Reference::familiar`] gives back the short form the Docker UI prints.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use sha2::Digest as _;

/// Docker Hub's canonical domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The legacy Docker Hub domain, normalized to [`DEFAULT_DOMAIN`].
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Namespace of official images on Docker Hub.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag a name-only reference gets.
pub const DEFAULT_TAG: &str = "latest";
/// Longest allowed repository name (domain and path), as in distribution/reference.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

// The grammar, transcribed from distribution/reference's regexp.go.
const ALPHANUMERIC: &str = r"[a-z0-9]+";
const SEPARATOR: &str = r"(?:[._]|__|[-]+)";
const DOMAIN_NAME_COMPONENT: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const OPTIONAL_PORT: &str = r"(?::[0-9]+)?";
// Go's `\w` is ASCII-only; Rust's is Unicode, so spell it out.
const TAG: &str = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
const DIGEST_PAT: &str = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
const IPV6_ADDRESS: &str = r"\[(?:[a-fA-F0-9:]+)\]";

fn domain_and_port() -> String {
    let domain_name = format!(r"{DOMAIN_NAME_COMPONENT}(?:\.{DOMAIN_NAME_COMPONENT})*");
    let host = format!(r"(?:{domain_name}|{IPV6_ADDRESS})");
    format!("{host}{OPTIONAL_PORT}")
}

fn remote_name() -> String {
    let path_component = format!("{ALPHANUMERIC}(?:{SEPARATOR}{ALPHANUMERIC})*");
    format!("{path_component}(?:/{path_component})*")
}

fn compile(pattern: &str) -> Regex {
    // The patterns are constants of this module; a failure is a bug caught by every test.
    Regex::new(pattern).expect("reference grammar compiles")
}

static REFERENCE_RE: LazyLock<Regex> = LazyLock::new(|| {
    let name = format!("(?:{}/)?{}", domain_and_port(), remote_name());
    compile(&format!("^({name})(?::({TAG}))?(?:@({DIGEST_PAT}))?$"))
});
static ANCHORED_NAME_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(&format!(
        "^(?:({})/)?({})$",
        domain_and_port(),
        remote_name()
    ))
});
static ANCHORED_TAG_RE: LazyLock<Regex> = LazyLock::new(|| compile(&format!("^{TAG}$")));
static ANCHORED_DIGEST_RE: LazyLock<Regex> = LazyLock::new(|| compile(&format!("^{DIGEST_PAT}$")));
static IDENTIFIER_RE: LazyLock<Regex> = LazyLock::new(|| compile("^[a-f0-9]{64}$"));

/// Why a digest string was refused (go-digest's errors, carrying the input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid digest {digest:?}: invalid checksum digest format")]
    InvalidFormat { digest: String },
    #[error("invalid digest {digest:?}: unsupported digest algorithm {algorithm:?}")]
    Unsupported { digest: String, algorithm: String },
    #[error(
        "invalid digest {digest:?}: invalid checksum digest length: {algorithm} needs {expected} hex characters, got {got}"
    )]
    InvalidLength {
        digest: String,
        algorithm: String,
        expected: usize,
        got: usize,
    },
}

/// Why a reference was refused. Every variant names the reference as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format: repository name must have at least one component")]
    Empty,
    #[error("invalid reference format: {reference:?}")]
    InvalidFormat { reference: String },
    #[error(
        "invalid reference format: repository name ({name}) must be lowercase in {reference:?}"
    )]
    Uppercase { reference: String, name: String },
    #[error(
        "invalid reference format: repository name {name:?} is {len} characters, more than {NAME_TOTAL_LENGTH_MAX}"
    )]
    NameTooLong { name: String, len: usize },
    #[error("invalid repository name ({reference}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier { reference: String },
    #[error(
        "invalid tag {tag:?}: a tag is up to 128 of [A-Za-z0-9_.-] and must not start with '.' or '-'"
    )]
    InvalidTag { tag: String },
    #[error("invalid reference {reference:?}: {source}")]
    Digest {
        reference: String,
        #[source]
        source: DigestError,
    },
}

/// A content digest: `<algorithm>:<lowercase hex>`, validated (sha256, sha384, sha512).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    // Whole string kept so `as_str` is free; `colon` splits algorithm from hex.
    text: String,
    colon: usize,
}

impl Digest {
    /// Parses and validates a digest as go-digest's `Parse` does.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let Some(colon) = s.find(':').filter(|&i| i > 0 && i + 1 < s.len()) else {
            return Err(DigestError::InvalidFormat {
                digest: s.to_owned(),
            });
        };
        let (algorithm, hex) = (&s[..colon], &s[colon + 1..]);
        let expected = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => {
                if ANCHORED_DIGEST_RE.is_match(s) {
                    return Err(DigestError::Unsupported {
                        digest: s.to_owned(),
                        algorithm: algorithm.to_owned(),
                    });
                }
                return Err(DigestError::InvalidFormat {
                    digest: s.to_owned(),
                });
            }
        };
        if hex.len() != expected {
            return Err(DigestError::InvalidLength {
                digest: s.to_owned(),
                algorithm: algorithm.to_owned(),
                expected,
                got: hex.len(),
            });
        }
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::InvalidFormat {
                digest: s.to_owned(),
            });
        }
        Ok(Self {
            text: s.to_owned(),
            colon,
        })
    }

    /// The sha256 digest of `data`.
    pub fn sha256(data: &[u8]) -> Self {
        Self::from_sha256_bytes(&sha2::Sha256::digest(data).into())
    }

    /// A sha256 digest from a finished hash.
    pub fn from_sha256_bytes(bytes: &[u8; 32]) -> Self {
        Self {
            text: format!("sha256:{}", hex::encode(bytes)),
            colon: 6,
        }
    }

    /// The algorithm, e.g. `sha256`.
    pub fn algorithm(&self) -> &str {
        &self.text[..self.colon]
    }

    /// The lowercase hex part.
    pub fn hex(&self) -> &str {
        &self.text[self.colon + 1..]
    }

    /// `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A normalized image reference: domain, path, optional tag, optional digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference as the docker CLI does for `pull`/`run`: normalized, and tagged
    /// `latest` when it carries neither tag nor digest. A reference with both keeps both.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let mut r = Self::parse_named(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(r)
    }

    /// Parses and normalizes without adding a default tag (`ParseNormalizedNamed`), for
    /// callers that mean "the repository" (`pull -a`, `push` of all tags, `search`).
    pub fn parse_named(s: &str) -> Result<Self, ReferenceError> {
        if IDENTIFIER_RE.is_match(s) {
            return Err(ReferenceError::HexIdentifier {
                reference: s.to_owned(),
            });
        }
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = remainder
            .split_once(':')
            .map_or(remainder.as_str(), |(r, _)| r);
        // Only the part before '@' is the name; the digest may hold uppercase hex that
        // digest validation reports more precisely.
        let remote_name = remote.split_once('@').map_or(remote, |(r, _)| r);
        if remote_name.to_lowercase() != remote_name {
            return Err(ReferenceError::Uppercase {
                reference: s.to_owned(),
                name: remote_name.to_owned(),
            });
        }
        let mut r = parse_strict(&format!("{domain}/{remainder}"), s)?;
        if r.domain.is_empty() {
            // Cannot happen: the domain is always present after splitting, but keep the
            // invariant explicit rather than returning a domain-less reference.
            r.domain = DEFAULT_DOMAIN.to_owned();
        }
        Ok(r)
    }

    /// Parses without any normalization (distribution/reference's `Parse`): what you give is
    /// what you get; the domain is empty when none was given.
    pub fn parse_exact(s: &str) -> Result<Self, ReferenceError> {
        parse_strict(s, s)
    }

    /// The registry host (with port), e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path on the registry, e.g. `library/alpine`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `domain/path`, e.g. `docker.io/library/alpine`.
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The familiar repository name, e.g. `alpine`, `user/app`, `127.0.0.1:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            if let Some(rest) = self.path.strip_prefix(OFFICIAL_REPO_PREFIX)
                && !rest.contains('/')
            {
                return rest.to_owned();
            }
            return self.path.clone();
        }
        self.name()
    }

    /// The familiar string, e.g. `alpine:latest`, `127.0.0.1:5000/x:t`,
    /// `busybox:latest@sha256:…`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// The same repository with `tag` (the digest is kept).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !ANCHORED_TAG_RE.is_match(tag) {
            return Err(ReferenceError::InvalidTag {
                tag: tag.to_owned(),
            });
        }
        Ok(Self {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest` (the tag is kept).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The bare repository: no tag, no digest.
    pub fn repository(&self) -> Self {
        Self {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// What a registry's manifest endpoint takes: the digest when pinned, else the tag
    /// (`latest` when neither).
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
    }
}

/// Docker's `splitDockerDomain`: decides whether the first component is a registry host.
fn split_docker_domain(name: &str) -> (String, String) {
    let Some((maybe_domain, maybe_remote)) = name.split_once('/') else {
        return (
            DEFAULT_DOMAIN.to_owned(),
            format!("{OFFICIAL_REPO_PREFIX}{name}"),
        );
    };
    let (domain, mut remote) = if maybe_domain == "localhost"
        || maybe_domain.contains(['.', ':'])
        || maybe_domain.to_lowercase() != maybe_domain
    {
        (maybe_domain, maybe_remote.to_owned())
    } else {
        (DEFAULT_DOMAIN, name.to_owned())
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN
    } else {
        domain
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        remote = format!("{OFFICIAL_REPO_PREFIX}{remote}");
    }
    (domain.to_owned(), remote)
}

/// distribution/reference's `Parse`; `original` is what the user typed, for errors.
fn parse_strict(s: &str, original: &str) -> Result<Reference, ReferenceError> {
    let Some(caps) = REFERENCE_RE.captures(s) else {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if REFERENCE_RE.is_match(&s.to_lowercase()) {
            let name = s.split(['@', ':']).next().unwrap_or(s);
            return Err(ReferenceError::Uppercase {
                reference: original.to_owned(),
                name: name.to_owned(),
            });
        }
        return Err(ReferenceError::InvalidFormat {
            reference: original.to_owned(),
        });
    };
    let name = caps.get(1).map_or("", |m| m.as_str());
    if name.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong {
            name: name.to_owned(),
            len: name.len(),
        });
    }
    let tag = caps.get(2).map(|m| m.as_str().to_owned());
    let digest = match caps.get(3) {
        Some(m) => Some(
            Digest::parse(m.as_str()).map_err(|source| ReferenceError::Digest {
                reference: original.to_owned(),
                source,
            })?,
        ),
        None => None,
    };
    let (domain, path) = match ANCHORED_NAME_RE.captures(name) {
        Some(n) => (
            n.get(1).map_or("", |m| m.as_str()).to_owned(),
            n.get(2).map_or("", |m| m.as_str()).to_owned(),
        ),
        None => {
            return Err(ReferenceError::InvalidFormat {
                reference: original.to_owned(),
            });
        }
    };
    Ok(Reference {
        domain,
        path,
        tag,
        digest,
    })
}

impl fmt::Display for Reference {
    /// The full form: `docker.io/library/alpine:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_named(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FF64: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    /// distribution/reference's TestReferenceParse vectors: (input, name, domain, tag, digest).
    #[test]
    fn parse_exact_vectors_from_distribution() {
        let long_ok = format!("{}a:tag-puts-this-over-max", "a/".repeat(127));
        let long_ok_name = format!("{}a", "a/".repeat(127));
        let sha512 = format!("sha512:{}", "f".repeat(128));
        let xn = format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512}");
        let d = format!("sha256:{FF64}");
        type Case<'a> = (String, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
        let cases: Vec<Case<'_>> = vec![
            ("test_com".into(), "test_com", "", None, None),
            ("test.com:tag".into(), "test.com", "", Some("tag"), None),
            ("test.com:5000".into(), "test.com", "", Some("5000"), None),
            (
                "test.com/repo:tag".into(),
                "test.com/repo",
                "test.com",
                Some("tag"),
                None,
            ),
            (
                "test:5000/repo".into(),
                "test:5000/repo",
                "test:5000",
                None,
                None,
            ),
            (
                "test:5000/repo:tag".into(),
                "test:5000/repo",
                "test:5000",
                Some("tag"),
                None,
            ),
            (
                format!("test:5000/repo@{d}"),
                "test:5000/repo",
                "test:5000",
                None,
                Some(&d),
            ),
            (
                format!("test:5000/repo:tag@{d}"),
                "test:5000/repo",
                "test:5000",
                Some("tag"),
                Some(&d),
            ),
            (
                "lowercase:Uppercase".into(),
                "lowercase",
                "",
                Some("Uppercase"),
                None,
            ),
            (
                long_ok.clone(),
                &long_ok_name,
                "a",
                Some("tag-puts-this-over-max"),
                None,
            ),
            (
                "sub-dom1.foo.com/bar/baz/quux".into(),
                "sub-dom1.foo.com/bar/baz/quux",
                "sub-dom1.foo.com",
                None,
                None,
            ),
            (
                "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
                "sub-dom1.foo.com/bar/baz/quux",
                "sub-dom1.foo.com",
                Some("some-long-tag"),
                None,
            ),
            (
                "b.gcr.io/test.example.com/my-app:test.example.com".into(),
                "b.gcr.io/test.example.com/my-app",
                "b.gcr.io",
                Some("test.example.com"),
                None,
            ),
            (
                "xn--n3h.com/myimage:xn--n3h.com".into(),
                "xn--n3h.com/myimage",
                "xn--n3h.com",
                Some("xn--n3h.com"),
                None,
            ),
            (
                xn.clone(),
                "xn--7o8h.com/myimage",
                "xn--7o8h.com",
                Some("xn--7o8h.com"),
                Some(&sha512),
            ),
            (
                "foo_bar.com:8080".into(),
                "foo_bar.com",
                "",
                Some("8080"),
                None,
            ),
            (
                "foo/foo_bar.com:8080".into(),
                "foo/foo_bar.com",
                "foo",
                Some("8080"),
                None,
            ),
            ("192.168.1.1".into(), "192.168.1.1", "", None, None),
            (
                "192.168.1.1:tag".into(),
                "192.168.1.1",
                "",
                Some("tag"),
                None,
            ),
            (
                "192.168.1.1:5000".into(),
                "192.168.1.1",
                "",
                Some("5000"),
                None,
            ),
            (
                "192.168.1.1/repo".into(),
                "192.168.1.1/repo",
                "192.168.1.1",
                None,
                None,
            ),
            (
                "192.168.1.1:5000/repo".into(),
                "192.168.1.1:5000/repo",
                "192.168.1.1:5000",
                None,
                None,
            ),
            (
                "192.168.1.1:5000/repo:5050".into(),
                "192.168.1.1:5000/repo",
                "192.168.1.1:5000",
                Some("5050"),
                None,
            ),
            (
                "[2001:db8::1]/repo".into(),
                "[2001:db8::1]/repo",
                "[2001:db8::1]",
                None,
                None,
            ),
            (
                "[2001:db8:1:2:3:4:5:6]/repo:tag".into(),
                "[2001:db8:1:2:3:4:5:6]/repo",
                "[2001:db8:1:2:3:4:5:6]",
                Some("tag"),
                None,
            ),
            (
                "[2001:db8::1]:5000/repo".into(),
                "[2001:db8::1]:5000/repo",
                "[2001:db8::1]:5000",
                None,
                None,
            ),
            (
                format!("[2001:db8::1]:5000/repo:tag@{d}"),
                "[2001:db8::1]:5000/repo",
                "[2001:db8::1]:5000",
                Some("tag"),
                Some(&d),
            ),
            (
                "[::1]:5000/repo".into(),
                "[::1]:5000/repo",
                "[::1]:5000",
                None,
                None,
            ),
        ];
        for (input, name, domain, tag, digest) in cases {
            let r = Reference::parse_exact(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), input, "round trip of {input}");
            assert_eq!(r.name(), name, "name of {input}");
            assert_eq!(r.domain(), domain, "domain of {input}");
            assert_eq!(r.tag(), tag, "tag of {input}");
            assert_eq!(r.digest().map(Digest::as_str), digest, "digest of {input}");
        }
    }

    #[test]
    fn parse_exact_errors_from_distribution() {
        assert_eq!(Reference::parse_exact(""), Err(ReferenceError::Empty));
        for bad in [
            ":justtag".to_owned(),
            format!("@sha256:{FF64}"),
            "aa/asdf$$^/aa".to_owned(),
            "[2001:db8::1]".to_owned(),
            "[2001:db8::1]:5000".to_owned(),
            "[2001:db8::1]:tag".to_owned(),
            "[fe80::1%eth0]:5000/repo".to_owned(),
            "[fe80::1%@invalidzone]:5000/repo".to_owned(),
        ] {
            assert_eq!(
                Reference::parse_exact(&bad),
                Err(ReferenceError::InvalidFormat {
                    reference: bad.clone()
                }),
                "{bad}"
            );
        }
        let e =
            Reference::parse_exact("repo@sha256:ffffffffffffffffffffffffffffffffff").unwrap_err();
        assert!(
            matches!(
                e,
                ReferenceError::Digest {
                    source: DigestError::InvalidLength { .. },
                    ..
                }
            ),
            "{e}"
        );
        let e = Reference::parse_exact(&format!("validname@invaliddigest:{FF64}")).unwrap_err();
        assert!(
            matches!(
                e,
                ReferenceError::Digest {
                    source: DigestError::Unsupported { .. },
                    ..
                }
            ),
            "{e}"
        );
        let e = Reference::parse_exact("Uppercase:tag").unwrap_err();
        assert!(matches!(e, ReferenceError::Uppercase { .. }), "{e}");
        let e = Reference::parse_exact("test:5000/Uppercase/lowercase:tag").unwrap_err();
        assert!(matches!(e, ReferenceError::Uppercase { .. }), "{e}");
        let long = format!("{}a:tag", "a/".repeat(128));
        let e = Reference::parse_exact(&long).unwrap_err();
        assert!(
            matches!(e, ReferenceError::NameTooLong { len: 257, .. }),
            "{e}"
        );
    }

    #[test]
    fn normalize_valid_and_invalid_names_from_docker() {
        for ok in [
            "docker/docker",
            "library/debian",
            "debian",
            "docker.io/docker/docker",
            "docker.io/library/debian",
            "docker.io/debian",
            "index.docker.io/docker/docker",
            "index.docker.io/library/debian",
            "index.docker.io/debian",
            "127.0.0.1:5000/docker/docker",
            "127.0.0.1:5000/library/debian",
            "127.0.0.1:5000/debian",
            "192.168.0.1",
            "192.168.0.1:80",
            "192.168.0.1:8/debian",
            "192.168.0.2:25000/debian",
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "[fc00::1]:5000/docker",
            "[fc00::1]:5000/docker/docker",
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "Docker/docker",
            "DOCKER/docker",
            "docker-rules/docker",
            "docker---rules/docker",
            "doc/docker",
            "d/docker",
            "jess/t",
            "dock__er/docker",
        ] {
            Reference::parse_named(ok).unwrap_or_else(|e| panic!("{ok} should be valid: {e}"));
        }
        for bad in [
            "https://github.com/docker/docker",
            "docker/Docker",
            "-docker",
            "-docker/docker",
            "-docker.io/docker/docker",
            "docker///docker",
            "docker.io/docker/Docker",
            "docker.io/docker///docker",
            "[fc00::1]",
            "[fc00::1]:5000",
            "fc00::1:5000/debian",
            "[fe80::1%eth0]:5000/debian",
            "[2001:db8:3:4::192.0.2.33]:5000/debian",
            "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "docker-/docker",
            "-docker-/docker",
            "____/____",
            "_docker/_docker",
            "dock..er/docker",
            "dock_.er/docker",
            "dock-.er/docker",
            "docker/",
            "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker",
        ] {
            let e = Reference::parse_named(bad).expect_err(bad);
            let msg = e.to_string();
            assert!(!msg.is_empty());
        }
    }

    #[test]
    fn repository_info_vectors_from_docker() {
        // (path, familiar name, full name, ambiguous name, domain)
        let cases = [
            (
                "fooo/bar",
                "fooo/bar",
                "docker.io/fooo/bar",
                "index.docker.io/fooo/bar",
                "docker.io",
            ),
            (
                "library/ubuntu",
                "ubuntu",
                "docker.io/library/ubuntu",
                "library/ubuntu",
                "docker.io",
            ),
            (
                "nonlibrary/ubuntu",
                "nonlibrary/ubuntu",
                "docker.io/nonlibrary/ubuntu",
                "",
                "docker.io",
            ),
            (
                "other/library",
                "other/library",
                "docker.io/other/library",
                "",
                "docker.io",
            ),
            (
                "private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "",
                "127.0.0.1:8000",
            ),
            (
                "privatebase",
                "127.0.0.1:8000/privatebase",
                "127.0.0.1:8000/privatebase",
                "",
                "127.0.0.1:8000",
            ),
            (
                "private/moonbase",
                "example.com/private/moonbase",
                "example.com/private/moonbase",
                "",
                "example.com",
            ),
            (
                "privatebase",
                "example.com/privatebase",
                "example.com/privatebase",
                "",
                "example.com",
            ),
            (
                "private/moonbase",
                "example.com:8000/private/moonbase",
                "example.com:8000/private/moonbase",
                "",
                "example.com:8000",
            ),
            (
                "privatebasee",
                "example.com:8000/privatebasee",
                "example.com:8000/privatebasee",
                "",
                "example.com:8000",
            ),
            (
                "library/ubuntu-12.04-base",
                "ubuntu-12.04-base",
                "docker.io/library/ubuntu-12.04-base",
                "index.docker.io/library/ubuntu-12.04-base",
                "docker.io",
            ),
            (
                "library/foo",
                "foo",
                "docker.io/library/foo",
                "docker.io/foo",
                "docker.io",
            ),
            (
                "library/foo/bar",
                "library/foo/bar",
                "docker.io/library/foo/bar",
                "",
                "docker.io",
            ),
            (
                "store/foo/bar",
                "store/foo/bar",
                "docker.io/store/foo/bar",
                "",
                "docker.io",
            ),
            ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
            ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
        ];
        for (path, familiar, full, ambiguous, domain) in cases {
            let mut inputs = vec![familiar, full];
            if !ambiguous.is_empty() {
                inputs.push(ambiguous);
            }
            for input in inputs {
                let r = Reference::parse_named(input).unwrap_or_else(|e| panic!("{input}: {e}"));
                assert_eq!(r.familiar_name(), familiar, "familiar of {input}");
                assert_eq!(r.to_string(), full, "full of {input}");
                assert_eq!(r.domain(), domain, "domain of {input}");
                assert_eq!(r.path(), path, "path of {input}");
            }
        }
    }

    #[test]
    fn normalized_split_hostname_vectors() {
        for (input, domain, path) in [
            ("test.com/foo", "test.com", "foo"),
            ("test_com/foo", "docker.io", "test_com/foo"),
            ("docker/migrator", "docker.io", "docker/migrator"),
            ("test.com:8080/foo", "test.com:8080", "foo"),
            ("test-com:8080/foo", "test-com:8080", "foo"),
            ("foo", "docker.io", "library/foo"),
            ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
            ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
            ("docker.io/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
            ("localhost/x", "localhost", "x"),
            ("localhost:5000/a/b", "localhost:5000", "a/b"),
        ] {
            let r = Reference::parse_named(input).unwrap();
            assert_eq!((r.domain(), r.path()), (domain, path), "{input}");
        }
    }

    #[test]
    fn default_tag_full_and_familiar_forms() {
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
        assert_eq!(r.familiar(), "alpine:latest");
        assert_eq!(r.manifest_reference(), "latest");

        let r = Reference::parse("user/app").unwrap();
        assert_eq!(r.to_string(), "docker.io/user/app:latest");
        assert_eq!(r.familiar(), "user/app:latest");

        let r = Reference::parse("127.0.0.1:5000/x:t").unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/x:t");
        assert_eq!(r.familiar(), "127.0.0.1:5000/x:t");
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("127.0.0.1:5000", "x", Some("t"))
        );

        let r = Reference::parse("host:5000/a/b:tag").unwrap();
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("host:5000", "a/b", Some("tag"))
        );

        let d = format!("sha256:{FF64}");
        let r = Reference::parse(&format!("alpine@{d}")).unwrap();
        assert_eq!(r.tag(), None, "a digest reference gets no default tag");
        assert_eq!(r.to_string(), format!("docker.io/library/alpine@{d}"));
        assert_eq!(r.familiar(), format!("alpine@{d}"));
        assert_eq!(r.manifest_reference(), d);

        let short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
        let r = Reference::parse(short).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/{short}"));
        assert_eq!(r.familiar(), short);
        assert_eq!(r.tag(), Some("latest"));
        assert!(r.digest().is_some());

        let r = Reference::parse_named("redis").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/redis");
        assert_eq!(r.tag(), None);
        assert_eq!(
            Reference::parse("Docker/docker").unwrap().familiar(),
            "Docker/docker:latest"
        );
        assert_eq!(
            Reference::parse("localhost:5000").unwrap().to_string(),
            "docker.io/library/localhost:5000"
        );
    }

    #[test]
    fn errors_name_the_reference_and_say_why() {
        let e = Reference::parse("docker.io/library/Alpine").unwrap_err();
        assert!(matches!(e, ReferenceError::Uppercase { .. }));
        assert!(e.to_string().contains("must be lowercase"), "{e}");
        assert!(e.to_string().contains("library/Alpine"), "{e}");

        let e = Reference::parse("alpine:bad$tag").unwrap_err();
        assert_eq!(
            e,
            ReferenceError::InvalidFormat {
                reference: "alpine:bad$tag".into()
            }
        );
        assert!(e.to_string().contains("alpine:bad$tag"));

        let e = Reference::parse("alpine@sha256:abc").unwrap_err();
        assert!(e.to_string().contains("alpine@sha256:abc"), "{e}");

        let upper = format!("alpine@sha256:{}", "F".repeat(64));
        let e = Reference::parse(&upper).unwrap_err();
        assert!(
            matches!(
                e,
                ReferenceError::Digest {
                    source: DigestError::InvalidFormat { .. },
                    ..
                }
            ),
            "{e}"
        );

        let e = Reference::parse(&format!("a/{}", "b".repeat(260))).unwrap_err();
        assert!(matches!(e, ReferenceError::NameTooLong { .. }), "{e}");
        assert!(e.to_string().contains("more than 255"), "{e}");

        let e = Reference::parse(&"a".repeat(64).replace('a', "1")).unwrap_err();
        assert!(matches!(e, ReferenceError::HexIdentifier { .. }), "{e}");

        assert_eq!(Reference::parse(""), Err(ReferenceError::Empty));
        let r = Reference::parse("busybox").unwrap();
        assert!(matches!(
            r.with_tag("-foo"),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert!(matches!(
            r.with_tag(&"a".repeat(129)),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert_eq!(
            r.with_tag(&"a".repeat(128)).unwrap().tag().map(str::len),
            Some(128)
        );
        assert!(matches!(
            r.with_tag("é"),
            Err(ReferenceError::InvalidTag { .. })
        ));
    }

    #[test]
    fn digest_parse_and_compute() {
        let d = Digest::sha256(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.algorithm(), "sha256");
        assert_eq!(d.hex().len(), 64);
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        assert!(matches!(
            Digest::parse("foo"),
            Err(DigestError::InvalidFormat { .. })
        ));
        assert!(matches!(
            Digest::parse(":abc"),
            Err(DigestError::InvalidFormat { .. })
        ));
        assert!(matches!(
            Digest::parse("sha256:"),
            Err(DigestError::InvalidFormat { .. })
        ));
        assert!(matches!(
            Digest::parse("sha256:abc"),
            Err(DigestError::InvalidLength {
                expected: 64,
                got: 3,
                ..
            })
        ));
        assert!(matches!(
            Digest::parse(&format!("md5:{FF64}")),
            Err(DigestError::Unsupported { .. })
        ));
        assert!(matches!(
            Digest::parse(&format!("sha256:{}", "g".repeat(64))),
            Err(DigestError::InvalidFormat { .. })
        ));
        Digest::parse(&format!("sha384:{}", "0".repeat(96))).unwrap();
        let e = Digest::parse("sha256:abc").unwrap_err().to_string();
        assert!(e.contains("sha256:abc") && e.contains("64"), "{e}");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:xyz\"").is_err());
    }

    #[test]
    fn reference_serde_round_trip() {
        let r = Reference::parse("user/app:1").unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"docker.io/user/app:1\"");
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
    }
}
