//! `save` (docker-archive as `docker save` writes it, and OCI archives) and `load`
//! (docker-archive and OCI archives, plain or compressed).
//!
//! `load` first extracts the archive with the same path-safe unpacker as layers, into a
//! temp directory under the store root, then opens every file it names through
//! `openat2(RESOLVE_IN_ROOT)` so names in `manifest.json`/`index.json` cannot reach
//! outside the archive.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use berth_types::reference::{Digest, Reference};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use serde::{Deserialize, Serialize};

use crate::blobs::{TMP_PREFIX, random_suffix};
use crate::docs::{self, Descriptor, Manifest};
use crate::error::StoreError;
use crate::store::{ImageStore, LayerRecord, Lease};
use crate::unpack::{Compression, UnpackOptions, unpack_layer};

/// Archive formats `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `docker save` output: `manifest.json`, `<config>.json`, `<layer>/layer.tar`.
    Docker,
    /// An OCI image layout in a tar.
    Oci,
}

/// An image `load` brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// The image id.
    pub id: Digest,
    /// Its tags (normalized).
    pub tags: Vec<Reference>,
}

#[derive(Debug, Serialize, Deserialize)]
struct DockerArchiveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Opens `name` inside `root`, never leaving it (symlinks resolved as if `root` were `/`).
fn open_in(root: &Path, name: &str) -> Result<File, StoreError> {
    let dir = rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StoreError::io("open", root)(e.into()))?;
    let fd = rustix::fs::openat2(
        &dir,
        name,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| {
        StoreError::BadArchive(format!(
            "archive member {name:?} cannot be opened: {}",
            io::Error::from(e)
        ))
    })?;
    Ok(File::from(fd))
}

fn read_in(root: &Path, name: &str) -> Result<Vec<u8>, StoreError> {
    let mut v = Vec::new();
    open_in(root, name)?.read_to_end(&mut v).map_err(|e| {
        StoreError::BadArchive(format!("archive member {name:?} cannot be read: {e}"))
    })?;
    Ok(v)
}

fn parse_tags(tags: &[String]) -> Vec<Reference> {
    tags.iter()
        .filter_map(|t| Reference::parse(t).ok())
        .filter(|r| r.digest().is_none())
        .collect()
}

impl ImageStore {
    /// `docker load`: reads a docker-archive or OCI archive (optionally gzip/zstd) and
    /// stores every image in it with its tags.
    pub fn load(&self, reader: impl Read + Send) -> Result<Vec<LoadedImage>, StoreError> {
        let _hold = self.layers().trash().hold(); // the purger pauses (see Trash::hold)
        let tmp = TempDir(
            self.root()
                .join(format!("{TMP_PREFIX}load-{}", random_suffix())),
        );
        fs::create_dir(&tmp.0).map_err(StoreError::io("create directory", &tmp.0))?;
        unpack_layer(
            reader,
            None,
            &tmp.0,
            &UnpackOptions {
                max_unpacked_bytes: u64::MAX,
            },
        )
        .map_err(|e| StoreError::BadArchive(e.to_string()))?;
        let lease = self.lease();
        if tmp.0.join("manifest.json").is_file() {
            let entries: Vec<DockerArchiveEntry> =
                serde_json::from_slice(&read_in(&tmp.0, "manifest.json")?)
                    .map_err(|e| StoreError::BadArchive(format!("manifest.json: {e}")))?;
            let mut out = Vec::new();
            for e in entries {
                out.push(self.load_docker_entry(&tmp.0, &e, &lease)?);
            }
            Ok(out)
        } else if tmp.0.join("index.json").is_file() {
            let index = docs::parse_index(&read_in(&tmp.0, "index.json")?, "index.json")?;
            let mut out = Vec::new();
            for d in &index.manifests {
                out.push(self.load_oci_manifest(&tmp.0, d, &lease)?);
            }
            Ok(out)
        } else {
            Err(StoreError::BadArchive(
                "neither manifest.json nor index.json found".into(),
            ))
        }
    }

