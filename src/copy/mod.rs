//! The copy engine: a graph walk that pushes blobs, then child manifests, then the root, then tags.
//!
//! Ordering contract: a tag is written only after every blob and manifest it names is present at
//! the destination (verified by the destination store while streaming, or by a HEAD).
//!
//! Referrers (with [`CopyOptions::referrers`]): the signatures, SBOMs and attestations of every
//! manifest copied are graph nodes too: their blobs go with the image's, their manifests are
//! pushed after the root; their fallback tags and cosign's legacy tags are written in the tag
//! phase, before the image's own tags.

mod blobs;
mod graph;
mod limits;
mod location_cache;
pub mod referrers;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

pub use blobs::{copy_blob, BlobLedger, Known};
pub use graph::{collect, select_platforms, Graph, Selection};
pub use limits::{Permits, RegistryLimits};
pub use location_cache::{LocationCache, MAX_ENTRIES as LOCATION_CACHE_ENTRIES};
pub use referrers::{FoundReferrer, Links};

use crate::cancel::Cancel;
use crate::convert::{Converter, Format};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{Platform, RawManifest};
use crate::progress::Reporter;
use crate::referrers::ReferrerOptions;
use crate::store::{BlobOutcome, Store, Target};

/// Per-call options of a copy.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// Platforms to keep from a multi-platform index; empty keeps all (digest preserved).
    pub platforms: Vec<Platform>,
    /// Blob transfers in flight at once.
    pub jobs: usize,
    /// Which referrers travel with the image (default: none).
    pub referrers: ReferrerOptions,
    /// Write manifests in this format, converting those that are not (new digests).
    pub format: Option<Format>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            platforms: Vec::new(),
            jobs: 8,
            referrers: ReferrerOptions::none(),
            format: None,
        }
    }
}

/// Counts of what happened to blobs.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct BlobCounts {
    pub copied: usize,
    pub mounted: usize,
    pub skipped: usize,
    /// Bytes sent to the destination.
    pub bytes_copied: u64,
    /// Bytes that did not need to move (skipped or mounted).
    pub bytes_avoided: u64,
    /// Of `bytes_avoided`: bytes of blobs mounted from another repository.
    pub bytes_mounted: u64,
    /// Of `bytes_avoided`: bytes of blobs already present.
    pub bytes_skipped: u64,
}

impl BlobCounts {
    fn add(&mut self, outcome: BlobOutcome, size: u64) {
        match outcome {
            BlobOutcome::Skipped => (self.skipped += 1, self.bytes_skipped += size),
            BlobOutcome::Mounted => (self.mounted += 1, self.bytes_mounted += size),
            BlobOutcome::Copied(n) => (self.copied += 1, self.bytes_copied += n),
        };
        self.bytes_avoided = self.bytes_skipped + self.bytes_mounted;
    }
}

/// The result of one copy.
#[derive(Clone, Debug, Serialize)]
pub struct CopyReport {
    pub source: String,
    pub destination: String,
    /// Digest the source reference resolved to.
    pub source_digest: Digest,
    /// Digest written at the destination (differs from the source only for a subset index).
    pub destination_digest: Digest,
    pub media_type: String,
    pub selection: Selection,
    /// The format manifests were converted to (`--format`): the destination digest is new.
    pub converted_to: Option<Format>,
    pub tags: Vec<String>,
    pub blobs: BlobCounts,
    pub manifests_pushed: usize,
    pub manifests_present: usize,
    /// True when every tag already pointed at the digest: nothing was written.
    pub unchanged: bool,
    /// The referrers found for the image (with `--referrers`), moved or already there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<FoundReferrer>,
    /// Referrer tags written: fallback indexes (`sha256-<hex>`) and cosign legacy tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrer_tags: Vec<String>,
    pub seconds: f64,
}

/// Everything but the tags is at the destination; `tag` finishes the job.
pub struct Prepared {
    pub root: RawManifest,
    pub report: CopyReport,
    /// Every tag already names the root (then only referrers may need writing).
    pub tags_current: bool,
    /// The referrer tags the tag phase writes.
    pub links: Links,
    /// The root is not at the destination yet: the tag phase's PUT by tag stores it (one
    /// request where a HEAD and a PUT by digest would come first).
    pub root_by_tag: bool,
}

