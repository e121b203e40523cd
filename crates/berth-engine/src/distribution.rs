//! `pull` and `push` through berth-image and berth-registry, with per-blob progress the
//! API turns into Docker's JSON messages.

use std::sync::Arc;

use berth_registry::{Client, Credentials, Platform, Progress};
use berth_types::reference::{Digest, Reference};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::Engine;
use crate::error::EngineError;
use crate::events::Event;
use crate::images::registry_host;

/// Credentials a client sent in `X-Registry-Auth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RegistryAuth {
    /// User.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
    /// The registry it is for.
    #[serde(default)]
    pub serveraddress: String,
}

/// One progress event of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferEvent {
    /// A blob transfer starts.
    Start {
        /// The blob.
        digest: Digest,
        /// Its size.
        total: u64,
    },
    /// Bytes moved.
    Bytes {
        /// The blob.
        digest: Digest,
        /// Bytes done so far.
        current: u64,
        /// Its size.
        total: u64,
    },
    /// The blob is complete (`skipped`: it was already there or mounted).
    Done {
        /// The blob.
        digest: Digest,
        /// Already there.
        skipped: bool,
    },
}

struct Forward {
    tx: mpsc::UnboundedSender<TransferEvent>,
    sizes: std::sync::Mutex<std::collections::HashMap<Digest, BlobProgress>>,
}

/// One blob's transfer: bytes so far, total, when progress was last sent.
#[derive(Default)]
struct BlobProgress {
    current: u64,
    total: u64,
    sent: Option<std::time::Instant>,
}

/// The least time between two progress messages of one blob (moby's progress reader
/// rate limit): the first and the last are always sent.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Progress for Forward {
    fn start(&self, digest: &Digest, total: u64, offset: u64) {
        if let Ok(mut m) = self.sizes.lock() {
            m.insert(
                digest.clone(),
                BlobProgress {
                    current: offset,
                    total,
                    sent: None,
                },
            );
        }
        let _ = self.tx.send(TransferEvent::Start {
            digest: digest.clone(),
            total,
        });
    }
    fn bytes(&self, digest: &Digest, n: u64) {
        let (current, total) = match self.sizes.lock() {
            Ok(mut m) => {
                let e = m.entry(digest.clone()).or_default();
                e.current += n;
                let now = std::time::Instant::now();
                let due = e.total != 0 && e.current >= e.total
                    || e.sent
                        .is_none_or(|t| now.duration_since(t) >= PROGRESS_EVERY);
                if !due {
                    return;
                }
                e.sent = Some(now);
                (e.current, e.total)
            }
            Err(_) => (n, 0),
        };
        let _ = self.tx.send(TransferEvent::Bytes {
            digest: digest.clone(),
            current,
            total,
        });
    }
    fn done(&self, digest: &Digest, skipped: bool) {
        let _ = self.tx.send(TransferEvent::Done {
            digest: digest.clone(),
            skipped,
        });
    }
}

/// What a pull of one reference ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    /// The reference (normalized).
    pub reference: Reference,
    /// The image id.
    pub id: String,
    /// The digest pulled by.
    pub digest: String,
    /// The tag already named this image before the pull.
    pub up_to_date: bool,
}

/// What a push ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// The reference pushed.
    pub reference: Reference,
    /// The manifest digest.
    pub digest: String,
    /// The manifest size.
    pub size: u64,
}

/// Parses a `--platform` value (`linux/amd64`, `linux/arm64/v8`).
pub fn parse_platform(s: &str) -> Result<Platform, EngineError> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
            os: (*os).to_owned(),
            architecture: (*arch).to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
            os_version: None,
        }),
        _ => Err(EngineError::InvalidParameter(format!(
            "invalid platform {s:?}: expected os/arch[/variant]"
        ))),
    }
}

/// Decodes `X-Registry-Auth` (base64url JSON; `e30=` is `{}`).
pub fn decode_registry_auth(header: &str) -> Result<RegistryAuth, EngineError> {
    use base64::Engine as _;
    let h = header.trim();
    if h.is_empty() {
        return Ok(RegistryAuth::default());
    }
    let engines = [
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let bytes = engines
        .iter()
        .find_map(|e| e.decode(h).ok())
        .ok_or_else(|| EngineError::InvalidParameter("X-Registry-Auth is not base64".into()))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        EngineError::InvalidParameter(format!("X-Registry-Auth is not valid JSON: {e}"))
    })
}

