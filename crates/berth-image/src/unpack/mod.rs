//! Path-safe layer unpack: tar (plain, gzip, zstd) into a layer directory in the
//! form overlayfs expects for a lowerdir.
//!
//! Every entry is placed relative to an fd of the layer root; parents are resolved
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so an entry whose path
//! would leave the layer (`..`, an absolute path, a symlink such as `a -> /`) is
//! refused with an error naming it. Whiteouts become 0:0 character devices and
//! opaque markers become `trusted.overlay.opaque=y`; the `.wh.` files themselves
//! are never created.

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use rustix::fs::{Mode, OFlags};
use sha2::{Digest as _, Sha256};

mod extract;

use extract::{Creds, Extractor};

/// Default cap on the uncompressed bytes of one layer (64 GiB).
pub const DEFAULT_MAX_UNPACKED_BYTES: u64 = 64 << 30;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip, possibly multi-member (pigz).
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The compression a layer media type names. `None` for a media type that does not
    /// say (the caller then sniffs the magic bytes); an error for a media type that is
    /// not a layer at all.
    pub fn from_media_type(media_type: &str) -> Result<Option<Compression>, UnpackError> {
        let mt = media_type.trim();
        let known_tar = [
            "application/vnd.docker.image.rootfs.diff.tar",
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.nondistributable.v1.tar",
        ];
        let gzip = [
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        ];
        let zstd = [
            "application/vnd.docker.image.rootfs.diff.tar.zstd",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        ];
        if gzip.contains(&mt) {
            Ok(Some(Compression::Gzip))
        } else if zstd.contains(&mt) {
            Ok(Some(Compression::Zstd))
        } else if known_tar.contains(&mt) {
            Ok(Some(Compression::None))
        } else if mt.is_empty() || mt == "application/octet-stream" || mt == "application/x-tar" {
            Ok(None)
        } else {
            Err(UnpackError::UnsupportedMediaType(mt.to_owned()))
        }
    }

    /// Sniffs the compression from the first bytes of a blob.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The Docker schema2 layer media type for this compression.
    pub fn docker_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
            Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Compression::Zstd => "application/vnd.docker.image.rootfs.diff.tar.zstd",
        }
    }

    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// Errors from unpacking one layer.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The media type is not a layer type we know.
    #[error("unsupported layer media type {0:?}")]
    UnsupportedMediaType(String),
    /// The entry would land outside the layer directory.
    #[error("layer entry {entry:?} would land outside the layer: {reason}")]
    Escape {
        /// The entry's path as written in the tar.
        entry: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A hard link whose target is missing or outside the layer.
    #[error(
        "layer entry {entry:?} is a hard link to {target:?}, which is not an extracted file of this layer: {source}"
    )]
    HardLinkTarget {
        /// The link's path.
        entry: String,
        /// The link's target.
        target: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// An entry type we do not extract.
    #[error("layer entry {entry:?} has unsupported type {kind}")]
    UnsupportedEntry {
        /// The entry's path.
        entry: String,
        /// The tar type byte.
        kind: String,
    },
    /// An entry's header is malformed.
    #[error("layer entry {entry:?} has a malformed header: {reason}")]
    BadHeader {
        /// The entry's path.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// The decompression bomb guard tripped.
    #[error("layer unpacks to more than {limit} bytes (the configured cap)")]
    TooLarge {
        /// The configured cap.
        limit: u64,
    },
    /// Reading or decompressing the layer stream failed (truncated, corrupt).
    #[error("reading the layer stream failed: {0}")]
    Stream(#[source] io::Error),
    /// A file system operation on an entry failed.
    #[error("{op} for layer entry {entry:?} failed: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The entry's path.
        entry: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// Opening the destination directory failed.
    #[error("opening layer directory {path:?} failed: {source}")]
    Dest {
        /// The directory.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
}

/// Unpack settings.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Cap on the uncompressed tar bytes of one layer (decompression bomb guard).
    pub max_unpacked_bytes: u64,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            max_unpacked_bytes: DEFAULT_MAX_UNPACKED_BYTES,
        }
    }
}

/// What an unpack produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackSummary {
    /// `sha256:<hex>` of the uncompressed tar stream (the layer's DiffID).
    pub diff_id: String,
    /// Bytes of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// Bytes of regular-file content written (the layer's size as `docker images` counts it).
    pub content_bytes: u64,
    /// The compression that was found.
    pub compression: Compression,
}

/// A reader that counts what passes through and enforces the unpacked-bytes cap.
struct Meter<R> {
    inner: R,
    count: Arc<AtomicU64>,
    limit: u64,
}

impl<R: Read> Read for Meter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.count.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if total > self.limit {
            return Err(io::Error::other("unpacked size cap exceeded"));
        }
        Ok(n)
    }
}