/// What a caller of [`Copier::push_graph_with`] knows of the root at the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootKnown {
    /// Not looked up: ask before pushing.
    Unknown,
    /// Just looked up and not there.
    Absent,
    /// The caller PUTs it by tag next, which stores it: not pushed here when something under
    /// it had to be (then the root cannot be at the destination: a registry stores a manifest
    /// only once what it names is there), else looked up and pushed as for `Unknown`.
    ByTag,
}

/// What [`Copier::push_graph`] did.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Pushed {
    pub blobs: BlobCounts,
    pub manifests_pushed: usize,
    pub manifests_present: usize,
    /// The root was left to the caller's PUT by tag ([`RootKnown::ByTag`]).
    #[serde(skip)]
    pub root_deferred: bool,
}

/// Copies images between stores. Holds what is shared across copies: the blob ledger (mount
/// sources, per-digest de-duplication), per-registry transfer limits, the reporter and the
/// stop request ([`Cancel`]): cancelled, a copy stops where it stands, its open upload sessions
/// are deleted and its temp files removed, and it fails with [`Error::Interrupted`].
pub struct Copier {
    pub ledger: Arc<BlobLedger>,
    pub limits: Arc<RegistryLimits>,
    pub reporter: Arc<dyn Reporter>,
    pub cancel: Cancel,
}

impl Copier {
    pub fn new(reporter: Arc<dyn Reporter>) -> Self {
        Copier {
            ledger: Arc::new(BlobLedger::default()),
            limits: Arc::new(RegistryLimits::unlimited()),
            reporter,
            cancel: Cancel::new(),
        }
    }

    /// This copier, obeying `cancel`.
    pub fn with_cancel(mut self, cancel: Cancel) -> Copier {
        self.cancel = cancel;
        self
    }

    /// A copier sharing this one's ledger and limits that reports to `reporter` (one per image
    /// of a bulk job, so progress can be attributed).
    pub fn sharing(&self, reporter: Arc<dyn Reporter>) -> Copier {
        Copier {
            ledger: self.ledger.clone(),
            limits: self.limits.clone(),
            reporter,
            cancel: self.cancel.clone(),
        }
    }

    /// Copies `target` from `src` to `dst` and points `tags` at it.
    pub async fn copy(
        &self,
        src: &dyn Store,
        target: &Target,
        dst: &dyn Store,
        tags: &[String],
        opts: &CopyOptions,
    ) -> Result<CopyReport> {
        let prepared = self.prepare(src, target, dst, tags, opts).await?;
        self.tag(dst, prepared, tags).await
    }

    /// Makes every blob and manifest of the image present at `dst` (root by digest), without
    /// touching tags. When every tag in `tags` already points at the result, nothing is written.
    pub async fn prepare(
        &self,
        src: &dyn Store,
        target: &Target,
        dst: &dyn Store,
        tags: &[String],
        opts: &CopyOptions,
    ) -> Result<Prepared> {
        self.cancel
            .run(self.prepare_now(src, target, dst, tags, opts))
            .await
    }