impl Engine {
    fn registry_client(&self, domain: &str, auth: &RegistryAuth) -> Result<Client, EngineError> {
        let mut creds = Credentials::anonymous();
        if !auth.username.is_empty() {
            let host = if auth.serveraddress.is_empty() {
                domain.to_owned()
            } else {
                registry_host(&auth.serveraddress)
            };
            creds.set(&host, &auth.username, &auth.password);
            if host != domain {
                creds.set(domain, &auth.username, &auth.password);
            }
        }
        // One client per registry and credentials, kept: its connections, the scheme it
        // found (https or http) and its tokens serve the next pull too.
        let key = format!(
            "{domain}\0{}\0{}\0{}",
            auth.username, auth.password, auth.serveraddress
        );
        let mut clients = self
            .registry_clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        if clients.len() >= 64 {
            clients.clear();
        }
        let client = Client::new(self.config.registries.clone(), creds)?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// `POST /images/create?fromImage=&tag=&platform=`: an empty tag pulls every tag (as
    /// moby does for `pull -a`); a `sha256:` tag pulls by digest.
    pub async fn pull_image(
        &self,
        from_image: &str,
        tag: Option<&str>,
        platform: Option<&str>,
        auth: &RegistryAuth,
        progress: mpsc::UnboundedSender<TransferEvent>,
    ) -> Result<Vec<PullOutcome>, EngineError> {
        let named = Reference::parse_named(from_image)
            .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        let platform = match platform.filter(|p| !p.is_empty()) {
            Some(p) => parse_platform(p)?,
            None => Platform::host(),
        };
        let client = self.registry_client(named.domain(), auth)?;
        let forward: Arc<dyn Progress> = Arc::new(Forward {
            tx: progress,
            sizes: Default::default(),
        });
        let targets: Vec<Reference> = match tag.filter(|t| !t.is_empty()) {
            Some(t) if t.contains(':') => {
                let d =
                    Digest::parse(t).map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
                vec![named.repository().with_digest(d)]
            }
            Some(t) => vec![
                named
                    .with_tag(t)
                    .map_err(|e| EngineError::InvalidParameter(e.to_string()))?,
            ],
            None if named.tag().is_some() || named.digest().is_some() => vec![named.clone()],
            None => client
                .tags(&named.repository())
                .await?
                .into_iter()
                .filter_map(|t| named.repository().with_tag(&t).ok())
                .collect(),
        };
        // Resolve the first reference up front (as moby does): a missing repository or tag
        // is a typed registry error (404) before any progress is streamed. berth-image's
        // pull reports registry errors as text only.
        let mut first = match targets.first() {
            Some(t) => Some(client.resolve(t, &platform).await?),
            None => None,
        };
        let mut out = Vec::new();
        for r in targets {
            let before = self
                .images
                .resolve(&r.to_string())
                .ok()
                .map(|rec| rec.id.to_string());
            let pulled = match first.take() {
                Some(resolved) => {
                    self.images
                        .pull_resolved(&client, &r, resolved, forward.clone())
                        .await
                }
                None => {
                    self.images
                        .pull(&client, &r, &platform, forward.clone())
                        .await
                }
            }
            .map_err(|e| EngineError::from_store(e, &r.familiar()))?;
            let id = pulled.id.to_string();
            self.events
                .publish(Event::new("image", "pull", &r.familiar()).attr("name", &r.familiar()));
            out.push(PullOutcome {
                up_to_date: before.as_deref() == Some(id.as_str()),
                reference: pulled.reference,
                id,
                digest: pulled.digest.to_string(),
            });
        }
        Ok(out)
    }

    /// `POST /images/{name}/push?tag=`: an empty tag pushes every tag of the repository.
    pub async fn push_image(
        &self,
        name: &str,
        tag: Option<&str>,
        auth: &RegistryAuth,
        progress: mpsc::UnboundedSender<TransferEvent>,
    ) -> Result<Vec<PushOutcome>, EngineError> {
        let named = Reference::parse_named(name)
            .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        let targets: Vec<Reference> = match tag.filter(|t| !t.is_empty()) {
            Some(t) => vec![
                named
                    .repository()
                    .with_tag(t)
                    .map_err(|e| EngineError::InvalidParameter(e.to_string()))?,
            ],
            None if named.tag().is_some() => vec![named.clone()],
            None => {
                let repo = named.repository().name();
                let mut v: Vec<Reference> = self
                    .images
                    .images()
                    .iter()
                    .flat_map(|i| i.repo_tags.clone())
                    .filter_map(|t| Reference::parse(&t).ok())
                    .filter(|r| r.name() == repo)
                    .collect();
                v.sort();
                if v.is_empty() {
                    return Err(EngineError::NoSuchImage(named.familiar()));
                }
                v
            }
        };
        for r in &targets {
            self.images
                .resolve(&r.to_string())
                .map_err(|e| EngineError::from_store(e, &r.familiar()))?;
        }
        let client = self.registry_client(named.domain(), auth)?;
        let forward: Arc<dyn Progress> = Arc::new(Forward {
            tx: progress,
            sizes: Default::default(),
        });
        let mut out = Vec::new();
        for r in targets {
            let pushed = self.images.push(&client, &r, forward.clone()).await?;
            let rec = self.images.resolve(&r.to_string())?;
            let size = self
                .images
                .manifest_for(&rec)
                .map(|(_, b, _)| b.len() as u64)
                .unwrap_or(0);
            self.events
                .publish(Event::new("image", "push", &r.familiar()).attr("name", &r.familiar()));
            out.push(PushOutcome {
                reference: r,
                digest: pushed.digest.to_string(),
                size,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_decodes_empty_and_full() {
        assert_eq!(
            decode_registry_auth("e30=").unwrap(),
            RegistryAuth::default()
        );
        use base64::Engine as _;
        let h = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"username":"u","password":"p","serveraddress":"localhost:5000"}"#);
        let a = decode_registry_auth(&h).unwrap();
        assert_eq!(
            (
                a.username.as_str(),
                a.password.as_str(),
                a.serveraddress.as_str()
            ),
            ("u", "p", "localhost:5000")
        );
        assert!(decode_registry_auth("!!!").is_err());
    }

    #[test]
    fn platforms_parse() {
        let p = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "arm64", Some("v8"))
        );
        assert!(parse_platform("linux").is_err());
    }
}
