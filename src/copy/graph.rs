//! Walks a manifest graph at the source: every manifest (children first) and every unique blob.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::manifest::{Children, Descriptor, Platform, RawManifest};
use crate::store::{Store, Target};

/// Media types of layers that are not distributed by registries (Windows foreign layers).
const FOREIGN: [&str; 3] = [
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
];

/// Everything one copy has to move, in push order.
#[derive(Debug, Default)]
pub struct Graph {
    /// Non-root manifests, children before the indexes that name them.
    pub manifests: Vec<RawManifest>,
    /// Unique blobs, largest first.
    pub blobs: Vec<Descriptor>,
}

/// Collects the graph under `root`, fetching child manifests from `src` with `jobs` in flight.
pub async fn collect(src: &dyn Store, root: &RawManifest, jobs: usize) -> Result<Graph> {
    let mut graph = Graph::default();
    let mut seen_blobs = HashSet::new();
    let mut seen_manifests = HashSet::new();
    walk(
        src,
        root,
        jobs,
        &mut graph,
        &mut seen_blobs,
        &mut seen_manifests,
    )
    .await?;
    graph.blobs.sort_by_key(|d| std::cmp::Reverse(d.size));
    Ok(graph)
}

fn walk<'a>(
    src: &'a dyn Store,
    m: &'a RawManifest,
    jobs: usize,
    graph: &'a mut Graph,
    seen_blobs: &'a mut HashSet<crate::Digest>,
    seen_manifests: &'a mut HashSet<crate::Digest>,
) -> futures::future::BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        match m.children()? {
            Children::Image { config, layers } => {
                for d in std::iter::once(config).chain(layers) {
                    if !FOREIGN.contains(&d.media_type.as_str())
                        && seen_blobs.insert(d.digest.clone())
                    {
                        graph.blobs.push(d);
                    }
                }
            }
            Children::Index { manifests } => {
                let wanted: Vec<Descriptor> = manifests
                    .into_iter()
                    .filter(|d| seen_manifests.insert(d.digest.clone()))
                    .collect();
                let children: Vec<RawManifest> = futures::stream::iter(wanted)
                    .map(|d| fetch_child(src, d))
                    .buffered(jobs.max(1))
                    .try_collect()
                    .await?;
                for child in children {
                    walk(src, &child, jobs, graph, seen_blobs, seen_manifests).await?;
                    graph.manifests.push(child);
                }
            }
        }
        Ok(())
    })
}

async fn fetch_child(src: &dyn Store, d: Descriptor) -> Result<RawManifest> {
    let m = src.get_manifest(&Target::Digest(d.digest.clone())).await?;
    if m.bytes.len() as u64 != d.size {
        return Err(Error::SizeMismatch {
            location: src.location(),
            digest: d.digest,
            expected: d.size,
            actual: m.bytes.len() as u64,
        });
    }
    Ok(RawManifest {
        media_type: if d.media_type.is_empty() {
            m.media_type
        } else {
            d.media_type
        },
        ..m
    })
}

/// What a platform selection turned the root into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// No selection: the root as it is (digest preserved).
    Unchanged,
    /// One platform matched: that platform's own manifest (digest preserved).
    SingleManifest,
    /// Several platforms matched: a new index naming only them (new digest).
    SubsetIndex,
}

/// Applies `--platform` choices to a root manifest.
pub async fn select_platforms(
    src: &dyn Store,
    root: RawManifest,
    platforms: &[Platform],
) -> Result<(RawManifest, Selection)> {
    if platforms.is_empty() {
        return Ok((root, Selection::Unchanged));
    }
    let Children::Index { manifests } = root.children()? else {
        return Err(Error::Platform {
            reason: format!(
                "--platform was given but {} ({}) is a single-platform manifest, not an index",
                root.digest, root.media_type
            ),
        });
    };
    for p in platforms {
        if !manifests
            .iter()
            .any(|d| d.platform.as_ref().is_some_and(|e| p.selects(e)))
        {
            let available: Vec<String> = manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect();
            return Err(Error::Platform {
                reason: format!(
                    "platform {p} is not in index {}; available: {}",
                    root.digest,
                    available.join(", ")
                ),
            });
        }
    }
    let keep = |d: &Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|e| platforms.iter().any(|p| p.selects(e)))
    };
    let chosen: Vec<&Descriptor> = manifests.iter().filter(|d| keep(d)).collect();
    if chosen.len() == 1 {
        let one = fetch_child(src, chosen[0].clone()).await?;
        return Ok((one, Selection::SingleManifest));
    }
    Ok((root.filter_index(keep)?, Selection::SubsetIndex))
}
