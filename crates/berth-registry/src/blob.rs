use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use berth_types::reference::{Digest, Reference};
use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt as _};
use reqwest::header;
use reqwest::{StatusCode, Url};
use sha2::Digest as _;

use crate::client::{Client, Endpoint, pull_scope, push_scope};
use crate::error::{Error, Result};
use crate::manifest::Descriptor;
use crate::progress::Progress;

/// How often a blob download re-opens (with Range) after the connection broke mid-body.
const RESUMES: u32 = 5;

/// A blob download: a stream of chunks from `offset()` to the end, `len()` bytes in all.
///
/// A broken connection is resumed transparently with a Range request (with backoff). When
/// the download starts at offset 0 the stream verifies size and digest and yields
/// [`Error::DigestMismatch`] / [`Error::SizeMismatch`] as its last item instead of ending;
/// with a non-zero offset it checks the size and the caller, who holds the prefix, verifies
/// the digest.
pub struct BlobStream {
    total: u64,
    offset: u64,
    inner: BoxStream<'static, Result<Bytes>>,
}

impl BlobStream {
    /// The blob's full size.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Where this stream starts within the blob.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("total", &self.total)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// What `push_blob` uploads.
pub enum BlobSource {
    Bytes(Bytes),
    File(PathBuf),
    Stream(BoxStream<'static, std::io::Result<Bytes>>),
}

impl std::fmt::Debug for BlobSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "BlobSource::Bytes({} bytes)", b.len()),
            Self::File(p) => write!(f, "BlobSource::File({p:?})"),
            Self::Stream(_) => f.write_str("BlobSource::Stream"),
        }
    }
}

impl BlobSource {
    async fn into_stream(self) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
        Ok(match self {
            Self::Bytes(b) => futures_util::stream::once(async move { Ok(b) }).boxed(),
            Self::File(p) => {
                let f = tokio::fs::File::open(&p)
                    .await
                    .map_err(|source| Error::Io { path: p, source })?;
                tokio_util::io::ReaderStream::with_capacity(f, 256 << 10).boxed()
            }
            Self::Stream(s) => s,
        })
    }
}

struct Download {
    client: Client,
    ep: Endpoint,
    path: String,
    desc: Descriptor,
    pos: u64,
    /// Bytes still to drop because a server answered a Range request with the whole blob.
    skip: u64,
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    hasher: Option<sha2::Sha256>,
    resumes_left: u32,
    done: bool,
}

impl Client {
    /// Opens the blob at `ep` from byte `pos`.
    async fn open_blob(
        &self,
        ep: &Endpoint,
        path: &str,
        desc: &Descriptor,
        pos: u64,
    ) -> Result<(BoxStream<'static, reqwest::Result<Bytes>>, u64)> {
        let url = Self::url(ep, &format!("{path}/blobs/{}", desc.digest))?;
        let resp = self
            .send(ep, &pull_scope(path), &url, true, &|c, u| {
                let r = c.get(u.clone());
                if pos > 0 {
                    r.header(header::RANGE, format!("bytes={pos}-"))
                } else {
                    r
                }
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(Error::NotFound {
                what: format!("blob {} in {path} at {}", desc.digest, ep.base),
            });
        }
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            return Err(Error::SizeMismatch {
                what: format!("blob {} (range from {pos})", desc.digest),
                expected: desc.size,
                actual: pos,
            });
        }
        if !status.is_success() {
            return Err(Error::Status {
                method: "GET".into(),
                url: url.to_string(),
                status: status.as_u16(),
                body: resp.text().await.unwrap_or_default(),
            });
        }
        // 206: the body starts at `pos`; 200: the server ignored Range, skip the prefix.
        let skip = if status == StatusCode::PARTIAL_CONTENT {
            0
        } else {
            pos
        };
        Ok((resp.bytes_stream().boxed(), skip))
    }

    /// Streams blob `desc` of the reference's repository from byte `offset` (Range), trying
    /// mirrors first. See [`BlobStream`] for verification and resume.
    pub async fn get_blob(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        offset: u64,
    ) -> Result<BlobStream> {
        self.get_blob_checked(reference, desc, offset, true).await
    }