    async fn prepare_now(
        &self,
        src: &dyn Store,
        target: &Target,
        dst: &dyn Store,
        tags: &[String],
        opts: &CopyOptions,
    ) -> Result<Prepared> {
        let started = Instant::now();
        let source = src.get_manifest(target).await?;
        let source_digest = source.digest.clone();
        let (root, selection) = select_platforms(src, source, &opts.platforms).await?;
        let (root, converted) = match opts.format {
            Some(f) => self.convert(src, root, f, opts.jobs).await?,
            None => (root, None),
        };
        let mut report = CopyReport {
            source: match target {
                Target::Tag(t) => format!("{}:{t}", src.location()),
                Target::Digest(d) => format!("{}@{d}", src.location()),
            },
            destination: dst.location(),
            source_digest,
            destination_digest: root.digest.clone(),
            media_type: root.media_type.clone(),
            selection,
            converted_to: converted.as_ref().map(|_| opts.format).unwrap_or_default(),
            tags: tags.to_vec(),
            blobs: BlobCounts::default(),
            manifests_pushed: 0,
            manifests_present: 0,
            unchanged: false,
            referrers: Vec::new(),
            referrer_tags: Vec::new(),
            seconds: 0.0,
        };
        let tags_current = self.all_tags_current(dst, &root.digest, tags).await?;
        if tags_current && !opts.referrers.enabled {
            report.unchanged = true;
            report.manifests_present = 1;
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(Prepared {
                root,
                report,
                tags_current,
                links: Links::default(),
                root_by_tag: false,
            });
        }
        let mut graph = match (tags_current, converted) {
            (true, _) => Graph::default(),
            (false, Some(g)) => g,
            (false, None) => collect(src, &root, opts.jobs).await?,
        };
        if opts.referrers.enabled {
            let known = (!tags_current).then_some(&graph);
            let subjects = referrers::subjects(&root, selection, known);
            referrers::add(src, dst, &mut graph, subjects, &opts.referrers, opts.jobs).await?;
        }
        // A root with nothing after it (no referrers, no referrer tags) and tags to write may
        // be stored by the tag phase's PUT, after every blob and child manifest is present.
        let by_tag = !tags.is_empty()
            && !tags_current
            && graph.referrers.is_empty()
            && graph.links.is_empty();
        let known = match by_tag {
            true => RootKnown::ByTag,
            false => RootKnown::Unknown,
        };
        let pushed = self
            .push_graph_now(src, dst, &root, &graph, opts.jobs, known)
            .await?;
        let root_by_tag = pushed.root_deferred;
        report.blobs = pushed.blobs;
        report.manifests_pushed = pushed.manifests_pushed;
        report.manifests_present = pushed.manifests_present;
        report.referrers = std::mem::take(&mut graph.found);
        report.seconds = started.elapsed().as_secs_f64();
        Ok(Prepared {
            root,
            report,
            tags_current,
            links: std::mem::take(&mut graph.links),
            root_by_tag,
        })
    }

    /// Makes `root` and everything `graph` (collected under it) names present at `dst`: blobs
    /// first, then child manifests, then `root` by digest, then the referrers. Writes no tag.
    pub async fn push_graph(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        root: &RawManifest,
        graph: &Graph,
        jobs: usize,
    ) -> Result<Pushed> {
        self.push_graph_with(src, dst, root, graph, jobs, RootKnown::Unknown)
            .await
    }

    /// [`Copier::push_graph`] for a caller that just looked the root up at `dst`: a root known
    /// to be absent is pushed without asking again. Child manifests (every blob being present)
    /// are pushed concurrently, up to `jobs` at once; then the root, then the referrers.
    pub async fn push_graph_with(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        root: &RawManifest,
        graph: &Graph,
        jobs: usize,
        known: RootKnown,
    ) -> Result<Pushed> {
        self.cancel
            .run(self.push_graph_now(src, dst, root, graph, jobs, known))
            .await
    }

    async fn push_graph_now(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        root: &RawManifest,
        graph: &Graph,
        jobs: usize,
        known: RootKnown,
    ) -> Result<Pushed> {
        let mut pushed = Pushed {
            blobs: self.copy_blobs(src, dst, graph, jobs).await?,
            ..Pushed::default()
        };
        let children: Vec<Result<bool>> = futures::stream::iter(&graph.manifests)
            .map(|m| self.push_manifest(dst, m, false))
            .buffered(jobs.max(1))
            .collect()
            .await;
        let root_absent = known == RootKnown::Absent;
        let mut errors = Vec::new();
        for r in children {
            match r {
                Ok(true) => pushed.manifests_pushed += 1,
                Ok(false) => pushed.manifests_present += 1,
                Err(e) => errors.push(e),
            }
        }
        Error::all(errors)?;
        // The root, then the referrers in order (a referrer after its subject).
        let mut absent = root_absent;
        let b = &pushed.blobs;
        pushed.root_deferred =
            known == RootKnown::ByTag && (b.copied + b.mounted > 0 || pushed.manifests_pushed > 0);
        let root = (!pushed.root_deferred).then_some(root);
        for m in root.into_iter().chain(&graph.referrers) {
            if self.push_manifest(dst, m, absent).await? {
                pushed.manifests_pushed += 1;
            } else {
                pushed.manifests_present += 1;
            }
            absent = false;
        }
        Ok(pushed)
    }

