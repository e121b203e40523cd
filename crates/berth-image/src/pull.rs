//! `pull` (and `pull -a`) from a registry.
//!
//! Per layer, one pass: the async download stream feeds a bounded channel; a blocking
//! thread reads it, tees every byte into the blob's temp file (hashing it) and through
//! the decompressor into the tar extractor. Layers run in parallel, each on its own
//! blocking thread. Concurrent pulls of the same layer serialise on an in-flight lock
//! and the later ones find it present, so each layer is downloaded once. On any failure
//! the pull's lease is dropped and what it published is collected: the store is as
//! before.

use std::io::{self, BufRead, Read};
use std::sync::Arc;

use berth_registry::{Client, Descriptor as RegDescriptor, Platform as RegPlatform, Progress};
use berth_types::reference::{Digest, Reference};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::docs::{self, Platform};
use crate::error::StoreError;
use crate::layers::chain_ids;
use crate::store::{ImageStore, LayerRecord, LayerSpec, Lease};

/// The platform of this machine in OCI spelling (`linux/amd64`, `linux/arm64`).
pub fn host_platform() -> Platform {
    let p = RegPlatform::host();
    Platform {
        architecture: p.architecture,
        os: p.os,
        variant: p.variant,
    }
}

/// What a pull stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The reference pulled (normalized).
    pub reference: Reference,
    /// The image id.
    pub id: Digest,
    /// The digest it was pulled by (the index's when the tag named a list).
    pub digest: Digest,
}

/// Batches of download chunks buffered towards each of the blob and unpack threads.
const DOWNLOAD_BATCHES_IN_FLIGHT: usize = 32;

/// The most network chunks handed over in one batch: the chunks that arrived together
/// travel as one message, so a fast download does not cost two channel messages and two
/// thread wake-ups per 8-16 KiB chunk.
const DOWNLOAD_BATCH: usize = 16;

/// A blob being stored on a blocking task.
type StoreTask = tokio::task::JoinHandle<Result<(), StoreError>>;

/// The most download bytes between two progress reports.
const PROGRESS_STEP_MAX: u64 = 512 << 10;