    /// Like [`Client::get_blob`], but the stream checks only the size, not the digest: for a
    /// caller that hashes every byte it keeps anyway (the image store's blob writer) and
    /// verifies the digest itself, so the content is not hashed twice.
    pub async fn get_blob_unverified(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        offset: u64,
    ) -> Result<BlobStream> {
        self.get_blob_checked(reference, desc, offset, false).await
    }

    async fn get_blob_checked(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        offset: u64,
        verify: bool,
    ) -> Result<BlobStream> {
        if offset > desc.size {
            return Err(Error::SizeMismatch {
                what: format!("blob {} (offset beyond its end)", desc.digest),
                expected: desc.size,
                actual: offset,
            });
        }
        let path = reference.path().to_owned();
        let (ep, body, skip) = self
            .on_pull_endpoints(reference.domain(), |ep| {
                let path = path.clone();
                async move {
                    let (body, skip) = self.open_blob(&ep, &path, desc, offset).await?;
                    Ok((ep, body, skip))
                }
            })
            .await?;
        let state = Download {
            client: self.clone(),
            ep,
            path,
            desc: desc.clone(),
            pos: offset,
            skip,
            body: Some(body),
            hasher: (verify && offset == 0 && desc.digest.algorithm() == "sha256")
                .then(sha2::Sha256::new),
            resumes_left: RESUMES,
            done: false,
        };
        Ok(BlobStream {
            total: desc.size,
            offset,
            inner: futures_util::stream::unfold(state, next_chunk).boxed(),
        })
    }

