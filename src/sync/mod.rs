//! Sync: keep many repositories of a destination in step with their sources, cheaply and
//! repeatably, from a config file (`ferry sync CONFIG.yaml`).
//!
//! A config (see [`config`]) lists entries: a source registry namespace with repositories (names,
//! or `*` patterns resolved through the catalog API) or explicit images; a destination registry
//! prefix (or an OCI layout / archive directory); tag filters and platforms. The run:
//!
//! 1. resolves every entry into [`SyncUnit`]s, one per source repository, and keeps the units of
//!    this [`Shard`] (a stable hash of the source repository, so N processes split the work
//!    with no overlap and no coordination);
//! 2. per unit, lists the source tags (one paged request; none with an exact list), applies the
//!    [`TagFilter`], and for every selected tag does one HEAD at the source and one at the
//!    destination: equal digests mean nothing to do (no local state, no manifest GET);
//! 3. copies what differs through the promotion engine ([`Promoter`](crate::promote::Promoter)):
//!    one blob ledger for the run (a blob crosses to a registry once, later repositories mount
//!    it), per-registry limits, and tags written only once everything they name is present.
//!    Entries with `platforms:` go through the copy engine's platform selection instead.
//!
//! Failures are per tag: by default everything else goes on (`keep_going`) and the
//! [`SyncReport`] lists them; `fail_fast` stops starting work after the first.

pub mod config;
mod error;
mod filter;
mod plan;
mod report;
mod run;
mod shard;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use error::SyncError;
pub use filter::{version_of, Selected, TagFilter};
pub use plan::SyncUnit;
pub use report::{
    RegistryRequests, RepoReport, SilentSync, SyncReport, SyncReporter, SyncTotals, TagAction,
    TagReport,
};
pub use run::{Endpoints, SyncOptions, Syncer};
pub use shard::{fnv1a64, Shard};

use crate::manifest::Platform;
use crate::reference::{LayoutKind, RegistryRef};

/// A checked sync config: what to mirror where, before any store is opened.
#[derive(Clone, Debug, Default)]
pub struct SyncPlan {
    pub entries: Vec<SyncEntry>,
    /// Blob transfers in flight per registry (`host[:port]`), from the config's `limits:`.
    pub limits: Vec<(String, usize)>,
}

/// One entry of `sync:`.
#[derive(Clone, Debug)]
pub struct SyncEntry {
    /// `file:line` of the entry, for reports.
    pub label: String,
    pub source: SourceSpec,
    pub destination: DestinationSpec,
    pub tags: TagFilter,
    /// Platforms kept from multi-platform images; empty keeps all (digests preserved).
    pub platforms: Vec<Platform>,
    /// `referrers:` / `referrers-type:` of the entry; `None`: the run's default.
    pub referrers: Option<crate::referrers::ReferrerOptions>,
}

/// Where an entry's images come from.
#[derive(Clone, Debug)]
pub enum SourceSpec {
    /// Repositories of one registry under a namespace (`registry.example.com/team`).
    Repositories {
        registry: String,
        /// Path below the registry, without slashes at either end; may be empty.
        namespace: String,
        /// Names relative to the namespace; a name with `*` is a pattern matched against the
        /// registry's catalog.
        repositories: Vec<String>,
    },
    /// Explicit images, each with a tag or digest.
    Images(Vec<RegistryRef>),
}

/// Where an entry's images go.
#[derive(Clone, Debug)]
pub struct DestinationSpec {
    pub base: Destination,
    /// Source repository (relative to the source namespace; an image's last path component) →
    /// destination path below the base. Unmapped repositories keep their relative path.
    pub mapping: BTreeMap<String, String>,
}

/// A destination base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// `registry[/prefix]`: repository `prefix/<path>`.
    Registry { registry: String, prefix: String },
    /// `oci:DIR` (a layout per repository, `DIR/<path>`) or `oci-archive:DIR`
    /// (`DIR/<path>.tar`).
    Local { dir: PathBuf, kind: LayoutKind },
}
