//! Image operations of the Engine API, on berth-image's store. Each publishes its events.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};

use berth_image::{
    ArchiveFormat, HistoryItem, ImageStore, ImageSummary, ImportOptions, ListFilters, PruneReport,
    RemoveItem,
};
use berth_types::reference::Reference;
use serde::Serialize;

use crate::Engine;
use crate::error::EngineError;
use crate::events::Event;
use crate::io::{ByteStream, StreamReader, channel_writer};

/// What `POST /images/load` reports per image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The image id.
    pub id: String,
    /// Its tags, familiar (`busybox:latest`).
    pub tags: Vec<String>,
}

impl Loaded {
    /// The lines `docker load` prints for it (`Loaded image: busybox:latest`, or
    /// `Loaded image ID: sha256:…` for an untagged image).
    pub fn messages(&self) -> Vec<String> {
        if self.tags.is_empty() {
            vec![format!("Loaded image ID: {}", self.id)]
        } else {
            self.tags
                .iter()
                .map(|t| format!("Loaded image: {t}"))
                .collect()
        }
    }
}

/// `POST /images/create?fromSrc=` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportRequest {
    /// `repo` (may carry a tag).
    pub repo: Option<String>,
    /// `tag`.
    pub tag: Option<String>,
    /// `changes`.
    pub changes: Vec<String>,
    /// `message`.
    pub message: Option<String>,
}

/// One `GET /images/search` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchResult {
    /// Repository name.
    pub name: String,
    /// Description (registries' catalogs have none).
    pub description: String,
    /// Stars (none on a plain registry).
    pub star_count: u64,
    /// Official image.
    pub is_official: bool,
    /// Automated build.
    pub is_automated: bool,
}

/// How Docker names a missing image in its message: `nothere:latest` for a name, the text
/// as typed for an id or prefix.
fn missing_name(name: &str) -> String {
    match Reference::parse(name) {
        Ok(r) => r.familiar(),
        Err(_) => name.to_owned(),
    }
}

fn familiar(s: &str) -> String {
    Reference::parse(s)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| s.to_owned())
}

/// Combines `repo` and `tag` query parameters the way moby does for tag and import.
pub fn repo_tag(repo: &str, tag: Option<&str>) -> Result<Reference, EngineError> {
    let named =
        Reference::parse_named(repo).map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
    match tag.filter(|t| !t.is_empty()) {
        Some(t) => {
            if named.tag().is_some() || named.digest().is_some() {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid reference {repo:?}: a tag is given both in the name and as {t:?}"
                )));
            }
            named
                .with_tag(t)
                .map_err(|e| EngineError::InvalidParameter(e.to_string()))
        }
        None => Reference::parse(repo).map_err(|e| EngineError::InvalidParameter(e.to_string())),
    }
}

/// Turns the decoded `filters` of `GET /images/json` into the store's filters.
pub fn list_filters(map: &BTreeMap<String, Vec<String>>) -> Result<ListFilters, EngineError> {
    let mut f = ListFilters::default();
    for (k, values) in map {
        match k.as_str() {
            "dangling" => {
                for v in values {
                    f.dangling = Some(match v.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        other => {
                            return Err(EngineError::InvalidParameter(format!(
                                "invalid filter 'dangling={other}'"
                            )));
                        }
                    });
                }
            }
            "reference" => f.reference.extend(values.iter().cloned()),
            "label" => f.label.extend(values.iter().cloned()),
            "before" => f.before = values.last().cloned(),
            "since" => f.since = values.last().cloned(),
            other => {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid filter '{other}'"
                )));
            }
        }
    }
    Ok(f)
}

