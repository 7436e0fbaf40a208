//! Promotion: publish tested images under release tags, one image or a whole plan, safely and
//! moving as few bytes as possible.
//!
//! Routes, cheapest first (decided per image from the two stores):
//! - same repository: manifest requests only (GET the source, HEAD the tags, PUT the tags);
//! - same registry, other repository: every missing blob by cross-repository mount;
//! - other registry: the copy engine; a blob crosses once per plan, later repositories of the
//!   destination registry mount it (one [`BlobLedger`](crate::copy::BlobLedger) for the plan).
//!
//! Guards, checked before anything is written: `expect_digest` (the source must resolve to it,
//! else [`PromoteError::UnexpectedDigest`]) and tags (an existing tag that points elsewhere is moved only
//! when [`Overwrite`] or `force` allows it, else [`PromoteError::TagRefused`]).
//!
//! Atomic by default: every image is resolved and guarded, then every blob and manifest of every
//! image is made present, and only then is any tag written. Any failure before that point means
//! no tag is written; the [`PlanReport`] says what failed.
//!
//! Referrers (signatures, SBOMs: [`PromoteOptions::referrers`]): found in the first phase,
//! pushed in the second with the image, made findable (fallback tags, cosign tags) at the start
//! of the tag phase, before any release tag: a failure there also means no tag is written.
//!
//! Charts: a plan's charts are checked with the images (a chart that may not be published
//! stops the plan before any tag is written) and pushed after every tag is written.

mod charts;
mod error;
mod expand;
mod expand_charts;
mod guard;
pub(crate) mod plan;
mod report;
mod run;
mod steps;
mod survey;
mod template;

use std::sync::Arc;

pub use charts::{ChartJob, ChartReport, ChartStatus, PlannedChart};
pub use error::{PlanProblem, PromoteError};
pub use guard::{TagAction, TagResult};
pub use plan::Position;
pub use report::{
    BlobSummary, ImageReport, ImageStatus, Outcome, PlanReport, PlanReporter, Route, SilentPlan,
    Totals,
};
pub use template::Vars;

use crate::copy::{BlobLedger, Copier, RegistryLimits};
use crate::digest::Digest;
use crate::progress::Silent;
use crate::reference::ImageRef;
use crate::referrers::ReferrerOptions;
use crate::store::{Store, Target};

/// Which existing destination tags may be moved to a new digest (besides `--force`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// None: an existing tag on another digest is refused.
    #[default]
    Never,
    /// Any tag may move.
    Any,
    /// These tags may move (e.g. `latest`, `1.4`).
    Tags(Vec<String>),
}

impl Overwrite {
    pub fn allows(&self, tag: &str) -> bool {
        match self {
            Overwrite::Never => false,
            Overwrite::Any => true,
            Overwrite::Tags(t) => t.iter().any(|x| x == tag),
        }
    }
}

/// A checked plan: what to promote where, before any store is opened.
#[derive(Clone, Debug)]
pub struct Plan {
    pub images: Vec<PlannedImage>,
    /// Charts pushed after every image tag is written (their guards checked before any is).
    pub charts: Vec<PlannedChart>,
    /// Blob transfers in flight per registry (`host[:port]`), from the plan's `limits:`.
    pub limits: Vec<(String, usize)>,
}

/// One image of a plan.
#[derive(Clone, Debug)]
pub struct PlannedImage {
    /// Names the image in reports: `file:line` of its plan entry, or the source reference.
    pub label: String,
    pub source: ImageRef,
    /// The repository (or layout) to promote into; no tag, no digest.
    pub destination: ImageRef,
    pub tags: Vec<String>,
    pub expect_digest: Option<Digest>,
    pub overwrite: Overwrite,
    /// The plan's `referrers:` / `referrers-type:` for this image; `None`: the run's.
    pub referrers: Option<ReferrerOptions>,
}

/// One image with its stores opened: the unit [`Promoter`] works on.
pub struct Job {
    pub label: String,
    pub source: Arc<dyn Store>,
    pub target: Target,
    pub destination: Arc<dyn Store>,
    pub tags: Vec<String>,
    pub expect_digest: Option<Digest>,
    pub overwrite: Overwrite,
    /// Which referrers travel with this image; `None`: [`PromoteOptions::referrers`].
    pub referrers: Option<ReferrerOptions>,
    /// Destination tags the caller looked up just now, with what each pointed at (`None`:
    /// absent): the first guard takes them as they are instead of asking again. The
    /// re-check before writing and the read-back after still ask the registry.
    pub seen_tags: Vec<(String, Option<Digest>)>,
    /// The source manifest `target` names, when the caller has read it already.
    pub manifest: Option<crate::manifest::RawManifest>,
}

/// Per-run options.
#[derive(Clone, Debug)]
pub struct PromoteOptions {
    /// Write tags only once every image is present at its destination (default true).
    pub atomic: bool,
    /// Move any existing tag (as if every image said `overwrite: ["*"]`).
    pub force: bool,
    /// Images worked on at once.
    pub images: usize,
    /// Blob transfers in flight per image.
    pub jobs: usize,
    /// Which referrers travel with each image (unless its job says otherwise). The library's
    /// default is none; `ferry promote` turns them on unless `--no-referrers`.
    pub referrers: ReferrerOptions,
}

impl Default for PromoteOptions {
    fn default() -> Self {
        PromoteOptions {
            atomic: true,
            force: false,
            images: 8,
            jobs: 8,
            referrers: ReferrerOptions::none(),
        }
    }
}

/// Runs promotions. One promoter shares one blob ledger and one set of per-registry limits
/// across every image it handles, so a blob crosses to a registry at most once.
pub struct Promoter {
    copier: Copier,
    reporter: Arc<dyn PlanReporter>,
    options: PromoteOptions,
}

impl Promoter {
    pub fn new(
        options: PromoteOptions,
        limits: RegistryLimits,
        reporter: Arc<dyn PlanReporter>,
    ) -> Self {
        let mut copier = Copier::new(Arc::new(Silent));
        copier.limits = Arc::new(limits);
        Promoter {
            copier,
            reporter,
            options,
        }
    }

    /// Shares `ledger` (e.g. one backed by the persistent blob-location cache) instead of a
    /// fresh one.
    pub fn with_ledger(mut self, ledger: Arc<BlobLedger>) -> Self {
        self.copier.ledger = ledger;
        self
    }

    pub fn options(&self) -> &PromoteOptions {
        &self.options
    }

    /// The copier whose ledger and limits every image shares.
    pub fn copier(&self) -> &Copier {
        &self.copier
    }
}
