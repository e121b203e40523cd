//! An image (layers + config + manifest) and its two on-disk forms.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Error;
use crate::config::{
    DEFAULT_PATH, Descriptor, DockerArchiveEntry, Empty, History, ImageConfig, ImageOptions, Index,
    Manifest, RootFs, RunConfig, media,
};
use crate::layer::{Layer, sha256_digest};

/// Annotation holding the tag in an OCI layout's `index.json` (what `oci:DIR:tag` matches).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation holding the full image name (containerd and buildkit write it too).
pub const IMAGE_NAME: &str = "io.containerd.image.name";

/// `repository:tag`, as given on the command line (`busybox:latest`, `127.0.0.1:5000/x:1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `busybox`, `127.0.0.1:5000/x`.
    pub repository: String,
    /// `latest` when none was given.
    pub tag: String,
}

impl Reference {
    /// Parse `name[:tag]`; digests (`@sha256:...`) are refused: an image we make has a tag.
    pub fn parse(s: &str) -> Result<Reference, Error> {
        let bad = |why: &'static str| Error::InvalidReference(s.to_string(), why);
        if s.contains('@') {
            return Err(bad("a digest reference cannot name a new image"));
        }
        let last_slash = s.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match s[last_slash..].rfind(':') {
            Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
            None => (s, "latest"),
        };
        if repository.is_empty() {
            return Err(bad("empty repository name"));
        }
        if repository
            .chars()
            .any(|c| c.is_ascii_uppercase() || c.is_whitespace())
        {
            return Err(bad("repository names must be lower case without spaces"));
        }
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !tag_ok {
            return Err(bad(
                "a tag is 1-128 of [A-Za-z0-9_.-], not starting with . or -",
            ));
        }
        Ok(Reference {
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

/// A complete single-platform (linux/amd64) image held in memory.
#[derive(Debug, Clone)]
pub struct Image {
    /// The name it is written under.
    pub reference: Reference,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// The parsed config.
    pub config: ImageConfig,
    config_json: Vec<u8>,
    /// `sha256:` of the config JSON (the image id).
    pub config_digest: String,
    manifest_json: Vec<u8>,
    /// `sha256:` of the manifest JSON.
    pub manifest_digest: String,
}

impl Image {
    /// One layer made from `rootfs`, a directory or a (gzip) tarball.
    pub fn from_rootfs(rootfs: &Path, tag: &str, opts: &ImageOptions) -> Result<Image, Error> {
        Image::from_rootfs_layers(&[rootfs], tag, opts)
    }

    /// One layer per entry of `rootfs` (directories or tarballs), bottom first.
    pub fn from_rootfs_layers<P: AsRef<Path>>(
        rootfs: &[P],
        tag: &str,
        opts: &ImageOptions,
    ) -> Result<Image, Error> {
        Reference::parse(tag)?;
        // Refuse bad options before the (possibly long) layer build.
        image_config(&[], opts)?;
        let layers = rootfs
            .iter()
            .map(|p| Layer::from_path(p.as_ref(), opts.source_date_epoch))
            .collect::<Result<Vec<_>, _>>()?;
        Image::from_layers(layers, tag, opts)
    }

    /// An image from layers already built.
    pub fn from_layers(layers: Vec<Layer>, tag: &str, opts: &ImageOptions) -> Result<Image, Error> {
        let reference = Reference::parse(tag)?;
        if layers.is_empty() {
            return Err(Error::NoLayers);
        }
        let config = image_config(&layers, opts)?;
        let config_json = serde_json::to_vec(&config).map_err(Error::Json)?;
        let config_digest = sha256_digest(&config_json);
        let manifest = Manifest {
            schema_version: 2,
            media_type: media::MANIFEST.to_string(),
            config: Descriptor {
                media_type: media::CONFIG.to_string(),
                digest: config_digest.clone(),
                size: config_json.len() as u64,
                annotations: None,
            },
            layers: layers
                .iter()
                .map(|l| Descriptor {
                    media_type: media::LAYER_GZIP.to_string(),
                    digest: l.digest.clone(),
                    size: l.gzip.len() as u64,
                    annotations: None,
                })
                .collect(),
        };
        let manifest_json = serde_json::to_vec(&manifest).map_err(Error::Json)?;
        let manifest_digest = sha256_digest(&manifest_json);
        Ok(Image {
            reference,
            layers,
            config,
            config_json,
            config_digest,
            manifest_json,
            manifest_digest,
        })
    }

    /// The config JSON bytes (whose sha256 is [`Image::config_digest`]).
    pub fn config_json(&self) -> &[u8] {
        &self.config_json
    }

    /// The OCI manifest JSON bytes (whose sha256 is [`Image::manifest_digest`]).
    pub fn manifest_json(&self) -> &[u8] {
        &self.manifest_json
    }

    /// Write (or add to) an OCI image layout at `dir`: `oci-layout`, `blobs/sha256/*` and
    /// `index.json`, whose entry for this image carries the tag as
    /// `org.opencontainers.image.ref.name` (replacing an entry with the same tag).
    pub fn write_oci_layout(&self, dir: &Path) -> Result<(), Error> {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| Error::io("create directory", &blobs, e))?;
        write_atomic(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        for layer in &self.layers {
            write_blob(&blobs, &layer.digest, &layer.gzip)?;
        }
        write_blob(&blobs, &self.config_digest, &self.config_json)?;
        write_blob(&blobs, &self.manifest_digest, &self.manifest_json)?;

        let index_path = dir.join("index.json");
        let mut index = match fs::read(&index_path) {
            Ok(bytes) => serde_json::from_slice::<Index>(&bytes)
                .map_err(|e| Error::BadIndex(index_path.clone(), e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Index {
                schema_version: 2,
                media_type: Some(media::INDEX.to_string()),
                manifests: Vec::new(),
            },
            Err(e) => return Err(Error::io("read", &index_path, e)),
        };
        index.manifests.retain(|d| {
            d.annotations.as_ref().and_then(|a| a.get(REF_NAME)) != Some(&self.reference.tag)
        });
        index.manifests.push(Descriptor {
            media_type: media::MANIFEST.to_string(),
            digest: self.manifest_digest.clone(),
            size: self.manifest_json.len() as u64,
            annotations: Some(BTreeMap::from([
                (IMAGE_NAME.to_string(), self.reference.to_string()),
                (REF_NAME.to_string(), self.reference.tag.clone()),
            ])),
        });
        let json = serde_json::to_vec(&index).map_err(Error::Json)?;
        write_atomic(&index_path, &json)
    }

    /// Write a docker-archive as `docker save` (before Docker 25) writes it:
    /// `<id>/layer.tar`, `<id>/VERSION`, `<id>/json` per layer, `<config hex>.json`,
    /// `manifest.json` and `repositories`. With `gzip`, the whole archive is gzip-compressed
    /// (`docker load`, `podman load` and skopeo accept both).
    pub fn write_docker_archive(&self, path: &Path, gzip: bool) -> Result<(), Error> {
        let created = self.config.created.clone();
        let mtime = self.created_seconds();
        let config_name = format!("{}.json", hex_of(&self.config_digest));

        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8], dir: bool| -> Result<(), Error> {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(mtime);
            h.set_uid(0);
            h.set_gid(0);
            if dir {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
            } else {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
            }
            tar.append_data(&mut h, name, data)
                .map_err(|e| Error::io("write archive entry", Path::new(name), e))
        };

        // v1-compatible layer ids: a chain over the diff ids, so they are stable.
        let mut parent: Option<String> = None;
        let mut layer_paths = Vec::new();
        for layer in &self.layers {
            let id = hex_of(&sha256_digest(
                format!("{} {}", parent.as_deref().unwrap_or(""), layer.diff_id).as_bytes(),
            ))
            .to_string();
            let v1 = V1Json {
                id: id.clone(),
                parent: parent.clone(),
                created: created.clone(),
                os: "linux",
            };
            add(&format!("{id}/"), &[], true)?;
            add(&format!("{id}/VERSION"), b"1.0", false)?;
            add(
                &format!("{id}/json"),
                &serde_json::to_vec(&v1).map_err(Error::Json)?,
                false,
            )?;
            add(&format!("{id}/layer.tar"), &layer.tar, false)?;
            layer_paths.push(format!("{id}/layer.tar"));
            parent = Some(id);
        }
        add(&config_name, &self.config_json, false)?;
        let manifest = vec![DockerArchiveEntry {
            config: config_name,
            repo_tags: vec![self.reference.to_string()],
            layers: layer_paths,
        }];
        add(
            "manifest.json",
            &serde_json::to_vec(&manifest).map_err(Error::Json)?,
            false,
        )?;
        let top = parent.expect("an image has at least one layer");
        let repositories = BTreeMap::from([(
            self.reference.repository.clone(),
            BTreeMap::from([(self.reference.tag.clone(), top)]),
        )]);
        add(
            "repositories",
            &serde_json::to_vec(&repositories).map_err(Error::Json)?,
            false,
        )?;
        let bytes = tar
            .into_inner()
            .map_err(|e| Error::io("finish archive", path, e))?;
        let bytes = if gzip {
            crate::layer::gzip(&bytes)?
        } else {
            bytes
        };
        write_atomic(path, &bytes)
    }

    fn created_seconds(&self) -> u64 {
        self.config
            .created
            .parse::<jiff::Timestamp>()
            .map(|t| u64::try_from(t.as_second()).unwrap_or(0))
            .unwrap_or(0)
    }
}

#[derive(Serialize)]
struct V1Json {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    created: String,
    os: &'static str,
}

fn image_config(layers: &[Layer], opts: &ImageOptions) -> Result<ImageConfig, Error> {
    let created = match opts.source_date_epoch {
        Some(s) => jiff::Timestamp::from_second(s)
            .map_err(|_| Error::InvalidOption(format!("SOURCE_DATE_EPOCH {s} is out of range")))?,
        None => jiff::Timestamp::now(),
    }
    .to_string();
    for e in &opts.env {
        if !e.contains('=') || e.starts_with('=') {
            return Err(Error::InvalidOption(format!("env {e:?} is not KEY=VALUE")));
        }
    }
    let mut env = opts.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    let mut ports = BTreeMap::new();
    for p in &opts.exposed_ports {
        let (num, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
        if num.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
            return Err(Error::InvalidOption(format!(
                "exposed port {p:?} is not PORT[/tcp|udp|sctp]"
            )));
        }
        ports.insert(format!("{num}/{proto}"), Empty {});
    }
    let created_by = opts
        .created_by
        .clone()
        .unwrap_or_else(|| "berth-mkimage".to_string());
    Ok(ImageConfig {
        created: created.clone(),
        architecture: "amd64".to_string(),
        os: "linux".to_string(),
        config: RunConfig {
            user: opts.user.clone(),
            exposed_ports: (!ports.is_empty()).then_some(ports),
            env: Some(env),
            entrypoint: opts.entrypoint.clone(),
            cmd: opts.cmd.clone(),
            working_dir: opts.workdir.clone(),
            labels: (!opts.labels.is_empty()).then(|| opts.labels.clone()),
            stop_signal: opts.stop_signal.clone(),
        },
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
        },
        history: layers
            .iter()
            .map(|_| History {
                created: created.clone(),
                created_by: created_by.clone(),
                empty_layer: false,
            })
            .collect(),
    })
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn write_blob(blobs: &Path, digest: &str, data: &[u8]) -> Result<(), Error> {
    let p = blobs.join(hex_of(digest));
    if p.exists() {
        return Ok(());
    }
    write_atomic(&p, data)
}

/// Write to `<path>.tmp-<pid>`, fsync, rename into place.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string()
        .push(format!(".tmp-{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(data).map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io("rename into place", path, e))
}