    /// Whether the reference's repository has blob `digest` (`HEAD`).
    pub async fn blob_exists(&self, reference: &Reference, digest: &Digest) -> Result<bool> {
        let ep = self.origin(reference.domain()).await?;
        let url = Self::url(&ep, &format!("{}/blobs/{digest}", reference.path()))?;
        let resp = self
            .send(&ep, &push_scope(reference.path()), &url, true, &|c, u| {
                c.head(u.clone())
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(Error::Status {
                method: "HEAD".into(),
                url: url.to_string(),
                status: s.as_u16(),
                body: String::new(),
            }),
        }
    }

    /// Asks the registry to mount `digest` from repository path `from_repo` (same registry)
    /// into the reference's repository. True when mounted; false when the registry started
    /// an ordinary upload instead (that upload is cancelled; push the blob then).
    pub async fn mount_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        from_repo: &str,
    ) -> Result<bool> {
        let ep = self.origin(reference.domain()).await?;
        let mut url = Self::url(&ep, &format!("{}/blobs/uploads/", reference.path()))?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from_repo);
        let scope = format!(
            "{} repository:{from_repo}:pull",
            push_scope(reference.path())
        );
        let resp = self
            .send(&ep, &scope, &url, true, &|c, u| {
                c.post(u.clone()).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Some(loc) = location(&resp, &url) {
                    // Best effort: an abandoned upload session expires on its own anyway.
                    let scope = push_scope(reference.path());
                    let _ = self
                        .send(&ep, &scope, &loc, true, &|c, u| c.delete(u.clone()))
                        .await;
                }
                Ok(false)
            }
            s => Err(Error::Status {
                method: "POST".into(),
                url: url.to_string(),
                status: s.as_u16(),
                body: resp.text().await.unwrap_or_default(),
            }),
        }
    }

    async fn start_upload(&self, ep: &Endpoint, reference: &Reference) -> Result<Url> {
        let url = Self::url(ep, &format!("{}/blobs/uploads/", reference.path()))?;
        let resp = self
            .send(ep, &push_scope(reference.path()), &url, true, &|c, u| {
                c.post(u.clone()).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Error::Status {
                method: "POST".into(),
                url: url.to_string(),
                status: resp.status().as_u16(),
                body: resp.text().await.unwrap_or_default(),
            });
        }
        location(&resp, &url).ok_or_else(|| Error::Upload {
            url: url.to_string(),
            message: "202 without a Location header".into(),
        })
    }

    async fn finish_upload(
        &self,
        ep: &Endpoint,
        reference: &Reference,
        loc: &Url,
        desc: &Descriptor,
        body: Option<reqwest::Body>,
    ) -> Result<()> {
        let mut put = loc.clone();
        put.query_pairs_mut()
            .append_pair("digest", desc.digest.as_str());
        let scope = push_scope(reference.path());
        // A streamed body cannot be replayed, so only an empty final PUT is retried.
        let body = std::sync::Mutex::new(body);
        let size = desc.size;
        let resp = self
            .send(ep, &scope, &put, false, &|c, u| {
                let r = c
                    .put(u.clone())
                    .header(header::CONTENT_TYPE, "application/octet-stream");
                match body
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take()
                {
                    Some(b) => r.header(header::CONTENT_LENGTH, size).body(b),
                    None => r.header(header::CONTENT_LENGTH, "0"),
                }
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(Error::Upload {
                url: put.to_string(),
                message: format!(
                    "{} {}",
                    resp.status().as_u16(),
                    resp.text().await.unwrap_or_default()
                ),
            });
        }
        if let Some(h) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|h| h.to_str().ok())
            && h != desc.digest.as_str()
        {
            return Err(Error::DigestMismatch {
                what: format!("blob pushed to {}", reference.name()),
                expected: desc.digest.to_string(),
                actual: h.to_owned(),
            });
        }
        Ok(())
    }

    /// Uploads blob `desc` in one PUT (monolithic upload), reporting progress.
    pub async fn push_blob(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        source: BlobSource,
        progress: Arc<dyn Progress>,
    ) -> Result<()> {
        let ep = self.origin(reference.domain()).await?;
        let loc = self.start_upload(&ep, reference).await?;
        progress.start(&desc.digest, desc.size, 0);
        let digest = desc.digest.clone();
        let p = progress.clone();
        let stream = source.into_stream().await?.map(move |chunk| {
            if let Ok(c) = &chunk {
                p.bytes(&digest, c.len() as u64);
            }
            chunk
        });
        self.finish_upload(
            &ep,
            reference,
            &loc,
            desc,
            Some(reqwest::Body::wrap_stream(stream)),
        )
        .await?;
        progress.done(&desc.digest, false);
        Ok(())
    }

    /// Uploads blob `desc` as PATCH requests of `chunk_size` bytes and a closing PUT.
    pub async fn push_blob_chunked(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        source: BlobSource,
        chunk_size: usize,
        progress: Arc<dyn Progress>,
    ) -> Result<()> {
        let chunk_size = chunk_size.max(1);
        let ep = self.origin(reference.domain()).await?;
        let mut loc = self.start_upload(&ep, reference).await?;
        progress.start(&desc.digest, desc.size, 0);
        let mut stream = source.into_stream().await?;
        let mut buf = BytesMut::new();
        let mut sent: u64 = 0;
        let mut eof = false;
        while !eof {
            while buf.len() < chunk_size {
                match stream.next().await {
                    Some(Ok(b)) => buf.extend_from_slice(&b),
                    Some(Err(e)) => {
                        return Err(Error::Upload {
                            url: loc.to_string(),
                            message: format!("reading the blob source failed: {e}"),
                        });
                    }
                    None => {
                        eof = true;
                        break;
                    }
                }
            }
            while buf.len() >= chunk_size || (eof && !buf.is_empty()) {
                let n = buf.len().min(chunk_size);
                let chunk = buf.split_to(n).freeze();
                let range = format!("{}-{}", sent, sent + n as u64 - 1);
                let scope = push_scope(reference.path());
                let resp = self
                    .send(&ep, &scope, &loc, false, &|c, u| {
                        c.patch(u.clone())
                            .header(header::CONTENT_TYPE, "application/octet-stream")
                            .header(header::CONTENT_RANGE, range.clone())
                            .header(header::CONTENT_LENGTH, n)
                            .body(chunk.clone())
                    })
                    .await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(Error::Upload {
                        url: loc.to_string(),
                        message: format!(
                            "PATCH {range}: {} {}",
                            resp.status().as_u16(),
                            resp.text().await.unwrap_or_default()
                        ),
                    });
                }
                loc = location(&resp, &loc).unwrap_or(loc);
                sent += n as u64;
                progress.bytes(&desc.digest, n as u64);
            }
        }
        if sent != desc.size {
            return Err(Error::SizeMismatch {
                what: format!("blob {} read for upload", desc.digest),
                expected: desc.size,
                actual: sent,
            });
        }
        self.finish_upload(&ep, reference, &loc, desc, None).await?;
        progress.done(&desc.digest, false);
        Ok(())
    }
}

