use berth_types::reference::Digest;

/// Per-blob progress events for pushes (and for pulls, when the caller forwards them).
/// All methods have empty defaults so an implementation overrides what it shows.
pub trait Progress: Send + Sync {
    /// A transfer of `digest` starts; `total` is the blob size, `offset` where it resumes.
    fn start(&self, digest: &Digest, total: u64, offset: u64) {
        let _ = (digest, total, offset);
    }
    /// `n` more bytes of `digest` went over the wire.
    fn bytes(&self, digest: &Digest, n: u64) {
        let _ = (digest, n);
    }
    /// The blob is complete; `skipped` is true when it already existed or was mounted.
    fn done(&self, digest: &Digest, skipped: bool) {
        let _ = (digest, skipped);
    }
}

/// A [`Progress`] that ignores every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
