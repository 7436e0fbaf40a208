//! What a promotion did (or, in a dry run, would do), per image and in total; and the progress
//! events a plan emits.

use std::sync::Arc;

use serde::{Serialize, Serializer};

use super::charts::{ChartReport, ChartStatus};
use super::error::PromoteError;
use super::guard::{TagAction, TagResult};
use crate::copy::BlobCounts;
use crate::digest::Digest;
use crate::error::Error;
use crate::progress::{Reporter, Silent};

/// How an image's blobs travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// Source and destination are one repository: tags only.
    SameRepository,
    /// Another repository of the same registry: blobs by mount.
    SameRegistry,
    /// Another registry: blobs streamed (once per plan), then mounted within the destination.
    CrossRegistry,
    /// An OCI layout on either side.
    Local,
}

/// Where an image got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageStatus {
    /// Dry run: resolved and guarded; nothing written.
    Planned,
    /// Its tags point at its digest (written now, or already).
    Promoted,
    /// Present at the destination, but tags not written because the plan stopped.
    Prepared,
    /// Not worked on (resolved at most) because the plan stopped.
    Skipped,
    /// A guard refused it (expected digest or tag).
    Refused,
    Failed,
}

/// How the whole run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Dry run: nothing written.
    Planned,
    /// Every image promoted and every chart published.
    Promoted,
    /// Something failed before the tag phase: no tag (and no chart) was written.
    NoTagsWritten,
    /// Some tags or charts written, others not (tag or chart phase failures, `--no-atomic`).
    Partial,
}

/// Blobs of one image (or all): what was (or would be) copied, mounted or found present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BlobSummary {
    pub copied: usize,
    pub mounted: usize,
    pub skipped: usize,
    pub bytes_copied: u64,
    pub bytes_mounted: u64,
    pub bytes_skipped: u64,
}

impl BlobSummary {
    pub fn add(&mut self, o: &BlobSummary) {
        self.copied += o.copied;
        self.mounted += o.mounted;
        self.skipped += o.skipped;
        self.bytes_copied += o.bytes_copied;
        self.bytes_mounted += o.bytes_mounted;
        self.bytes_skipped += o.bytes_skipped;
    }
}

impl From<BlobCounts> for BlobSummary {
    fn from(c: BlobCounts) -> Self {
        BlobSummary {
            copied: c.copied,
            mounted: c.mounted,
            skipped: c.skipped,
            bytes_copied: c.bytes_copied,
            bytes_mounted: c.bytes_mounted,
            bytes_skipped: c.bytes_skipped,
        }
    }
}

/// One image of a run.
#[derive(Debug, Serialize)]
pub struct ImageReport {
    pub label: String,
    pub source: String,
    pub destination: String,
    pub status: ImageStatus,
    pub route: Option<Route>,
    /// What the source resolved to (absent when resolving failed).
    pub digest: Option<Digest>,
    pub media_type: Option<String>,
    pub tags: Vec<TagResult>,
    pub blobs: BlobSummary,
    pub manifests_pushed: usize,
    /// Referrers found for the image (signatures, SBOMs), moved or already there; a dry run
    /// lists those that would move (`present: false`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<crate::copy::FoundReferrer>,
    /// Referrer tags written: fallback indexes (`sha256-<hex>`) and cosign legacy tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrer_tags: Vec<String>,
    pub seconds: f64,
    #[serde(serialize_with = "error_text")]
    pub error: Option<Error>,
}

pub(super) fn error_text<S: Serializer>(e: &Option<Error>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_some(&e.to_string()),
        None => s.serialize_none(),
    }
}

impl ImageReport {
    pub(super) fn new(label: &str, source: String, destination: String) -> Self {
        ImageReport {
            label: label.to_string(),
            source,
            destination,
            status: ImageStatus::Skipped,
            route: None,
            digest: None,
            media_type: None,
            tags: Vec::new(),
            blobs: BlobSummary::default(),
            manifests_pushed: 0,
            referrers: Vec::new(),
            referrer_tags: Vec::new(),
            seconds: 0.0,
            error: None,
        }
    }

    /// Tags with a given action.
    pub fn count(&self, action: TagAction) -> usize {
        self.tags.iter().filter(|t| t.action == action).count()
    }
}

/// Totals over a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub images: usize,
    pub promoted: usize,
    pub failed: usize,
    pub blobs: BlobSummary,
    /// Tags created (a dry run: that would be); a tag not written is not counted.
    pub tags_created: usize,
    pub tags_unchanged: usize,
    /// Tags moved (a dry run: that would be); a tag not written is not counted.
    pub tags_moved: usize,
    pub tags_refused: usize,
    pub tags_written: usize,
    pub charts: usize,
    pub charts_published: usize,
    pub charts_failed: usize,
    pub charts_written: usize,
}

