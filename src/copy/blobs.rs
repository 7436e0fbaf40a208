//! The blob path: already there → cross-repository mount → stream, with one transfer per digest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;

use super::location_cache::LocationCache;
use super::RegistryLimits;
use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::Descriptor;
use crate::progress::Reporter;
use crate::store::{BlobOutcome, BlobSource, BlobStream, RepoLocation, Store};

/// Held while one blob is transferred to one destination.
type TransferLock = Arc<tokio::sync::Mutex<()>>;

/// Remembers which registry repositories are known to hold a blob, so a later copy to the same
/// registry can mount instead of sending the bytes again, and serialises transfers of one digest
/// to one destination registry (every repository of it), so the same bytes never cross twice at
/// once: a second copy of the digest into the registry waits for the first, then mounts.
///
/// With a [`LocationCache`] it also remembers across runs: what earlier runs saw is offered as a
/// mount source after what this run knows, and what this run sees is saved by
/// [`BlobLedger::save`].
#[derive(Default)]
pub struct BlobLedger {
    known: Mutex<HashMap<Digest, Vec<RepoLocation>>>,
    inflight: Mutex<HashMap<(String, Digest), TransferLock>>,
    cache: Option<LocationCache>,
}

/// Where a mount source came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    /// This run saw it.
    ThisRun,
    /// The persistent cache (an earlier run): a hint, dropped if the mount is refused.
    Cached,
}

impl BlobLedger {
    /// A ledger backed by the persistent `cache`.
    pub fn with_cache(cache: LocationCache) -> Self {
        BlobLedger {
            cache: Some(cache),
            ..BlobLedger::default()
        }
    }

    /// Records that `loc` holds `digest`.
    pub fn record(&self, digest: &Digest, loc: RepoLocation) {
        if let Some(c) = &self.cache {
            c.record(digest, &loc);
        }
        let mut known = self.known.lock().unwrap();
        let locs = known.entry(digest.clone()).or_default();
        if !locs.contains(&loc) {
            locs.push(loc);
        }
    }

    /// A repository of `registry` other than `not` that is known to hold `digest`: one this run
    /// saw, else one the cache remembers.
    pub fn mount_source(
        &self,
        digest: &Digest,
        registry: &str,
        not: &str,
    ) -> Option<(String, Known)> {
        let this_run = {
            let known = self.known.lock().unwrap();
            known
                .get(digest)
                .and_then(|locs| {
                    locs.iter()
                        .find(|l| l.registry == registry && l.repository != not)
                })
                .map(|l| l.repository.clone())
        };
        if let Some(repo) = this_run {
            return Some((repo, Known::ThisRun));
        }
        let cached = self.cache.as_ref()?.lookup(digest, registry, not)?;
        Some((cached, Known::Cached))
    }

    /// A mount from a cached location was refused: the cache drops it.
    pub fn forget(&self, digest: &Digest, loc: &RepoLocation) {
        if let Some(c) = &self.cache {
            c.forget(digest, loc);
        }
    }

    /// Saves what this run learned into the persistent cache (nothing without one).
    pub fn save(&self) -> Result<()> {
        match &self.cache {
            Some(c) => c.save(),
            None => Ok(()),
        }
    }

    /// The lock for `digest` at `dst`'s registry (a local store is its own key).
    fn lock_for(&self, dst: &dyn Store, digest: &Digest) -> Arc<tokio::sync::Mutex<()>> {
        let key = dst
            .repo_location()
            .map(|l| l.registry)
            .unwrap_or_else(|| dst.location());
        let mut map = self.inflight.lock().unwrap();
        map.entry((key, digest.clone())).or_default().clone()
    }
}

/// Copies one blob by the cheapest path and says which path it took. Waits for a transfer of the
/// same digest into the same registry to finish first, then for a permit of `limits`.
pub async fn copy_blob(
    src: &dyn Store,
    dst: &dyn Store,
    desc: &Descriptor,
    ledger: &BlobLedger,
    limits: &RegistryLimits,
    reporter: &Arc<dyn Reporter>,
) -> Result<BlobOutcome> {
    let lock = ledger.lock_for(dst, &desc.digest);
    let _guard = lock.lock().await;
    let _permits = limits.acquire(&[src, dst]).await;
    let src_loc = src.repo_location();
    let dst_loc = dst.repo_location();
    if let Some(l) = &src_loc {
        ledger.record(&desc.digest, l.clone());
    }
    let outcome = transfer(
        src,
        dst,
        desc,
        ledger,
        reporter,
        src_loc.as_ref(),
        dst_loc.as_ref(),
    )
    .await?;
    if let Some(l) = dst_loc {
        ledger.record(&desc.digest, l);
    }
    reporter.blob_done(&desc.digest, desc.size, outcome);
    Ok(outcome)
}

async fn transfer(
    src: &dyn Store,
    dst: &dyn Store,
    desc: &Descriptor,
    ledger: &BlobLedger,
    reporter: &Arc<dyn Reporter>,
    src_loc: Option<&RepoLocation>,
    dst_loc: Option<&RepoLocation>,
) -> Result<BlobOutcome> {
    // A mount source known (this run put the blob there, or the cache says so) is tried
    // before any HEAD: a mount answers 201 when the blob is there already as well, so one
    // request decides; a failed one costs what the HEAD would have saved.
    if let Some(d) = dst_loc {
        let from = match src_loc {
            Some(s) if s.registry == d.registry && s.repository != d.repository => {
                Some((s.repository.clone(), Known::ThisRun))
            }
            _ => ledger.mount_source(&desc.digest, &d.registry, &d.repository),
        };
        if let Some((from, known)) = from {
            if dst.mount_blob(desc, &from).await? {
                return Ok(BlobOutcome::Mounted);
            }
            if known == Known::Cached {
                // Stale: the blob is uploaded as if the cache had not named it.
                let loc = RepoLocation {
                    registry: d.registry.clone(),
                    repository: from,
                };
                ledger.forget(&desc.digest, &loc);
            }
        }
    }
    if dst.has_blob(desc).await? {
        return Ok(BlobOutcome::Skipped);
    }
    reporter.blob_started(&desc.digest, desc.size);
    let source = Counted {
        store: src,
        desc,
        reporter: reporter.clone(),
        reported: Default::default(),
    };
    let sent = dst.put_blob(desc, &source).await?;
    Ok(BlobOutcome::Copied(sent))
}

/// A blob source that reports bytes to the reporter as they are read.
struct Counted<'a> {
    store: &'a dyn Store,
    desc: &'a Descriptor,
    reporter: Arc<dyn Reporter>,
    /// The furthest byte reported so far: a resumed or restarted upload re-reads bytes, and
    /// progress counts each byte of the blob once.
    reported: Arc<std::sync::atomic::AtomicU64>,
}

#[async_trait]
impl BlobSource for Counted<'_> {
    async fn open(&self, offset: u64) -> Result<BlobStream> {
        use std::sync::atomic::Ordering::Relaxed;
        let stream = self.store.open_blob(self.desc, offset).await?;
        let digest = self.desc.digest.clone();
        let reporter = self.reporter.clone();
        let reported = self.reported.clone();
        let mut pos = offset;
        Ok(stream
            .inspect(move |chunk| {
                if let Ok(b) = chunk {
                    pos += b.len() as u64;
                    let before = reported.fetch_max(pos, Relaxed);
                    if pos > before {
                        reporter.blob_progress(&digest, pos - before);
                    }
                }
            })
            .boxed())
    }
}
