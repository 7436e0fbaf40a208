//! Running a plan in phases: resolve and guard every image, make every blob and manifest
//! present, then write tags (atomic); or the three steps per image (`atomic: false`); or the
//! first phase plus a blob survey (dry run). A plan's charts are checked in the first phase and
//! written after the tags (`charts.rs`); the steps of one image are in `steps.rs`.

use std::time::Instant;

use futures::StreamExt;

use super::charts::{charts_stopped, ChartJob, ChartSlot};
use super::error::PromoteError;
use super::guard::{self, TagResult};
use super::report::{ImageReport, ImageStatus, PlanReport, Route};
use super::survey::{Presence, Simulation};
use super::{Job, Promoter};
use crate::copy::{Graph, Pushed};
use crate::error::{Error, Result};
use crate::manifest::RawManifest;
use crate::store::{Store, Target};

/// An image after the first phase.
pub(super) struct Resolved {
    pub(super) root: RawManifest,
    pub(super) route: Route,
    /// What has to be pushed; `None` when nothing has to (same repository, or the root
    /// manifest is already at the destination, which implies everything it names is).
    pub(super) graph: Option<Graph>,
    pub(super) tags: Vec<TagResult>,
    /// Dry run only: which blobs the destination has.
    pub(super) presence: Presence,
    /// Referrers found at the source (signatures, SBOMs), for the report.
    pub(super) found: Vec<crate::copy::FoundReferrer>,
    /// The root manifest was at the destination when phase 1 looked (a graph then holds only
    /// referrers).
    pub(super) root_present: bool,
}

/// Per-image state through the phases.
pub(super) struct Slot {
    pub(super) report: ImageReport,
    pub(super) resolved: Option<Resolved>,
    /// Whether preparing wrote anything (then tags are looked up again before writing).
    pub(super) wrote: bool,
}

/// `location:tag` or `location@digest`, for messages.
pub(super) fn reference(store: &dyn Store, target: &Target) -> String {
    match target {
        Target::Tag(t) => format!("{}:{t}", store.location()),
        Target::Digest(d) => format!("{}@{d}", store.location()),
    }
}

pub(super) fn route(src: &dyn Store, dst: &dyn Store) -> Route {
    match (src.repo_location(), dst.repo_location()) {
        (Some(s), Some(d)) if s == d => Route::SameRepository,
        (Some(s), Some(d)) if s.registry == d.registry => Route::SameRegistry,
        (Some(_), Some(_)) => Route::CrossRegistry,
        _ if src.location() == dst.location() => Route::SameRepository,
        _ => Route::Local,
    }
}

/// Guard failures are refusals; everything else is a failure.
fn status_of(e: &Error) -> ImageStatus {
    let guard = |e: &Error| {
        e.promotion().is_some_and(|p| {
            !matches!(
                p,
                PromoteError::Plan { .. } | PromoteError::TagMovedConcurrently { .. }
            )
        })
    };
    match e {
        Error::Many(v) if v.iter().all(guard) => ImageStatus::Refused,
        e if guard(e) => ImageStatus::Refused,
        _ => ImageStatus::Failed,
    }
}

impl Promoter {
    /// Promotes every job: atomically (no tag before every image is present) unless
    /// `options.atomic` is false. Never fails as a whole: the report holds each image's error.
    pub async fn run(&self, jobs: &[Job]) -> PlanReport {
        self.run_plan(jobs, &[]).await
    }

    /// Promotes every job, then pushes every chart. Every chart's guard is checked with the
    /// images' (atomic: a refused chart means no tag is written); charts are written only once
    /// every image is promoted.
    pub async fn run_plan(&self, jobs: &[Job], charts: &[ChartJob]) -> PlanReport {
        let started = Instant::now();
        let mut slots = self.slots(jobs);
        let mut chart_slots = self.chart_slots(charts);
        if self.options.atomic {
            self.run_atomic(jobs, &mut slots, charts, &mut chart_slots)
                .await;
        } else {
            self.check_charts(charts, &mut chart_slots, false).await;
            let n = self.options.images.max(1);
            let done: Vec<(usize, Slot)> = futures::stream::iter(slots.into_iter().enumerate())
                .map(|(i, mut slot)| async move {
                    self.one_by_one(i, &jobs[i], &mut slot).await;
                    (i, slot)
                })
                .buffer_unordered(n)
                .collect()
                .await;
            slots = order(done);
            if !charts_stopped(&chart_slots) && all_promoted(&slots) {
                self.write_charts(charts, &mut chart_slots).await;
            }
        }
        self.report(slots, chart_slots, false, started)
    }

