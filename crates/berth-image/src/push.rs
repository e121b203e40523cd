//! `push`: every blob is checked with HEAD first, mounted from another repository of the
//! same registry when the store knows it is there, uploaded otherwise; then the manifest
//! is put by tag.

use std::sync::Arc;

use berth_registry::{BlobSource, Client, Descriptor as RegDescriptor, Progress};
use berth_types::reference::{Digest, Reference};
use bytes::Bytes;

use crate::error::StoreError;
use crate::store::ImageStore;

/// What a push did with one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    /// The registry already had it.
    Exists,
    /// Mounted from another repository of the registry.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest digest the registry stored.
    pub digest: Digest,
    /// Per blob (config first, then layers): what happened.
    pub blobs: Vec<(Digest, BlobPush)>,
}

impl ImageStore {
    /// `docker push`: pushes the image tagged `reference` to its registry.
    pub async fn push(
        &self,
        client: &Client,
        reference: &Reference,
        progress: Arc<dyn Progress>,
    ) -> Result<Pushed, StoreError> {
        let rec = self.resolve(&reference.to_string())?;
        let lease = self.lease();
        lease.add_image(&rec.id);
        let (_, mbytes, mtype) = self.manifest_for(&rec)?;
        let m = crate::docs::parse_manifest(&mbytes, "stored manifest")?;
        let mut blobs = vec![(
            m.config.media_type.clone(),
            m.config.digest.clone(),
            m.config.size,
        )];
        blobs.extend(
            m.layers
                .iter()
                .map(|l| (l.media_type.clone(), l.digest.clone(), l.size)),
        );
        let target = reference.name();
        let mut report = Vec::new();
        for (mt, digest, size) in blobs {
            lease.add_blob(&digest);
            let desc = RegDescriptor {
                media_type: mt,
                digest: digest.clone(),
                size,
                urls: Vec::new(),
                annotations: Default::default(),
                platform: None,
            };
            if client.blob_exists(reference, &digest).await? {
                progress.done(&digest, true);
                report.push((digest, BlobPush::Exists));
                continue;
            }
            let mut mounted = false;
            for src in self.blob_sources(&digest) {
                if src == target {
                    continue;
                }
                if let Some(path) = src.strip_prefix(&format!("{}/", reference.domain()))
                    && client.mount_blob(reference, &digest, path).await?
                {
                    mounted = true;
                    break;
                }
            }
            if mounted {
                progress.done(&digest, true);
                report.push((digest.clone(), BlobPush::Mounted));
            } else {
                let path = self.blobs().path(&digest);
                if !path.is_file() {
                    return Err(StoreError::BlobMissing(digest));
                }
                client
                    .push_blob(reference, &desc, BlobSource::File(path), progress.clone())
                    .await?;
                report.push((digest.clone(), BlobPush::Uploaded));
            }
            self.add_blob_source(&digest, &target)?;
        }
        let digest = client
            .put_manifest(reference, &mtype, Bytes::from(mbytes))
            .await?;
        let rd = format!("{target}@{digest}");
        let id = rec.id.clone();
        self.update(|s| {
            if let Some(r) = s.image_mut(&id)
                && !r.repo_digests.contains(&rd)
            {
                r.repo_digests.push(rd.clone());
            }
            Ok(())
        })?;
        Ok(Pushed {
            digest,
            blobs: report,
        })
    }
}
