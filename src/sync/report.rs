//! What a sync did (or, dry run, would do): per repository and tag, in total, and the requests
//! made to each registry; and the progress events a sync emits.

use std::sync::Arc;

use serde::{Serialize, Serializer};

use super::Shard;
use crate::digest::Digest;
use crate::error::{Error, Side};
use crate::progress::{Reporter, Silent};
use crate::promote::BlobSummary;
use crate::store::registry::ClientStats;

/// What happened to one tag (or pinned digest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TagAction {
    /// Written at the destination now.
    Copied,
    /// The destination already had it (same digest): nothing sent.
    Skipped,
    /// Dry run: would be copied.
    Planned,
    Failed,
    /// Not worked on: `--fail-fast` stopped the run first.
    NotStarted,
}

/// One tag of a repository.
#[derive(Debug, Serialize)]
pub struct TagReport {
    /// The tag, or the digest of a pinned manifest.
    pub tag: String,
    pub action: TagAction,
    pub source_digest: Option<Digest>,
    /// What the destination tag names now (dry run: would name).
    pub destination_digest: Option<Digest>,
    /// Blobs of the image: copied / mounted / skipped (counted on the first tag of an image).
    pub blobs: BlobSummary,
    #[serde(serialize_with = "error_text")]
    pub error: Option<Error>,
}

impl TagReport {
    pub(super) fn new(tag: String, action: TagAction) -> TagReport {
        TagReport {
            tag,
            action,
            source_digest: None,
            destination_digest: None,
            blobs: BlobSummary::default(),
            error: None,
        }
    }

    pub(super) fn failed(tag: String, error: Error) -> TagReport {
        TagReport {
            error: Some(error),
            ..TagReport::new(tag, TagAction::Failed)
        }
    }
}

/// One source repository.
#[derive(Debug, Serialize)]
pub struct RepoReport {
    /// `file:line` of the config entry.
    pub label: String,
    pub source: String,
    pub destination: String,
    pub tags: Vec<TagReport>,
    /// Source tags the filters leave out.
    pub left: Vec<String>,
    /// A failure of the repository as a whole (its tag list, its stores).
    #[serde(serialize_with = "error_text")]
    pub error: Option<Error>,
    pub seconds: f64,
}

impl RepoReport {
    pub fn count(&self, action: TagAction) -> usize {
        self.tags.iter().filter(|t| t.action == action).count()
    }

    /// Whether anything in the repository failed.
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.tags.iter().any(|t| t.error.is_some())
    }
}

/// What one registry client was sent, for the summary.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RegistryRequests {
    pub registry: String,
    pub side: Side,
    pub requests: u64,
    pub manifest_heads: u64,
    pub manifest_gets: u64,
    pub manifest_puts: u64,
    pub blob_heads: u64,
    pub blob_gets: u64,
    pub blob_uploads: u64,
    pub mounts: u64,
    pub tag_list_pages: u64,
    pub catalog_pages: u64,
    pub token_fetches: u64,
    pub retries: u64,
    /// Pauses taken because the registry said few requests remain (`RateLimit-Remaining`).
    pub rate_limit_waits: u64,
    pub bytes_downloaded: u64,
    pub bytes_uploaded: u64,
}

impl RegistryRequests {
    pub fn new(registry: &str, side: Side, s: &ClientStats) -> Self {
        RegistryRequests {
            registry: registry.to_string(),
            side,
            requests: s.requests,
            manifest_heads: s.manifest_heads,
            manifest_gets: s.manifest_gets,
            manifest_puts: s.manifest_puts,
            blob_heads: s.blob_heads,
            blob_gets: s.blob_gets,
            blob_uploads: s.blob_uploads,
            mounts: s.mounts_attempted,
            tag_list_pages: s.tag_list_pages,
            catalog_pages: s.catalog_pages,
            token_fetches: s.token_fetches,
            retries: s.retries,
            rate_limit_waits: s.rate_limit_waits,
            bytes_downloaded: s.blob_bytes_downloaded,
            bytes_uploaded: s.blob_bytes_uploaded,
        }
    }
}

/// Totals over a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncTotals {
    pub repositories: usize,
    pub repositories_failed: usize,
    pub tags: usize,
    pub copied: usize,
    pub skipped: usize,
    pub planned: usize,
    pub failed: usize,
    pub not_started: usize,
    pub left: usize,
    pub blobs: BlobSummary,
    pub requests: u64,
}

/// The result of a sync (or dry run).
#[derive(Debug, Serialize)]
pub struct SyncReport {
    pub dry_run: bool,
    pub shard: Shard,
    /// Whether `--fail-fast` stopped the run early.
    pub stopped: bool,
    pub repositories: Vec<RepoReport>,
    pub totals: SyncTotals,
    /// Per registry and side, every request of the run (HEADs, tag lists, copies).
    pub requests: Vec<RegistryRequests>,
    pub seconds: f64,
}

impl SyncReport {
    pub(super) fn finish(&mut self) {
        let mut t = SyncTotals {
            repositories: self.repositories.len(),
            ..SyncTotals::default()
        };
        for r in &self.repositories {
            t.repositories_failed += usize::from(r.failed());
            t.tags += r.tags.len();
            t.copied += r.count(TagAction::Copied);
            t.skipped += r.count(TagAction::Skipped);
            t.planned += r.count(TagAction::Planned);
            t.failed += r.count(TagAction::Failed);
            t.not_started += r.count(TagAction::NotStarted);
            t.left += r.left.len();
            for tag in &r.tags {
                t.blobs.add(&tag.blobs);
            }
        }
        t.requests = self.requests.iter().map(|r| r.requests).sum();
        self.totals = t;
    }

    /// True when nothing failed.
    pub fn ok(&self) -> bool {
        !self.stopped && self.repositories.iter().all(|r| !r.failed())
    }

    /// Every error of the run, repository failures first, in config order.
    pub fn take_errors(&mut self) -> Vec<Error> {
        let mut out = Vec::new();
        for r in &mut self.repositories {
            out.extend(r.error.take());
            out.extend(r.tags.iter_mut().filter_map(|t| t.error.take()));
        }
        out
    }
}

fn error_text<S: Serializer>(e: &Option<Error>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_some(&e.to_string()),
        None => s.serialize_none(),
    }
}

/// Progress of a sync. Defaults do nothing.
pub trait SyncReporter: Send + Sync {
    /// The run has this many repositories (of this shard) to do.
    fn planned(&self, _repositories: usize) {}
    /// Where blob-level events go (bytes as they cross).
    fn blobs(&self) -> Arc<dyn Reporter> {
        Arc::new(Silent)
    }
    /// One tag of `repository` (source) reached its final state.
    fn tag_finished(&self, _repository: &str, _destination: &str, _tag: &TagReport) {}
    /// A repository is done (every tag finished, or it failed as a whole).
    fn repository_finished(&self, _repository: &RepoReport) {}
}

/// A sync reporter that ignores everything.
pub struct SilentSync;
impl SyncReporter for SilentSync {}
