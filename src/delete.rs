//! Deleting a tag or a manifest through any store, never taking more than was asked for.
//!
//! A digest deletes the manifest, and with it every tag on it. A tag is deleted alone where the
//! store can ([`Store::delete_tag`]); where it cannot (distribution answers 400), the manifest
//! is deleted instead, but only when no other tag of the repository points at it and the tag
//! still does: otherwise [`Error::DeleteRefused`] and nothing is deleted. So removing a branch
//! tag after promoting its image to a release tag of the same repository never removes the
//! release.

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::store::{Store, Target};

/// Tags resolved at once while looking for the other tags of a digest.
const SURVEY_JOBS: usize = 8;

/// What a delete would remove.
#[derive(Clone, Debug, Serialize)]
pub struct DeletePlan {
    pub location: String,
    /// The tag asked for; `None` when deleting by digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub digest: Digest,
    /// The repository's other tags on `digest`, once [`DeletePlan::survey`] looked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_tags: Option<Vec<String>>,
}

/// What was removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Deleted {
    /// The tag alone; the manifest and its other tags stay.
    Tag,
    /// The manifest (and every tag that pointed at it).
    Manifest,
}

impl DeletePlan {
    /// Resolves `target`: `NotFound` when absent. Sends one HEAD on a registry.
    pub async fn new(store: &dyn Store, target: &Target) -> Result<Self> {
        let desc = store
            .resolve(target)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: format!("manifest {target}"),
                location: store.location(),
            })?;
        Ok(DeletePlan {
            location: store.location(),
            tag: match target {
                Target::Tag(t) => Some(t.clone()),
                Target::Digest(_) => None,
            },
            digest: desc.digest,
            other_tags: None,
        })
    }

    /// Finds the other tags on the digest (a tags list and a HEAD per tag on a registry).
    pub async fn survey(&mut self, store: &dyn Store) -> Result<&[String]> {
        if self.other_tags.is_none() {
            let mut tags = tags_on(store, &self.digest).await?;
            tags.retain(|t| Some(t) != self.tag.as_ref());
            self.other_tags = Some(tags);
        }
        Ok(self.other_tags.as_deref().unwrap_or_default())
    }

    /// Deletes what the plan names (see the module doc for when a tag takes its manifest).
    pub async fn execute(&mut self, store: &dyn Store) -> Result<Deleted> {
        let Some(tag) = self.tag.clone() else {
            store.delete_manifest(&self.digest).await?;
            return Ok(Deleted::Manifest);
        };
        match store.delete_tag(&tag).await {
            Ok(()) => return Ok(Deleted::Tag),
            Err(e) if matches!(e.root(), Error::Unsupported { .. }) => {
                tracing::debug!(error = %e, "tag not deletable alone; checking its manifest")
            }
            Err(e) => return Err(e),
        }
        let others = self.survey(store).await?.to_vec();
        let now = store.resolve(&Target::Tag(tag.clone())).await?;
        let moved = now.as_ref().map(|d| &d.digest) != Some(&self.digest);
        if !others.is_empty() || moved {
            let others = match now {
                Some(d) if moved => vec![format!("(the tag moved to {})", d.digest)],
                _ => others,
            };
            return Err(Error::DeleteRefused {
                location: self.location.clone(),
                tag,
                digest: self.digest.clone(),
                others,
            });
        }
        store.delete_manifest(&self.digest).await?;
        Ok(Deleted::Manifest)
    }
}

/// Every tag of `store` that points at `digest`, sorted.
pub async fn tags_on(store: &dyn Store, digest: &Digest) -> Result<Vec<String>> {
    if let Some(images) = store.list_images().await? {
        let mut tags: Vec<String> = images
            .into_iter()
            .filter(|i| &i.descriptor.digest == digest)
            .filter_map(|i| i.tag)
            .collect();
        tags.sort();
        tags.dedup();
        return Ok(tags);
    }
    let tags = store.list_tags().await?;
    let resolved: Vec<(String, Option<Digest>)> = futures::stream::iter(tags)
        .map(|t| async move {
            let d = store.resolve(&Target::Tag(t.clone())).await?;
            Ok::<_, Error>((t, d.map(|d| d.digest)))
        })
        .buffer_unordered(SURVEY_JOBS)
        .try_collect()
        .await?;
    let mut on: Vec<String> = resolved
        .into_iter()
        .filter(|(_, d)| d.as_ref() == Some(digest))
        .map(|(t, _)| t)
        .collect();
    on.sort();
    Ok(on)
}