/// The result of a run (or dry run) over a plan.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub dry_run: bool,
    pub atomic: bool,
    pub outcome: Outcome,
    pub images: Vec<ImageReport>,
    /// The plan's charts, pushed after every image tag.
    pub charts: Vec<ChartReport>,
    pub totals: Totals,
    pub seconds: f64,
}

impl PlanReport {
    pub(super) fn new(
        images: Vec<ImageReport>,
        charts: Vec<ChartReport>,
        dry_run: bool,
        atomic: bool,
        seconds: f64,
    ) -> PlanReport {
        let outcome = if dry_run {
            Outcome::Planned
        } else if images.iter().all(|i| i.status == ImageStatus::Promoted)
            && charts.iter().all(|c| c.status == ChartStatus::Published)
        {
            Outcome::Promoted
        } else if images.iter().any(|i| i.tags.iter().any(|t| t.written))
            || charts.iter().any(|c| c.written)
        {
            Outcome::Partial
        } else {
            Outcome::NoTagsWritten
        };
        let mut report = PlanReport {
            dry_run,
            atomic,
            outcome,
            images,
            charts,
            totals: Totals::default(),
            seconds,
        };
        report.finish();
        report
    }

    fn finish(&mut self) {
        let mut t = Totals {
            images: self.images.len(),
            ..Totals::default()
        };
        for i in &self.images {
            t.promoted += usize::from(i.status == ImageStatus::Promoted);
            t.failed += usize::from(matches!(
                i.status,
                ImageStatus::Failed | ImageStatus::Refused
            ));
            t.blobs.add(&i.blobs);
            // A real run counts what happened: a tag the plan stopped before is not created.
            let done = |a: TagAction| {
                i.tags
                    .iter()
                    .filter(|x| x.action == a && (self.dry_run || x.written))
                    .count()
            };
            t.tags_created += done(TagAction::Created);
            t.tags_unchanged += i.count(TagAction::Unchanged);
            t.tags_moved += done(TagAction::Moved);
            t.tags_refused += i.count(TagAction::Refused);
            t.tags_written += i.tags.iter().filter(|x| x.written).count();
        }
        t.charts = self.charts.len();
        for c in &self.charts {
            t.charts_published += usize::from(c.status == ChartStatus::Published);
            t.charts_failed += usize::from(c.error.is_some());
            t.charts_written += usize::from(c.written);
        }
        self.totals = t;
    }

    /// True when nothing failed or was refused (a dry run that found refusals is not ok).
    pub fn ok(&self) -> bool {
        self.images.iter().all(|i| i.error.is_none())
            && self.charts.iter().all(|c| c.error.is_none())
    }

    /// The errors of every image, most decisive first: an unexpected source digest, then a
    /// refused tag, then the rest in plan order.
    pub fn take_errors(&mut self) -> Vec<Error> {
        let mut errors: Vec<Error> = self
            .images
            .iter_mut()
            .filter_map(|i| i.error.take())
            .chain(self.charts.iter_mut().filter_map(|c| c.error.take()))
            .collect();
        let refused = |e: &Error| matches!(e.promotion(), Some(PromoteError::TagRefused { .. }));
        errors.sort_by_key(|e| match e {
            e if matches!(e.promotion(), Some(PromoteError::UnexpectedDigest { .. })) => 0,
            e if refused(e) => 1,
            Error::Chart(c) if matches!(**c, crate::chart::ChartError::Refused { .. }) => 1,
            Error::Many(v) if v.first().is_some_and(refused) => 1,
            _ => 2,
        });
        errors
    }
}

/// Progress of a plan: blob events per image, and image milestones. Defaults do nothing.
pub trait PlanReporter: Send + Sync {
    /// Where blob-level events of image `index` go.
    fn image(&self, _index: usize) -> Arc<dyn Reporter> {
        Arc::new(Silent)
    }
    /// Image `index` resolved and guarded; `bytes` is the size of its blobs (0 when nothing
    /// has to be pushed).
    fn image_resolved(&self, _index: usize, _image: &ImageReport, _bytes: u64) {}
    /// Every blob and manifest of image `index` is at its destination.
    fn image_prepared(&self, _index: usize, _image: &ImageReport) {}
    /// Image `index` reached its final state (promoted, failed, refused...).
    fn image_finished(&self, _index: usize, _image: &ImageReport) {}
    /// Chart `index` was checked and refused or failed, or (dry run) checked, or written.
    fn chart_finished(&self, _index: usize, _chart: &ChartReport) {}
}

/// A plan reporter that ignores everything.
pub struct SilentPlan;
impl PlanReporter for SilentPlan {}