    fn load_docker_entry(
        &self,
        dir: &Path,
        e: &DockerArchiveEntry,
        lease: &Lease,
    ) -> Result<LoadedImage, StoreError> {
        let config_bytes = read_in(dir, &e.config)?;
        let id = Digest::sha256(&config_bytes);
        let config = docs::parse_config(&config_bytes, &id)?;
        let diff_ids = docs::diff_ids(&config, &id)?;
        if diff_ids.len() != e.layers.len() {
            return Err(StoreError::BadArchive(format!(
                "image config {id} lists {} layers, manifest.json {}",
                diff_ids.len(),
                e.layers.len()
            )));
        }
        lease.add_image(&id);
        lease.add_blob(&id);
        self.blobs().put(&config_bytes)?;
        let mut records = Vec::new();
        let mut parent: Option<Digest> = None;
        for (name, want) in e.layers.iter().zip(&diff_ids) {
            let mut w = self.blobs().writer()?;
            io::copy(&mut BufReader::new(open_in(dir, name)?), &mut w)
                .map_err(|err| StoreError::BadArchive(format!("archive member {name:?}: {err}")))?;
            let (blob, size) = w.commit(None)?;
            let (meta, compression) = self.unpack_blob(&blob, parent.as_ref(), lease)?;
            if meta.diff_id != *want {
                return Err(StoreError::DiffIdMismatch {
                    digest: blob,
                    expected: want.clone(),
                    actual: meta.diff_id,
                });
            }
            records.push(LayerRecord {
                blob,
                media_type: compression.docker_media_type().to_owned(),
                size,
                diff_id: meta.diff_id.clone(),
                chain_id: meta.chain_id.clone(),
            });
            parent = Some(meta.chain_id);
        }
        let manifest = synth_manifest(&id, config_bytes.len() as u64, &records, false);
        let mbytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::Task(e.to_string()))?;
        lease.add_blob(&Digest::sha256(&mbytes));
        let mdigest = self.blobs().put(&mbytes)?;
        let tags = parse_tags(e.repo_tags.as_deref().unwrap_or_default());
        self.commit_image(&id, Some(mdigest), records, &tags, None, lease)?;
        Ok(LoadedImage { id, tags })
    }

    fn copy_oci_blob(&self, dir: &Path, d: &Digest, lease: &Lease) -> Result<(), StoreError> {
        lease.add_blob(d);
        if self.blobs().contains(d) {
            return Ok(());
        }
        let f = open_in(dir, &format!("blobs/{}/{}", d.algorithm(), d.hex()))?;
        self.blobs().ingest(d, BufReader::new(f))?;
        Ok(())
    }

    fn load_oci_manifest(
        &self,
        dir: &Path,
        desc: &Descriptor,
        lease: &Lease,
    ) -> Result<LoadedImage, StoreError> {
        self.copy_oci_blob(dir, &desc.digest, lease)?;
        let bytes = self.blobs().read(&desc.digest)?;
        if desc.media_type == docs::OCI_INDEX || desc.media_type == docs::DOCKER_MANIFEST_LIST {
            let idx = docs::parse_index(&bytes, &format!("index {}", desc.digest))?;
            let host = crate::pull::host_platform();
            let pick = idx
                .manifests
                .iter()
                .find(|m| {
                    m.platform
                        .as_ref()
                        .is_some_and(|p| p.os == host.os && p.architecture == host.architecture)
                })
                .or_else(|| idx.manifests.first())
                .ok_or_else(|| StoreError::BadArchive(format!("index {} is empty", desc.digest)))?;
            let mut inner = pick.clone();
            inner.annotations = desc.annotations.clone();
            return self.load_oci_manifest(dir, &inner, lease);
        }
        let m = docs::parse_manifest(&bytes, &format!("manifest {}", desc.digest))?;
        self.copy_oci_blob(dir, &m.config.digest, lease)?;
        let id = m.config.digest.clone();
        lease.add_image(&id);
        let config = self.config(&id)?;
        let diff_ids = docs::diff_ids(&config, &id)?;
        let records = self
            .store_manifest_layers(&m, &diff_ids, lease, |d| self.copy_oci_blob(dir, d, lease))?;
        let mut tags = Vec::new();
        if let Some(a) = &desc.annotations {
            for key in [
                "io.containerd.image.name",
                "org.opencontainers.image.ref.name",
            ] {
                if let Some(v) = a.get(key)
                    && let Ok(r) = Reference::parse(v)
                    && v.contains(['/', ':'])
                    && r.digest().is_none()
                    && !tags.contains(&r)
                {
                    tags.push(r);
                }
            }
        }
        self.commit_image(&id, Some(desc.digest.clone()), records, &tags, None, lease)?;
        Ok(LoadedImage { id, tags })
    }

    /// Unpacks the layers of a manifest whose blobs `fetch` puts in the store.
    pub(crate) fn store_manifest_layers(
        &self,
        m: &Manifest,
        diff_ids: &[Digest],
        lease: &Lease,
        fetch: impl Fn(&Digest) -> Result<(), StoreError>,
    ) -> Result<Vec<LayerRecord>, StoreError> {
        if diff_ids.len() != m.layers.len() {
            return Err(StoreError::BadDocument {
                what: format!("image config {}", m.config.digest),
                reason: format!("{} diff ids for {} layers", diff_ids.len(), m.layers.len()),
            });
        }
        let chains = crate::layers::chain_ids(diff_ids);
        let mut records = Vec::new();
        for (i, l) in m.layers.iter().enumerate() {
            fetch(&l.digest)?;
            let spec = crate::store::LayerSpec {
                blob: l.digest.clone(),
                media_type: l.media_type.clone(),
                diff_id: diff_ids[i].clone(),
                chain_id: chains[i].clone(),
                parent: if i == 0 {
                    None
                } else {
                    Some(chains[i - 1].clone())
                },
            };
            self.unpack_stored_layer(&spec, lease)?;
            records.push(LayerRecord {
                blob: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
                diff_id: spec.diff_id,
                chain_id: spec.chain_id,
            });
        }
        Ok(records)
    }

    /// `docker save`: writes the named images as a docker-archive (loads in
    /// `docker load` and `podman load`) or as an OCI archive.
    pub fn save(
        &self,
        names: &[&str],
        format: ArchiveFormat,
        out: impl Write,
    ) -> Result<(), StoreError> {
        let mut picked = Vec::new();
        for n in names {
            let rec = self.resolve(n)?;
            // A name that is a tag saves that tag only; an id saves all of its tags.
            let tags: Vec<String> = match Reference::parse(n) {
                Ok(r) if r.digest().is_none() && rec.repo_tags.contains(&r.to_string()) => {
                    vec![r.to_string()]
                }
                _ => rec.repo_tags.clone(),
            };
            picked.push((rec, tags));
        }
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        let wr = |e: io::Error| StoreError::Io {
            op: "write archive",
            path: PathBuf::from("-"),
            source: e,
        };
        match format {
            ArchiveFormat::Docker => {
                let mut manifest = Vec::new();
                let mut written = BTreeSet::new();
                for (rec, tags) in &picked {
                    let config = self.blobs().read(&rec.id)?;
                    let cname = format!("{}.json", rec.id.hex());
                    if written.insert(cname.clone()) {
                        append_bytes(&mut tar, &cname, &config).map_err(wr)?;
                    }
                    let mut layers = Vec::new();
                    for l in &rec.layers {
                        let name = format!("{}/layer.tar", l.diff_id.hex());
                        if written.insert(name.clone()) {
                            let meta = self.layers().meta(&l.chain_id)?;
                            let blob = BufReader::new(self.blobs().open_blob(&l.blob)?);
                            let mut r = decompressor(blob, &l.media_type).map_err(|e| {
                                StoreError::BlobStream {
                                    digest: l.blob.clone(),
                                    source: e,
                                }
                            })?;
                            let mut h = file_header(meta.tar_size);
                            tar.append_data(&mut h, &name, &mut r).map_err(wr)?;
                        }
                        layers.push(name);
                    }
                    let repo_tags: Vec<String> = tags
                        .iter()
                        .map(|t| {
                            Reference::parse(t)
                                .map(|r| r.familiar())
                                .unwrap_or_else(|_| t.clone())
                        })
                        .collect();
                    manifest.push(DockerArchiveEntry {
                        config: cname,
                        repo_tags: Some(repo_tags),
                        layers,
                    });
                }
                let m =
                    serde_json::to_vec(&manifest).map_err(|e| StoreError::Task(e.to_string()))?;
                append_bytes(&mut tar, "manifest.json", &m).map_err(wr)?;
                let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
                for (rec, tags) in &picked {
                    for t in tags {
                        if let Ok(r) = Reference::parse(t)
                            && let (Some(tag), Some(top)) = (r.tag(), rec.layers.last())
                        {
                            repos
                                .entry(r.familiar_name())
                                .or_default()
                                .insert(tag.to_owned(), top.diff_id.hex().to_owned());
                        }
                    }
                }
                if !repos.is_empty() {
                    let r =
                        serde_json::to_vec(&repos).map_err(|e| StoreError::Task(e.to_string()))?;
                    append_bytes(&mut tar, "repositories", &r).map_err(wr)?;
                }
            }
            ArchiveFormat::Oci => {
                append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
                    .map_err(wr)?;
                let mut index = Vec::new();
                let mut written = BTreeSet::new();
                for (rec, tags) in &picked {
                    let (mdigest, mbytes, mtype) = self.manifest_for(rec)?;
                    let mut blobs = vec![rec.id.clone()];
                    blobs.extend(rec.layers.iter().map(|l| l.blob.clone()));
                    for b in blobs {
                        if written.insert(b.clone()) {
                            let f = self.blobs().open_blob(&b)?;
                            let size = f
                                .metadata()
                                .map_err(StoreError::io("stat blob", self.blobs().path(&b)))?
                                .len();
                            let mut h = file_header(size);
                            tar.append_data(
                                &mut h,
                                format!("blobs/sha256/{}", b.hex()),
                                BufReader::new(f),
                            )
                            .map_err(wr)?;
                        }
                    }
                    if written.insert(mdigest.clone()) {
                        append_bytes(
                            &mut tar,
                            &format!("blobs/sha256/{}", mdigest.hex()),
                            &mbytes,
                        )
                        .map_err(wr)?;
                    }
                    let names: Vec<Option<String>> = if tags.is_empty() {
                        vec![None]
                    } else {
                        tags.iter().cloned().map(Some).collect()
                    };
                    for t in names {
                        let annotations = t.map(|t| {
                            let tag = Reference::parse(&t)
                                .ok()
                                .and_then(|r| r.tag().map(str::to_owned))
                                .unwrap_or_default();
                            BTreeMap::from([
                                ("io.containerd.image.name".to_owned(), t.clone()),
                                ("org.opencontainers.image.ref.name".to_owned(), tag),
                            ])
                        });
                        index.push(Descriptor {
                            media_type: mtype.clone(),
                            digest: mdigest.clone(),
                            size: mbytes.len() as u64,
                            annotations,
                            platform: None,
                        });
                    }
                }
                let idx = docs::Index {
                    schema_version: 2,
                    media_type: Some(docs::OCI_INDEX.into()),
                    manifests: index,
                };
                let bytes =
                    serde_json::to_vec(&idx).map_err(|e| StoreError::Task(e.to_string()))?;
                append_bytes(&mut tar, "index.json", &bytes).map_err(wr)?;
            }
        }
        tar.into_inner().map_err(wr)?.flush().map_err(wr)?;
        Ok(())
    }

    /// The stored manifest of an image (digest, bytes, media type), synthesised as Docker
    /// schema2 when none is stored.
    pub fn manifest_for(
        &self,
        rec: &crate::store::ImageRecord,
    ) -> Result<(Digest, Vec<u8>, String), StoreError> {
        if let Some(d) = &rec.manifest
            && let Ok(bytes) = self.blobs().read(d)
        {
            let m = docs::parse_manifest(&bytes, &format!("manifest {d}"))?;
            let mt = m
                .media_type
                .clone()
                .unwrap_or_else(|| docs::OCI_MANIFEST.to_owned());
            return Ok((d.clone(), bytes, mt));
        }
        let size = self.blobs().size(&rec.id)?;
        let m = synth_manifest(&rec.id, size, &rec.layers, false);
        let bytes = serde_json::to_vec(&m).map_err(|e| StoreError::Task(e.to_string()))?;
        let d = self.blobs().put(&bytes)?;
        Ok((d, bytes, docs::DOCKER_MANIFEST.to_owned()))
    }
}