impl Engine {
    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ImageStore) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let store = self.images.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?
    }

    /// `GET /images/json`.
    pub async fn list_images(
        &self,
        filters: &BTreeMap<String, Vec<String>>,
        all: bool,
    ) -> Result<Vec<ImageSummary>, EngineError> {
        let f = list_filters(filters)?;
        self.with_store(move |s| {
            s.list(&f, all).map_err(|e| match e {
                berth_image::StoreError::ImageNotFound(n) => EngineError::NoSuchImage(n),
                other => other.into(),
            })
        })
        .await
    }

    /// `GET /images/{name}/json`, with Docker's `GraphDriver` (overlay2: the top layer as
    /// `UpperDir`, the others as `LowerDir`, top first).
    pub async fn inspect_image(&self, name: &str) -> Result<serde_json::Value, EngineError> {
        let n = name.to_owned();
        self.with_store(move |s| {
            let missing = |e| EngineError::from_store(e, &missing_name(&n));
            let inspect = s.inspect(&n).map_err(missing)?;
            let dirs = s.lowerdirs(&n).map_err(missing)?;
            let mut v =
                serde_json::to_value(&inspect).map_err(|e| EngineError::Task(e.to_string()))?;
            let mut data = serde_json::Map::new();
            if let Some((top, lower)) = dirs.split_first() {
                data.insert("UpperDir".into(), top.display().to_string().into());
                if !lower.is_empty() {
                    let joined: Vec<String> =
                        lower.iter().map(|p| p.display().to_string()).collect();
                    data.insert("LowerDir".into(), joined.join(":").into());
                }
            }
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "GraphDriver".into(),
                    serde_json::json!({"Name": "overlay2", "Data": data}),
                );
            }
            Ok(v)
        })
        .await
    }

    /// `GET /images/{name}/history`.
    pub async fn image_history(&self, name: &str) -> Result<Vec<HistoryItem>, EngineError> {
        let n = name.to_owned();
        self.with_store(move |s| {
            s.history(&n)
                .map_err(|e| EngineError::from_store(e, &missing_name(&n)))
        })
        .await
    }

    /// `POST /images/{name}/tag?repo=&tag=`; returns the familiar new tag.
    pub async fn tag_image(
        &self,
        source: &str,
        repo: &str,
        tag: Option<&str>,
    ) -> Result<String, EngineError> {
        let target = repo_tag(repo, tag)?;
        let (src, t) = (source.to_owned(), target.to_string());
        let id = self
            .with_store(move |s| {
                let rec = s
                    .resolve(&src)
                    .map_err(|e| EngineError::from_store(e, &missing_name(&src)))?;
                s.tag(&src, &t)
                    .map_err(|e| EngineError::from_store(e, &missing_name(&src)))?;
                Ok(rec.id.to_string())
            })
            .await?;
        let name = target.familiar();
        self.events
            .publish(Event::new("image", "tag", &id).attr("name", &name));
        Ok(name)
    }

    /// `DELETE /images/{name}?force=&noprune=`. (`noprune` is accepted; parents are
    /// never removed implicitly by this store.)
    pub async fn remove_image(
        &self,
        name: &str,
        force: bool,
    ) -> Result<Vec<RemoveItem>, EngineError> {
        let n = name.to_owned();
        let (id, items) = self
            .with_store(move |s| {
                let rec = s
                    .resolve(&n)
                    .map_err(|e| EngineError::from_store(e, &missing_name(&n)))?;
                let items = s
                    .remove(&n, force)
                    .map_err(|e| EngineError::from_store(e, &missing_name(&n)))?;
                Ok((rec.id.to_string(), items))
            })
            .await?;
        self.publish_removals(&id, &items);
        Ok(items)
    }

    fn publish_removals(&self, id: &str, items: &[RemoveItem]) {
        for item in items {
            match item {
                RemoveItem::Untagged(t) => {
                    self.events
                        .publish(Event::new("image", "untag", id).attr("name", t));
                }
                RemoveItem::Deleted(d) => {
                    self.events
                        .publish(Event::new("image", "delete", d).attr("name", d));
                }
            }
        }
    }

    /// `POST /images/prune?filters=`: `dangling=false` prunes every unused image.
    pub async fn prune_images(
        &self,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<PruneReport, EngineError> {
        let mut all = false;
        for (k, v) in filters {
            match k.as_str() {
                "dangling" => all = v.iter().any(|x| matches!(x.as_str(), "false" | "0")),
                other => {
                    return Err(EngineError::InvalidParameter(format!(
                        "invalid filter '{other}'"
                    )));
                }
            }
        }
        let report = self.with_store(move |s| Ok(s.prune(all)?)).await?;
        for item in &report.images {
            match item {
                RemoveItem::Untagged(t) => self
                    .events
                    .publish(Event::new("image", "untag", t).attr("name", t)),
                RemoveItem::Deleted(d) => self
                    .events
                    .publish(Event::new("image", "delete", d).attr("name", d)),
            }
        }
        self.events.publish(
            Event::new("image", "prune", "").attr("reclaimed", &report.space_reclaimed.to_string()),
        );
        Ok(report)
    }

    /// `POST /images/load`: reads a docker-archive or OCI archive from `body`.
    pub async fn load_images(&self, body: ByteStream) -> Result<Vec<Loaded>, EngineError> {
        let reader = StreamReader::new(body);
        let loaded = self.with_store(move |s| Ok(s.load(reader)?)).await?;
        let out: Vec<Loaded> = loaded
            .into_iter()
            .map(|l| Loaded {
                id: l.id.to_string(),
                tags: l.tags.iter().map(Reference::familiar).collect(),
            })
            .collect();
        for l in &out {
            let actor = l.tags.first().cloned().unwrap_or_else(|| l.id.clone());
            self.events
                .publish(Event::new("image", "load", &actor).attr("name", &actor));
        }
        Ok(out)
    }

    /// `GET /images/get?names=` and `GET /images/{name}/get`: a docker-archive stream.
    /// Every name is resolved first, so a missing one is a 404 before any byte is sent.
    pub async fn save_images(&self, names: Vec<String>) -> Result<ByteStream, EngineError> {
        if names.is_empty() {
            return Err(EngineError::InvalidParameter(
                "no image names given to save".into(),
            ));
        }
        let check = names.clone();
        self.with_store(move |s| {
            for n in &check {
                s.resolve(n)
                    .map_err(|e| EngineError::from_store(e, &missing_name(n)))?;
            }
            Ok(())
        })
        .await?;
        let (writer, stream) = channel_writer();
        let store = self.images.clone();
        let save_names = names.clone();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = save_names.iter().map(String::as_str).collect();
            let mut bw = BufWriter::with_capacity(256 * 1024, writer);
            let res = store.save(&refs, ArchiveFormat::Docker, &mut bw);
            let flushed = bw.flush();
            match (res, bw.into_inner()) {
                (Ok(()), Ok(w)) if flushed.is_ok() => drop(w),
                (Err(e), Ok(w)) => {
                    tracing::warn!(error = %e, "save failed mid-stream");
                    w.fail(std::io::Error::other(e.to_string()));
                }
                _ => tracing::warn!("save: the client went away"),
            }
        });
        for n in &names {
            self.events
                .publish(Event::new("image", "save", &familiar(n)).attr("name", &familiar(n)));
        }
        Ok(stream)
    }

    /// `POST /images/create?fromSrc=-`: a rootfs tarball from `body` becomes an image;
    /// returns its id.
    pub async fn import_image(
        &self,
        body: ByteStream,
        req: ImportRequest,
    ) -> Result<String, EngineError> {
        // Validate the reference and the changes before unpacking (a bad one is a 400).
        let checked = (|| -> Result<Option<String>, EngineError> {
            let tag = match req.repo.as_deref().filter(|r| !r.is_empty()) {
                Some(repo) => Some(repo_tag(repo, req.tag.as_deref())?.to_string()),
                None => None,
            };
            berth_image::import::apply_changes(&mut serde_json::Map::new(), &req.changes)?;
            Ok(tag)
        })();
        let tag = match checked {
            Ok(tag) => tag,
            Err(e) => {
                // Read the upload to its end first: answering while the client is still
                // writing closes the connection under it, and it sees a broken pipe
                // instead of this error.
                let mut body = body;
                while let Some(Ok(_)) = futures_util::StreamExt::next(&mut body).await {}
                return Err(e);
            }
        };
        let opts = ImportOptions {
            changes: req.changes,
            message: req.message,
            tag: tag.clone(),
        };
        let reader = StreamReader::new(body);
        let id = self
            .with_store(move |s| Ok(s.import(reader, &opts)?))
            .await?
            .to_string();
        let mut e = Event::new("image", "import", &id);
        if let Some(t) = &tag {
            e = e.attr("name", &familiar(t));
        }
        self.events.publish(e);
        Ok(id)
    }

    /// `POST /auth`: checks the credentials against the registry's `/v2/`.
    pub async fn check_login(
        &self,
        server: &str,
        username: &str,
        password: &str,
    ) -> Result<(), EngineError> {
        let host = registry_host(server);
        // The registry client's login verifies *and saves*; the daemon must not keep the
        // user's secrets, so it saves into a throwaway file under the exec root.
        let tmp = self.config.exec_root.join(format!(
            ".auth-{}-{}.json",
            std::process::id(),
            crate::events::now_nanos()
        ));
        let creds = berth_registry::Credentials::load(&tmp, &[])?;
        let client = berth_registry::Client::new(self.config.registries.clone(), creds)?;
        let res = client.login(&host, username, password).await;
        let _ = std::fs::remove_file(&tmp);
        res.map_err(|e| match e {
            berth_registry::Error::Unauthorized { message, .. } => {
                EngineError::Unauthorized(message)
            }
            other => other.into(),
        })
    }

    /// `GET /images/search?term=&limit=`: a registry's catalog filtered by the term
    /// (`host:port/part` searches that registry; a bare term searches Docker Hub).
    pub async fn search_images(
        &self,
        term: &str,
        limit: usize,
    ) -> Result<Vec<SearchResult>, EngineError> {
        let (host, needle) = match term.split_once('/') {
            Some((h, rest)) if h.contains(['.', ':']) || h == "localhost" => {
                (h.to_owned(), rest.to_owned())
            }
            _ => ("docker.io".to_owned(), term.to_owned()),
        };
        let client = berth_registry::Client::new(
            self.config.registries.clone(),
            berth_registry::Credentials::anonymous(),
        )?;
        let repos = client.catalog(&host).await?;
        let mut out: Vec<SearchResult> = repos
            .into_iter()
            .filter(|r| r.contains(&needle))
            .map(|r| {
                // Docker Hub (or its mirror): official images are `library/x`, shown as `x`
                let official = host == "docker.io" && r.starts_with("library/");
                SearchResult {
                    name: match r.strip_prefix("library/") {
                        Some(short) if official => short.to_owned(),
                        _ if host == "docker.io" => r,
                        _ => format!("{host}/{r}"),
                    },
                    description: String::new(),
                    star_count: 0,
                    is_official: official,
                    is_automated: false,
                }
            })
            .collect();
        if limit > 0 {
            out.truncate(limit);
        }
        Ok(out)
    }
}

