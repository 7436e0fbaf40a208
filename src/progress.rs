//! Progress events the library emits; the CLI renders them. The library itself never prints.

use crate::digest::Digest;
use crate::store::BlobOutcome;

/// Receives progress from a copy. All methods default to doing nothing.
pub trait Reporter: Send + Sync {
    /// A blob transfer is starting (`size` bytes expected).
    fn blob_started(&self, _digest: &Digest, _size: u64) {}
    /// `n` more bytes of the blob reached the destination.
    fn blob_progress(&self, _digest: &Digest, _n: u64) {}
    /// The blob is at the destination.
    fn blob_done(&self, _digest: &Digest, _size: u64, _outcome: BlobOutcome) {}
    /// A manifest was written (or found already present when `existed`).
    fn manifest_done(&self, _digest: &Digest, _media_type: &str, _existed: bool) {}
    /// A tag now points at `digest`.
    fn tagged(&self, _location: &str, _tag: &str, _digest: &Digest) {}
}

/// A reporter that ignores everything.
pub struct Silent;
impl Reporter for Silent {}
