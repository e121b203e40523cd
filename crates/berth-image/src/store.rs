//! The image store: blobs, layers and the image metadata file, plus the in-memory
//! holds (containers) and leases (in-flight pulls, builds) that GC respects.
//!
//! Metadata is one JSON file, `images.json`, with a `version` field, rewritten
//! atomically (temp file, fsync, rename) on every change. The daemon is the only
//! writer (ARCHITECTURE.md, "One owner of state"), so no cross-process locking is
//! needed; in-process, a mutex serialises changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use berth_types::reference::{Digest, Reference};
use serde::{Deserialize, Serialize};

use crate::blobs::{BlobStore, BlobWriter, TMP_PREFIX, random_suffix};
use crate::docs;
use crate::error::StoreError;
use crate::layers::{LayerMeta, LayerStore, LayerTemp};
use crate::unpack::{UnpackOptions, UnpackSummary, unpack_layer, unpack_layer_buffered};

/// Version of `images.json` this build writes and reads.
pub const STATE_VERSION: u32 = 1;
const STATE_FILE: &str = "images.json";

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The (possibly compressed) blob as distributed.
    pub blob: Digest,
    /// Its media type.
    pub media_type: String,
    /// The blob's size.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Chain id: the unpacked directory's name.
    pub chain_id: Digest,
}

/// One image, keyed by its id (the config digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image id: digest of the config blob.
    pub id: Digest,
    /// The manifest blob, when there is one in the store.
    pub manifest: Option<Digest>,
    /// The layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// Normalized tags (`docker.io/library/alpine:latest`).
    pub repo_tags: Vec<String>,
    /// Normalized digests it was pulled or pushed by (`docker.io/library/alpine@sha256:…`).
    pub repo_digests: Vec<String>,
    /// When the image entered the store (RFC 3339).
    pub added: String,
    /// When it was last tagged (RFC 3339).
    pub last_tag_time: Option<String>,
    /// Unpacked size: sum of the layers' regular-file bytes.
    pub size: u64,
    /// The image this one was built from, if known.
    #[serde(default)]
    pub parent: Option<Digest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    version: u32,
    images: BTreeMap<String, ImageRecord>,
    /// Repositories (`domain/path`) each blob was pulled from or pushed to; push uses
    /// it for cross-repository mounts.
    #[serde(default)]
    blob_sources: BTreeMap<String, BTreeSet<String>>,
}

impl Default for State {
    fn default() -> Self {
        State {
            version: STATE_VERSION,
            images: BTreeMap::new(),
            blob_sources: BTreeMap::new(),
        }
    }
}

/// Store settings.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Unpack settings (the decompression bomb cap).
    pub unpack: UnpackOptions,
}

#[derive(Default, Debug)]
pub(crate) struct LeaseSet {
    pub(crate) blobs: BTreeSet<Digest>,
    pub(crate) layers: BTreeSet<Digest>,
    pub(crate) images: BTreeSet<Digest>,
}

pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) blobs: BlobStore,
    pub(crate) layers: LayerStore,
    pub(crate) opts: StoreOptions,
    state: Mutex<State>,
    pub(crate) holds: Mutex<HashMap<Digest, BTreeSet<String>>>,
    pub(crate) leases: Mutex<HashMap<u64, LeaseSet>>,
    next_lease: AtomicU64,
    inflight: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

/// The image store. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.inner.root)
            .finish()
    }
}

/// Protects blobs, layers and images from GC while an operation is in flight.
/// Released when dropped.
#[derive(Debug)]
pub struct Lease {
    store: Weak<Inner>,
    id: u64,
}

impl Lease {
    fn with(&self, f: impl FnOnce(&mut LeaseSet)) {
        if let Some(inner) = self.store.upgrade() {
            let mut leases = lock(&inner.leases);
            if let Some(set) = leases.get_mut(&self.id) {
                f(set);
            }
        }
    }

    /// Protects a blob.
    pub fn add_blob(&self, d: &Digest) {
        self.with(|s| {
            s.blobs.insert(d.clone());
        });
    }

    /// Protects an unpacked layer.
    pub fn add_layer(&self, chain: &Digest) {
        self.with(|s| {
            s.layers.insert(chain.clone());
        });
    }