/// Chunks of a download, read synchronously by the unpack thread.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Vec<Bytes>>>,
    /// The rest of the current batch, in reverse order (popped from the end).
    batch: Vec<Bytes>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = {
            let cur = self.fill_buf()?;
            let n = buf.len().min(cur.len());
            buf[..n].copy_from_slice(&cur[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

/// The decompressor reads the download's chunks in place.
impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.cur.is_empty() {
            if let Some(b) = self.batch.pop() {
                self.cur = b;
                continue;
            }
            match self.rx.blocking_recv() {
                Some(Ok(mut batch)) => {
                    batch.reverse();
                    self.batch = batch;
                }
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(&self.cur)
    }

    fn consume(&mut self, n: usize) {
        let _ = self.cur.split_to(n.min(self.cur.len()));
    }
}

fn reg_desc(media_type: &str, digest: &Digest, size: u64) -> RegDescriptor {
    RegDescriptor {
        media_type: media_type.to_owned(),
        digest: digest.clone(),
        size,
        urls: Vec::new(),
        annotations: Default::default(),
        platform: None,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

/// Runs `f` on a new thread named `name` (so profiles and `top -H` tell the pull's threads
/// apart); its result arrives on the returned channel.
fn spawn_named<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<tokio::sync::oneshot::Receiver<T>, StoreError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| StoreError::Task(format!("spawn {name} thread: {e}")))?;
    Ok(rx)
}

/// The blob file's end of a download: every chunk hashed and written, in writes of at
/// least [`BLOB_WRITE_MIN`] bytes (network chunks are often 8-16 KiB: one write each
/// cost a syscall per chunk).
fn write_blob(
    blobs: &crate::blobs::BlobStore,
    mut batches: mpsc::Receiver<Vec<Bytes>>,
) -> Result<crate::blobs::BlobWriter, StoreError> {
    let mut w = blobs.writer()?;
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_len = 0;
    loop {
        let next = batches.blocking_recv();
        let end = next.is_none();
        for b in next.into_iter().flatten() {
            pending_len += b.len();
            pending.push(b);
        }
        if pending_len >= BLOB_WRITE_MIN || (end && pending_len > 0) {
            w.write_chunks(&pending).map_err(|e| StoreError::Io {
                op: "write temp blob",
                path: w.temp_path().to_owned(),
                source: e,
            })?;
            pending.clear();
            pending_len = 0;
        }
        if end {
            return Ok(w);
        }
    }
}

/// The least a blob write carries (see [`write_blob`]).
const BLOB_WRITE_MIN: usize = 256 << 10;

impl ImageStore {
    /// `docker pull`: resolves `reference` for `platform`, fetches config and layers (each
    /// once, verified, unpacked while downloading) and tags the image.
    pub async fn pull(
        &self,
        client: &Client,
        reference: &Reference,
        platform: &RegPlatform,
        progress: Arc<dyn Progress>,
    ) -> Result<Pulled, StoreError> {
        let resolved = client.resolve(reference, platform).await?;
        self.pull_resolved(client, reference, resolved, progress)
            .await
    }

    /// [`ImageStore::pull`] of a reference the caller has already resolved (the engine
    /// resolves first to report a missing image as a typed error before any progress).
    pub async fn pull_resolved(
        &self,
        client: &Client,
        reference: &Reference,
        resolved: berth_registry::Resolved,
        progress: Arc<dyn Progress>,
    ) -> Result<Pulled, StoreError> {
        let lease = Arc::new(self.lease());
        let hold = self.layers().trash().hold();
        let res = self
            .pull_inner(client, reference, resolved, progress, &lease)
            .await;
        drop(hold);
        if res.is_err() {
            drop(lease);
            // Collect whatever this pull published but no image references.
            // Waits for the trash too: when a failed pull returns, the store is as before.
            let s = self.clone();
            let _ = blocking(move || {
                let r = s.gc().map(|_| ());
                s.layers().trash().wait_idle();
                r
            })
            .await;
        }
        res
    }

    /// `docker pull -a`: every tag of the repository.
    pub async fn pull_all_tags(
        &self,
        client: &Client,
        repository: &Reference,
        platform: &RegPlatform,
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<Pulled>, StoreError> {
        let tags = client.tags(&repository.repository()).await?;
        let mut out = Vec::new();
        for t in tags {
            let r = repository.repository().with_tag(&t)?;
            out.push(self.pull(client, &r, platform, progress.clone()).await?);
        }
        Ok(out)
    }

    /// Fetches a small blob (the config), verified, and returns its bytes at once; storing
    /// it (fsync, rename) runs on a blocking task that the caller joins before committing,
    /// so the layers need not wait for the disk.
    async fn fetch_small_blob(
        &self,
        client: &Client,
        reference: &Reference,
        desc: &RegDescriptor,
        lease: &Lease,
    ) -> Result<(Vec<u8>, StoreTask), StoreError> {
        lease.add_blob(&desc.digest);
        let lock = self.inflight_lock(&format!("blob {}", desc.digest));
        let guard = lock.lock_owned().await;
        if self.blobs().contains(&desc.digest) {
            let s = self.clone();
            let d = desc.digest.clone();
            let bytes = blocking(move || s.blobs().read(&d)).await?;
            return Ok((bytes, tokio::task::spawn_blocking(|| Ok(()))));
        }
        let mut stream = client.get_blob_unverified(reference, desc, 0).await?;
        let mut buf = Vec::with_capacity(desc.size as usize);
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        let actual = Digest::sha256(&buf);
        if actual != desc.digest {
            return Err(StoreError::DigestMismatch {
                expected: desc.digest.clone(),
                actual,
            });
        }
        let s = self.clone();
        let bytes = buf.clone();
        let stored = tokio::task::spawn_blocking(move || {
            // Concurrent pulls of this blob wait until it is stored, then find it.
            let _guard = guard;
            s.blobs().put(&bytes).map(|_| ())
        });
        Ok((buf, stored))
    }

    async fn pull_inner(
        &self,
        client: &Client,
        reference: &Reference,
        resolved: berth_registry::Resolved,
        progress: Arc<dyn Progress>,
        lease: &Arc<Lease>,
    ) -> Result<Pulled, StoreError> {
        let (config_bytes, config_stored) = self
            .fetch_small_blob(client, reference, &resolved.config, lease)
            .await?;
        let id = resolved.config.digest.clone();
        lease.add_image(&id);
        lease.add_blob(&resolved.manifest_digest);
        let s = self.clone();
        let (manifest, expected) = (
            resolved.manifest_bytes.clone(),
            resolved.manifest_digest.clone(),
        );
        let manifest_stored = tokio::task::spawn_blocking(move || {
            let md = s.blobs().put(&manifest)?;
            if md != expected {
                return Err(StoreError::DigestMismatch {
                    expected,
                    actual: md,
                });
            }
            Ok(())
        });
        let layers = self
            .pull_layers(
                client,
                reference,
                &resolved,
                &config_bytes,
                &id,
                progress,
                lease,
            )
            .await;
        // Both stores finish before anything returns: a failed pull's GC must see them.
        let config_stored = config_stored
            .await
            .map_err(|e| StoreError::Task(e.to_string()));
        let manifest_stored = manifest_stored
            .await
            .map_err(|e| StoreError::Task(e.to_string()));
        let layers = layers?;
        config_stored??;
        manifest_stored??;
        let pinned = resolved
            .index_digest
            .clone()
            .unwrap_or(resolved.manifest_digest.clone());
        let tags: Vec<Reference> = if reference.tag().is_some() {
            vec![
                reference
                    .repository()
                    .with_tag(reference.tag().unwrap_or("latest"))?,
            ]
        } else {
            vec![]
        };
        let repo_digest = format!("{}@{}", reference.name(), pinned);
        let s = self.clone();
        let lease2 = lease.clone();
        let id2 = id.clone();
        let manifest = resolved.manifest_digest.clone();
        blocking(move || {
            s.commit_image(
                &id2,
                Some(manifest),
                layers,
                &tags,
                Some(repo_digest),
                &lease2,
            )
        })
        .await?;
        let repo = reference.name();
        let mut sourced = vec![id.clone()];
        sourced.extend(resolved.layers.iter().map(|l| l.digest.clone()));
        let s = self.clone();
        blocking(move || s.add_blob_sources(&sourced, &repo)).await?;
        Ok(Pulled {
            reference: reference.clone(),
            id,
            digest: pinned,
        })
    }

    /// Pulls every layer of a resolved image in parallel.
    #[allow(clippy::too_many_arguments)]
    async fn pull_layers(
        &self,
        client: &Client,
        reference: &Reference,
        resolved: &berth_registry::Resolved,
        config_bytes: &[u8],
        id: &Digest,
        progress: Arc<dyn Progress>,
        lease: &Arc<Lease>,
    ) -> Result<Vec<LayerRecord>, StoreError> {
        let config = docs::parse_config(config_bytes, id)?;
        let diff_ids = docs::diff_ids(&config, id)?;
        if diff_ids.len() != resolved.layers.len() {
            return Err(StoreError::BadDocument {
                what: format!("image config {id}"),
                reason: format!(
                    "{} diff ids for {} manifest layers",
                    diff_ids.len(),
                    resolved.layers.len()
                ),
            });
        }
        let chains = chain_ids(&diff_ids);
        let jobs = resolved.layers.iter().enumerate().map(|(i, desc)| {
            let spec = LayerSpec {
                blob: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                diff_id: diff_ids[i].clone(),
                chain_id: chains[i].clone(),
                parent: if i == 0 {
                    None
                } else {
                    Some(chains[i - 1].clone())
                },
            };
            self.pull_layer(
                client,
                reference,
                desc.clone(),
                spec,
                progress.clone(),
                lease.clone(),
            )
        });
        futures_util::future::try_join_all(jobs).await
    }

    async fn pull_layer(
        &self,
        client: &Client,
        reference: &Reference,
        desc: RegDescriptor,
        spec: LayerSpec,
        progress: Arc<dyn Progress>,
        lease: Arc<Lease>,
    ) -> Result<LayerRecord, StoreError> {
        lease.add_blob(&spec.blob);
        lease.add_layer(&spec.chain_id);
        let record = LayerRecord {
            blob: spec.blob.clone(),
            media_type: spec.media_type.clone(),
            size: desc.size,
            diff_id: spec.diff_id.clone(),
            chain_id: spec.chain_id.clone(),
        };
        let lock = self.inflight_lock(&format!("layer {}", spec.chain_id));
        let _g = lock.lock().await;
        if self.layers().contains(&spec.chain_id) && self.blobs().contains(&spec.blob) {
            progress.done(&spec.blob, true);
            return Ok(record);
        }
        if self.blobs().contains(&spec.blob) {
            let s = self.clone();
            let l = lease.clone();
            let sp = spec.clone();
            blocking(move || s.unpack_stored_layer(&sp, &l)).await?;
            progress.done(&spec.blob, true);
            return Ok(record);
        }
        // The blob writer hashes every byte and the digest is checked below: the client
        // need not hash the stream a second time.
        let mut stream = client
            .get_blob_unverified(
                reference,
                &reg_desc(&desc.media_type, &desc.digest, desc.size),
                0,
            )
            .await?
            .ready_chunks(DOWNLOAD_BATCH);
        progress.start(&spec.blob, desc.size, 0);
        let started = std::time::Instant::now();
        // Fan out: the blob file (hash + write) and the unpacker (inflate + untar) each
        // get every chunk on their own thread, so they run on both cores.
        // Network chunks are small (often 8-16 KiB): room for a few MiB in flight so a
        // slow file system write never stalls the download.
        let (tx, rx) = mpsc::channel::<io::Result<Vec<Bytes>>>(DOWNLOAD_BATCHES_IN_FLIGHT);
        let (btx, brx) = mpsc::channel::<Vec<Bytes>>(DOWNLOAD_BATCHES_IN_FLIGHT);
        let s = self.clone();
        let sp = spec.clone();
        let worker = tokio::task::spawn_blocking(move || {
            s.unpack_temp(
                ChannelReader {
                    rx,
                    batch: Vec::new(),
                    cur: Bytes::new(),
                },
                &sp,
            )
        });
        let blobs = self.blobs().clone();
        let blob_worker = spawn_named("berth-blob", move || write_blob(&blobs, brx))?;
        let mut fetch_err = None;
        // Progress every 1% or 512 KiB, whichever is less (as Docker's progress reader):
        // a message per network chunk costs the daemon, the API and the client more than
        // the bytes it reports.
        let step = (desc.size / 100).clamp(1, PROGRESS_STEP_MAX);
        let mut unreported = 0u64;
        while let Some(results) = stream.next().await {
            // The chunks that arrived together, up to the first error.
            let mut batch = Vec::with_capacity(results.len());
            let mut failed = None;
            for r in results {
                match r {
                    Ok(b) => batch.push(b),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if !batch.is_empty() {
                unreported += batch.iter().map(|b| b.len() as u64).sum::<u64>();
                if unreported >= step {
                    progress.bytes(&spec.blob, unreported);
                    unreported = 0;
                }
                if btx.send(batch.clone()).await.is_err() || tx.send(Ok(batch)).await.is_err() {
                    break; // a worker failed; its error is reported below
                }
            }
            if let Some(e) = failed {
                let msg = e.to_string();
                fetch_err = Some(e);
                let _ = tx.send(Err(io::Error::other(msg))).await;
                break;
            }
        }
        if unreported > 0 {
            progress.bytes(&spec.blob, unreported);
        }
        drop(tx);
        drop(btx);
        let downloaded = started.elapsed();
        let unpacked = worker.await.map_err(|e| StoreError::Task(e.to_string()))?;
        let blob = blob_worker
            .await
            .map_err(|_| StoreError::Task("blob writer thread panicked".into()))?;
        let streamed = started.elapsed();
        if let Some(e) = fetch_err {
            return Err(StoreError::BlobStream {
                digest: spec.blob.clone(),
                source: io::Error::other(e.to_string()),
            });
        }
        let blob = blob?;
        // A complete blob with the wrong digest is reported as such, whatever the unpacker
        // made of it; an incomplete one means the unpacker stopped the download early and
        // its error says why.
        if blob.written() == desc.size {
            let actual = blob.digest();
            if actual != spec.blob {
                return Err(StoreError::DigestMismatch {
                    expected: spec.blob.clone(),
                    actual,
                });
            }
        }
        let (tmp, summary) = unpacked?;
        blob.commit(Some(&spec.blob))?;
        let blob_committed = started.elapsed();
        let s = self.clone();
        let sp = spec.clone();
        blocking(move || s.publish_layer(tmp, &summary, &sp)).await?;
        tracing::debug!(
            blob = %spec.blob,
            size = desc.size,
            ?downloaded,
            ?streamed,
            ?blob_committed,
            published = ?started.elapsed(),
            "layer pulled"
        );
        progress.done(&spec.blob, false);
        Ok(record)
    }
}
