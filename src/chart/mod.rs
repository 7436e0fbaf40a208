//! Helm charts without Helm: package a chart directory like `helm package`, and publish it,
//! guarded like a tag, to an OCI registry (Helm's OCI format) or a ChartMuseum-API server.
//!
//! Publishing is idempotent: a version that already exists with the same bytes is left alone
//! (`unchanged`); one that exists with other bytes is refused unless forced (`replaced`).

pub mod archive;
pub mod error;
mod http;
pub mod ignore;
pub mod meta;
pub mod museum;
pub mod oci;
pub mod package;
pub mod publish;

use std::path::Path;

use bytes::Bytes;

use crate::digest::Digest;
pub use error::ChartError;
pub use meta::ChartMeta;
pub use package::{package_dir, PackageOptions};
pub use publish::{ChartTarget, CheckedPush};

/// A packaged chart: its archive bytes (exactly what is published), digest and metadata.
#[derive(Clone, Debug)]
pub struct Chart {
    pub meta: ChartMeta,
    pub archive: Bytes,
    /// SHA-256 of `archive`: ChartMuseum's index `digest` and the OCI content layer's digest.
    pub digest: Digest,
}

impl Chart {
    pub(crate) fn new(meta: ChartMeta, archive: Bytes) -> Chart {
        let digest = Digest::of(&archive);
        Chart {
            meta,
            archive,
            digest,
        }
    }

    /// Checks an existing archive the way Helm's loader does; the bytes are kept as they are.
    pub fn from_archive(archive: Bytes, label: &str) -> Result<Chart, ChartError> {
        let files = archive::read_archive(&archive, label)?;
        let meta = archive::check_files(&files, label)?;
        Ok(Chart::new(meta, archive))
    }

    /// A chart directory (packaged with `options`) or a `.tgz` file (taken byte for byte;
    /// `options` must then be empty).
    pub fn load(path: &Path, options: &PackageOptions) -> Result<Chart, ChartError> {
        if path.is_dir() {
            return package_dir(path, options);
        }
        let label = path.display().to_string();
        if options.version.is_some() || options.app_version.is_some() {
            return Err(ChartError::invalid(
                &label,
                "--version and --app-version apply to a chart directory; an archive is published byte for byte",
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| ChartError::io(path, e))?;
        Chart::from_archive(bytes.into(), &label)
    }

    /// `<name>-<version>.tgz`.
    pub fn file_name(&self) -> String {
        self.meta.file_name()
    }
}

/// What publishing a chart did (or, in a dry run, would do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PushOutcome {
    /// The version did not exist; it was written.
    Created,
    /// The version exists with the same bytes; nothing was written.
    Unchanged,
    /// The version existed with other bytes and was overwritten (force).
    Replaced,
    /// The version exists with other bytes; nothing was written.
    Refused,
}

impl PushOutcome {
    /// Whether publishing has to write (created or replaced).
    pub fn writes(self) -> bool {
        matches!(self, PushOutcome::Created | PushOutcome::Replaced)
    }
}

impl std::fmt::Display for PushOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PushOutcome::Created => "created",
            PushOutcome::Unchanged => "unchanged",
            PushOutcome::Replaced => "replaced",
            PushOutcome::Refused => "refused",
        })
    }
}

/// Per-push choices.
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// Overwrite a version that exists with other bytes.
    pub force: bool,
    /// Decide the outcome, write nothing.
    pub dry_run: bool,
    /// Provenance file (`.prov`) published beside the chart.
    pub prov: Option<Bytes>,
}

/// The result of one chart push.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PushReport {
    pub chart: String,
    pub version: String,
    /// Where it went: `registry/repository:tag` or the ChartMuseum upload URL.
    pub destination: String,
    pub result: PushOutcome,
    /// The chart archive's digest.
    pub digest: Digest,
    /// The digest of what the destination held before, when it held this version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Digest>,
    /// The OCI manifest's digest (OCI destinations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Digest>,
    pub dry_run: bool,
}

impl PushReport {
    /// The refusal as an error (exit code 7 in the CLI), when the push was refused.
    pub fn refusal(&self) -> Option<ChartError> {
        (self.result == PushOutcome::Refused).then(|| ChartError::Refused {
            location: self.destination.clone(),
            name: self.chart.clone(),
            version: self.version.clone(),
            current: self
                .previous
                .as_ref()
                .map_or_else(|| "unknown".into(), |d| d.to_string()),
            wanted: self.digest.to_string(),
        })
    }
}

/// The guard: what to do given what the destination holds.
pub(crate) fn decide(same: Option<bool>, force: bool) -> PushOutcome {
    match same {
        None => PushOutcome::Created,
        Some(true) => PushOutcome::Unchanged,
        Some(false) if force => PushOutcome::Replaced,
        Some(false) => PushOutcome::Refused,
    }
}
