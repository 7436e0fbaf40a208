//! Dry runs: which blobs each image would copy, mount or skip, found with HEADs only and
//! played in plan order the way the copy engine would travel them.

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};

use super::report::BlobSummary;
use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::Descriptor;
use crate::store::Store;

/// Each blob of an image and whether its destination already has it.
pub(super) type Presence = Vec<(Descriptor, bool)>;

/// HEADs every blob at `dst`, `jobs` at once.
pub(super) async fn presence(
    dst: &dyn Store,
    blobs: &[Descriptor],
    jobs: usize,
) -> Result<Presence> {
    futures::stream::iter(blobs)
        .map(|d| async move { Ok((d.clone(), dst.has_blob(d).await?)) })
        .buffered(jobs.max(1))
        .try_collect()
        .await
}

/// Every blob counted as present (the destination has the image's root manifest already).
pub(super) fn all_present(blobs: &[Descriptor]) -> Presence {
    blobs.iter().map(|d| (d.clone(), true)).collect()
}

/// The blob path played over a plan: which blobs earlier images will have put in which
/// destination repositories (so later images skip or mount them).
#[derive(Default)]
pub(super) struct Simulation {
    /// (registry, digest) → the repositories (store locations) that will hold it.
    placed: HashMap<(String, Digest), HashSet<String>>,
}

/// The key a destination store's blobs share: its registry, or the store itself when local.
fn registry_of(store: &dyn Store) -> String {
    store
        .repo_location()
        .map(|l| l.registry)
        .unwrap_or_else(|| store.location())
}

impl Simulation {
    /// What the copy engine would do with each blob of one image.
    pub(super) fn image(
        &mut self,
        src: &dyn Store,
        dst: &dyn Store,
        blobs: &Presence,
    ) -> BlobSummary {
        let registry = registry_of(dst);
        let here = dst.location();
        let same_registry = match (src.repo_location(), dst.repo_location()) {
            (Some(s), Some(d)) => s.registry == d.registry,
            _ => false,
        };
        let mut s = BlobSummary::default();
        for (d, present) in blobs {
            let holders = self
                .placed
                .entry((registry.clone(), d.digest.clone()))
                .or_default();
            let elsewhere = !holders.is_empty();
            if *present || holders.contains(&here) {
                s.skipped += 1;
                s.bytes_skipped += d.size;
            } else if dst.repo_location().is_some() && (same_registry || elsewhere) {
                s.mounted += 1;
                s.bytes_mounted += d.size;
            } else {
                s.copied += 1;
                s.bytes_copied += d.size;
            }
            holders.insert(here.clone());
        }
        s
    }
}
