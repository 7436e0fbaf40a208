//! Charts in a release plan: each packaged (or read) before any request, its guard checked
//! together with the images' guards (so a refused chart stops the plan before any tag is
//! written), and pushed only once every image tag is written, in plan order, stopping at the
//! first failure; the report says of each chart whether it was written.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use super::error::PromoteError;
use super::plan::Position;
use super::report::error_text;
use super::Promoter;
use crate::chart::{Chart, ChartError, ChartTarget, CheckedPush, PackageOptions, PushOptions};
use crate::chart::{PushOutcome, PushReport};
use crate::digest::Digest;
use crate::error::{Error, Result};

/// One chart of a plan, before anything is read.
#[derive(Clone, Debug)]
pub struct PlannedChart {
    /// `file:line` of its plan entry.
    pub label: String,
    /// The plan file and the position of the entry's `path`, for problems found when loading.
    pub file: String,
    pub position: Position,
    /// A chart directory or a `.tgz`.
    pub path: PathBuf,
    /// `oci://REGISTRY[/PATH]` or a ChartMuseum repository URL.
    pub destination: String,
    pub version: Option<String>,
    pub app_version: Option<String>,
    /// Provenance file; `None`: `<archive>.prov` when the chart is an archive and it exists.
    pub prov: Option<PathBuf>,
}

impl PlannedChart {
    /// Packages the directory (entries stamped `mtime`) or reads the archive, and reads the
    /// provenance file. A chart Helm would refuse is a plan problem at the entry's `path`.
    pub fn load(&self, mtime: u64) -> Result<(Chart, Option<Bytes>)> {
        let problem = |e: ChartError| {
            Error::from(PromoteError::Plan {
                file: self.file.clone(),
                problems: vec![self.position.problem(e.to_string())],
            })
        };
        let options = PackageOptions {
            version: self.version.clone(),
            app_version: self.app_version.clone(),
            mtime,
        };
        let chart = Chart::load(&self.path, &options).map_err(problem)?;
        let beside = || {
            let mut p = self.path.clone().into_os_string();
            p.push(".prov");
            Some(PathBuf::from(p)).filter(|p| self.path.is_file() && p.is_file())
        };
        let prov = match self.prov.clone().or_else(beside) {
            Some(p) => Some(Bytes::from(
                std::fs::read(&p).map_err(|e| problem(ChartError::io(&p, e)))?,
            )),
            None => None,
        };
        Ok((chart, prov))
    }
}

/// One chart with its destination opened: the unit the promoter pushes.
pub struct ChartJob {
    pub label: String,
    /// Where the chart came from (its path), for reports.
    pub source: String,
    pub chart: Chart,
    pub prov: Option<Bytes>,
    pub target: ChartTarget,
}

/// Where a chart got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChartStatus {
    /// Dry run: checked; nothing written.
    Planned,
    /// The destination holds it (written now, or already: see `action` and `written`).
    Published,
    /// Not written because the plan stopped (its guard may have passed: see `action`).
    Skipped,
    /// The destination holds other bytes under its version and may not replace them.
    Refused,
    Failed,
}

/// One chart of a run.
#[derive(Debug, Serialize)]
pub struct ChartReport {
    pub label: String,
    pub source: String,
    pub chart: String,
    pub version: String,
    /// `registry/repository:tag`, or the ChartMuseum upload URL once checked.
    pub destination: String,
    pub status: ChartStatus,
    /// What the guard decided (absent when checking failed).
    pub action: Option<PushOutcome>,
    /// The chart archive's digest.
    pub digest: Digest,
    /// What the destination held under this version before, if anything.
    pub previous: Option<Digest>,
    /// The OCI manifest's digest (OCI destinations).
    pub manifest: Option<Digest>,
    /// True once the chart has been written.
    pub written: bool,
    pub seconds: f64,
    #[serde(serialize_with = "error_text")]
    pub error: Option<Error>,
}