    /// Points `tags` at a prepared root.
    pub async fn tag(
        &self,
        dst: &dyn Store,
        prepared: Prepared,
        tags: &[String],
    ) -> Result<CopyReport> {
        let Prepared {
            root,
            mut report,
            tags_current,
            links,
            root_by_tag,
        } = prepared;
        let started = Instant::now();
        // Signatures first: a release tag never appears without them.
        report.referrer_tags = referrers::link(dst, &links).await?;
        if !report.unchanged && !tags_current && !tags.is_empty() {
            dst.put_manifest(&root, tags).await?;
            if root_by_tag {
                report.manifests_pushed += 1;
            }
            for t in tags {
                self.reporter.tagged(&dst.location(), t, &root.digest);
            }
        }
        report.unchanged |= tags_current
            && report.manifests_pushed == 0
            && report.blobs.copied + report.blobs.mounted == 0
            && report.referrer_tags.is_empty();
        report.seconds += started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The root and graph in `format`: `None` for the graph when nothing needed converting
    /// (the root is then the same manifest).
    async fn convert(
        &self,
        src: &dyn Store,
        root: RawManifest,
        format: Format,
        jobs: usize,
    ) -> Result<(RawManifest, Option<Graph>)> {
        let graph = collect(src, &root, jobs).await?;
        let all = graph.manifests.iter().chain(std::iter::once(&root));
        if all
            .clone()
            .all(|m| crate::convert::is_in(&m.media_type, format))
        {
            return Ok((root, None));
        }
        let mut c = Converter::new(format);
        let location = src.location();
        let mut manifests = Vec::with_capacity(graph.manifests.len());
        for m in &graph.manifests {
            manifests.push(c.convert(m, &location)?);
        }
        let root = c.convert(&root, &location)?;
        let blobs = graph.blobs;
        Ok((
            root,
            Some(Graph {
                manifests,
                blobs,
                ..Graph::default()
            }),
        ))
    }

    async fn all_tags_current(
        &self,
        dst: &dyn Store,
        digest: &Digest,
        tags: &[String],
    ) -> Result<bool> {
        if tags.is_empty() {
            return Ok(dst
                .resolve(&Target::Digest(digest.clone()))
                .await?
                .is_some());
        }
        for t in tags {
            match dst.resolve(&Target::Tag(t.clone())).await? {
                Some(d) if &d.digest == digest => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    async fn copy_blobs(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        graph: &Graph,
        jobs: usize,
    ) -> Result<BlobCounts> {
        let results: Vec<(u64, Result<BlobOutcome>)> = futures::stream::iter(&graph.blobs)
            .map(|d| async move {
                (
                    d.size,
                    copy_blob(src, dst, d, &self.ledger, &self.limits, &self.reporter).await,
                )
            })
            .buffer_unordered(jobs.max(1))
            .collect()
            .await;
        let mut counts = BlobCounts::default();
        let mut errors = Vec::new();
        for (size, r) in results {
            match r {
                Ok(outcome) => counts.add(outcome, size),
                Err(e) => errors.push(e),
            }
        }
        Error::all(errors).map(|()| counts)
    }

    /// Pushes a manifest by digest unless present (asked first unless `absent` says the caller
    /// knows); true when it was pushed.
    async fn push_manifest(&self, dst: &dyn Store, m: &RawManifest, absent: bool) -> Result<bool> {
        let present = !absent
            && dst
                .resolve(&Target::Digest(m.digest.clone()))
                .await?
                .is_some();
        if !present {
            dst.put_manifest(m, &[]).await?;
        }
        self.reporter
            .manifest_done(&m.digest, &m.media_type, present);
        Ok(!present)
    }
}
