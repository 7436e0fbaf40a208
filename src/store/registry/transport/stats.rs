//! Per-client request counters, so callers and tests can see what went over the wire.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Resume offsets kept in [`ClientStats::upload_resume_offsets`] (the first ones).
const MAX_OFFSETS_KEPT: usize = 256;

/// A snapshot of what one registry client (and its clones) sent and received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent, every attempt, hop and token fetch included.
    pub requests: u64,
    /// Attempts that were retried after a retryable failure.
    pub retries: u64,
    /// Token requests to the registry's token server.
    pub token_fetches: u64,
    pub manifest_heads: u64,
    pub manifest_gets: u64,
    pub manifest_puts: u64,
    pub blob_heads: u64,
    pub blob_gets: u64,
    /// Blob bytes received by `open_blob` streams.
    pub blob_bytes_downloaded: u64,
    /// Upload sessions started (POST) for `put_blob`, retries included.
    pub blob_uploads: u64,
    /// Blob bytes handed to the network by `put_blob`, retries included.
    pub blob_bytes_uploaded: u64,
    /// Of those, bytes of a single-`POST` probe that the registry ignored and that were sent
    /// again (at most one small blob per registry and run).
    pub single_post_probe_bytes: u64,
    /// Mount requests sent, and how many of them mounted.
    pub mounts_attempted: u64,
    pub mounts_succeeded: u64,
    pub tag_list_pages: u64,
    /// Pages of the repository catalog (`/v2/_catalog`) read.
    pub catalog_pages: u64,
    /// Pauses taken before a manifest GET because the registry said few requests remain
    /// (`RateLimit-Remaining`).
    pub rate_limit_waits: u64,
    /// The last `RateLimit-Remaining` the registry sent, if any.
    pub rate_limit_remaining: Option<u64>,
    /// Blobs stored by a monolithic upload (`PUT` with the body, or a single `POST ?digest=`).
    pub uploads_monolithic: u64,
    /// Of those, blobs stored by a single `POST ?digest=` request.
    pub uploads_single_post: u64,
    /// Blobs stored by a chunked upload (`PATCH` with `Content-Range`, in order).
    pub uploads_chunked: u64,
    /// Blobs stored by a streamed upload (one `PATCH` without `Content-Range`).
    pub uploads_streamed: u64,
    /// Upload `PATCH` requests sent (chunks and streams), failed ones included.
    pub upload_patches: u64,
    /// Times an upload went on from where the registry said it stood after a failure.
    pub upload_resumes: u64,
    /// The offsets those resumes started from, in order (the first 256).
    pub upload_resume_offsets: Vec<u64>,
    /// Times an upload had to start over in a new session (session lost, or a monolithic retry).
    pub upload_restarts: u64,
    /// Times a strategy the registry refused was given up for the next one.
    pub upload_fallbacks: u64,
    /// Times the chunk size changed because the registry refused a chunk's size.
    pub chunk_size_changes: u64,
}

#[derive(Default)]
pub struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    token_fetches: AtomicU64,
    manifest_heads: AtomicU64,
    manifest_gets: AtomicU64,
    manifest_puts: AtomicU64,
    blob_heads: AtomicU64,
    blob_gets: AtomicU64,
    blob_bytes_downloaded: AtomicU64,
    blob_uploads: AtomicU64,
    blob_bytes_uploaded: AtomicU64,
    single_post_probe_bytes: AtomicU64,
    mounts_attempted: AtomicU64,
    mounts_succeeded: AtomicU64,
    tag_list_pages: AtomicU64,
    catalog_pages: AtomicU64,
    rate_limit_waits: AtomicU64,
    /// One more than the last value (0: never sent).
    rate_limit_remaining: AtomicU64,
    uploads_monolithic: AtomicU64,
    uploads_single_post: AtomicU64,
    uploads_chunked: AtomicU64,
    uploads_streamed: AtomicU64,
    upload_patches: AtomicU64,
    upload_resumes: AtomicU64,
    upload_resume_offsets: Mutex<Vec<u64>>,
    upload_restarts: AtomicU64,
    upload_fallbacks: AtomicU64,
    chunk_size_changes: AtomicU64,
}

/// Upload events counted in [`ClientStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadEvent {
    Monolithic,
    SinglePost,
    Chunked,
    Streamed,
    Restart,
    Fallback,
    ChunkSizeChange,
}

/// What a request was, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Other,
    ManifestHead,
    ManifestGet,
    ManifestPut,
    BlobHead,
    BlobGet,
    UploadStart,
    UploadPatch,
    Mount,
    TagList,
    Catalog,
}

