//! Running a sync: units of this shard, repositories in parallel; per repository one tag list,
//! one HEAD per tag on each side, and the tags that differ copied through the promotion
//! engine (or, with `platforms:`, the copy engine's platform selection).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;

use super::error::SyncError;
use super::plan::{units, SyncUnit};
use super::report::{RegistryRequests, RepoReport, SyncReport, SyncReporter, TagAction, TagReport};
use super::{Shard, SyncEntry, SyncPlan};
use crate::copy::{collect, select_platforms, CopyOptions, RegistryLimits};
use crate::digest::Digest;
use crate::error::{Error, Result, Side};
use crate::manifest::{Platform, RawManifest};
use crate::progress::Reporter;
use crate::promote::{
    BlobSummary, ImageStatus, Job, Overwrite, PlanReporter, PromoteOptions, Promoter,
};
use crate::reference::ImageRef;
use crate::referrers::ReferrerOptions;
use crate::store::{Store, Target};

/// How a sync reaches its stores: the CLI opens them through its one store cache.
#[async_trait]
pub trait Endpoints: Send + Sync {
    /// The store of a repository or layout reference (no tag), marked with `side`.
    fn open(&self, r: &ImageRef, side: Side) -> Result<Arc<dyn Store>>;
    /// Every repository a source registry's catalog lists.
    async fn catalog(&self, registry: &str) -> Result<Vec<String>>;
    /// Requests made so far, per registry and side.
    fn requests(&self) -> Vec<RegistryRequests> {
        Vec::new()
    }
}

/// Per-run options.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Look and report; write nothing.
    pub dry_run: bool,
    /// Stop starting work after the first failure (default: keep going).
    pub fail_fast: bool,
    pub shard: Shard,
    /// Repositories worked on at once.
    pub repositories: usize,
    /// Tags checked (and images copied) at once per repository.
    pub images: usize,
    /// Blob transfers in flight per image.
    pub jobs: usize,
    /// Referrers (signatures, SBOMs) for entries without `referrers:` of their own.
    pub referrers: ReferrerOptions,
    /// `referrers` came from the command line: it overrides every entry's.
    pub referrers_override: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            dry_run: false,
            fail_fast: false,
            shard: Shard::WHOLE,
            repositories: 8,
            images: 8,
            jobs: 8,
            referrers: ReferrerOptions::none(),
            referrers_override: false,
        }
    }
}

/// Runs syncs. One syncer shares one promoter (blob ledger, per-registry limits) across every
/// repository, so a blob crosses to a registry at most once per run.
pub struct Syncer {
    promoter: Promoter,
    options: SyncOptions,
    reporter: Arc<dyn SyncReporter>,
    stop: AtomicBool,
}

/// Forwards the promoter's blob events to the sync reporter.
struct Relay(Arc<dyn SyncReporter>);
impl PlanReporter for Relay {
    fn image(&self, _index: usize) -> Arc<dyn Reporter> {
        self.0.blobs()
    }
}

/// What the HEADs said about one target.
enum Check {
    Done(TagReport),
    /// Has to be copied; the source digest when known (not with platform selection).
    Copy(Target, Option<Digest>, Seen),
}

/// One source image to copy: the tags to point at it, whether it is pinned by digest as well,
/// and what the checks learnt.
struct ImageCopy {
    digest: Digest,
    tags: Vec<String>,
    pinned: bool,
    seen_tags: Vec<(String, Option<Digest>)>,
    manifest: Option<RawManifest>,
}

/// What a check learnt on the way, so the copy does not ask again.
#[derive(Default)]
struct Seen {
    /// What the destination tag pointed at (`None`: absent), when it was looked up.
    at_destination: Option<Option<Digest>>,
    /// The source manifest, when it was read (a tag absent at the destination is read with
    /// a GET at once, where a HEAD would be followed by one).
    manifest: Option<RawManifest>,
}

impl Syncer {
    pub fn new(
        options: SyncOptions,
        limits: RegistryLimits,
        reporter: Arc<dyn SyncReporter>,
    ) -> Self {
        let promote = PromoteOptions {
            atomic: false,
            force: true,
            images: 1,
            jobs: options.jobs.max(1),
            referrers: ReferrerOptions::none(),
        };
        let relay = Arc::new(Relay(reporter.clone()));
        Syncer {
            promoter: Promoter::new(promote, limits, relay),
            options,
            reporter,
            stop: AtomicBool::new(false),
        }
    }