/// Size of the decompressed chunks handed from the inflate thread to the extractor.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the two threads (4 MiB).
const CHUNKS_IN_FLIGHT: usize = 16;

/// The extractor's end of the inflate pipeline: reads decompressed chunks and hands each
/// emptied buffer back for reuse, so the steady state allocates nothing.
struct PipeReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    recycle: mpsc::SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    let done = std::mem::replace(&mut self.cur, next);
                    self.pos = 0;
                    let _ = self.recycle.try_send(done);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Uncompressed bytes between two early write-backs (see [`early_syncfs`]).
const FLUSH_EVERY: u64 = 16 << 20;

/// Starts writing back what the unpack wrote so far while it goes on: a layer is published
/// after one `syncfs`, and without this all of its data (and its blob's) would be written
/// back only then, after the last byte, with nothing left to overlap. Runs on its own
/// thread; skipped while another early sync of this process is in flight.
fn early_syncfs(fd: BorrowedFd<'_>) {
    static SYNCING: AtomicBool = AtomicBool::new(false);
    if SYNCING.swap(true, Ordering::AcqRel) {
        return;
    }
    if let Err(e) = rustix::fs::syncfs(fd) {
        tracing::debug!(error = %e, "early syncfs failed (the final one reports)");
    }
    SYNCING.store(false, Ordering::Release);
}

/// The DiffID thread, between the inflate thread and the extractor: hashes every chunk and
/// passes it on, until the stream ends or the extractor hangs up. On its own thread so that
/// decompression, hashing and the file system work each get a core when there are cores.
fn hash_chunks(
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    tx: mpsc::SyncSender<io::Result<Vec<u8>>>,
) -> Sha256 {
    let mut hasher = Sha256::new();
    while let Ok(msg) = rx.recv() {
        if let Ok(chunk) = &msg {
            hasher.update(chunk);
        }
        if tx.send(msg).is_err() {
            break;
        }
    }
    hasher
}