impl Counters {
    pub fn request(&self, kind: Kind) {
        self.requests.fetch_add(1, Relaxed);
        let c = match kind {
            Kind::Other => return,
            Kind::ManifestHead => &self.manifest_heads,
            Kind::ManifestGet => &self.manifest_gets,
            Kind::ManifestPut => &self.manifest_puts,
            Kind::BlobHead => &self.blob_heads,
            Kind::BlobGet => &self.blob_gets,
            Kind::UploadStart => &self.blob_uploads,
            Kind::UploadPatch => &self.upload_patches,
            Kind::Mount => &self.mounts_attempted,
            Kind::TagList => &self.tag_list_pages,
            Kind::Catalog => &self.catalog_pages,
        };
        c.fetch_add(1, Relaxed);
    }

    pub fn add_rate_limit_wait(&self) {
        self.rate_limit_waits.fetch_add(1, Relaxed);
    }

    pub fn set_rate_limit_remaining(&self, n: u64) {
        self.rate_limit_remaining
            .store(n.saturating_add(1), Relaxed);
    }

    pub fn add_retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    pub fn add_token_fetch(&self) {
        self.requests.fetch_add(1, Relaxed);
        self.token_fetches.fetch_add(1, Relaxed);
    }

    pub fn add_mounted(&self) {
        self.mounts_succeeded.fetch_add(1, Relaxed);
    }

    pub fn add_downloaded(&self, n: u64) {
        self.blob_bytes_downloaded.fetch_add(n, Relaxed);
    }

    pub fn add_uploaded(&self, n: u64) {
        self.blob_bytes_uploaded.fetch_add(n, Relaxed);
    }

    pub fn add_probe_resent(&self, n: u64) {
        self.single_post_probe_bytes.fetch_add(n, Relaxed);
    }

    pub fn upload(&self, event: UploadEvent) {
        let c = match event {
            UploadEvent::Monolithic => &self.uploads_monolithic,
            UploadEvent::SinglePost => &self.uploads_single_post,
            UploadEvent::Chunked => &self.uploads_chunked,
            UploadEvent::Streamed => &self.uploads_streamed,
            UploadEvent::Restart => &self.upload_restarts,
            UploadEvent::Fallback => &self.upload_fallbacks,
            UploadEvent::ChunkSizeChange => &self.chunk_size_changes,
        };
        c.fetch_add(1, Relaxed);
    }

    /// An upload resumed at `offset`.
    pub fn add_resume(&self, offset: u64) {
        self.upload_resumes.fetch_add(1, Relaxed);
        let mut offsets = self.upload_resume_offsets.lock().unwrap();
        if offsets.len() < MAX_OFFSETS_KEPT {
            offsets.push(offset);
        }
    }

    pub fn snapshot(&self) -> ClientStats {
        let g = |a: &AtomicU64| a.load(Relaxed);
        ClientStats {
            requests: g(&self.requests),
            retries: g(&self.retries),
            token_fetches: g(&self.token_fetches),
            manifest_heads: g(&self.manifest_heads),
            manifest_gets: g(&self.manifest_gets),
            manifest_puts: g(&self.manifest_puts),
            blob_heads: g(&self.blob_heads),
            blob_gets: g(&self.blob_gets),
            blob_bytes_downloaded: g(&self.blob_bytes_downloaded),
            blob_uploads: g(&self.blob_uploads),
            blob_bytes_uploaded: g(&self.blob_bytes_uploaded),
            single_post_probe_bytes: g(&self.single_post_probe_bytes),
            mounts_attempted: g(&self.mounts_attempted),
            mounts_succeeded: g(&self.mounts_succeeded),
            tag_list_pages: g(&self.tag_list_pages),
            catalog_pages: g(&self.catalog_pages),
            rate_limit_waits: g(&self.rate_limit_waits),
            rate_limit_remaining: g(&self.rate_limit_remaining).checked_sub(1),
            uploads_monolithic: g(&self.uploads_monolithic),
            uploads_single_post: g(&self.uploads_single_post),
            uploads_chunked: g(&self.uploads_chunked),
            uploads_streamed: g(&self.uploads_streamed),
            upload_patches: g(&self.upload_patches),
            upload_resumes: g(&self.upload_resumes),
            upload_resume_offsets: self.upload_resume_offsets.lock().unwrap().clone(),
            upload_restarts: g(&self.upload_restarts),
            upload_fallbacks: g(&self.upload_fallbacks),
            chunk_size_changes: g(&self.chunk_size_changes),
        }
    }
}
