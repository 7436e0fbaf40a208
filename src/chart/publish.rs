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
            created: rfc3339(created),
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

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC, whole seconds), as Go's `time.RFC3339` prints UTC.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_utc() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(rfc3339(t(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(t(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(t(1_767_225_599)), "2025-12-31T23:59:59Z");
    }
}