impl ChartReport {
    fn take(&mut self, r: &PushReport) {
        self.destination = r.destination.clone();
        self.action = Some(r.result);
        self.previous = r.previous.clone();
        self.manifest = r.manifest.clone();
    }

    fn fail(&mut self, e: Error) {
        let refused = matches!(&e, Error::Chart(c) if matches!(**c, ChartError::Refused { .. }));
        self.status = match refused {
            true => ChartStatus::Refused,
            false => ChartStatus::Failed,
        };
        self.error = Some(e);
    }
}

/// Per-chart state through the phases.
pub(super) struct ChartSlot {
    pub(super) report: ChartReport,
    checked: Option<CheckedPush>,
}

/// True when a chart failed or was refused.
pub(super) fn charts_stopped(slots: &[ChartSlot]) -> bool {
    slots.iter().any(|s| s.report.error.is_some())
}

impl Promoter {
    pub(super) fn chart_slots(&self, charts: &[ChartJob]) -> Vec<ChartSlot> {
        charts
            .iter()
            .map(|c| ChartSlot {
                report: ChartReport {
                    label: c.label.clone(),
                    source: c.source.clone(),
                    chart: c.chart.meta.name.clone(),
                    version: c.chart.meta.version.clone(),
                    destination: c.target.location(),
                    status: ChartStatus::Skipped,
                    action: None,
                    digest: c.chart.digest.clone(),
                    previous: None,
                    manifest: None,
                    written: false,
                    seconds: 0.0,
                    error: None,
                },
                checked: None,
            })
            .collect()
    }

    /// The survey: what pushing each chart would do (reads only); refusals become errors.
    pub(super) async fn check_charts(
        &self,
        charts: &[ChartJob],
        slots: &mut [ChartSlot],
        dry_run: bool,
    ) {
        let n = self.options.images.max(1);
        let force = self.options.force;
        let results: Vec<(usize, Result<CheckedPush>, f64)> =
            futures::stream::iter(charts.iter().enumerate())
                .map(|(i, c)| async move {
                    let t = Instant::now();
                    let options = PushOptions {
                        force,
                        dry_run,
                        prov: c.prov.clone(),
                    };
                    let r = c.target.check(&c.chart, &options).await;
                    (i, r, t.elapsed().as_secs_f64())
                })
                .buffer_unordered(n)
                .collect()
                .await;
        for (i, r, secs) in results {
            let slot = &mut slots[i];
            slot.report.seconds += secs;
            match r {
                Ok(checked) => {
                    slot.report.take(checked.report());
                    match checked.report().refusal() {
                        Some(e) => slot.report.fail(e.into()),
                        None if dry_run => slot.report.status = ChartStatus::Planned,
                        None => {}
                    }
                    slot.checked = Some(checked);
                }
                Err(e) => slot.report.fail(e),
            }
            if slot.report.error.is_some() || dry_run {
                self.reporter.chart_finished(i, &slot.report);
            }
        }
    }

    /// After every image tag: writes each checked chart in plan order; stops at the first
    /// failure (the charts after it stay skipped, unwritten).
    pub(super) async fn write_charts(&self, charts: &[ChartJob], slots: &mut [ChartSlot]) {
        for (i, (job, slot)) in charts.iter().zip(slots.iter_mut()).enumerate() {
            let Some(checked) = slot.checked.as_mut() else {
                continue;
            };
            let t = Instant::now();
            let r = job.target.write(&job.chart, checked).await;
            slot.report.seconds += t.elapsed().as_secs_f64();
            let after = checked.report();
            slot.report.take(after);
            let failed = match r {
                Err(e) => Some(e),
                Ok(()) => after.refusal().map(Error::from),
            };
            let stop = failed.is_some();
            match failed {
                Some(e) => slot.report.fail(e),
                None => {
                    slot.report.status = ChartStatus::Published;
                    slot.report.written = after.result.writes();
                }
            }
            self.reporter.chart_finished(i, &slot.report);
            if stop {
                return;
            }
        }
    }
}