fn location(resp: &reqwest::Response, base: &Url) -> Option<Url> {
    let l = resp.headers().get(header::LOCATION)?.to_str().ok()?;
    base.join(l).ok()
}

async fn next_chunk(mut st: Download) -> Option<(Result<Bytes>, Download)> {
    loop {
        if st.done {
            return None;
        }
        if st.body.is_none() {
            match st
                .client
                .open_blob(&st.ep, &st.path, &st.desc, st.pos)
                .await
            {
                Ok((b, skip)) => {
                    st.body = Some(b);
                    st.skip = skip;
                }
                Err(e) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
            }
        }
        let item = match st.body.as_mut() {
            Some(b) => b.next().await,
            None => None,
        };
        match item {
            Some(Ok(mut chunk)) => {
                if st.skip > 0 {
                    let n = (st.skip as usize).min(chunk.len());
                    st.skip -= n as u64;
                    chunk = chunk.slice(n..);
                }
                if chunk.is_empty() {
                    continue;
                }
                st.pos += chunk.len() as u64;
                if st.pos > st.desc.size {
                    st.done = true;
                    let e = Error::SizeMismatch {
                        what: format!("blob {}", st.desc.digest),
                        expected: st.desc.size,
                        actual: st.pos,
                    };
                    return Some((Err(e), st));
                }
                if let Some(h) = st.hasher.as_mut() {
                    h.update(&chunk);
                }
                return Some((Ok(chunk), st));
            }
            Some(Err(e)) if st.resumes_left == 0 => {
                st.done = true;
                let url = format!("{}/v2/{}/blobs/{}", st.ep.base, st.path, st.desc.digest);
                return Some((Err(Error::Http { url, source: e }), st));
            }
            None if st.pos < st.desc.size && st.resumes_left == 0 => {
                st.done = true;
                let e = Error::SizeMismatch {
                    what: format!("blob {} (body ended early)", st.desc.digest),
                    expected: st.desc.size,
                    actual: st.pos,
                };
                return Some((Err(e), st));
            }
            Some(Err(_)) | None if st.pos < st.desc.size => {
                // The connection broke (or ended) mid-blob: resume from here with Range.
                let n = RESUMES - st.resumes_left;
                st.resumes_left -= 1;
                st.body = None;
                tracing::debug!(digest = %st.desc.digest, pos = st.pos, "resuming blob download");
                tokio::time::sleep(st.client.retry_delay * 2u32.pow(n)).await;
            }
            Some(Err(e)) => {
                st.done = true;
                let url = format!("{}/v2/{}/blobs/{}", st.ep.base, st.path, st.desc.digest);
                return Some((Err(Error::Http { url, source: e }), st));
            }
            None => {
                st.done = true;
                if let Some(h) = st.hasher.take() {
                    let actual = Digest::from_sha256_bytes(&h.finalize().into());
                    if actual != st.desc.digest {
                        let e = Error::DigestMismatch {
                            what: format!("blob from {}/{}", st.ep.base, st.path),
                            expected: st.desc.digest.to_string(),
                            actual: actual.to_string(),
                        };
                        return Some((Err(e), st));
                    }
                }
                return None;
            }
        }
    }
}
