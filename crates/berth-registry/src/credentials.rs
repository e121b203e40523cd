use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::error::{Error, Result};

/// The key Docker uses for Docker Hub in `config.json`.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// One registry's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthEntry {
    pub username: String,
    pub password: String,
    /// An OAuth refresh token (`identitytoken`), used instead of the password for tokens.
    pub identity_token: Option<String>,
}

impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("AuthEntry")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Credentials from docker-compatible `config.json` files: berth's own (read and written)
/// and any fallbacks such as `~/.docker/config.json` (read only). Paths are the caller's.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    path: Option<PathBuf>,
    /// The primary file's JSON, kept whole so saving preserves fields we do not manage.
    doc: serde_json::Map<String, serde_json::Value>,
    own: BTreeMap<String, AuthEntry>,
    fallback: BTreeMap<String, AuthEntry>,
}

/// Normalizes a registry host or config.json key to the key we look up by.
fn normalize_key(host: &str) -> String {
    let h = host
        .strip_prefix("https://")
        .or_else(|| host.strip_prefix("http://"))
        .unwrap_or(host);
    let h = h.split('/').next().unwrap_or(h);
    match h {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

/// The key written to config.json for `host`, as the docker CLI writes it.
fn file_key(host: &str) -> String {
    match normalize_key(host).as_str() {
        "docker.io" => DOCKER_HUB_AUTH_KEY.to_owned(),
        other => other.to_owned(),
    }
}

fn parse_auths(
    path: &Path,
    text: &str,
) -> Result<(
    serde_json::Map<String, serde_json::Value>,
    BTreeMap<String, AuthEntry>,
)> {
    let bad = |message: String| Error::CredentialsFile {
        path: path.to_owned(),
        message,
    };
    let doc: serde_json::Map<String, serde_json::Value> = if text.trim().is_empty() {
        serde_json::Map::new()
    } else {
        serde_json::from_str(text).map_err(|e| bad(e.to_string()))?
    };
    let mut out = BTreeMap::new();
    if let Some(auths) = doc.get("auths") {
        let auths = auths
            .as_object()
            .ok_or_else(|| bad("\"auths\" is not an object".into()))?;
        for (key, v) in auths {
            let get = |f: &str| v.get(f).and_then(|x| x.as_str()).filter(|s| !s.is_empty());
            let (mut username, mut password) = (
                get("username").unwrap_or_default().to_owned(),
                get("password").unwrap_or_default().to_owned(),
            );
            if let Some(auth) = get("auth") {
                let decoded = B64
                    .decode(auth.trim())
                    .map_err(|e| bad(format!("auths.{key}.auth is not base64: {e}")))?;
                let decoded = String::from_utf8(decoded)
                    .map_err(|_| bad(format!("auths.{key}.auth is not utf-8")))?;
                let (u, p) = decoded
                    .split_once(':')
                    .ok_or_else(|| bad(format!("auths.{key}.auth is not user:password")))?;
                username = u.to_owned();
                password = p.to_owned();
            }
            let identity_token = get("identitytoken").map(str::to_owned);
            if username.is_empty() && identity_token.is_none() {
                continue;
            }
            out.insert(
                normalize_key(key),
                AuthEntry {
                    username,
                    password,
                    identity_token,
                },
            );
        }
    }
    Ok((doc, out))
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

impl Credentials {
    /// No credentials at all (anonymous pulls); `save` is an error.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Loads berth's own `path` (which `login` writes; missing is fine) and then each of
    /// `fallbacks` (e.g. `~/.docker/config.json`; missing is fine), the first hit winning.
    pub fn load(path: &Path, fallbacks: &[PathBuf]) -> Result<Self> {
        let mut creds = Self {
            path: Some(path.to_owned()),
            ..Self::default()
        };
        if let Some(text) = read_optional(path)? {
            let (doc, own) = parse_auths(path, &text)?;
            creds.doc = doc;
            creds.own = own;
        }
        for fb in fallbacks {
            if let Some(text) = read_optional(fb)? {
                let (_, entries) = parse_auths(fb, &text)?;
                for (k, v) in entries {
                    creds.fallback.entry(k).or_insert(v);
                }
            }
        }
        Ok(creds)
    }

    /// The credentials for registry `host` (`host[:port]`; Docker Hub under any of its names).
    pub fn get(&self, host: &str) -> Option<&AuthEntry> {
        let key = normalize_key(host);
        self.own.get(&key).or_else(|| self.fallback.get(&key))
    }

    /// Sets (in memory) the credentials for `host`.
    pub fn set(&mut self, host: &str, username: &str, password: &str) {
        self.own.insert(
            normalize_key(host),
            AuthEntry {
                username: username.to_owned(),
                password: password.to_owned(),
                identity_token: None,
            },
        );
    }

    /// Forgets (in memory) the credentials for `host`; true when there were some in berth's
    /// own file.
    pub fn remove(&mut self, host: &str) -> bool {
        self.own.remove(&normalize_key(host)).is_some()
    }

    /// Writes berth's own file atomically (temp file, fsync, rename, mode 0600), keeping
    /// fields it does not manage.
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Err(Error::CredentialsFile {
                path: PathBuf::new(),
                message: "no credentials file configured to save to".into(),
            });
        };
        let mut doc = self.doc.clone();
        let mut auths = serde_json::Map::new();
        for (host, e) in &self.own {
            let mut entry = serde_json::Map::new();
            entry.insert(
                "auth".into(),
                B64.encode(format!("{}:{}", e.username, e.password)).into(),
            );
            if let Some(t) = &e.identity_token {
                entry.insert("identitytoken".into(), t.clone().into());
            }
            auths.insert(file_key(host), entry.into());
        }
        doc.insert("auths".into(), auths.into());
        let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::CredentialsFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(path, text.as_bytes()).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config_json_with_fallback_and_hub_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("berth.json");
        let docker = dir.path().join("docker.json");
        std::fs::write(
            &docker,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},
                "127.0.0.1:5000":{{"auth":"{}"}},
                "quay.io":{{"auth":"","identitytoken":"refresh-me"}}}},
                "credsStore":"desktop"}}"#,
                B64.encode("hubuser:hubpass"),
                B64.encode("docker:fromdocker")
            ),
        )
        .unwrap();
        std::fs::write(
            &own,
            format!(
                r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{}"}}}},"other":1}}"#,
                B64.encode("berth:pw:with:colons")
            ),
        )
        .unwrap();
        let mut c =
            Credentials::load(&own, &[docker.clone(), dir.path().join("missing.json")]).unwrap();
        let hub = c.get("docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hubuser", "hubpass")
        );
        assert_eq!(c.get("registry-1.docker.io"), c.get("index.docker.io"));
        let local = c.get("127.0.0.1:5000").unwrap();
        assert_eq!(
            (local.username.as_str(), local.password.as_str()),
            ("berth", "pw:with:colons")
        );
        assert_eq!(
            c.get("quay.io").unwrap().identity_token.as_deref(),
            Some("refresh-me")
        );
        assert!(c.get("127.0.0.1:5001").is_none());
        assert!(
            !format!("{local:?}").contains("pw:with"),
            "debug output hides secrets"
        );

        c.set("docker.io", "me", "secret");
        c.set("10.0.0.1:443", "a", "b");
        assert!(c.remove("127.0.0.1:5000"));
        c.save().unwrap();
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&own).unwrap()).unwrap();
        assert_eq!(saved["other"], 1, "unmanaged fields are kept");
        assert_eq!(
            saved["auths"][DOCKER_HUB_AUTH_KEY]["auth"],
            B64.encode("me:secret")
        );
        assert!(saved["auths"].get("127.0.0.1:5000").is_none());
        let mode = std::fs::metadata(&own).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        // After logout from berth's file, docker's fallback still answers.
        let again = Credentials::load(&own, &[docker]).unwrap();
        assert_eq!(again.get("127.0.0.1:5000").unwrap().username, "docker");
        assert_eq!(again.get("docker.io").unwrap().username, "me");
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(&p, r#"{"auths":{"h":{"auth":"!!!"}}}"#).unwrap();
        let e = Credentials::load(&p, &[]).unwrap_err().to_string();
        assert!(e.contains("c.json") && e.contains("auths.h.auth"), "{e}");
        std::fs::write(&p, "{").unwrap();
        assert!(matches!(
            Credentials::load(&p, &[]),
            Err(Error::CredentialsFile { .. })
        ));
        assert!(Credentials::anonymous().save().is_err());
    }
}