/// The inflate thread: decompresses into reused chunks until the stream ends, fails, or
/// the next stage hangs up. Every [`FLUSH_EVERY`] bytes it asks the flusher for an early
/// write-back.
fn inflate_into<M: Read>(
    mut meter: M,
    tx: mpsc::SyncSender<io::Result<Vec<u8>>>,
    recycled: mpsc::Receiver<Vec<u8>>,
    flush: mpsc::SyncSender<()>,
) {
    let mut produced = 0u64;
    let mut next_flush = FLUSH_EVERY;
    loop {
        let mut buf = recycled.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        let res = loop {
            match meter.read(&mut buf[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    filled += n;
                    if filled == CHUNK {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(filled);
        let last = filled < CHUNK;
        if filled > 0 && tx.send(Ok(buf)).is_err() {
            return;
        }
        produced += filled as u64;
        if produced >= next_flush {
            // A full channel means a flush is already asked for.
            let _ = flush.try_send(());
            next_flush = produced + FLUSH_EVERY;
        }
        if let Err(e) = res {
            let _ = tx.send(Err(e));
            return;
        }
        if last {
            return;
        }
    }
}

/// Unpacks a layer stream into `dest` (an existing, empty directory).
///
/// `media_type` drives the decompression; `None` or an unspecific type falls back to
/// the magic bytes. The whole stream is read to its end so the DiffID covers it.
/// Decompression and DiffID hashing run on threads of their own, overlapping the file
/// system work of the extractor (bounded by [`CHUNKS_IN_FLIGHT`] chunks of [`CHUNK`] bytes).
pub fn unpack_layer<R: Read + Send>(
    reader: R,
    media_type: Option<&str>,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackSummary, UnpackError> {
    unpack_layer_buffered(
        BufReader::with_capacity(CHUNK, reader),
        media_type,
        dest,
        opts,
    )
}

/// [`unpack_layer`] for a reader that buffers already (the download's chunks): the
/// decompressor reads its buffer in place instead of through another copy.
pub fn unpack_layer_buffered<R: BufRead + Send>(
    mut buffered: R,
    media_type: Option<&str>,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackSummary, UnpackError> {
    let declared = match media_type {
        Some(mt) => Compression::from_media_type(mt)?,
        None => None,
    };
    let compression = match declared {
        Some(c) => c,
        None => Compression::sniff(buffered.fill_buf().map_err(UnpackError::Stream)?),
    };
    let decompressed: Box<dyn Read + Send + '_> = match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered).map_err(UnpackError::Stream)?,
        ),
    };
    let count = Arc::new(AtomicU64::new(0));
    let limit = opts.max_unpacked_bytes;
    let meter = Meter {
        inner: decompressed,
        count: count.clone(),
        limit,
    };
    let too_large = |e: UnpackError| {
        if count.load(Ordering::Relaxed) > limit {
            UnpackError::TooLarge { limit }
        } else {
            e
        }
    };

    let root = rustix::fs::open(
        dest,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Dest {
        path: dest.to_owned(),
        source: e.into(),
    })?;

    let mut state = Extractor::new(root.as_fd(), Creds::current())?;
    let (extracted, hasher) = std::thread::scope(|scope| {
        let (tx, hash_rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT / 2);
        let (hash_tx, rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT / 2);
        let (recycle, recycled) = mpsc::sync_channel(CHUNKS_IN_FLIGHT + 2);
        let (flush, flushes) = mpsc::sync_channel::<()>(1);
        let root_fd = root.as_fd();
        let spawned = std::thread::Builder::new()
            .name("berth-syncfs".into())
            .spawn_scoped(scope, move || {
                while flushes.recv().is_ok() {
                    early_syncfs(root_fd);
                }
            });
        if let Err(e) = spawned {
            return (Err(UnpackError::Stream(e)), Ok(None));
        }
        let inflater = match std::thread::Builder::new()
            .name("berth-inflate".into())
            .spawn_scoped(scope, move || inflate_into(meter, tx, recycled, flush))
        {
            Ok(t) => t,
            Err(e) => return (Err(UnpackError::Stream(e)), Ok(None)),
        };
        let hasher = match std::thread::Builder::new()
            .name("berth-diffid".into())
            .spawn_scoped(scope, move || hash_chunks(hash_rx, hash_tx))
        {
            Ok(t) => t,
            Err(e) => return (Err(UnpackError::Stream(e)), Ok(None)),
        };
        let extracted = {
            let mut archive = tar::Archive::new(PipeReader {
                rx,
                recycle,
                cur: Vec::new(),
                pos: 0,
            });
            state.run(&mut archive).and_then(|()| {
                // Read to the end so the DiffID covers trailing padding.
                io::copy(&mut archive.into_inner(), &mut io::sink())
                    .map(|_| ())
                    .map_err(UnpackError::Stream)
            })
            // The pipe's reader end is dropped here: a still-running inflater stops.
        };
        // A panicked inflater ended the stream early: not a layer to keep.
        let hashed = match inflater.join() {
            Ok(()) => hasher.join().map(Some),
            Err(_) => Ok(None),
        };
        (extracted, hashed)
    });
    extracted.map_err(too_large)?;
    let hasher = hasher
        .ok()
        .flatten()
        .ok_or_else(|| UnpackError::Stream(io::Error::other("an unpack thread panicked")))?;
    state.finish()?;
    let diff_id = format!("sha256:{}", hex::encode(hasher.finalize()));
    Ok(UnpackSummary {
        diff_id,
        tar_bytes: count.load(Ordering::Relaxed),
        content_bytes: state.content_bytes,
        compression,
    })
}

#[cfg(test)]
mod tests {
    use super::extract::{normalize, parse_pax_time};
    use super::*;
    use rustix::fs::Timespec;

    #[test]
    fn media_types_map_to_compression() {
        let gz = Compression::from_media_type(
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        );
        assert_eq!(gz.unwrap(), Some(Compression::Gzip));
        let z = Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd");
        assert_eq!(z.unwrap(), Some(Compression::Zstd));
        let docker =
            Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip");
        assert_eq!(docker.unwrap(), Some(Compression::Gzip));
        assert_eq!(
            Compression::from_media_type("application/octet-stream").unwrap(),
            None
        );
        let err = Compression::from_media_type("text/html").unwrap_err();
        assert!(err.to_string().contains("text/html"), "{err}");
    }

    #[test]
    fn magic_bytes_are_sniffed() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 1]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"etc/passwd"), Compression::None);
    }

    #[test]
    fn normalize_refuses_parent_and_absolute() {
        assert_eq!(normalize(Path::new("./a/b/")).unwrap(), vec!["a", "b"]);
        let e = normalize(Path::new("a/../../x")).unwrap_err();
        assert!(e.to_string().contains("a/../../x"), "{e}");
        let e = normalize(Path::new("/etc/x")).unwrap_err();
        assert!(
            e.to_string().contains("/etc/x") && e.to_string().contains("absolute"),
            "{e}"
        );
    }

    #[test]
    fn pax_times_parse() {
        assert_eq!(
            parse_pax_time("12.5"),
            Some(Timespec {
                tv_sec: 12,
                tv_nsec: 500_000_000
            })
        );
        assert_eq!(
            parse_pax_time("7"),
            Some(Timespec {
                tv_sec: 7,
                tv_nsec: 0
            })
        );
        assert_eq!(parse_pax_time("x"), None);
    }
}
