//! One chart destination, an OCI repository or a ChartMuseum repository, behind one guard, in
//! two steps: [`ChartTarget::check`] decides what publishing does and reads only;
//! [`ChartTarget::write`] writes what the check decided. A release plan checks every chart
//! before any image tag is written and writes the charts after the tags.

use std::sync::Arc;
use std::time::SystemTime;

use super::museum::{MuseumCheck, MuseumClient};
use super::oci::{self, OciCheck};
use super::{Chart, PushOptions, PushReport};
use crate::error::Result;
use crate::store::Store;

/// Where a chart is published, opened.
pub enum ChartTarget {
    /// An OCI repository (`REGISTRY/PATH/<name>`) and the tag (`<version>`, `+` as `_`).
    Oci {
        store: Arc<dyn Store>,
        tag: String,
        /// The `org.opencontainers.image.created` annotation (RFC 3339).
        created: String,
    },
    /// A ChartMuseum repository.
    Museum(MuseumClient),
}

/// A push checked against its destination: the guard's verdict (in `report`) and what writing
/// it needs.
pub struct CheckedPush {
    pending: Pending,
}

enum Pending {
    Oci(Box<OciCheck>),
    Museum(Box<MuseumCheck>),
}

impl CheckedPush {
    /// What the check decided (and, once written, what happened).
    pub fn report(&self) -> &PushReport {
        match &self.pending {
            Pending::Oci(c) => &c.report,
            Pending::Museum(c) => &c.report,
        }
    }

    /// Takes the report.
    pub fn into_report(self) -> PushReport {
        match self.pending {
            Pending::Oci(c) => c.report,
            Pending::Museum(c) => c.report,
        }
    }
}

impl ChartTarget {
    /// An OCI destination; `created` is when the chart was made (Helm uses the archive's mtime).
    pub fn oci(store: Arc<dyn Store>, tag: String, created: SystemTime) -> ChartTarget {
        ChartTarget::Oci {
            store,
            tag,
            created: oci::rfc3339(created),
        }
    }

    /// The destination, for reports: `registry/repository:tag` or the repository URL.
    pub fn location(&self) -> String {
        match self {
            ChartTarget::Oci { store, tag, .. } => format!("{}:{tag}", store.location()),
            ChartTarget::Museum(m) => m.location(),
        }
    }

    /// Decides what publishing `chart` does (created, unchanged, replaced, refused); writes
    /// nothing.
    pub async fn check(&self, chart: &Chart, options: &PushOptions) -> Result<CheckedPush> {
        let pending = match self {
            ChartTarget::Oci {
                store,
                tag,
                created,
            } => Pending::Oci(Box::new(
                oci::check(store.as_ref(), tag, chart, options, created).await?,
            )),
            ChartTarget::Museum(m) => Pending::Museum(Box::new(m.check(chart, options).await?)),
        };
        Ok(CheckedPush { pending })
    }

    /// Writes what `checked` decided (nothing when unchanged or refused). The destination is
    /// not overwritten when the version appeared since the check: the report says refused.
    pub async fn write(&self, chart: &Chart, checked: &mut CheckedPush) -> Result<()> {
        match (self, &mut checked.pending) {
            (ChartTarget::Oci { store, tag, .. }, Pending::Oci(c)) => {
                oci::write(store.as_ref(), tag, c).await
            }
            (ChartTarget::Museum(m), Pending::Museum(c)) => Ok(m.write(chart, c).await?),
            _ => unreachable!("a check is written to the destination it was made for"),
        }
    }

    /// Checks, then writes unless `options.dry_run`.
    pub async fn push(&self, chart: &Chart, options: &PushOptions) -> Result<PushReport> {
        let mut checked = self.check(chart, options).await?;
        if !options.dry_run {
            self.write(chart, &mut checked).await?;
        }
        Ok(checked.into_report())
    }
}