    /// Protects an image (and through it its blobs and layers).
    pub fn add_image(&self, id: &Digest) {
        self.with(|s| {
            s.images.insert(id.clone());
        });
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(inner) = self.store.upgrade() {
            lock(&inner.leases).remove(&self.id);
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Current time, RFC 3339 with nanoseconds (Docker's format).
pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// Writes a file atomically: temp file in the same dir, fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!("{TMP_PREFIX}{}", random_suffix()));
    let res = (|| -> io::Result<()> {
        let mut f = File::options().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map_err(StoreError::io("write", path))
}

/// What a layer to be ingested is expected to be.
#[derive(Debug, Clone)]
pub struct LayerSpec {
    /// The blob digest.
    pub blob: Digest,
    /// Its media type (drives decompression; magic bytes as fallback).
    pub media_type: String,
    /// The DiffID the config lists.
    pub diff_id: Digest,
    /// The chain id.
    pub chain_id: Digest,
    /// The chain id of the layer below.
    pub parent: Option<Digest>,
}

/// A reader that copies everything it reads into a blob writer (the download tee).
struct Tee<R> {
    inner: R,
    out: Option<BlobWriter>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(w) = self.out.as_mut() {
            w.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

impl ImageStore {
    /// Opens the store under `root`, creating it if needed, and removes temp files that a
    /// killed writer left behind.
    pub fn open(root: impl Into<PathBuf>, opts: StoreOptions) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(StoreError::io("create directory", &root))?;
        let blobs = BlobStore::open(&root)?;
        let layers = LayerStore::open(&root)?;
        blobs.clean_temp()?;
        layers.clean_temp()?;
        for e in fs::read_dir(&root).map_err(StoreError::io("read directory", &root))? {
            let e = e.map_err(StoreError::io("read directory", &root))?;
            if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let p = e.path();
                let r = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                r.map_err(StoreError::io("remove temp file", p))?;
            }
        }
        let spath = root.join(STATE_FILE);
        let state = match fs::read(&spath) {
            Ok(bytes) => {
                #[derive(Deserialize)]
                struct Version {
                    version: u32,
                }
                let v: Version =
                    serde_json::from_slice(&bytes).map_err(|source| StoreError::Metadata {
                        path: spath.clone(),
                        source,
                    })?;
                if v.version > STATE_VERSION {
                    return Err(StoreError::UnsupportedVersion {
                        path: spath,
                        found: v.version,
                        supported: STATE_VERSION,
                    });
                }
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Metadata {
                    path: spath.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
            Err(e) => {
                return Err(StoreError::Io {
                    op: "read",
                    path: spath,
                    source: e,
                });
            }
        };
        let store = ImageStore {
            inner: Arc::new(Inner {
                root,
                blobs,
                layers,
                opts,
                state: Mutex::new(state),
                holds: Mutex::new(HashMap::new()),
                leases: Mutex::new(HashMap::new()),
                next_lease: AtomicU64::new(1),
                inflight: Mutex::new(HashMap::new()),
            }),
        };
        // Reconcile: complete blobs and layers that a killed pull or load published but
        // no image references are garbage now (no lease survives a restart).
        store.gc()?;
        Ok(store)
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// The layer store.
    pub fn layers(&self) -> &LayerStore {
        &self.inner.layers
    }

    /// Starts a lease: what it names survives GC until it is dropped.
    pub fn lease(&self) -> Lease {
        let id = self.inner.next_lease.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.leases).insert(id, LeaseSet::default());
        Lease {
            store: Arc::downgrade(&self.inner),
            id,
        }
    }

    /// Registers that `owner` (e.g. a container id) uses image `id`; remove and prune
    /// refuse to delete it while any hold exists.
    pub fn hold_image(&self, id: &Digest, owner: &str) {
        lock(&self.inner.holds)
            .entry(id.clone())
            .or_default()
            .insert(owner.to_owned());
    }

    /// Drops a hold registered with [`ImageStore::hold_image`].
    pub fn release_image(&self, id: &Digest, owner: &str) {
        let mut holds = lock(&self.inner.holds);
        if let Some(set) = holds.get_mut(id) {
            set.remove(owner);
            if set.is_empty() {
                holds.remove(id);
            }
        }
    }

    /// The holders of an image, sorted.
    pub fn holders(&self, id: &Digest) -> Vec<String> {
        lock(&self.inner.holds)
            .get(id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A per-key async lock for in-flight dedup: concurrent pulls (or builds) that need
    /// the same blob or layer serialise on it, and the later ones find it present.
    pub fn inflight_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = lock(&self.inner.inflight);
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(m) = map.get(key).and_then(Weak::upgrade) {
            return m;
        }
        let m = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.to_owned(), Arc::downgrade(&m));
        m
    }

    fn persist(&self, state: &State) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| StoreError::Task(format!("serialize image metadata: {e}")))?;
        write_atomic(&self.inner.root.join(STATE_FILE), &bytes)
    }

    /// Applies a change to the metadata and persists it; the in-memory state changes only
    /// when the write succeeded.
    pub(crate) fn update<T>(
        &self,
        f: impl FnOnce(&mut StateView<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = lock(&self.inner.state);
        let mut copy = guard.clone();
        let out = f(&mut StateView { state: &mut copy })?;
        self.persist(&copy)?;
        *guard = copy;
        Ok(out)
    }

    /// Every image record.
    pub fn images(&self) -> Vec<ImageRecord> {
        lock(&self.inner.state).images.values().cloned().collect()
    }

    /// The repositories a blob is known to exist in.
    pub fn blob_sources(&self, blob: &Digest) -> Vec<String> {
        lock(&self.inner.state)
            .blob_sources
            .get(blob.as_str())
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Records that `blob` exists in repository `repo` (`domain/path`).
    pub fn add_blob_source(&self, blob: &Digest, repo: &str) -> Result<(), StoreError> {
        if lock(&self.inner.state)
            .blob_sources
            .get(blob.as_str())
            .is_some_and(|s| s.contains(repo))
        {
            return Ok(());
        }
        self.update(|s| {
            s.state
                .blob_sources
                .entry(blob.to_string())
                .or_default()
                .insert(repo.to_owned());
            Ok(())
        })
    }

    /// Records that every blob of `blobs` exists in repository `repo`, in one metadata
    /// write (a pull's config and layers).
    pub fn add_blob_sources(&self, blobs: &[Digest], repo: &str) -> Result<(), StoreError> {
        let missing: Vec<&Digest> = {
            let state = lock(&self.inner.state);
            blobs
                .iter()
                .filter(|b| {
                    !state
                        .blob_sources
                        .get(b.as_str())
                        .is_some_and(|s| s.contains(repo))
                })
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        self.update(|s| {
            for b in missing {
                s.state
                    .blob_sources
                    .entry(b.to_string())
                    .or_default()
                    .insert(repo.to_owned());
            }
            Ok(())
        })
    }

    /// Finds an image by reference (`alpine`, `alpine:3`, `name@sha256:…`), full id
    /// (`sha256:…` or bare hex) or unique id prefix.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord, StoreError> {
        let state = lock(&self.inner.state);
        resolve_in(&state, name)
    }

    /// The config JSON of an image.
    pub fn config(&self, id: &Digest) -> Result<serde_json::Value, StoreError> {
        let bytes = self.inner.blobs.read(id)?;
        docs::parse_config(&bytes, id)
    }

    /// The overlay lowerdirs of an image, top layer first (as overlayfs wants them).
    pub fn lowerdirs(&self, name: &str) -> Result<Vec<PathBuf>, StoreError> {
        let rec = self.resolve(name)?;
        Ok(rec
            .layers
            .iter()
            .rev()
            .map(|l| self.inner.layers.diff_path(&l.chain_id))
            .collect())
    }

    /// Unpacks a layer from a stream that is also being written as its blob (unless the
    /// blob is already stored), all in one pass; verifies the blob digest and the
    /// DiffID. On any failure nothing is published. Blocking: run off the async runtime.
    pub fn ingest_layer(
        &self,
        reader: impl Read + Send,
        spec: &LayerSpec,
        lease: &Lease,
    ) -> Result<LayerMeta, StoreError> {
        lease.add_blob(&spec.blob);
        lease.add_layer(&spec.chain_id);
        let blobs = &self.inner.blobs;
        let layers = &self.inner.layers;
        let have_blob = blobs.contains(&spec.blob);
        if have_blob && layers.contains(&spec.chain_id) {
            return layers.meta(&spec.chain_id);
        }
        let writer = if have_blob {
            None
        } else {
            Some(blobs.writer()?)
        };
        let mut tee = Tee {
            inner: reader,
            out: writer,
        };
        let (tmp, summary) =
            self.unpack_temp(io::BufReader::with_capacity(256 << 10, &mut tee), spec)?;
        if let Some(w) = tee.out.take() {
            w.commit(Some(&spec.blob))?;
        }
        self.publish_layer(tmp, &summary, spec)
    }

    /// Unpacks a layer stream into a temp layer directory and reads the stream to its
    /// end (so a tee'd digest covers all of it). Nothing is published.
    pub(crate) fn unpack_temp(
        &self,
        mut reader: impl io::BufRead + Send,
        spec: &LayerSpec,
    ) -> Result<(LayerTemp, UnpackSummary), StoreError> {
        let tmp = self.inner.layers.begin(&spec.chain_id)?;
        let unpacked = unpack_layer_buffered(
            &mut reader,
            Some(&spec.media_type),
            &tmp.diff(),
            &self.inner.opts.unpack,
        );
        let drained = io::copy(&mut reader, &mut io::sink());
        match (unpacked, drained) {
            (Ok(s), Ok(_)) => Ok((tmp, s)),
            (Err(e), _) => Err(StoreError::Unpack {
                digest: spec.blob.clone(),
                source: e,
            }),
            (Ok(_), Err(e)) => Err(StoreError::BlobStream {
                digest: spec.blob.clone(),
                source: e,
            }),
        }
    }

    /// Verifies the DiffID of an unpacked temp layer and renames it into place.
    pub(crate) fn publish_layer(
        &self,
        tmp: LayerTemp,
        summary: &UnpackSummary,
        spec: &LayerSpec,
    ) -> Result<LayerMeta, StoreError> {
        let layers = &self.inner.layers;
        let actual = Digest::parse(&summary.diff_id)?;
        if actual != spec.diff_id {
            return Err(StoreError::DiffIdMismatch {
                digest: spec.blob.clone(),
                expected: spec.diff_id.clone(),
                actual,
            });
        }
        let meta = LayerMeta {
            version: 1,
            chain_id: spec.chain_id.clone(),
            diff_id: actual,
            parent: spec.parent.clone(),
            size: summary.content_bytes,
            tar_size: summary.tar_bytes,
        };
        if layers.contains(&spec.chain_id) {
            return layers.meta(&spec.chain_id);
        }
        tmp.commit(&meta)?;
        Ok(meta)
    }

    /// Unpacks a stored blob whose DiffID is not known in advance (load, import): the
    /// chain id is computed from what it unpacks to. Returns the layer and its compression.
    pub fn unpack_blob(
        &self,
        blob: &Digest,
        parent: Option<&Digest>,
        lease: &Lease,
    ) -> Result<(LayerMeta, crate::unpack::Compression), StoreError> {
        lease.add_blob(blob);
        let f = self.inner.blobs.open_blob(blob)?;
        let tmp = self.inner.layers.begin(blob)?;
        let summary = unpack_layer(
            io::BufReader::new(f),
            None,
            &tmp.diff(),
            &self.inner.opts.unpack,
        )
        .map_err(|e| StoreError::Unpack {
            digest: blob.clone(),
            source: e,
        })?;
        let diff_id = Digest::parse(&summary.diff_id)?;
        let chain = crate::layers::chain_id(parent, &diff_id);
        lease.add_layer(&chain);
        if self.inner.layers.contains(&chain) {
            return Ok((self.inner.layers.meta(&chain)?, summary.compression));
        }
        let meta = LayerMeta {
            version: 1,
            chain_id: chain.clone(),
            diff_id,
            parent: parent.cloned(),
            size: summary.content_bytes,
            tar_size: summary.tar_bytes,
        };
        tmp.commit_as(&self.inner.layers.layer_dir(&chain), &meta)?;
        Ok((meta, summary.compression))
    }

    /// Unpacks a layer from a blob already in the store.
    pub fn unpack_stored_layer(
        &self,
        spec: &LayerSpec,
        lease: &Lease,
    ) -> Result<LayerMeta, StoreError> {
        lease.add_blob(&spec.blob);
        lease.add_layer(&spec.chain_id);
        if self.inner.layers.contains(&spec.chain_id) {
            return self.inner.layers.meta(&spec.chain_id);
        }
        let f = self.inner.blobs.open_blob(&spec.blob)?;
        self.ingest_layer(io::BufReader::new(f), spec, lease)
    }

    /// Records an image whose config, layers (and manifest) are in the store. `tags` move
    /// to this image from any image that had them.
    pub fn commit_image(
        &self,
        id: &Digest,
        manifest: Option<Digest>,
        layers: Vec<LayerRecord>,
        tags: &[Reference],
        repo_digest: Option<String>,
        lease: &Lease,
    ) -> Result<ImageRecord, StoreError> {
        lease.add_image(id);
        let mut size = 0;
        for l in &layers {
            size += self.inner.layers.meta(&l.chain_id)?.size;
        }
        let now = now_rfc3339();
        self.update(|s| {
            let tag_strings: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
            for t in &tag_strings {
                s.untag_everywhere(t);
            }
            let rec = s
                .state
                .images
                .entry(id.to_string())
                .or_insert_with(|| ImageRecord {
                    id: id.clone(),
                    manifest: manifest.clone(),
                    layers: layers.clone(),
                    repo_tags: Vec::new(),
                    repo_digests: Vec::new(),
                    added: now.clone(),
                    last_tag_time: None,
                    size,
                    parent: None,
                });
            if rec.manifest.is_none() {
                rec.manifest = manifest.clone();
            }
            for t in tag_strings {
                if !rec.repo_tags.contains(&t) {
                    rec.repo_tags.push(t);
                }
                rec.last_tag_time = Some(now.clone());
            }
            if let Some(rd) = repo_digest
                && !rec.repo_digests.contains(&rd)
            {
                rec.repo_digests.push(rd);
            }
            Ok(rec.clone())
        })
    }
}

/// Mutable access to the metadata inside [`ImageStore::update`].
pub(crate) struct StateView<'a> {
    state: &'a mut State,
}

impl StateView<'_> {
    pub(crate) fn untag_everywhere(&mut self, tag: &str) {
        for rec in self.state.images.values_mut() {
            rec.repo_tags.retain(|t| t != tag);
        }
    }

    pub(crate) fn image_mut(&mut self, id: &Digest) -> Option<&mut ImageRecord> {
        self.state.images.get_mut(id.as_str())
    }

    pub(crate) fn remove_image(&mut self, id: &Digest) -> Option<ImageRecord> {
        self.state.images.remove(id.as_str())
    }

    pub(crate) fn resolve(&self, name: &str) -> Result<ImageRecord, StoreError> {
        resolve_in(self.state, name)
    }

    pub(crate) fn forget_blob_sources(&mut self, keep: &BTreeSet<Digest>) {
        self.state
            .blob_sources
            .retain(|k, _| keep.iter().any(|d| d.as_str() == k));
    }
}

fn resolve_in(state: &State, name: &str) -> Result<ImageRecord, StoreError> {
    let not_found = || StoreError::ImageNotFound(name.to_owned());
    // Full id.
    let as_id = if name.starts_with("sha256:") {
        Some(name.to_owned())
    } else {
        None
    };
    if let Some(id) = &as_id
        && let Some(r) = state.images.get(id)
    {
        return Ok(r.clone());
    }
    // Reference.
    if let Ok(r) = Reference::parse(name) {
        if let Some(d) = r.digest() {
            let want = format!("{}@{}", r.name(), d);
            if let Some(rec) = state
                .images
                .values()
                .find(|i| i.repo_digests.contains(&want))
            {
                return Ok(rec.clone());
            }
        } else {
            let want = r.to_string();
            if let Some(rec) = state.images.values().find(|i| i.repo_tags.contains(&want)) {
                return Ok(rec.clone());
            }
        }
    }
    // Id prefix (bare hex or sha256:prefix).
    let prefix = name.strip_prefix("sha256:").unwrap_or(name);
    if prefix.is_empty()
        || !prefix
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    {
        return Err(not_found());
    }
    let matches: Vec<&ImageRecord> = state
        .images
        .values()
        .filter(|i| i.id.hex().starts_with(prefix))
        .collect();
    match matches.len() {
        0 => Err(not_found()),
        1 => Ok(matches[0].clone()),
        count => Err(StoreError::AmbiguousId {
            prefix: name.to_owned(),
            count,
        }),
    }
}