/// `https://index.docker.io/v1/` and friends → `docker.io`; `http://h:p/x` → `h:p`.
pub fn registry_host(server: &str) -> String {
    let s = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let h = s.split('/').next().unwrap_or(s);
    match h {
        "" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_and_tag_combine_like_moby() {
        assert_eq!(
            repo_tag("busybox", Some("x")).unwrap().familiar(),
            "busybox:x"
        );
        assert_eq!(
            repo_tag("busybox", None).unwrap().familiar(),
            "busybox:latest"
        );
        assert_eq!(
            repo_tag("localhost:5000/a:1", Some("")).unwrap().familiar(),
            "localhost:5000/a:1"
        );
        assert!(repo_tag("a:1", Some("2")).is_err());
        assert!(repo_tag("UPPER", None).is_err());
    }

    #[test]
    fn list_filters_parse_and_reject_unknown_keys() {
        let mut m = BTreeMap::new();
        m.insert("dangling".to_owned(), vec!["true".to_owned()]);
        m.insert("reference".to_owned(), vec!["busy*".to_owned()]);
        let f = list_filters(&m).unwrap();
        assert_eq!(f.dangling, Some(true));
        assert_eq!(f.reference, ["busy*"]);
        m.insert("nope".to_owned(), vec![]);
        assert_eq!(
            list_filters(&m).unwrap_err().to_string(),
            "invalid filter 'nope'"
        );
    }

    #[test]
    fn registry_hosts_normalize() {
        assert_eq!(registry_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_host("http://localhost:5000/v2/"), "localhost:5000");
    }

    #[test]
    fn missing_names_are_familiar_with_tag() {
        assert_eq!(missing_name("nothere"), "nothere:latest");
        assert_eq!(
            missing_name("abc123def456abc123def456abc123def456abc123def456abc123def456abcd"),
            "abc123def456abc123def456abc123def456abc123def456abc123def456abcd"
        );
    }
}