    /// Resolves and guards every job and surveys its blobs; writes nothing.
    pub async fn dry_run(&self, jobs: &[Job]) -> PlanReport {
        self.dry_run_plan(jobs, &[]).await
    }

    /// [`dry_run`](Self::dry_run), and checks what pushing each chart would do.
    pub async fn dry_run_plan(&self, jobs: &[Job], charts: &[ChartJob]) -> PlanReport {
        let started = Instant::now();
        let mut slots = self.slots(jobs);
        let mut chart_slots = self.chart_slots(charts);
        futures::join!(
            self.resolve_all(jobs, &mut slots, true),
            self.check_charts(charts, &mut chart_slots, true)
        );
        let mut sim = Simulation::default();
        for (slot, job) in slots.iter_mut().zip(jobs) {
            if let Some(r) = &slot.resolved {
                let summary = sim.image(job.source.as_ref(), job.destination.as_ref(), &r.presence);
                slot.report.blobs = summary;
                if slot.report.error.is_none() {
                    slot.report.status = ImageStatus::Planned;
                }
            }
        }
        self.report(slots, chart_slots, true, started)
    }

    fn slots(&self, jobs: &[Job]) -> Vec<Slot> {
        jobs.iter()
            .map(|j| Slot {
                report: ImageReport::new(
                    &j.label,
                    reference(j.source.as_ref(), &j.target),
                    j.destination.location(),
                ),
                resolved: None,
                wrote: false,
            })
            .collect()
    }

    fn report(
        &self,
        slots: Vec<Slot>,
        charts: Vec<ChartSlot>,
        dry_run: bool,
        started: Instant,
    ) -> PlanReport {
        PlanReport::new(
            slots.into_iter().map(|s| s.report).collect(),
            charts.into_iter().map(|c| c.report).collect(),
            dry_run,
            self.options.atomic,
            started.elapsed().as_secs_f64(),
        )
    }

    async fn run_atomic(
        &self,
        jobs: &[Job],
        slots: &mut [Slot],
        charts: &[ChartJob],
        chart_slots: &mut [ChartSlot],
    ) {
        futures::join!(
            self.resolve_all(jobs, slots, false),
            self.check_charts(charts, chart_slots, false)
        );
        if stopped(slots) || charts_stopped(chart_slots) {
            return;
        }
        self.prepare_all(jobs, slots).await;
        if stopped(slots) {
            return;
        }
        if slots.iter().any(|s| s.wrote) {
            self.recheck_all(jobs, slots).await;
            if stopped(slots) {
                return;
            }
        }
        self.link_all(jobs, slots).await;
        if stopped(slots) {
            return;
        }
        let n = self.options.images.max(1);
        let results: Vec<(usize, Result<()>, f64)> =
            futures::stream::iter(slots.iter_mut().enumerate())
                .map(|(i, slot)| async move {
                    let t = Instant::now();
                    let r = self.write_tags(&jobs[i], slot).await;
                    (i, r, t.elapsed().as_secs_f64())
                })
                .buffer_unordered(n)
                .collect()
                .await;
        for (i, r, secs) in results {
            self.finish(i, &mut slots[i], r, secs);
        }
        if all_promoted(slots) {
            self.write_charts(charts, chart_slots).await;
        }
    }

    /// `--no-atomic`: one image from start to tags, independently of the others.
    async fn one_by_one(&self, i: usize, job: &Job, slot: &mut Slot) {
        let t = Instant::now();
        let r = self.resolve(job, false).await;
        if !self.settle_resolved(i, slot, r, t) {
            return;
        }
        let t = Instant::now();
        let r = self.prepare(i, job, slot).await;
        if !self.settle_prepared(i, slot, r, t) {
            return;
        }
        let t = Instant::now();
        let mut r = Ok(());
        if slot.wrote {
            r = self.recheck(job, slot).await;
        }
        if r.is_ok() {
            r = self.link_referrers(job, slot).await;
        }
        if r.is_ok() {
            r = self.write_tags(job, slot).await;
        }
        self.finish(i, slot, r, t.elapsed().as_secs_f64());
    }

    async fn resolve_all(&self, jobs: &[Job], slots: &mut [Slot], dry_run: bool) {
        let n = self.options.images.max(1);
        let results: Vec<(usize, Result<Resolved>, Instant)> =
            futures::stream::iter(jobs.iter().enumerate())
                .map(|(i, job)| async move {
                    let t = Instant::now();
                    (i, self.resolve(job, dry_run).await, t)
                })
                .buffer_unordered(n)
                .collect()
                .await;
        for (i, r, t) in results {
            self.settle_resolved(i, &mut slots[i], r, t);
        }
    }