/// A Docker schema2 (or OCI) manifest for a config and layers.
pub(crate) fn synth_manifest(
    id: &Digest,
    config_size: u64,
    layers: &[LayerRecord],
    oci: bool,
) -> Manifest {
    Manifest {
        schema_version: 2,
        media_type: Some(
            if oci {
                docs::OCI_MANIFEST
            } else {
                docs::DOCKER_MANIFEST
            }
            .to_owned(),
        ),
        config: Descriptor {
            media_type: if oci {
                docs::OCI_CONFIG
            } else {
                docs::DOCKER_CONFIG
            }
            .to_owned(),
            digest: id.clone(),
            size: config_size,
            annotations: None,
            platform: None,
        },
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: l.media_type.clone(),
                digest: l.blob.clone(),
                size: l.size,
                annotations: None,
                platform: None,
            })
            .collect(),
    }
}

fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> io::Result<()> {
    let mut h = file_header(data.len() as u64);
    tar.append_data(&mut h, name, data)
}

/// A reader of a layer blob's uncompressed tar.
pub(crate) fn decompressor<R: io::BufRead + 'static>(
    mut r: R,
    media_type: &str,
) -> io::Result<Box<dyn Read>> {
    let c = match Compression::from_media_type(media_type) {
        Ok(Some(c)) => c,
        _ => Compression::sniff(r.fill_buf()?),
    };
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
    })
}