    /// The referrer options of `entry`: its own, unless the command line set them.
    fn referrers_for<'a>(&'a self, entry: &'a SyncEntry) -> &'a ReferrerOptions {
        match (&entry.referrers, self.options.referrers_override) {
            (Some(r), false) => r,
            _ => &self.options.referrers,
        }
    }

    /// Shares `ledger` (e.g. one backed by the persistent blob-location cache).
    pub fn with_ledger(mut self, ledger: Arc<crate::copy::BlobLedger>) -> Self {
        self.promoter = self.promoter.with_ledger(ledger);
        self
    }

    /// The units of this shard, and the entries whose repositories could not be listed.
    pub async fn plan(
        &self,
        plan: &SyncPlan,
        ends: &dyn Endpoints,
    ) -> (Vec<SyncUnit>, Vec<(String, Error)>) {
        let (all, errors) = units(plan, ends).await;
        let shard = self.options.shard;
        (
            all.into_iter().filter(|u| shard.owns(&u.key())).collect(),
            errors,
        )
    }

    /// Syncs every unit of this shard. Never fails as a whole: the report holds the errors.
    pub async fn run(&self, plan: &SyncPlan, ends: &dyn Endpoints) -> SyncReport {
        let started = Instant::now();
        let (units, errors) = self.plan(plan, ends).await;
        self.reporter.planned(units.len());
        let mut repositories: Vec<RepoReport> = errors
            .into_iter()
            .map(|(label, e)| RepoReport {
                label,
                source: String::from("(catalog)"),
                destination: String::new(),
                tags: Vec::new(),
                left: Vec::new(),
                error: Some(e),
                seconds: 0.0,
            })
            .collect();
        if !repositories.is_empty() && self.options.fail_fast {
            self.stop.store(true, Ordering::SeqCst);
        }
        let mut done: Vec<(usize, RepoReport)> = futures::stream::iter(units.iter().enumerate())
            .map(|(i, u)| async move { (i, self.unit(plan, u, ends).await) })
            .buffer_unordered(self.options.repositories.max(1))
            .collect()
            .await;
        done.sort_by_key(|(i, _)| *i);
        repositories.extend(done.into_iter().map(|(_, r)| r));
        let mut report = SyncReport {
            dry_run: self.options.dry_run,
            shard: self.options.shard,
            stopped: self.stop.load(Ordering::SeqCst),
            repositories,
            totals: Default::default(),
            requests: ends.requests(),
            seconds: started.elapsed().as_secs_f64(),
        };
        report.finish();
        report
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn failed(&self) {
        if self.options.fail_fast {
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    async fn unit(&self, plan: &SyncPlan, u: &SyncUnit, ends: &dyn Endpoints) -> RepoReport {
        let started = Instant::now();
        let mut rep = RepoReport {
            label: u.label.clone(),
            source: u.key(),
            destination: u.destination.to_string(),
            tags: Vec::new(),
            left: Vec::new(),
            error: None,
            seconds: 0.0,
        };
        if !self.stopped() {
            if let Err(e) = self.repository(plan, u, ends, &mut rep).await {
                rep.error = Some(e);
                self.failed();
            }
        }
        rep.seconds = started.elapsed().as_secs_f64();
        self.reporter.repository_finished(&rep);
        rep
    }

    async fn repository(
        &self,
        plan: &SyncPlan,
        u: &SyncUnit,
        ends: &dyn Endpoints,
        rep: &mut RepoReport,
    ) -> Result<()> {
        let entry = &plan.entries[u.entry];
        let src = ends.open(&ImageRef::Registry(u.source.clone()), Side::Source)?;
        let dst = ends.open(&u.destination, Side::Destination)?;
        let targets: Vec<Target> = match &u.targets {
            Some(t) => t.clone(),
            None => {
                let listed = match entry.tags.needs_list() {
                    true => src.list_tags().await?,
                    false => Vec::new(),
                };
                // Tags that hold referrers (`sha256-<hex>`, cosign's `.sig`...) are not images:
                // with referrers on they travel with their subjects, with them off they stay.
                let listed: Vec<String> = listed
                    .into_iter()
                    .filter(|t| !crate::referrers::is_referrer_tag(t))
                    .collect();
                let sel = entry.tags.select(&listed);
                rep.left = sel.left;
                let digests = entry.tags.digests.iter().cloned().map(Target::Digest);
                sel.tags
                    .into_iter()
                    .map(Target::Tag)
                    .chain(digests)
                    .collect()
            }
        };
        let (src, dst) = (&src, &dst);
        let platforms = &entry.platforms;
        let referrers = self.referrers_for(entry);
        let n = self.options.images.max(1);
        let checks: Vec<Check> = futures::stream::iter(&targets)
            .map(|t| self.check(src.as_ref(), dst.as_ref(), t, platforms))
            .buffered(n)
            .collect()
            .await;
        // Per source digest: the tags to point at it, and whether it is pinned as well.
        let mut copies: BTreeMap<String, ImageCopy> = BTreeMap::new();
        let mut by_platform = Vec::new();
        for c in checks {
            match c {
                Check::Done(t) => self.settle(rep, src.as_ref(), dst.as_ref(), t),
                Check::Copy(t, None, _) => by_platform.push(t),
                Check::Copy(t, Some(d), seen) => {
                    let copy = copies.entry(d.to_string()).or_insert_with(|| ImageCopy {
                        digest: d.clone(),
                        tags: Vec::new(),
                        pinned: false,
                        seen_tags: Vec::new(),
                        manifest: None,
                    });
                    if copy.manifest.is_none() {
                        copy.manifest = seen.manifest;
                    }
                    match t {
                        Target::Tag(name) => {
                            if let Some(at) = seen.at_destination {
                                copy.seen_tags.push((name.clone(), at));
                            }
                            copy.tags.push(name)
                        }
                        Target::Digest(_) => copy.pinned = true,
                    }
                }
            }
        }
        // An entry either selects platforms (every target below) or not (every copy above).
        let mut results: Vec<Vec<TagReport>> = futures::stream::iter(copies.into_values())
            .map(|c| self.promote(src, dst, c, referrers))
            .buffer_unordered(n)
            .collect()
            .await;
        let selected: Vec<Vec<TagReport>> = futures::stream::iter(by_platform)
            .map(|t| self.with_platforms(src, dst, t, platforms, referrers))
            .buffer_unordered(n)
            .collect()
            .await;
        results.extend(selected);
        for t in results.into_iter().flatten() {
            self.settle(rep, src.as_ref(), dst.as_ref(), t);
        }
        let order = |t: &TagReport| targets.iter().position(|x| x.to_string() == t.tag);
        rep.tags.sort_by_key(order);
        Ok(())
    }

    fn settle(&self, rep: &mut RepoReport, src: &dyn Store, dst: &dyn Store, t: TagReport) {
        if t.action == TagAction::Failed {
            self.failed();
        }
        self.reporter
            .tag_finished(&src.location(), &dst.location(), &t);
        rep.tags.push(t);
    }

    /// One HEAD on each side (a pinned digest: one HEAD at the destination). With platform
    /// selection the destination digest is not the source's, so the copy engine decides.
    async fn check(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        t: &Target,
        platforms: &[Platform],
    ) -> Check {
        if !platforms.is_empty() {
            return Check::Copy(t.clone(), None, Seen::default());
        }
        let name = t.to_string();
        let (have, want) = match t {
            Target::Digest(d) => match dst.resolve(t).await {
                Ok(found) => (found.map(|x| x.digest), Some(d.clone())),
                Err(e) => return Check::Done(TagReport::failed(name, e)),
            },
            Target::Tag(tag) => {
                let missing = || {
                    let e = SyncError::MissingTag {
                        location: src.location(),
                        tag: tag.clone(),
                    };
                    Check::Done(TagReport::failed(
                        name.clone(),
                        Error::from(e).on(Side::Source),
                    ))
                };
                // The destination first: a tag it lacks is read from the source with one GET
                // (the copy needs the manifest), a tag it has is compared with a HEAD (which
                // pull limits do not count).
                let have = match dst.resolve(t).await {
                    Ok(have) => have.map(|x| x.digest),
                    Err(e) => return Check::Done(TagReport::failed(name, e)),
                };
                if have.is_none() {
                    return match src.get_manifest(t).await {
                        Ok(m) => {
                            let seen = Seen {
                                at_destination: Some(None),
                                manifest: Some(m.clone()),
                            };
                            Check::Copy(t.clone(), Some(m.digest), seen)
                        }
                        Err(e) if e.is_not_found() => missing(),
                        Err(e) => Check::Done(TagReport::failed(name, e)),
                    };
                }
                match src.resolve(t).await {
                    Ok(Some(want)) => (have, Some(want.digest)),
                    Ok(None) => return missing(),
                    Err(e) => return Check::Done(TagReport::failed(name, e)),
                }
            }
        };
        match (have, want) {
            (Some(h), Some(w)) if h == w => Check::Done(TagReport {
                source_digest: Some(w),
                destination_digest: Some(h),
                ..TagReport::new(name, TagAction::Skipped)
            }),
            (h, w) => {
                let seen = Seen {
                    at_destination: matches!(t, Target::Tag(_)).then_some(h),
                    manifest: None,
                };
                Check::Copy(t.clone(), w, seen)
            }
        }
    }

    /// Copies one source image (by digest) and points `tags` at it, through the promoter: every
    /// blob and manifest present before any tag, tags read back after writing.
    async fn promote(
        &self,
        src: &Arc<dyn Store>,
        dst: &Arc<dyn Store>,
        copy: ImageCopy,
        referrers: &ReferrerOptions,
    ) -> Vec<TagReport> {
        let ImageCopy {
            digest,
            tags,
            pinned,
            seen_tags,
            manifest,
        } = copy;
        let mut names = tags.clone();
        if pinned || tags.is_empty() {
            names.push(digest.to_string());
        }
        if self.stopped() {
            return not_started(names);
        }
        let job = Job {
            label: format!("{}@{digest}", src.location()),
            source: src.clone(),
            target: Target::Digest(digest.clone()),
            destination: dst.clone(),
            tags,
            expect_digest: None,
            overwrite: Overwrite::Any,
            referrers: Some(referrers.clone()),
            seen_tags,
            manifest,
        };
        let jobs = std::slice::from_ref(&job);
        let mut plan = match self.options.dry_run {
            true => self.promoter.dry_run(jobs).await,
            false => self.promoter.run(jobs).await,
        };
        let image = plan.images.remove(0);
        let action = match (image.status, &image.error) {
            (ImageStatus::Promoted, _) => TagAction::Copied,
            (ImageStatus::Planned, None) => TagAction::Planned,
            (_, Some(_)) => TagAction::Failed,
            // Not worked on without an error of its own: the promoter stopped before it.
            (_, None) => TagAction::NotStarted,
        };
        let error = image.error;
        one_image(
            names,
            action,
            Some(digest.clone()),
            Some(digest),
            image.blobs,
            error,
        )
    }

    /// A tag (or pinned digest) with platform selection, through the copy engine: the source
    /// manifest is read (the destination digest is the selection's, not the source's), then
    /// the destination tag looked up; nothing is written when it already names the selection.
    async fn with_platforms(
        &self,
        src: &Arc<dyn Store>,
        dst: &Arc<dyn Store>,
        t: Target,
        platforms: &[Platform],
        referrers: &ReferrerOptions,
    ) -> Vec<TagReport> {
        let name = t.to_string();
        if self.stopped() {
            return not_started(vec![name]);
        }
        let tags: Vec<String> = match &t {
            Target::Tag(tag) => vec![tag.clone()],
            Target::Digest(_) => Vec::new(),
        };
        let opts = CopyOptions {
            platforms: platforms.to_vec(),
            jobs: self.options.jobs.max(1),
            referrers: referrers.clone(),
            format: None,
        };
        let r = match self.options.dry_run {
            true => self.survey(src.as_ref(), dst.as_ref(), &t, &opts).await,
            false => {
                // A selection already at the destination is skipped as a tag check skips an
                // image: without looking for referrers (the copy engine would, every run).
                match self
                    .current_selection(src.as_ref(), dst.as_ref(), &t, &opts)
                    .await
                {
                    Ok(Some(ids)) => {
                        return one_image(
                            vec![name],
                            TagAction::Skipped,
                            Some(ids.0),
                            Some(ids.1),
                            BlobSummary::default(),
                            None,
                        )
                    }
                    Ok(None) => {}
                    Err(e) => return vec![TagReport::failed(name, e)],
                }
                let copier = self.promoter.copier().sharing(self.reporter.blobs());
                copier
                    .copy(src.as_ref(), &t, dst.as_ref(), &tags, &opts)
                    .await
                    .map(|c| {
                        let action = match c.unchanged {
                            true => TagAction::Skipped,
                            false => TagAction::Copied,
                        };
                        let ids = (c.source_digest, c.destination_digest);
                        (action, ids, BlobSummary::from(c.blobs))
                    })
            }
        };
        match r {
            Ok((action, (s, d), blobs)) => {
                one_image(vec![name], action, Some(s), Some(d), blobs, None)
            }
            Err(e) => vec![TagReport::failed(name, e)],
        }
    }

    /// With platform selection: the (source, selection) digests when the destination already
    /// holds the selection under `t`, else `None`.
    async fn current_selection(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        t: &Target,
        opts: &CopyOptions,
    ) -> Result<Option<(Digest, Digest)>> {
        if !opts.referrers.enabled {
            // The copy engine's own check is as cheap: nothing to save.
            return Ok(None);
        }
        let (_, ids, current) = selection(src, dst, t, opts).await?;
        Ok(current.then_some(ids))
    }

    /// Dry run with platform selection: what the copy engine would do, read-only.
    async fn survey(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        t: &Target,
        opts: &CopyOptions,
    ) -> Result<(TagAction, (Digest, Digest), BlobSummary)> {
        let (root, ids, current) = selection(src, dst, t, opts).await?;
        if current {
            return Ok((TagAction::Skipped, ids, BlobSummary::default()));
        }
        let graph = collect(src, &root, opts.jobs).await?;
        let mut blobs = BlobSummary::default();
        for b in &graph.blobs {
            match dst.has_blob(b).await? {
                true => (blobs.skipped += 1, blobs.bytes_skipped += b.size),
                false => (blobs.copied += 1, blobs.bytes_copied += b.size),
            };
        }
        Ok((TagAction::Planned, ids, blobs))
    }
}

fn not_started(names: Vec<String>) -> Vec<TagReport> {
    names
        .into_iter()
        .map(|n| TagReport::new(n, TagAction::NotStarted))
        .collect()
}

/// The reports of the tags of one image: blobs counted on the first, the error on the first.
fn one_image(
    names: Vec<String>,
    action: TagAction,
    source: Option<Digest>,
    destination: Option<Digest>,
    blobs: BlobSummary,
    mut error: Option<Error>,
) -> Vec<TagReport> {
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| TagReport {
            source_digest: source.clone(),
            destination_digest: destination.clone(),
            blobs: if i == 0 {
                blobs
            } else {
                BlobSummary::default()
            },
            error: error.take(),
            ..TagReport::new(name, action)
        })
        .collect()
}

/// A platform selection of `t`: its root manifest, the (source, selection) digests, and whether
/// the destination already holds the selection under `t`.
async fn selection(
    src: &dyn Store,
    dst: &dyn Store,
    t: &Target,
    opts: &CopyOptions,
) -> Result<(crate::manifest::RawManifest, (Digest, Digest), bool)> {
    let source = src.get_manifest(t).await?;
    let source_digest = source.digest.clone();
    let (root, _) = select_platforms(src, source, &opts.platforms).await?;
    let at = match t {
        Target::Tag(_) => t.clone(),
        Target::Digest(_) => Target::Digest(root.digest.clone()),
    };
    let current = dst
        .resolve(&at)
        .await?
        .is_some_and(|d| d.digest == root.digest);
    let ids = (source_digest, root.digest.clone());
    Ok((root, ids, current))
}