    async fn prepare_all(&self, jobs: &[Job], slots: &mut [Slot]) {
        let n = self.options.images.max(1);
        let results: Vec<(usize, Result<Pushed>, Instant)> =
            futures::stream::iter(slots.iter().enumerate())
                .map(|(i, slot)| async move {
                    let t = Instant::now();
                    (i, self.prepare(i, &jobs[i], slot).await, t)
                })
                .buffer_unordered(n)
                .collect()
                .await;
        for (i, r, t) in results {
            self.settle_prepared(i, &mut slots[i], r, t);
        }
    }

    async fn recheck_all(&self, jobs: &[Job], slots: &mut [Slot]) {
        let n = self.options.images.max(1);
        let results: Vec<(usize, Result<()>)> = futures::stream::iter(slots.iter_mut().enumerate())
            .map(|(i, slot)| async move { (i, self.recheck(&jobs[i], slot).await) })
            .buffer_unordered(n)
            .collect()
            .await;
        for (i, r) in results {
            if let Err(e) = r {
                self.finish(i, &mut slots[i], Err(e), 0.0);
            }
        }
    }

    /// Every image's referrer tags, before any release tag.
    async fn link_all(&self, jobs: &[Job], slots: &mut [Slot]) {
        let n = self.options.images.max(1);
        let results: Vec<(usize, Result<()>)> = futures::stream::iter(slots.iter_mut().enumerate())
            .map(|(i, slot)| async move { (i, self.link_referrers(&jobs[i], slot).await) })
            .buffer_unordered(n)
            .collect()
            .await;
        for (i, r) in results {
            if let Err(e) = r {
                self.finish(i, &mut slots[i], Err(e), 0.0);
            }
        }
    }

    /// Records the first phase; false when the image cannot go on.
    fn settle_resolved(&self, i: usize, slot: &mut Slot, r: Result<Resolved>, t: Instant) -> bool {
        slot.report.seconds += t.elapsed().as_secs_f64();
        let resolved = match r {
            Ok(resolved) => resolved,
            Err(e) => {
                self.finish(i, slot, Err(e), 0.0);
                return false;
            }
        };
        let rep = &mut slot.report;
        rep.digest = Some(resolved.root.digest.clone());
        rep.media_type = Some(resolved.root.media_type.clone());
        rep.route = Some(resolved.route);
        rep.tags = resolved.tags.clone();
        rep.referrers = resolved.found.clone();
        let location = slot.report.destination.clone();
        let refused = guard::refusals(&location, &resolved.root.digest, &resolved.tags);
        let bytes = resolved
            .graph
            .as_ref()
            .map(|g| g.blobs.iter().map(|b| b.size).sum())
            .unwrap_or(0);
        slot.resolved = Some(resolved);
        self.reporter.image_resolved(i, &slot.report, bytes);
        if let Some(e) = refused {
            self.finish(i, slot, Err(e), 0.0);
            return false;
        }
        true
    }

    /// Records the second phase; false when the image cannot go on.
    fn settle_prepared(&self, i: usize, slot: &mut Slot, r: Result<Pushed>, t: Instant) -> bool {
        slot.report.seconds += t.elapsed().as_secs_f64();
        match r {
            Ok(p) => {
                slot.report.blobs = p.blobs.into();
                slot.report.manifests_pushed = p.manifests_pushed;
                slot.wrote = p.manifests_pushed > 0 || p.blobs.copied + p.blobs.mounted > 0;
                slot.report.status = ImageStatus::Prepared;
                self.reporter.image_prepared(i, &slot.report);
                true
            }
            Err(e) => {
                self.finish(i, slot, Err(e), 0.0);
                false
            }
        }
    }

    /// Records the end of an image: promoted, or its error.
    fn finish(&self, i: usize, slot: &mut Slot, r: Result<()>, secs: f64) {
        slot.report.seconds += secs;
        if let Some(res) = &slot.resolved {
            slot.report.tags = res.tags.clone();
        }
        match r {
            Ok(()) => slot.report.status = ImageStatus::Promoted,
            Err(e) => {
                slot.report.status = status_of(&e);
                slot.report.error = Some(e);
            }
        }
        self.reporter.image_finished(i, &slot.report);
    }
}

/// True when an image failed: the atomic run stops (images not yet failed stay as they are).
fn stopped(slots: &[Slot]) -> bool {
    slots.iter().any(|s| s.report.error.is_some())
}

fn all_promoted(slots: &[Slot]) -> bool {
    slots
        .iter()
        .all(|s| s.report.status == ImageStatus::Promoted)
}

fn order(mut done: Vec<(usize, Slot)>) -> Vec<Slot> {
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, s)| s).collect()
}
